// cpu/softmax.c: softmax, log-softmax and loss kernels on the CPU (see softmax.h).
//
// Every row is made numerically safe by subtracting its max before exp(). exp() itself is the vectorisable
// polynomial gvm_exp_nonpos (core/cpu/vmath.h), not libm's expf, which GCC cannot vectorise without
// -ffast-math; exp is most of the work in a 2048-way softmax. Row sums are accumulated in float over short blocks
// and in double across them (see SUM_BLOCK).
#include "core/cpu/softmax.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/cpu/simd.h"
#include "core/cpu/vmath.h"

// Below this many elements a kernel runs on one thread: waking the pool costs more than it saves.
#define PAR_MIN_WORK 32768
// Inner positions processed together when the softmax axis is not the last one: the n-loop then walks
// rows of CHUNK contiguous floats, which vectorises, and the per-position state fits on the stack.
#define CHUNK 64


// Row sums run in float over blocks of SUM_BLOCK elements (vectorised: one partial sum per lane) and in
// double across blocks, which keeps long rows as accurate as a double sum at float speed.
#define SUM_BLOCK 256

// sum_j exp(x[j] - m), storing each term in y when y is not NULL.
static inline double exp_sum(const float *x, float *y, int64_t n, float m) {
    double s = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < n ? j0 + SUM_BLOCK : n;
        float b = 0.0f;
        if (y) {
#pragma omp simd reduction(+ : b)
            for (int64_t j = j0; j < j1; j++) {
                float e = gvm_exp_nonpos(x[j] - m);
                y[j] = e;
                b += e;
            }
        } else {
#pragma omp simd reduction(+ : b)
            for (int64_t j = j0; j < j1; j++) b += gvm_exp_nonpos(x[j] - m);
        }
        s += b;
    }
    return s;
}

// sum_j a[j] * b[j], or sum_j a[j] when b is NULL.
static inline double row_dot(const float *a, const float *b, int64_t n) {
    double s = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < n ? j0 + SUM_BLOCK : n;
        float p = 0.0f;
        if (b) {
#pragma omp simd reduction(+ : p)
            for (int64_t j = j0; j < j1; j++) p += a[j] * b[j];
        } else {
#pragma omp simd reduction(+ : p)
            for (int64_t j = j0; j < j1; j++) p += a[j];
        }
        s += p;
    }
    return s;
}

static inline float row_max(const float *x, int64_t n) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

// ---- softmax / log-softmax over the last axis ----------------------------------------------------------------

GVM_VEC_CLONES static void softmax_row(const float *x, float *y, int64_t n, bool log_out) {
    float m = row_max(x, n);
    if (log_out) {
        // (x - m) first: it is exact for the terms that matter, so large logits lose nothing.
        float ls = (float)log(exp_sum(x, NULL, n, m));
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        float inv = (float)(1.0 / exp_sum(x, y, n, m));
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

// ---- softmax / log-softmax over a middle axis: x, y point at one [n, inner] block; columns i0..i0+w ----------

GVM_VEC_CLONES static void softmax_cols(const float *x, float *y, int64_t n, int64_t inner, int64_t i0, int64_t w,
                                    bool log_out) {
    float m[CHUNK], f[CHUNK];
    double s[CHUNK];
    for (int64_t c = 0; c < w; c++) {
        m[c] = -INFINITY;
        s[c] = 0.0;
    }
    for (int64_t k = 0; k < n; k++) {
        const float *xr = x + k * inner + i0;
        for (int64_t c = 0; c < w; c++) m[c] = xr[c] > m[c] ? xr[c] : m[c];
    }
    for (int64_t k = 0; k < n; k++) {
        const float *xr = x + k * inner + i0;
        float *yr = y + k * inner + i0;
        if (log_out) {
            for (int64_t c = 0; c < w; c++) s[c] += gvm_exp_nonpos(xr[c] - m[c]);
        } else {
            for (int64_t c = 0; c < w; c++) {
                float e = gvm_exp_nonpos(xr[c] - m[c]);
                yr[c] = e;
                s[c] += e;
            }
        }
    }
    for (int64_t c = 0; c < w; c++) f[c] = log_out ? (float)log(s[c]) : (float)(1.0 / s[c]);
    for (int64_t k = 0; k < n; k++) {
        const float *xr = x + k * inner + i0;
        float *yr = y + k * inner + i0;
        if (log_out)
            for (int64_t c = 0; c < w; c++) yr[c] = (xr[c] - m[c]) - f[c];
        else
            for (int64_t c = 0; c < w; c++) yr[c] *= f[c];
    }
}

static void softmax_any(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, bool log_out) {
    int64_t work = outer * n * inner;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
        for (int64_t o = 0; o < outer; o++) softmax_row(x + o * n, y + o * n, n, log_out);
        return;
    }
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        int64_t w = inner - i0 < CHUNK ? inner - i0 : CHUNK;
        softmax_cols(x + o * n * inner, y + o * n * inner, n, inner, i0, w, log_out);
    }
}

void gvm_cpu_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
    softmax_any(x, y, outer, n, inner, false);
}

void gvm_cpu_log_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
    softmax_any(x, y, outer, n, inner, true);
}

// ---- backward ---------------------------------------------------------------------------------------------------
// softmax:     dx = y * (dy - sum(dy * y))
// log-softmax: dx = dy - exp(y) * sum(dy)

GVM_VEC_CLONES static void softmax_bwd_row(const float *y, const float *dy, float *dx, int64_t n, bool log_out) {
    if (log_out) {
        float sf = (float)row_dot(dy, NULL, n);
        for (int64_t j = 0; j < n; j++) dx[j] += dy[j] - gvm_exp_nonpos(y[j]) * sf;
    } else {
        float sf = (float)row_dot(dy, y, n);
        for (int64_t j = 0; j < n; j++) dx[j] += y[j] * (dy[j] - sf);
    }
}

GVM_VEC_CLONES static void softmax_bwd_cols(const float *y, const float *dy, float *dx, int64_t n, int64_t inner,
                                        int64_t i0, int64_t w, bool log_out) {
    double s[CHUNK];
    float sf[CHUNK];
    for (int64_t c = 0; c < w; c++) s[c] = 0.0;
    for (int64_t k = 0; k < n; k++) {
        const float *yr = y + k * inner + i0, *gr = dy + k * inner + i0;
        if (log_out)
            for (int64_t c = 0; c < w; c++) s[c] += gr[c];
        else
            for (int64_t c = 0; c < w; c++) s[c] += (double)(gr[c] * yr[c]);
    }
    for (int64_t c = 0; c < w; c++) sf[c] = (float)s[c];
    for (int64_t k = 0; k < n; k++) {
        const float *yr = y + k * inner + i0, *gr = dy + k * inner + i0;
        float *dr = dx + k * inner + i0;
        if (log_out)
            for (int64_t c = 0; c < w; c++) dr[c] += gr[c] - gvm_exp_nonpos(yr[c]) * sf[c];
        else
            for (int64_t c = 0; c < w; c++) dr[c] += yr[c] * (gr[c] - sf[c]);
    }
}

static void softmax_bwd_any(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner,
                            bool log_out) {
    int64_t work = outer * n * inner;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
        for (int64_t o = 0; o < outer; o++) softmax_bwd_row(y + o * n, dy + o * n, dx + o * n, n, log_out);
        return;
    }
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        int64_t w = inner - i0 < CHUNK ? inner - i0 : CHUNK;
        int64_t base = o * n * inner;
        softmax_bwd_cols(y + base, dy + base, dx + base, n, inner, i0, w, log_out);
    }
}

void gvm_cpu_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner) {
    softmax_bwd_any(y, dy, dx, outer, n, inner, false);
}

void gvm_cpu_log_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner) {
    softmax_bwd_any(y, dy, dx, outer, n, inner, true);
}

// ---- cross-entropy: log-softmax and NLL fused, one row per iteration --------------------------------------------

// One row: its max and log(sum(exp(x - max))).
GVM_VEC_CLONES static void ce_row_stats(const float *x, int64_t C, float *rowmax, double *logsum) {
    float m = row_max(x, C);
    *rowmax = m;
    *logsum = log(exp_sum(x, NULL, C, m));
}

void gvm_cpu_cross_entropy_fwd(const float *logits, const int64_t *targets, float *rowmax, float *logsum, float *loss,
                               int64_t N, int64_t C, int64_t ignore_index) {
    double total = 0.0;
    int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, count) if (N * C > PAR_MIN_WORK)
    for (int64_t i = 0; i < N; i++) {
        int64_t t = targets[i];
        if (t == ignore_index) {
            rowmax[i] = 0.0f;
            logsum[i] = 0.0f;
            continue;
        }
        const float *x = logits + i * C;
        double ls;
        ce_row_stats(x, C, &rowmax[i], &ls);
        logsum[i] = (float)ls;
        total += ((double)rowmax[i] - (double)x[t]) + ls;  // -log softmax(x)[t] = logsumexp(x) - x[t]
        count++;
    }
    *loss = count ? (float)(total / (double)count) : 0.0f;
}

// d[j] += scale * softmax(x)[j], the softmax recomputed from the row's saved max and log-sum.
GVM_VEC_CLONES static void ce_row_grad(const float *x, float *d, int64_t C, float m, float ls, float scale) {
    for (int64_t j = 0; j < C; j++) d[j] += scale * gvm_exp_nonpos((x[j] - m) - ls);
}

void gvm_cpu_cross_entropy_bwd(const float *logits, const int64_t *targets, const float *rowmax, const float *logsum,
                               const float *dloss, float *dlogits, int64_t N, int64_t C, int64_t ignore_index) {
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += targets[i] != ignore_index;
    if (count == 0) return;  // the loss is the constant 0: every gradient is 0
    float scale = (float)((double)dloss[0] / (double)count);
    // d loss / d x[i, j] = (softmax(x[i])[j] - [j == t_i]) / count
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN_WORK)
    for (int64_t i = 0; i < N; i++) {
        int64_t t = targets[i];
        if (t == ignore_index) continue;
        ce_row_grad(logits + i * C, dlogits + i * C, C, rowmax[i], logsum[i], scale);
        dlogits[i * C + t] -= scale;
    }
}

// ---- MSE and L1 (mean reduction) -------------------------------------------------------------------------------

void gvm_cpu_mse_loss_fwd(const float *a, const float *b, float *loss, int64_t n) {
    double total = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : total) if (n > PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        total += d * d;
    }
    *loss = (float)(total / (double)n);  // n == 0 gives NaN, as PyTorch's mean of nothing
}

// The two gradients are written in separate loops so that each is a branch-free, vectorisable stream.
void gvm_cpu_mse_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n) {
    float k = (float)(2.0 * (double)dloss[0] / (double)n);
    if (da) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) da[i] += k * (a[i] - b[i]);
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) db[i] -= k * (a[i] - b[i]);
    }
}

void gvm_cpu_l1_loss_fwd(const float *a, const float *b, float *loss, int64_t n) {
    double total = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : total) if (n > PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) total += fabs((double)a[i] - (double)b[i]);
    *loss = (float)(total / (double)n);
}

void gvm_cpu_l1_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n) {
    float k = (float)((double)dloss[0] / (double)n);
    // sign(a - b) as (a > b) - (a < b): 0 for equal values, as PyTorch (and branch-free).
    if (da) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) da[i] += k * (float)((a[i] > b[i]) - (a[i] < b[i]));
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) db[i] -= k * (float)((a[i] > b[i]) - (a[i] < b[i]));
    }
}
