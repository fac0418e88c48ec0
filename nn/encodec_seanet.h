// encodec_seanet.h: the SEANet half of EnCodec (nn/encodec.h): the padded weight-normalised convolutions,
// residual blocks, the LSTM with its skip, and the encoder and decoder stacks built from them in the twin's
// layer order. Split from encodec.c so each file keeps one job; the structs live in encodec.h.
#ifndef GVM_NN_ENCODEC_SEANET_H
#define GVM_NN_ENCODEC_SEANET_H

#include "nn/encodec.h"

#ifdef __cplusplus
extern "C" {
#endif

// Register EncodecEncoder (decoder = false) or EncodecDecoder under `prefix` ("encoder" / "decoder").
void gvm_nn_encodec_seanet_init(gvm_nn_encodec_seanet *s, gvm_param_store *ps, const char *prefix,
                                const gvm_nn_encodec_cfg *cfg, bool decoder);
void gvm_nn_encodec_seanet_reset_parameters(gvm_nn_encodec_seanet *s, gvm_rng *rng);
void gvm_nn_encodec_seanet_free(gvm_nn_encodec_seanet *s);
// x [B, Cin, T] -> encoder: [B, D, ceil(T / hop)]; decoder: [B, C, T * hop].
gvm_tensor *gvm_nn_encodec_seanet_forward(gvm_ctx *ctx, const gvm_nn_encodec_seanet *s,
                                          const gvm_nn_encodec_cfg *cfg, gvm_tensor *x);

// EncodecConv1d._pad1d: x [B, C, T] -> [B, C, left + T + right] with the config's mode. In reflect mode an
// input no longer than the larger pad is first extended with zeros on the right (so the reflection exists)
// and those zeros are cut again afterwards, as the twin does. Built from index_select (and a concat of one
// zero column where zeros are needed), so it is differentiable.
gvm_tensor *gvm_nn_encodec_pad1d(gvm_ctx *ctx, gvm_tensor *x, int64_t left, int64_t right, gvm_nn_encodec_pad mode);
// EncodecConv1d._get_extra_padding_for_conv1d: zeros added on the right so the last window is full.
int64_t gvm_nn_encodec_extra_padding(int64_t length, int64_t kernel_eff, int64_t stride);
// One EncodecConv1d / EncodecConvTranspose1d forward: x [B, Cin, T] -> [B, Cout, T'].
gvm_tensor *gvm_nn_encodec_conv_forward(gvm_ctx *ctx, const gvm_nn_encodec_conv *c, const gvm_nn_encodec_cfg *cfg,
                                        gvm_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
