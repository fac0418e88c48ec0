// cpu/reduce.c: CPU kernels of the reductions (see reduce.h). Inputs are x [outer, n, inner].
//
// Two loop shapes: when inner == 1 each output reduces one contiguous row; otherwise a task owns a block
// of outputs and walks the n rows of that block, so the innermost loop always runs over contiguous memory
// and vectorises. Sums accumulate in double (goldens compare at 1e-5). Every result is independent of the
// thread count: each output's terms are added in an order fixed by the shape, and partial sums are
// combined in a fixed order.
#include "core/cpu/reduce.h"

#include <omp.h>
#include <stddef.h>

#include "core/cpu/simd.h"

#define PAR_MIN 32768     // elements of work below which a loop stays on one thread
#define INNER_BLOCK 128   // outputs one task of max / mean_pool accumulates at once (they stay in L1)
#define SUM_BLOCK 2048    // widest block of a column sum (16 KiB of double accumulators)
#define ROW_CHUNKS 64     // a few long rows are cut into this many pieces reduced in parallel
#define FEW_ROWS 8        // fewer rows than this (and enough work) take the chunked path

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- sum / mean --------------------------------------------------------------------------------------------

// Sum of x[0..n) in double. Eight independent accumulators break the dependency chain of one running sum
// (without -ffast-math the compiler may not reassociate a single accumulator) and let it vectorise.
static inline __attribute__((always_inline)) double sum_span(const float *x, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += (double)x[i];
    return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// The vector-width clones around sum_span: a run of rows, and one span.
GVM_VEC_CLONES static void sum_row_run(const float *x, float *y, int64_t rows, int64_t n, double scale) {
    for (int64_t o = 0; o < rows; o++) y[o] = (float)(sum_span(x + o * n, n) * scale);
}

GVM_VEC_CLONES static double sum_span_v(const float *x, int64_t n) { return sum_span(x, n); }

// inner == 1: x [outer, n] -> y [outer]
static void sum_rows(const float *x, float *y, int64_t outer, int64_t n, double scale) {
    if (outer >= FEW_ROWS || outer * n < PAR_MIN) {
        int nt = outer * n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t lo = outer * t / T, hi = outer * (t + 1) / T;
            sum_row_run(x + lo * n, y + lo, hi - lo, n, scale);
        }
        return;
    }
    // A few long rows (GVM_AXIS_ALL above all): partial sums of fixed chunks, added in chunk order.
    double part[FEW_ROWS][ROW_CHUNKS];
    int64_t chunk = (n + ROW_CHUNKS - 1) / ROW_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < outer * ROW_CHUNKS; t++) {
        int64_t o = t / ROW_CHUNKS, c = t % ROW_CHUNKS;
        int64_t lo = min64(n, c * chunk), hi = min64(n, lo + chunk);
        part[o][c] = sum_span_v(x + o * n + lo, hi - lo);
    }
    for (int64_t o = 0; o < outer; o++) {
        double s = 0.0;
        for (int c = 0; c < ROW_CHUNKS; c++) s += part[o][c];
        y[o] = (float)(s * scale);
    }
}

// y[0..len) = scale * sum over the n rows (stride `inner`) of x's columns [0, len), len <= SUM_BLOCK. Rows
// are added four at a time, so the accumulators are loaded and stored once per four rows (the loop is
// bound by those L1 moves, not by the adds).
GVM_VEC_CLONES static void sum_columns(const float *x, float *y, int64_t n, int64_t inner, int64_t len,
                                       double scale) {
    double acc[SUM_BLOCK];
    for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const float *r0 = x + k * inner, *r1 = r0 + inner, *r2 = r1 + inner, *r3 = r2 + inner;
        for (int64_t j = 0; j < len; j++)
            acc[j] += ((double)r0[j] + (double)r1[j]) + ((double)r2[j] + (double)r3[j]);
    }
    for (; k < n; k++)
        for (int64_t j = 0; j < len; j++) acc[j] += (double)x[k * inner + j];
    for (int64_t j = 0; j < len; j++) y[j] = (float)(acc[j] * scale);
}

// inner > 1: blocks of columns, each summing its n rows with a contiguous inner loop. Blocks are as wide as
// the thread count allows: a long contiguous run per row streams from memory, where a short one (128
// floats every 8 KiB) leaves the prefetcher a new page for every row. A column's sum does not depend on
// the block it falls in, so the width may follow the thread count.
static void sum_blocks(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale) {
    int64_t work = outer * n * inner, width = SUM_BLOCK;
    int nt = work >= PAR_MIN ? omp_get_max_threads() : 1;
    while (width > 128 && outer * ((inner + width - 1) / width) < nt) width /= 2;
    int64_t blocks = (inner + width - 1) / width;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN)
    for (int64_t t = 0; t < outer * blocks; t++) {
        int64_t o = t / blocks, i0 = (t % blocks) * width;
        sum_columns(x + o * n * inner + i0, y + o * inner + i0, n, inner, min64(width, inner - i0), scale);
    }
}

void gvm_cpu_sum_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale) {
    if (inner == 1)
        sum_rows(x, y, outer, n, scale);
    else
        sum_blocks(x, y, outer, n, inner, scale);
}

// dx[k, :] += scale * g[:] for `rows` rows of one outer slice.
GVM_VEC_CLONES static void add_rows(float *restrict d, const float *restrict g, int64_t rows, int64_t inner,
                                    float scale) {
    if (inner == 1) {
        const float v = scale * g[0];
        for (int64_t k = 0; k < rows; k++) d[k] += v;
        return;
    }
    for (int64_t k = 0; k < rows; k++)
        for (int64_t i = 0; i < inner; i++) d[k * inner + i] += scale * g[i];
}

void gvm_cpu_sum_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, float scale) {
    // The outer * n rows are split evenly among threads; a thread's range may span several outer slices.
    int64_t rows = outer * n;
    int nt = rows * inner >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = rows * t / T, hi = rows * (t + 1) / T;
        while (lo < hi) {
            int64_t o = lo / n, end = min64((o + 1) * n, hi);
            add_rows(dx + lo * inner, dy + o * inner, end - lo, inner, scale);
            lo = end;
        }
    }
}

// ---- max ---------------------------------------------------------------------------------------------------

// Should candidate v replace the running best b? Strictly greater keeps the FIRST maximum; a NaN replaces
// a number, and once the best is NaN nothing replaces it (the first NaN wins, as torch.max returns it).
static inline int max_takes(float v, float b) { return !(v <= b) && b == b; }

static void max_span(const float *x, int64_t n, float *best, int64_t *at) {
    float b = x[0];
    int64_t bi = 0;
    for (int64_t k = 1; k < n; k++)
        if (max_takes(x[k], b)) {
            b = x[k];
            bi = k;
        }
    *best = b;
    *at = bi;
}

static void max_rows(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n) {
    if (outer >= FEW_ROWS || outer * n < PAR_MIN) {
#pragma omp parallel for schedule(static) if (outer * n >= PAR_MIN)
        for (int64_t o = 0; o < outer; o++) {
            int64_t at;
            max_span(x + o * n, n, &y[o], &at);
            if (arg) arg[o] = at;
        }
        return;
    }
    // Chunk maxima combined in chunk order with the same rule: still the first maximum of the row.
    float part[FEW_ROWS][ROW_CHUNKS];
    int64_t part_at[FEW_ROWS][ROW_CHUNKS];
    int64_t chunk = (n + ROW_CHUNKS - 1) / ROW_CHUNKS;
    int64_t used = (n + chunk - 1) / chunk;  // chunks that hold elements (each non-empty)
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < outer * used; t++) {
        int64_t o = t / used, c = t % used;
        int64_t lo = c * chunk, hi = min64(n, lo + chunk);
        max_span(x + o * n + lo, hi - lo, &part[o][c], &part_at[o][c]);
        part_at[o][c] += lo;
    }
    for (int64_t o = 0; o < outer; o++) {
        float b = part[o][0];
        int64_t bi = part_at[o][0];
        for (int64_t c = 1; c < used; c++)
            if (max_takes(part[o][c], b)) {
                b = part[o][c];
                bi = part_at[o][c];
            }
        y[o] = b;
        if (arg) arg[o] = bi;
    }
}

static void max_blocks(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner) {
    int64_t blocks = (inner + INNER_BLOCK - 1) / INNER_BLOCK;
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_MIN)
    for (int64_t t = 0; t < outer * blocks; t++) {
        int64_t o = t / blocks, i0 = (t % blocks) * INNER_BLOCK, len = min64(INNER_BLOCK, inner - i0);
        float best[INNER_BLOCK];
        int64_t at[INNER_BLOCK];
        const float *xo = x + o * n * inner + i0;
        for (int64_t j = 0; j < len; j++) {
            best[j] = xo[j];
            at[j] = 0;
        }
        for (int64_t k = 1; k < n; k++) {
            const float *row = xo + k * inner;
            for (int64_t j = 0; j < len; j++)
                if (max_takes(row[j], best[j])) {
                    best[j] = row[j];
                    at[j] = k;
                }
        }
        for (int64_t j = 0; j < len; j++) y[o * inner + i0 + j] = best[j];
        if (arg)
            for (int64_t j = 0; j < len; j++) arg[o * inner + i0 + j] = at[j];
    }
}

void gvm_cpu_max_fwd(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner) {
    if (inner == 1)
        max_rows(x, y, arg, outer, n);
    else
        max_blocks(x, y, arg, outer, n, inner);
}

void gvm_cpu_max_bwd(const float *dy, const int64_t *arg, float *dx, int64_t outer, int64_t n, int64_t inner) {
    // Each (o, i) owns a distinct fibre of dx, so the outputs can be split freely among threads.
#pragma omp parallel for schedule(static) if (outer * inner >= PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dx + o * n * inner;
        const float *g = dy + o * inner;
        const int64_t *a = arg + o * inner;
        for (int64_t i = 0; i < inner; i++) d[a[i] * inner + i] += g[i];
    }
}

// ---- masked mean pooling -----------------------------------------------------------------------------------

void gvm_cpu_mean_pool_fwd(const float *x, const uint8_t *mask, float *y, int64_t outer, int64_t n, int64_t inner) {
    int64_t blocks = (inner + INNER_BLOCK - 1) / INNER_BLOCK;
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_MIN)
    for (int64_t t = 0; t < outer * blocks; t++) {
        int64_t o = t / blocks, i0 = (t % blocks) * INNER_BLOCK, len = min64(INNER_BLOCK, inner - i0);
        const uint8_t *m = mask ? mask + o * n : NULL;
        double acc[INNER_BLOCK];
        for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
        int64_t count = 0;
        const float *xo = x + o * n * inner + i0;
        for (int64_t k = 0; k < n; k++) {
            if (m && !m[k]) continue;
            count++;
            const float *row = xo + k * inner;
            for (int64_t j = 0; j < len; j++) acc[j] += (double)row[j];
        }
        float *yo = y + o * inner + i0;
        for (int64_t j = 0; j < len; j++) yo[j] = count ? (float)(acc[j] / (double)count) : 0.0f;
    }
}

void gvm_cpu_mean_pool_bwd(const float *dy, const uint8_t *mask, float *dx, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        const uint8_t *m = mask ? mask + o * n : NULL;
        int64_t count = n;
        if (m) {
            count = 0;
            for (int64_t k = 0; k < n; k++) count += m[k] != 0;
        }
        if (count == 0) continue;  // the output was the constant 0
        float inv = (float)(1.0 / (double)count);
        const float *g = dy + o * inner;
        for (int64_t k = 0; k < n; k++) {
            if (m && !m[k]) continue;
            float *d = dx + (o * n + k) * inner;
            for (int64_t i = 0; i < inner; i++) d[i] += g[i] * inv;
        }
    }
}
