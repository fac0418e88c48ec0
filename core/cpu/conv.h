// cpu/conv.h: CPU kernels of 1-D convolution and transposed convolution (core/ops/conv.c), forward and
// backward, lowered to im2col + sgemm per group.
//
// Both ops are described by one geometry. For conv1d, x [B, Cin, T] -> y [B, Cout, Tout] with weight
// [Cout, Cin/groups, K]; for conv_transpose1d, x [B, Cin, T] -> y [B, Cout, Tout] with weight
// [Cin, Cout/groups, K]. Every kernel needs a scratch buffer of gvm_cpu_conv1d_scratch_floats() floats
// (the op takes it from the context's arena); the size depends only on the geometry, the kernel and the
// OpenMP thread count.
#ifndef GVM_CPU_CONV_H
#define GVM_CPU_CONV_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_conv1d_geom {
    int64_t B, Cin, Cout, T, Tout, K;           // T: input length, Tout: output length
    int64_t stride, padding, dilation, groups;  // already normalised (>= 1, padding >= 0)
} gvm_conv1d_geom;

typedef enum gvm_conv1d_kernel {
    GVM_CONV1D_FWD,
    GVM_CONV1D_BWD,
    GVM_CONV_TRANSPOSE1D_FWD,
    GVM_CONV_TRANSPOSE1D_BWD,
} gvm_conv1d_kernel;

// Floats of scratch the kernel `which` needs for geometry `g`; `need_dw` says whether the backward
// computes a weight gradient (ignored by the forwards).
int64_t gvm_cpu_conv1d_scratch_floats(const gvm_conv1d_geom *g, gvm_conv1d_kernel which, bool need_dw);

// y [B, Cout, Tout] = conv1d(x [B, Cin, T], w [Cout, Cin/groups, K]) + bias [Cout] (bias may be NULL).
void gvm_cpu_conv1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                        float *scratch);
// Accumulates (+=) into dx [B, Cin, T], dw [Cout, Cin/groups, K], db [Cout]; any of them may be NULL.
void gvm_cpu_conv1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db, float *scratch);

// y [B, Cout, Tout] = conv_transpose1d(x [B, Cin, T], w [Cin, Cout/groups, K]) + bias [Cout] (may be NULL).
void gvm_cpu_conv_transpose1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                                  float *scratch);
// Accumulates (+=) into dx [B, Cin, T], dw [Cin, Cout/groups, K], db [Cout]; any of them may be NULL.
void gvm_cpu_conv_transpose1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
