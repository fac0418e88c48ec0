// cuda/optim.cu: CUDA kernels of the optimiser (see optim.h): fused AdamW, the sum of squares of the
// gradients (deterministic two-pass reduction) and the EMA update.
//
// As on the CPU (core/cpu/optim.c) the per-element arithmetic is double with one rounding per stored f32:
// the passes are memory-bound, so the FP64 units keep up. The operations are the CPU's, in the same order,
// written with the _rn intrinsics so that nvcc does not contract them into FMAs: each one then rounds
// exactly as the CPU's does (IEEE double +, *, / and sqrt are correctly rounded on both), and the results
// equal the CPU's bit for bit. Elementwise passes move float4s when every pointer is 16-byte aligned (the
// parameter store's blocks and the pool's allocations are), with the last n % 4 elements one at a time.
#include <stdint.h>

#include "core/cuda/common.cuh"
#include "core/cuda/optim.h"

#define THREADS 256              // elementwise kernels and the first pass of the sum of squares
#define SUMSQ_MAX_BLOCKS 1024    // partial sums of the first pass (fills 132 SMs ~8 blocks deep)
#define SUMSQ_FINAL_THREADS 1024 // second pass: one block, one partial per thread at most

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// Elements of a float4 pass: n4 groups of 4 (0 when a pointer is unaligned), then `tail` single elements
// starting at 4 * n4. Enough threads to cover the larger of the two.
static inline unsigned vec_blocks(int64_t n4, int64_t tail) { return gvm_cuda_blocks(n4 > tail ? n4 : tail, THREADS); }

// ---- AdamW -------------------------------------------------------------------------------------------------

// One element, in the CPU's order (core/cpu/optim.c: adamw_span).
__device__ __forceinline__ void adamw_elem(float &param, float grad, float &m, float &v, const gvm_adamw_coefs &c) {
    double g = __dmul_rn((double)grad, c.grad_scale);
    double p = __dmul_rn((double)param, c.decay);
    double mi = __dadd_rn(__dmul_rn(c.beta1, (double)m), __dmul_rn(c.one_minus_beta1, g));
    double vi = __dadd_rn(__dmul_rn(c.beta2, (double)v), __dmul_rn(c.one_minus_beta2, __dmul_rn(g, g)));
    double denom = __dadd_rn(__dmul_rn(__dsqrt_rn(vi), c.inv_sqrt_bc2), c.eps);
    p = __dsub_rn(p, __dmul_rn(c.step_size, __ddiv_rn(mi, denom)));
    param = __double2float_rn(p);
    m = __double2float_rn(mi);
    v = __double2float_rn(vi);
}

// param, grad, m, v [n]; the first 4 * n4 elements as float4 (all four pointers 16-byte aligned).
__global__ void adamw_kernel(float *__restrict__ param, const float *__restrict__ grad, float *__restrict__ m,
                             float *__restrict__ v, int64_t n4, int64_t tail, gvm_adamw_coefs c) {
    GVM_CUDA_FOR(i, n4) {
        float4 p = reinterpret_cast<float4 *>(param)[i];
        float4 g = reinterpret_cast<const float4 *>(grad)[i];
        float4 mm = reinterpret_cast<float4 *>(m)[i];
        float4 vv = reinterpret_cast<float4 *>(v)[i];
        adamw_elem(p.x, g.x, mm.x, vv.x, c);
        adamw_elem(p.y, g.y, mm.y, vv.y, c);
        adamw_elem(p.z, g.z, mm.z, vv.z, c);
        adamw_elem(p.w, g.w, mm.w, vv.w, c);
        reinterpret_cast<float4 *>(param)[i] = p;
        reinterpret_cast<float4 *>(m)[i] = mm;
        reinterpret_cast<float4 *>(v)[i] = vv;
    }
    GVM_CUDA_FOR(j, tail) {
        int64_t i = 4 * n4 + j;
        adamw_elem(param[i], grad[i], m[i], v[i], c);
    }
}

extern "C" void gvm_cuda_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                                    const gvm_adamw_coefs *c) {
    if (n <= 0) return;
    bool vec = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v);
    int64_t n4 = vec ? n / 4 : 0, tail = n - 4 * n4;
    adamw_kernel<<<vec_blocks(n4, tail), THREADS, 0, gvm_cuda_stream()>>>(param, grad, m, v, n4, tail, *c);
    GVM_CUDA_LAUNCH_CHECK();
}

// ---- sum of squares ---------------------------------------------------------------------------------------

// Sum of s over the block, valid in thread 0. blockDim.x is a multiple of 32, at most 1024; every thread of
// the block must call it. The tree is fixed, so the result is too.
__device__ __forceinline__ double block_sum(double s) {
    __shared__ double warp_sums[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        int n_warps = blockDim.x >> 5;
        s = lane < n_warps ? warp_sums[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    }
    return s;
}

// First pass: partial[blockIdx.x] = sum of x^2 over this block's grid-stride share of x [n]. The share and
// the order within it depend only on n and the grid, which depend only on n. A float squared is exact in
// double, and inf/NaN propagate.
__global__ void sumsq_partial_kernel(const float *__restrict__ x, int64_t n4, int64_t tail, double *partial) {
    double s = 0.0;
    GVM_CUDA_FOR(i, n4) {
        float4 a = reinterpret_cast<const float4 *>(x)[i];
        s += (double)a.x * (double)a.x;
        s += (double)a.y * (double)a.y;
        s += (double)a.z * (double)a.z;
        s += (double)a.w * (double)a.w;
    }
    GVM_CUDA_FOR(j, tail) {
        double a = (double)x[4 * n4 + j];
        s += a * a;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Second pass, one block: *out = sum of partial [nb], nb <= blockDim.x.
__global__ void sumsq_final_kernel(const double *__restrict__ partial, int nb, double *out) {
    double s = (int)threadIdx.x < nb ? partial[threadIdx.x] : 0.0;
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

extern "C" double gvm_cuda_grad_sumsq(const float *grad, int64_t n) {
    if (n <= 0) return 0.0;
    bool vec = aligned16(grad);
    int64_t n4 = vec ? n / 4 : 0, tail = n - 4 * n4;
    unsigned nb = vec_blocks(n4, tail);
    if (nb > SUMSQ_MAX_BLOCKS) nb = SUMSQ_MAX_BLOCKS;
    // [nb] partial sums, then the result.
    double *ws = (double *)gvm_cuda_workspace((size_t)(nb + 1) * sizeof(double));
    sumsq_partial_kernel<<<nb, THREADS, 0, gvm_cuda_stream()>>>(grad, n4, tail, ws);
    GVM_CUDA_LAUNCH_CHECK();
    sumsq_final_kernel<<<1, SUMSQ_FINAL_THREADS, 0, gvm_cuda_stream()>>>(ws, (int)nb, ws + nb);
    GVM_CUDA_LAUNCH_CHECK();
    double result = 0.0;
    gvm_cuda_memcpy_d2h(&result, ws + nb, sizeof result);  // waits for the stream
    return result;
}

// ---- EMA ------------------------------------------------------------------------------------------------------

__device__ __forceinline__ float ema_elem(float e, float p, double d, double omd) {
    return __double2float_rn(__dadd_rn(__dmul_rn(d, (double)e), __dmul_rn(omd, (double)p)));
}

// ema, param [n]; the first 4 * n4 elements as float4.
__global__ void ema_kernel(float *__restrict__ ema, const float *__restrict__ param, int64_t n4, int64_t tail,
                           double d, double omd) {
    GVM_CUDA_FOR(i, n4) {
        float4 e = reinterpret_cast<float4 *>(ema)[i];
        float4 p = reinterpret_cast<const float4 *>(param)[i];
        e.x = ema_elem(e.x, p.x, d, omd);
        e.y = ema_elem(e.y, p.y, d, omd);
        e.z = ema_elem(e.z, p.z, d, omd);
        e.w = ema_elem(e.w, p.w, d, omd);
        reinterpret_cast<float4 *>(ema)[i] = e;
    }
    GVM_CUDA_FOR(j, tail) {
        int64_t i = 4 * n4 + j;
        ema[i] = ema_elem(ema[i], param[i], d, omd);
    }
}

extern "C" void gvm_cuda_ema_update(float *ema, const float *param, int64_t n, float decay) {
    if (n <= 0) return;
    bool vec = aligned16(ema) && aligned16(param);
    int64_t n4 = vec ? n / 4 : 0, tail = n - 4 * n4;
    double d = decay, omd = 1.0 - d;  // as the CPU computes them
    ema_kernel<<<vec_blocks(n4, tail), THREADS, 0, gvm_cuda_stream()>>>(ema, param, n4, tail, d, omd);
    GVM_CUDA_LAUNCH_CHECK();
}
