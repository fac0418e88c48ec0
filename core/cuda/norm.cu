// cuda/norm.cu: normalisation kernels on the GPU (see norm.h): layer norm, RMS norm, L2 normalisation, cosine
// similarity, weight normalisation.
//
// Design:
//  * Row reductions (the normalised dim contiguous): a warp per row when the row has at most 1024 elements
//    (8 rows per 256-thread block), the whole block otherwise. Each thread sums its strided share, then a
//    butterfly of warp shuffles (and, for a block, the 8 warp sums in order through shared memory) combines
//    the partials in double: a fixed tree, so every run gives the same bits. Statistics follow the CPU's
//    formulas (layer norm sums x - x[0], then a second pass for the variance; 1/sqrt in double).
//  * Reductions over a middle axis (inner > 1): one thread per (outer, inner) column walks n in order, in
//    double, as the CPU does; consecutive threads read consecutive addresses.
//  * dweight/dbias of layer/RMS norm are column sums over rows: blocks of 32 columns x a chunk of rows write
//    double partials into the scratch (at most kMaxChunks chunks), then a second kernel adds the chunks of each
//    column in order. No atomics anywhere.
//  * The backward formulas subtract nearly equal terms where a dim has size 1 (layer norm of D = 1, the
//    projection term of an L2 or weight norm of one element): the exact result is 0 and the CPU, rounding
//    every product, gets 0. The GPU would fuse a product into the subtraction (an FMA) and keep the rounding
//    residue, so those products are written __fmul_rn/__fsub_rn (never fused): the CPU's rounding, step by step.
#include <math.h>

#include "core/cuda/common.cuh"
#include "core/cuda/norm.h"

namespace {

constexpr int kBlock = 256;          // threads of a row-kernel block
constexpr int64_t kWarpMaxWidth = 1024;  // rows up to this long get a warp, longer ones a block
constexpr int64_t kMaxChunks = 64;   // row chunks of the dweight/dbias partial sums (sizes the scratch)
constexpr int64_t kMaxGrid = 65535LL * 32;

// First row of this thread's group (a warp when TPR = 32, the block when TPR = kBlock), and the stride.
template <int TPR>
__device__ __forceinline__ int64_t row_first() {
    return (int64_t)blockIdx.x * (kBlock / TPR) + threadIdx.x / TPR;
}
template <int TPR>
__device__ __forceinline__ int64_t row_step() {
    return (int64_t)gridDim.x * (kBlock / TPR);
}

// The sum of v over the TPR threads of a row group, returned to all of them. For a block the caller must
// reach this with the whole block (the row loops are uniform over the block).
template <int TPR>
__device__ __forceinline__ double group_sum(double v, double *sh /* [kBlock / 32] */) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if constexpr (TPR == 32) {
        return v;
    } else {
        if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
        __syncthreads();
        double t = 0.0;
#pragma unroll
        for (int w = 0; w < TPR / 32; w++) t += sh[w];
        __syncthreads();  // sh is rewritten by the next call
        return t;
    }
}

template <int TPR>
unsigned row_grid(int64_t rows) {
    const int64_t per = kBlock / TPR;
    int64_t b = (rows + per - 1) / per;
    if (b < 1) b = 1;
    if (b > kMaxGrid) b = kMaxGrid;
    return (unsigned)b;
}

// Launch kernel<32> (rows of at most kWarpMaxWidth) or kernel<kBlock> over `rows` rows.
#define LAUNCH_ROWS(kernel, rows, width, ...)                                                                    \
    do {                                                                                                         \
        if ((width) <= kWarpMaxWidth)                                                                            \
            kernel<32><<<row_grid<32>(rows), kBlock, 0, gvm_cuda_stream()>>>(__VA_ARGS__);                       \
        else                                                                                                     \
            kernel<kBlock><<<row_grid<kBlock>(rows), kBlock, 0, gvm_cuda_stream()>>>(__VA_ARGS__);               \
        GVM_CUDA_LAUNCH_CHECK();                                                                                 \
    } while (0)

// ---- layer norm ---------------------------------------------------------------------------------------------------

template <int TPR>
__global__ void layer_norm_fwd_kernel(const float *__restrict__ x, const float *__restrict__ w,
                                      const float *__restrict__ b, float *__restrict__ y, float *__restrict__ mean,
                                      float *__restrict__ rstd, int64_t rows, int64_t D, float eps) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *xr = x + r * D;
        // The sum of x - x[0]: a large common offset would otherwise cost the partial sums their precision.
        const float x0 = xr[0];
        float p = 0.0f;
        for (int64_t j = t; j < D; j += TPR) p += xr[j] - x0;
        const double s = group_sum<TPR>((double)p, sh);
        const float mu = (float)((double)x0 + s / (double)D);
        float q = 0.0f;
        for (int64_t j = t; j < D; j += TPR) {
            const float d = xr[j] - mu;
            q += d * d;
        }
        const double v = group_sum<TPR>((double)q, sh);
        const float rs = (float)(1.0 / sqrt(v / (double)D + (double)eps));
        if (t == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
        float *yr = y + r * D;
        for (int64_t j = t; j < D; j += TPR) {
            float h = (xr[j] - mu) * rs;
            if (w) h *= w[j];
            if (b) h += b[j];
            yr[j] = h;
        }
    }
}

// With xh = (x - mean) * rstd and g = dy * w: dx += rstd * (g - mean(g) - xh * mean(g * xh)).
template <int TPR>
__global__ void layer_norm_bwd_dx_kernel(const float *__restrict__ x, const float *__restrict__ w,
                                         const float *__restrict__ mean, const float *__restrict__ rstd,
                                         const float *__restrict__ dy, float *__restrict__ dx, int64_t rows,
                                         int64_t D) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *xr = x + r * D, *gr = dy + r * D;
        const float mu = mean[r], rs = rstd[r];
        float p = 0.0f, q = 0.0f;
        for (int64_t j = t; j < D; j += TPR) {
            const float g = w ? __fmul_rn(gr[j], w[j]) : gr[j];
            p += g;
            q += g * ((xr[j] - mu) * rs);
        }
        const double sg = group_sum<TPR>((double)p, sh);
        const double sgx = group_sum<TPR>((double)q, sh);
        const float a = (float)(sg / (double)D), c = (float)(sgx / (double)D);
        float *dr = dx + r * D;
        for (int64_t j = t; j < D; j += TPR) {
            const float xh = __fmul_rn(xr[j] - mu, rs), g = w ? __fmul_rn(gr[j], w[j]) : gr[j];
            dr[j] += __fmul_rn(rs, __fsub_rn(g - a, __fmul_rn(xh, c)));
        }
    }
}

// ---- RMS norm -----------------------------------------------------------------------------------------------------

template <int TPR>
__global__ void rms_norm_fwd_kernel(const float *__restrict__ x, const float *__restrict__ w, float *__restrict__ y,
                                    float *__restrict__ rstd, int64_t rows, int64_t D, float eps) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *xr = x + r * D;
        float p = 0.0f;
        for (int64_t j = t; j < D; j += TPR) p += xr[j] * xr[j];
        const double s = group_sum<TPR>((double)p, sh);
        const float rs = (float)(1.0 / sqrt(s / (double)D + (double)eps));
        if (t == 0) rstd[r] = rs;
        float *yr = y + r * D;
        for (int64_t j = t; j < D; j += TPR) yr[j] = w ? xr[j] * rs * w[j] : xr[j] * rs;
    }
}

// With g = dy * w: dx += rstd * g - x * rstd^3 * mean(g * x).
template <int TPR>
__global__ void rms_norm_bwd_dx_kernel(const float *__restrict__ x, const float *__restrict__ w,
                                       const float *__restrict__ rstd, const float *__restrict__ dy,
                                       float *__restrict__ dx, int64_t rows, int64_t D) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *xr = x + r * D, *gr = dy + r * D;
        const float rs = rstd[r];
        float p = 0.0f;
        for (int64_t j = t; j < D; j += TPR) p += (w ? __fmul_rn(gr[j], w[j]) : gr[j]) * xr[j];
        const double s = group_sum<TPR>((double)p, sh);
        const float c = (float)((double)rs * rs * rs * s / (double)D);
        float *dr = dx + r * D;
        for (int64_t j = t; j < D; j += TPR) {
            const float g = w ? __fmul_rn(gr[j], w[j]) : gr[j];
            dr[j] += __fsub_rn(__fmul_rn(rs, g), __fmul_rn(xr[j], c));
        }
    }
}

// ---- dweight / dbias: column sums over rows ------------------------------------------------------------------------
// Block (32, 8): columns blockIdx.x * 32 + threadIdx.x, the rows of chunk blockIdx.y strided by 8 (one warp per
// row). Layer norm: pw += dy * xh, pb += dy. RMS norm: pw += dy * x * rstd.

template <bool RMS>
__global__ void norm_col_partials_kernel(const float *__restrict__ x, const float *__restrict__ mean,
                                         const float *__restrict__ rstd, const float *__restrict__ dy, int64_t rows,
                                         int64_t D, int64_t chunk, double *__restrict__ pw, double *__restrict__ pb) {
    __shared__ double shw[8][33], shb[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t col = (int64_t)blockIdx.x * 32 + tx;
    const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    double sw = 0.0, sb = 0.0;
    if (col < D) {
        for (int64_t r = r0 + ty; r < r1; r += 8) {
            const float d = dy[r * D + col], xv = x[r * D + col];
            if constexpr (RMS) {
                sw += (double)(d * xv * rstd[r]);
            } else {
                sw += (double)(d * ((xv - mean[r]) * rstd[r]));
                sb += (double)d;
            }
        }
    }
    shw[ty][tx] = sw;
    shb[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && col < D) {
        double tw = 0.0, tb = 0.0;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            tw += shw[k][tx];
            tb += shb[k][tx];
        }
        pw[(int64_t)blockIdx.y * D + col] = tw;
        if (!RMS) pb[(int64_t)blockIdx.y * D + col] = tb;
    }
}

// dw[j] += sum over chunks of pw[c, j] (in chunk order); db likewise. Either may be NULL.
__global__ void norm_col_final_kernel(const double *__restrict__ pw, const double *__restrict__ pb, int64_t chunks,
                                      int64_t D, float *__restrict__ dw, float *__restrict__ db) {
    GVM_CUDA_FOR(j, D) {
        if (dw) {
            double s = 0.0;
            for (int64_t c = 0; c < chunks; c++) s += pw[c * D + j];
            dw[j] += (float)s;
        }
        if (db) {
            double s = 0.0;
            for (int64_t c = 0; c < chunks; c++) s += pb[c * D + j];
            db[j] += (float)s;
        }
    }
}

template <bool RMS>
void norm_col_sums(const float *x, const float *mean, const float *rstd, const float *dy, int64_t rows, int64_t D,
                   double *scratch, float *dw, float *db) {
    const int64_t col_tiles = (D + 31) / 32;
    // About 1024 blocks in all, no more than kMaxChunks chunks (the scratch) and at least 8 rows a chunk.
    int64_t chunks = (1024 + col_tiles - 1) / col_tiles;
    if (chunks > kMaxChunks) chunks = kMaxChunks;
    if (chunks > (rows + 7) / 8) chunks = (rows + 7) / 8;
    if (chunks < 1) chunks = 1;
    const int64_t chunk = (rows + chunks - 1) / chunks;
    chunks = (rows + chunk - 1) / chunk;  // <= the chunks above
    double *pw = scratch, *pb = scratch + kMaxChunks * D;
    const dim3 grid((unsigned)col_tiles, (unsigned)chunks), block(32, 8);
    norm_col_partials_kernel<RMS><<<grid, block, 0, gvm_cuda_stream()>>>(x, mean, rstd, dy, rows, D, chunk, pw, pb);
    GVM_CUDA_LAUNCH_CHECK();
    norm_col_final_kernel<<<gvm_cuda_blocks(D, kBlock), kBlock, 0, gvm_cuda_stream()>>>(pw, pb, chunks, D, dw, db);
    GVM_CUDA_LAUNCH_CHECK();
}

// ---- L2 normalisation --------------------------------------------------------------------------------------------

__device__ __forceinline__ float l2n_inv(double nrm, float eps) {
    return (float)(1.0 / (nrm > eps ? nrm : (double)eps));
}

// At ||x|| >= eps the norm is differentiated; below, max(||x||, eps) is the constant eps.
__device__ __forceinline__ void l2n_coef(float nrm, float eps, double s, float *scale, float *proj) {
    if (nrm >= eps) {
        *scale = 1.0f / nrm;
        *proj = (float)(s / (double)nrm);
    } else {
        *scale = 1.0f / eps;
        *proj = 0.0f;
    }
}

// inner == 1: rows [outer, n].
template <int TPR>
__global__ void l2n_fwd_rows_kernel(const float *__restrict__ x, float *__restrict__ y, float *__restrict__ norm,
                                    int64_t rows, int64_t n, float eps) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *xr = x + r * n;
        double s = 0.0;
        for (int64_t j = t; j < n; j += TPR) s += (double)xr[j] * (double)xr[j];
        s = group_sum<TPR>(s, sh);
        const double nrm = sqrt(s);
        const float inv = l2n_inv(nrm, eps);
        if (t == 0) norm[r] = (float)nrm;
        for (int64_t j = t; j < n; j += TPR) y[r * n + j] = xr[j] * inv;
    }
}

// inner > 1: one thread per (outer, inner) column.
__global__ void l2n_fwd_cols_kernel(const float *__restrict__ x, float *__restrict__ y, float *__restrict__ norm,
                                    int64_t n, int64_t inner, int64_t cols, float eps) {
    GVM_CUDA_FOR(i, cols) {
        const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
        double s = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const float v = x[base + k * inner];
            s += (double)v * (double)v;
        }
        const double nrm = sqrt(s);
        const float inv = l2n_inv(nrm, eps);
        norm[i] = (float)nrm;
        for (int64_t k = 0; k < n; k++) y[base + k * inner] = x[base + k * inner] * inv;
    }
}

template <int TPR>
__global__ void l2n_bwd_rows_kernel(const float *__restrict__ y, const float *__restrict__ norm,
                                    const float *__restrict__ dy, float *__restrict__ dx, int64_t rows, int64_t n,
                                    float eps) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const int64_t off = r * n;
        double s = 0.0;
        for (int64_t j = t; j < n; j += TPR) s += (double)(dy[off + j] * y[off + j]);
        s = group_sum<TPR>(s, sh);
        float scale, proj;
        l2n_coef(norm[r], eps, s, &scale, &proj);
        for (int64_t j = t; j < n; j += TPR)
            dx[off + j] += __fsub_rn(__fmul_rn(dy[off + j], scale), __fmul_rn(y[off + j], proj));
    }
}

__global__ void l2n_bwd_cols_kernel(const float *__restrict__ y, const float *__restrict__ norm,
                                    const float *__restrict__ dy, float *__restrict__ dx, int64_t n, int64_t inner,
                                    int64_t cols, float eps) {
    GVM_CUDA_FOR(i, cols) {
        const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
        double s = 0.0;
        for (int64_t k = 0; k < n; k++) s += (double)(dy[base + k * inner] * y[base + k * inner]);
        float scale, proj;
        l2n_coef(norm[i], eps, s, &scale, &proj);
        for (int64_t k = 0; k < n; k++) {
            const int64_t e = base + k * inner;
            dx[e] += __fsub_rn(__fmul_rn(dy[e], scale), __fmul_rn(y[e], proj));
        }
    }
}

// ---- cosine similarity --------------------------------------------------------------------------------------------

__device__ __forceinline__ float cos_value(double saa, double sbb, double sab, float eps, float *na, float *nb) {
    const double a = sqrt(saa), b = sqrt(sbb);
    *na = (float)a;
    *nb = (float)b;
    return (float)(sab / ((a > eps ? a : (double)eps) * (b > eps ? b : (double)eps)));
}

// Coefficients of the gradient of one output: da = ka * b - ta * a, db = ka * a - tb * b (see ops/norm.c).
__device__ __forceinline__ void cos_coef(float g, float y, float na, float nb, float eps, float *ka, float *ta,
                                         float *tb) {
    const double ca = na > eps ? na : eps, cb = nb > eps ? nb : eps;
    *ka = (float)(g / (ca * cb));
    *ta = na > 0.0f ? (float)(g * (double)y / (ca * na)) : 0.0f;
    *tb = nb > 0.0f ? (float)(g * (double)y / (cb * nb)) : 0.0f;
}

template <int TPR>
__global__ void cos_fwd_rows_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ y,
                                    float *__restrict__ na, float *__restrict__ nb, int64_t rows, int64_t n,
                                    float eps) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        const float *ar = a + r * n, *br = b + r * n;
        double saa = 0.0, sbb = 0.0, sab = 0.0;
        for (int64_t j = t; j < n; j += TPR) {
            saa += (double)ar[j] * (double)ar[j];
            sbb += (double)br[j] * (double)br[j];
            sab += (double)ar[j] * (double)br[j];
        }
        saa = group_sum<TPR>(saa, sh);
        sbb = group_sum<TPR>(sbb, sh);
        sab = group_sum<TPR>(sab, sh);
        if (t == 0) y[r] = cos_value(saa, sbb, sab, eps, &na[r], &nb[r]);
    }
}

__global__ void cos_fwd_cols_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ y,
                                    float *__restrict__ na, float *__restrict__ nb, int64_t n, int64_t inner,
                                    int64_t cols, float eps) {
    GVM_CUDA_FOR(i, cols) {
        const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
        double saa = 0.0, sbb = 0.0, sab = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const double av = a[base + k * inner], bv = b[base + k * inner];
            saa += av * av;
            sbb += bv * bv;
            sab += av * bv;
        }
        y[i] = cos_value(saa, sbb, sab, eps, &na[i], &nb[i]);
    }
}

template <int TPR>
__global__ void cos_bwd_rows_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                    const float *__restrict__ y, const float *__restrict__ na,
                                    const float *__restrict__ nb, const float *__restrict__ dy, float *__restrict__ da,
                                    float *__restrict__ db, int64_t rows, int64_t n, float eps) {
    const int t = threadIdx.x % TPR;
    for (int64_t r = row_first<TPR>(); r < rows; r += row_step<TPR>()) {
        float ka, ta, tb;
        cos_coef(dy[r], y[r], na[r], nb[r], eps, &ka, &ta, &tb);
        const int64_t off = r * n;
        for (int64_t j = t; j < n; j += TPR) {
            const float av = a[off + j], bv = b[off + j];
            if (da) da[off + j] += __fsub_rn(__fmul_rn(ka, bv), __fmul_rn(ta, av));
            if (db) db[off + j] += __fsub_rn(__fmul_rn(ka, av), __fmul_rn(tb, bv));
        }
    }
}

__global__ void cos_bwd_cols_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                    const float *__restrict__ y, const float *__restrict__ na,
                                    const float *__restrict__ nb, const float *__restrict__ dy, float *__restrict__ da,
                                    float *__restrict__ db, int64_t n, int64_t inner, int64_t cols, float eps) {
    GVM_CUDA_FOR(i, cols) {
        const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
        float ka, ta, tb;
        cos_coef(dy[i], y[i], na[i], nb[i], eps, &ka, &ta, &tb);
        for (int64_t k = 0; k < n; k++) {
            const int64_t e = base + k * inner;
            const float av = a[e], bv = b[e];
            if (da) da[e] += __fsub_rn(__fmul_rn(ka, bv), __fmul_rn(ta, av));
            if (db) db[e] += __fsub_rn(__fmul_rn(ka, av), __fmul_rn(tb, bv));
        }
    }
}

// ---- weight normalisation -----------------------------------------------------------------------------------------

template <int TPR>
__global__ void wn_fwd_kernel(const float *__restrict__ g, const float *__restrict__ v, float *__restrict__ w,
                              float *__restrict__ norm, int64_t O, int64_t K) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t o = row_first<TPR>(); o < O; o += row_step<TPR>()) {
        const float *vr = v + o * K;
        double s = 0.0;
        for (int64_t j = t; j < K; j += TPR) s += (double)vr[j] * (double)vr[j];
        s = group_sum<TPR>(s, sh);
        const double nrm = sqrt(s);
        const float f = (float)((double)g[o] / nrm);
        if (t == 0) norm[o] = (float)nrm;
        for (int64_t j = t; j < K; j += TPR) w[o * K + j] = vr[j] * f;
    }
}

// With s = sum(dw * v): dg += s / ||v||,  dv += (g / ||v||) * (dw - v * s / ||v||^2).
template <int TPR>
__global__ void wn_bwd_kernel(const float *__restrict__ g, const float *__restrict__ v, const float *__restrict__ norm,
                              const float *__restrict__ dw, float *__restrict__ dg, float *__restrict__ dv, int64_t O,
                              int64_t K) {
    __shared__ double sh[kBlock / 32];
    const int t = threadIdx.x % TPR;
    for (int64_t o = row_first<TPR>(); o < O; o += row_step<TPR>()) {
        const float *vr = v + o * K, *gr = dw + o * K;
        double s = 0.0;
        for (int64_t j = t; j < K; j += TPR) s += (double)(gr[j] * vr[j]);
        s = group_sum<TPR>(s, sh);
        const double nrm = norm[o];
        if (dg && t == 0) dg[o] += (float)(s / nrm);
        if (dv) {
            const float f = (float)((double)g[o] / nrm), c = (float)(s / (nrm * nrm));
            for (int64_t j = t; j < K; j += TPR) dv[o * K + j] += __fmul_rn(f, __fsub_rn(gr[j], __fmul_rn(vr[j], c)));
        }
    }
}

}  // namespace

// ---- the API ------------------------------------------------------------------------------------------------------

extern "C" size_t gvm_cuda_norm_bwd_scratch_bytes(int64_t D) {
    return 2u * (size_t)kMaxChunks * (size_t)(D > 0 ? D : 1) * sizeof(double);
}

extern "C" void gvm_cuda_layer_norm_fwd(const float *x, const float *w, const float *b, float *y, float *mean,
                                        float *rstd, int64_t rows, int64_t D, float eps) {
    if (D == 0 || rows == 0) return;
    LAUNCH_ROWS(layer_norm_fwd_kernel, rows, D, x, w, b, y, mean, rstd, rows, D, eps);
}

extern "C" void gvm_cuda_layer_norm_bwd(const float *x, const float *w, const float *mean, const float *rstd,
                                        const float *dy, float *dx, float *dw, float *db, double *scratch,
                                        int64_t rows, int64_t D) {
    if (D == 0 || rows == 0) return;
    if (dx) LAUNCH_ROWS(layer_norm_bwd_dx_kernel, rows, D, x, w, mean, rstd, dy, dx, rows, D);
    if (dw || db) norm_col_sums<false>(x, mean, rstd, dy, rows, D, scratch, dw, db);
}

extern "C" void gvm_cuda_rms_norm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t D,
                                      float eps) {
    if (D == 0 || rows == 0) return;
    LAUNCH_ROWS(rms_norm_fwd_kernel, rows, D, x, w, y, rstd, rows, D, eps);
}

extern "C" void gvm_cuda_rms_norm_bwd(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                                      float *dw, double *scratch, int64_t rows, int64_t D) {
    if (D == 0 || rows == 0) return;
    if (dx) LAUNCH_ROWS(rms_norm_bwd_dx_kernel, rows, D, x, w, rstd, dy, dx, rows, D);
    if (dw) norm_col_sums<true>(x, NULL, rstd, dy, rows, D, scratch, dw, NULL);
}

extern "C" void gvm_cuda_l2_normalize_fwd(const float *x, float *y, float *norm, int64_t outer, int64_t n,
                                          int64_t inner, float eps) {
    const int64_t cols = outer * inner;
    if (cols == 0) return;
    if (inner == 1) {
        LAUNCH_ROWS(l2n_fwd_rows_kernel, outer, n, x, y, norm, outer, n, eps);
    } else {
        l2n_fwd_cols_kernel<<<gvm_cuda_blocks(cols, kBlock), kBlock, 0, gvm_cuda_stream()>>>(x, y, norm, n, inner,
                                                                                             cols, eps);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" void gvm_cuda_l2_normalize_bwd(const float *y, const float *norm, const float *dy, float *dx, int64_t outer,
                                          int64_t n, int64_t inner, float eps) {
    const int64_t cols = outer * inner;
    if (cols == 0 || n == 0) return;
    if (inner == 1) {
        LAUNCH_ROWS(l2n_bwd_rows_kernel, outer, n, y, norm, dy, dx, outer, n, eps);
    } else {
        l2n_bwd_cols_kernel<<<gvm_cuda_blocks(cols, kBlock), kBlock, 0, gvm_cuda_stream()>>>(y, norm, dy, dx, n, inner,
                                                                                             cols, eps);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" void gvm_cuda_cosine_similarity_fwd(const float *a, const float *b, float *y, float *na, float *nb,
                                               int64_t outer, int64_t n, int64_t inner, float eps) {
    const int64_t cols = outer * inner;
    if (cols == 0) return;
    if (inner == 1) {
        LAUNCH_ROWS(cos_fwd_rows_kernel, outer, n, a, b, y, na, nb, outer, n, eps);
    } else {
        cos_fwd_cols_kernel<<<gvm_cuda_blocks(cols, kBlock), kBlock, 0, gvm_cuda_stream()>>>(a, b, y, na, nb, n, inner,
                                                                                             cols, eps);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" void gvm_cuda_cosine_similarity_bwd(const float *a, const float *b, const float *y, const float *na,
                                               const float *nb, const float *dy, float *da, float *db, int64_t outer,
                                               int64_t n, int64_t inner, float eps) {
    const int64_t cols = outer * inner;
    if (cols == 0 || n == 0 || (!da && !db)) return;
    if (inner == 1) {
        LAUNCH_ROWS(cos_bwd_rows_kernel, outer, n, a, b, y, na, nb, dy, da, db, outer, n, eps);
    } else {
        cos_bwd_cols_kernel<<<gvm_cuda_blocks(cols, kBlock), kBlock, 0, gvm_cuda_stream()>>>(a, b, y, na, nb, dy, da,
                                                                                             db, n, inner, cols, eps);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" void gvm_cuda_weight_norm_fwd(const float *g, const float *v, float *w, float *norm, int64_t O, int64_t K) {
    if (O == 0) return;
    LAUNCH_ROWS(wn_fwd_kernel, O, K, g, v, w, norm, O, K);
}

extern "C" void gvm_cuda_weight_norm_bwd(const float *g, const float *v, const float *norm, const float *dw, float *dg,
                                         float *dv, int64_t O, int64_t K) {
    if (O == 0 || (!dg && !dv)) return;
    LAUNCH_ROWS(wn_bwd_kernel, O, K, g, v, norm, dw, dg, dv, O, K);
}
