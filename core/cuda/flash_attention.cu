// cuda/flash_attention.cu: fused ("flash") attention for the autocast path (see attention.h), the fast twin
// of the cuBLAS + softmax-kernel path in attention.cu for head dims D == Dv in {32, 64, 128}.
//
// Same layouts and semantics as attention.cu: q [B, Tq, H, D], k/v [B, Tk, H, D], out [B, Tq, H, D] f32,
// lse [B, H, Tq] f32 (+inf for a row that sees no key, whose out is 0), key_mask [B, Tk] or NULL, causal
// end-aligned (query i sees key j iff j <= i + Tk - Tq); the backward pass accumulates (+=) into dq, dk, dv.
// q, k, v and dout are rounded to bf16/f16 (round to nearest even) while their tiles are loaded into shared
// memory; every product runs on tensor cores (WMMA 16x16x16, f32 accumulation). No score matrix reaches
// global memory.
//
// Forward (flash_fwd): a block of 4 warps owns 64 query rows of one (batch, head), 16 rows per warp, and
// walks the key tiles of 64 keys the tile can see (causal: tiles past the last row's limit are skipped).
// Per tile a warp computes S = Q K^T into a f32 smem tile, lane pairs run the online softmax on its rows
// (running max m and sum l), and O (WMMA accumulators in registers) is rescaled by exp(m_old - m_new) and
// gets P V. The fragments' element layout is opaque, so the per-row rescale goes through a [16, 16] smem
// tile whose row r holds row r's factor, loaded as an accumulator fragment of the same shape: the element
// mapping of two such fragments is the same (the CUDA guide's own WMMA example combines fragments so).
// P is fed to the tensor cores as hi + lo (P_hi = round(P), P_lo = round(P - P_hi)): O is then as exact as
// f32 probabilities make it. That costs a third more MMAs in the forward pass, and buys the backward's
// row term: Di = rowsum(round(dO) * O) equals sum_j P_j dP_j with dP = round(dO) round(V)^T (the autocast
// formula of attention.cu, whose rows of dS sum to ~0) up to f32 rounding; with P rounded to 8 bits the
// two would differ by ~2^-9 |dO||V| and dq, dk would carry that error on top of the usual ones.
//
// Backward: three kernels, no atomics (every output element is owned by one warp, summed in a fixed
// order, so a seeded run is bit-identical):
//   flash_bwd_delta  Di [B, H, Tq] = rowsum(round(dO) * O), one warp per row, into the op's scratch;
//   flash_bwd_dkdv   a block owns 64 keys (16 per warp) and walks the query tiles that can see them:
//                    S^T = K Q^T, P^T = exp(scale S^T - lse), dV += P^T dO, dP^T = V dO^T,
//                    dS^T = P^T (dP^T - Di), dK += scale dS^T Q;
//   flash_bwd_dq     a block owns 64 query rows (16 per warp) and walks the key tiles they can see:
//                    S, P, dP, dS as above, dQ += scale dS K.
// P and dS are rounded to the operand type before their products, as in attention.cu; P in dS = P (dP - Di)
// stays f32. The elementwise work of the backward kernels maps lane l to columns l and l + 32 of the warp's
// [16, 64] tile (conflict-free smem rows), so no row reduction is needed there.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <mma.h>

#include "core/cuda/attention.h"
#include "core/cuda/common.cuh"

namespace {

using namespace nvcuda;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 64;        // query rows and keys per tile (16 rows a warp)
constexpr int kLdS = kTile + 4;  // row stride (floats) of the f32 [16, 64] score tiles: 16-byte pad
constexpr int kLdP = kTile + 8;  // row stride (elements) of the bf16/f16 [16, 64] probability tiles
// The largest opt-in shared memory per block of every architecture the project builds (sm_86, sm_89:
// 99 KiB; sm_80: 163 KiB; sm_90: 227 KiB): every kernel here fits it, checked at compile time.
constexpr size_t kSmemAllArchs = 99 * 1024;

using acc_frag = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
template <typename T>
using a_frag = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using bt_frag = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;  // B^T of a row-major tile
template <typename T>
using b_frag = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;

// Rounding to the operand type (round to nearest even, as attention.cu's casts) and back.
template <typename T>
struct lowp;
template <>
struct lowp<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat16 from(float x) { return __float2bfloat16_rn(x); }
    static __device__ __forceinline__ float to(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ unsigned pack2(float a, float b) {  // a at the lower address
        __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<unsigned *>(&v);
    }
};
template <>
struct lowp<__half> {
    static __device__ __forceinline__ __half from(float x) { return __float2half_rn(x); }
    static __device__ __forceinline__ float to(__half x) { return __half2float(x); }
    static __device__ __forceinline__ unsigned pack2(float a, float b) {
        __half2 v = __floats2half2_rn(a, b);
        return *reinterpret_cast<unsigned *>(&v);
    }
};

// Shared memory of the kernels, byte offsets. Four [64, D + 8] operand tiles (the 8-element pad keeps the
// WMMA loads off each other's banks), then per warp a f32 score tile [16, kLdS] and low-precision
// probability tiles [16, kLdP] (two in the forward pass: P_hi, P_lo; one in the backward: P, then dS),
// then small per-tile vectors. Every WMMA pointer must be 32-byte aligned: all offsets and strides below are.
template <typename T, int D>
struct smem_layout {
    static constexpr int ld = D + 8;  // operand tile row stride (elements)
    static constexpr size_t tile = (size_t)kTile * ld * sizeof(T);
    static constexpr size_t s_warp = (size_t)16 * kLdS * sizeof(float);
    static constexpr size_t p_warp = (size_t)16 * kLdP * sizeof(T);
    // forward: Q, K, V | S | P_hi, P_lo | row factors [16, 16] | key validity [64]
    static constexpr size_t f_s = 3 * tile;
    static constexpr size_t f_p = f_s + kWarps * s_warp;
    static constexpr size_t f_a = f_p + kWarps * 2 * p_warp;
    static constexpr size_t f_valid = f_a + (size_t)kWarps * 16 * 16 * sizeof(float);
    static constexpr size_t f_total = f_valid + kTile;
    // backward: own tiles (K, V or Q, dO), streamed tiles | S / dP | P / dS | lse [64], Di [64] | validity
    static constexpr size_t b_s = 4 * tile;
    static constexpr size_t b_p = b_s + kWarps * s_warp;
    static constexpr size_t b_rows = b_p + kWarps * p_warp;
    static constexpr size_t b_valid = b_rows + 2 * kTile * sizeof(float);
    static constexpr size_t b_total = b_valid + kTile;
    static_assert(tile % 128 == 0 && s_warp % 32 == 0 && p_warp % 32 == 0, "WMMA tiles must stay 32-byte aligned");
    static_assert(f_s % 128 == 0 && f_p % 128 == 0 && f_a % 128 == 0 && b_p % 128 == 0 && b_rows % 16 == 0,
                  "WMMA tiles must stay 32-byte aligned");
    static_assert(f_total <= kSmemAllArchs && b_total <= kSmemAllArchs, "shared memory over the sm_86 limit");
};

// Rows [r0, r0 + 64) of one head of a [batch, T, H, D] f32 tensor (row t at src + t * ld_row) -> smem tile
// [64, D + 8] of T, rounded; rows at or past T are zero (a tail tile must not feed NaN garbage to the MMAs:
// 0 * NaN would leak into valid outputs). vec: src and ld_row allow float4 loads.
template <typename T, int D>
__device__ __forceinline__ void load_tile(T *dst, const float *src, int64_t ld_row, int64_t r0, int64_t T_,
                                          bool vec) {
    constexpr int ld = D + 8;
    if (vec) {
        constexpr int per_row = D / 4;
        for (int e = threadIdx.x; e < kTile * per_row; e += kThreads) {
            const int r = e / per_row, c = (e % per_row) * 4;
            const int64_t t = r0 + r;
            float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (t < T_) x = __ldg(reinterpret_cast<const float4 *>(src + t * ld_row + c));
            uint2 w;
            w.x = lowp<T>::pack2(x.x, x.y);
            w.y = lowp<T>::pack2(x.z, x.w);
            *reinterpret_cast<uint2 *>(dst + r * ld + c) = w;  // 8-byte aligned: ld and c are multiples of 4
        }
    } else {
        for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
            const int r = e / D, c = e % D;
            const int64_t t = r0 + r;
            dst[r * ld + c] = lowp<T>::from(t < T_ ? __ldg(src + t * ld_row + c) : 0.0f);
        }
    }
}

// valid[c] = key k0 + c exists and the key mask lets it be seen (mrow: the batch row's mask, or NULL).
__device__ __forceinline__ void load_valid(uint8_t *valid, const uint8_t *mrow, int64_t k0, int64_t Tk) {
    if (threadIdx.x < kTile) {
        const int64_t j = k0 + threadIdx.x;
        valid[threadIdx.x] = j < Tk && (!mrow || mrow[j]);
    }
}

// acc [16, 16] += A [16, K] B^T with A rows at a (stride ld) and B rows (the columns of B^T) at b: the
// score products S = Q K^T, S^T = K Q^T, dP = dO V^T, dP^T = V dO^T. K = D.
template <typename T, int D>
__device__ __forceinline__ void mma_abt(acc_frag &acc, const T *a, const T *b, int ld) {
    a_frag<T> fa;
    bt_frag<T> fb;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        wmma::load_matrix_sync(fa, a + kk * 16, ld);
        wmma::load_matrix_sync(fb, b + kk * 16, ld);
        wmma::mma_sync(acc, fa, fb, acc);
    }
}

// The warp's [16, 64] score-shaped product A B^T (A: its 16 rows at a; B: the 64 rows of a tile at b) into
// the f32 tile s [16, kLdS].
template <typename T, int D>
__device__ __forceinline__ void scores_to_smem(float *s, const T *a, const T *b, int ld) {
#pragma unroll
    for (int n = 0; n < kTile / 16; n++) {
        acc_frag acc;
        wmma::fill_fragment(acc, 0.0f);
        mma_abt<T, D>(acc, a, b + n * 16 * ld, ld);
        wmma::store_matrix_sync(s + n * 16, acc, kLdS, wmma::mem_row_major);
    }
}

// acc[f] [16, 16] += P [16, 64] X[:, 16 f : 16 f + 16] for f < D / 16: P at p (stride kLdP), X a [64, D]
// tile at x (stride ld). P V, P^T dO, dS^T Q, dS K.
template <typename T, int D>
__device__ __forceinline__ void mma_px(acc_frag (&acc)[D / 16], const T *p, const T *x, int ld) {
#pragma unroll
    for (int kk = 0; kk < kTile / 16; kk++) {
        a_frag<T> fa;
        wmma::load_matrix_sync(fa, p + kk * 16, kLdP);
#pragma unroll
        for (int f = 0; f < D / 16; f++) {
            b_frag<T> fb;
            wmma::load_matrix_sync(fb, x + kk * 16 * ld + f * 16, ld);
            wmma::mma_sync(acc[f], fa, fb, acc[f]);
        }
    }
}

// Writes (kAdd: adds) scale * acc, the warp's [16, D] result, to the `rows` (<= 16) first rows of dst
// (row stride ld_row), staged through the warp's f32 tile s so that the global accesses are coalesced
// and rows past the tensor's end are skipped. 64 columns a pass.
template <int D, bool kAdd>
__device__ __forceinline__ void write_rows(acc_frag (&acc)[D / 16], float *s, float *dst, int64_t ld_row, int rows,
                                           float scale, int lane) {
    constexpr int NF = D / 16;
    constexpr int G = NF < 4 ? NF : 4;  // fragments a pass
    constexpr int cols = G * 16;
    static_assert(NF % G == 0, "whole passes");
#pragma unroll
    for (int g = 0; g < NF; g += G) {
        __syncwarp();  // the lanes are done reading s (previous pass, or the caller's last use)
#pragma unroll
        for (int u = 0; u < G; u++) wmma::store_matrix_sync(s + u * 16, acc[g + u], kLdS, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 16 * cols; e += 32) {
            const int r = e / cols, c = e % cols;
            if (r < rows) {
                const float x = scale * s[r * kLdS + c];
                float *d = dst + r * ld_row + g * 16 + c;
                if (kAdd) *d += x;
                else *d = x;
            }
        }
    }
    __syncwarp();
}

// Keys [0, n) that query rows [0, i_end) may see: all Tk, or under the causal mask those of the last row.
__device__ __forceinline__ int64_t keys_seen(bool causal, int64_t i_end, int64_t Tq, int64_t Tk) {
    if (!causal) return Tk;
    const int64_t lim = i_end + Tk - Tq;  // last row i_end - 1 sees keys j <= i_end - 1 + Tk - Tq
    return lim < 0 ? 0 : lim > Tk ? Tk : lim;
}

// ---- forward ------------------------------------------------------------------------------------------------

struct fwd_args {
    const float *q, *k, *v;  // [B, Tq, H, D], [B, Tk, H, D], [B, Tk, H, D]
    const uint8_t *mask;     // [B, Tk] or NULL
    float *out, *lse;        // [B, Tq, H, D], [B, H, Tq]
    int64_t Tq, Tk, H, pairs;
    int n_qt;  // query tiles per (batch, head)
    float scale;
    bool causal, vec;
};

// Block x: query tile n_qt - 1 - x / pairs of pair x % pairs (the causal mask makes late tiles the heaviest:
// they start first, so the short ones fill the tail of the grid).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_fwd(fwd_args p) {
    using L = smem_layout<T, D>;
    constexpr int ld = L::ld, NF = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Qs = reinterpret_cast<T *>(smem), *Ks = reinterpret_cast<T *>(smem + L::tile);
    T *Vs = reinterpret_cast<T *>(smem + 2 * L::tile);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Sw = reinterpret_cast<float *>(smem + L::f_s + warp * L::s_warp);  // [16, kLdS]
    T *Phi = reinterpret_cast<T *>(smem + L::f_p + 2 * warp * L::p_warp);    // [16, kLdP]
    T *Plo = Phi + 16 * kLdP;                                                 // [16, kLdP]
    float *Aw = reinterpret_cast<float *>(smem + L::f_a) + warp * 256;        // [16, 16] row factors
    uint8_t *valid = smem + L::f_valid;                                       // [64]

    const int64_t pair = blockIdx.x % p.pairs, b = pair / p.H, h = pair % p.H;
    const int64_t q0 = (int64_t)(p.n_qt - 1 - (int)(blockIdx.x / p.pairs)) * kTile;
    const int64_t ld_row = p.H * D, off = p.Tk - p.Tq;
    const float *kh = p.k + (b * p.Tk * p.H + h) * D, *vh = p.v + (b * p.Tk * p.H + h) * D;
    const uint8_t *mrow = p.mask ? p.mask + b * p.Tk : nullptr;
    const int64_t q_end = q0 + kTile < p.Tq ? q0 + kTile : p.Tq;
    const int n_kt = (int)((keys_seen(p.causal, q_end, p.Tq, p.Tk) + kTile - 1) / kTile);

    load_tile<T, D>(Qs, p.q + (b * p.Tq * p.H + h) * D, ld_row, q0, p.Tq, p.vec);

    acc_frag o[NF];
#pragma unroll
    for (int f = 0; f < NF; f++) wmma::fill_fragment(o[f], 0.0f);
    // Lane pair (2r, 2r + 1) runs the softmax of the warp's row r, half = which 32 columns; both lanes keep
    // the row's running max m and sum l.
    const int r = lane >> 1, half = lane & 1;
    const int64_t i = q0 + warp * 16 + r;  // the row's query (>= Tq in a tail tile: computed, never written)
    float m = -INFINITY, l = 0.0f;

    for (int kt = 0; kt < n_kt; kt++) {
        const int64_t k0 = (int64_t)kt * kTile;
        __syncthreads();  // every warp is done with the previous K, V, validity (and the Q tile is written)
        load_tile<T, D>(Ks, kh, ld_row, k0, p.Tk, p.vec);
        load_tile<T, D>(Vs, vh, ld_row, k0, p.Tk, p.vec);
        load_valid(valid, mrow, k0, p.Tk);
        __syncthreads();

        scores_to_smem<T, D>(Sw, Qs + warp * 16 * ld, Ks, ld);  // S = Q K^T (unscaled)
        __syncwarp();

        // Columns c <= climit are causally visible to row i (all of them without the mask).
        int64_t cl = p.causal ? i + off - k0 : kTile;
        const int climit = cl < -1 ? -1 : cl > kTile ? kTile : (int)cl;
        const float *srow = Sw + r * kLdS + half * 32;
        const uint8_t *vrow = valid + half * 32;
        const int cbase = half * 32;
        // The lanes of a warp start at different columns ((t + lane) & 31) so that they hit distinct banks.
        float mx = -INFINITY;
#pragma unroll 8
        for (int t = 0; t < 32; t++) {
            const int c = (t + lane) & 31;
            if (vrow[c] && cbase + c <= climit) mx = fmaxf(mx, srow[c] * p.scale);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = fmaxf(m, mx);
        // Nothing visible yet (m_new = -inf): every probability is 0 and O, l stay 0 whatever the factor.
        const float mref = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = expf(m - mref);  // 0 when m = -inf
        float sum = 0.0f;
        T *phi = Phi + r * kLdP + half * 32, *plo = Plo + r * kLdP + half * 32;
#pragma unroll 8
        for (int t = 0; t < 32; t++) {
            const int c = (t + lane) & 31;
            const float e = vrow[c] && cbase + c <= climit ? expf(srow[c] * p.scale - mref) : 0.0f;
            const T hi = lowp<T>::from(e);
            phi[c] = hi;
            plo[c] = lowp<T>::from(e - lowp<T>::to(hi));  // exact difference: e - hi is representable in f32
            sum += e;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = m_new;
#pragma unroll
        for (int u = 0; u < 8; u++) Aw[r * 16 + half * 8 + u] = alpha;
        __syncwarp();

        // O = alpha O + (P_hi + P_lo) V
        acc_frag fa;
        wmma::load_matrix_sync(fa, Aw, 16, wmma::mem_row_major);
#pragma unroll
        for (int f = 0; f < NF; f++)
#pragma unroll
            for (int e = 0; e < fa.num_elements; e++) o[f].x[e] *= fa.x[e];
        mma_px<T, D>(o, Phi, Vs, ld);
        mma_px<T, D>(o, Plo, Vs, ld);
    }

    // lse and out = O / l; a row that saw no key: lse = +inf, out = 0 (O is 0 there).
    const bool seen = m > -INFINITY;
    if (half == 0 && i < p.Tq) p.lse[pair * p.Tq + i] = seen ? m + logf(l) : INFINITY;
    __syncwarp();  // the lanes are done with Aw
#pragma unroll
    for (int u = 0; u < 8; u++) Aw[r * 16 + half * 8 + u] = seen ? 1.0f / l : 0.0f;
    __syncwarp();
    acc_frag fa;
    wmma::load_matrix_sync(fa, Aw, 16, wmma::mem_row_major);
#pragma unroll
    for (int f = 0; f < NF; f++)
#pragma unroll
        for (int e = 0; e < fa.num_elements; e++) o[f].x[e] *= fa.x[e];
    const int64_t row0 = q0 + warp * 16;
    const int rows = p.Tq - row0 < 16 ? (int)(p.Tq - row0) : 16;
    if (rows > 0)
        write_rows<D, false>(o, Sw, p.out + ((b * p.Tq + row0) * p.H + h) * D, ld_row, rows, 1.0f, lane);
}

// ---- backward -----------------------------------------------------------------------------------------------

struct bwd_args {
    const float *q, *k, *v, *dout;  // [B, Tq, H, D], [B, Tk, H, D] x2, [B, Tq, H, D]
    const float *lse, *Di;          // [B, H, Tq]; Di NULL when neither dq nor dk is wanted
    const uint8_t *mask;            // [B, Tk] or NULL
    float *dq, *dk, *dv;            // accumulated; any may be NULL
    int64_t Tq, Tk, H, pairs;
    int n_qt, n_kt;
    float scale;
    bool causal, vec;
};

// Di [B, H, Tq] = rowsum(round(dO) * O): one warp per row (b, i, h) of the [B, Tq, H, D] tensors.
template <typename T>
__global__ void __launch_bounds__(256) flash_bwd_delta(const float *out, const float *dout, float *Di, int64_t rows,
                                                       int64_t Tq, int64_t H, int D) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < rows; row += warps) {
        float acc = 0.0f;
        for (int c = lane; c < D; c += 32) acc += lowp<T>::to(lowp<T>::from(dout[row * D + c])) * out[row * D + c];
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) {
            const int64_t h = row % H, bi = row / H, i = bi % Tq, b = bi / Tq;
            Di[(b * H + h) * Tq + i] = acc;
        }
    }
}

// Block x: key tile x / pairs of pair x % pairs (under the causal mask the first key tiles are seen by the
// most queries: they start first). Warp w owns keys k0 + 16 w .. + 16 and accumulates their dK, dV.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_bwd_dkdv(bwd_args p) {
    using L = smem_layout<T, D>;
    constexpr int ld = L::ld, NF = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Ks = reinterpret_cast<T *>(smem), *Vs = reinterpret_cast<T *>(smem + L::tile);
    T *Qs = reinterpret_cast<T *>(smem + 2 * L::tile), *dOs = reinterpret_cast<T *>(smem + 3 * L::tile);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Sw = reinterpret_cast<float *>(smem + L::b_s + warp * L::s_warp);  // [16 keys, kLdS]: S^T, dP^T
    T *Pw = reinterpret_cast<T *>(smem + L::b_p + warp * L::p_warp);         // [16 keys, kLdP]: P^T, dS^T
    float *lse_s = reinterpret_cast<float *>(smem + L::b_rows), *Di_s = lse_s + kTile;  // [64] each
    uint8_t *valid = smem + L::b_valid;                                                // [64]

    const int64_t pair = blockIdx.x % p.pairs, b = pair / p.H, h = pair % p.H;
    const int64_t k0 = (int64_t)(blockIdx.x / p.pairs) * kTile;
    const int64_t ld_row = p.H * D, off = p.Tk - p.Tq;
    // Query i sees key k0 iff i >= k0 - off: earlier query tiles have nothing for this block.
    int64_t i_first = p.causal ? k0 - off : 0;
    if (i_first < 0) i_first = 0;
    if (i_first >= p.Tq) return;  // no query sees these keys (the whole block leaves: no barrier is skipped)
    const bool want_dk = p.dk != nullptr, want_dv = p.dv != nullptr;

    load_tile<T, D>(Ks, p.k + (b * p.Tk * p.H + h) * D, ld_row, k0, p.Tk, p.vec);
    load_tile<T, D>(Vs, p.v + (b * p.Tk * p.H + h) * D, ld_row, k0, p.Tk, p.vec);
    load_valid(valid, p.mask ? p.mask + b * p.Tk : nullptr, k0, p.Tk);
    const float *qh = p.q + (b * p.Tq * p.H + h) * D, *gh = p.dout + (b * p.Tq * p.H + h) * D;

    acc_frag dk[NF], dv[NF];
#pragma unroll
    for (int f = 0; f < NF; f++) {
        wmma::fill_fragment(dk[f], 0.0f);
        wmma::fill_fragment(dv[f], 0.0f);
    }
    const int64_t jw = k0 + warp * 16;  // key of the warp's row 0

    for (int qt = (int)(i_first / kTile); qt < p.n_qt; qt++) {
        const int64_t q0 = (int64_t)qt * kTile;
        __syncthreads();  // every warp is done with the previous Q, dO, lse, Di (and K, V, validity are written)
        load_tile<T, D>(Qs, qh, ld_row, q0, p.Tq, p.vec);
        load_tile<T, D>(dOs, gh, ld_row, q0, p.Tq, p.vec);
        if (threadIdx.x < kTile) {  // rows past Tq: lse = +inf gives them P = 0
            const int64_t iq = q0 + threadIdx.x;
            lse_s[threadIdx.x] = iq < p.Tq ? p.lse[pair * p.Tq + iq] : INFINITY;
            Di_s[threadIdx.x] = iq < p.Tq && p.Di ? p.Di[pair * p.Tq + iq] : 0.0f;
        }
        __syncthreads();

        scores_to_smem<T, D>(Sw, Ks + warp * 16 * ld, Qs, ld);  // S^T [16 keys, 64 queries]
        __syncwarp();
        // Lane: queries c = lane + 32 u, keys r (rows of the warp's tile).
        float pr[2][16];
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int c = lane + 32 * u;
            const float Lc = lse_s[c];
            const int64_t jmax = p.causal ? q0 + c + off : p.Tk;  // the query's last visible key
#pragma unroll
            for (int rr = 0; rr < 16; rr++) {
                const bool ok = valid[warp * 16 + rr] && jw + rr <= jmax && Lc < INFINITY;
                const float e = ok ? expf(Sw[rr * kLdS + c] * p.scale - Lc) : 0.0f;
                pr[u][rr] = e;
                Pw[rr * kLdP + c] = lowp<T>::from(e);
            }
        }
        __syncwarp();
        if (want_dv) mma_px<T, D>(dv, Pw, dOs, ld);  // dV += P^T dO
        if (want_dk) {
            scores_to_smem<T, D>(Sw, Vs + warp * 16 * ld, dOs, ld);  // dP^T (every lane read S^T already)
            __syncwarp();  // dP^T is stored, and every lane is done loading P^T for dV
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int c = lane + 32 * u;
                const float dc = Di_s[c];
#pragma unroll
                for (int rr = 0; rr < 16; rr++)
                    Pw[rr * kLdP + c] = lowp<T>::from(pr[u][rr] * (Sw[rr * kLdS + c] - dc));
            }
            __syncwarp();
            mma_px<T, D>(dk, Pw, Qs, ld);  // dK += dS^T Q (scaled when written)
        }
    }

    const int rows = p.Tk - jw < 16 ? (int)(p.Tk - jw) : 16;
    if (rows > 0) {
        const int64_t o = ((b * p.Tk + jw) * p.H + h) * D;
        if (want_dk) write_rows<D, true>(dk, Sw, p.dk + o, ld_row, rows, p.scale, lane);
        if (want_dv) write_rows<D, true>(dv, Sw, p.dv + o, ld_row, rows, 1.0f, lane);
    }
}

// Block x: query tile n_qt - 1 - x / pairs of pair x % pairs (as the forward pass). Warp w owns query rows
// q0 + 16 w .. + 16 and accumulates their dQ.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_bwd_dq(bwd_args p) {
    using L = smem_layout<T, D>;
    constexpr int ld = L::ld, NF = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Qs = reinterpret_cast<T *>(smem), *dOs = reinterpret_cast<T *>(smem + L::tile);
    T *Ks = reinterpret_cast<T *>(smem + 2 * L::tile), *Vs = reinterpret_cast<T *>(smem + 3 * L::tile);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Sw = reinterpret_cast<float *>(smem + L::b_s + warp * L::s_warp);  // [16 queries, kLdS]: S, dP
    T *Pw = reinterpret_cast<T *>(smem + L::b_p + warp * L::p_warp);         // [16 queries, kLdP]: dS
    float *lse_s = reinterpret_cast<float *>(smem + L::b_rows), *Di_s = lse_s + kTile;  // [64] each
    uint8_t *valid = smem + L::b_valid;                                                // [64]

    const int64_t pair = blockIdx.x % p.pairs, b = pair / p.H, h = pair % p.H;
    const int64_t q0 = (int64_t)(p.n_qt - 1 - (int)(blockIdx.x / p.pairs)) * kTile;
    const int64_t ld_row = p.H * D, off = p.Tk - p.Tq;
    const int64_t q_end = q0 + kTile < p.Tq ? q0 + kTile : p.Tq;
    const int n_kt = (int)((keys_seen(p.causal, q_end, p.Tq, p.Tk) + kTile - 1) / kTile);
    if (n_kt == 0) return;  // no row of the tile sees a key: dq gets nothing (whole block, no barrier skipped)

    load_tile<T, D>(Qs, p.q + (b * p.Tq * p.H + h) * D, ld_row, q0, p.Tq, p.vec);
    load_tile<T, D>(dOs, p.dout + (b * p.Tq * p.H + h) * D, ld_row, q0, p.Tq, p.vec);
    if (threadIdx.x < kTile) {
        const int64_t iq = q0 + threadIdx.x;
        lse_s[threadIdx.x] = iq < p.Tq ? p.lse[pair * p.Tq + iq] : INFINITY;
        Di_s[threadIdx.x] = iq < p.Tq ? p.Di[pair * p.Tq + iq] : 0.0f;
    }
    const float *kh = p.k + (b * p.Tk * p.H + h) * D, *vh = p.v + (b * p.Tk * p.H + h) * D;
    const uint8_t *mrow = p.mask ? p.mask + b * p.Tk : nullptr;

    acc_frag dq[NF];
#pragma unroll
    for (int f = 0; f < NF; f++) wmma::fill_fragment(dq[f], 0.0f);
    const int64_t iw = q0 + warp * 16;  // query of the warp's row 0

    for (int kt = 0; kt < n_kt; kt++) {
        const int64_t k0 = (int64_t)kt * kTile;
        __syncthreads();  // every warp is done with the previous K, V, validity (and Q, dO, lse, Di are written)
        load_tile<T, D>(Ks, kh, ld_row, k0, p.Tk, p.vec);
        load_tile<T, D>(Vs, vh, ld_row, k0, p.Tk, p.vec);
        load_valid(valid, mrow, k0, p.Tk);
        __syncthreads();

        scores_to_smem<T, D>(Sw, Qs + warp * 16 * ld, Ks, ld);  // S [16 queries, 64 keys]
        __syncwarp();
        // Lane: keys c = lane + 32 u, queries r (rows of the warp's tile).
        float pr[2][16];
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int c = lane + 32 * u;
            const bool vc = valid[c];
#pragma unroll
            for (int rr = 0; rr < 16; rr++) {
                const float Lr = lse_s[warp * 16 + rr];
                const bool ok = vc && (!p.causal || k0 + c <= iw + rr + off) && Lr < INFINITY;
                pr[u][rr] = ok ? expf(Sw[rr * kLdS + c] * p.scale - Lr) : 0.0f;
            }
        }
        __syncwarp();
        scores_to_smem<T, D>(Sw, dOs + warp * 16 * ld, Vs, ld);  // dP (every lane read S already)
        __syncwarp();
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int c = lane + 32 * u;
#pragma unroll
            for (int rr = 0; rr < 16; rr++)
                Pw[rr * kLdP + c] = lowp<T>::from(pr[u][rr] * (Sw[rr * kLdS + c] - Di_s[warp * 16 + rr]));
        }
        __syncwarp();
        mma_px<T, D>(dq, Pw, Ks, ld);  // dQ += dS K (scaled when written)
    }

    const int rows = p.Tq - iw < 16 ? (int)(p.Tq - iw) : 16;
    if (rows > 0) write_rows<D, true>(dq, Sw, p.dq + ((b * p.Tq + iw) * p.H + h) * D, ld_row, rows, p.scale, lane);
}

// ---- launches ---------------------------------------------------------------------------------------------

// Opts a kernel into more than 48 KiB of dynamic shared memory, once per kernel.
template <typename K>
void allow_smem(K kernel, size_t bytes, bool &done) {
    if (done) return;
    GVM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    done = true;
}

template <typename T, int D>
void launch_fwd(const fwd_args &a) {
    static bool opted = false;
    const size_t bytes = smem_layout<T, D>::f_total;
    allow_smem(flash_fwd<T, D>, bytes, opted);
    flash_fwd<T, D><<<(unsigned)(a.pairs * a.n_qt), kThreads, bytes, gvm_cuda_stream()>>>(a);
    GVM_CUDA_LAUNCH_CHECK();
}

template <typename T, int D>
void launch_bwd(const bwd_args &a) {
    static bool opted_kv = false, opted_q = false;
    const size_t bytes = smem_layout<T, D>::b_total;
    if (a.dk || a.dv) {
        allow_smem(flash_bwd_dkdv<T, D>, bytes, opted_kv);
        flash_bwd_dkdv<T, D><<<(unsigned)(a.pairs * a.n_kt), kThreads, bytes, gvm_cuda_stream()>>>(a);
        GVM_CUDA_LAUNCH_CHECK();
    }
    if (a.dq) {
        allow_smem(flash_bwd_dq<T, D>, bytes, opted_q);
        flash_bwd_dq<T, D><<<(unsigned)(a.pairs * a.n_qt), kThreads, bytes, gvm_cuda_stream()>>>(a);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

template <typename T>
void launch_delta(const float *out, const float *dout, float *Di, int64_t B, int64_t Tq, int64_t H, int D) {
    const int64_t rows = B * Tq * H;
    flash_bwd_delta<T><<<gvm_cuda_blocks(rows * 32, 256), 256, 0, gvm_cuda_stream()>>>(out, dout, Di, rows, Tq, H, D);
    GVM_CUDA_LAUNCH_CHECK();
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

int64_t tiles(int64_t n) { return (n + kTile - 1) / kTile; }

// The most shared memory a block may opt into on this device (queried once).
int device_smem_optin() {
    static int bytes = -1;
    if (bytes < 0) {
        int dev = 0, v = 0;
        GVM_CUDA_CHECK(cudaGetDevice(&dev));
        GVM_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        bytes = v;
    }
    return bytes;
}

void check_lowp(gvm_dtype dtype) {
    if (dtype != GVM_BF16 && dtype != GVM_F16)
        gvm_fatal(__FILE__, __LINE__, "flash attention: autocast type must be bf16 or f16 (got %s)",
                  gvm_dtype_name(dtype));
}

}  // namespace

extern "C" bool gvm_cuda_flash_attention_supported(const gvm_attention_dims *d) {
    if (d->D != d->Dv || (d->D != 32 && d->D != 64 && d->D != 128)) return false;
    // One block per (pair, tile) in a 1-D grid.
    const int64_t pairs = d->B * d->H, t = tiles(d->Tq > d->Tk ? d->Tq : d->Tk);
    if (pairs > 0 && t > 0 && pairs > (int64_t)0x7fffffff / t) return false;
    // The kernels need bf16 tensor cores (sm_80+) and at most smem_layout<T, 128>::b_total (~95 KiB).
    if (gvm_cuda_compute_capability() < 80) return false;
    return (size_t)device_smem_optin() >= smem_layout<__nv_bfloat16, 128>::b_total;
}

extern "C" size_t gvm_cuda_flash_attention_bwd_scratch(const gvm_attention_dims *d) {
    return (size_t)(d->B * d->H * d->Tq) * sizeof(float);  // Di [B, H, Tq]
}

extern "C" void gvm_cuda_flash_attention_fwd(gvm_dtype dtype, const gvm_attention_dims *d, const float *q,
                                             const float *k, const float *v, const uint8_t *key_mask, float *out,
                                             float *lse) {
    check_lowp(dtype);
    GVM_CHECK(gvm_cuda_flash_attention_supported(d), "flash attention: unsupported shape (D=%lld, Dv=%lld)",
              (long long)d->D, (long long)d->Dv);
    if (d->B == 0 || d->H == 0 || d->Tq == 0) return;
    if (d->Tk == 0) {  // no key at all: every row sees none
        gvm_cuda_memset0(out, (size_t)(d->B * d->Tq * d->H * d->D) * sizeof(float));
        gvm_cuda_fill_f32(lse, d->B * d->H * d->Tq, INFINITY);
        return;
    }
    fwd_args a;
    a.q = q, a.k = k, a.v = v, a.mask = key_mask, a.out = out, a.lse = lse;
    a.Tq = d->Tq, a.Tk = d->Tk, a.H = d->H, a.pairs = d->B * d->H;
    a.n_qt = (int)tiles(d->Tq);
    a.scale = d->scale, a.causal = d->causal;
    a.vec = aligned16(q) && aligned16(k) && aligned16(v);  // rows are D floats (a multiple of 4) apart
    const bool bf = dtype == GVM_BF16;
    switch (d->D) {
    case 32: bf ? launch_fwd<__nv_bfloat16, 32>(a) : launch_fwd<__half, 32>(a); break;
    case 64: bf ? launch_fwd<__nv_bfloat16, 64>(a) : launch_fwd<__half, 64>(a); break;
    default: bf ? launch_fwd<__nv_bfloat16, 128>(a) : launch_fwd<__half, 128>(a); break;
    }
}

extern "C" void gvm_cuda_flash_attention_bwd(gvm_dtype dtype, const gvm_attention_dims *d, const float *q,
                                             const float *k, const float *v, const uint8_t *key_mask,
                                             const float *out, const float *lse, const float *dout, float *dq,
                                             float *dk, float *dv, void *scratch) {
    check_lowp(dtype);
    GVM_CHECK(gvm_cuda_flash_attention_supported(d), "flash attention: unsupported shape (D=%lld, Dv=%lld)",
              (long long)d->D, (long long)d->Dv);
    if (!dq && !dk && !dv) return;
    if (d->B == 0 || d->H == 0 || d->Tq == 0 || d->Tk == 0) return;  // no key: nothing flows
    const bool bf = dtype == GVM_BF16;
    const int D = (int)d->D;
    float *Di = nullptr;  // only dS needs it, and only dq and dk need dS
    if (dq || dk) {
        Di = (float *)scratch;
        if (bf) launch_delta<__nv_bfloat16>(out, dout, Di, d->B, d->Tq, d->H, D);
        else launch_delta<__half>(out, dout, Di, d->B, d->Tq, d->H, D);
    }
    bwd_args a;
    a.q = q, a.k = k, a.v = v, a.dout = dout, a.lse = lse, a.Di = Di, a.mask = key_mask;
    a.dq = dq, a.dk = dk, a.dv = dv;
    a.Tq = d->Tq, a.Tk = d->Tk, a.H = d->H, a.pairs = d->B * d->H;
    a.n_qt = (int)tiles(d->Tq), a.n_kt = (int)tiles(d->Tk);
    a.scale = d->scale, a.causal = d->causal;
    a.vec = aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout);
    switch (D) {
    case 32: bf ? launch_bwd<__nv_bfloat16, 32>(a) : launch_bwd<__half, 32>(a); break;
    case 64: bf ? launch_bwd<__nv_bfloat16, 64>(a) : launch_bwd<__half, 64>(a); break;
    default: bf ? launch_bwd<__nv_bfloat16, 128>(a) : launch_bwd<__half, 128>(a); break;
    }
}
