// encodec_seanet.c: EnCodec's SEANet encoder and decoder (see encodec_seanet.h and encodec.h), written to match
// transformers' modeling_encodec.py layer for layer: EncodecConv1d's padding (causal / symmetric, the extra
// right padding that makes the last window full, reflect padding of short inputs), EncodecConvTranspose1d's
// trimming, EncodecResnetBlock, EncodecLSTM and the two stacks.
#include "nn/encodec_seanet.h"

#include "core/device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- padding -----------------------------------------------------------------------------------------------------

// floor(a / b) for b > 0 and any sign of a (C division truncates toward zero).
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int64_t gvm_nn_encodec_extra_padding(int64_t length, int64_t kernel_eff, int64_t stride) {
    // The twin: n_frames = ceil((length - kernel + padding_total) / stride + 1) - 1 in floating point, with
    // padding_total = kernel - stride; ideal = n_frames * stride + kernel - padding_total. Exact integers here:
    // ceil(a / s + 1) = -floor(-(a + s) / s).
    const int64_t padding_total = kernel_eff - stride;
    const int64_t a = length - kernel_eff + padding_total;
    const int64_t n_frames = -floor_div(-(a + stride), stride) - 1;
    const int64_t ideal = n_frames * stride + kernel_eff - padding_total;
    return ideal - length;
}

// Arena i64 [n] on the context's device from host values.
static gvm_tensor *index_tensor(gvm_ctx *ctx, const int64_t *v, int64_t n) {
    gvm_tensor *t = gvm_tensor_empty(ctx, GVM_I64, 1, (int64_t[]){n});
    gvm_device_copy(t->data, t->device, v, GVM_DEVICE_CPU, (size_t)n * sizeof *v);
    return t;
}

gvm_tensor *gvm_nn_encodec_pad1d(gvm_ctx *ctx, gvm_tensor *x, int64_t left, int64_t right, gvm_nn_encodec_pad mode) {
    GVM_CHECK(x->ndim == 3, "encodec pad1d: x must be [B, C, T], got rank %d", x->ndim);
    GVM_CHECK(left >= 0 && right >= 0, "encodec pad1d: negative padding (%lld, %lld)", (long long)left,
              (long long)right);
    if (left == 0 && right == 0) return x;
    const int64_t T = x->shape[2], n = left + T + right;
    // Reflect of a short input: the twin appends `extra` zeros first, reflects the extended signal, and cuts
    // `extra` values from the end; positions T..T+extra-1 of the extended signal read as zeros.
    const int64_t max_pad = left > right ? left : right;
    const int64_t ext = (mode == GVM_NN_ENCODEC_PAD_REFLECT && T <= max_pad) ? T + (max_pad - T + 1) : T;
    int64_t *idx = GVM_MALLOC((size_t)n * sizeof *idx);  // index into [x, 0]: T is the zero column
    bool need_zero = false;
    for (int64_t j = 0; j < n; j++) {
        int64_t p = j - left;
        switch (mode) {
        case GVM_NN_ENCODEC_PAD_REFLECT:
            if (p < 0) p = -p;
            if (p >= ext) p = 2 * (ext - 1) - p;
            break;
        case GVM_NN_ENCODEC_PAD_REPLICATE:
            p = p < 0 ? 0 : p >= T ? T - 1 : p;
            break;
        case GVM_NN_ENCODEC_PAD_CONSTANT:
            break;
        }
        if (p < 0 || p >= T) {
            p = T;
            need_zero = true;
        }
        idx[j] = p;
    }
    gvm_tensor *src = x;
    if (need_zero) {
        gvm_tensor *zero = gvm_tensor_zeros(ctx, x->dtype, 3, (int64_t[]){x->shape[0], x->shape[1], 1});
        gvm_tensor *parts[2] = {x, zero};
        src = gvm_concat(ctx, parts, 2, 2);  // [B, C, T + 1]
    }
    gvm_tensor *out = gvm_index_select(ctx, src, 2, index_tensor(ctx, idx, n));  // [B, C, n]
    free(idx);
    return out;
}

// ---- convolutions ----------------------------------------------------------------------------------------------------

gvm_tensor *gvm_nn_encodec_conv_forward(gvm_ctx *ctx, const gvm_nn_encodec_conv *c, const gvm_nn_encodec_cfg *cfg,
                                        gvm_tensor *x) {
    GVM_CHECK(x->ndim == 3 && x->shape[1] == c->cin, "encodec conv: input must be [B, %lld, T]", (long long)c->cin);
    gvm_tensor *w = gvm_weight_norm(ctx, c->g, c->v);
    if (!c->transposed) {
        const int64_t k_eff = (c->kernel - 1) * c->dilation + 1;
        const int64_t padding_total = k_eff - c->stride;
        const int64_t extra = gvm_nn_encodec_extra_padding(x->shape[2], k_eff, c->stride);
        int64_t left, right;
        if (cfg->use_causal_conv) {
            left = padding_total;
            right = extra;
        } else {  // asymmetric for odd totals: the extra sample goes left
            right = padding_total / 2;
            left = padding_total - right;
            right += extra;
        }
        x = gvm_nn_encodec_pad1d(ctx, x, left, right, cfg->pad_mode);
        const gvm_conv1d_opts o = {.stride = (int)c->stride, .dilation = (int)c->dilation};
        return gvm_conv1d(ctx, x, w, c->bias, &o);  // [B, Cout, ceil(T / stride)]
    }
    const gvm_conv1d_opts o = {.stride = (int)c->stride};
    gvm_tensor *y = gvm_conv_transpose1d(ctx, x, w, c->bias, &o);  // [B, Cout, (T - 1) * stride + K]
    // Only the fixed padding is trimmed; the encoder's extra padding goes when the caller cuts to length.
    const int64_t padding_total = c->kernel - c->stride;
    const int64_t right = cfg->use_causal_conv ? (int64_t)ceil((double)padding_total * cfg->trim_right_ratio)
                                               : padding_total / 2;
    const int64_t left = padding_total - right;
    return gvm_slice(ctx, y, 2, left, y->shape[2] - right);  // [B, Cout, T * stride]
}

static void conv_init(gvm_nn_encodec_conv *c, gvm_param_store *ps, const char *prefix, int64_t cin, int64_t cout,
                      int64_t kernel, int64_t stride, int64_t dilation, bool transposed) {
    char base[GVM_NN_NAME_MAX];
    gvm_nn_name(base, prefix, "conv");
    c->cin = cin;
    c->cout = cout;
    c->kernel = kernel;
    c->stride = stride;
    c->dilation = dilation;
    c->transposed = transposed;
    const int64_t rows = transposed ? cin : cout, cols = transposed ? cout : cin;
    // The twin's state_dict order: bias, then the parametrisation's original0 (g) and original1 (v).
    c->bias = gvm_nn_param(ps, base, "bias", 1, (int64_t[]){cout});
    c->g = gvm_nn_param(ps, base, "parametrizations.weight.original0", 3, (int64_t[]){rows, 1, 1});
    c->v = gvm_nn_param(ps, base, "parametrizations.weight.original1", 3, (int64_t[]){rows, cols, kernel});
}

static void uniform_fill(gvm_tensor *t, gvm_rng *rng, float bound) {
    // Draw on the host (one stream whatever the device), then copy.
    float *h = GVM_MALLOC((size_t)t->numel * sizeof *h);
    gvm_rng_uniform(rng, h, (size_t)t->numel, -bound, bound);
    gvm_device_copy(t->data, t->device, h, GVM_DEVICE_CPU, (size_t)t->numel * sizeof *h);
    free(h);
}

static void conv_reset(gvm_nn_encodec_conv *c, gvm_rng *rng) {
    // torch's _calculate_fan_in_and_fan_out: weight.size(1) * K, for either layout.
    const float bound = 1.0f / sqrtf((float)(c->v->shape[1] * c->kernel));
    uniform_fill(c->v, rng, bound);
    uniform_fill(c->bias, rng, bound);
    // weight_norm starts from g = ||v||, so the first forward sees w = v.
    const int64_t rows = c->v->shape[0], per = c->v->numel / rows;
    float *v = GVM_MALLOC((size_t)c->v->numel * sizeof *v), *g = GVM_MALLOC((size_t)rows * sizeof *g);
    gvm_device_copy(v, GVM_DEVICE_CPU, c->v->data, c->v->device, (size_t)c->v->numel * sizeof *v);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t i = 0; i < per; i++) s += (double)v[r * per + i] * v[r * per + i];
        g[r] = (float)sqrt(s);
    }
    gvm_device_copy(c->g->data, c->g->device, g, GVM_DEVICE_CPU, (size_t)rows * sizeof *g);
    free(v);
    free(g);
}

// ---- residual block and LSTM ------------------------------------------------------------------------------------------

static void resblock_init(gvm_nn_encodec_resblock *r, gvm_param_store *ps, const char *prefix,
                          const gvm_nn_encodec_cfg *cfg, int64_t dim, int64_t dilation) {
    char name[GVM_NN_NAME_MAX];
    const int64_t hidden = dim / cfg->compress;
    // block.0 and block.2 are the ELUs
    conv_init(&r->block1, ps, gvm_nn_name(name, prefix, "block.1"), dim, hidden, cfg->residual_kernel_size, 1,
              dilation, false);
    conv_init(&r->block3, ps, gvm_nn_name(name, prefix, "block.3"), hidden, dim, 1, 1, 1, false);
    r->has_shortcut = cfg->use_conv_shortcut;
    if (r->has_shortcut) conv_init(&r->shortcut, ps, gvm_nn_name(name, prefix, "shortcut"), dim, dim, 1, 1, 1, false);
}

static gvm_tensor *resblock_forward(gvm_ctx *ctx, const gvm_nn_encodec_resblock *r, const gvm_nn_encodec_cfg *cfg,
                                    gvm_tensor *x) {
    gvm_tensor *h = gvm_nn_encodec_conv_forward(ctx, &r->block1, cfg, gvm_elu(ctx, x, 1.0f));
    h = gvm_nn_encodec_conv_forward(ctx, &r->block3, cfg, gvm_elu(ctx, h, 1.0f));
    gvm_tensor *skip = r->has_shortcut ? gvm_nn_encodec_conv_forward(ctx, &r->shortcut, cfg, x) : x;
    return gvm_add(ctx, skip, h);  // [B, dim, T]
}

static void lstm_init(gvm_nn_encodec_lstm *l, gvm_param_store *ps, const char *prefix, int64_t dim, int n_layers) {
    char base[GVM_NN_NAME_MAX], name[64];
    gvm_nn_name(base, prefix, "lstm");
    l->dim = dim;
    l->n_layers = n_layers;
    for (int k = 0; k < n_layers; k++) {
        snprintf(name, sizeof name, "weight_ih_l%d", k);
        l->w_ih[k] = gvm_nn_param(ps, base, name, 2, (int64_t[]){4 * dim, dim});
        snprintf(name, sizeof name, "weight_hh_l%d", k);
        l->w_hh[k] = gvm_nn_param(ps, base, name, 2, (int64_t[]){4 * dim, dim});
        snprintf(name, sizeof name, "bias_ih_l%d", k);
        l->b_ih[k] = gvm_nn_param(ps, base, name, 1, (int64_t[]){4 * dim});
        snprintf(name, sizeof name, "bias_hh_l%d", k);
        l->b_hh[k] = gvm_nn_param(ps, base, name, 1, (int64_t[]){4 * dim});
    }
}

static gvm_tensor *lstm_forward(gvm_ctx *ctx, const gvm_nn_encodec_lstm *l, gvm_tensor *x) {
    gvm_tensor *xt = gvm_transpose(ctx, x, 1, 2);  // [B, T, C]: gvm_lstm is batch-first, the twin time-first
    gvm_tensor *h = xt;
    for (int k = 0; k < l->n_layers; k++) h = gvm_lstm(ctx, h, l->w_ih[k], l->w_hh[k], l->b_ih[k], l->b_hh[k]);
    return gvm_transpose(ctx, gvm_add(ctx, h, xt), 1, 2);  // [B, C, T]
}

// ---- the stacks -----------------------------------------------------------------------------------------------------------

static gvm_nn_encodec_layer *push(gvm_nn_encodec_seanet *s, int cap, gvm_nn_encodec_layer_kind kind) {
    GVM_CHECK(s->n_layers < cap, "encodec: layer count overflow");
    gvm_nn_encodec_layer *L = &s->layers[s->n_layers++];
    L->kind = kind;
    return L;
}

void gvm_nn_encodec_seanet_init(gvm_nn_encodec_seanet *s, gvm_param_store *ps, const char *prefix,
                                const gvm_nn_encodec_cfg *cfg, bool decoder) {
    const int R = cfg->n_ratios;
    const int cap = (int)(4 + R * (2 + cfg->num_residual_layers));
    memset(s, 0, sizeof *s);
    s->layers = GVM_CALLOC((size_t)cap, sizeof *s->layers);
    char lp[GVM_NN_NAME_MAX], sub[32];
    const int64_t nf = cfg->num_filters;
    const int nl = (int)cfg->num_lstm_layers;
#define LAYER_PREFIX() (snprintf(sub, sizeof sub, "layers.%d", s->n_layers), gvm_nn_name(lp, prefix, sub))
    if (!decoder) {
        LAYER_PREFIX();
        conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV)->conv, ps, lp, cfg->audio_channels, nf, cfg->kernel_size,
                  1, 1, false);
        int64_t scaling = 1;
        for (int r = R - 1; r >= 0; r--) {  // downsampling: the ratios reversed
            const int64_t dim = scaling * nf, ratio = cfg->upsampling_ratios[r];
            int64_t dil = 1;
            for (int64_t j = 0; j < cfg->num_residual_layers; j++, dil *= cfg->dilation_growth_rate) {
                LAYER_PREFIX();
                resblock_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_RESBLOCK)->resblock, ps, lp, cfg, dim, dil);
            }
            push(s, cap, GVM_NN_ENCODEC_LAYER_ELU);
            LAYER_PREFIX();
            conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV)->conv, ps, lp, dim, 2 * dim, 2 * ratio, ratio, 1, false);
            scaling *= 2;
        }
        LAYER_PREFIX();
        lstm_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_LSTM)->lstm, ps, lp, scaling * nf, nl);
        push(s, cap, GVM_NN_ENCODEC_LAYER_ELU);
        LAYER_PREFIX();
        conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV)->conv, ps, lp, scaling * nf, cfg->hidden_size,
                  cfg->last_kernel_size, 1, 1, false);
    } else {
        int64_t scaling = (int64_t)1 << R;
        LAYER_PREFIX();
        conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV)->conv, ps, lp, cfg->hidden_size, scaling * nf,
                  cfg->kernel_size, 1, 1, false);
        LAYER_PREFIX();
        lstm_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_LSTM)->lstm, ps, lp, scaling * nf, nl);
        for (int r = 0; r < R; r++) {
            const int64_t dim = scaling * nf, ratio = cfg->upsampling_ratios[r];
            push(s, cap, GVM_NN_ENCODEC_LAYER_ELU);
            LAYER_PREFIX();
            conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV_TRANSPOSE)->conv, ps, lp, dim, dim / 2, 2 * ratio, ratio,
                      1, true);
            int64_t dil = 1;
            for (int64_t j = 0; j < cfg->num_residual_layers; j++, dil *= cfg->dilation_growth_rate) {
                LAYER_PREFIX();
                resblock_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_RESBLOCK)->resblock, ps, lp, cfg, dim / 2, dil);
            }
            scaling /= 2;
        }
        push(s, cap, GVM_NN_ENCODEC_LAYER_ELU);
        LAYER_PREFIX();
        conv_init(&push(s, cap, GVM_NN_ENCODEC_LAYER_CONV)->conv, ps, lp, nf, cfg->audio_channels,
                  cfg->last_kernel_size, 1, 1, false);
    }
#undef LAYER_PREFIX
}

void gvm_nn_encodec_seanet_reset_parameters(gvm_nn_encodec_seanet *s, gvm_rng *rng) {
    for (int i = 0; i < s->n_layers; i++) {
        gvm_nn_encodec_layer *L = &s->layers[i];
        switch (L->kind) {
        case GVM_NN_ENCODEC_LAYER_CONV:
        case GVM_NN_ENCODEC_LAYER_CONV_TRANSPOSE:
            conv_reset(&L->conv, rng);
            break;
        case GVM_NN_ENCODEC_LAYER_RESBLOCK:
            conv_reset(&L->resblock.block1, rng);
            conv_reset(&L->resblock.block3, rng);
            if (L->resblock.has_shortcut) conv_reset(&L->resblock.shortcut, rng);
            break;
        case GVM_NN_ENCODEC_LAYER_LSTM: {
            const float b = 1.0f / sqrtf((float)L->lstm.dim);  // nn.LSTM.reset_parameters
            for (int k = 0; k < L->lstm.n_layers; k++) {
                uniform_fill(L->lstm.w_ih[k], rng, b);
                uniform_fill(L->lstm.w_hh[k], rng, b);
                uniform_fill(L->lstm.b_ih[k], rng, b);
                uniform_fill(L->lstm.b_hh[k], rng, b);
            }
            break;
        }
        case GVM_NN_ENCODEC_LAYER_ELU:
            break;
        }
    }
}

void gvm_nn_encodec_seanet_free(gvm_nn_encodec_seanet *s) {
    free(s->layers);
    s->layers = NULL;
    s->n_layers = 0;
}

// Without a tape (encoding, decoding, evaluation) no intermediate is needed later: a layer's output is moved
// to a scratch buffer, everything allocated since `mark` is released, and the output comes back as a new arena
// tensor. The stack then needs one layer's activations at a time (the 32 kHz model on 10 s: ~3 GB -> a few
// hundred MB) instead of all of them.
static gvm_tensor *release_since(gvm_ctx *ctx, gvm_tensor *x, gvm_arena_mark host_mark, gvm_arena_mark data_mark) {
    const size_t bytes = gvm_tensor_nbytes(x);
    void *tmp = gvm_device_alloc(x->device, bytes);
    gvm_device_copy(tmp, x->device, x->data, x->device, bytes);
    const int ndim = x->ndim;
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    const gvm_dtype dtype = x->dtype;
    gvm_arena *data = gvm_ctx_data_arena(ctx);
    gvm_arena_rewind(data, data_mark);
    if (data != &ctx->arena) gvm_arena_rewind(&ctx->arena, host_mark);
    gvm_tensor *y = gvm_tensor_empty(ctx, dtype, ndim, shape);
    gvm_device_copy(y->data, y->device, tmp, y->device, bytes);
    gvm_device_free(y->device, tmp);
    return y;
}

gvm_tensor *gvm_nn_encodec_seanet_forward(gvm_ctx *ctx, const gvm_nn_encodec_seanet *s,
                                          const gvm_nn_encodec_cfg *cfg, gvm_tensor *x) {
    const bool transient = !gvm_grad_enabled(ctx);
    gvm_arena *data = gvm_ctx_data_arena(ctx);
    const gvm_arena_mark host_mark = gvm_arena_save(&ctx->arena), data_mark = gvm_arena_save(data);
    for (int i = 0; i < s->n_layers; i++) {
        const gvm_nn_encodec_layer *L = &s->layers[i];
        switch (L->kind) {
        case GVM_NN_ENCODEC_LAYER_CONV:
        case GVM_NN_ENCODEC_LAYER_CONV_TRANSPOSE:
            x = gvm_nn_encodec_conv_forward(ctx, &L->conv, cfg, x);
            break;
        case GVM_NN_ENCODEC_LAYER_RESBLOCK:
            x = resblock_forward(ctx, &L->resblock, cfg, x);
            break;
        case GVM_NN_ENCODEC_LAYER_LSTM:
            x = lstm_forward(ctx, &L->lstm, x);
            break;
        case GVM_NN_ENCODEC_LAYER_ELU:
            x = gvm_elu(ctx, x, 1.0f);
            break;
        }
        if (transient) x = release_since(ctx, x, host_mark, data_mark);
    }
    return x;
}
