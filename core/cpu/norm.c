// cpu/norm.c: normalisation kernels on the CPU (see norm.h): layer norm, RMS norm, L2 normalisation, cosine
// similarity, weight normalisation.
//
// Statistics (means, squared norms, dot products) are accumulated in double, or for the row norms' hot
// loops in float over short blocks and in double across them (float speed, about double accuracy): D can
// be a few thousand and the goldens are held to 1e-5. Reductions over a middle axis walk [n, CHUNK] tiles
// so that the inner loops stay contiguous, as in cpu/softmax.c.
#include "core/cpu/norm.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "core/cpu/simd.h"

#define PAR_MIN_WORK 32768  // below this many elements a kernel stays on one thread
#define CHUNK 64            // inner positions per tile for middle-axis reductions
#define SUM_BLOCK 256       // elements summed in float before adding into a double
#define ROW_BLOCK 32        // rows whose dweight/dbias terms are summed in float before the double partials

// ---- per-thread partial column sums (layer/RMS norm backward) ------------------------------------------------
// Thread t owns 3 * D doubles of the scratch: double partials of dweight and dbias [2, D], then float
// partials of the current block of ROW_BLOCK rows [2, D] (the size of D doubles).

size_t gvm_cpu_norm_bwd_scratch_bytes(int64_t D) {
    return (size_t)omp_get_max_threads() * 3u * (size_t)(D > 0 ? D : 1) * sizeof(double);
}

typedef struct {
    double *pw, *pb;  // [D] each: this thread's sums over all its rows
    float *bw, *bb;   // [D] each: its sums over the current block of rows
} col_partials;

static col_partials partials_init(double *scratch, int64_t D) {
    double *base = scratch + (int64_t)omp_get_thread_num() * 3 * D;
    memset(base, 0, 3 * (size_t)D * sizeof(double));
    float *f = (float *)(base + 2 * D);
    return (col_partials){base, base + D, f, f + D};
}

static void partials_flush(const col_partials *cp, int64_t D) {
    for (int64_t j = 0; j < D; j++) {
        cp->pw[j] += cp->bw[j];
        cp->pb[j] += cp->bb[j];
        cp->bw[j] = cp->bb[j] = 0.0f;
    }
}

// Add every thread's partials into dw and db (either may be NULL). Called inside the parallel region after a
// barrier, so all partials are complete.
static void partials_reduce(const double *scratch, int nt, float *dw, float *db, int64_t D) {
#pragma omp for schedule(static)
    for (int64_t j = 0; j < D; j++) {
        double sw = 0.0, sb = 0.0;
        for (int t = 0; t < nt; t++) {
            sw += scratch[(int64_t)t * 3 * D + j];
            sb += scratch[(int64_t)t * 3 * D + D + j];
        }
        if (dw) dw[j] += (float)sw;
        if (db) db[j] += (float)sb;
    }
}

// ---- layer norm ----------------------------------------------------------------------------------------------

GVM_VEC_CLONES static void layer_norm_row(const float *x, const float *w, const float *b, float *y, float *mean,
                                      float *rstd, int64_t D, float eps) {
    // The sum is taken of x - x[0]: a large common offset would otherwise cost the float block sums their
    // precision. Two passes: the one-pass E[x^2] - E[x]^2 loses everything when |mean| >> std.
    const float x0 = x[0];
    double s = 0.0, v = 0.0;
    for (int64_t j0 = 0; j0 < D; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < D ? j0 + SUM_BLOCK : D;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = j0; j < j1; j++) p += x[j] - x0;
        s += p;
    }
    float mu = (float)((double)x0 + s / (double)D);
    for (int64_t j0 = 0; j0 < D; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < D ? j0 + SUM_BLOCK : D;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = j0; j < j1; j++) p += (x[j] - mu) * (x[j] - mu);
        v += p;
    }
    float rs = (float)(1.0 / sqrt(v / (double)D + (double)eps));
    *mean = mu;
    *rstd = rs;
    for (int64_t j = 0; j < D; j++) {
        float h = (x[j] - mu) * rs;
        if (w) h *= w[j];
        if (b) h += b[j];
        y[j] = h;
    }
}

void gvm_cpu_layer_norm_fwd(const float *x, const float *w, const float *b, float *y, float *mean, float *rstd,
                            int64_t rows, int64_t D, float eps) {
    if (D == 0) return;
#pragma omp parallel for schedule(static) if (rows * D > PAR_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) layer_norm_row(x + r * D, w, b, y + r * D, &mean[r], &rstd[r], D, eps);
}

// With xh = (x - mean) * rstd and g = dy * w:
//   dx = rstd * (g - mean(g) - xh * mean(g * xh)),  dw = sum_rows dy * xh,  db = sum_rows dy.
// One row: dx (when not NULL) and this row's dw, db terms added into the block partials bw, bb.
// (restrict: the outputs never overlap the inputs, and without it GCC's runtime overlap check of six arrays
// sends the loop down its scalar fallback.)
GVM_VEC_CLONES static void layer_norm_bwd_row(const float *restrict x, const float *restrict w, const float *restrict dy,
                                          float *restrict dx, float *restrict bw, float *restrict bb, float mu,
                                          float rs, int64_t D) {
    if (!dx) {
        for (int64_t j = 0; j < D; j++) {
            bw[j] += dy[j] * ((x[j] - mu) * rs);
            bb[j] += dy[j];
        }
        return;
    }
    double sg = 0.0, sgx = 0.0;
    for (int64_t j0 = 0; j0 < D; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < D ? j0 + SUM_BLOCK : D;
        float p = 0.0f, q = 0.0f;
#pragma omp simd reduction(+ : p, q)
        for (int64_t j = j0; j < j1; j++) {
            float g = w ? dy[j] * w[j] : dy[j];
            p += g;
            q += g * ((x[j] - mu) * rs);
        }
        sg += p;
        sgx += q;
    }
    float a = (float)(sg / (double)D), c = (float)(sgx / (double)D);
    for (int64_t j = 0; j < D; j++) {
        float xh = (x[j] - mu) * rs, g = w ? dy[j] * w[j] : dy[j];
        dx[j] += rs * (g - a - xh * c);
        bw[j] += dy[j] * xh;
        bb[j] += dy[j];
    }
}

void gvm_cpu_layer_norm_bwd(const float *x, const float *w, const float *mean, const float *rstd, const float *dy,
                            float *dx, float *dw, float *db, double *scratch, int64_t rows, int64_t D) {
    if (D == 0) return;
#pragma omp parallel if (rows * D > PAR_MIN_WORK)
    {
        int nt = omp_get_num_threads();
        col_partials cp = partials_init(scratch, D);
        int pending = 0;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            layer_norm_bwd_row(x + r * D, w, dy + r * D, dx ? dx + r * D : NULL, cp.bw, cp.bb, mean[r], rstd[r], D);
            if (++pending == ROW_BLOCK) {
                partials_flush(&cp, D);
                pending = 0;
            }
        }
        partials_flush(&cp, D);
#pragma omp barrier
        if (dw || db) partials_reduce(scratch, nt, dw, db, D);
    }
}

// ---- RMS norm ------------------------------------------------------------------------------------------------

GVM_VEC_CLONES static void rms_norm_row(const float *x, const float *w, float *y, float *rstd, int64_t D, float eps) {
    double s = 0.0;
    for (int64_t j0 = 0; j0 < D; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < D ? j0 + SUM_BLOCK : D;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = j0; j < j1; j++) p += x[j] * x[j];
        s += p;
    }
    float rs = (float)(1.0 / sqrt(s / (double)D + (double)eps));
    *rstd = rs;
    for (int64_t j = 0; j < D; j++) y[j] = w ? x[j] * rs * w[j] : x[j] * rs;
}

void gvm_cpu_rms_norm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t D, float eps) {
    if (D == 0) return;
#pragma omp parallel for schedule(static) if (rows * D > PAR_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) rms_norm_row(x + r * D, w, y + r * D, &rstd[r], D, eps);
}

// With g = dy * w: dx = rstd * g - x * rstd^3 * mean(g * x),  dw = sum_rows dy * x * rstd.
GVM_VEC_CLONES static void rms_norm_bwd_row(const float *restrict x, const float *restrict w, const float *restrict dy,
                                        float *restrict dx, float *restrict bw, float rs, int64_t D) {
    if (!dx) {
        for (int64_t j = 0; j < D; j++) bw[j] += dy[j] * x[j] * rs;
        return;
    }
    double s = 0.0;
    for (int64_t j0 = 0; j0 < D; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < D ? j0 + SUM_BLOCK : D;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = j0; j < j1; j++) p += (w ? dy[j] * w[j] : dy[j]) * x[j];
        s += p;
    }
    float c = (float)((double)rs * rs * rs * s / (double)D);
    for (int64_t j = 0; j < D; j++) {
        dx[j] += rs * (w ? dy[j] * w[j] : dy[j]) - x[j] * c;
        bw[j] += dy[j] * x[j] * rs;
    }
}

void gvm_cpu_rms_norm_bwd(const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw,
                          double *scratch, int64_t rows, int64_t D) {
    if (D == 0) return;
#pragma omp parallel if (rows * D > PAR_MIN_WORK)
    {
        int nt = omp_get_num_threads();
        col_partials cp = partials_init(scratch, D);
        int pending = 0;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            rms_norm_bwd_row(x + r * D, w, dy + r * D, dx ? dx + r * D : NULL, cp.bw, rstd[r], D);
            if (++pending == ROW_BLOCK) {
                partials_flush(&cp, D);
                pending = 0;
            }
        }
        partials_flush(&cp, D);
#pragma omp barrier
        if (dw) partials_reduce(scratch, nt, dw, NULL, D);
    }
}

// ---- L2 normalisation ----------------------------------------------------------------------------------------

static void l2n_fwd_row(const float *x, float *y, float *norm, int64_t n, float eps) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += (double)x[j] * (double)x[j];
    double nrm = sqrt(s);
    float inv = (float)(1.0 / (nrm > eps ? nrm : (double)eps));
    *norm = (float)nrm;
    for (int64_t j = 0; j < n; j++) y[j] = x[j] * inv;
}

static void l2n_fwd_cols(const float *x, float *y, float *norm, int64_t n, int64_t inner, int64_t w, float eps) {
    double s[CHUNK];
    float inv[CHUNK];
    for (int64_t c = 0; c < w; c++) s[c] = 0.0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t c = 0; c < w; c++) s[c] += (double)x[k * inner + c] * (double)x[k * inner + c];
    for (int64_t c = 0; c < w; c++) {
        double nrm = sqrt(s[c]);
        norm[c] = (float)nrm;
        inv[c] = (float)(1.0 / (nrm > eps ? nrm : (double)eps));
    }
    for (int64_t k = 0; k < n; k++)
        for (int64_t c = 0; c < w; c++) y[k * inner + c] = x[k * inner + c] * inv[c];
}

void gvm_cpu_l2_normalize_fwd(const float *x, float *y, float *norm, int64_t outer, int64_t n, int64_t inner,
                              float eps) {
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * n * inner > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        int64_t off = o * n * inner + i0;
        if (inner == 1)
            l2n_fwd_row(x + off, y + off, norm + o, n, eps);
        else
            l2n_fwd_cols(x + off, y + off, norm + o * inner + i0, n, inner, inner - i0 < CHUNK ? inner - i0 : CHUNK,
                         eps);
    }
}

// At ||x|| >= eps (PyTorch's clamp_min passes the gradient at equality) the norm is differentiated;
// below, max(||x||, eps) is the constant eps.
static inline void l2n_coef(float nrm, float eps, double s, float *scale, float *proj) {
    if (nrm >= eps) {
        *scale = 1.0f / nrm;
        *proj = (float)(s / (double)nrm);
    } else {
        *scale = 1.0f / eps;
        *proj = 0.0f;
    }
}

static void l2n_bwd_row(const float *y, float nrm, const float *dy, float *dx, int64_t n, float eps) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += (double)(dy[j] * y[j]);
    float scale, proj;
    l2n_coef(nrm, eps, s, &scale, &proj);
    for (int64_t j = 0; j < n; j++) dx[j] += dy[j] * scale - y[j] * proj;
}

static void l2n_bwd_cols(const float *y, const float *norm, const float *dy, float *dx, int64_t n, int64_t inner,
                         int64_t w, float eps) {
    double s[CHUNK];
    float scale[CHUNK], proj[CHUNK];
    for (int64_t c = 0; c < w; c++) s[c] = 0.0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t c = 0; c < w; c++) s[c] += (double)(dy[k * inner + c] * y[k * inner + c]);
    for (int64_t c = 0; c < w; c++) l2n_coef(norm[c], eps, s[c], &scale[c], &proj[c]);
    for (int64_t k = 0; k < n; k++)
        for (int64_t c = 0; c < w; c++) dx[k * inner + c] += dy[k * inner + c] * scale[c] - y[k * inner + c] * proj[c];
}

void gvm_cpu_l2_normalize_bwd(const float *y, const float *norm, const float *dy, float *dx, int64_t outer, int64_t n,
                              int64_t inner, float eps) {
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * n * inner > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        int64_t off = o * n * inner + i0;
        if (inner == 1)
            l2n_bwd_row(y + off, norm[o], dy + off, dx + off, n, eps);
        else
            l2n_bwd_cols(y + off, norm + o * inner + i0, dy + off, dx + off, n, inner,
                         inner - i0 < CHUNK ? inner - i0 : CHUNK, eps);
    }
}

// ---- cosine similarity ---------------------------------------------------------------------------------------

static inline float cos_value(double saa, double sbb, double sab, float eps, float *na, float *nb) {
    double a = sqrt(saa), b = sqrt(sbb);
    *na = (float)a;
    *nb = (float)b;
    return (float)(sab / ((a > eps ? a : (double)eps) * (b > eps ? b : (double)eps)));
}

void gvm_cpu_cosine_similarity_fwd(const float *a, const float *b, float *y, float *na, float *nb, int64_t outer,
                                   int64_t n, int64_t inner, float eps) {
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * n * inner > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        const float *ap = a + o * n * inner + i0, *bp = b + o * n * inner + i0;
        int64_t oi = o * inner + i0;
        if (inner == 1) {
            double saa = 0.0, sbb = 0.0, sab = 0.0;
#pragma omp simd reduction(+ : saa, sbb, sab)
            for (int64_t j = 0; j < n; j++) {
                saa += (double)ap[j] * (double)ap[j];
                sbb += (double)bp[j] * (double)bp[j];
                sab += (double)ap[j] * (double)bp[j];
            }
            y[oi] = cos_value(saa, sbb, sab, eps, &na[oi], &nb[oi]);
            continue;
        }
        int64_t w = inner - i0 < CHUNK ? inner - i0 : CHUNK;
        double saa[CHUNK], sbb[CHUNK], sab[CHUNK];
        for (int64_t c = 0; c < w; c++) saa[c] = sbb[c] = sab[c] = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const float *ar = ap + k * inner, *br = bp + k * inner;
            for (int64_t c = 0; c < w; c++) {
                saa[c] += (double)ar[c] * (double)ar[c];
                sbb[c] += (double)br[c] * (double)br[c];
                sab[c] += (double)ar[c] * (double)br[c];
            }
        }
        for (int64_t c = 0; c < w; c++) y[oi + c] = cos_value(saa[c], sbb[c], sab[c], eps, &na[oi + c], &nb[oi + c]);
    }
}

// Coefficients of the gradient for one output: da = ka * b - ta * a, db = ka * a - tb * b (see ops/norm.c).
static inline void cos_coef(float g, float y, float na, float nb, float eps, float *ka, float *ta, float *tb) {
    double ca = na > eps ? na : eps, cb = nb > eps ? nb : eps;
    *ka = (float)(g / (ca * cb));
    *ta = na > 0.0f ? (float)(g * (double)y / (ca * na)) : 0.0f;
    *tb = nb > 0.0f ? (float)(g * (double)y / (cb * nb)) : 0.0f;
}

void gvm_cpu_cosine_similarity_bwd(const float *a, const float *b, const float *y, const float *na, const float *nb,
                                   const float *dy, float *da, float *db, int64_t outer, int64_t n, int64_t inner,
                                   float eps) {
    int64_t chunks = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * n * inner > PAR_MIN_WORK)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, i0 = (t % chunks) * CHUNK;
        int64_t w = inner - i0 < CHUNK ? inner - i0 : CHUNK;
        int64_t oi = o * inner + i0, off = o * n * inner + i0;
        float ka[CHUNK], ta[CHUNK], tb[CHUNK];
        for (int64_t c = 0; c < w; c++)
            cos_coef(dy[oi + c], y[oi + c], na[oi + c], nb[oi + c], eps, &ka[c], &ta[c], &tb[c]);
        if (inner == 1) {  // the last axis: one contiguous row
            const float *ar = a + off, *br = b + off;
            if (da)
                for (int64_t j = 0; j < n; j++) da[off + j] += ka[0] * br[j] - ta[0] * ar[j];
            if (db)
                for (int64_t j = 0; j < n; j++) db[off + j] += ka[0] * ar[j] - tb[0] * br[j];
            continue;
        }
        for (int64_t k = 0; k < n; k++) {
            const float *ar = a + off + k * inner, *br = b + off + k * inner;
            if (da) {
                float *dr = da + off + k * inner;
                for (int64_t c = 0; c < w; c++) dr[c] += ka[c] * br[c] - ta[c] * ar[c];
            }
            if (db) {
                float *dr = db + off + k * inner;
                for (int64_t c = 0; c < w; c++) dr[c] += ka[c] * ar[c] - tb[c] * br[c];
            }
        }
    }
}

// ---- weight normalisation ------------------------------------------------------------------------------------

void gvm_cpu_weight_norm_fwd(const float *g, const float *v, float *w, float *norm, int64_t O, int64_t K) {
#pragma omp parallel for schedule(static) if (O * K > PAR_MIN_WORK)
    for (int64_t o = 0; o < O; o++) {
        const float *vr = v + o * K;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < K; j++) s += (double)vr[j] * (double)vr[j];
        double nrm = sqrt(s);
        float f = (float)((double)g[o] / nrm);
        norm[o] = (float)nrm;
        for (int64_t j = 0; j < K; j++) w[o * K + j] = vr[j] * f;
    }
}

// With s = sum(dw * v): dg = s / ||v||,  dv = (g / ||v||) * (dw - v * s / ||v||^2).
void gvm_cpu_weight_norm_bwd(const float *g, const float *v, const float *norm, const float *dw, float *dg, float *dv,
                             int64_t O, int64_t K) {
#pragma omp parallel for schedule(static) if (O * K > PAR_MIN_WORK)
    for (int64_t o = 0; o < O; o++) {
        const float *vr = v + o * K, *gr = dw + o * K;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < K; j++) s += (double)(gr[j] * vr[j]);
        double nrm = norm[o];
        if (dg) dg[o] += (float)(s / nrm);
        if (dv) {
            float f = (float)((double)g[o] / nrm), c = (float)(s / (nrm * nrm));
            float *dr = dv + o * K;
            for (int64_t j = 0; j < K; j++) dr[j] += f * (gr[j] - vr[j] * c);
        }
    }
}
