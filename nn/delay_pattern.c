// delay_pattern.c: MusicGen's delay interleaving of codebooks (see delay_pattern.h). Integer index work on
// the host; inputs on another device are copied over and results copied back (a few KB per batch).
#include "nn/delay_pattern.h"

#include <stdlib.h>

// Host int64 copy of an integer tensor [numel] (any device, i32 or i64).
static int64_t *host_codes(const gvm_tensor *t) {
    GVM_CHECK(t->dtype == GVM_I32 || t->dtype == GVM_I64, "delay pattern: codes must be i32 or i64, got %s",
              gvm_dtype_name(t->dtype));
    int64_t *out = malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof *out);
    GVM_CHECK(out != NULL, "delay pattern: out of memory");
    gvm_tensor *h = t->device == GVM_DEVICE_CPU ? NULL : gvm_tensor_to(t, GVM_DEVICE_CPU);
    const gvm_tensor *src = h ? h : t;
    if (src->dtype == GVM_I64)
        for (int64_t i = 0; i < src->numel; i++) out[i] = gvm_tensor_i64(src)[i];
    else
        for (int64_t i = 0; i < src->numel; i++) out[i] = gvm_tensor_i32(src)[i];
    gvm_tensor_free(h);
    return out;
}

// An arena tensor on the context's device holding `v` [numel of shape] converted to `dtype`.
static gvm_tensor *upload(gvm_ctx *ctx, const int64_t *v, gvm_dtype dtype, int ndim, const int64_t *shape) {
    gvm_tensor *h = gvm_tensor_new(dtype, ndim, shape);
    if (dtype == GVM_I64)
        for (int64_t i = 0; i < h->numel; i++) gvm_tensor_i64(h)[i] = v[i];
    else if (dtype == GVM_I32)
        for (int64_t i = 0; i < h->numel; i++) gvm_tensor_i32(h)[i] = (int32_t)v[i];
    else
        for (int64_t i = 0; i < h->numel; i++) gvm_tensor_u8(h)[i] = (uint8_t)v[i];
    gvm_tensor *out = gvm_tensor_empty(ctx, dtype, ndim, shape);
    gvm_tensor_copy(out, h);
    gvm_tensor_free(h);
    return out;
}

static int64_t *alloc_i64(int64_t n) {
    int64_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    GVM_CHECK(p != NULL, "delay pattern: out of memory");
    return p;
}

// seq [B, K, S] from host codes [B, K, T]; frames t >= len[b] count as absent.
static void build_host(const int64_t *codes, int64_t B, int64_t K, int64_t T, const int64_t *lengths,
                       int64_t special, int64_t *seq) {
    const int64_t S = gvm_delay_pattern_steps(T, K);
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lengths ? lengths[b] : T;
        for (int64_t k = 0; k < K; k++) {
            const int64_t *c = codes + (b * K + k) * T;
            int64_t *o = seq + (b * K + k) * S;
            for (int64_t s = 0; s < S; s++) o[s] = gvm_delay_pattern_is_valid(s, k, len) ? c[s - k] : special;
        }
    }
}

gvm_tensor *gvm_delay_pattern_build(gvm_ctx *ctx, const gvm_tensor *codes, int64_t special) {
    GVM_CHECK(codes->ndim == 3, "delay pattern: codes must be [B, K, T]");
    const int64_t B = codes->shape[0], K = codes->shape[1], T = codes->shape[2], S = gvm_delay_pattern_steps(T, K);
    int64_t *c = host_codes(codes), *seq = alloc_i64(B * K * S);
    build_host(c, B, K, T, NULL, special, seq);
    gvm_tensor *out = upload(ctx, seq, codes->dtype, 3, (int64_t[]){B, K, S});  // [B, K, S]
    free(c);
    free(seq);
    return out;
}

gvm_tensor *gvm_delay_pattern_revert(gvm_ctx *ctx, const gvm_tensor *seq, int64_t frames, int64_t special,
                                     gvm_tensor **valid) {
    GVM_CHECK(seq->ndim == 3 && frames >= 0, "delay pattern revert: seq must be [B, K, S] and frames >= 0");
    const int64_t B = seq->shape[0], K = seq->shape[1], S = seq->shape[2], T = frames;
    int64_t *s = host_codes(seq), *codes = alloc_i64(B * K * T), *mask = alloc_i64(K * T);
    for (int64_t k = 0; k < K; k++)
        for (int64_t t = 0; t < T; t++) mask[k * T + t] = t + k < S;
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < T; t++)
                codes[(b * K + k) * T + t] = mask[k * T + t] ? s[(b * K + k) * S + t + k] : special;
    gvm_tensor *out = upload(ctx, codes, seq->dtype, 3, (int64_t[]){B, K, T});  // [B, K, T]
    if (valid) *valid = upload(ctx, mask, GVM_U8, 2, (int64_t[]){K, T});       // [K, T]
    free(s);
    free(codes);
    free(mask);
    return out;
}

void gvm_delay_pattern_lm_batch(gvm_ctx *ctx, const gvm_tensor *codes, const int64_t *lengths, int64_t special,
                                int64_t ignore_index, gvm_tensor **inputs, gvm_tensor **targets) {
    GVM_CHECK(codes->ndim == 3, "delay pattern: codes must be [B, K, T]");
    const int64_t B = codes->shape[0], K = codes->shape[1], T = codes->shape[2], S = gvm_delay_pattern_steps(T, K);
    if (lengths)
        for (int64_t b = 0; b < B; b++)
            GVM_CHECK(lengths[b] >= 0 && lengths[b] <= T, "delay pattern: length %lld of sample %lld not in [0, %lld]",
                      (long long)lengths[b], (long long)b, (long long)T);
    int64_t *c = host_codes(codes), *seq = alloc_i64(B * K * S), *in = alloc_i64(B * K * S);
    build_host(c, B, K, T, lengths, special, seq);
    for (int64_t r = 0; r < B * K; r++) {  // one (sample, codebook) row at a time
        const int64_t b = r / K, k = r % K, len = lengths ? lengths[b] : T;
        int64_t *row = seq + r * S, *irow = in + r * S;
        for (int64_t s = 0; s < S; s++) irow[s] = s == 0 ? special : row[s - 1];
        // targets in place: the special steps become ignore_index (a real code equal to `special` cannot
        // occur: codes are 0..card-1 and special = card, so the validity test is by position)
        for (int64_t s = 0; s < S; s++)
            if (!gvm_delay_pattern_is_valid(s, k, len)) row[s] = ignore_index;
    }
    *inputs = upload(ctx, in, codes->dtype, 3, (int64_t[]){B, K, S});    // [B, K, S]
    *targets = upload(ctx, seq, codes->dtype, 3, (int64_t[]){B, K, S});  // [B, K, S]
    free(c);
    free(seq);
    free(in);
}
