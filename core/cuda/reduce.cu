// cuda/reduce.cu: CUDA kernels of the reductions (see reduce.h): sum / mean, max with the index of the first
// maximum, masked mean pooling, and their backward passes. Inputs are x [outer, n, inner].
//
// One templated reduction serves the three forward ops; an op policy says what is accumulated (a double sum;
// a value and its index; a double sum and a count) and how two partial results combine. Two loop shapes:
//  * inner == 1 (rows): a warp per row when rows are short (<= WARP_ROW_MAX), else a block per row segment;
//    consecutive threads read consecutive elements.
//  * inner > 1 (columns): a block owns a tile of TX consecutive columns (TX = the power of two >= inner, at
//    most 32) and its THREADS / TX rows of threads stride down the n rows, so a warp reads contiguous runs.
// When there are too few outputs to fill the GPU (GVM_AXIS_ALL above all: one output, n ~ 10^7), n is cut
// into S segments: the first kernel writes S partial results per output into the workspace, and a second
// kernel combines them, a warp per output. Every reduction tree is fixed by the shape alone (no atomics,
// no dependence on timing or on the GPU model), so results are bit-identical run to run. Sums accumulate in
// double, as the CPU's do, so they match it to within the final rounding to f32.
//
// max: the CPU keeps the FIRST maximum, and the first NaN wins. Each thread scans its elements in increasing
// index with the CPU's rule; partial results combine under one total order (a NaN beats every number, a
// larger value beats a smaller, equal values go to the smaller index), which picks the same element as the
// CPU's sequential scan whatever the tree.
#include <math.h>
#include <stdint.h>

#include "core/cuda/common.cuh"
#include "core/cuda/reduce.h"

#define THREADS 256        // every kernel's block
#define WARP_ROW_MAX 1024  // rows (inner == 1) up to this long are reduced by one warp each
#define MIN_ROW_SEG 4096   // a block's segment of a row holds at least this many elements (16 per thread)
#define MIN_COL_ROWS 8     // a block's segment of columns gives each thread at least this many rows
#define TARGET_BLOCKS 2048 // segments are cut until about this many blocks run (132 SMs x 8 resident, twice)
#define MAX_SPLITS 1024    // segments per output at most (bounds the workspace and the final pass)
#define FULL_MASK 0xffffffffu

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t dmin64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- op policies -------------------------------------------------------------------------------------------

// Where results go: y [outer * inner]; arg [outer * inner] (max, may be NULL); scale (sum).
struct ReduceOut {
    float *y;
    int64_t *arg;
    double scale;
};

struct SumOp {
    typedef double T;
    static __device__ __forceinline__ T init() { return 0.0; }
    static __device__ __forceinline__ void add(T &a, float v, int64_t) { a += (double)v; }
    static __device__ __forceinline__ T combine(T a, T b) { return a + b; }
    static __device__ __forceinline__ T shfl_xor(T a, int m) { return __shfl_xor_sync(FULL_MASK, a, m); }
    static __device__ __forceinline__ void finish(T a, const ReduceOut &out, int64_t j) {
        out.y[j] = (float)(a * out.scale);
    }
};

struct MaxVal {
    float v;
    long long k;  // index along n; < 0: nothing seen yet
};

struct MaxOp {
    typedef MaxVal T;
    static __device__ __forceinline__ T init() { return MaxVal{-INFINITY, -1}; }
    // The CPU's rule (core/cpu/reduce.c: max_takes), for elements met in increasing k.
    static __device__ __forceinline__ void add(T &a, float v, int64_t k) {
        if (a.k < 0 || (!(v <= a.v) && a.v == a.v)) {
            a.v = v;
            a.k = k;
        }
    }
    // The total order: NaN first (smaller index among NaNs), then the larger value, then the smaller index.
    // Commutative, so both lanes of a butterfly step agree.
    static __device__ __forceinline__ T combine(T a, T b) {
        if (a.k < 0) return b;
        if (b.k < 0) return a;
        bool a_nan = a.v != a.v, b_nan = b.v != b.v, b_wins;
        if (a_nan || b_nan)
            b_wins = a_nan && b_nan ? b.k < a.k : b_nan;
        else
            b_wins = b.v > a.v || (b.v == a.v && b.k < a.k);
        return b_wins ? b : a;
    }
    static __device__ __forceinline__ T shfl_xor(T a, int m) {
        return MaxVal{__shfl_xor_sync(FULL_MASK, a.v, m), __shfl_xor_sync(FULL_MASK, a.k, m)};
    }
    static __device__ __forceinline__ void finish(T a, const ReduceOut &out, int64_t j) {
        out.y[j] = a.v;
        if (out.arg) out.arg[j] = (int64_t)a.k;
    }
};

struct MeanVal {
    double s;
    long long c;  // elements added (the unmasked ones)
};

struct MeanOp {
    typedef MeanVal T;
    static __device__ __forceinline__ T init() { return MeanVal{0.0, 0}; }
    static __device__ __forceinline__ void add(T &a, float v, int64_t) {
        a.s += (double)v;
        a.c++;
    }
    static __device__ __forceinline__ T combine(T a, T b) { return MeanVal{a.s + b.s, a.c + b.c}; }
    static __device__ __forceinline__ T shfl_xor(T a, int m) {
        return MeanVal{__shfl_xor_sync(FULL_MASK, a.s, m), __shfl_xor_sync(FULL_MASK, a.c, m)};
    }
    static __device__ __forceinline__ void finish(T a, const ReduceOut &out, int64_t j) {
        out.y[j] = a.c ? (float)(a.s / (double)a.c) : 0.0f;
    }
};

// Combine over a group of G threads (G = 32: a warp; G = THREADS: the whole block, which must all call it).
// Every thread of the group returns the same value. warp_part: THREADS / 32 slots of shared memory.
template <class Op, int G>
__device__ __forceinline__ typename Op::T group_reduce(typename Op::T a, typename Op::T *warp_part) {
    for (int off = 16; off > 0; off >>= 1) a = Op::combine(a, Op::shfl_xor(a, off));
    if constexpr (G == 32) {
        return a;
    } else {
        if ((threadIdx.x & 31) == 0) warp_part[threadIdx.x >> 5] = a;
        __syncthreads();
        a = warp_part[0];
        for (int w = 1; w < G / 32; w++) a = Op::combine(a, warp_part[w]);
        __syncthreads();  // warp_part is written again by the next call
        return a;
    }
}

// ---- forward kernels ---------------------------------------------------------------------------------------

// x [outer, n] (inner == 1); mask [outer, n] or NULL. Group g of G threads (a warp, or the block when
// G == THREADS) owns segment s of row o, g = o * S + s: elements [s * seg, min(n, (s + 1) * seg)). With one
// segment per row it writes the result; otherwise partial[g] (partial [outer, S]).
template <class Op, int G>
__global__ void __launch_bounds__(THREADS)
    reduce_rows_kernel(const float *__restrict__ x, const uint8_t *__restrict__ mask, int64_t outer, int64_t n,
                       int64_t S, int64_t seg, ReduceOut out, typename Op::T *__restrict__ partial) {
    typedef typename Op::T T;
    __shared__ T warp_part[THREADS / 32];
    constexpr int GPB = THREADS / G;  // groups per block
    const int lane = threadIdx.x % G;
    const int64_t groups = outer * S;
    // g is the same for the whole group, so the loop (and group_reduce's barriers) are uniform across it.
    for (int64_t g = (int64_t)blockIdx.x * GPB + threadIdx.x / G; g < groups; g += (int64_t)gridDim.x * GPB) {
        const int64_t o = g / S, s = g - o * S;
        const int64_t k0 = s * seg, k1 = dmin64(n, k0 + seg);
        const float *xr = x + o * n;
        const uint8_t *mr = mask ? mask + o * n : nullptr;
        T a = Op::init();
        for (int64_t k = k0 + lane; k < k1; k += G) {
            if (mr && !mr[k]) continue;
            Op::add(a, xr[k], k);
        }
        a = group_reduce<Op, G>(a, warp_part);
        if (lane == 0) {
            if (S == 1)
                Op::finish(a, out, o);
            else
                partial[g] = a;
        }
    }
}

// x [outer, n, inner], inner > 1; mask [outer, n] or NULL. Block (t, s): the tile t = o * tiles + c of TX =
// 1 << tx_log2 columns starting at c * TX of outer slice o, over segment s = blockIdx.y of the rows. Thread
// (tx, ty) = (threadIdx.x % TX, threadIdx.x / TX) takes rows k0 + ty, k0 + ty + TY, ... of column c*TX + tx;
// the TY partial results of a column then combine by a fixed halving tree in shared memory. Output j =
// o * inner + i gets its result, or partial[j * S + s] (partial [outer * inner, S]).
template <class Op>
__global__ void __launch_bounds__(THREADS)
    reduce_cols_kernel(const float *__restrict__ x, const uint8_t *__restrict__ mask, int64_t outer, int64_t n,
                       int64_t inner, int tx_log2, int64_t tiles, int64_t S, int64_t seg, ReduceOut out,
                       typename Op::T *__restrict__ partial) {
    typedef typename Op::T T;
    __shared__ T part[THREADS];
    const int TX = 1 << tx_log2, TY = THREADS >> tx_log2;
    const int tx = threadIdx.x & (TX - 1), ty = threadIdx.x >> tx_log2;
    const int64_t s = blockIdx.y;
    const int64_t k0 = s * seg, k1 = dmin64(n, k0 + seg);
    for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {  // uniform across the block
        const int64_t o = t / tiles, i = (t - o * tiles) * TX + tx;
        T a = Op::init();
        if (i < inner) {
            const float *xc = x + o * n * inner + i;
            const uint8_t *mr = mask ? mask + o * n : nullptr;
            for (int64_t k = k0 + ty; k < k1; k += TY) {
                if (mr && !mr[k]) continue;
                Op::add(a, xc[k * inner], k);
            }
        }
        part[threadIdx.x] = a;
        __syncthreads();
        for (int h = TY >> 1; h > 0; h >>= 1) {
            if (ty < h) part[threadIdx.x] = Op::combine(part[threadIdx.x], part[threadIdx.x + (h << tx_log2)]);
            __syncthreads();
        }
        if (ty == 0 && i < inner) {
            const int64_t j = o * inner + i;
            if (S == 1)
                Op::finish(part[tx], out, j);
            else
                partial[j * S + s] = part[tx];
        }
        __syncthreads();  // part is rewritten for the next tile
    }
}

// partial [n_out, S] -> the outputs: a warp per output, lanes over s, then a butterfly.
template <class Op>
__global__ void __launch_bounds__(THREADS)
    reduce_finish_kernel(const typename Op::T *__restrict__ partial, int64_t n_out, int64_t S, ReduceOut out) {
    typedef typename Op::T T;
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * THREADS) >> 5;
    for (int64_t j = ((int64_t)blockIdx.x * THREADS + threadIdx.x) >> 5; j < n_out; j += warps) {
        T a = Op::init();
        for (int64_t s = lane; s < S; s += 32) a = Op::combine(a, partial[j * S + s]);
        a = group_reduce<Op, 32>(a, nullptr);
        if (lane == 0) Op::finish(a, out, j);
    }
}

// Segments per output: 1 when there are enough groups (blocks) or n is short; else enough for about
// TARGET_BLOCKS blocks, each with at least min_seg rows or elements.
static int64_t choose_splits(int64_t n, int64_t min_seg, int64_t groups) {
    if (n <= min_seg || groups >= TARGET_BLOCKS) return 1;
    int64_t s = min64(cdiv(TARGET_BLOCKS, groups), cdiv(n, min_seg));
    return s < 1 ? 1 : min64(s, MAX_SPLITS);
}

// x [outer, n, inner] -> out [outer, inner] under Op (see the top of the file).
template <class Op>
static void reduce_launch(const float *x, const uint8_t *mask, int64_t outer, int64_t n, int64_t inner,
                          ReduceOut out) {
    typedef typename Op::T T;
    const int64_t n_out = outer * inner;
    if (n_out <= 0) return;
    cudaStream_t st = gvm_cuda_stream();
    int64_t S = 1;
    T *partial = nullptr;
    if (inner == 1) {
        if (n <= WARP_ROW_MAX) {
            reduce_rows_kernel<Op, 32>
                <<<gvm_cuda_blocks(outer, THREADS / 32), THREADS, 0, st>>>(x, mask, outer, n, 1, n, out, nullptr);
            GVM_CUDA_LAUNCH_CHECK();
            return;
        }
        S = choose_splits(n, MIN_ROW_SEG, outer);
        const int64_t seg = cdiv(n, S);
        S = cdiv(n, seg);  // no empty segment
        if (S > 1) partial = (T *)gvm_cuda_workspace((size_t)(n_out * S) * sizeof(T));
        reduce_rows_kernel<Op, THREADS>
            <<<gvm_cuda_blocks(outer * S, 1), THREADS, 0, st>>>(x, mask, outer, n, S, seg, out, partial);
        GVM_CUDA_LAUNCH_CHECK();
    } else {
        int tx_log2 = 1;
        while ((1LL << tx_log2) < inner && tx_log2 < 5) tx_log2++;
        const int64_t TY = THREADS >> tx_log2, tiles = cdiv(inner, 1LL << tx_log2);
        S = choose_splits(n, MIN_COL_ROWS * TY, outer * tiles);
        int64_t seg = n;
        if (n > 0) {
            seg = cdiv(n, S);
            S = cdiv(n, seg);
        }
        if (S > 1) partial = (T *)gvm_cuda_workspace((size_t)(n_out * S) * sizeof(T));
        dim3 grid(gvm_cuda_blocks(outer * tiles, 1), (unsigned)S);
        reduce_cols_kernel<Op>
            <<<grid, THREADS, 0, st>>>(x, mask, outer, n, inner, tx_log2, tiles, S, seg, out, partial);
        GVM_CUDA_LAUNCH_CHECK();
    }
    if (S > 1) {
        reduce_finish_kernel<Op><<<gvm_cuda_blocks(n_out, THREADS / 32), THREADS, 0, st>>>(partial, n_out, S, out);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" void gvm_cuda_sum_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale) {
    // n == 0 still writes every output: 0 * scale (NaN for the mean of nothing, as on the CPU).
    reduce_launch<SumOp>(x, nullptr, outer, n, inner, ReduceOut{y, nullptr, scale});
}

extern "C" void gvm_cuda_max_fwd(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner) {
    reduce_launch<MaxOp>(x, nullptr, outer, n, inner, ReduceOut{y, arg, 1.0});
}

extern "C" void gvm_cuda_mean_pool_fwd(const float *x, const uint8_t *mask, float *y, int64_t outer, int64_t n,
                                       int64_t inner) {
    reduce_launch<MeanOp>(x, mask, outer, n, inner, ReduceOut{y, nullptr, 0.0});
}

// ---- backward kernels --------------------------------------------------------------------------------------
// Elementwise over dx; I is uint32_t when every index fits below 2^31 (cheap division), else int64_t. The
// arithmetic is the CPU's, with _rn intrinsics so that no FMA changes its rounding.

#define GRID_STRIDE(I, e, total)                                                                       \
    for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < (total); e += (I)blockDim.x * gridDim.x)

// dx [outer, n, inner] += scale * dy [outer, inner]
template <typename I>
__global__ void sum_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx, I total, I n, I inner,
                               float scale) {
    GRID_STRIDE(I, e, total) {
        const I r = e / inner, i = e - r * inner, o = r / n;
        dx[e] = __fadd_rn(dx[e], __fmul_rn(scale, dy[o * inner + i]));
    }
}

// dx [outer, n, inner]: dx[o, arg[j], i] += dy[j], j = o * inner + i over total = outer * inner.
template <typename I>
__global__ void max_bwd_kernel(const float *__restrict__ dy, const int64_t *__restrict__ arg, float *__restrict__ dx,
                               I total, I n, I inner) {
    GRID_STRIDE(I, j, total) {
        const I o = j / inner, i = j - o * inner;
        const I at = (o * n + (I)arg[j]) * inner + i;
        dx[at] = __fadd_rn(dx[at], dy[j]);
    }
}

// inv [outer] = 1 / (unmasked count of row o of mask [outer, n]) rounded as the CPU does; 0 for a fully masked
// row (whose elements the backward kernel skips anyway). A warp per row.
__global__ void __launch_bounds__(THREADS)
    pool_inv_kernel(const uint8_t *__restrict__ mask, float *__restrict__ inv, int64_t outer, int64_t n) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * THREADS) >> 5;
    for (int64_t o = ((int64_t)blockIdx.x * THREADS + threadIdx.x) >> 5; o < outer; o += warps) {
        long long c = 0;
        for (int64_t k = lane; k < n; k += 32) c += mask[o * n + k] != 0;
        for (int off = 16; off > 0; off >>= 1) c += __shfl_xor_sync(FULL_MASK, c, off);
        if (lane == 0) inv[o] = c ? (float)(1.0 / (double)c) : 0.0f;
    }
}

// dx [outer, n, inner] += m[o, k] dy[o, i] * inv(o): inv(o) = inv_all without a mask, inv[o] with one.
template <typename I>
__global__ void pool_bwd_kernel(const float *__restrict__ dy, const uint8_t *__restrict__ mask,
                                const float *__restrict__ inv, float inv_all, float *__restrict__ dx, I total, I n,
                                I inner) {
    GRID_STRIDE(I, e, total) {
        const I r = e / inner, i = e - r * inner, o = r / n;  // r = o * n + k indexes mask [outer, n]
        float f = inv_all;
        if (mask) {
            if (!mask[r]) continue;
            f = inv[o];
        }
        dx[e] = __fadd_rn(dx[e], __fmul_rn(dy[o * inner + i], f));
    }
}

static inline bool fits32(int64_t n) { return n <= (int64_t)INT32_MAX; }

extern "C" void gvm_cuda_sum_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, float scale) {
    const int64_t total = outer * n * inner;
    if (total <= 0) return;
    const unsigned blocks = gvm_cuda_blocks(total, THREADS);
    if (fits32(total))
        sum_bwd_kernel<uint32_t><<<blocks, THREADS, 0, gvm_cuda_stream()>>>(dy, dx, (uint32_t)total, (uint32_t)n,
                                                                            (uint32_t)inner, scale);
    else
        sum_bwd_kernel<int64_t><<<blocks, THREADS, 0, gvm_cuda_stream()>>>(dy, dx, total, n, inner, scale);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_max_bwd(const float *dy, const int64_t *arg, float *dx, int64_t outer, int64_t n,
                                 int64_t inner) {
    const int64_t total = outer * inner;
    if (total <= 0 || n <= 0) return;
    const unsigned blocks = gvm_cuda_blocks(total, THREADS);
    if (fits32(outer * n * inner))
        max_bwd_kernel<uint32_t><<<blocks, THREADS, 0, gvm_cuda_stream()>>>(dy, arg, dx, (uint32_t)total,
                                                                            (uint32_t)n, (uint32_t)inner);
    else
        max_bwd_kernel<int64_t><<<blocks, THREADS, 0, gvm_cuda_stream()>>>(dy, arg, dx, total, n, inner);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_mean_pool_bwd(const float *dy, const uint8_t *mask, float *dx, int64_t outer, int64_t n,
                                       int64_t inner) {
    const int64_t total = outer * n * inner;
    if (total <= 0) return;
    cudaStream_t st = gvm_cuda_stream();
    float *inv = nullptr;
    const float inv_all = (float)(1.0 / (double)n);  // without a mask every row counts n (n >= 1 here)
    if (mask) {
        inv = (float *)gvm_cuda_workspace((size_t)outer * sizeof(float));
        pool_inv_kernel<<<gvm_cuda_blocks(outer, THREADS / 32), THREADS, 0, st>>>(mask, inv, outer, n);
        GVM_CUDA_LAUNCH_CHECK();
    }
    const unsigned blocks = gvm_cuda_blocks(total, THREADS);
    if (fits32(total))
        pool_bwd_kernel<uint32_t><<<blocks, THREADS, 0, st>>>(dy, mask, inv, inv_all, dx, (uint32_t)total,
                                                              (uint32_t)n, (uint32_t)inner);
    else
        pool_bwd_kernel<int64_t><<<blocks, THREADS, 0, st>>>(dy, mask, inv, inv_all, dx, total, n, inner);
    GVM_CUDA_LAUNCH_CHECK();
}
