// cpu/lstm.c: one LSTM layer on the CPU (see lstm.h).
//
// Forward: the input projection of every step is one GEMM ([B*T, I] x [I, 4H]). The recurrence then runs
// in ONE parallel region that lives across all time steps: each thread owns a fixed range of hidden units
// (all four gates of them) and at step t adds h_{t-1} W_hh^T for its columns to the projection, applies
// the biases and gate activations and writes c_t, h_t; one barrier per step publishes h_t. A fork/join per
// step, or an sgemm per step (which repacks all of W_hh to multiply it by a handful of rows), costs more
// than the step itself when the batch is small.
//
// The recurrent product is B rows of axpys over W_hh^T, packed once per call into contiguous column
// panels [K][32] that stay in the owning thread's L2, in a register-blocked kernel (up to 4 rows x 32
// columns, per ISA: see panel_kernels); the activations are vectorised (built on gvm_exp_nonpos). Every
// value is computed by the same sequence of operations whichever thread owns it, so results do not depend
// on the thread count.
//
// Backward through time is the same scheme: each thread owns hidden units, computes dh_rec = dG_{t+1} W_hh
// for them (W_hh packed into [4H][32] panels), then the pre-activation gate gradients dG [B, T, 4H] of its
// units, summing the bias gradients on the way (a thread owns its columns). dx, dW_ih and dW_hh then come
// out of three large GEMMs over all steps.
#include "core/cpu/lstm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/cpu/gemm.h"
#include "core/cpu/simd.h"
#include "core/cpu/vmath.h"

#define PW 16        // hidden units per forward block (two gates of it fill a panel row)
#define BW (2 * PW)  // floats per panel row; hidden units per backward block
#define MR 4         // batch rows per register block of the recurrent product, at most

// Per-step multiply-adds (B * 4H * H) below which the recurrence stays on one thread. A step's barrier
// and the exchange of h_t between cores cost about a microsecond; on a 2-core Zen 5 two threads start to
// win at about this size (B = 1, H = 256, where W_hh no longer fits one core's L2).
#define PAR_MACS (1 << 18)

// ---- the recurrent product ------------------------------------------------------------------------------------
//
// out[v * vs + r * rs + 0:PW] += sum_k a[r * lda + k] * p[k * BW + v * PW + 0:PW] for v < 2, r < nr: a is nr
// rows of K values (row stride lda), p one packed panel [K][BW]. Each k loads BW weights and broadcasts one
// value per row into nr * BW / VW vector accumulators, which must all stay in registers; the k order is
// fixed, so no result depends on the ISA, the row blocking or the thread count.
//
// GCC lowers generic vectors wider than the target's (a 16-float vector in AVX2 code) through memory, so
// instead of target_clones each ISA gets its own instances with its own vector width VW, picked once per
// call (panel_kernels). The accumulators are named variables (c<row><slice>): arrays of vectors end up on
// the stack. Those beyond (NR, BW / VW) are dead code.
#define PANEL_SLICES(M, r) M(r, 0) M(r, 1) M(r, 2) M(r, 3) M(r, 4) M(r, 5) M(r, 6) M(r, 7)
#define PANEL_ALL(M) PANEL_SLICES(M, 0) PANEL_SLICES(M, 1) PANEL_SLICES(M, 2) PANEL_SLICES(M, 3)
#define PANEL_DECL(r, s) vt_ c##r##s = {0};
#define PANEL_LOAD(r, s) \
    vt_ w##s;            \
    memcpy(&w##s, pk + (NS_ > s ? s * VW_ : 0), sizeof w##s);
#define PANEL_ACC(r, s) \
    if (NR_ > r && NS_ > s) c##r##s += w##s * x##r;
#define PANEL_STORE(r, s)                                           \
    if (NR_ > r && NS_ > s) {                                       \
        float *o = out + s * VW_ / PW * vs + r * rs + s * VW_ % PW; \
        vt_ sum;                                                    \
        memcpy(&sum, o, sizeof sum);                                \
        sum += c##r##s;                                             \
        memcpy(o, &sum, sizeof sum);                                \
    }

// NAME(K, a, lda, p, out, vs, rs) for NR rows, in the ISA that ATTR names, with VT vectors of VW floats.
#define PANEL_FN(NAME, ATTR, VT, VW, NR)                                                                  \
    ATTR static void NAME(int64_t K, const float *a, int64_t lda, const float *p, float *out, int64_t vs, \
                          int64_t rs) {                                                                   \
        enum { NS_ = BW / (VW), NR_ = (NR), VW_ = (VW) };                                                 \
        typedef VT vt_;                                                                                   \
        PANEL_ALL(PANEL_DECL)                                                                             \
        const float *a0 = a, *a1 = NR_ > 1 ? a + lda : a, *a2 = NR_ > 2 ? a + 2 * lda : a;                \
        const float *a3 = NR_ > 3 ? a + 3 * lda : a;                                                      \
        for (int64_t k = 0; k < K; k++) {                                                                 \
            const float *pk = p + k * BW;                                                                 \
            PANEL_SLICES(PANEL_LOAD, 0)                                                                   \
            float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];                                         \
            PANEL_ALL(PANEL_ACC)                                                                          \
        }                                                                                                 \
        PANEL_ALL(PANEL_STORE)                                                                            \
    }

typedef void (*panel_fn)(int64_t K, const float *a, int64_t lda, const float *p, float *out, int64_t vs, int64_t rs);

typedef struct {
    int mr;           // rows per register block: as many as keep the accumulators in registers
    panel_fn fn[MR];  // fn[nr - 1] for nr rows
} panel_kernels;

// Baseline: 4-float vectors (SSE2 on x86-64, NEON elsewhere), 8 slices x 2 rows = 16 accumulators.
typedef float v4f __attribute__((vector_size(16)));
PANEL_FN(panel_v4_1, , v4f, 4, 1)
PANEL_FN(panel_v4_2, , v4f, 4, 2)

#if defined(__x86_64__) && defined(__GNUC__)
#define GVM_LSTM_X86 1
// AVX2: 4 slices x 3 rows = 12 of the 16 ymm registers. AVX-512: 2 slices x 4 rows = 8 zmm registers
// (about 130 GMAC/s on one Zen 5 core against 70 for the AVX2 one).
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
PANEL_FN(panel_v8_1, __attribute__((target("avx2"))), v8f, 8, 1)
PANEL_FN(panel_v8_2, __attribute__((target("avx2"))), v8f, 8, 2)
PANEL_FN(panel_v8_3, __attribute__((target("avx2"))), v8f, 8, 3)
PANEL_FN(panel_v16_1, __attribute__((target("avx512f"))), v16f, 16, 1)
PANEL_FN(panel_v16_2, __attribute__((target("avx512f"))), v16f, 16, 2)
PANEL_FN(panel_v16_3, __attribute__((target("avx512f"))), v16f, 16, 3)
PANEL_FN(panel_v16_4, __attribute__((target("avx512f"))), v16f, 16, 4)
#endif

static panel_kernels panel_kernels_get(void) {
#ifdef GVM_LSTM_X86
    if (__builtin_cpu_supports("avx512f"))
        return (panel_kernels){4, {panel_v16_1, panel_v16_2, panel_v16_3, panel_v16_4}};
    if (__builtin_cpu_supports("avx2")) return (panel_kernels){3, {panel_v8_1, panel_v8_2, panel_v8_3, NULL}};
#endif
    return (panel_kernels){2, {panel_v4_1, panel_v4_2, NULL, NULL}};
}

// sigmoid from exp(-|x|) in (0, 1]: no overflow and no cancellation on either side (a few ulp).
static inline float sigm(float x) {
    float e = gvm_exp_nonpos(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

// tanh as Cephes' tanhf: an odd polynomial below |x| = 0.625, where 1 - e^{-2|x|} would cancel, and
// (1 - e) / (1 + e) with e = e^{-2|x|} <= 0.29 above (a few ulp everywhere; +-1 for large |x|).
static inline float tanh_v(float x) {
    float ax = fabsf(x), z = x * x;
    float e = gvm_exp_nonpos(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = ax + ax * z * p;
    return copysignf(ax < 0.625f ? small : big, x);
}

// ---- forward --------------------------------------------------------------------------------------------------

typedef struct {
    int64_t B, T, H, n_jb;
    panel_kernels kern;
    const float *pw;     // [2][n_jb][H][BW] W_hh^T panels, gates paired (i, f) and (g, o):
                         // pw[gp][jb][k][v * PW + c] = w_hh[(2gp+v)*H + jb*PW + c, k] (0 past H)
    const float *bias;   // [4H] b_ih + b_hh (zeros without biases)
    const float *zeros;  // [H] c_{-1}
    float *gates;        // [B, T, 4H] in: x W_ih^T; out: activated i, f, g, o
    float *cell, *h;     // [B, T, H]
} fwd_args;

// One row of n hidden units at one step: g [4][H] (gate q at g + q*H) holds x W_ih^T + h_{t-1} W_hh^T and
// gets the activated gates; bias [4][H] likewise; cp [n] c_{t-1} -> c, h [n]. Called on all of a thread's
// units at once: a long loop of independent exp / division chains keeps the vector units busy.
GVM_VEC_CLONES static void fwd_act(int64_t n, int64_t H, float *restrict g, const float *restrict bias,
                                   const float *restrict cp, float *restrict c, float *restrict h) {
    for (int64_t j = 0; j < n; j++) {
        float ig = sigm(g[j] + bias[j]);
        float fg = sigm(g[H + j] + bias[H + j]);
        float gg = tanh_v(g[2 * H + j] + bias[2 * H + j]);
        float og = sigm(g[3 * H + j] + bias[3 * H + j]);
        g[j] = ig;
        g[H + j] = fg;
        g[2 * H + j] = gg;
        g[3 * H + j] = og;
        float cv = ig * gg + fg * cp[j];
        c[j] = cv;
        h[j] = og * tanh_v(cv);
    }
}

// Step t for hidden blocks jb0 .. jb1-1 (PW units each), all batch rows: gates += h_{t-1} W_hh^T for the
// blocks' columns, then their activations, c_t and h_t.
GVM_VEC_CLONES static void fwd_step(const fwd_args *a, int64_t t, int64_t jb0, int64_t jb1) {
    int64_t B = a->B, T = a->T, H = a->H, G4 = 4 * H;
    for (int64_t jb = jb0; t > 0 && jb < jb1; jb++) {
        int64_t j0 = jb * PW, n = H - j0 < PW ? H - j0 : PW;
        const float *p0 = a->pw + jb * H * BW, *p1 = a->pw + (a->n_jb + jb) * H * BW;  // (i, f), (g, o)
        for (int64_t b0 = 0; b0 < B; b0 += a->kern.mr) {
            int nr = (int)(B - b0 < a->kern.mr ? B - b0 : a->kern.mr);
            panel_fn panel = a->kern.fn[nr - 1];
            const float *hp = a->h + (b0 * T + t - 1) * H;  // nr rows, T * H apart
            float *gr = a->gates + (b0 * T + t) * G4 + j0;  // nr rows, T * 4H apart
            if (n == PW) {  // straight into the gates: (i, f) are H apart, as are (g, o)
                panel(H, hp, T * H, p0, gr, H, T * G4);
                panel(H, hp, T * H, p1, gr + 2 * H, H, T * G4);
            } else {  // the last, partial block: its padding columns would land on the next gate's
                float pre[4][MR][PW];
                memset(pre, 0, sizeof pre);
                panel(H, hp, T * H, p0, pre[0][0], MR * PW, PW);
                panel(H, hp, T * H, p1, pre[2][0], MR * PW, PW);
                for (int r = 0; r < nr; r++)
                    for (int q = 0; q < 4; q++)
                        for (int64_t j = 0; j < n; j++) gr[r * T * G4 + q * H + j] += pre[q][r][j];
            }
        }
    }
    int64_t u0 = jb0 * PW, u1 = jb1 * PW < H ? jb1 * PW : H;
    for (int64_t b = 0; b < B; b++) {
        int64_t row = b * T + t;
        fwd_act(u1 - u0, H, a->gates + row * G4 + u0, a->bias + u0, t > 0 ? a->cell + (row - 1) * H + u0 : a->zeros,
                a->cell + row * H + u0, a->h + row * H + u0);
    }
}

int64_t gvm_cpu_lstm_fwd_scratch_floats(const gvm_lstm_dims *d) {
    int64_t n_jb = (d->H + PW - 1) / PW;
    return 4 * n_jb * d->H * PW + 5 * d->H;  // W_hh^T panels, summed bias, zeros
}

// Threads for a recurrence over n_blocks column blocks: at most one block each, one when a step is small.
static int rec_threads(const gvm_lstm_dims *d, int64_t n_blocks) {
    int nth = omp_get_max_threads();
    if (d->B * 4 * d->H * d->H < PAR_MACS) nth = 1;
    return nth > n_blocks ? (int)n_blocks : nth;
}

void gvm_cpu_lstm_fwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *b_ih,
                      const float *b_hh, float *h, float *gates, float *cell, float *scratch) {
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H, n_jb = (H + PW - 1) / PW;
    float *pw = scratch;                   // [2][n_jb][H][BW]
    float *bias = pw + 4 * n_jb * H * PW;  // [4H]
    float *zeros = bias + G4;              // [H]
    for (int64_t j = 0; j < G4; j++) bias[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
    memset(zeros, 0, (size_t)H * sizeof(float));
    // gates [B*T, 4H] = x [B*T, I] W_ih^T; the bias goes in with the activations.
    gvm_cpu_sgemm(false, true, B * T, G4, I, 1.0f, x, I, w_ih, I, 0.0f, gates, G4);
    fwd_args a = {B, T, H, n_jb, panel_kernels_get(), pw, bias, zeros, gates, cell, h};
#pragma omp parallel num_threads(rec_threads(d, n_jb))
    {
        if (T > 1) {
#pragma omp for schedule(static)
            for (int64_t p = 0; p < 2 * n_jb; p++) {  // panel (gp, jb); the loop's end is a barrier
                int64_t gp = p / n_jb, j0 = (p % n_jb) * PW;
                float *dst = pw + p * H * BW;
                for (int64_t k = 0; k < H; k++)
                    for (int64_t v = 0; v < 2; v++)
                        for (int64_t c = 0; c < PW; c++)
                            dst[k * BW + v * PW + c] = j0 + c < H ? w_hh[((2 * gp + v) * H + j0 + c) * H + k] : 0.0f;
            }
        }
        // Each thread owns a fixed range of hidden blocks; step t+1 reads all of h_t, hence the barrier.
        int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
        int64_t jb0 = n_jb * tid / nth, jb1 = n_jb * (tid + 1) / nth;
        for (int64_t t = 0; t < T; t++) {
            fwd_step(&a, t, jb0, jb1);
#pragma omp barrier
        }
    }
}

// ---- backward -------------------------------------------------------------------------------------------------

typedef struct {
    int64_t B, T, H, n_jb;
    panel_kernels kern;
    const float *pw;                // [n_jb][4H][BW] W_hh panels: pw[jb][r][c] = w_hh[r, jb*BW + c] (0 past H)
    const float *gates, *cell, *h;  // forward state: [B, T, 4H], [B, T, H], [B, T, H]
    const float *dh;                // [B, T, H] upstream gradient
    const float *zeros;             // [H] c_{-1} and h_{-1}
    float *dG;                      // [B, T, 4H] pre-activation gate gradients
    float *dh_rec;                  // [B, H] gradient reaching h_t through step t+1
    float *dc;                      // [B, H] gradient reaching c_t through step t+1
    float *h_prev;                  // [B, T, H] h_{t-1} (0 at t = 0), for dW_hh's GEMM
    double *dbias;                  // [4H] sum of dG over (b, t), or NULL
} bwd_args;

// One row of n hidden units at one step: g [4][H] the activated gates (gate q at g + q*H), c / cp [n]
// c_t / c_{t-1}, dht [n] the upstream gradient, dhr [n] the one through step t+1 -> dg (like g); dc [n]
// carries the gradient of c from step t+1 to step t.
GVM_VEC_CLONES static void bwd_act(int64_t n, int64_t H, const float *restrict g, const float *restrict c,
                                   const float *restrict cp, const float *restrict dht, const float *restrict dhr,
                                   float *restrict dg, float *restrict dc) {
    for (int64_t j = 0; j < n; j++) {
        float ig = g[j], fg = g[H + j], gg = g[2 * H + j], og = g[3 * H + j];
        float tc = tanh_v(c[j]);
        float dhv = dht[j] + dhr[j];
        float dcv = dc[j] + dhv * og * (1.0f - tc * tc);
        dg[j] = dcv * gg * ig * (1.0f - ig);
        dg[H + j] = dcv * cp[j] * fg * (1.0f - fg);
        dg[2 * H + j] = dcv * ig * (1.0f - gg * gg);
        dg[3 * H + j] = dhv * tc * og * (1.0f - og);
        dc[j] = dcv * fg;
    }
}

// Step t (descending) for hidden blocks jb0 .. jb1-1 (BW units each), all batch rows: dh_rec = dG_{t+1}
// W_hh for the blocks' units, then their four gate gradients at t.
GVM_VEC_CLONES static void bwd_step(const bwd_args *a, int64_t t, int64_t jb0, int64_t jb1) {
    int64_t B = a->B, T = a->T, H = a->H, G4 = 4 * H;
    for (int64_t jb = jb0; t + 1 < T && jb < jb1; jb++) {
        int64_t j0 = jb * BW, n = H - j0 < BW ? H - j0 : BW;
        for (int64_t b0 = 0; b0 < B; b0 += a->kern.mr) {
            int nr = (int)(B - b0 < a->kern.mr ? B - b0 : a->kern.mr);
            float dhr[MR][BW];
            memset(dhr, 0, sizeof dhr);
            a->kern.fn[nr - 1](G4, a->dG + (b0 * T + t + 1) * G4, T * G4, a->pw + jb * G4 * BW, dhr[0], PW, BW);
            for (int r = 0; r < nr; r++) memcpy(a->dh_rec + (b0 + r) * H + j0, dhr[r], (size_t)n * sizeof(float));
        }
    }
    int64_t u0 = jb0 * BW, u1 = jb1 * BW < H ? jb1 * BW : H, n = u1 - u0;
    for (int64_t b = 0; b < B; b++) {
        int64_t row = b * T + t;
        float *dg = a->dG + row * G4 + u0;
        bwd_act(n, H, a->gates + row * G4 + u0, a->cell + row * H + u0, t > 0 ? a->cell + (row - 1) * H + u0 : a->zeros,
                a->dh + row * H + u0, t + 1 < T ? a->dh_rec + b * H + u0 : a->zeros, dg, a->dc + b * H + u0);
        memcpy(a->h_prev + row * H + u0, t > 0 ? a->h + (row - 1) * H + u0 : a->zeros, (size_t)n * sizeof(float));
        if (a->dbias) {
            double *db = a->dbias + u0;
            for (int64_t j = 0; j < n; j++) {
                db[j] += dg[j];
                db[H + j] += dg[H + j];
                db[2 * H + j] += dg[2 * H + j];
                db[3 * H + j] += dg[3 * H + j];
            }
        }
    }
}

int64_t gvm_cpu_lstm_bwd_scratch_floats(const gvm_lstm_dims *d) {
    int64_t B = d->B, T = d->T, H = d->H, n_jb = (H + BW - 1) / BW;
    // dbias [4H] doubles first (alignment), dG [B, T, 4H], h_prev [B, T, H], dh_rec, dc [B, H], zeros [H],
    // W_hh panels
    return 8 * H + B * T * 4 * H + B * T * H + 2 * B * H + H + n_jb * 4 * H * BW;
}

void gvm_cpu_lstm_bwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh, const float *h,
                      const float *gates, const float *cell, const float *dh, float *dx, float *dw_ih, float *dw_hh,
                      float *db_ih, float *db_hh, float *scratch) {
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H, n_jb = (H + BW - 1) / BW;
    double *dbias = (double *)scratch;   // [4H]
    float *dG = scratch + 8 * H;         // [B, T, 4H]
    float *h_prev = dG + B * T * G4;     // [B, T, H]
    float *dh_rec = h_prev + B * T * H;  // [B, H]
    float *dc = dh_rec + B * H;          // [B, H]
    float *zeros = dc + B * H;           // [H]
    float *pw = zeros + H;               // [n_jb][4H][BW]
    memset(dbias, 0, (size_t)G4 * sizeof(double));
    memset(dc, 0, (size_t)(B * H) * sizeof(float));
    memset(zeros, 0, (size_t)H * sizeof(float));
    bwd_args a = {B,
                  T,
                  H,
                  n_jb,
                  panel_kernels_get(),
                  pw,
                  gates,
                  cell,
                  h,
                  dh,
                  zeros,
                  dG,
                  dh_rec,
                  dc,
                  h_prev,
                  (db_ih || db_hh) ? dbias : NULL};
#pragma omp parallel num_threads(rec_threads(d, n_jb))
    {
        if (T > 1) {
#pragma omp for schedule(static)
            for (int64_t jb = 0; jb < n_jb; jb++) {  // the loop's end is a barrier
                int64_t j0 = jb * BW, n = H - j0 < BW ? H - j0 : BW;
                float *dst = pw + jb * G4 * BW;
                for (int64_t r = 0; r < G4; r++)
                    for (int64_t c = 0; c < BW; c++) dst[r * BW + c] = c < n ? w_hh[r * H + j0 + c] : 0.0f;
            }
        }
        // As in the forward; step t-1 reads all of dG_t.
        int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
        int64_t jb0 = n_jb * tid / nth, jb1 = n_jb * (tid + 1) / nth;
        for (int64_t t = T - 1; t >= 0; t--) {
            bwd_step(&a, t, jb0, jb1);
#pragma omp barrier
        }
    }
    int64_t rows = B * T;
    if (dx) gvm_cpu_sgemm(false, false, rows, I, G4, 1.0f, dG, G4, w_ih, I, 1.0f, dx, I);    // dx += dG W_ih
    if (dw_ih) gvm_cpu_sgemm(true, false, G4, I, rows, 1.0f, dG, G4, x, I, 1.0f, dw_ih, I);  // dW_ih += dG^T x
    // dW_hh += dG^T h_prev, one GEMM over all steps; h_prev's zero rows drop the t = 0 terms.
    if (dw_hh && T > 1) gvm_cpu_sgemm(true, false, G4, H, rows, 1.0f, dG, G4, h_prev, H, 1.0f, dw_hh, H);
    // Both biases enter as one sum, so both get the sum of dG over (b, t).
    for (int64_t j = 0; j < G4; j++) {
        if (db_ih) db_ih[j] += (float)dbias[j];
        if (db_hh) db_hh[j] += (float)dbias[j];
    }
}
