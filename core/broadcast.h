// broadcast.h: NumPy broadcasting, planned once per op call and walked by the kernels.
//
// A plan holds the output shape and, for the kernels, a coalesced iteration space: output dims of
// size 1 are dropped and neighbouring dims are merged wherever every input steps through them alike.
// Coalescing is what turns the common cases into the simplest loops:
//   x [B, T, D] + y [B, T, D]  -> one dim  [B*T*D],  strides x {1},    y {1}
//   x [B, T, D] + bias [D]     -> two dims [B*T, D], strides x {D, 1}, bias {0, 1}
//   x [B, T, D] * s [B, T, 1]  -> two dims [B*T, D], strides x {D, 1}, s {1, 0}
// After coalescing every input's stride along the last dim is 0 or 1, so kernels can run a contiguous
// (or constant) inner loop over "runs" of the last dim, produced by gvm_broadcast_iter_next.
#ifndef GVM_BROADCAST_H
#define GVM_BROADCAST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_BROADCAST_MAX_INPUTS 3

typedef struct gvm_broadcast {
    int n_in;
    int ndim;                                              // output rank (the longest input rank)
    int64_t shape[GVM_MAX_DIMS];                           // output shape
    int64_t numel;                                         // output elements
    int cdim;                                              // coalesced rank, >= 1
    int64_t cshape[GVM_MAX_DIMS];                          // coalesced shape (product = numel)
    int64_t cstride[GVM_BROADCAST_MAX_INPUTS][GVM_MAX_DIMS];  // per input, in elements; 0 = broadcast
} gvm_broadcast;

// Plan the broadcast of n_in (1..GVM_BROADCAST_MAX_INPUTS) shapes. Returns false, leaving *bc
// unspecified, when two shapes are incompatible (a dim differs and neither is 1).
bool gvm_broadcast_init(gvm_broadcast *bc, int n_in, const int *ndims, const int64_t *const *shapes);
// Same for tensors; aborts with file:line naming `op` and the shapes when they do not broadcast.
void gvm_broadcast_tensors(gvm_broadcast *bc, int n_in, const gvm_tensor *const *in, const char *op);

// Does input k cover the whole output (no broadcast dim, so its elements map one to one)?
bool gvm_broadcast_is_full(const gvm_broadcast *bc, int k);
// Input k's stride along the last coalesced dim: 0 or 1.
static inline int64_t gvm_broadcast_inner_stride(const gvm_broadcast *bc, int k) {
    return bc->cstride[k][bc->cdim - 1];
}

// ---- walking the output in runs ------------------------------------------------------------------------
// A run is a stretch of consecutive output elements within one row of the last coalesced dim:
// output [pos, pos + len), input k at off[k] + i * gvm_broadcast_inner_stride(bc, k).
typedef struct gvm_broadcast_run {
    int64_t pos, len;
    int64_t off[GVM_BROADCAST_MAX_INPUTS];
} gvm_broadcast_run;

typedef struct gvm_broadcast_iter {
    int64_t pos, end;                        // next output element, one past the last
    int64_t idx[GVM_MAX_DIMS];               // coalesced multi-index of pos
    int64_t off[GVM_BROADCAST_MAX_INPUTS];   // each input's offset at pos
} gvm_broadcast_iter;

// Iterate output elements [lo, hi) (each thread of a kernel takes its own range).
void gvm_broadcast_iter_init(const gvm_broadcast *bc, gvm_broadcast_iter *it, int64_t lo, int64_t hi);
// The next run into *run; false when the range is done.
bool gvm_broadcast_iter_next(const gvm_broadcast *bc, gvm_broadcast_iter *it, gvm_broadcast_run *run);

#ifdef __cplusplus
}
#endif

#endif
