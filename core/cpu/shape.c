// cpu/shape.c: CPU kernels that move data (see shape.h): permute, slice/concat windows, index select,
// gather, casts, and their f32 gradients.
#include "core/cpu/shape.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "core/tensor.h"

#define PAR_MIN_BYTES (256 * 1024)  // data moved below which a loop stays on one thread
#define PIECE_ELEMS 16384           // long contiguous rows are split into pieces of this many elements
#define TILE 32                     // blocked transpose: TILE x TILE elements (4 KiB of f32) fit in L1
#define GATHER_COLS 256             // gather backward: columns one task owns

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static inline int64_t index_at(const void *idx, bool idx64, int64_t i) {
    return idx64 ? ((const int64_t *)idx)[i] : (int64_t)((const int32_t *)idx)[i];
}

static int thread_count(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// dst[i] (+)= src[i] for i < n, as a copy of esize-byte elements or an f32 accumulation.
static void span_move(char *dst, const char *src, int64_t n, size_t esize, bool acc) {
    if (!acc) {
        memcpy(dst, src, (size_t)n * esize);
        return;
    }
    float *d = (float *)dst;
    const float *s = (const float *)src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

// ---- permute ---------------------------------------------------------------------------------------------------
//
// The permutation is first simplified: size-1 dims are dropped and output dims that are adjacent, in order, in
// the input too are merged ([B, T, H, D] -> [B, H, T, D] stays 4-D, [A, B, C] -> [C, A, B] becomes a 2-D
// transpose [A*B, C] -> [C, A*B]). Then either the last dim stays last (copy contiguous rows) or it moves
// (TILE x TILE blocked transposes of the two dims that are contiguous in src and in dst).

typedef struct {
    int k;                             // dims after simplification
    int64_t size[GVM_MAX_DIMS];        // in dst order
    int64_t src_stride[GVM_MAX_DIMS];  // of each dst dim, in src
    int64_t dst_stride[GVM_MAX_DIMS];  // contiguous
    int64_t numel;
} permute_plan;

static permute_plan plan_permute(int ndim, const int64_t *shape, const int *perm) {
    permute_plan p;
    memset(&p, 0, sizeof p);
    int64_t stride[GVM_MAX_DIMS], s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
    p.numel = s;
    for (int j = 0; j < ndim; j++) {
        int d = perm[j];
        if (shape[d] == 1) continue;
        if (p.k > 0 && p.src_stride[p.k - 1] == shape[d] * stride[d]) {
            p.size[p.k - 1] *= shape[d];  // src dim d directly follows the previous one: one dim
            p.src_stride[p.k - 1] = stride[d];
        } else {
            p.size[p.k] = shape[d];
            p.src_stride[p.k] = stride[d];
            p.k++;
        }
    }
    s = 1;
    for (int j = p.k - 1; j >= 0; j--) {
        p.dst_stride[j] = s;
        s *= p.size[j];
    }
    return p;
}

// The last dim stays innermost: dst is rows of L contiguous elements, each a contiguous run of src.
static void permute_rows(const permute_plan *p, const char *src, char *dst, size_t esize, bool acc) {
    int k = p->k;
    int64_t L = p->size[k - 1], rows = p->numel / L;
#pragma omp parallel if ((size_t)p->numel * esize >= PAR_MIN_BYTES)
    {
        int64_t r0 = 0, r1 = rows;
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        r0 = rows * t / nt;
        r1 = rows * (t + 1) / nt;
#endif
        // An odometer over the outer dims, decoded once per thread, tracks the src offset of each row.
        int64_t pos[GVM_MAX_DIMS] = {0}, off = 0, rem = r0;
        for (int d = k - 2; d >= 0; d--) {
            pos[d] = rem % p->size[d];
            rem /= p->size[d];
            off += pos[d] * p->src_stride[d];
        }
        for (int64_t r = r0; r < r1; r++) {
            span_move(dst + (size_t)(r * L) * esize, src + (size_t)off * esize, L, esize, acc);
            for (int d = k - 2; d >= 0; d--) {
                off += p->src_stride[d];
                if (++pos[d] < p->size[d]) break;
                off -= pos[d] * p->src_stride[d];
                pos[d] = 0;
            }
        }
    }
}

// One tile of a transpose: dst[a * dst_a + b] (+)= src[a + b * src_b], a < na, b < nb (element offsets).
// always_inline with a constant esize turns the element move into one load and store.
static inline __attribute__((always_inline)) void tile_move(char *dst, const char *src, int64_t na, int64_t nb,
                                                            int64_t dst_a, int64_t src_b, size_t esize, bool acc) {
    for (int64_t a = 0; a < na; a++)
        for (int64_t b = 0; b < nb; b++) {
            char *d = dst + (size_t)(a * dst_a + b) * esize;
            const char *s = src + (size_t)(a + b * src_b) * esize;
            if (acc)
                *(float *)d += *(const float *)s;
            else
                memcpy(d, s, esize);
        }
}

typedef void (*tile_fn)(char *dst, const char *src, int64_t na, int64_t nb, int64_t dst_a, int64_t src_b);
static void tile_copy1(char *d, const char *s, int64_t na, int64_t nb, int64_t da, int64_t sb) {
    tile_move(d, s, na, nb, da, sb, 1, false);
}
static void tile_copy2(char *d, const char *s, int64_t na, int64_t nb, int64_t da, int64_t sb) {
    tile_move(d, s, na, nb, da, sb, 2, false);
}
static void tile_copy4(char *d, const char *s, int64_t na, int64_t nb, int64_t da, int64_t sb) {
    tile_move(d, s, na, nb, da, sb, 4, false);
}
static void tile_copy8(char *d, const char *s, int64_t na, int64_t nb, int64_t da, int64_t sb) {
    tile_move(d, s, na, nb, da, sb, 8, false);
}
static void tile_add_f32(char *d, const char *s, int64_t na, int64_t nb, int64_t da, int64_t sb) {
    tile_move(d, s, na, nb, da, sb, 4, true);
}

// The last dim moves: src dim `a` (contiguous in src) and the last dst dim `b` (contiguous in dst) are
// transposed tile by tile; every other dim is a batch index.
static void permute_tiles(const permute_plan *p, const char *src, char *dst, size_t esize, bool acc) {
    int k = p->k, b_dim = k - 1, a_dim = -1;
    for (int j = 0; j < k - 1; j++)
        if (p->src_stride[j] == 1) a_dim = j;
    GVM_CHECK(a_dim >= 0, "permute: no contiguous source dim (internal)");
    GVM_CHECK(acc || esize == 1 || esize == 2 || esize == 4 || esize == 8, "permute: element size %zu", esize);
    tile_fn fn = acc ? tile_add_f32
                     : esize == 1 ? tile_copy1 : esize == 2 ? tile_copy2 : esize == 4 ? tile_copy4 : tile_copy8;
    int nbatch = 0, bdims[GVM_MAX_DIMS];
    int64_t batch = 1;
    for (int j = 0; j < k; j++)
        if (j != a_dim && j != b_dim) {
            bdims[nbatch++] = j;
            batch *= p->size[j];
        }
    int64_t na = p->size[a_dim], nb = p->size[b_dim];
    int64_t ta = (na + TILE - 1) / TILE, tb = (nb + TILE - 1) / TILE;
    int64_t src_b = p->src_stride[b_dim], dst_a = p->dst_stride[a_dim];
#pragma omp parallel for schedule(static) if ((size_t)p->numel * esize >= PAR_MIN_BYTES)
    for (int64_t t = 0; t < batch * ta * tb; t++) {
        int64_t bt = t / (ta * tb), at = (t / tb) % ta, btile = t % tb;
        int64_t soff = 0, doff = 0, rem = bt;
        for (int i = nbatch - 1; i >= 0; i--) {
            int j = bdims[i];
            int64_t c = rem % p->size[j];
            rem /= p->size[j];
            soff += c * p->src_stride[j];
            doff += c * p->dst_stride[j];
        }
        int64_t a0 = at * TILE, b0 = btile * TILE;
        soff += a0 + b0 * src_b;
        doff += a0 * dst_a + b0;
        fn(dst + (size_t)doff * esize, src + (size_t)soff * esize, min64(TILE, na - a0), min64(TILE, nb - b0), dst_a,
           src_b);
    }
}

static void permute_run(const void *src, void *dst, size_t esize, bool acc, int ndim, const int64_t *shape,
                        const int *perm) {
    permute_plan p = plan_permute(ndim, shape, perm);
    if (p.numel == 0) return;
    if (p.k == 0)
        span_move(dst, src, 1, esize, acc);
    else if (p.src_stride[p.k - 1] == 1)
        permute_rows(&p, src, dst, esize, acc);
    else
        permute_tiles(&p, src, dst, esize, acc);
}

void gvm_cpu_permute_fwd(const void *src, void *dst, size_t esize, int ndim, const int64_t *shape, const int *perm) {
    permute_run(src, dst, esize, false, ndim, shape, perm);
}

void gvm_cpu_permute_bwd(const float *dy, float *dx, int ndim, const int64_t *shape, const int *perm) {
    // dx = dy permuted by the inverse permutation; dy's shape is the permuted one.
    int inv[GVM_MAX_DIMS];
    int64_t out_shape[GVM_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        inv[perm[i]] = i;
        out_shape[i] = shape[perm[i]];
    }
    permute_run(dy, dx, sizeof(float), true, ndim, out_shape, inv);
}

// ---- contiguous copies and identity gradients ----------------------------------------------------------------

void gvm_cpu_reshape_bwd(const float *dy, float *dx, int64_t n) {
#pragma omp parallel for schedule(static) if ((size_t)n * sizeof(float) >= PAR_MIN_BYTES)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

void gvm_cpu_contiguous_fwd(const void *src, void *dst, size_t nbytes) {
    const size_t piece = PIECE_ELEMS * 16;
    int64_t pieces = (int64_t)((nbytes + piece - 1) / piece);
#pragma omp parallel for schedule(static) if (nbytes >= PAR_MIN_BYTES)
    for (int64_t i = 0; i < pieces; i++) {
        size_t lo = (size_t)i * piece, len = nbytes - lo < piece ? nbytes - lo : piece;
        memcpy((char *)dst + lo, (const char *)src + lo, len);
    }
}

// ---- windows along an axis (slice, concat) ---------------------------------------------------------------------

// dst [outer, dst_n, inner] rows [dst_start, +len) (+)= src [outer, src_n, inner] rows [src_start, +len).
// Each outer index moves one contiguous run of len * inner elements, split in pieces for the threads.
static void window_move(char *dst, int64_t dst_n, int64_t dst_start, const char *src, int64_t src_n,
                        int64_t src_start, int64_t outer, int64_t len, int64_t inner, size_t esize, bool acc) {
    int64_t run = len * inner;
    if (run == 0 || outer == 0) return;
    int64_t pieces = (run + PIECE_ELEMS - 1) / PIECE_ELEMS;
#pragma omp parallel for schedule(static) if ((size_t)(outer * run) * esize >= PAR_MIN_BYTES)
    for (int64_t t = 0; t < outer * pieces; t++) {
        int64_t o = t / pieces, lo = (t % pieces) * PIECE_ELEMS, n = min64(PIECE_ELEMS, run - lo);
        span_move(dst + (size_t)((o * dst_n + dst_start) * inner + lo) * esize,
                  src + (size_t)((o * src_n + src_start) * inner + lo) * esize, n, esize, acc);
    }
}

void gvm_cpu_slice_fwd(const void *src, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                       int64_t start, int64_t len) {
    window_move(dst, len, 0, src, n, start, outer, len, inner, esize, false);
}

void gvm_cpu_slice_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, int64_t start,
                       int64_t len) {
    window_move((char *)dx, n, start, (const char *)dy, len, 0, outer, len, inner, sizeof(float), true);
}

void gvm_cpu_concat_fwd(const void *part, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                        int64_t start, int64_t len) {
    window_move(dst, n, start, part, len, 0, outer, len, inner, esize, false);
}

void gvm_cpu_concat_bwd(const float *dy, float *dpart, int64_t outer, int64_t n, int64_t inner, int64_t start,
                        int64_t len) {
    window_move((char *)dpart, len, 0, (const char *)dy, n, start, outer, len, inner, sizeof(float), true);
}

// ---- index select / embedding ------------------------------------------------------------------------------------

// Checked once up front (m reads), so the copy loops below stay branch-free.
static void check_indices(const void *idx, bool idx64, int64_t m, int64_t n) {
    for (int64_t j = 0; j < m; j++) {
        int64_t v = index_at(idx, idx64, j);
        GVM_CHECK(v >= 0 && v < n, "index_select/embedding: index %lld (at position %lld) is outside [0, %lld)",
                  (long long)v, (long long)j, (long long)n);
    }
}

void gvm_cpu_index_select_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int64_t outer,
                              int64_t n, int64_t m, int64_t inner) {
    check_indices(idx, idx64, m, n);
    const char *s = src;
    char *d = dst;
#pragma omp parallel for schedule(static) if ((size_t)(outer * m * inner) * esize >= PAR_MIN_BYTES)
    for (int64_t r = 0; r < outer * m; r++) {
        int64_t o = r / m, v = index_at(idx, idx64, r % m);
        memcpy(d + (size_t)(r * inner) * esize, s + (size_t)((o * n + v) * inner) * esize, (size_t)inner * esize);
    }
}

void gvm_cpu_index_select_bwd(const float *dy, float *dx, const void *idx, bool idx64, int64_t outer, int64_t n,
                              int64_t m, int64_t inner) {
    check_indices(idx, idx64, m, n);
    // Repeated indices add into the same row, so rows of dx are split among tasks: with few outer slices,
    // each task scans every index and keeps those in its own band [lo, hi) of rows. Each row still sums its
    // contributions in index order, so the result does not depend on the thread count.
    bool big = (size_t)(outer * m * inner) * sizeof(float) >= PAR_MIN_BYTES;
    int64_t bands = (big && outer < thread_count()) ? thread_count() : 1;
#pragma omp parallel for schedule(static) if (big)
    for (int64_t t = 0; t < outer * bands; t++) {
        int64_t o = t / bands, band = t % bands;
        int64_t lo = n * band / bands, hi = n * (band + 1) / bands;
        for (int64_t j = 0; j < m; j++) {
            int64_t v = index_at(idx, idx64, j);
            if (v < lo || v >= hi) continue;
            float *d = dx + (o * n + v) * inner;
            const float *g = dy + (o * m + j) * inner;
            for (int64_t i = 0; i < inner; i++) d[i] += g[i];
        }
    }
}

// ---- gather ---------------------------------------------------------------------------------------------------------
//
// Elements of idx are visited as (task, m, l): l runs along the last dim (contiguous in idx, dst and, when
// the axis is not last, in src), m along the axis (when it is not last), and the task covers every other
// coordinate. Two elements that differ in a task coordinate or in l (when the axis is not last) can never
// reach the same src element, so the backward pass splits tasks (and column blocks of l) among threads
// without races; only m, the axis, is walked serially.

typedef struct {
    int ndim, axis;
    int64_t src_stride[GVM_MAX_DIMS], idx_stride[GVM_MAX_DIMS];
    int64_t M, L, tasks, n_axis;
    bool axis_last;
} gather_plan;

static gather_plan plan_gather(int ndim, const int64_t *src_shape, const int64_t *idx_shape, int axis) {
    gather_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = ndim;
    p.axis = axis;
    int64_t ss = 1, is = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        p.src_stride[d] = ss;
        p.idx_stride[d] = is;
        ss *= src_shape[d];
        is *= idx_shape[d];
    }
    p.axis_last = axis == ndim - 1;
    p.L = idx_shape[ndim - 1];
    p.M = p.axis_last ? 1 : idx_shape[axis];
    p.tasks = 1;
    for (int d = 0; d < ndim - 1; d++)
        if (d != axis) p.tasks *= idx_shape[d];
    p.n_axis = src_shape[axis];
    return p;
}

// Offsets in src and idx of task t's first element.
static void gather_task_base(const gather_plan *p, const int64_t *idx_shape, int64_t t, int64_t *src_off,
                             int64_t *idx_off) {
    int64_t so = 0, io = 0;
    for (int d = p->ndim - 2; d >= 0; d--) {
        if (d == p->axis) continue;
        int64_t c = t % idx_shape[d];
        t /= idx_shape[d];
        so += c * p->src_stride[d];
        io += c * p->idx_stride[d];
    }
    *src_off = so;
    *idx_off = io;
}

// src offset of idx element `io` whose task base in src is `so` and column l; checks the index.
static inline int64_t gather_src_offset(const gather_plan *p, const void *idx, bool idx64, int64_t io, int64_t so,
                                        int64_t l) {
    int64_t v = index_at(idx, idx64, io);
    GVM_CHECK(v >= 0 && v < p->n_axis, "gather: index %lld (at flat position %lld) is outside [0, %lld)",
              (long long)v, (long long)io, (long long)p->n_axis);
    return so + v * p->src_stride[p->axis] + (p->axis_last ? 0 : l);
}

void gvm_cpu_gather_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int ndim,
                        const int64_t *src_shape, const int64_t *idx_shape, int axis) {
    gather_plan p = plan_gather(ndim, src_shape, idx_shape, axis);
    if (p.tasks * p.M * p.L == 0) return;
    const char *s = src;
    char *d = dst;
    // Forward writes each dst element once: (task, m) rows are independent.
#pragma omp parallel for schedule(static) if ((size_t)(p.tasks * p.M * p.L) * esize >= PAR_MIN_BYTES)
    for (int64_t r = 0; r < p.tasks * p.M; r++) {
        int64_t t = r / p.M, m = r % p.M, so, io;
        gather_task_base(&p, idx_shape, t, &so, &io);
        if (!p.axis_last) io += m * p.idx_stride[axis];
        for (int64_t l = 0; l < p.L; l++) {
            int64_t off = gather_src_offset(&p, idx, idx64, io + l, so, l);
            memcpy(d + (size_t)(io + l) * esize, s + (size_t)off * esize, esize);
        }
    }
}

void gvm_cpu_gather_bwd(const float *dy, float *dx, const void *idx, bool idx64, int ndim, const int64_t *src_shape,
                        const int64_t *idx_shape, int axis) {
    gather_plan p = plan_gather(ndim, src_shape, idx_shape, axis);
    if (p.tasks * p.M * p.L == 0) return;
    // Column blocks of l only when l is not the axis (see above).
    int64_t cols = p.axis_last ? p.L : GATHER_COLS;
    int64_t col_blocks = (p.L + cols - 1) / cols;
#pragma omp parallel for schedule(static) if ((size_t)(p.tasks * p.M * p.L) * sizeof(float) >= PAR_MIN_BYTES)
    for (int64_t t = 0; t < p.tasks * col_blocks; t++) {
        int64_t task = t / col_blocks, l0 = (t % col_blocks) * cols, l1 = min64(p.L, l0 + cols), so, io;
        gather_task_base(&p, idx_shape, task, &so, &io);
        for (int64_t m = 0; m < p.M; m++) {
            int64_t row = io + (p.axis_last ? 0 : m * p.idx_stride[axis]);
            for (int64_t l = l0; l < l1; l++) dx[gather_src_offset(&p, idx, idx64, row + l, so, l)] += dy[row + l];
        }
    }
}

// ---- cast ---------------------------------------------------------------------------------------------------------

void gvm_cpu_cast_fwd(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n) {
    // Pieces of the arrays wrapped as 1-D tensors, so every dtype pair follows gvm_tensor_copy exactly.
    int64_t pieces = (n + PIECE_ELEMS - 1) / PIECE_ELEMS;
    size_t ss = gvm_dtype_size(src_dtype), ds = gvm_dtype_size(dst_dtype);
#pragma omp parallel for schedule(static) if ((size_t)n * (ss + ds) >= PAR_MIN_BYTES)
    for (int64_t i = 0; i < pieces; i++) {
        int64_t lo = i * PIECE_ELEMS, len = min64(PIECE_ELEMS, n - lo);
        gvm_tensor s = {.dtype = src_dtype, .ndim = 1, .shape = {len}, .numel = len, .data = (char *)src + lo * ss};
        gvm_tensor d = {.dtype = dst_dtype, .ndim = 1, .shape = {len}, .numel = len, .data = (char *)dst + lo * ds};
        gvm_tensor_copy(&d, &s);
    }
}
