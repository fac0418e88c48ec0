// test_util.h: the test harness: assertions, random inputs, finite-difference gradient checks and
// PyTorch golden comparisons.
//
// Each test program registers with ctest, takes the golden folder as argv[1] (default: the source
// tree's tests/golden/data), prints one line per failure and ends with "N passed, M failed".
#ifndef GVM_TEST_UTIL_H
#define GVM_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/gvm.h"

// ---- bookkeeping ----------------------------------------------------------------------------------------
void test_init(int argc, char **argv);       // reads the golden folder from argv[1]
const char *test_golden_dir(void);
// Record one check; prints "FAIL name: message" when !ok. Returns ok.
bool test_check(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int test_finish(void);                       // prints the summary; returns the process exit code
#define TEST_CHECK(cond, name, ...) test_check((cond), (name), __VA_ARGS__)

// ---- parameters of an op under test ----------------------------------------------------------------------
// A list of key=value strings, from a C literal ("axis=1,keepdim=1") or a golden file's metadata.
typedef struct test_params {
    int n;
    char keys[32][64];
    char values[32][256];
} test_params;
test_params test_params_parse(const char *spec);
double test_param_f(const test_params *p, const char *key, double fallback);
int64_t test_param_i(const test_params *p, const char *key, int64_t fallback);
const char *test_param_s(const test_params *p, const char *key, const char *fallback);

// The op under test: build the output from the inputs (in the order the test or golden lists them).
typedef gvm_tensor *(*test_forward_fn)(gvm_ctx *ctx, gvm_tensor **in, const test_params *p);

// ---- random inputs -----------------------------------------------------------------------------------------
// Heap f32 tensor with N(0, scale^2) values from Philox(seed); requires_grad as given.
gvm_tensor *test_randn(uint64_t seed, int ndim, const int64_t *shape, float scale, bool requires_grad);
// Heap integer tensor (i32 or i64) with values uniform in [0, high).
gvm_tensor *test_randint(uint64_t seed, gvm_dtype dtype, int ndim, const int64_t *shape, int64_t high);

// ---- gradient check ------------------------------------------------------------------------------------------
typedef struct test_gradcheck_opts {
    double eps;     // central-difference step (default 1e-3)
    double atol;    // |numeric - analytic| <= atol + rtol * |numeric| (defaults 1e-3, 1e-2)
    double rtol;
    int max_elems;  // elements checked per input (random subset when larger; default 512)
} test_gradcheck_opts;
// Check d(sum(out * R))/d(input) for every input with requires_grad, R fixed random. The forward runs
// in f32; the scalar loss is accumulated in double. The context's RNG restarts for every evaluation,
// so stochastic ops (dropout) see the same mask each time. Returns true when all elements agree.
bool test_gradcheck(const char *name, test_forward_fn fn, gvm_tensor **in, int n_in, const test_params *p,
                    const test_gradcheck_opts *opts);

// ---- goldens -------------------------------------------------------------------------------------------------
// Compare two f32 arrays elementwise: |a - e| <= atol + rtol * |e|. Prints the worst element on failure.
bool test_allclose(const char *name, const float *actual, const float *expected, int64_t n, double atol, double rtol);
// Run `fn` on the inputs stored in golden file `rel_path` (relative to the golden folder) and compare
// the output and (when the file has them) the gradients of each input for the stored upstream grad.
// File layout (written by tests/golden/golden.py): tensors "in.<name>", "out", "gout", "grad.<name>";
// metadata "inputs" = comma-separated names in call order, plus the op's parameters as key=value.
bool test_golden_op(const char *rel_path, test_forward_fn fn, double atol, double rtol);

// ---- references and accumulation -------------------------------------------------------------------------------
// Compare f32 results with a double-precision reference: |got - ref| <= tol + tol * |ref| elementwise.
bool test_close_to_ref(const char *name, const float *got, const double *ref, int64_t n, double tol);
// Compare with a double reference where long f32 sums make per-element relative error meaningless:
// |got - ref| <= rel * max|ref| for every element (NaN fails).
bool test_close_to_ref_scaled(const char *name, const float *got, const double *ref, int64_t n, double rel);
// Backward passes must ADD into input gradients: run forward + backward twice on the same heap leaves
// (in[0] must require grad) and check in[0]'s gradient is exactly twice the first pass's.
void test_check_accumulates(const char *name, test_forward_fn fn, gvm_tensor **in, int n_in, const char *spec);

#endif
