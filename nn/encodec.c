// encodec.c: the EnCodec model (see encodec.h): configs and their checks, registration in the twin's
// state_dict order, initialisation, encode/decode and the straight-through training forward. The SEANet stacks
// are in encodec_seanet.c, the nearest-codeword search and the EMA codebook update in encodec_quantizer.c.
#include "nn/encodec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/encodec_seanet.h"

gvm_nn_encodec_cfg gvm_nn_encodec_cfg_32khz(void) {
    return (gvm_nn_encodec_cfg){.sampling_rate = 32000, .audio_channels = 1, .num_filters = 64,
                                .num_residual_layers = 1, .upsampling_ratios = {8, 5, 4, 4}, .n_ratios = 4,
                                .norm_type = GVM_NN_ENCODEC_NORM_WEIGHT, .kernel_size = 7, .last_kernel_size = 7,
                                .residual_kernel_size = 3, .dilation_growth_rate = 2, .use_causal_conv = false,
                                .pad_mode = GVM_NN_ENCODEC_PAD_REFLECT, .compress = 2, .num_lstm_layers = 2,
                                .trim_right_ratio = 1.0f, .use_conv_shortcut = false, .hidden_size = 128,
                                .codebook_size = 2048, .codebook_dim = 128, .num_quantizers = 4,
                                .normalize = false};
}

gvm_nn_encodec_cfg gvm_nn_encodec_cfg_tiny(void) {
    return (gvm_nn_encodec_cfg){.sampling_rate = 8000, .audio_channels = 1, .num_filters = 4,
                                .num_residual_layers = 1, .upsampling_ratios = {4, 2}, .n_ratios = 2,
                                .norm_type = GVM_NN_ENCODEC_NORM_WEIGHT, .kernel_size = 7, .last_kernel_size = 7,
                                .residual_kernel_size = 3, .dilation_growth_rate = 2, .use_causal_conv = false,
                                .pad_mode = GVM_NN_ENCODEC_PAD_REFLECT, .compress = 2, .num_lstm_layers = 2,
                                .trim_right_ratio = 1.0f, .use_conv_shortcut = true, .hidden_size = 8,
                                .codebook_size = 16, .codebook_dim = 8, .num_quantizers = 2, .normalize = false};
}

#define BAD(...) gvm_error_set(GVM_ERR_INVALID, "encodec config: " __VA_ARGS__)

gvm_status gvm_nn_encodec_cfg_check(const gvm_nn_encodec_cfg *c) {
    if (c->n_ratios < 1 || c->n_ratios > GVM_NN_ENCODEC_MAX_RATIOS)
        return BAD("upsampling_ratios has %d entries; give 1 to %d (e.g. [8, 5, 4, 4] for the 32 kHz model)",
                   c->n_ratios, GVM_NN_ENCODEC_MAX_RATIOS);
    for (int i = 0; i < c->n_ratios; i++)
        if (c->upsampling_ratios[i] < 1)
            return BAD("upsampling_ratios[%d] = %lld; every ratio must be >= 1", i, (long long)c->upsampling_ratios[i]);
    if (c->norm_type == GVM_NN_ENCODEC_NORM_TIME_GROUP)
        return BAD("norm_type time_group_norm (the 48 kHz model's) is not supported; only weight_norm is");
    if (c->norm_type != GVM_NN_ENCODEC_NORM_WEIGHT) return BAD("norm_type %d is unknown; use weight_norm", c->norm_type);
    if (c->pad_mode < GVM_NN_ENCODEC_PAD_REFLECT || c->pad_mode > GVM_NN_ENCODEC_PAD_REPLICATE)
        return BAD("pad_mode %d is unknown; use reflect, constant or replicate", c->pad_mode);
    if (c->normalize) return BAD("normalize = true (input RMS scaling, the 48 kHz model's) is not supported");
    if (c->audio_channels < 1 || c->audio_channels > 2)
        return BAD("audio_channels = %lld; EnCodec takes 1 or 2", (long long)c->audio_channels);
    if (c->sampling_rate < 1) return BAD("sampling_rate = %lld; must be > 0", (long long)c->sampling_rate);
    if (c->num_filters < 1 || c->hidden_size < 1)
        return BAD("num_filters = %lld, hidden_size = %lld; both must be >= 1", (long long)c->num_filters,
                   (long long)c->hidden_size);
    if (c->num_residual_layers < 0) return BAD("num_residual_layers = %lld; must be >= 0", (long long)c->num_residual_layers);
    if (c->kernel_size < 1 || c->last_kernel_size < 1 || c->residual_kernel_size < 1)
        return BAD("kernel sizes must be >= 1 (kernel_size %lld, last_kernel_size %lld, residual_kernel_size %lld)",
                   (long long)c->kernel_size, (long long)c->last_kernel_size, (long long)c->residual_kernel_size);
    if (c->dilation_growth_rate < 1) return BAD("dilation_growth_rate = %lld; must be >= 1", (long long)c->dilation_growth_rate);
    if (c->compress < 1 || c->num_filters / c->compress < 1)
        return BAD("compress = %lld leaves no residual width for num_filters %lld", (long long)c->compress,
                   (long long)c->num_filters);
    if (c->num_lstm_layers < 1 || c->num_lstm_layers > GVM_NN_ENCODEC_MAX_LSTM)
        return BAD("num_lstm_layers = %lld; give 1 to %d", (long long)c->num_lstm_layers, GVM_NN_ENCODEC_MAX_LSTM);
    if (!(c->trim_right_ratio >= 0.0f && c->trim_right_ratio <= 1.0f))
        return BAD("trim_right_ratio = %g; must be in [0, 1]", c->trim_right_ratio);
    if (!c->use_causal_conv && c->trim_right_ratio != 1.0f)
        return BAD("trim_right_ratio = %g only makes sense with use_causal_conv (set it to 1.0)", c->trim_right_ratio);
    if (c->codebook_size < 2 || (c->codebook_size & (c->codebook_size - 1)) != 0)
        return BAD("codebook_size = %lld; must be a power of 2 (as EncodecModel requires)", (long long)c->codebook_size);
    if (c->codebook_dim != 0 && c->codebook_dim != c->hidden_size)
        return BAD("codebook_dim = %lld but hidden_size = %lld; EnCodec quantises the latent directly, so they must "
                   "be equal (or leave codebook_dim 0)", (long long)c->codebook_dim, (long long)c->hidden_size);
    if (c->num_quantizers < 1 || c->num_quantizers > GVM_NN_ENCODEC_MAX_CODEBOOKS)
        return BAD("num_quantizers = %lld; give 1 to %d", (long long)c->num_quantizers, GVM_NN_ENCODEC_MAX_CODEBOOKS);
    int64_t hop = 1;
    for (int i = 0; i < c->n_ratios; i++) hop *= c->upsampling_ratios[i];
    if (hop > ((int64_t)1 << 30)) return BAD("prod(upsampling_ratios) = %lld is too large", (long long)hop);
    return GVM_OK;
}

int64_t gvm_nn_encodec_hop_length(const gvm_nn_encodec_cfg *cfg) {
    int64_t hop = 1;
    for (int i = 0; i < cfg->n_ratios; i++) hop *= cfg->upsampling_ratios[i];
    return hop;
}

double gvm_nn_encodec_frame_rate(const gvm_nn_encodec_cfg *cfg) {
    return (double)cfg->sampling_rate / (double)gvm_nn_encodec_hop_length(cfg);
}

int64_t gvm_nn_encodec_num_frames(const gvm_nn_encodec_cfg *cfg, int64_t samples) {
    const int64_t hop = gvm_nn_encodec_hop_length(cfg);
    return (samples + hop - 1) / hop;
}

// ---- registration and initialisation --------------------------------------------------------------------------------

static gvm_tensor *buffer(gvm_param_store *ps, const char *prefix, const char *name, int ndim, const int64_t *shape) {
    gvm_tensor *t = gvm_nn_param(ps, prefix, name, ndim, shape);
    t->requires_grad = false;  // a PyTorch buffer: stored and loaded by name, never given a gradient
    return t;
}

gvm_status gvm_nn_encodec_init(gvm_nn_encodec *m, gvm_param_store *ps, const gvm_nn_encodec_cfg *cfg) {
    memset(m, 0, sizeof *m);
    gvm_status st = gvm_nn_encodec_cfg_check(cfg);
    if (st != GVM_OK) return st;
    m->cfg = *cfg;
    m->cfg.codebook_dim = cfg->hidden_size;
    gvm_nn_encodec_seanet_init(&m->encoder, ps, "encoder", &m->cfg, false);
    gvm_nn_encodec_seanet_init(&m->decoder, ps, "decoder", &m->cfg, true);
    char prefix[GVM_NN_NAME_MAX];
    const int64_t N = cfg->codebook_size, D = cfg->hidden_size;
    for (int64_t k = 0; k < cfg->num_quantizers; k++) {
        snprintf(prefix, sizeof prefix, "quantizer.layers.%lld.codebook", (long long)k);
        gvm_nn_encodec_codebook *cb = &m->codebooks[k];
        cb->inited = buffer(ps, prefix, "inited", 1, (int64_t[]){1});
        cb->cluster_size = buffer(ps, prefix, "cluster_size", 1, (int64_t[]){N});
        cb->embed = buffer(ps, prefix, "embed", 2, (int64_t[]){N, D});
        cb->embed_avg = buffer(ps, prefix, "embed_avg", 2, (int64_t[]){N, D});
    }
    return GVM_OK;
}

void gvm_nn_encodec_reset_parameters(gvm_nn_encodec *m, gvm_rng *rng) {
    gvm_nn_encodec_seanet_reset_parameters(&m->encoder, rng);
    gvm_nn_encodec_seanet_reset_parameters(&m->decoder, rng);
    const float bound = sqrtf(6.0f / (float)m->cfg.hidden_size);  // kaiming_uniform_ of [N, D]: fan_in = D
    for (int64_t k = 0; k < m->cfg.num_quantizers; k++) {
        gvm_nn_encodec_codebook *cb = &m->codebooks[k];
        const size_t n = (size_t)cb->embed->numel;
        float *h = GVM_MALLOC(n * sizeof *h);
        gvm_rng_uniform(rng, h, n, -bound, bound);
        gvm_device_copy(cb->embed->data, cb->embed->device, h, GVM_DEVICE_CPU, n * sizeof *h);
        gvm_device_copy(cb->embed_avg->data, cb->embed_avg->device, h, GVM_DEVICE_CPU, n * sizeof *h);
        free(h);
        gvm_tensor_fill(cb->cluster_size, 0.0f);
        gvm_tensor_fill(cb->inited, 1.0f);
    }
}

void gvm_nn_encodec_free(gvm_nn_encodec *m) {
    gvm_nn_encodec_seanet_free(&m->encoder);
    gvm_nn_encodec_seanet_free(&m->decoder);
}

// ---- inference ---------------------------------------------------------------------------------------------------------

gvm_tensor *gvm_nn_encodec_encode_latent(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave) {
    GVM_CHECK(wave->ndim == 3 && wave->shape[1] == m->cfg.audio_channels && wave->shape[2] >= 1,
              "encodec encode: wave must be [B, %lld, T >= 1]", (long long)m->cfg.audio_channels);
    return gvm_nn_encodec_seanet_forward(ctx, &m->encoder, &m->cfg, wave);  // [B, D, F]
}

gvm_tensor *gvm_nn_encodec_decode_latent(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *latent) {
    GVM_CHECK(latent->ndim == 3 && latent->shape[1] == m->cfg.hidden_size,
              "encodec decode: latent must be [B, %lld, F]", (long long)m->cfg.hidden_size);
    return gvm_nn_encodec_seanet_forward(ctx, &m->decoder, &m->cfg, latent);  // [B, C, F * hop]
}

// Codebook k's codewords for codes[:, k, :]: codes [B, nq, F] -> [B, D, F] (no gradient: the codebooks are
// buffers).
static gvm_tensor *stage_codewords(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *codes, int64_t k) {
    const int64_t B = codes->shape[0], F = codes->shape[2];
    gvm_tensor *ck = gvm_reshape(ctx, gvm_slice(ctx, codes, 1, k, k + 1), 2, (int64_t[]){B, F});  // [B, F]
    gvm_tensor *e = gvm_embedding(ctx, m->codebooks[k].embed, ck);                                // [B, F, D]
    return gvm_transpose(ctx, e, 1, 2);                                                           // [B, D, F]
}

gvm_tensor *gvm_nn_encodec_dequantize(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *codes) {
    GVM_CHECK(codes->ndim == 3 && codes->shape[1] >= 1 && codes->shape[1] <= m->cfg.num_quantizers,
              "encodec dequantize: codes must be [B, nq, F] with 1 <= nq <= %lld", (long long)m->cfg.num_quantizers);
    GVM_CHECK(codes->dtype == GVM_I32 || codes->dtype == GVM_I64, "encodec dequantize: codes must be i32/i64");
    gvm_tensor *sum = NULL;
    for (int64_t k = 0; k < codes->shape[1]; k++) {
        gvm_tensor *q = stage_codewords(ctx, m, codes, k);
        sum = sum ? gvm_add(ctx, sum, q) : q;
    }
    return sum;  // [B, D, F]
}

gvm_tensor *gvm_nn_encodec_encode(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave, int nq) {
    gvm_no_grad_begin(ctx);
    gvm_tensor *codes = gvm_nn_encodec_quantize(ctx, m, gvm_nn_encodec_encode_latent(ctx, m, wave), nq);
    gvm_no_grad_end(ctx);
    return codes;  // [B, nq, F]
}

gvm_tensor *gvm_nn_encodec_decode(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *codes, int64_t length) {
    gvm_tensor *wave = gvm_nn_encodec_decode_latent(ctx, m, gvm_nn_encodec_dequantize(ctx, m, codes));
    if (length > 0 && length < wave->shape[2]) wave = gvm_slice(ctx, wave, 2, 0, length);
    return wave;  // [B, C, min(length, F * hop)]
}

// ---- training -------------------------------------------------------------------------------------------------------------

void gvm_nn_encodec_forward_train(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave, int nq,
                                  gvm_nn_encodec_train_out *out) {
    GVM_CHECK(nq >= 1 && nq <= m->cfg.num_quantizers, "encodec train: nq = %d, must be 1..%lld", nq,
              (long long)m->cfg.num_quantizers);
    const int64_t T = wave->shape[2];
    gvm_tensor *z = gvm_nn_encodec_encode_latent(ctx, m, wave);  // [B, D, F]
    gvm_no_grad_begin(ctx);
    gvm_tensor *codes = gvm_nn_encodec_quantize(ctx, m, z, nq);  // [B, nq, F]
    gvm_no_grad_end(ctx);
    // r_k keeps the identity path to z (only sg(Q) is subtracted), so every stage's commitment term reaches
    // the encoder, as in audiocraft after the encodec#25 fix.
    gvm_tensor *r = z, *qsum = NULL, *commit = NULL;
    for (int64_t k = 0; k < nq; k++) {
        gvm_tensor *q = stage_codewords(ctx, m, codes, k);  // [B, D, F], constant
        gvm_tensor *c = gvm_mse_loss(ctx, r, q);
        commit = commit ? gvm_add(ctx, commit, c) : c;
        r = gvm_sub(ctx, r, q);
        qsum = qsum ? gvm_add(ctx, qsum, q) : q;
    }
    commit = gvm_mul_scalar(ctx, commit, 1.0f / (float)nq);
    // quantized = z + sg(qsum - z): the subtraction runs without recording, which is the stop-gradient
    gvm_no_grad_begin(ctx);
    gvm_tensor *delta = gvm_sub(ctx, qsum, z);
    gvm_no_grad_end(ctx);
    gvm_tensor *quantized = gvm_add(ctx, z, delta);
    gvm_tensor *recon = gvm_nn_encodec_decode_latent(ctx, m, quantized);  // [B, C, F * hop]
    if (recon->shape[2] > T) recon = gvm_slice(ctx, recon, 2, 0, T);
    out->recon = recon;
    out->commit = commit;
    out->codes = codes;
    out->latent = z;
}
