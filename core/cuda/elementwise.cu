// cuda/elementwise.cu: CUDA kernels of the elementwise ops (see elementwise.h): broadcasting binary
// arithmetic and its gradients, unary math and activations, dropout and masked_fill (dtype conversion:
// cast.cu).
//
// Broadcasting. The host reads the coalesced plan (core/broadcast.h) and passes its shape and strides by
// value; a thread turns its output index into input offsets by division over the coalesced dims (usually one
// or two). Indices are 32-bit unsigned whenever the output has fewer than 2^31 elements (every offset is then
// below 2^31 too), which makes those divisions several times cheaper than 64-bit ones; larger outputs take
// the same kernels instantiated with int64_t. Two inputs covering the whole output use a flat float4 loop.
//
// Gradients of a broadcast input are sums over the broadcast dims, in double, in a fixed order:
//  * "column" sums (the input is contiguous along the last coalesced dim, x [B, T, D] + bias [D]): 32 columns
//    by 8 row lanes per block, each thread reading consecutive addresses with its warp, the 8 lanes added in
//    lane order through shared memory;
//  * "row" sums (the input is broadcast along the last coalesced dim, x [B, T, 1] or a single value): one
//    block per input element reading its contiguous runs, a fixed shuffle tree;
//  and when that gives too few blocks to fill the GPU, the reduced range is cut into S slices whose double
//  partial sums (gvm_cuda_workspace, [S, M]) a second pass adds in slice order. The CPU adds the same
//  terms in another order; both sums are in double, so the f32 results agree to the last bit or so.
//
// Unary math is the CPU's, operation for operation: its exp, expm1, tanh and gelu polynomials are ported
// with the same fused multiply-adds, so the activations give the CPU's bits (pow and log use CUDA's libm,
// within 1-2 ulp). Dropout draws its Philox words with core/cuda/philox.cuh, so its mask and outputs equal
// the CPU's exactly. Where the CPU computes a * b + c in two roundings (it builds with -std=c11, which does
// not contract), the sums here are __fadd_rn/__fsub_rn, which nvcc never fuses with the multiply before
// them: elementwise results and gradients accumulated into a non-zero buffer keep the CPU's bits too.
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "core/cuda/common.cuh"
#include "core/cuda/elementwise.h"
#include "core/cuda/philox.cuh"

#define THREADS 256          // elementwise kernels, and the most threads of a row-sum block
#define RED_TARGET 1056      // blocks a reduction aims for (8 per SM of a 132-SM H100) before it slices
#define COL_W 32             // columns per column-sum block (one warp wide)
#define COL_LANES 8          // row lanes per column-sum block
#define GRID_CAP 0x7fffffffLL  // the most blocks along grid x; the kernels loop past it

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
// Outputs below this many elements use 32-bit indices (see the top of the file).
static inline bool small_index(int64_t n) { return n < (1LL << 31); }

// Grid-stride loop with index type I. For I = uint32_t the caller guarantees n < 2^31, and the grid has at
// most 65535 * 32 * 256 < 2^31 threads, so i + stride never wraps.
#define FOR_I(i, n) for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (I)blockDim.x * gridDim.x)

// ==== broadcast plans ======================================================================================

// The coalesced plan of two inputs as the kernels read it (by value).
template <typename I> struct Plan2 {
    int nd;
    I size[GVM_MAX_DIMS];
    I stride[2][GVM_MAX_DIMS];  // per input, in elements; 0 = broadcast
    I last;                     // size[nd - 1], the length of a run
    I inner[2];                 // stride[k][nd - 1]: 0 or 1
};

template <typename I> static Plan2<I> make_plan2(const gvm_broadcast *bc) {
    Plan2<I> p = {};
    p.nd = bc->cdim;
    for (int d = 0; d < bc->cdim; d++) {
        p.size[d] = (I)bc->cshape[d];
        p.stride[0][d] = (I)bc->cstride[0][d];
        p.stride[1][d] = (I)bc->cstride[1][d];
    }
    p.last = (I)bc->cshape[bc->cdim - 1];
    p.inner[0] = (I)bc->cstride[0][bc->cdim - 1];
    p.inner[1] = (I)bc->cstride[1][bc->cdim - 1];
    return p;
}

// Offsets of both inputs at output element i. Unrolled with constant dim indices, so the plan stays in the
// kernel's parameter space; the outermost dim needs no division (its index is what remains).
template <typename I> __device__ __forceinline__ void plan_offsets(const Plan2<I> &p, I i, I &o0, I &o1) {
    I x0 = 0, x1 = 0;
#pragma unroll
    for (int d = GVM_MAX_DIMS - 1; d > 0; d--) {
        if (d < p.nd) {
            I q = i / p.size[d];
            I idx = i - q * p.size[d];
            x0 += idx * p.stride[0][d];
            x1 += idx * p.stride[1][d];
            i = q;
        }
    }
    o0 = x0 + i * p.stride[0][0];
    o1 = x1 + i * p.stride[1][0];
}

// A set of coalesced dims walked for a reduction, with an offset for each of three streams: 0 = the output
// (and its gradient), 1 = a, 2 = b (the CPU's dim_set).
template <typename I> struct DimSet {
    int n;
    I size[GVM_MAX_DIMS];
    I stride[3][GVM_MAX_DIMS];
};

// Offsets of the three streams at flat position f (row-major over the set's dims; f < product of sizes).
template <typename I> __device__ __forceinline__ void dimset_offsets(const DimSet<I> &s, I f, I off[3]) {
    off[0] = off[1] = off[2] = 0;
#pragma unroll
    for (int d = GVM_MAX_DIMS - 1; d > 0; d--) {
        if (d < s.n) {
            I q = f / s.size[d];
            I idx = f - q * s.size[d];
            off[0] += idx * s.stride[0][d];
            off[1] += idx * s.stride[1][d];
            off[2] += idx * s.stride[2][d];
            f = q;
        }
    }
    if (s.n > 0) {
        off[0] += f * s.stride[0][0];
        off[1] += f * s.stride[1][0];
        off[2] += f * s.stride[2][0];
    }
}

// ==== binary ops ==========================================================================================

template <int OP> __device__ __forceinline__ float bin_apply(float x, float y) {
    switch (OP) {
    case GVM_BINARY_ADD: return x + y;
    case GVM_BINARY_SUB: return x - y;
    case GVM_BINARY_MUL: return x * y;
    default: return x / y;  // IEEE division (nvcc's default -prec-div=true): the CPU's bits
    }
}

// The gradient reaching input WHICH (0: a, 1: b) from upstream g at a = x, b = y (the CPU's bin_grad).
template <int OP, int WHICH> __device__ __forceinline__ float bin_grad(float g, float x, float y) {
    switch (OP) {
    case GVM_BINARY_ADD: return g;
    case GVM_BINARY_SUB: return WHICH ? -g : g;
    case GVM_BINARY_MUL: return WHICH ? g * x : g * y;
    default: return WHICH ? -g * (x / y) / y : g / y;  // x / y first: y * y could overflow
    }
}

// The same in double, for the terms of a reduction (the CPU's bin_grad_d).
template <int OP, int WHICH> __device__ __forceinline__ double bin_grad_d(double g, double x, double y) {
    switch (OP) {
    case GVM_BINARY_ADD: return g;
    case GVM_BINARY_SUB: return WHICH ? -g : g;
    case GVM_BINARY_MUL: return WHICH ? g * x : g * y;
    default: return WHICH ? -g * (x / y) / y : g / y;
    }
}

// ---- forward ---------------------------------------------------------------------------------------------

// Both inputs cover the output: a, b, y [n], float4 groups [0, n4) when every pointer is 16-byte aligned,
// then elements [4 * n4, n) one at a time.
template <int OP>
__global__ void binary_flat_fwd_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ y,
                                       int64_t n4, int64_t n) {
    GVM_CUDA_FOR(i, n4) {
        float4 av = reinterpret_cast<const float4 *>(a)[i], bv = reinterpret_cast<const float4 *>(b)[i];
        float4 r = {bin_apply<OP>(av.x, bv.x), bin_apply<OP>(av.y, bv.y), bin_apply<OP>(av.z, bv.z),
                    bin_apply<OP>(av.w, bv.w)};
        reinterpret_cast<float4 *>(y)[i] = r;
    }
    GVM_CUDA_FOR(j, n - 4 * n4) {
        int64_t i = 4 * n4 + j;
        y[i] = bin_apply<OP>(a[i], b[i]);
    }
}

// y [n] from a and b through the plan, four consecutive outputs per thread: when they lie in one run
// (the usual case) one index computation serves all four, their loads are independent, and the store is a
// float4 (`vec`: y is 16-byte aligned); otherwise each element is placed on its own.
template <int OP, typename I>
__global__ void binary_bcast_fwd_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ y,
                                        Plan2<I> p, I n, bool vec) {
    const I groups = (n + 3) / 4, sa = p.inner[0], sb = p.inner[1];
    FOR_I(k, groups) {
        const I i0 = 4 * k;
        I oa, ob;
        plan_offsets(p, i0, oa, ob);
        if (i0 % p.last + 4 <= p.last && i0 + 4 <= n) {
            float4 r = {bin_apply<OP>(a[oa], b[ob]), bin_apply<OP>(a[oa + sa], b[ob + sb]),
                        bin_apply<OP>(a[oa + 2 * sa], b[ob + 2 * sb]), bin_apply<OP>(a[oa + 3 * sa], b[ob + 3 * sb])};
            if (vec) {
                reinterpret_cast<float4 *>(y)[k] = r;
            } else {
                y[i0] = r.x;
                y[i0 + 1] = r.y;
                y[i0 + 2] = r.z;
                y[i0 + 3] = r.w;
            }
        } else {
            for (I i = i0; i < i0 + 4 && i < n; i++) {
                plan_offsets(p, i, oa, ob);
                y[i] = bin_apply<OP>(a[oa], b[ob]);
            }
        }
    }
}

template <int OP> static void binary_fwd_launch(const float *a, const float *b, float *y, const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    cudaStream_t st = gvm_cuda_stream();
    if (gvm_broadcast_is_full(bc, 0) && gvm_broadcast_is_full(bc, 1)) {
        int64_t n4 = aligned16(a) && aligned16(b) && aligned16(y) ? n / 4 : 0;
        binary_flat_fwd_kernel<OP><<<gvm_cuda_blocks(max64(n4, n - 4 * n4), THREADS), THREADS, 0, st>>>(a, b, y, n4, n);
    } else if (small_index(n)) {
        binary_bcast_fwd_kernel<OP, uint32_t><<<gvm_cuda_blocks(ceil_div(n, 4), THREADS), THREADS, 0, st>>>(
            a, b, y, make_plan2<uint32_t>(bc), (uint32_t)n, aligned16(y));
    } else {
        binary_bcast_fwd_kernel<OP, int64_t><<<gvm_cuda_blocks(ceil_div(n, 4), THREADS), THREADS, 0, st>>>(
            a, b, y, make_plan2<int64_t>(bc), n, aligned16(y));
    }
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_binary_fwd(gvm_binary_op op, const float *a, const float *b, float *y,
                                    const gvm_broadcast *bc) {
    if (bc->numel == 0) return;
    switch (op) {
    case GVM_BINARY_ADD: binary_fwd_launch<GVM_BINARY_ADD>(a, b, y, bc); break;
    case GVM_BINARY_SUB: binary_fwd_launch<GVM_BINARY_SUB>(a, b, y, bc); break;
    case GVM_BINARY_MUL: binary_fwd_launch<GVM_BINARY_MUL>(a, b, y, bc); break;
    case GVM_BINARY_DIV: binary_fwd_launch<GVM_BINARY_DIV>(a, b, y, bc); break;
    default: gvm_fatal(__FILE__, __LINE__, "binary: unknown op %d", (int)op);
    }
}

// ---- backward: inputs that cover the output -------------------------------------------------------------

// Both inputs cover the output: ga[i] += da, gb[i] += db for i in [0, n). Either may be NULL, and they may be
// one buffer (a == b): then the element gets da, then db, in the order of the CPU's two passes.
template <int OP>
__global__ void binary_flat_bwd_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                       const float *__restrict__ g, float *ga, float *gb, int64_t n) {
    GVM_CUDA_FOR(i, n) {
        float gv = g[i], av = a[i], bv = b[i];
        if (ga) ga[i] = __fadd_rn(ga[i], bin_grad<OP, 0>(gv, av, bv));
        if (gb) gb[i] = __fadd_rn(gb[i], bin_grad<OP, 1>(gv, av, bv));
    }
}

// Input WHICH covers the output (so its offset is i), the other is broadcast: gx [n] += grad.
template <int OP, int WHICH, typename I>
__global__ void binary_map_bwd_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                      const float *__restrict__ g, float *__restrict__ gx, Plan2<I> p, I n) {
    FOR_I(i, n) {
        I oa, ob;
        plan_offsets(p, i, oa, ob);
        gx[i] = __fadd_rn(gx[i], bin_grad<OP, WHICH>(g[i], a[oa], b[ob]));
    }
}

// ---- backward: reductions over broadcast dims ------------------------------------------------------------

// How one broadcast input's gradient is reduced. The input's elements are M = kept.count * (col ? L : 1),
// in its own memory order (its kept dims are exactly its own dims, contiguous), each a sum over the
// reduced dims (col) or over the reduced dims times the last dim (row).
typedef struct red_host {
    bool col;                 // the input is contiguous along the last coalesced dim (else broadcast along it)
    int64_t kept_count, red_count, L, M;
    int64_t slices;           // S: cuts of each sum; > 1 means partials in the workspace and a second pass
    int threads;              // row sums: threads per block
    int64_t grid_x;
    int which;
    int n_kept, n_red;
    int64_t kept_size[GVM_MAX_DIMS], kept_stride[3][GVM_MAX_DIMS];
    int64_t red_size[GVM_MAX_DIMS], red_stride[3][GVM_MAX_DIMS];
    int64_t inner[3];         // each stream's stride along the last coalesced dim (output 1, a and b 0 or 1)
} red_host;

template <typename I> struct RedArgs {
    DimSet<I> kept, red;
    I L, M, red_count, slices;
    I inner[3];
};

template <typename I> static RedArgs<I> make_red_args(const red_host *h) {
    RedArgs<I> r = {};
    r.kept.n = h->n_kept;
    r.red.n = h->n_red;
    for (int d = 0; d < h->n_kept; d++) {
        r.kept.size[d] = (I)h->kept_size[d];
        for (int k = 0; k < 3; k++) r.kept.stride[k][d] = (I)h->kept_stride[k][d];
    }
    for (int d = 0; d < h->n_red; d++) {
        r.red.size[d] = (I)h->red_size[d];
        for (int k = 0; k < 3; k++) r.red.stride[k][d] = (I)h->red_stride[k][d];
    }
    r.L = (I)h->L;
    r.M = (I)h->M;
    r.red_count = (I)h->red_count;
    r.slices = (I)h->slices;
    for (int k = 0; k < 3; k++) r.inner[k] = (I)h->inner[k];
    return r;
}

// Split the plan's dims for input `which` (not covering the output) and choose the launch shape.
static void red_plan(const gvm_broadcast *bc, int which, red_host *h) {
    *h = red_host{};
    h->which = which;
    int last = bc->cdim - 1;
    int64_t out_stride[GVM_MAX_DIMS], s = 1;
    for (int d = bc->cdim - 1; d >= 0; d--) {
        out_stride[d] = s;
        s *= bc->cshape[d];
    }
    h->kept_count = h->red_count = 1;
    for (int d = 0; d < last; d++) {
        bool kept = bc->cstride[which][d] != 0;
        int64_t *size = kept ? h->kept_size : h->red_size;
        int64_t(*stride)[GVM_MAX_DIMS] = kept ? h->kept_stride : h->red_stride;
        int *cnt = kept ? &h->n_kept : &h->n_red;
        size[*cnt] = bc->cshape[d];
        stride[0][*cnt] = out_stride[d];
        stride[1][*cnt] = bc->cstride[0][d];
        stride[2][*cnt] = bc->cstride[1][d];
        (*cnt)++;
        if (kept)
            h->kept_count *= bc->cshape[d];
        else
            h->red_count *= bc->cshape[d];
    }
    h->L = bc->cshape[last];
    h->inner[0] = 1;
    h->inner[1] = bc->cstride[0][last];
    h->inner[2] = bc->cstride[1][last];
    h->col = bc->cstride[which][last] != 0;
    if (h->col) {
        // Blocks: (row of x, tile of 32 columns) x slices of the reduced rows, each slice at least 64 rows.
        h->M = h->kept_count * h->L;
        int64_t blocks = h->kept_count * ceil_div(h->L, COL_W);
        h->slices = blocks < RED_TARGET ? ceil_div(RED_TARGET, blocks) : 1;
        h->slices = min64(h->slices, ceil_div(h->red_count, 64));
        h->grid_x = min64(blocks, GRID_CAP);
    } else {
        // Blocks: one per element of x x slices of its sum, each slice at least 8 elements per thread.
        h->M = h->kept_count;
        int64_t terms = h->red_count * h->L;
        h->threads = terms >= THREADS ? THREADS : (int)ceil_div(terms, 32) * 32;
        h->slices = h->M < RED_TARGET ? ceil_div(RED_TARGET, h->M) : 1;
        h->slices = min64(h->slices, ceil_div(terms, (int64_t)h->threads * 8));
        h->grid_x = min64(h->M, GRID_CAP);
    }
    h->slices = max64(1, min64(h->slices, 65535));  // grid y
}

// Sum of v over the block, valid in thread 0; blockDim.x a multiple of 32. Every thread must call it; it
// may be called again at once (the final barrier frees the shared slots). The tree is fixed.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_sums[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? warp_sums[lane] : 0.0;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    }
    __syncthreads();
    return v;
}

// Column sums: block (COL_W, COL_LANES); blockIdx.x walks (row of x, tile of columns), blockIdx.y is the slice.
// x element j = xrow * L + c sums the terms of reduced rows [r0, r1), lane ty taking rows r0 + ty + 8k.
template <int OP, int WHICH, typename I>
__global__ void __launch_bounds__(COL_W *COL_LANES)
    col_sum_kernel(const float *__restrict__ a, const float *__restrict__ b, const float *__restrict__ g,
                   float *__restrict__ gx, double *__restrict__ partial, RedArgs<I> r, int64_t blocks) {
    __shared__ double lanes[COL_LANES][COL_W];
    const I tiles = (r.L + COL_W - 1) / COL_W;
    const I s = blockIdx.y;
    const I r0 = (I)((int64_t)r.red_count * (int64_t)s / (int64_t)r.slices);
    const I r1 = (I)((int64_t)r.red_count * ((int64_t)s + 1) / (int64_t)r.slices);
    for (int64_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
        const I xrow = (I)blk / tiles, c = ((I)blk - xrow * tiles) * COL_W + threadIdx.x;
        double acc = 0.0;
        if (c < r.L) {
            I ko[3];
            dimset_offsets(r.kept, xrow, ko);
#pragma unroll 4
            for (I q = r0 + threadIdx.y; q < r1; q += COL_LANES) {
                I ro[3];
                dimset_offsets(r.red, q, ro);
                float gv = g[ko[0] + ro[0] + c];
                float av = a[ko[1] + ro[1] + c * r.inner[1]];
                float bv = b[ko[2] + ro[2] + c * r.inner[2]];
                acc += bin_grad_d<OP, WHICH>(gv, av, bv);
            }
        }
        lanes[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && c < r.L) {
            double sum = lanes[0][threadIdx.x];
#pragma unroll
            for (int k = 1; k < COL_LANES; k++) sum += lanes[k][threadIdx.x];
            I j = xrow * r.L + c;
            if (r.slices == 1)
                gx[j] = __fadd_rn(gx[j], (float)sum);
            else
                partial[(int64_t)s * (int64_t)r.M + (int64_t)j] = sum;
        }
        __syncthreads();  // lanes[] is rewritten by the next block of the loop
    }
}

// Row sums: blockIdx.x walks the elements j of x, blockIdx.y is the slice; the sum of j runs over
// t = q * L + c (q a reduced row, c along the last dim, contiguous in memory), t in [t0, t1).
template <int OP, int WHICH, typename I>
__global__ void __launch_bounds__(THREADS)
    row_sum_kernel(const float *__restrict__ a, const float *__restrict__ b, const float *__restrict__ g,
                   float *__restrict__ gx, double *__restrict__ partial, RedArgs<I> r) {
    const I s = blockIdx.y;
    const int64_t terms = (int64_t)r.red_count * (int64_t)r.L;
    const I t0 = (I)(terms * (int64_t)s / (int64_t)r.slices);
    const I t1 = (I)(terms * ((int64_t)s + 1) / (int64_t)r.slices);
    for (I j = blockIdx.x; j < r.M; j += gridDim.x) {
        I ko[3];
        dimset_offsets(r.kept, j, ko);
        double acc = 0.0;
#pragma unroll 4
        for (I t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
            I q = t / r.L, c = t - q * r.L;
            I ro[3];
            dimset_offsets(r.red, q, ro);
            float gv = g[ko[0] + ro[0] + c];
            float av = a[ko[1] + ro[1] + c * r.inner[1]];
            float bv = b[ko[2] + ro[2] + c * r.inner[2]];
            acc += bin_grad_d<OP, WHICH>(gv, av, bv);
        }
        double sum = block_sum(acc);
        if (threadIdx.x == 0) {
            if (r.slices == 1)
                gx[j] = __fadd_rn(gx[j], (float)sum);
            else
                partial[(int64_t)s * (int64_t)r.M + (int64_t)j] = sum;
        }
    }
}

// Second pass of a sliced reduction: gx[j] += sum over slices (in slice order) of partial [S, M].
__global__ void slices_finish_kernel(const double *__restrict__ partial, float *__restrict__ gx, int64_t M,
                                     int64_t S) {
    GVM_CUDA_FOR(j, M) {
        double sum = 0.0;
        for (int64_t s = 0; s < S; s++) sum += partial[s * M + j];
        gx[j] = __fadd_rn(gx[j], (float)sum);
    }
}

template <int OP, int WHICH, typename I>
static void reduce_launch(const float *a, const float *b, const float *g, float *gx, const red_host *h,
                          double *partial) {
    cudaStream_t st = gvm_cuda_stream();
    RedArgs<I> r = make_red_args<I>(h);
    dim3 grid((unsigned)h->grid_x, (unsigned)h->slices);
    if (h->col) {
        int64_t blocks = h->kept_count * ceil_div(h->L, COL_W);
        col_sum_kernel<OP, WHICH, I><<<grid, dim3(COL_W, COL_LANES), 0, st>>>(a, b, g, gx, partial, r, blocks);
    } else {
        row_sum_kernel<OP, WHICH, I><<<grid, h->threads, 0, st>>>(a, b, g, gx, partial, r);
    }
    GVM_CUDA_LAUNCH_CHECK();
    if (h->slices > 1) {
        slices_finish_kernel<<<gvm_cuda_blocks(h->M, THREADS), THREADS, 0, st>>>(partial, gx, h->M, h->slices);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

template <int OP, int WHICH, typename I>
static void map_launch(const float *a, const float *b, const float *g, float *gx, const gvm_broadcast *bc) {
    binary_map_bwd_kernel<OP, WHICH, I><<<gvm_cuda_blocks(bc->numel, THREADS), THREADS, 0, gvm_cuda_stream()>>>(
        a, b, g, gx, make_plan2<I>(bc), (I)bc->numel);
    GVM_CUDA_LAUNCH_CHECK();
}

// The gradient of input WHICH: a map when it covers the output, else a reduction (h planned by red_plan).
template <int OP, int WHICH>
static void grad_input(const float *a, const float *b, const float *g, float *gx, const gvm_broadcast *bc,
                       const red_host *h, double *partial) {
    bool small = small_index(bc->numel);
    if (!h) {
        if (small)
            map_launch<OP, WHICH, uint32_t>(a, b, g, gx, bc);
        else
            map_launch<OP, WHICH, int64_t>(a, b, g, gx, bc);
    } else if (small) {
        reduce_launch<OP, WHICH, uint32_t>(a, b, g, gx, h, partial);
    } else {
        reduce_launch<OP, WHICH, int64_t>(a, b, g, gx, h, partial);
    }
}

template <int OP>
static void binary_bwd_launch(const float *a, const float *b, const float *g, float *ga, float *gb,
                              const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    bool full_a = gvm_broadcast_is_full(bc, 0), full_b = gvm_broadcast_is_full(bc, 1);
    if (full_a && full_b) {
        binary_flat_bwd_kernel<OP><<<gvm_cuda_blocks(n, THREADS), THREADS, 0, gvm_cuda_stream()>>>(a, b, g, ga, gb, n);
        GVM_CUDA_LAUNCH_CHECK();
        return;
    }
    // One input is broadcast, so a != b and ga != gb: the two gradients are independent passes. Plan the
    // reductions first, so that both take their partial sums from one workspace call.
    red_host ha = {}, hb = {};
    bool red_a = ga && !full_a, red_b = gb && !full_b;
    if (red_a) red_plan(bc, 0, &ha);
    if (red_b) red_plan(bc, 1, &hb);
    int64_t pa = red_a && ha.slices > 1 ? ha.slices * ha.M : 0;
    int64_t pb = red_b && hb.slices > 1 ? hb.slices * hb.M : 0;
    double *partial = pa + pb > 0 ? (double *)gvm_cuda_workspace((size_t)(pa + pb) * sizeof(double)) : NULL;
    if (ga) grad_input<OP, 0>(a, b, g, ga, bc, red_a ? &ha : NULL, partial);
    if (gb) grad_input<OP, 1>(a, b, g, gb, bc, red_b ? &hb : NULL, partial ? partial + pa : NULL);
}

extern "C" void gvm_cuda_binary_bwd(gvm_binary_op op, const float *a, const float *b, const float *gy, float *ga,
                                    float *gb, const gvm_broadcast *bc) {
    if (bc->numel == 0 || (!ga && !gb)) return;
    switch (op) {
    case GVM_BINARY_ADD: binary_bwd_launch<GVM_BINARY_ADD>(a, b, gy, ga, gb, bc); break;
    case GVM_BINARY_SUB: binary_bwd_launch<GVM_BINARY_SUB>(a, b, gy, ga, gb, bc); break;
    case GVM_BINARY_MUL: binary_bwd_launch<GVM_BINARY_MUL>(a, b, gy, ga, gb, bc); break;
    case GVM_BINARY_DIV: binary_bwd_launch<GVM_BINARY_DIV>(a, b, gy, ga, gb, bc); break;
    default: gvm_fatal(__FILE__, __LINE__, "binary: unknown op %d", (int)op);
    }
}

// ==== unary ops ===========================================================================================

// Internal variant: pow with p == 2, as a product (the CPU's UNARY_SQUARE).
#define UNARY_SQUARE GVM_UNARY_COUNT

// The CPU's math, operation for operation: core/cuda/vmath.cuh.
#include "core/cuda/vmath.cuh"

// ---- the ops ---------------------------------------------------------------------------------------------------

template <int OP> __device__ __forceinline__ float un_apply(float x, float p) {
    switch (OP) {
    case GVM_UNARY_ADD_SCALAR: return x + p;
    case GVM_UNARY_MUL_SCALAR: return x * p;
    case GVM_UNARY_POW: return powf(x, p);
    case UNARY_SQUARE: return x * x;
    case GVM_UNARY_NEG: return -x;
    case GVM_UNARY_EXP: return v_exp(x);
    case GVM_UNARY_LOG: return logf(x);
    case GVM_UNARY_SQRT: return sqrtf(x);  // correctly rounded (nvcc's default -prec-sqrt=true)
    case GVM_UNARY_ABS: return fabsf(x);
    case GVM_UNARY_GELU: return gelu_fwd1(x);
    case GVM_UNARY_GELU_TANH: {
        float s, oms, du;
        gelu_tanh_parts(x, s, oms, du);
        return __fmul_rn(x, s);
    }
    case GVM_UNARY_RELU: return x < 0.0f ? 0.0f : x;  // NaN passes through
    case GVM_UNARY_ELU: return x > 0.0f ? x : __fmul_rn(p, v_expm1(x));
    case GVM_UNARY_SILU: {  // x / (1 + exp(-x))
        float xl = x < -88.0f ? -88.0f : x, xc;
        return xl / __fadd_rn(1.0f, silu_e(xl, xc));
    }
    case GVM_UNARY_TANH: return v_tanh(x);
    default: {  // GVM_UNARY_SIGMOID
        float s, oms;
        sigmoid_pair(x, s, oms);
        return s;
    }
    }
}

// g * f'(x); y = f(x) from the forward (the CPU's un_grad).
template <int OP> __device__ __forceinline__ float un_grad(float g, float x, float y, float p) {
    switch (OP) {
    case GVM_UNARY_ADD_SCALAR: return g;
    case GVM_UNARY_MUL_SCALAR: return g * p;
    case GVM_UNARY_POW: return p == 0.0f ? 0.0f : __fmul_rn(__fmul_rn(g, p), powf(x, p - 1.0f));
    case UNARY_SQUARE: return __fmul_rn(__fmul_rn(g, 2.0f), x);
    case GVM_UNARY_NEG: return -g;
    case GVM_UNARY_EXP: return g * y;
    case GVM_UNARY_LOG: return g / x;
    case GVM_UNARY_SQRT: return g / (2.0f * y);
    case GVM_UNARY_ABS: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case GVM_UNARY_GELU: return __fmul_rn(g, gelu_grad1(x));
    case GVM_UNARY_GELU_TANH: {  // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
        float s, oms, du;
        gelu_tanh_parts(x, s, oms, du);
        float t = __fmul_rn(__fmul_rn(__fmul_rn(__fmul_rn(2.0f, x), s), oms), du);
        return __fmul_rn(g, __fadd_rn(s, t));
    }
    case GVM_UNARY_RELU: return x > 0.0f ? g : 0.0f;
    case GVM_UNARY_ELU: return x > 0.0f ? g : __fmul_rn(__fmul_rn(g, p), v_exp(x));
    case GVM_UNARY_SILU: {  // s (1 + x (1 - s)), with 1 - s = e s
        float xc, e = silu_e(x < -88.0f ? -88.0f : x, xc);
        float s = 1.0f / __fadd_rn(1.0f, e);
        return __fmul_rn(g, __fmul_rn(s, fmaf(xc, __fmul_rn(e, s), 1.0f)));
    }
    case GVM_UNARY_TANH: return __fmul_rn(g, __fsub_rn(1.0f, __fmul_rn(y, y)));
    default: return __fmul_rn(__fmul_rn(g, y), __fsub_rn(1.0f, y));  // GVM_UNARY_SIGMOID
    }
}

// x, y [n]: float4 groups [0, n4) when aligned, then [4 * n4, n) one at a time.
template <int OP>
__global__ void unary_fwd_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t n4, int64_t n, float p) {
    GVM_CUDA_FOR(i, n4) {
        float4 v = reinterpret_cast<const float4 *>(x)[i];
        float4 r = {un_apply<OP>(v.x, p), un_apply<OP>(v.y, p), un_apply<OP>(v.z, p), un_apply<OP>(v.w, p)};
        reinterpret_cast<float4 *>(y)[i] = r;
    }
    GVM_CUDA_FOR(j, n - 4 * n4) {
        int64_t i = 4 * n4 + j;
        y[i] = un_apply<OP>(x[i], p);
    }
}

// x, y, gy, gx [n]: gx += gy f'(x), laid out as the forward.
template <int OP>
__global__ void unary_bwd_kernel(const float *__restrict__ x, const float *__restrict__ y,
                                 const float *__restrict__ gy, float *__restrict__ gx, int64_t n4, int64_t n, float p) {
    GVM_CUDA_FOR(i, n4) {
        float4 xv = reinterpret_cast<const float4 *>(x)[i], yv = reinterpret_cast<const float4 *>(y)[i];
        float4 gv = reinterpret_cast<const float4 *>(gy)[i], acc = reinterpret_cast<float4 *>(gx)[i];
        acc.x = __fadd_rn(acc.x, un_grad<OP>(gv.x, xv.x, yv.x, p));
        acc.y = __fadd_rn(acc.y, un_grad<OP>(gv.y, xv.y, yv.y, p));
        acc.z = __fadd_rn(acc.z, un_grad<OP>(gv.z, xv.z, yv.z, p));
        acc.w = __fadd_rn(acc.w, un_grad<OP>(gv.w, xv.w, yv.w, p));
        reinterpret_cast<float4 *>(gx)[i] = acc;
    }
    GVM_CUDA_FOR(j, n - 4 * n4) {
        int64_t i = 4 * n4 + j;
        gx[i] = __fadd_rn(gx[i], un_grad<OP>(gy[i], x[i], y[i], p));
    }
}

template <int OP> static void unary_fwd_launch(const float *x, float *y, int64_t n, float p) {
    int64_t n4 = aligned16(x) && aligned16(y) ? n / 4 : 0;
    unary_fwd_kernel<OP><<<gvm_cuda_blocks(max64(n4, n - 4 * n4), THREADS), THREADS, 0, gvm_cuda_stream()>>>(x, y, n4,
                                                                                                               n, p);
    GVM_CUDA_LAUNCH_CHECK();
}

template <int OP>
static void unary_bwd_launch(const float *x, const float *y, const float *gy, float *gx, int64_t n, float p) {
    int64_t n4 = aligned16(x) && aligned16(y) && aligned16(gy) && aligned16(gx) ? n / 4 : 0;
    unary_bwd_kernel<OP><<<gvm_cuda_blocks(max64(n4, n - 4 * n4), THREADS), THREADS, 0, gvm_cuda_stream()>>>(
        x, y, gy, gx, n4, n, p);
    GVM_CUDA_LAUNCH_CHECK();
}

// pow with the exponents that have an exact cheaper form, as the CPU picks them: x^2 as a product, x^0.5 as
// sqrt (whose gradient g / (2 sqrt x) is the same derivative).
static int unary_variant(gvm_unary_op op, float p) {
    if (op == GVM_UNARY_POW && p == 2.0f) return UNARY_SQUARE;
    if (op == GVM_UNARY_POW && p == 0.5f) return GVM_UNARY_SQRT;
    return (int)op;
}

#define UNARY_OPS(X)                                                                                           \
    X(GVM_UNARY_ADD_SCALAR) X(GVM_UNARY_MUL_SCALAR) X(GVM_UNARY_POW) X(UNARY_SQUARE) X(GVM_UNARY_NEG)          \
    X(GVM_UNARY_EXP) X(GVM_UNARY_LOG) X(GVM_UNARY_SQRT) X(GVM_UNARY_ABS) X(GVM_UNARY_GELU)                     \
    X(GVM_UNARY_GELU_TANH) X(GVM_UNARY_RELU) X(GVM_UNARY_ELU) X(GVM_UNARY_SILU) X(GVM_UNARY_TANH)              \
    X(GVM_UNARY_SIGMOID)

extern "C" void gvm_cuda_unary_fwd(gvm_unary_op op, const float *x, float *y, int64_t n, float param) {
    if (n <= 0) return;
    switch (unary_variant(op, param)) {
#define UNARY_FWD_CASE(OP)                                                                                     \
    case OP: unary_fwd_launch<OP>(x, y, n, param); break;
        UNARY_OPS(UNARY_FWD_CASE)
#undef UNARY_FWD_CASE
    default: gvm_fatal(__FILE__, __LINE__, "unary: unknown op %d", (int)op);
    }
}

extern "C" void gvm_cuda_unary_bwd(gvm_unary_op op, const float *x, const float *y, const float *gy, float *gx,
                                   int64_t n, float param) {
    if (n <= 0) return;
    switch (unary_variant(op, param)) {
#define UNARY_BWD_CASE(OP)                                                                                     \
    case OP: unary_bwd_launch<OP>(x, y, gy, gx, n, param); break;
        UNARY_OPS(UNARY_BWD_CASE)
#undef UNARY_BWD_CASE
    default: gvm_fatal(__FILE__, __LINE__, "unary: unknown op %d", (int)op);
    }
}

// ==== dropout =============================================================================================

// One thread per Philox block: elements 4 blk .. 4 blk + 3 take the block's four words, as on the CPU
// (core/cpu/elementwise.c: dropout_block). `vec`: x and y (gy and gx) are 16-byte aligned, so whole blocks
// move as float4.
__global__ void dropout_fwd_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t n, uint64_t seed,
                                   uint64_t base, float p, float scale, bool vec) {
    int64_t blocks = (n + 3) / 4;
    GVM_CUDA_FOR(blk, blocks) {
        uint32_t w[4];
        gvm_philox4x32_dev(seed, base + (uint64_t)blk, 0, w);
        bool k0 = gvm_philox_unit(w[0]) >= p, k1 = gvm_philox_unit(w[1]) >= p;
        bool k2 = gvm_philox_unit(w[2]) >= p, k3 = gvm_philox_unit(w[3]) >= p;
        int64_t i0 = blk * 4;
        if (vec && i0 + 4 <= n) {
            float4 v = reinterpret_cast<const float4 *>(x)[blk];
            float4 r = {k0 ? __fmul_rn(v.x, scale) : 0.0f, k1 ? __fmul_rn(v.y, scale) : 0.0f,
                        k2 ? __fmul_rn(v.z, scale) : 0.0f, k3 ? __fmul_rn(v.w, scale) : 0.0f};
            reinterpret_cast<float4 *>(y)[blk] = r;
        } else {
            bool keep[4] = {k0, k1, k2, k3};
            int64_t m = n - i0 < 4 ? n - i0 : 4;
            for (int64_t j = 0; j < m; j++) y[i0 + j] = keep[j] ? __fmul_rn(x[i0 + j], scale) : 0.0f;
        }
    }
}

// gx += gy * scale where kept; dropped elements are left untouched (as the CPU leaves them).
__global__ void dropout_bwd_kernel(const float *__restrict__ gy, float *__restrict__ gx, int64_t n, uint64_t seed,
                                   uint64_t base, float p, float scale, bool vec) {
    int64_t blocks = (n + 3) / 4;
    GVM_CUDA_FOR(blk, blocks) {
        uint32_t w[4];
        gvm_philox4x32_dev(seed, base + (uint64_t)blk, 0, w);
        bool k0 = gvm_philox_unit(w[0]) >= p, k1 = gvm_philox_unit(w[1]) >= p;
        bool k2 = gvm_philox_unit(w[2]) >= p, k3 = gvm_philox_unit(w[3]) >= p;
        int64_t i0 = blk * 4;
        if (vec && i0 + 4 <= n) {
            float4 g = reinterpret_cast<const float4 *>(gy)[blk], acc = reinterpret_cast<float4 *>(gx)[blk];
            if (k0) acc.x = __fadd_rn(acc.x, __fmul_rn(g.x, scale));
            if (k1) acc.y = __fadd_rn(acc.y, __fmul_rn(g.y, scale));
            if (k2) acc.z = __fadd_rn(acc.z, __fmul_rn(g.z, scale));
            if (k3) acc.w = __fadd_rn(acc.w, __fmul_rn(g.w, scale));
            reinterpret_cast<float4 *>(gx)[blk] = acc;
        } else {
            bool keep[4] = {k0, k1, k2, k3};
            int64_t m = n - i0 < 4 ? n - i0 : 4;
            for (int64_t j = 0; j < m; j++)
                if (keep[j]) gx[i0 + j] = __fadd_rn(gx[i0 + j], __fmul_rn(gy[i0 + j], scale));
        }
    }
}

extern "C" void gvm_cuda_dropout_fwd(const float *x, float *y, int64_t n, uint64_t seed, uint64_t base, float p) {
    if (n <= 0) return;
    const float scale = 1.0f / (1.0f - p);  // on the host in float, as the CPU computes it
    dropout_fwd_kernel<<<gvm_cuda_blocks((n + 3) / 4, THREADS), THREADS, 0, gvm_cuda_stream()>>>(
        x, y, n, seed, base, p, scale, aligned16(x) && aligned16(y));
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_dropout_bwd(const float *gy, float *gx, int64_t n, uint64_t seed, uint64_t base, float p) {
    if (n <= 0) return;
    const float scale = 1.0f / (1.0f - p);
    dropout_bwd_kernel<<<gvm_cuda_blocks((n + 3) / 4, THREADS), THREADS, 0, gvm_cuda_stream()>>>(
        gy, gx, n, seed, base, p, scale, aligned16(gy) && aligned16(gx));
    GVM_CUDA_LAUNCH_CHECK();
}

// ==== masked_fill =========================================================================================

// y [n] = mask ? value : a; a covers the output (offset i), the mask's offset comes from the plan
// (input 1). Four consecutive elements per thread: when they lie in one run and a and y are 16-byte aligned
// (`vec`), one index computation and float4 moves serve all four; otherwise each is placed on its own.
template <typename I>
__global__ void masked_fill_fwd_kernel(const float *__restrict__ a, const uint8_t *__restrict__ mask,
                                       float *__restrict__ y, float value, Plan2<I> p, I n, bool vec) {
    const I groups = (n + 3) / 4, sm = p.inner[1];
    FOR_I(k, groups) {
        const I i0 = 4 * k;
        I oa, om;
        if (vec && i0 + 4 <= n && i0 % p.last + 4 <= p.last) {
            plan_offsets(p, i0, oa, om);
            float4 v = reinterpret_cast<const float4 *>(a)[k];
            v.x = mask[om] ? value : v.x;
            v.y = mask[om + sm] ? value : v.y;
            v.z = mask[om + 2 * sm] ? value : v.z;
            v.w = mask[om + 3 * sm] ? value : v.w;
            reinterpret_cast<float4 *>(y)[k] = v;
        } else {
            for (I i = i0; i < i0 + 4 && i < n; i++) {
                plan_offsets(p, i, oa, om);
                y[i] = mask[om] ? value : a[i];
            }
        }
    }
}

// ga += mask ? 0 : g for one element. `always_add`: the mask runs along the last coalesced dim, where the CPU
// adds 0 for masked elements (which turns a -0 gradient into +0); elsewhere it skips them. Both are mirrored
// so the bits agree.
__device__ __forceinline__ float masked_grad(float acc, bool m, float g, bool always_add) {
    if (always_add) return __fadd_rn(acc, m ? 0.0f : g);
    return m ? acc : __fadd_rn(acc, g);
}

// ga [n] += mask ? 0 : gy, grouped as the forward (`vec`: gy and ga 16-byte aligned).
template <typename I>
__global__ void masked_fill_bwd_kernel(const uint8_t *__restrict__ mask, const float *__restrict__ gy,
                                       float *__restrict__ ga, Plan2<I> p, I n, bool always_add, bool vec) {
    const I groups = (n + 3) / 4, sm = p.inner[1];
    FOR_I(k, groups) {
        const I i0 = 4 * k;
        I oa, om;
        if (vec && i0 + 4 <= n && i0 % p.last + 4 <= p.last) {
            plan_offsets(p, i0, oa, om);
            float4 g = reinterpret_cast<const float4 *>(gy)[k], acc = reinterpret_cast<float4 *>(ga)[k];
            acc.x = masked_grad(acc.x, mask[om] != 0, g.x, always_add);
            acc.y = masked_grad(acc.y, mask[om + sm] != 0, g.y, always_add);
            acc.z = masked_grad(acc.z, mask[om + 2 * sm] != 0, g.z, always_add);
            acc.w = masked_grad(acc.w, mask[om + 3 * sm] != 0, g.w, always_add);
            reinterpret_cast<float4 *>(ga)[k] = acc;
        } else {
            for (I i = i0; i < i0 + 4 && i < n; i++) {
                plan_offsets(p, i, oa, om);
                ga[i] = masked_grad(ga[i], mask[om] != 0, gy[i], always_add);
            }
        }
    }
}

extern "C" void gvm_cuda_masked_fill_fwd(const float *a, const uint8_t *mask, float *y, float value,
                                         const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    cudaStream_t st = gvm_cuda_stream();
    unsigned blocks = gvm_cuda_blocks(ceil_div(n, 4), THREADS);
    bool vec = aligned16(a) && aligned16(y);
    if (small_index(n))
        masked_fill_fwd_kernel<uint32_t>
            <<<blocks, THREADS, 0, st>>>(a, mask, y, value, make_plan2<uint32_t>(bc), (uint32_t)n, vec);
    else
        masked_fill_fwd_kernel<int64_t><<<blocks, THREADS, 0, st>>>(a, mask, y, value, make_plan2<int64_t>(bc), n, vec);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_masked_fill_bwd(const uint8_t *mask, const float *gy, float *ga, const gvm_broadcast *bc) {
    int64_t n = bc->numel;
    if (n == 0) return;
    cudaStream_t st = gvm_cuda_stream();
    bool always_add = gvm_broadcast_inner_stride(bc, 1) != 0;
    unsigned blocks = gvm_cuda_blocks(ceil_div(n, 4), THREADS);
    bool vec = aligned16(gy) && aligned16(ga);
    if (small_index(n))
        masked_fill_bwd_kernel<uint32_t>
            <<<blocks, THREADS, 0, st>>>(mask, gy, ga, make_plan2<uint32_t>(bc), (uint32_t)n, always_add, vec);
    else
        masked_fill_bwd_kernel<int64_t>
            <<<blocks, THREADS, 0, st>>>(mask, gy, ga, make_plan2<int64_t>(bc), n, always_add, vec);
    GVM_CUDA_LAUNCH_CHECK();
}
