// cuda/shape.h: CUDA kernels that move data without arithmetic (the twins of core/cpu/shape.h): permute,
// slices and concatenation, index select / gather / embedding rows, dtype conversion, and their gradients.
//
// Signatures and semantics are those of core/cpu/shape.h with gvm_cuda_ in place of gvm_cpu_: tensor
// pointers are device pointers, shape/perm arrays are host memory. Forward kernels work on any element size;
// backward kernels are f32 and ACCUMULATE (+=). Scatter-adds (index select, gather, embedding backward) are
// deterministic (no float atomics) and add the contributions of repeated indices in index order, as the CPU
// does. An index outside its axis stops the kernel with a message (printf + trap): the CUDA context is then
// unusable and the next synchronising call aborts.
#ifndef GVM_CUDA_SHAPE_H
#define GVM_CUDA_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// dst = src with dims reordered: src [shape[0], ..., shape[ndim-1]], dst.shape[i] = shape[perm[i]].
void gvm_cuda_permute_fwd(const void *src, void *dst, size_t esize, int ndim, const int64_t *shape, const int *perm);
// dx [shape] += dy permuted back; dy has the permuted shape (out_shape[i] = shape[perm[i]]).
void gvm_cuda_permute_bwd(const float *dy, float *dx, int ndim, const int64_t *shape, const int *perm);

// Identity gradient (reshape, contiguous, cast): dx[i] += dy[i].
void gvm_cuda_reshape_bwd(const float *dy, float *dx, int64_t n);
// A contiguous copy of `nbytes` bytes.
void gvm_cuda_contiguous_fwd(const void *src, void *dst, size_t nbytes);

// Slice: src [outer, n, inner] -> dst [outer, len, inner] = src[:, start:start+len, :].
void gvm_cuda_slice_fwd(const void *src, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                        int64_t start, int64_t len);
// dx [outer, n, inner][:, start:start+len, :] += dy [outer, len, inner]
void gvm_cuda_slice_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, int64_t start,
                        int64_t len);
// Concat: one part [outer, len, inner] copied into dst [outer, n, inner] at rows [start, start+len).
void gvm_cuda_concat_fwd(const void *part, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                         int64_t start, int64_t len);
// dpart [outer, len, inner] += dy [outer, n, inner][:, start:start+len, :]
void gvm_cuda_concat_bwd(const float *dy, float *dpart, int64_t outer, int64_t n, int64_t inner, int64_t start,
                         int64_t len);

// Index select: src [outer, n, inner], idx [m] (i32, or i64 when idx64) -> dst [outer, m, inner] with
// dst[o, j, :] = src[o, idx[j], :]. Embedding is outer = 1.
void gvm_cuda_index_select_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int64_t outer,
                               int64_t n, int64_t m, int64_t inner);
// Scatter-add: dx [outer, n, inner][o, idx[j], :] += dy [outer, m, inner][o, j, :] (repeated indices add up).
void gvm_cuda_index_select_bwd(const float *dy, float *dx, const void *idx, bool idx64, int64_t outer, int64_t n,
                               int64_t m, int64_t inner);

// torch.gather: src [src_shape], idx [idx_shape] -> dst [idx_shape] along `axis` (see core/cpu/shape.h).
void gvm_cuda_gather_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int ndim,
                         const int64_t *src_shape, const int64_t *idx_shape, int axis);
// dx [src_shape] gets dy [idx_shape] scatter-added at the gathered positions.
void gvm_cuda_gather_bwd(const float *dy, float *dx, const void *idx, bool idx64, int ndim, const int64_t *src_shape,
                         const int64_t *idx_shape, int axis);

// dst = src converted element by element, with gvm_tensor_copy's rules (core/cuda/elementwise.h does it).
void gvm_cuda_cast_fwd(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
