// cpu/elementwise.c: CPU kernels of the elementwise ops (see elementwise.h).
//
// Speed comes from two things. (1) Every inner loop is specialised at compile time for its op and for
// the stride pattern of its inputs (contiguous or one broadcast value), by inlining a generic loop
// into a switch with constant arguments: the compiler then sees a plain `y[i] = a[i] + b[0]` and
// vectorises it. (2) The broadcast plan coalesces dims (core/broadcast.h), so identical shapes are one
// flat loop and x [B, T, D] + bias [D] is a [B*T, D] problem; the gradient of a broadcast input is a
// column sum, a row sum or, only for unusual patterns, a strided gather over the reduced dims. The
// functions holding the loops are GVM_VEC_CLONES (core/cpu/simd.h): built for SSE2, AVX2 and AVX-512; the
// unary ones are UN_CLONES, the same with FMA (see "math the compiler can vectorise").
#include "core/cpu/elementwise.h"


#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu/simd.h"
#include "core/error.h"
#include "core/rng.h"

#define INLINE static inline __attribute__((always_inline))

// Below these sizes a loop stays on one thread: fork/join would cost more than it saves.
#define PAR_MIN_CHEAP 65536   // memory-bound loops (add, relu, a gradient sum)
#define PAR_MIN_COSTLY 16384  // loops calling exp, erf, tanh, pow or Philox per element (a guided decode
                              // step's GELU, 2 x 4096, stays on one thread: forking for it cost more
                              // than the loop on a busy machine)
#define COL_TILE 256          // columns per task in a column sum (double accumulators on the stack)
#define MAX_PARTS 256         // most per-thread partial sums kept for a scalar gradient

static int threads_for(int64_t work, int64_t par_min) {
    int nt = work >= par_min ? omp_get_max_threads() : 1;
    return nt < 1 ? 1 : nt;
}

// ==== binary ops ==========================================================================================

INLINE float bin_apply(int op, float x, float y) {
    switch (op) {
    case GVM_BINARY_ADD: return x + y;
    case GVM_BINARY_SUB: return x - y;
    case GVM_BINARY_MUL: return x * y;
    default: return x / y;
    }
}

// The gradient reaching input `which` (0: a, 1: b) from upstream g at a = x, b = y.
INLINE float bin_grad(int op, int which, float g, float x, float y) {
    switch (op) {
    case GVM_BINARY_ADD: return g;
    case GVM_BINARY_SUB: return which ? -g : g;
    case GVM_BINARY_MUL: return which ? g * x : g * y;
    default: return which ? -g * (x / y) / y : g / y;  // x / y first: y * y could overflow
    }
}

// The same in double, for the terms of a reduction: a sum of many float terms can lose what their
// rounding errors add up to (div's -g x / y^2 near small y), a sum of exact products cannot.
INLINE double bin_grad_d(int op, int which, double g, double x, double y) {
    switch (op) {
    case GVM_BINARY_ADD: return g;
    case GVM_BINARY_SUB: return which ? -g : g;
    case GVM_BINARY_MUL: return which ? g * x : g * y;
    default: return which ? -g * (x / y) / y : g / y;
    }
}

// One loop per stride pattern (sa, sb in {0, 1}), so each is a plain vectorisable loop.
INLINE void fwd_run(int op, float *restrict y, const float *restrict a, int64_t sa, const float *restrict b,
                    int64_t sb, int64_t n) {
    if (sa && sb) {
        for (int64_t i = 0; i < n; i++) y[i] = bin_apply(op, a[i], b[i]);
    } else if (sa) {
        const float bv = b[0];
        for (int64_t i = 0; i < n; i++) y[i] = bin_apply(op, a[i], bv);
    } else if (sb) {
        const float av = a[0];
        for (int64_t i = 0; i < n; i++) y[i] = bin_apply(op, av, b[i]);
    } else {
        const float v = bin_apply(op, a[0], b[0]);
        for (int64_t i = 0; i < n; i++) y[i] = v;
    }
}

// gx[i] += grad for output elements that map one to one onto x's elements.
INLINE void map_run(int op, int which, float *restrict gx, const float *restrict g, const float *restrict a,
                    int64_t sa, const float *restrict b, int64_t sb, int64_t n) {
    if (sa && sb) {
        for (int64_t i = 0; i < n; i++) gx[i] += bin_grad(op, which, g[i], a[i], b[i]);
    } else if (sa) {
        const float bv = b[0];
        for (int64_t i = 0; i < n; i++) gx[i] += bin_grad(op, which, g[i], a[i], bv);
    } else if (sb) {
        const float av = a[0];
        for (int64_t i = 0; i < n; i++) gx[i] += bin_grad(op, which, g[i], av, b[i]);
    } else {
        for (int64_t i = 0; i < n; i++) gx[i] += bin_grad(op, which, g[i], a[0], b[0]);
    }
}

// Both inputs cover the output, each with its own gradient: one pass reads g, a and b once for both.
INLINE void map2_run(int op, float *restrict ga, float *restrict gb, const float *restrict g, const float *restrict a,
                     const float *restrict b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float gv = g[i], av = a[i], bv = b[i];
        ga[i] += bin_grad(op, 0, gv, av, bv);
        gb[i] += bin_grad(op, 1, gv, av, bv);
    }
}

// acc[i] += grad: the column-sum step (x is contiguous along the run, other rows add onto it).
INLINE void col_run(int op, int which, double *restrict acc, const float *restrict g, const float *restrict a,
                    int64_t sa, const float *restrict b, int64_t sb, int64_t n) {
    if (sa && sb) {
        for (int64_t i = 0; i < n; i++) acc[i] += bin_grad_d(op, which, g[i], a[i], b[i]);
    } else if (sa) {
        const float bv = b[0];
        for (int64_t i = 0; i < n; i++) acc[i] += bin_grad_d(op, which, g[i], a[i], bv);
    } else {  // x is contiguous along the run, so here x is b and sb == 1
        const float av = a[0];
        for (int64_t i = 0; i < n; i++) acc[i] += bin_grad_d(op, which, g[i], av, b[i]);
    }
}

// Sum of the grad over a run that x sees as one element. Eight independent accumulators, so the
// compiler can vectorise a sum it may not reorder.
INLINE double sum_run(int op, int which, const float *restrict g, const float *restrict a, int64_t sa,
                      const float *restrict b, int64_t sb, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    if (sa && sb) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += bin_grad_d(op, which, g[i + k], a[i + k], b[i + k]);
    } else if (sa) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += bin_grad_d(op, which, g[i + k], a[i + k], b[0]);
    } else if (sb) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += bin_grad_d(op, which, g[i + k], a[0], b[i + k]);
    }
    for (; i < n; i++) acc[0] += bin_grad_d(op, which, g[i], a[i * sa], b[i * sb]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The switches below turn a runtime (op, which) into a compile-time one for the inlined loops.
GVM_VEC_CLONES static void fwd_run_op(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb,
                                      int64_t n) {
    switch (op) {
    case GVM_BINARY_ADD: fwd_run(GVM_BINARY_ADD, y, a, sa, b, sb, n); break;
    case GVM_BINARY_SUB: fwd_run(GVM_BINARY_SUB, y, a, sa, b, sb, n); break;
    case GVM_BINARY_MUL: fwd_run(GVM_BINARY_MUL, y, a, sa, b, sb, n); break;
    default: fwd_run(GVM_BINARY_DIV, y, a, sa, b, sb, n); break;
    }
}

GVM_VEC_CLONES static void map_run_op(int op, int which, float *gx, const float *g, const float *a, int64_t sa,
                                      const float *b, int64_t sb, int64_t n) {
    switch (op * 2 + which) {
    case 0: map_run(GVM_BINARY_ADD, 0, gx, g, a, sa, b, sb, n); break;
    case 1: map_run(GVM_BINARY_ADD, 1, gx, g, a, sa, b, sb, n); break;
    case 2: map_run(GVM_BINARY_SUB, 0, gx, g, a, sa, b, sb, n); break;
    case 3: map_run(GVM_BINARY_SUB, 1, gx, g, a, sa, b, sb, n); break;
    case 4: map_run(GVM_BINARY_MUL, 0, gx, g, a, sa, b, sb, n); break;
    case 5: map_run(GVM_BINARY_MUL, 1, gx, g, a, sa, b, sb, n); break;
    case 6: map_run(GVM_BINARY_DIV, 0, gx, g, a, sa, b, sb, n); break;
    default: map_run(GVM_BINARY_DIV, 1, gx, g, a, sa, b, sb, n); break;
    }
}

GVM_VEC_CLONES static void map2_run_op(int op, float *ga, float *gb, const float *g, const float *a, const float *b,
                                       int64_t n) {
    switch (op) {
    case GVM_BINARY_ADD: map2_run(GVM_BINARY_ADD, ga, gb, g, a, b, n); break;
    case GVM_BINARY_SUB: map2_run(GVM_BINARY_SUB, ga, gb, g, a, b, n); break;
    case GVM_BINARY_MUL: map2_run(GVM_BINARY_MUL, ga, gb, g, a, b, n); break;
    default: map2_run(GVM_BINARY_DIV, ga, gb, g, a, b, n); break;
    }
}

GVM_VEC_CLONES static void col_run_op(int op, int which, double *acc, const float *g, const float *a, int64_t sa,
                                      const float *b, int64_t sb, int64_t n) {
    switch (op * 2 + which) {
    case 0: col_run(GVM_BINARY_ADD, 0, acc, g, a, sa, b, sb, n); break;
    case 1: col_run(GVM_BINARY_ADD, 1, acc, g, a, sa, b, sb, n); break;
    case 2: col_run(GVM_BINARY_SUB, 0, acc, g, a, sa, b, sb, n); break;
    case 3: col_run(GVM_BINARY_SUB, 1, acc, g, a, sa, b, sb, n); break;
    case 4: col_run(GVM_BINARY_MUL, 0, acc, g, a, sa, b, sb, n); break;
    case 5: col_run(GVM_BINARY_MUL, 1, acc, g, a, sa, b, sb, n); break;
    case 6: col_run(GVM_BINARY_DIV, 0, acc, g, a, sa, b, sb, n); break;
    default: col_run(GVM_BINARY_DIV, 1, acc, g, a, sa, b, sb, n); break;
    }
}

GVM_VEC_CLONES static double sum_run_op(int op, int which, const float *g, const float *a, int64_t sa, const float *b,
                                        int64_t sb, int64_t n) {
    switch (op * 2 + which) {
    case 0: return sum_run(GVM_BINARY_ADD, 0, g, a, sa, b, sb, n);
    case 1: return sum_run(GVM_BINARY_ADD, 1, g, a, sa, b, sb, n);
    case 2: return sum_run(GVM_BINARY_SUB, 0, g, a, sa, b, sb, n);
    case 3: return sum_run(GVM_BINARY_SUB, 1, g, a, sa, b, sb, n);
    case 4: return sum_run(GVM_BINARY_MUL, 0, g, a, sa, b, sb, n);
    case 5: return sum_run(GVM_BINARY_MUL, 1, g, a, sa, b, sb, n);
    case 6: return sum_run(GVM_BINARY_DIV, 0, g, a, sa, b, sb, n);
    default: return sum_run(GVM_BINARY_DIV, 1, g, a, sa, b, sb, n);
    }
}

void gvm_cpu_binary_fwd(gvm_binary_op op, const float *a, const float *b, float *y, const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    int64_t sa = gvm_broadcast_inner_stride(bc, 0), sb = gvm_broadcast_inner_stride(bc, 1);
    int nt = threads_for(n, PAR_MIN_CHEAP);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        gvm_broadcast_iter it;
        gvm_broadcast_run r;
        gvm_broadcast_iter_init(bc, &it, n * t / T, n * (t + 1) / T);
        while (gvm_broadcast_iter_next(bc, &it, &r))
            fwd_run_op(op, y + r.pos, a + r.off[0], sa, b + r.off[1], sb, r.len);
    }
}

// ---- gradient of one input -------------------------------------------------------------------------------

// A set of coalesced dims walked as an odometer, with an offset for each of three streams:
// 0 = the output (and its gradient), 1 = a, 2 = b.
typedef struct {
    int n;
    int64_t size[GVM_MAX_DIMS];
    int64_t stride[3][GVM_MAX_DIMS];
    int64_t count;  // product of sizes
} dim_set;

static void dim_set_add(dim_set *s, const gvm_broadcast *bc, const int64_t *out_stride, int d) {
    s->size[s->n] = bc->cshape[d];
    s->stride[0][s->n] = out_stride[d];
    s->stride[1][s->n] = bc->cstride[0][d];
    s->stride[2][s->n] = bc->cstride[1][d];
    s->n++;
    s->count *= bc->cshape[d];
}

// idx and off of flat position `flat` (row-major over the set's dims).
static void dim_set_seek(const dim_set *s, int64_t flat, int64_t *idx, int64_t off[3]) {
    off[0] = off[1] = off[2] = 0;
    for (int i = s->n - 1; i >= 0; i--) {
        idx[i] = flat % s->size[i];
        flat /= s->size[i];
        for (int k = 0; k < 3; k++) off[k] += idx[i] * s->stride[k][i];
    }
}

static inline void dim_set_step(const dim_set *s, int64_t *idx, int64_t off[3]) {
    for (int i = s->n - 1; i >= 0; i--) {
        for (int k = 0; k < 3; k++) off[k] += s->stride[k][i];
        if (++idx[i] < s->size[i]) return;
        for (int k = 0; k < 3; k++) off[k] -= s->size[i] * s->stride[k][i];
        idx[i] = 0;
    }
}

// x covers the output: one pass over the output in runs, like the forward.
static void grad_map(int op, int which, const float *a, const float *b, const float *gy, float *gx,
                     const gvm_broadcast *bc) {
    int64_t n = bc->numel, sa = gvm_broadcast_inner_stride(bc, 0), sb = gvm_broadcast_inner_stride(bc, 1);
    int nt = threads_for(n, PAR_MIN_CHEAP);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        gvm_broadcast_iter it;
        gvm_broadcast_run r;
        gvm_broadcast_iter_init(bc, &it, n * t / T, n * (t + 1) / T);
        while (gvm_broadcast_iter_next(bc, &it, &r))
            map_run_op(op, which, gx + r.pos, gy + r.pos, a + r.off[0], sa, b + r.off[1], sb, r.len);
    }
}

// x is a single value broadcast over everything: a full sum, split over threads; the per-thread
// partials are added in thread order so the result does not depend on scheduling.
static void grad_scalar(int op, int which, const float *a, const float *b, const float *gy, float *gx,
                        const gvm_broadcast *bc) {
    int64_t n = bc->numel, sa = gvm_broadcast_inner_stride(bc, 0), sb = gvm_broadcast_inner_stride(bc, 1);
    int nt = threads_for(n, PAR_MIN_CHEAP);
    if (nt > MAX_PARTS) nt = MAX_PARTS;
    double part[MAX_PARTS] = {0};
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        part[t] = sum_run_op(op, which, gy + lo, a + lo * sa, sa, b + lo * sb, sb, hi - lo);
    }
    double s = 0.0;
    for (int t = 0; t < nt; t++) s += part[t];
    gx[0] += (float)s;
}

// x is contiguous along the last coalesced dim and broadcast along some outer dims (x [B, T, D] +
// bias [D]: the bias gradient is the column sum of gy). Tasks are (row of x, tile of columns, slice of
// the reduced rows); the reduced rows are sliced only when x has too few row-tiles to keep every
// thread busy, and then the slices' partial sums are added in a fixed order.
static void grad_inner_kept(int op, int which, const float *a, const float *b, const float *gy, float *gx,
                            const gvm_broadcast *bc, const int64_t *out_stride) {
    int last = bc->cdim - 1;
    int64_t L = bc->cshape[last];
    int64_t sa = gvm_broadcast_inner_stride(bc, 0), sb = gvm_broadcast_inner_stride(bc, 1);
    dim_set kept = {.count = 1}, red = {.count = 1};
    for (int d = 0; d < last; d++) dim_set_add(bc->cstride[which][d] ? &kept : &red, bc, out_stride, d);
    int64_t tiles = (L + COL_TILE - 1) / COL_TILE;
    int64_t row_tiles = kept.count * tiles;
    int nt = threads_for(bc->numel, PAR_MIN_CHEAP);
    int64_t slices = 1;
    if (row_tiles < nt) slices = (nt + row_tiles - 1) / row_tiles;
    if (slices > red.count) slices = red.count;
    int64_t tasks = row_tiles * slices;
    double *partial = slices > 1 ? GVM_MALLOC((size_t)(tasks * COL_TILE) * sizeof(double)) : NULL;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t slice = task % slices, tile = (task / slices) % tiles, xrow = task / slices / tiles;
        int64_t c0 = tile * COL_TILE, w = L - c0 < COL_TILE ? L - c0 : COL_TILE;
        int64_t kidx[GVM_MAX_DIMS], ridx[GVM_MAX_DIMS], koff[3], roff[3];
        dim_set_seek(&kept, xrow, kidx, koff);
        int64_t r0 = red.count * slice / slices, r1 = red.count * (slice + 1) / slices;
        dim_set_seek(&red, r0, ridx, roff);
        double acc[COL_TILE];
        for (int64_t c = 0; c < w; c++) acc[c] = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            int64_t o = koff[0] + roff[0] + c0;
            col_run_op(op, which, acc, gy + o, a + koff[1] + roff[1] + c0 * sa, sa, b + koff[2] + roff[2] + c0 * sb,
                       sb, w);
            dim_set_step(&red, ridx, roff);
        }
        if (partial) {
            memcpy(partial + task * COL_TILE, acc, (size_t)w * sizeof(double));
        } else {
            float *dst = gx + xrow * L + c0;  // x's kept dims are exactly its own, contiguous
            for (int64_t c = 0; c < w; c++) dst[c] += (float)acc[c];
        }
    }
    if (partial) {
        for (int64_t rt = 0; rt < row_tiles; rt++) {
            int64_t xrow = rt / tiles, c0 = (rt % tiles) * COL_TILE, w = L - c0 < COL_TILE ? L - c0 : COL_TILE;
            for (int64_t c = 0; c < w; c++) {
                double s = 0.0;
                for (int64_t sl = 0; sl < slices; sl++) s += partial[(rt * slices + sl) * COL_TILE + c];
                gx[xrow * L + c0 + c] += (float)s;
            }
        }
        free(partial);
    }
}

// x is broadcast along the last coalesced dim (x [B, T, 1] * y [B, T, D], or x [C, 1] against
// [B, C, T]): each element of x sums contiguous runs of gy, one task per element of x.
static void grad_inner_reduced(int op, int which, const float *a, const float *b, const float *gy, float *gx,
                               const gvm_broadcast *bc, const int64_t *out_stride) {
    int last = bc->cdim - 1;
    int64_t L = bc->cshape[last];
    int64_t sa = gvm_broadcast_inner_stride(bc, 0), sb = gvm_broadcast_inner_stride(bc, 1);
    dim_set kept = {.count = 1}, red = {.count = 1};
    for (int d = 0; d < last; d++) dim_set_add(bc->cstride[which][d] ? &kept : &red, bc, out_stride, d);
    int nt = threads_for(bc->numel, PAR_MIN_CHEAP);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t j = 0; j < kept.count; j++) {
        int64_t kidx[GVM_MAX_DIMS], ridx[GVM_MAX_DIMS], koff[3], roff[3];
        dim_set_seek(&kept, j, kidx, koff);
        dim_set_seek(&red, 0, ridx, roff);
        double acc = 0.0;
        for (int64_t r = 0; r < red.count; r++) {
            acc += sum_run_op(op, which, gy + koff[0] + roff[0], a + koff[1] + roff[1], sa, b + koff[2] + roff[2], sb,
                              L);
            dim_set_step(&red, ridx, roff);
        }
        gx[j] += (float)acc;
    }
}

static void grad_input(int op, int which, const float *a, const float *b, const float *gy, float *gx,
                       const gvm_broadcast *bc) {
    if (gvm_broadcast_is_full(bc, which)) {
        grad_map(op, which, a, b, gy, gx, bc);
        return;
    }
    if (bc->cdim == 1) {  // not full in one dim: a single value everywhere
        grad_scalar(op, which, a, b, gy, gx, bc);
        return;
    }
    int64_t out_stride[GVM_MAX_DIMS];
    int64_t s = 1;
    for (int d = bc->cdim - 1; d >= 0; d--) {
        out_stride[d] = s;
        s *= bc->cshape[d];
    }
    if (gvm_broadcast_inner_stride(bc, which))
        grad_inner_kept(op, which, a, b, gy, gx, bc, out_stride);
    else
        grad_inner_reduced(op, which, a, b, gy, gx, bc, out_stride);
}

void gvm_cpu_binary_bwd(gvm_binary_op op, const float *a, const float *b, const float *gy, float *ga, float *gb,
                        const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    if (ga && gb && ga != gb && gvm_broadcast_is_full(bc, 0) && gvm_broadcast_is_full(bc, 1)) {
        // Same shapes, both gradients wanted: one fused pass, every element as the separate passes give it.
        int nt = threads_for(n, PAR_MIN_CHEAP);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t lo = n * t / T, hi = n * (t + 1) / T;
            map2_run_op(op, ga + lo, gb + lo, gy + lo, a + lo, b + lo, hi - lo);
        }
        return;
    }
    // Otherwise separate passes for a and b: ga and gb may be one buffer (a == b), and each loop then has
    // a single output it can vectorise over.
    if (ga) grad_input(op, 0, a, b, gy, ga, bc);
    if (gb) grad_input(op, 1, a, b, gy, gb, bc);
}

// ==== unary ops ===========================================================================================

// ---- math the compiler can vectorise --------------------------------------------------------------------
// libm's expf, tanhf, expm1f and erfcf are opaque calls that keep a loop scalar (PyTorch uses SIMD
// math for these). The versions below use only arithmetic, bit moves and selects, so -O3 vectorises the
// loops that call them. Their polynomials are minimax fits made for gvm (Lawson-weighted least squares on
// a dense grid in double, coefficients rounded to float one at a time from the highest, the rest refitted)
// and are checked in float against double: exp within 1 ulp (relative 7.5e-8), expm1 and tanh within
// 2 ulp, gelu and silu (values and gradients) within 2.1e-7 * max(1, |x|) (tests/test_elementwise.c).
//
// Every step a * b + c is written fmadd(a, b, c), a fused multiply-add: under -std=c11 GCC never contracts
// a * b + c, so otherwise each Horner step costs two instructions and two roundings. The unary loops are
// built as UN_CLONES, whose x86-64-v4 (AVX-512) and -v3 (AVX2) clones have FMA, so fmaf is one vector
// instruction there; fmaf is exactly rounded everywhere, so every clone gives the same bits (the baseline
// clone, for CPUs older than 2013, calls libm's fmaf). A build with neither clones nor FMA in its target
// (clang for baseline x86-64) uses a * b + c instead, rounding twice: same accuracy bounds, other bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define UN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define HAVE_FMA 1
#elif defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define UN_CLONES
#define HAVE_FMA 1
#else
#define UN_CLONES
#define HAVE_FMA 0
#endif

INLINE float fmadd(float a, float b, float c) {
#if HAVE_FMA
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

INLINE float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

INLINE uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// e^r for |r| <= ln2 / 2 as 1 + r (1 + r (c2 + ... + c6 r^4)): six FMAs, within 1 ulp.
INLINE float exp_poly(float r) {
    float p = fmadd(1.381458598e-03f, r, 8.368707262e-03f);
    p = fmadd(p, r, 4.166838899e-02f);
    p = fmadd(p, r, 1.666652113e-01f);
    p = fmadd(p, r, 4.999999404e-01f);
    p = fmadd(p, r, 1.0f);
    return fmadd(p, r, 1.0f);
}

// exp(x) = 2^n e^r with n = round(x / ln2) for x already in [-86, 88], where 2^n e^r is a normal float and
// 2^n goes straight into the exponent bits: the fast path for activations, which clamp (exp(-86) is 0 next
// to 1, exp(88) is already past anything they divide by).
INLINE float exp_bounded(float x) {
    // n = round(x / ln2) by adding 1.5 * 2^23: the integer lands in the low mantissa bits.
    float t = fmadd(x, 1.44269504088896341f, 12582912.0f);
    float nf = t - 12582912.0f;
    float r = fmadd(nf, -0.693359375f, x);  // ln2 in two parts, the first exact in n * C1
    r = fmadd(nf, 2.12194440e-4f, r);
    return bits_float(float_bits(exp_poly(r)) + (float_bits(t) << 23));
}

// exp(x) for every float: NaN in, NaN out; overflows to inf, underflows through denormals.
INLINE float v_exp(float x) {
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    xc = xc == xc ? xc : 0.0f;
    float t = fmadd(xc, 1.44269504088896341f, 12582912.0f);
    int32_t n = (int32_t)(float_bits(t) - 0x4B400000u);
    float nf = t - 12582912.0f;
    float r = fmadd(nf, -0.693359375f, xc);
    r = fmadd(nf, 2.12194440e-4f, r);
    // 2^n as two factors, each a normal float, so results from denormal to inf come out right.
    int32_t n1 = n / 2, n2 = n - n1;
    float y = exp_poly(r) * bits_float((uint32_t)(n1 + 127) << 23) * bits_float((uint32_t)(n2 + 127) << 23);
    return x == x ? y : x;
}

// exp(x) - 1: a Taylor polynomial near 0, where exp(x) - 1 would cancel.
INLINE float v_expm1(float x) {
    float small = fmadd(x, 1.0f / 40320, 1.0f / 5040);
    small = fmadd(x, small, 1.0f / 720);
    small = fmadd(x, small, 1.0f / 120);
    small = fmadd(x, small, 1.0f / 24);
    small = fmadd(x, small, 1.0f / 6);
    small = fmadd(x, small, 0.5f);
    small = x * fmadd(x, small, 1.0f);
    return fabsf(x) < 0.5f ? small : v_exp(x) - 1.0f;
}

// tanh: x + x^3 P(x^2) below 0.625, 1 - 2 / (exp(2|x|) + 1) above (inf gives exactly 1).
INLINE float v_tanh(float x) {
    float ax = fabsf(x), u = x * x;
    float p = fmadd(-6.1049480114e-03f, u, 2.1003641221e-02f);
    p = fmadd(p, u, -5.3852497469e-02f);
    p = fmadd(p, u, 1.3332782264e-01f);
    p = fmadd(p, u, -3.3333329100e-01f);
    float small = fmadd(x * u, p, x);
    float big = 1.0f - 2.0f / (v_exp(2.0f * ax) + 1.0f);
    return ax < 0.625f ? small : (x < 0.0f ? -big : big);
}

// gelu (erf form) and its derivative as plain polynomials, with no exp or division: that is what makes
// them fast. Both Phi(x) - 1/2 and gelu'(x) - 1/2 are odd and smooth, so each is x P(x^2) on |x| <= B,
// with P evaluated in u = 2 x^2 / B^2 - 1 in [-1, 1] (its coefficients there are small and of one size,
// so Horner loses nothing). Past B the functions are flat to float precision: Phi(5.45) = 1 - 2.5e-8
// and gelu'(6) = 1 - 3.5e-8; for x < -B the value is set to exactly 0 (gelu and its gradient die out,
// as in PyTorch, whose erf rounds to -1 there), and x > B is evaluated at B. NaN passes through.
// The error is absolute (about 1e-7, like PyTorch's erf), so where gelu itself is tiny (x < -4, |gelu| <
// 1.3e-4) its relative error grows, to ~25% at x = -5 (gelu = -1.4e-6): invisible next to values of order 1.
// Fitting log Phi instead would keep the tail relative, at the price of an exp per element.
#define PHI_B 5.45f
#define DGELU_B 6.0f
// Phi(x) = 0.5 + x P(u), degree 14 in u (fit 4.4e-8, in float 1.2e-7 absolute).
static const float k_phi_poly[15] = {
    4.604025453e-04f,  -1.187968301e-03f, 9.490876109e-04f,  -1.215347671e-03f, 3.940822091e-03f,
    -7.182567380e-03f, 1.006128918e-02f,  -1.432706043e-02f, 1.997629553e-02f,  -2.593938634e-02f,
    3.210764378e-02f,  -3.900123388e-02f, 4.811779037e-02f,  -6.474591792e-02f, 1.297292709e-01f};
// gelu'(x) = Phi(x) + x phi(x) = 0.5 + x P(u), degree 18 in u (fit 2.5e-8, in float 2.2e-7 absolute).
static const float k_dgelu_poly[19] = {
    2.771552419e-03f,  -6.890422199e-03f, 1.886360464e-03f,  1.630222658e-03f,  1.603089646e-02f,
    -3.296749666e-02f, 3.140518442e-02f,  -3.633761406e-02f, 5.444333330e-02f,  -6.575416028e-02f,
    6.686606258e-02f,  -6.431142986e-02f, 5.869455636e-02f,  -5.093631521e-02f, 4.455547780e-02f,
    -4.236553609e-02f, 4.605771601e-02f,  -5.934280902e-02f, 1.178977638e-01f};

// 0.5 + xc P(2 xc^2 / b^2 - 1) with xc = x clamped to [-b, b]; coef high to low.
INLINE float odd_poly(float x, float b, const float *coef, int n) {
    float xc = x > b ? b : x;
    xc = xc < -b ? -b : xc;
    float u = fmadd(xc * xc, 2.0f / (b * b), -1.0f);
    float p = coef[0];
#pragma GCC unroll 20
    for (int i = 1; i < n; i++) p = fmadd(p, u, coef[i]);
    return fmadd(xc, p, 0.5f);
}

INLINE float gelu_fwd1(float x) {
    float y = x * odd_poly(x, PHI_B, k_phi_poly, 15);
    return x < -PHI_B ? 0.0f : y;
}

INLINE float gelu_grad1(float x) {
    float d = odd_poly(x, DGELU_B, k_dgelu_poly, 19);
    return x < -DGELU_B ? 0.0f : d;
}

// Internal variant: pow with p == 2, as a product (exact and vectorisable).
#define UNARY_SQUARE GVM_UNARY_COUNT

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_TANH_C 0.044715f

// sigmoid(x) and 1 - sigmoid(x), both without cancellation or overflow.
INLINE void sigmoid_pair(float x, float *s, float *oms) {
    float e = v_exp(-fabsf(x));
    float inv = 1.0f / (1.0f + e);
    *s = x >= 0 ? inv : e * inv;
    *oms = x >= 0 ? e * inv : inv;
}

// silu's clamped input xc and e = exp(-xc). Clamping to [-88, 86] changes nothing a float can show
// (x sigmoid(x) < 1e-36 below, sigmoid(x) = 1 above) and keeps exp on its fast path; the forward divides the
// input clamped only from below, so silu(x) = x for large x and silu(-inf) is ~0 (-5e-37), not -inf.
INLINE float silu_e(float xl, float *xc) {
    *xc = xl > 86.0f ? 86.0f : xl;
    return exp_bounded(-*xc);
}

// gelu_tanh's s = sigmoid(2u), since 0.5 (1 + tanh(u)) = sigmoid(2u) (no cancellation for x < 0).
// -2u is capped where s has long since underflowed to 0 in f32, so exp never overflows.
INLINE void gelu_tanh_parts(float x, float *s, float *oms, float *du) {
    float u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
    float m2u = -2.0f * u;
    float e = v_exp(m2u > 80.0f ? 80.0f : m2u);  // a select, not fminf: a libm call would stop vectorisation
    *s = 1.0f / (1.0f + e);
    *oms = e * *s;
    *du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * x * x);
}

INLINE float un_apply(int op, float x, float p) {
    switch (op) {
    case GVM_UNARY_ADD_SCALAR: return x + p;
    case GVM_UNARY_MUL_SCALAR: return x * p;
    case GVM_UNARY_POW: return powf(x, p);
    case UNARY_SQUARE: return x * x;
    case GVM_UNARY_NEG: return -x;
    case GVM_UNARY_EXP: return v_exp(x);
    case GVM_UNARY_LOG: return logf(x);
    case GVM_UNARY_SQRT: return sqrtf(x);
    case GVM_UNARY_ABS: return fabsf(x);
    case GVM_UNARY_GELU: return gelu_fwd1(x);
    case GVM_UNARY_GELU_TANH: {
        float s, oms, du;
        gelu_tanh_parts(x, &s, &oms, &du);
        return x * s;
    }
    case GVM_UNARY_RELU: return x < 0.0f ? 0.0f : x;  // NaN passes through, as in PyTorch
    case GVM_UNARY_ELU: return x > 0.0f ? x : p * v_expm1(x);
    case GVM_UNARY_SILU: {  // x / (1 + exp(-x)): one exp and one division, no selects
        float xl = x < -88.0f ? -88.0f : x, xc;
        return xl / (1.0f + silu_e(xl, &xc));
    }
    case GVM_UNARY_TANH: return v_tanh(x);
    default: {  // GVM_UNARY_SIGMOID
        float s, oms;
        sigmoid_pair(x, &s, &oms);
        return s;
    }
    }
}

// g * f'(x); y = f(x) from the forward (read where the derivative is simplest in terms of it, as
// PyTorch does for exp, sqrt, tanh and sigmoid).
INLINE float un_grad(int op, float g, float x, float y, float p) {
    switch (op) {
    case GVM_UNARY_ADD_SCALAR: return g;
    case GVM_UNARY_MUL_SCALAR: return g * p;
    case GVM_UNARY_POW: return p == 0.0f ? 0.0f : g * p * powf(x, p - 1.0f);
    case UNARY_SQUARE: return g * 2.0f * x;
    case GVM_UNARY_NEG: return -g;
    case GVM_UNARY_EXP: return g * y;
    case GVM_UNARY_LOG: return g / x;
    case GVM_UNARY_SQRT: return g / (2.0f * y);
    case GVM_UNARY_ABS: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case GVM_UNARY_GELU: return g * gelu_grad1(x);
    case GVM_UNARY_GELU_TANH: {  // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
        float s, oms, du;
        gelu_tanh_parts(x, &s, &oms, &du);
        return g * (s + 2.0f * x * s * oms * du);
    }
    case GVM_UNARY_RELU: return x > 0.0f ? g : 0.0f;
    case GVM_UNARY_ELU: return x > 0.0f ? g : g * p * v_exp(x);
    case GVM_UNARY_SILU: {  // s (1 + x (1 - s)), with 1 - s = e s (no cancellation)
        float xc, e = silu_e(x < -88.0f ? -88.0f : x, &xc);
        float s = 1.0f / (1.0f + e);
        return g * (s * fmadd(xc, e * s, 1.0f));
    }
    case GVM_UNARY_TANH: return g * (1.0f - y * y);
    default: return g * y * (1.0f - y);  // GVM_UNARY_SIGMOID
    }
}

INLINE void un_fwd_loop(int op, const float *restrict x, float *restrict y, int64_t n, float p) {
    for (int64_t i = 0; i < n; i++) y[i] = un_apply(op, x[i], p);
}

INLINE void un_bwd_loop(int op, const float *restrict x, const float *restrict y, const float *restrict gy,
                        float *restrict gx, int64_t n, float p) {
    for (int64_t i = 0; i < n; i++) gx[i] += un_grad(op, gy[i], x[i], y[i], p);
}

UN_CLONES static void un_fwd_op(int op, const float *x, float *y, int64_t n, float p) {
    switch (op) {
    case GVM_UNARY_ADD_SCALAR: un_fwd_loop(GVM_UNARY_ADD_SCALAR, x, y, n, p); break;
    case GVM_UNARY_MUL_SCALAR: un_fwd_loop(GVM_UNARY_MUL_SCALAR, x, y, n, p); break;
    case GVM_UNARY_POW: un_fwd_loop(GVM_UNARY_POW, x, y, n, p); break;
    case UNARY_SQUARE: un_fwd_loop(UNARY_SQUARE, x, y, n, p); break;
    case GVM_UNARY_NEG: un_fwd_loop(GVM_UNARY_NEG, x, y, n, p); break;
    case GVM_UNARY_EXP: un_fwd_loop(GVM_UNARY_EXP, x, y, n, p); break;
    case GVM_UNARY_LOG: un_fwd_loop(GVM_UNARY_LOG, x, y, n, p); break;
    case GVM_UNARY_SQRT: un_fwd_loop(GVM_UNARY_SQRT, x, y, n, p); break;
    case GVM_UNARY_ABS: un_fwd_loop(GVM_UNARY_ABS, x, y, n, p); break;
    case GVM_UNARY_GELU: un_fwd_loop(GVM_UNARY_GELU, x, y, n, p); break;
    case GVM_UNARY_GELU_TANH: un_fwd_loop(GVM_UNARY_GELU_TANH, x, y, n, p); break;
    case GVM_UNARY_RELU: un_fwd_loop(GVM_UNARY_RELU, x, y, n, p); break;
    case GVM_UNARY_ELU: un_fwd_loop(GVM_UNARY_ELU, x, y, n, p); break;
    case GVM_UNARY_SILU: un_fwd_loop(GVM_UNARY_SILU, x, y, n, p); break;
    case GVM_UNARY_TANH: un_fwd_loop(GVM_UNARY_TANH, x, y, n, p); break;
    case GVM_UNARY_SIGMOID: un_fwd_loop(GVM_UNARY_SIGMOID, x, y, n, p); break;
    default: gvm_fatal(__FILE__, __LINE__, "unary: unknown op %d", op);
    }
}

UN_CLONES static void un_bwd_op(int op, const float *x, const float *y, const float *gy, float *gx, int64_t n,
                                float p) {
    switch (op) {
    case GVM_UNARY_ADD_SCALAR: un_bwd_loop(GVM_UNARY_ADD_SCALAR, x, y, gy, gx, n, p); break;
    case GVM_UNARY_MUL_SCALAR: un_bwd_loop(GVM_UNARY_MUL_SCALAR, x, y, gy, gx, n, p); break;
    case GVM_UNARY_POW: un_bwd_loop(GVM_UNARY_POW, x, y, gy, gx, n, p); break;
    case UNARY_SQUARE: un_bwd_loop(UNARY_SQUARE, x, y, gy, gx, n, p); break;
    case GVM_UNARY_NEG: un_bwd_loop(GVM_UNARY_NEG, x, y, gy, gx, n, p); break;
    case GVM_UNARY_EXP: un_bwd_loop(GVM_UNARY_EXP, x, y, gy, gx, n, p); break;
    case GVM_UNARY_LOG: un_bwd_loop(GVM_UNARY_LOG, x, y, gy, gx, n, p); break;
    case GVM_UNARY_SQRT: un_bwd_loop(GVM_UNARY_SQRT, x, y, gy, gx, n, p); break;
    case GVM_UNARY_ABS: un_bwd_loop(GVM_UNARY_ABS, x, y, gy, gx, n, p); break;
    case GVM_UNARY_GELU: un_bwd_loop(GVM_UNARY_GELU, x, y, gy, gx, n, p); break;
    case GVM_UNARY_GELU_TANH: un_bwd_loop(GVM_UNARY_GELU_TANH, x, y, gy, gx, n, p); break;
    case GVM_UNARY_RELU: un_bwd_loop(GVM_UNARY_RELU, x, y, gy, gx, n, p); break;
    case GVM_UNARY_ELU: un_bwd_loop(GVM_UNARY_ELU, x, y, gy, gx, n, p); break;
    case GVM_UNARY_SILU: un_bwd_loop(GVM_UNARY_SILU, x, y, gy, gx, n, p); break;
    case GVM_UNARY_TANH: un_bwd_loop(GVM_UNARY_TANH, x, y, gy, gx, n, p); break;
    case GVM_UNARY_SIGMOID: un_bwd_loop(GVM_UNARY_SIGMOID, x, y, gy, gx, n, p); break;
    default: gvm_fatal(__FILE__, __LINE__, "unary: unknown op %d", op);
    }
}

// pow with the exponents that have an exact cheaper form: x^2 as a product, x^0.5 as sqrt (its
// gradient g / (2 sqrt x) is the same derivative).
static int unary_variant(gvm_unary_op op, float p) {
    if (op == GVM_UNARY_POW && p == 2.0f) return UNARY_SQUARE;
    if (op == GVM_UNARY_POW && p == 0.5f) return GVM_UNARY_SQRT;
    return (int)op;
}

static int64_t unary_par_min(int op) {
    switch (op) {
    case GVM_UNARY_ADD_SCALAR:
    case GVM_UNARY_MUL_SCALAR:
    case UNARY_SQUARE:
    case GVM_UNARY_NEG:
    case GVM_UNARY_ABS:
    case GVM_UNARY_RELU: return PAR_MIN_CHEAP;
    default: return PAR_MIN_COSTLY;
    }
}

void gvm_cpu_unary_fwd(gvm_unary_op op, const float *x, float *y, int64_t n, float param) {
    int v = unary_variant(op, param);
    int nt = threads_for(n, unary_par_min(v));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        un_fwd_op(v, x + lo, y + lo, hi - lo, param);
    }
}

void gvm_cpu_unary_bwd(gvm_unary_op op, const float *x, const float *y, const float *gy, float *gx, int64_t n,
                       float param) {
    int v = unary_variant(op, param);
    int nt = threads_for(n, unary_par_min(v));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        un_bwd_op(v, x + lo, y + lo, gy + lo, gx + lo, hi - lo, param);
    }
}

// ==== dropout =============================================================================================

// Keep flags of elements 4*blk .. 4*blk+3. The uniform value must be exactly gvm_rng_uniform_at's
// (24 high bits of the Philox word scaled by 2^-24), so the mask is the documented one on every backend.
INLINE void dropout_block(uint64_t seed, uint64_t base, int64_t blk, float p, int keep[4]) {
    uint32_t w[4];
    gvm_philox4x32(seed, base + (uint64_t)blk, 0, w);
    for (int j = 0; j < 4; j++) keep[j] = (float)(w[j] >> 8) * (1.0f / 16777216.0f) >= p;
}

void gvm_cpu_dropout_fwd(const float *x, float *y, int64_t n, uint64_t seed, uint64_t base, float p) {
    const float scale = 1.0f / (1.0f - p);
    int64_t blocks = (n + 3) / 4;
    int nt = threads_for(n, PAR_MIN_COSTLY);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int keep[4];
        dropout_block(seed, base, blk, p, keep);
        int64_t i0 = blk * 4, m = n - i0 < 4 ? n - i0 : 4;
        for (int64_t j = 0; j < m; j++) y[i0 + j] = keep[j] ? x[i0 + j] * scale : 0.0f;
    }
}

void gvm_cpu_dropout_bwd(const float *gy, float *gx, int64_t n, uint64_t seed, uint64_t base, float p) {
    const float scale = 1.0f / (1.0f - p);
    int64_t blocks = (n + 3) / 4;
    int nt = threads_for(n, PAR_MIN_COSTLY);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int keep[4];
        dropout_block(seed, base, blk, p, keep);
        int64_t i0 = blk * 4, m = n - i0 < 4 ? n - i0 : 4;
        for (int64_t j = 0; j < m; j++)
            if (keep[j]) gx[i0 + j] += gy[i0 + j] * scale;
    }
}

// ==== masked_fill =========================================================================================

void gvm_cpu_masked_fill_fwd(const float *a, const uint8_t *mask, float *y, float value, const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    int64_t sm = gvm_broadcast_inner_stride(bc, 1);
    int nt = threads_for(n, PAR_MIN_CHEAP);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        gvm_broadcast_iter it;
        gvm_broadcast_run r;
        gvm_broadcast_iter_init(bc, &it, n * t / T, n * (t + 1) / T);
        while (gvm_broadcast_iter_next(bc, &it, &r)) {
            const float *restrict ar = a + r.off[0];
            const uint8_t *restrict mr = mask + r.off[1];
            float *restrict yr = y + r.pos;
            if (sm) {
                for (int64_t i = 0; i < r.len; i++) {
                    float av = ar[i];  // loaded unconditionally, so the select vectorises
                    yr[i] = mr[i] ? value : av;
                }
            } else if (mr[0]) {
                for (int64_t i = 0; i < r.len; i++) yr[i] = value;
            } else {
                memcpy(yr, ar, (size_t)r.len * sizeof(float));
            }
        }
    }
}

void gvm_cpu_masked_fill_bwd(const uint8_t *mask, const float *gy, float *ga, const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    int64_t sm = gvm_broadcast_inner_stride(bc, 1);
    int nt = threads_for(n, PAR_MIN_CHEAP);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        gvm_broadcast_iter it;
        gvm_broadcast_run r;
        gvm_broadcast_iter_init(bc, &it, n * t / T, n * (t + 1) / T);
        while (gvm_broadcast_iter_next(bc, &it, &r)) {
            const uint8_t *restrict mr = mask + r.off[1];
            const float *restrict gr = gy + r.pos;
            float *restrict dst = ga + r.pos;  // a covers the output, so its offsets are the output's
            if (sm) {
                for (int64_t i = 0; i < r.len; i++) {
                    float gv = gr[i];
                    dst[i] += mr[i] ? 0.0f : gv;
                }
            } else if (!mr[0]) {
                for (int64_t i = 0; i < r.len; i++) dst[i] += gr[i];
            }
        }
    }
}
