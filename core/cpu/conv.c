// cpu/conv.c: conv1d and conv_transpose1d on the CPU (see conv.h), lowered to im2col + sgemm.
//
// Both ops are one linear map and its adjoint. Call the tensor that im2col unfolds the "signal" (conv1d:
// x; transposed: y) and the other one the "columns side" (conv1d: y; transposed: x). Per batch item b and
// group g, with W_g [Cc/G, Cs/G * K] (conv1d's [Cout, Cin/G, K] and transposed's [Cin, Cout/G, K] are
// both this layout):
//   conv     col[b] = W_g im2col(sig[b])          conv1d forward, transposed dx
//   adjoint  sig[b] += col2im(W_g^T col[b])       transposed forward, conv1d dx
//   weight   dW_g += dcol[b] im2col(sig[b])^T     both weight gradients
// The columns-side length is cut into chunks so an im2col buffer stays under 4 MiB (bounded for long
// audio). Work items are (batch item, chunk); when there are enough of them they run side by
// side, each with its own buffer and single-threaded BLAS, otherwise in turn with threaded BLAS.
#include "core/cpu/conv.h"

#include <omp.h>
#include <string.h>

#include "core/cpu/gemm.h"

// Scratch comes from the activation arena and stays there until the step ends, so it is bounded: one
// im2col buffer holds at most 4 MiB, and all threads' buffers together at most 32 MiB (but never less than
// 256 KiB each). Private weight-gradient partials (one per thread) are used only while they all fit in
// 32 MiB; beyond that the weight pass runs its items in turn with threaded BLAS.
#define COL_CAP_FLOATS ((int64_t)1 << 20)
#define COL_TOTAL_FLOATS ((int64_t)1 << 23)
#define COL_MIN_FLOATS ((int64_t)1 << 16)
#define DW_PARTIALS_FLOATS ((int64_t)1 << 23)
#define MIN_CHUNK 64

typedef struct {
    int64_t B, G, K, S, P, D;
    int64_t Cs, Ls;       // signal side: channels, length
    int64_t Cc, Lc;       // columns side: channels, length
    int64_t Csg, Ccg, R;  // per group: Cs/G, Cc/G, and the GEMM inner dim R = Csg * K
    int64_t chunk, n_chunks;
    bool direct;  // K = 1, stride 1, no padding, Ls = Lc: im2col is the identity and is skipped
    int nthr;     // threads running work items side by side; 1 = in turn with threaded BLAS
} lowered;

static lowered lower(const gvm_conv1d_geom *g, bool transposed) {
    lowered L;
    L.B = g->B;
    L.G = g->groups;
    L.K = g->K;
    L.S = g->stride;
    L.P = g->padding;
    L.D = g->dilation;
    L.Cs = transposed ? g->Cout : g->Cin;
    L.Ls = transposed ? g->Tout : g->T;
    L.Cc = transposed ? g->Cin : g->Cout;
    L.Lc = transposed ? g->T : g->Tout;
    L.Csg = L.Cs / L.G;
    L.Ccg = L.Cc / L.G;
    L.R = L.Csg * L.K;
    L.direct = L.K == 1 && L.S == 1 && L.P == 0 && L.Ls == L.Lc;
    int maxthr = omp_get_max_threads();
    int64_t cap = COL_TOTAL_FLOATS / maxthr;
    cap = cap > COL_CAP_FLOATS ? COL_CAP_FLOATS : cap < COL_MIN_FLOATS ? COL_MIN_FLOATS : cap;
    L.chunk = cap / (L.R > 0 ? L.R : 1);
    if (L.chunk < MIN_CHUNK) L.chunk = MIN_CHUNK;
    if (L.chunk > L.Lc) L.chunk = L.Lc;
    if (L.chunk < 1) L.chunk = 1;
    // Even chunks: 75 columns as 38 + 37, not 73 + 2 (a 2-column GEMM wastes a whole pass over W).
    int64_t n = (L.Lc + L.chunk - 1) / L.chunk;
    if (n > 0) L.chunk = (L.Lc + n - 1) / n;
    // The adjoint runs even chunks, then odd ones, side by side: chunks i and i+2 must not reach the same
    // signal position, i.e. (chunk + 1) * S > (K - 1) * D.
    int64_t reach = (L.K - 1) * L.D / L.S + 1;
    if (L.chunk < reach) L.chunk = reach < L.Lc ? reach : L.Lc;
    L.n_chunks = (L.Lc + L.chunk - 1) / L.chunk;
    int64_t items = L.B * L.n_chunks;
    double item_flops = 2.0 * (double)L.Cc * (double)L.R * (double)L.chunk;
    // Side by side wins unless a few large GEMMs would leave threads idle (threaded BLAS splits them).
    bool outer = maxthr > 1 && items >= maxthr && (items % maxthr == 0 || items >= 4 * maxthr || item_flops < 4e6);
    L.nthr = outer ? maxthr : 1;
    return L;
}

// Threads of a pass; a weight pass only goes side by side when the per-thread partials are affordable.
static int pass_threads(const lowered *L, bool need_dw) {
    if (need_dw && (int64_t)L->nthr * L->Cc * L->R > DW_PARTIALS_FLOATS) return 1;
    return L->nthr;
}

static int64_t per_thread_floats(const lowered *L, bool need_dw) {
    int64_t n = L->direct ? 0 : L->R * L->chunk;
    if (need_dw && pass_threads(L, need_dw) > 1) n += L->Cc * L->R;  // a private weight-gradient partial
    return n;
}

int64_t gvm_cpu_conv1d_scratch_floats(const gvm_conv1d_geom *g, gvm_conv1d_kernel which, bool need_dw) {
    bool transposed = which == GVM_CONV_TRANSPOSE1D_FWD || which == GVM_CONV_TRANSPOSE1D_BWD;
    bool dw = need_dw && (which == GVM_CONV1D_BWD || which == GVM_CONV_TRANSPOSE1D_BWD);
    lowered L = lower(g, transposed);
    // The backward of conv1d also runs an adjoint pass, which needs a buffer per thread of L.nthr.
    int64_t n = pass_threads(&L, dw) * per_thread_floats(&L, dw);
    int64_t adj = L.nthr * per_thread_floats(&L, false);
    return n > adj ? n : adj;
}

// The chunk positions j in [0, n) whose signal position (t0 + j) * S + off lies in [0, Ls): [*lo, *hi).
static void valid_range(const lowered *L, int64_t t0, int64_t n, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t first = t0 * L->S + off;  // signal position of j = 0
    int64_t a = first >= 0 ? 0 : (-first + L->S - 1) / L->S;
    int64_t b = first > L->Ls - 1 ? 0 : (L->Ls - 1 - first) / L->S + 1;
    if (a > n) a = n;
    if (b > n) b = n;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

// buf [Csg * K, n]: row c * K + k holds sig_g[c, (t0 + j) * S - P + k * D] for j < n, zero outside.
// sig_g [Csg, Ls].
static void im2col(const lowered *L, const float *sig_g, int64_t t0, int64_t n, float *buf, bool par) {
    int64_t rows = L->R;
#pragma omp parallel for schedule(static) if (par && rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = r / L->K, k = r % L->K;
        const float *src = sig_g + c * L->Ls;
        float *row = buf + r * n;
        int64_t off = k * L->D - L->P, lo, hi;
        valid_range(L, t0, n, off, &lo, &hi);
        for (int64_t j = 0; j < lo; j++) row[j] = 0.0f;
        const float *s = src + (t0 + lo) * L->S + off;
        if (L->S == 1) {
            if (hi > lo) memcpy(row + lo, s, (size_t)(hi - lo) * sizeof(float));
        } else {
            for (int64_t j = lo; j < hi; j++) row[j] = s[(j - lo) * L->S];
        }
        for (int64_t j = hi; j < n; j++) row[j] = 0.0f;
    }
}

// The adjoint of im2col: sig_g[c, (t0 + j) * S - P + k * D] += buf[c * K + k, j] where in range.
// Rows of one channel hit overlapping positions, so threads split channels, not rows.
static void col2im(const lowered *L, const float *buf, int64_t t0, int64_t n, float *sig_g, bool par) {
#pragma omp parallel for schedule(static) if (par && L->R * n > 32768 && L->Csg > 1)
    for (int64_t c = 0; c < L->Csg; c++) {
        float *dst = sig_g + c * L->Ls;
        for (int64_t k = 0; k < L->K; k++) {
            const float *row = buf + (c * L->K + k) * n;
            int64_t off = k * L->D - L->P, lo, hi;
            valid_range(L, t0, n, off, &lo, &hi);
            float *d = dst + (t0 + lo) * L->S + off;
            const float *r = row + lo;
            int64_t m = hi - lo;
            if (L->S == 1) {
                for (int64_t j = 0; j < m; j++) d[j] += r[j];
            } else {
                for (int64_t j = 0; j < m; j++) d[j * L->S] += r[j];
            }
        }
    }
}

// One work item of the conv / weight pass: chunk ci of batch item b.
//   out != NULL:  out[b, :, chunk] = W im2col(sig[b]) (+ bias, or + out when beta = 1)
//   dcol != NULL: dw_acc += dcol[b, :, chunk] im2col(sig[b])^T
// sig [B, Cs, Ls], out and dcol [B, Cc, Lc], W and dw_acc [Cc, R].
static void item_conv(const lowered *L, int64_t b, int64_t ci, const float *sig, const float *W, float *out,
                      const float *bias, float beta, const float *dcol, float *dw_acc, float *buf, bool par) {
    int64_t t0 = ci * L->chunk;
    int64_t n = L->Lc - t0 < L->chunk ? L->Lc - t0 : L->chunk;
    for (int64_t g = 0; g < L->G; g++) {
        const float *sg = sig + (b * L->Cs + g * L->Csg) * L->Ls;
        const float *colm = buf;  // im2col(sig[b]) [R, n], row stride ldcol
        int64_t ldcol = n;
        if (L->direct) {
            colm = sg + t0;
            ldcol = L->Ls;
        } else {
            im2col(L, sg, t0, n, buf, par);
        }
        const float *Wg = W + g * L->Ccg * L->R;
        if (out) {
            float *og = out + (b * L->Cc + g * L->Ccg) * L->Lc + t0;
            float bt = beta;
            if (bias) {
                for (int64_t o = 0; o < L->Ccg; o++) {
                    float v = bias[g * L->Ccg + o];
                    for (int64_t j = 0; j < n; j++) og[o * L->Lc + j] = v;
                }
                bt = 1.0f;
            }
            gvm_cpu_sgemm(false, false, L->Ccg, n, L->R, 1.0f, Wg, L->R, colm, ldcol, bt, og, L->Lc);
        }
        if (dcol) {
            const float *dg = dcol + (b * L->Cc + g * L->Ccg) * L->Lc + t0;
            gvm_cpu_sgemm(false, true, L->Ccg, L->R, n, 1.0f, dg, L->Lc, colm, ldcol, 1.0f, dw_acc + g * L->Ccg * L->R,
                          L->R);
        }
    }
}

// One work item of the adjoint pass: sig[b] += col2im(W^T col[b, :, chunk]). col [B, Cc, Lc].
static void item_adjoint(const lowered *L, int64_t b, int64_t ci, const float *col, const float *W, float *sig,
                         float *buf, bool par) {
    int64_t t0 = ci * L->chunk;
    int64_t n = L->Lc - t0 < L->chunk ? L->Lc - t0 : L->chunk;
    for (int64_t g = 0; g < L->G; g++) {
        const float *Wg = W + g * L->Ccg * L->R;
        const float *cg = col + (b * L->Cc + g * L->Ccg) * L->Lc + t0;
        float *sg = sig + (b * L->Cs + g * L->Csg) * L->Ls;
        if (L->direct) {
            gvm_cpu_sgemm(true, false, L->R, n, L->Ccg, 1.0f, Wg, L->R, cg, L->Lc, 1.0f, sg + t0, L->Ls);
        } else {
            gvm_cpu_sgemm(true, false, L->R, n, L->Ccg, 1.0f, Wg, L->R, cg, L->Lc, 0.0f, buf, n);
            col2im(L, buf, t0, n, sg, par);
        }
    }
}

// The conv and/or weight pass over every (b, chunk); see item_conv. dw [Cc, R] is accumulated.
static void run_conv(const lowered *L, const float *sig, const float *W, float *out, const float *bias, float beta,
                     const float *dcol, float *dw, float *scratch) {
    int64_t items = L->B * L->n_chunks;
    bool need_dw = dcol != NULL;
    int nthr = pass_threads(L, need_dw);
    if (nthr == 1) {
        for (int64_t it = 0; it < items; it++)
            item_conv(L, it / L->n_chunks, it % L->n_chunks, sig, W, out, bias, beta, dcol, dw, scratch,
                      omp_get_max_threads() > 1);
        return;
    }
    int64_t stride = per_thread_floats(L, need_dw);
    int64_t buf_floats = L->direct ? 0 : L->R * L->chunk;
    int64_t wn = L->Cc * L->R;
    // Private weight-gradient partials, summed below in a fixed order (results do not depend on timing).
    if (need_dw)
        for (int t = 0; t < nthr; t++) memset(scratch + t * stride + buf_floats, 0, (size_t)wn * sizeof(float));
#pragma omp parallel num_threads(nthr)
    {
        int tid = omp_get_thread_num();
        float *buf = scratch + tid * stride;
        float *acc = need_dw ? buf + buf_floats : NULL;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++)
            item_conv(L, it / L->n_chunks, it % L->n_chunks, sig, W, out, bias, beta, dcol, acc, buf, false);
    }
    if (need_dw) {
#pragma omp parallel for schedule(static) if (wn * nthr > 65536)
        for (int64_t i = 0; i < wn; i++) {
            float s = 0.0f;
            for (int t = 0; t < nthr; t++) s += scratch[t * stride + buf_floats + i];
            dw[i] += s;
        }
    }
}

// The adjoint pass: sig += col2im(W^T col) over every (b, chunk). Neighbouring chunks of one batch item
// add into overlapping signal positions, so even chunks run first, then odd ones (see lower()).
static void run_adjoint(const lowered *L, const float *col, const float *W, float *sig, float *scratch) {
    if (L->nthr == 1) {
        for (int64_t b = 0; b < L->B; b++)
            for (int64_t ci = 0; ci < L->n_chunks; ci++)
                item_adjoint(L, b, ci, col, W, sig, scratch, omp_get_max_threads() > 1);
        return;
    }
    int64_t stride = per_thread_floats(L, false);
    for (int64_t phase = 0; phase < 2; phase++) {
        int64_t per_b = (L->n_chunks - phase + 1) / 2;  // chunks phase, phase + 2, ...
        int64_t items = L->B * per_b;
        if (items == 0) continue;
#pragma omp parallel num_threads(L->nthr)
        {
            float *buf = scratch + omp_get_thread_num() * stride;
#pragma omp for schedule(static)
            for (int64_t it = 0; it < items; it++)
                item_adjoint(L, it / per_b, phase + 2 * (it % per_b), col, W, sig, buf, false);
        }
    }
}

// db [C] += sum over b, t of dy [B, C, L].
static void bias_grad(const float *dy, int64_t B, int64_t C, int64_t Lt, float *db) {
#pragma omp parallel for schedule(static) if (B * C * Lt > 65536)
    for (int64_t c = 0; c < C; c++) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++) {
            const float *row = dy + (b * C + c) * Lt;
            float part = 0.0f;  // a row at a time in f32 (vectorises), rows summed in double
            for (int64_t t = 0; t < Lt; t++) part += row[t];
            acc += part;
        }
        db[c] += (float)acc;
    }
}

// ---- the four kernels ----------------------------------------------------------------------------------------

void gvm_cpu_conv1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                        float *scratch) {
    lowered L = lower(g, false);
    run_conv(&L, x, w, y, bias, 0.0f, NULL, NULL, scratch);
}

void gvm_cpu_conv1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db, float *scratch) {
    lowered L = lower(g, false);
    if (db) bias_grad(dy, g->B, g->Cout, g->Tout, db);
    if (dw) run_conv(&L, x, w, NULL, NULL, 0.0f, dy, dw, scratch);
    if (dx) run_adjoint(&L, dy, w, dx, scratch);
}

void gvm_cpu_conv_transpose1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                                  float *scratch) {
    lowered L = lower(g, true);
    int64_t rows = g->B * g->Cout;
#pragma omp parallel for schedule(static) if (rows * g->Tout > 65536)
    for (int64_t r = 0; r < rows; r++) {
        float v = bias ? bias[r % g->Cout] : 0.0f;
        float *yr = y + r * g->Tout;
        for (int64_t t = 0; t < g->Tout; t++) yr[t] = v;
    }
    run_adjoint(&L, x, w, y, scratch);
}

void gvm_cpu_conv_transpose1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db, float *scratch) {
    lowered L = lower(g, true);
    if (db) bias_grad(dy, g->B, g->Cout, g->Tout, db);
    // dx += W im2col(dy) and dw += x im2col(dy)^T share one im2col.
    if (dx || dw) run_conv(&L, dy, w, dx, NULL, 1.0f, dw ? x : NULL, dw, scratch);
}
