// cpu/lstm.c: one LSTM layer on the CPU (see lstm.h).
//
// Forward: the input projection of every step is one GEMM ([B*T, I] x [I, 4H]); each step then adds
// h_{t-1} W_hh^T (one GEMM, or rec_matmul for a small batch) and applies the gate activations in place. Backward
// through time keeps only the pre-activation gate gradients dG [B, T, 4H] per step (plus the running dh, dc), so all
// weight and input gradients come out of three large GEMMs at the end instead of T small ones.
#include "core/cpu/lstm.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/cpu/gemm.h"

#define ELEMWISE_PAR 4096  // B * H below which a step's elementwise work stays on one thread
#define JB 256             // hidden units per elementwise work item (threads split (b, block) pairs)

#define SMALL_BATCH 8  // up to this batch size the recurrent product uses rec_matmul, not sgemm

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

// out[b, r] += sum_k w[r, k] v[b, k] for b < B, r < R: the per-step recurrent product when the batch is
// small. sgemm would repack all of w (4H x H) at every step to multiply it by a handful of rows; here
// each thread streams its share of w's rows once per step, four rows at a time. v [B, K] (row stride
// ldv), w [R, K], out [B, R] (row stride ldo).
static void rec_matmul(int64_t B, int64_t R, int64_t K, const float *v, int64_t ldv, const float *w, float *out,
                       int64_t ldo) {
    int64_t blocks = (R + 3) / 4;
#pragma omp parallel for schedule(static) if (B * R * K >= (1 << 18))
    for (int64_t rb = 0; rb < blocks; rb++) {
        int64_t r = rb * 4;
        if (r + 4 <= R) {
            const float *w0 = w + r * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
            for (int64_t b = 0; b < B; b++) {
                const float *vb = v + b * ldv;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int64_t k = 0; k < K; k++) {
                    float x = vb[k];
                    s0 += w0[k] * x;
                    s1 += w1[k] * x;
                    s2 += w2[k] * x;
                    s3 += w3[k] * x;
                }
                float *o = out + b * ldo + r;
                o[0] += s0;
                o[1] += s1;
                o[2] += s2;
                o[3] += s3;
            }
        } else {
            for (; r < R; r++)
                for (int64_t b = 0; b < B; b++) {
                    const float *vb = v + b * ldv, *wr = w + r * K;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int64_t k = 0; k < K; k++) s += wr[k] * vb[k];
                    out[b * ldo + r] += s;
                }
        }
    }
}

void gvm_cpu_lstm_fwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *b_ih,
                      const float *b_hh, float *h, float *gates, float *cell) {
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H, n_jb = (H + JB - 1) / JB;
    // gates [B*T, 4H] = x [B*T, I] W_ih^T (+ b_ih + b_hh)
    float beta = 0.0f;
    if (b_ih || b_hh) {
#pragma omp parallel for schedule(static) if (B * T * G4 > 65536)
        for (int64_t r = 0; r < B * T; r++)
            for (int64_t j = 0; j < G4; j++) gates[r * G4 + j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
        beta = 1.0f;
    }
    gvm_cpu_sgemm(false, true, B * T, G4, I, 1.0f, x, I, w_ih, I, beta, gates, G4);
    for (int64_t t = 0; t < T; t++) {
        // gates[:, t] += h[:, t-1] [B, H] W_hh^T; rows of one step are T rows apart.
        if (t > 0 && B <= SMALL_BATCH)
            rec_matmul(B, G4, H, h + (t - 1) * H, T * H, w_hh, gates + t * G4, T * G4);
        else if (t > 0)
            gvm_cpu_sgemm(false, true, B, G4, H, 1.0f, h + (t - 1) * H, T * H, w_hh, H, 1.0f, gates + t * G4, T * G4);
#pragma omp parallel for collapse(2) schedule(static) if (B * H >= ELEMWISE_PAR)
        for (int64_t b = 0; b < B; b++) {
            for (int64_t jb = 0; jb < n_jb; jb++) {
                float *g = gates + (b * T + t) * G4;  // [4H]
                const float *cp = t > 0 ? cell + (b * T + t - 1) * H : NULL;
                float *c = cell + (b * T + t) * H, *hh = h + (b * T + t) * H;
                int64_t j_end = (jb + 1) * JB < H ? (jb + 1) * JB : H;
                for (int64_t j = jb * JB; j < j_end; j++) {
                    float ig = sigmoidf(g[j]), fg = sigmoidf(g[H + j]), gg = tanhf(g[2 * H + j]),
                          og = sigmoidf(g[3 * H + j]);
                    g[j] = ig;
                    g[H + j] = fg;
                    g[2 * H + j] = gg;
                    g[3 * H + j] = og;
                    float cv = ig * gg + (cp ? fg * cp[j] : 0.0f);
                    c[j] = cv;
                    hh[j] = og * tanhf(cv);
                }
            }
        }
    }
}

int64_t gvm_cpu_lstm_bwd_scratch_floats(const gvm_lstm_dims *d) {
    // dG [B, T, 4H], h_prev [B, T, H], dh_rec [B, H], dc [B, H], w_hh^T [H, 4H]
    return d->B * d->T * 4 * d->H + d->B * d->T * d->H + 2 * d->B * d->H + 4 * d->H * d->H;
}

void gvm_cpu_lstm_bwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *h,
                      const float *gates, const float *cell, const float *dh, float *dx, float *dw_ih, float *dw_hh,
                      float *db_ih, float *db_hh, float *scratch) {
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H, n_jb = (H + JB - 1) / JB;
    float *dG = scratch;                 // [B, T, 4H] gradient of the pre-activation gates
    float *h_prev = dG + B * T * G4;     // [B, T, H] h_{t-1}, zero at t = 0
    float *dh_rec = h_prev + B * T * H;  // [B, H] gradient reaching h_t through step t+1
    float *dc = dh_rec + B * H;          // [B, H] gradient reaching c_t through step t+1
    float *w_hh_t = dc + B * H;          // [H, 4H] so that a small batch's dh_rec is a rec_matmul too
    memset(dh_rec, 0, (size_t)(B * H) * sizeof(float));
    memset(dc, 0, (size_t)(B * H) * sizeof(float));
    bool small = B <= SMALL_BATCH;
    if (small && T > 1) {
#pragma omp parallel for schedule(static) if (G4 * H > 65536)
        for (int64_t k = 0; k < H; k++)
            for (int64_t r = 0; r < G4; r++) w_hh_t[k * G4 + r] = w_hh[r * H + k];
    }
    for (int64_t t = T - 1; t >= 0; t--) {
#pragma omp parallel for collapse(2) schedule(static) if (B * H >= ELEMWISE_PAR)
        for (int64_t b = 0; b < B; b++) {
            for (int64_t jb = 0; jb < n_jb; jb++) {
                const float *g = gates + (b * T + t) * G4;
                const float *c = cell + (b * T + t) * H;
                const float *cp = t > 0 ? cell + (b * T + t - 1) * H : NULL;
                const float *dht = dh + (b * T + t) * H;
                float *dg = dG + (b * T + t) * G4, *dcb = dc + b * H, *dhr = dh_rec + b * H;
                int64_t j_end = (jb + 1) * JB < H ? (jb + 1) * JB : H;
                for (int64_t j = jb * JB; j < j_end; j++) {
                    float ig = g[j], fg = g[H + j], gg = g[2 * H + j], og = g[3 * H + j];
                    float tc = tanhf(c[j]);
                    float dhv = dht[j] + dhr[j];
                    float dcv = dcb[j] + dhv * og * (1.0f - tc * tc);
                    float cpv = cp ? cp[j] : 0.0f;
                    dg[j] = dcv * gg * ig * (1.0f - ig);
                    dg[H + j] = dcv * cpv * fg * (1.0f - fg);
                    dg[2 * H + j] = dcv * ig * (1.0f - gg * gg);
                    dg[3 * H + j] = dhv * tc * og * (1.0f - og);
                    dcb[j] = dcv * fg;
                }
            }
        }
        // dh_rec [B, H] = dG[:, t] [B, 4H] W_hh [4H, H]
        if (t > 0 && small) {
            memset(dh_rec, 0, (size_t)(B * H) * sizeof(float));
            rec_matmul(B, H, G4, dG + t * G4, T * G4, w_hh_t, dh_rec, H);
        } else if (t > 0) {
            gvm_cpu_sgemm(false, false, B, H, G4, 1.0f, dG + t * G4, T * G4, w_hh, H, 0.0f, dh_rec, H);
        }
    }
    int64_t rows = B * T;
    if (dx) gvm_cpu_sgemm(false, false, rows, I, G4, 1.0f, dG, G4, w_ih, I, 1.0f, dx, I);    // dx += dG W_ih
    if (dw_ih) gvm_cpu_sgemm(true, false, G4, I, rows, 1.0f, dG, G4, x, I, 1.0f, dw_ih, I);  // dW_ih += dG^T x
    if (dw_hh && T > 1) {
        // dW_hh += dG^T h_prev, one GEMM over all steps; h_prev's zero rows drop the t = 0 terms.
#pragma omp parallel for schedule(static) if (rows * H > 65536)
        for (int64_t r = 0; r < rows; r++) {
            if (r % T == 0)
                memset(h_prev + r * H, 0, (size_t)H * sizeof(float));
            else
                memcpy(h_prev + r * H, h + (r - 1) * H, (size_t)H * sizeof(float));
        }
        gvm_cpu_sgemm(true, false, G4, H, rows, 1.0f, dG, G4, h_prev, H, 1.0f, dw_hh, H);
    }
    if (db_ih || db_hh) {
        // Both biases enter as one sum, so both get sum over rows of dG. Column blocks keep rows contiguous.
        enum { BLK = 256 };
#pragma omp parallel for schedule(static) if (rows * G4 > 65536)
        for (int64_t j0 = 0; j0 < G4; j0 += BLK) {
            int64_t n = G4 - j0 < BLK ? G4 - j0 : BLK;
            double acc[BLK];
            for (int64_t j = 0; j < n; j++) acc[j] = 0.0;
            for (int64_t r = 0; r < rows; r++) {
                const float *row = dG + r * G4 + j0;
                for (int64_t j = 0; j < n; j++) acc[j] += row[j];
            }
            for (int64_t j = 0; j < n; j++) {
                if (db_ih) db_ih[j0 + j] += (float)acc[j];
                if (db_hh) db_hh[j0 + j] += (float)acc[j];
            }
        }
    }
}
