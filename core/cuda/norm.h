// cuda/norm.h: CUDA kernels for the normalisations (the twins of core/cpu/norm.h): layer norm, RMS norm, L2
// normalisation, cosine similarity and weight normalisation.
//
// Signatures and semantics are those of core/cpu/norm.h with gvm_cuda_ in place of gvm_cpu_ (device pointers).
// Row kernels see x as [rows, D]; axis kernels see x as [outer, n, inner] with the reduction over n. Backward
// kernels ACCUMULATE (+=) into every gradient pointer that is not NULL. All reductions have a fixed order, so
// results are the same run to run.
#ifndef GVM_CUDA_NORM_H
#define GVM_CUDA_NORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bytes of device scratch the layer-norm and RMS-norm backward kernels need for D columns: double partial
// column sums of dweight and dbias over at most 64 chunks of rows ([2, 64, D] doubles), summed in chunk order
// by a second pass. Always pass it.
size_t gvm_cuda_norm_bwd_scratch_bytes(int64_t D);

// x [rows, D], w [D] or NULL, b [D] or NULL -> y [rows, D], mean [rows], rstd [rows] = 1/sqrt(var + eps)
void gvm_cuda_layer_norm_fwd(const float *x, const float *w, const float *b, float *y, float *mean, float *rstd,
                             int64_t rows, int64_t D, float eps);
// dy [rows, D] -> dx [rows, D], dw [D], db [D] (each may be NULL); scratch as above.
void gvm_cuda_layer_norm_bwd(const float *x, const float *w, const float *mean, const float *rstd, const float *dy,
                             float *dx, float *dw, float *db, double *scratch, int64_t rows, int64_t D);

// x [rows, D], w [D] or NULL -> y [rows, D] = x * rstd * w, rstd [rows] = 1/sqrt(mean(x^2) + eps)
void gvm_cuda_rms_norm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t D, float eps);
// dy [rows, D] -> dx [rows, D], dw [D] (either may be NULL); scratch as above.
void gvm_cuda_rms_norm_bwd(const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw,
                           double *scratch, int64_t rows, int64_t D);

// x [outer, n, inner] -> y [outer, n, inner] = x / max(||x||, eps), norm [outer, inner] = ||x|| (unclamped)
void gvm_cuda_l2_normalize_fwd(const float *x, float *y, float *norm, int64_t outer, int64_t n, int64_t inner,
                               float eps);
// y, dy [outer, n, inner], norm [outer, inner] -> dx += (see core/cpu/norm.h)
void gvm_cuda_l2_normalize_bwd(const float *y, const float *norm, const float *dy, float *dx, int64_t outer, int64_t n,
                               int64_t inner, float eps);

// a, b [outer, n, inner] -> y [outer, inner] (cosine along n), na, nb [outer, inner] = ||a||, ||b||.
void gvm_cuda_cosine_similarity_fwd(const float *a, const float *b, float *y, float *na, float *nb, int64_t outer,
                                    int64_t n, int64_t inner, float eps);
// dy [outer, inner] -> da, db [outer, n, inner] += (either may be NULL); formula in core/ops/norm.c.
void gvm_cuda_cosine_similarity_bwd(const float *a, const float *b, const float *y, const float *na, const float *nb,
                                    const float *dy, float *da, float *db, int64_t outer, int64_t n, int64_t inner,
                                    float eps);

// g [O], v [O, K] -> w [O, K] = g * v / ||v_row||, norm [O] = ||v_row||
void gvm_cuda_weight_norm_fwd(const float *g, const float *v, float *w, float *norm, int64_t O, int64_t K);
// dw [O, K] -> dg [O], dv [O, K] += (either may be NULL)
void gvm_cuda_weight_norm_bwd(const float *g, const float *v, const float *norm, const float *dw, float *dg, float *dv,
                              int64_t O, int64_t K);

#ifdef __cplusplus
}
#endif

#endif
