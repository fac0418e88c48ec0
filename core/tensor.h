// tensor.h: the tensor type.
//
// Storage is always contiguous and row-major (the last dimension varies fastest). A view (reshape, a
// slice along the first dimension) shares its base tensor's storage. A tensor lives either
//   * on the heap (gvm_tensor_new / gvm_tensor_free): parameters, caches, anything kept across steps; or
//   * in a context's activation arena (every op output, made with gvm_tensor_empty): freed all at once
//     by gvm_ctx_reset().
#ifndef GVM_TENSOR_H
#define GVM_TENSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_MAX_DIMS 6

struct gvm_node;
struct gvm_ctx;

enum {
    GVM_TENSOR_HEAP_STRUCT = 1u << 0,  // the struct itself was malloc'd (gvm_tensor_free frees it)
    GVM_TENSOR_OWNS_DATA = 1u << 1,    // `data` was malloc'd by this tensor
};

typedef struct gvm_tensor {
    gvm_dtype dtype;
    gvm_device device;
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
    int64_t numel;
    void *data;                  // numel * dtype size bytes, contiguous
    uint32_t flags;
    bool requires_grad;          // leaves: set by the user; op outputs: set when any input requires grad
    struct gvm_tensor *grad;     // f32, same shape; allocated when backward first reaches the tensor
    struct gvm_node *grad_fn;    // the tape node that produced this tensor; NULL for leaves
    const char *name;            // optional, for messages and checkpoints
} gvm_tensor;

// ---- heap tensors ----------------------------------------------------------------------------------
// Zero-filled heap tensor on the CPU. `shape` has `ndim` entries (0 <= ndim <= GVM_MAX_DIMS; 0: scalar).
gvm_tensor *gvm_tensor_new(gvm_dtype dtype, int ndim, const int64_t *shape);
// The same on `device` (initialised with gvm_device_init, core/device.h).
gvm_tensor *gvm_tensor_new_on(gvm_device device, gvm_dtype dtype, int ndim, const int64_t *shape);
// Heap tensor that borrows `data` (not freed by gvm_tensor_free), e.g. a parameter in a block.
gvm_tensor *gvm_tensor_wrap(gvm_dtype dtype, int ndim, const int64_t *shape, void *data);
gvm_tensor *gvm_tensor_wrap_on(gvm_device device, gvm_dtype dtype, int ndim, const int64_t *shape, void *data);
// A heap copy of `t` (values, dtype, shape, name; not grad state) on `device`.
gvm_tensor *gvm_tensor_to(const gvm_tensor *t, gvm_device device);
void gvm_tensor_free(gvm_tensor *t);  // frees heap tensors (and their leaf grad); NULL is fine

// ---- arena tensors (freed by gvm_ctx_reset) --------------------------------------------------------
gvm_tensor *gvm_tensor_empty(struct gvm_ctx *ctx, gvm_dtype dtype, int ndim, const int64_t *shape);
gvm_tensor *gvm_tensor_zeros(struct gvm_ctx *ctx, gvm_dtype dtype, int ndim, const int64_t *shape);
// Arena copy of `n` floats with the given shape (handy in tests and for constants).
gvm_tensor *gvm_tensor_from_f32(struct gvm_ctx *ctx, const float *values, int ndim, const int64_t *shape);
// A new arena tensor of the same dtype/shape as `like`, uninitialised.
gvm_tensor *gvm_tensor_empty_like(struct gvm_ctx *ctx, const gvm_tensor *like);

// ---- shape helpers -----------------------------------------------------------------------------------
int64_t gvm_shape_numel(int ndim, const int64_t *shape);
bool gvm_tensor_same_shape(const gvm_tensor *a, const gvm_tensor *b);
size_t gvm_tensor_nbytes(const gvm_tensor *t);
// Normalise a possibly negative axis against t->ndim; aborts when out of range.
int gvm_tensor_axis(const gvm_tensor *t, int axis);
// "[2, 3, 4]" into buf (for messages).
const char *gvm_shape_str(int ndim, const int64_t *shape, char *buf, size_t buf_size);

// Typed host access (aborts on a dtype mismatch or a tensor that is not on the CPU).
float *gvm_tensor_f32(const gvm_tensor *t);
int32_t *gvm_tensor_i32(const gvm_tensor *t);
int64_t *gvm_tensor_i64(const gvm_tensor *t);
uint8_t *gvm_tensor_u8(const gvm_tensor *t);  // u8 or bool
// Element i of an integer tensor (i16/i32/i64/u8/bool) as int64.
int64_t gvm_tensor_get_index(const gvm_tensor *t, int64_t i);

void gvm_tensor_fill(gvm_tensor *t, float value);  // f32 tensors, any device
// Copy `src` into `dst` (same numel), converting between any two dtypes (floats round to nearest even).
// Any two devices when the dtypes match; a conversion needs both on one device.
void gvm_tensor_copy(gvm_tensor *dst, const gvm_tensor *src);
// Print shape, dtype and the first values (debugging).
void gvm_tensor_print(FILE *f, const gvm_tensor *t, const char *label);

#ifdef __cplusplus
}
#endif

#endif
