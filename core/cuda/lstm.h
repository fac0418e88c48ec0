// cuda/lstm.h: one LSTM layer on the GPU (core/ops/lstm.c), the twin of core/cpu/lstm.h: PyTorch's
// nn.LSTM, batch first, gate order i, f, g, o, zero initial state.
//
// Same layouts and saved state as the CPU kernels. Pointers are device pointers; the dims struct is host
// memory.
#ifndef GVM_CUDA_LSTM_H
#define GVM_CUDA_LSTM_H

#include <stdint.h>

#include "core/cpu/lstm.h"  // gvm_lstm_dims

#ifdef __cplusplus
extern "C" {
#endif

// Floats of scratch gvm_cuda_lstm_fwd needs (none: the biases are summed on the fly).
int64_t gvm_cuda_lstm_fwd_scratch_floats(const gvm_lstm_dims *d);

// x [B, T, I], w_ih [4H, I], w_hh [4H, H], b_ih [4H] / b_hh [4H] (either may be NULL) ->
// h [B, T, H]. Also writes what the backward needs: gates [B, T, 4H] (after their activations:
// sigmoid i, sigmoid f, tanh g, sigmoid o) and cell [B, T, H] (c_t). scratch: see above.
void gvm_cuda_lstm_fwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *b_ih,
                       const float *b_hh, float *h, float *gates, float *cell, float *scratch);

// Floats of scratch gvm_cuda_lstm_bwd needs: dG [B, T, 4H], h_prev [B, T, H], dh_rec [B, H], dc [B, H].
int64_t gvm_cuda_lstm_bwd_scratch_floats(const gvm_lstm_dims *d);

// Backpropagation through time from dh [B, T, H] (the gradient of h). Accumulates (+=) into dx [B, T, I],
// dw_ih [4H, I], dw_hh [4H, H], db_ih [4H], db_hh [4H]; any of them may be NULL.
void gvm_cuda_lstm_bwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *h,
                       const float *gates, const float *cell, const float *dh, float *dx, float *dw_ih, float *dw_hh,
                       float *db_ih, float *db_hh, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
