// cuda/softmax.cu: softmax, log-softmax and loss kernels on the GPU (see softmax.h), the twins of
// core/cpu/softmax.c.
//
// Softmax over [outer, n, inner]:
//  * inner == 1 (the last axis): a group of threads per row: a warp for rows up to WARP_ROW_MAX, a block of
//    256 up to BIG_ROW, a block of 1024 beyond. Three passes over the row (max, sum of exp, write); the
//    second and third reads of a row come from L1/L2.
//  * inner > 1 (a middle axis): a block owns a tile of TX consecutive columns (the power of two >= inner, at
//    most 32) of one outer slice, and its THREADS / TX rows of threads stride down the n rows, so warps read
//    contiguous runs; column maxima and sums combine through a fixed halving tree in shared memory.
// As on the CPU, each row subtracts its max before exp() and sums in double; the division and log are the
// CPU's ((float)(1.0 / s), (float)log(s)). expf is the accurate libdevice one, not __expf.
//
// Cross-entropy: a warp per row (a block of 256 when C > CE_WARP_MAX) computes the row's max and log-sum,
// and the row's loss term in double into the workspace; one block then adds the terms and counts the
// rows that are not ignored, in a fixed order. Backward recomputes the softmax from rowmax and logsum.
// MSE and L1: a two-pass deterministic sum in double (block partials, then one block).
// Every reduction tree is fixed by the shape: no atomics, results bit-identical run to run.
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "core/cuda/common.cuh"
#include "core/cuda/softmax.h"

#define THREADS 256          // default block
#define WARP_ROW_MAX 1024    // softmax rows up to this long: a warp each
#define BIG_ROW 16384        // softmax rows longer than this: a block of 1024 each
#define CE_WARP_MAX 4096     // cross-entropy rows (C) up to this long: a warp each
#define FINAL_THREADS 1024   // single-block final passes
#define PAIR_MAX_BLOCKS 1024 // partial sums of the MSE / L1 first pass
#define FULL_MASK 0xffffffffu

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- group reductions ------------------------------------------------------------------------------------
// Over a group of G threads: G = 32 is a warp (a block holds several groups); G > 32 is the whole block
// (blockDim.x == G, every thread calls). XOR butterflies give every lane the same value (the operations are
// commutative); warps then combine in warp order. sh: 32 slots of shared memory.

// The CPU's row max: a NaN never replaces the running max (it reaches the output through exp instead).
__device__ __forceinline__ float max_keep(float a, float b) { return b > a ? b : a; }

template <int G>
__device__ __forceinline__ float group_max(float v, float *sh) {
    for (int off = 16; off > 0; off >>= 1) v = max_keep(v, __shfl_xor_sync(FULL_MASK, v, off));
    if constexpr (G == 32) {
        return v;
    } else {
        if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
        __syncthreads();
        v = sh[0];
        for (int w = 1; w < G / 32; w++) v = max_keep(v, sh[w]);
        __syncthreads();  // sh is written again by the next call
        return v;
    }
}

template <int G, typename T>
__device__ __forceinline__ T group_sum(T v, T *sh) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    if constexpr (G == 32) {
        return v;
    } else {
        if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
        __syncthreads();
        v = sh[0];
        for (int w = 1; w < G / 32; w++) v += sh[w];
        __syncthreads();
        return v;
    }
}

// Threads of a row group: 32, 256 or 1024 by the row length.
static int row_group(int64_t n) { return n <= WARP_ROW_MAX ? 32 : n <= BIG_ROW ? 256 : 1024; }
// Blocks for `rows` rows with groups of G threads (a block of THREADS holds THREADS / 32 warp groups).
static unsigned row_blocks(int64_t rows, int G) { return gvm_cuda_blocks(rows, G == 32 ? THREADS / 32 : 1); }
static int row_block_threads(int G) { return G == 32 ? THREADS : G; }

// Column tiles for inner > 1: TX = 1 << tx_log2 >= inner (at most 32) columns per block.
static int col_tx_log2(int64_t inner) {
    int l = 1;
    while ((1LL << l) < inner && l < 5) l++;
    return l;
}

// ---- softmax / log-softmax forward ---------------------------------------------------------------------------

// x, y [rows, n]. Group r (uniform across its threads) owns row r.
template <int G, bool LOG>
__global__ void __launch_bounds__(G == 32 ? THREADS : G)
    softmax_rows_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t rows, int64_t n) {
    __shared__ float shm[32];
    __shared__ double shs[32];
    const int gpb = blockDim.x / G, lane = threadIdx.x % G;
    for (int64_t r = (int64_t)blockIdx.x * gpb + threadIdx.x / G; r < rows; r += (int64_t)gridDim.x * gpb) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float m = -INFINITY;
        for (int64_t k = lane; k < n; k += G) m = max_keep(m, xr[k]);
        m = group_max<G>(m, shm);
        double s = 0.0;
        for (int64_t k = lane; k < n; k += G) s += (double)expf(xr[k] - m);
        s = group_sum<G>(s, shs);
        if constexpr (LOG) {
            // (x - m) first: exact for the terms that matter, so large logits lose nothing (as the CPU).
            const float ls = (float)log(s);
            for (int64_t k = lane; k < n; k += G) yr[k] = (xr[k] - m) - ls;
        } else {
            const float inv = (float)(1.0 / s);
            for (int64_t k = lane; k < n; k += G) yr[k] = expf(xr[k] - m) * inv;
        }
    }
}

// x, y [outer, n, inner], inner > 1. Block t = o * tiles + c owns columns c * TX .. c * TX + TX - 1 of slice
// o; thread (tx, ty) = (threadIdx.x % TX, threadIdx.x / TX) takes rows ty, ty + TY, ... of its column.
template <bool LOG>
__global__ void __launch_bounds__(THREADS)
    softmax_cols_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t outer, int64_t n, int64_t inner,
                        int tx_log2, int64_t tiles) {
    __shared__ float pm[THREADS];
    __shared__ double ps[THREADS];
    const int TX = 1 << tx_log2, TY = THREADS >> tx_log2;
    const int tx = threadIdx.x & (TX - 1), ty = threadIdx.x >> tx_log2;
    for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {  // uniform across the block
        const int64_t o = t / tiles, i = (t - o * tiles) * TX + tx;
        const bool ok = i < inner;
        const float *xc = x + o * n * inner + i;
        float *yc = y + o * n * inner + i;
        float m = -INFINITY;
        if (ok)
            for (int64_t k = ty; k < n; k += TY) m = max_keep(m, xc[k * inner]);
        pm[threadIdx.x] = m;
        __syncthreads();
        for (int h = TY >> 1; h > 0; h >>= 1) {
            if (ty < h) pm[threadIdx.x] = max_keep(pm[threadIdx.x], pm[threadIdx.x + (h << tx_log2)]);
            __syncthreads();
        }
        m = pm[tx];
        double s = 0.0;
        if (ok)
            for (int64_t k = ty; k < n; k += TY) s += (double)expf(xc[k * inner] - m);
        ps[threadIdx.x] = s;
        __syncthreads();
        for (int h = TY >> 1; h > 0; h >>= 1) {
            if (ty < h) ps[threadIdx.x] += ps[threadIdx.x + (h << tx_log2)];
            __syncthreads();
        }
        s = ps[tx];
        if (ok) {
            if constexpr (LOG) {
                const float ls = (float)log(s);
                for (int64_t k = ty; k < n; k += TY) yc[k * inner] = (xc[k * inner] - m) - ls;
            } else {
                const float inv = (float)(1.0 / s);
                for (int64_t k = ty; k < n; k += TY) yc[k * inner] = expf(xc[k * inner] - m) * inv;
            }
        }
        __syncthreads();  // pm / ps are rewritten for the next tile
    }
}

template <bool LOG>
static void softmax_launch(const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
    if (outer * n * inner <= 0) return;
    cudaStream_t st = gvm_cuda_stream();
    if (inner == 1) {
        const int G = row_group(n);
        const unsigned blocks = row_blocks(outer, G);
        if (G == 32)
            softmax_rows_kernel<32, LOG><<<blocks, row_block_threads(32), 0, st>>>(x, y, outer, n);
        else if (G == 256)
            softmax_rows_kernel<256, LOG><<<blocks, row_block_threads(256), 0, st>>>(x, y, outer, n);
        else
            softmax_rows_kernel<1024, LOG><<<blocks, row_block_threads(1024), 0, st>>>(x, y, outer, n);
    } else {
        const int l = col_tx_log2(inner);
        const int64_t tiles = cdiv(inner, 1LL << l);
        softmax_cols_kernel<LOG><<<gvm_cuda_blocks(outer * tiles, 1), THREADS, 0, st>>>(x, y, outer, n, inner, l,
                                                                                       tiles);
    }
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
    softmax_launch<false>(x, y, outer, n, inner);
}

extern "C" void gvm_cuda_log_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
    softmax_launch<true>(x, y, outer, n, inner);
}

// ---- softmax / log-softmax backward ------------------------------------------------------------------------------
// softmax:     dx += y * (dy - sum(dy * y))
// log-softmax: dx += dy - exp(y) * sum(dy)
// The row sum is rounded to f32 once, as on the CPU; the per-element arithmetic is the CPU's, with _rn
// intrinsics so that no FMA changes its rounding.

template <bool LOG>
__device__ __forceinline__ double bwd_term(float yv, float g) {
    return LOG ? (double)g : (double)__fmul_rn(g, yv);
}

template <bool LOG>
__device__ __forceinline__ float bwd_update(float d, float yv, float g, float sf) {
    if constexpr (LOG)
        return __fadd_rn(d, __fsub_rn(g, __fmul_rn(expf(yv), sf)));
    else
        return __fadd_rn(d, __fmul_rn(yv, __fsub_rn(g, sf)));
}

// y, dy, dx [rows, n]
template <int G, bool LOG>
__global__ void __launch_bounds__(G == 32 ? THREADS : G)
    softmax_bwd_rows_kernel(const float *__restrict__ y, const float *__restrict__ dy, float *__restrict__ dx,
                            int64_t rows, int64_t n) {
    __shared__ double shs[32];
    const int gpb = blockDim.x / G, lane = threadIdx.x % G;
    for (int64_t r = (int64_t)blockIdx.x * gpb + threadIdx.x / G; r < rows; r += (int64_t)gridDim.x * gpb) {
        const float *yr = y + r * n, *gr = dy + r * n;
        float *dr = dx + r * n;
        double s = 0.0;
        for (int64_t k = lane; k < n; k += G) s += bwd_term<LOG>(yr[k], gr[k]);
        const float sf = (float)group_sum<G>(s, shs);
        for (int64_t k = lane; k < n; k += G) dr[k] = bwd_update<LOG>(dr[k], yr[k], gr[k], sf);
    }
}

// y, dy, dx [outer, n, inner], inner > 1; tiles as in softmax_cols_kernel.
template <bool LOG>
__global__ void __launch_bounds__(THREADS)
    softmax_bwd_cols_kernel(const float *__restrict__ y, const float *__restrict__ dy, float *__restrict__ dx,
                            int64_t outer, int64_t n, int64_t inner, int tx_log2, int64_t tiles) {
    __shared__ double ps[THREADS];
    const int TX = 1 << tx_log2, TY = THREADS >> tx_log2;
    const int tx = threadIdx.x & (TX - 1), ty = threadIdx.x >> tx_log2;
    for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
        const int64_t o = t / tiles, i = (t - o * tiles) * TX + tx;
        const bool ok = i < inner;
        const int64_t base = o * n * inner + i;
        double s = 0.0;
        if (ok)
            for (int64_t k = ty; k < n; k += TY) s += bwd_term<LOG>(y[base + k * inner], dy[base + k * inner]);
        ps[threadIdx.x] = s;
        __syncthreads();
        for (int h = TY >> 1; h > 0; h >>= 1) {
            if (ty < h) ps[threadIdx.x] += ps[threadIdx.x + (h << tx_log2)];
            __syncthreads();
        }
        const float sf = (float)ps[tx];
        if (ok)
            for (int64_t k = ty; k < n; k += TY) {
                const int64_t e = base + k * inner;
                dx[e] = bwd_update<LOG>(dx[e], y[e], dy[e], sf);
            }
        __syncthreads();
    }
}

template <bool LOG>
static void softmax_bwd_launch(const float *y, const float *dy, float *dx, int64_t outer, int64_t n,
                               int64_t inner) {
    if (outer * n * inner <= 0) return;
    cudaStream_t st = gvm_cuda_stream();
    if (inner == 1) {
        const int G = row_group(n);
        const unsigned blocks = row_blocks(outer, G);
        if (G == 32)
            softmax_bwd_rows_kernel<32, LOG><<<blocks, row_block_threads(32), 0, st>>>(y, dy, dx, outer, n);
        else if (G == 256)
            softmax_bwd_rows_kernel<256, LOG><<<blocks, row_block_threads(256), 0, st>>>(y, dy, dx, outer, n);
        else
            softmax_bwd_rows_kernel<1024, LOG><<<blocks, row_block_threads(1024), 0, st>>>(y, dy, dx, outer, n);
    } else {
        const int l = col_tx_log2(inner);
        const int64_t tiles = cdiv(inner, 1LL << l);
        softmax_bwd_cols_kernel<LOG>
            <<<gvm_cuda_blocks(outer * tiles, 1), THREADS, 0, st>>>(y, dy, dx, outer, n, inner, l, tiles);
    }
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n,
                                     int64_t inner) {
    softmax_bwd_launch<false>(y, dy, dx, outer, n, inner);
}

extern "C" void gvm_cuda_log_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n,
                                         int64_t inner) {
    softmax_bwd_launch<true>(y, dy, dx, outer, n, inner);
}

// ---- cross-entropy ---------------------------------------------------------------------------------------------

// logits [N, C], targets [N] -> rowmax, logsum [N] (0 for ignored rows, as the CPU) and rowloss [N] (double:
// the row's -log softmax(x)[t], 0 for ignored rows). Group r owns row r.
template <int G>
__global__ void __launch_bounds__(G == 32 ? THREADS : G)
    ce_fwd_kernel(const float *__restrict__ logits, const int64_t *__restrict__ targets, float *__restrict__ rowmax,
                  float *__restrict__ logsum, double *__restrict__ rowloss, int64_t N, int64_t C,
                  int64_t ignore_index) {
    __shared__ float shm[32];
    __shared__ double shs[32];
    const int gpb = blockDim.x / G, lane = threadIdx.x % G;
    for (int64_t r = (int64_t)blockIdx.x * gpb + threadIdx.x / G; r < N; r += (int64_t)gridDim.x * gpb) {
        const int64_t t = targets[r];
        if (t == ignore_index) {
            if (lane == 0) {
                rowmax[r] = 0.0f;
                logsum[r] = 0.0f;
                rowloss[r] = 0.0;
            }
            continue;
        }
        if (t < 0 || t >= C) {
            // Would index outside the row: the caller's data pipeline is broken (an internal invariant).
            if (lane == 0)
                printf("gvm: cross_entropy: target %lld at row %lld is outside 0..%lld\n", (long long)t,
                       (long long)r, (long long)(C - 1));
            __trap();
        }
        const float *xr = logits + r * C;
        float m = -INFINITY;
        for (int64_t k = lane; k < C; k += G) m = max_keep(m, xr[k]);
        m = group_max<G>(m, shm);
        double s = 0.0;
        for (int64_t k = lane; k < C; k += G) s += (double)expf(xr[k] - m);
        s = group_sum<G>(s, shs);
        if (lane == 0) {
            const double ls = log(s);
            rowmax[r] = m;
            logsum[r] = (float)ls;
            rowloss[r] = ((double)m - (double)xr[t]) + ls;  // logsumexp(x) - x[t]
        }
    }
}

// One block: *loss = mean of rowloss over the rows not ignored (0 when there are none). Partial sums per
// thread in a fixed stride, then a fixed tree.
__global__ void __launch_bounds__(FINAL_THREADS)
    ce_loss_kernel(const double *__restrict__ rowloss, const int64_t *__restrict__ targets, int64_t N,
                   int64_t ignore_index, float *__restrict__ loss) {
    __shared__ double shs[32];
    __shared__ long long shc[32];
    double s = 0.0;
    long long c = 0;
    for (int64_t i = threadIdx.x; i < N; i += FINAL_THREADS)
        if (targets[i] != ignore_index) {
            s += rowloss[i];
            c++;
        }
    s = group_sum<FINAL_THREADS>(s, shs);
    c = group_sum<FINAL_THREADS>(c, shc);
    if (threadIdx.x == 0) *loss = c ? (float)(s / (double)c) : 0.0f;
}

extern "C" void gvm_cuda_cross_entropy_fwd(const float *logits, const int64_t *targets, float *rowmax,
                                           float *logsum, float *loss, int64_t N, int64_t C, int64_t ignore_index) {
    cudaStream_t st = gvm_cuda_stream();
    double *rowloss = (double *)gvm_cuda_workspace((size_t)(N > 0 ? N : 1) * sizeof(double));  // [N]
    if (N > 0) {
        const int G = C <= CE_WARP_MAX ? 32 : 256;
        const unsigned blocks = row_blocks(N, G);
        if (G == 32)
            ce_fwd_kernel<32><<<blocks, row_block_threads(32), 0, st>>>(logits, targets, rowmax, logsum, rowloss, N,
                                                                        C, ignore_index);
        else
            ce_fwd_kernel<256><<<blocks, row_block_threads(256), 0, st>>>(logits, targets, rowmax, logsum, rowloss,
                                                                          N, C, ignore_index);
        GVM_CUDA_LAUNCH_CHECK();
    }
    ce_loss_kernel<<<1, FINAL_THREADS, 0, st>>>(rowloss, targets, N, ignore_index, loss);  // N == 0: loss = 0
    GVM_CUDA_LAUNCH_CHECK();
}

// *count = the rows whose target is not ignore_index. One block.
__global__ void __launch_bounds__(FINAL_THREADS)
    ce_count_kernel(const int64_t *__restrict__ targets, int64_t N, int64_t ignore_index, long long *count) {
    __shared__ long long shc[32];
    long long c = 0;
    for (int64_t i = threadIdx.x; i < N; i += FINAL_THREADS) c += targets[i] != ignore_index;
    c = group_sum<FINAL_THREADS>(c, shc);
    if (threadIdx.x == 0) *count = c;
}

// dlogits[r, j] += scale * softmax(x[r])[j] - scale * [j == t_r], scale = dloss / count, for rows not
// ignored. Group r owns row r; the element j == t gets both terms in the CPU's order (add, then subtract).
template <int G>
__global__ void __launch_bounds__(G == 32 ? THREADS : G)
    ce_bwd_kernel(const float *__restrict__ logits, const int64_t *__restrict__ targets,
                  const float *__restrict__ rowmax, const float *__restrict__ logsum, const float *__restrict__ dloss,
                  const long long *__restrict__ count, float *__restrict__ dlogits, int64_t N, int64_t C,
                  int64_t ignore_index) {
    const long long cnt = *count;
    if (cnt == 0) return;  // the loss was the constant 0: every gradient is 0
    const float scale = (float)((double)dloss[0] / (double)cnt);
    const int gpb = blockDim.x / G, lane = threadIdx.x % G;
    for (int64_t r = (int64_t)blockIdx.x * gpb + threadIdx.x / G; r < N; r += (int64_t)gridDim.x * gpb) {
        const int64_t t = targets[r];
        if (t == ignore_index) continue;
        const float *xr = logits + r * C;
        float *dr = dlogits + r * C;
        const float m = rowmax[r], ls = logsum[r];
        for (int64_t j = lane; j < C; j += G) {
            float v = __fadd_rn(dr[j], __fmul_rn(scale, expf(__fsub_rn(__fsub_rn(xr[j], m), ls))));
            if (j == t) v = __fsub_rn(v, scale);
            dr[j] = v;
        }
    }
}

extern "C" void gvm_cuda_cross_entropy_bwd(const float *logits, const int64_t *targets, const float *rowmax,
                                           const float *logsum, const float *dloss, float *dlogits, int64_t N,
                                           int64_t C, int64_t ignore_index) {
    if (N <= 0 || C <= 0) return;
    cudaStream_t st = gvm_cuda_stream();
    long long *count = (long long *)gvm_cuda_workspace(sizeof(long long));
    ce_count_kernel<<<1, FINAL_THREADS, 0, st>>>(targets, N, ignore_index, count);
    GVM_CUDA_LAUNCH_CHECK();
    const int G = C <= CE_WARP_MAX ? 32 : 256;
    const unsigned blocks = row_blocks(N, G);
    if (G == 32)
        ce_bwd_kernel<32><<<blocks, row_block_threads(32), 0, st>>>(logits, targets, rowmax, logsum, dloss, count,
                                                                    dlogits, N, C, ignore_index);
    else
        ce_bwd_kernel<256><<<blocks, row_block_threads(256), 0, st>>>(logits, targets, rowmax, logsum, dloss, count,
                                                                      dlogits, N, C, ignore_index);
    GVM_CUDA_LAUNCH_CHECK();
}

__global__ void widen_kernel(const int32_t *__restrict__ src, int64_t *__restrict__ dst, int64_t n) {
    GVM_CUDA_FOR(i, n) dst[i] = (int64_t)src[i];
}

extern "C" void gvm_cuda_widen_i32_i64(const int32_t *src, int64_t *dst, int64_t n) {
    if (n <= 0) return;
    widen_kernel<<<gvm_cuda_blocks(n, THREADS), THREADS, 0, gvm_cuda_stream()>>>(src, dst, n);
    GVM_CUDA_LAUNCH_CHECK();
}

// ---- MSE and L1 (mean reduction) ----------------------------------------------------------------------------

// partial[blockIdx.x] = this block's grid-stride share of sum (a - b)^2 (or |a - b|), in double. The grid
// depends only on n, so the shares and the sum do too.
template <bool L1>
__global__ void __launch_bounds__(THREADS)
    pair_partial_kernel(const float *__restrict__ a, const float *__restrict__ b, int64_t n,
                        double *__restrict__ partial) {
    __shared__ double shs[32];
    double s = 0.0;
    GVM_CUDA_FOR(i, n) {
        const double d = (double)a[i] - (double)b[i];
        s += L1 ? fabs(d) : d * d;
    }
    s = group_sum<THREADS>(s, shs);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block: *loss = (sum of partial [nb]) / n; NaN when n == 0 (0 / 0, as the CPU).
__global__ void __launch_bounds__(FINAL_THREADS)
    pair_final_kernel(const double *__restrict__ partial, int nb, int64_t n, float *__restrict__ loss) {
    __shared__ double shs[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < nb; i += FINAL_THREADS) s += partial[i];
    s = group_sum<FINAL_THREADS>(s, shs);
    if (threadIdx.x == 0) *loss = (float)(s / (double)n);
}

template <bool L1>
static void pair_loss_fwd(const float *a, const float *b, float *loss, int64_t n) {
    cudaStream_t st = gvm_cuda_stream();
    unsigned nb = 0;
    if (n > 0) {
        nb = gvm_cuda_blocks(n, THREADS);
        if (nb > PAIR_MAX_BLOCKS) nb = PAIR_MAX_BLOCKS;
    }
    double *partial = (double *)gvm_cuda_workspace((size_t)(nb > 0 ? nb : 1) * sizeof(double));  // [nb]
    if (nb > 0) {
        pair_partial_kernel<L1><<<nb, THREADS, 0, st>>>(a, b, n, partial);
        GVM_CUDA_LAUNCH_CHECK();
    }
    pair_final_kernel<<<1, FINAL_THREADS, 0, st>>>(partial, (int)nb, n, loss);
    GVM_CUDA_LAUNCH_CHECK();
}

// da += k * g, db -= k * g with g = a - b (MSE, k = 2 dloss / n) or sign(a - b) (L1, k = dloss / n). da and
// db are not restrict: loss(x, x) passes one gradient buffer twice (the CPU's two loops then cancel).
template <bool L1>
__global__ void pair_bwd_kernel(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n) {
    const double dl = (double)dloss[0];
    const float k = L1 ? (float)(dl / (double)n) : (float)(2.0 * dl / (double)n);
    GVM_CUDA_FOR(i, n) {
        const float av = a[i], bv = b[i];
        const float g = L1 ? (float)((av > bv) - (av < bv)) : __fsub_rn(av, bv);
        const float v = __fmul_rn(k, g);
        if (da) da[i] = __fadd_rn(da[i], v);
        if (db) db[i] = __fsub_rn(db[i], v);
    }
}

template <bool L1>
static void pair_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n) {
    if (n <= 0 || (!da && !db)) return;
    pair_bwd_kernel<L1><<<gvm_cuda_blocks(n, THREADS), THREADS, 0, gvm_cuda_stream()>>>(a, b, dloss, da, db, n);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_mse_loss_fwd(const float *a, const float *b, float *loss, int64_t n) {
    pair_loss_fwd<false>(a, b, loss, n);
}

extern "C" void gvm_cuda_mse_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db,
                                      int64_t n) {
    pair_loss_bwd<false>(a, b, dloss, da, db, n);
}

extern "C" void gvm_cuda_l1_loss_fwd(const float *a, const float *b, float *loss, int64_t n) {
    pair_loss_fwd<true>(a, b, loss, n);
}

extern "C" void gvm_cuda_l1_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db,
                                     int64_t n) {
    pair_loss_bwd<true>(a, b, dloss, da, db, n);
}
