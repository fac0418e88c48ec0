// encodec_quantizer.c: EnCodec's residual vector quantiser (see encodec.h): the nearest-codeword search
// (EncodecResidualVectorQuantizer.encode) and the EMA codebook update with dead-code restarts of audiocraft's
// EuclideanCodebook, host-side.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/encodec.h"

// A host copy of t's values (f32 or integer, any device); free with gvm_tensor_free.
static gvm_tensor *host_copy(const gvm_tensor *t) { return gvm_tensor_to(t, GVM_DEVICE_CPU); }

gvm_tensor *gvm_nn_encodec_quantize(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *latent, int nq) {
    const int64_t D = m->cfg.hidden_size, N = m->cfg.codebook_size;
    GVM_CHECK(latent->ndim == 3 && latent->shape[1] == D && latent->dtype == GVM_F32,
              "encodec quantize: latent must be f32 [B, %lld, F]", (long long)D);
    GVM_CHECK(nq >= 1 && nq <= m->cfg.num_quantizers, "encodec quantize: nq = %d, must be 1..%lld", nq,
              (long long)m->cfg.num_quantizers);
    const int64_t B = latent->shape[0], F = latent->shape[2], R = B * F;
    gvm_tensor *lh = host_copy(latent);
    const float *lv = gvm_tensor_f32(lh);
    // residuals [R, D], row b * F + f
    float *res = GVM_MALLOC((size_t)(R * D) * sizeof *res);
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t f = 0; f < F; f++) res[(b * F + f) * D + d] = lv[(b * D + d) * F + f];
    gvm_tensor_free(lh);
    int64_t *codes = GVM_MALLOC((size_t)(B * nq * F) * sizeof *codes);  // [B, nq, F]
    double *e2 = GVM_MALLOC((size_t)N * sizeof *e2);
    gvm_no_grad_begin(ctx);
    for (int k = 0; k < nq; k++) {
        gvm_tensor *eh = host_copy(m->codebooks[k].embed);
        const float *ev = gvm_tensor_f32(eh);  // [N, D]
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++) s += (double)ev[n * D + d] * ev[n * D + d];
            e2[n] = s;
        }
        // The cross terms r . e for all rows at once (a GEMM); ||r||^2 is the same for every code of a row.
        // rewound after each stage: the [R, N] scores are large for long batches and needed only here
        const gvm_arena_mark mark = gvm_arena_save(&ctx->arena), dmark = gvm_arena_save(&ctx->device_arena);
        gvm_tensor *rt = gvm_tensor_from_f32(ctx, res, 2, (int64_t[]){R, D});
        gvm_tensor *dots = gvm_matmul(ctx, rt, m->codebooks[k].embed, false, true);  // [R, N]
        gvm_tensor *dh = host_copy(dots);
        const float *dv = gvm_tensor_f32(dh);
        for (int64_t i = 0; i < R; i++) {
            int64_t best = 0;
            double best_d = e2[0] - 2.0 * dv[i * N];
            for (int64_t n = 1; n < N; n++) {
                const double dist = e2[n] - 2.0 * dv[i * N + n];
                if (dist < best_d) {  // strict: ties keep the lowest index
                    best_d = dist;
                    best = n;
                }
            }
            codes[((i / F) * nq + k) * F + i % F] = best;
            for (int64_t d = 0; d < D; d++) res[i * D + d] -= ev[best * D + d];
        }
        gvm_tensor_free(dh);
        gvm_tensor_free(eh);
        gvm_arena_rewind(&ctx->device_arena, dmark);
        gvm_arena_rewind(&ctx->arena, mark);
    }
    gvm_no_grad_end(ctx);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_I64, 3, (int64_t[]){B, nq, F});
    gvm_device_copy(out->data, out->device, codes, GVM_DEVICE_CPU, (size_t)(B * nq * F) * sizeof *codes);
    free(codes);
    free(e2);
    free(res);
    return out;  // [B, nq, F]
}

int64_t gvm_nn_encodec_rvq_ema_update(gvm_nn_encodec *m, const gvm_tensor *latent, const gvm_tensor *codes,
                                      const gvm_nn_encodec_ema_opts *opts, gvm_rng *rng, bool *replaced) {
    const int64_t D = m->cfg.hidden_size, N = m->cfg.codebook_size;
    GVM_CHECK(latent->ndim == 3 && latent->shape[1] == D && latent->dtype == GVM_F32,
              "encodec ema: latent must be f32 [B, %lld, F]", (long long)D);
    GVM_CHECK(codes->ndim == 3 && codes->shape[0] == latent->shape[0] && codes->shape[2] == latent->shape[2] &&
                  codes->shape[1] >= 1 && codes->shape[1] <= m->cfg.num_quantizers,
              "encodec ema: codes must be [B, nq, F] matching the latent, nq <= %lld", (long long)m->cfg.num_quantizers);
    const gvm_nn_encodec_ema_opts o = opts ? *opts : (gvm_nn_encodec_ema_opts){0};
    const double decay = o.decay > 0 ? o.decay : 0.99, eps = o.eps > 0 ? o.eps : 1e-5;
    const double threshold = o.threshold == 0 ? 2.0 : o.threshold;
    const double grace = threshold > 0 ? o.restart_usage : 0;
    const int64_t B = latent->shape[0], F = latent->shape[2], R = B * F, nq = codes->shape[1];
    for (int64_t k = 0; k < nq; k++)
        GVM_CHECK(m->codebooks[k].embed->device == GVM_DEVICE_CPU,
                  "encodec ema: the codebooks must be on the CPU (the update is host-side)");

    gvm_tensor *lh = host_copy(latent), *ch = host_copy(codes);
    const float *lv = gvm_tensor_f32(lh);
    double *x = GVM_MALLOC((size_t)(R * D) * sizeof *x);  // this stage's residuals [R, D]
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t f = 0; f < F; f++) x[(b * F + f) * D + d] = lv[(b * D + d) * F + f];
    int64_t *assign = GVM_MALLOC((size_t)R * sizeof *assign);
    double *counts = GVM_MALLOC((size_t)N * sizeof *counts), *sums = GVM_MALLOC((size_t)(N * D) * sizeof *sums);
    int64_t *pool = GVM_MALLOC((size_t)R * sizeof *pool);
    bool *dead = GVM_MALLOC((size_t)N * sizeof *dead);
    float *old = GVM_MALLOC((size_t)(N * D) * sizeof *old);  // this stage's codewords before the update
    int64_t n_replaced = 0;
    if (replaced) memset(replaced, 0, (size_t)(nq * N) * sizeof *replaced);

    for (int64_t k = 0; k < nq; k++) {
        gvm_nn_encodec_codebook *cb = &m->codebooks[k];
        float *embed = gvm_tensor_f32(cb->embed), *avg = gvm_tensor_f32(cb->embed_avg);
        float *cs = gvm_tensor_f32(cb->cluster_size);
        memset(counts, 0, (size_t)N * sizeof *counts);
        memset(sums, 0, (size_t)(N * D) * sizeof *sums);
        for (int64_t i = 0; i < R; i++) {
            const int64_t c = gvm_tensor_get_index(ch, ((i / F) * nq + k) * F + i % F);
            GVM_CHECK(c >= 0 && c < N, "encodec ema: code %lld outside 0..%lld", (long long)c, (long long)(N - 1));
            assign[i] = c;
            counts[c] += 1;
            for (int64_t d = 0; d < D; d++) sums[c * D + d] += x[i * D + d];
        }
        for (int64_t c = 0; c < N; c++) dead[c] = threshold > 0 && cs[c] < threshold;
        memcpy(old, embed, (size_t)(N * D) * sizeof *old);
        // the EMA (audiocraft's ema_inplace) and Laplace-smoothed renormalisation
        double total = 0;
        for (int64_t c = 0; c < N; c++) {
            cs[c] = (float)(decay * cs[c] + (1 - decay) * counts[c]);
            // A restarted code starts from the grace usage (when set), so it is not restarted again at once.
            if (dead[c] && grace > cs[c]) cs[c] = (float)grace;
            total += cs[c];
            for (int64_t d = 0; d < D; d++)
                avg[c * D + d] = (float)(decay * avg[c * D + d] + (1 - decay) * sums[c * D + d]);
        }
        // A restart takes a uniformly drawn batch vector: distinct ones for distinct dead codes while the batch
        // has >= N vectors (a partial Fisher-Yates shuffle), independent draws otherwise (as sample_vectors).
        for (int64_t i = 0; i < R; i++) pool[i] = i;
        for (int64_t c = 0; c < N; c++) {
            const double n_c = (cs[c] + eps) / (total + (double)N * eps) * total;
            int64_t src = -1;
            if (dead[c]) {
                if (R >= N) {
                    const int64_t j = c + (int64_t)gvm_rng_below(rng, (uint64_t)(R - c));
                    const int64_t t = pool[c];
                    pool[c] = pool[j];
                    pool[j] = t;
                    src = pool[c];
                } else {
                    src = (int64_t)gvm_rng_below(rng, (uint64_t)R);
                }
            }
            for (int64_t d = 0; d < D; d++) {
                if (src >= 0) {
                    embed[c * D + d] = (float)x[src * D + d];
                    avg[c * D + d] = (float)(x[src * D + d] * n_c);
                } else {
                    embed[c * D + d] = (float)(avg[c * D + d] / n_c);
                }
            }
            if (src >= 0) {
                n_replaced++;
                if (replaced) replaced[k * N + c] = true;
            }
        }
        // the next stage's residuals: minus the codewords the forward pass used (this stage's, before the update)
        for (int64_t i = 0; i < R; i++)
            for (int64_t d = 0; d < D; d++) x[i * D + d] -= old[assign[i] * D + d];
    }
    free(x);
    free(assign);
    free(counts);
    free(sums);
    free(pool);
    free(dead);
    free(old);
    gvm_tensor_free(lh);
    gvm_tensor_free(ch);
    return n_replaced;
}
