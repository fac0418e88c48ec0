// cuda/conv.h: 1-D convolution and transposed convolution on the GPU (core/ops/conv.c), forward and
// backward: the twins of core/cpu/conv.h, through cuDNN.
//
// Same geometry and layouts as the CPU kernels: x [B, Cin, T] -> y [B, Cout, Tout]; conv1d's weight is
// [Cout, Cin/groups, K], conv_transpose1d's [Cin, Cout/groups, K]; bias [Cout] or NULL. Pointers are device
// pointers; the geometry is host memory. The backward kernels accumulate (+=) into dx, dw and db, any of
// which may be NULL. The kernels take their temporary memory from gvm_cuda_workspace, so the scratch the op
// passes in is not used (gvm_cuda_conv1d_scratch_floats returns 0).
#ifndef GVM_CUDA_CONV_H
#define GVM_CUDA_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "core/cpu/conv.h"  // gvm_conv1d_geom, gvm_conv1d_kernel

#ifdef __cplusplus
extern "C" {
#endif

// Floats of scratch the kernel `which` needs from the op for geometry `g`: none (see above).
int64_t gvm_cuda_conv1d_scratch_floats(const gvm_conv1d_geom *g, gvm_conv1d_kernel which, bool need_dw);

// y [B, Cout, Tout] = conv1d(x [B, Cin, T], w [Cout, Cin/groups, K]) + bias [Cout] (bias may be NULL).
void gvm_cuda_conv1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                         float *scratch);
// Accumulates (+=) into dx [B, Cin, T], dw [Cout, Cin/groups, K], db [Cout]; any of them may be NULL.
void gvm_cuda_conv1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db, float *scratch);

// y [B, Cout, Tout] = conv_transpose1d(x [B, Cin, T], w [Cin, Cout/groups, K]) + bias [Cout] (may be NULL).
void gvm_cuda_conv_transpose1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias,
                                   float *y, float *scratch);
// Accumulates (+=) into dx [B, Cin, T], dw [Cin, Cout/groups, K], db [Cout]; any of them may be NULL.
void gvm_cuda_conv_transpose1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy,
                                   float *dx, float *dw, float *db, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
