// device_parity.h: the CUDA backend against the CPU reference, op by op.
//
// A case names its inputs and a function that builds the op from them. The harness makes the inputs on
// the CPU (seeded random values), runs the function forward and backward on a CPU context (the upstream
// gradient is random too), copies the same inputs and upstream gradient to the GPU, runs the function on a
// CUDA context, and compares the output and the gradient of every input that requires grad:
//
//     |gpu - cpu| <= rtol * (|cpu| + rms(cpu))     element by element
//
// (the rms term keeps near-zero elements of a large tensor from demanding absolute precision that
// summation in another order cannot give). rtol is 1e-5 for f32 unless a case states otherwise.
//
// Without a usable GPU the program prints "SKIPPED: <why>" and exits 77, which ctest reports as skipped.
#ifndef GVM_TEST_DEVICE_PARITY_H
#define GVM_TEST_DEVICE_PARITY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gvm.h"

typedef struct parity_input {
    gvm_dtype dtype;
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
    bool requires_grad;  // f32 inputs only
    float lo, hi;        // f32: uniform in [lo, hi) (lo == hi: standard normal); integers/bool: [lo, hi)
} parity_input;

// Build the op from `in` (tensors on the context's device); `arg` is the case's own options.
// The output may be any dtype; only f32 outputs get a backward pass.
typedef gvm_tensor *(*parity_build_fn)(gvm_ctx *ctx, gvm_tensor **in, const void *arg);

typedef struct parity_opts {
    double rtol;          // 0: 1e-5
    gvm_dtype autocast;   // GVM_F32 (default, off), GVM_BF16 or GVM_F16: run the GPU side under autocast
    bool forward_only;    // skip the backward comparison
    bool training;        // contexts in training mode (dropout active)
    uint64_t seed;        // 0: a fixed default
} parity_opts;

// Call first: exits 77 (SKIPPED) when no CUDA device is usable, with the reason.
void parity_init(int argc, char **argv);
// One case. `name` is printed with the largest error found. Returns true when it passed.
bool parity_check(const char *name, parity_build_fn build, const void *arg, int n_in, const parity_input *inputs,
                  const parity_opts *opts);
// The op run twice on the GPU (same inputs, same upstream gradient): the output and every input gradient
// must be bit-identical (no floating-point atomics, fixed reduction orders). Counted like a parity case.
bool parity_check_deterministic(const char *name, parity_build_fn build, const void *arg, int n_in,
                                const parity_input *inputs, const parity_opts *opts);
// "N passed, M failed"; returns the process exit code.
int parity_finish(void);

// Shorthand for inputs: PARITY_F32(requires_grad, ndim, d0, d1, ...), values standard normal.
#define PARITY_F32(rg, nd, ...) ((parity_input){GVM_F32, (nd), {__VA_ARGS__}, (rg), 0.0f, 0.0f})
#define PARITY_F32_RANGE(rg, lo_, hi_, nd, ...) ((parity_input){GVM_F32, (nd), {__VA_ARGS__}, (rg), (lo_), (hi_)})
#define PARITY_INT(dt, lo_, hi_, nd, ...) ((parity_input){(dt), (nd), {__VA_ARGS__}, false, (lo_), (hi_)})

#endif
