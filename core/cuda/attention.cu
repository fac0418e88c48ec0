// cuda/attention.cu: fused scaled dot-product attention, forward and backward, on the GPU (see attention.h).
//
// Design: cuBLAS GEMMs for the matrix products and warp-per-row kernels for the masked softmax and its
// gradient, over chunks of (batch, head) pairs whose [Tq, Tk] score matrices fit a fixed budget
// (kScoreBudget) of the op's scratch. Per chunk:
//   forward:  S = scale Q K^T (one strided-batched GEMM per batch row: the heads of batch b are H matrices
//             D floats apart with row stride H*D); P = softmax(S + mask), lse saved; out = P V.
//   backward: S = scale Q K^T, dP = dO V^T; P = exp(S - lse), dS = P * (dP - delta) with delta =
//             rowsum(dO * O) (under autocast sum_j P_j dP_j, see grad_rows);
//             dV += P^T dO, dQ += scale dS K, dK += scale dS^T Q (beta = 1 GEMMs straight into the grads).
// This is exact f32 (cuBLAS in plain f32: no TF32) and deterministic (no atomics: every output element is
// written by one GEMM or one warp), and under autocast the GEMMs take bf16/f16 operands on tensor cores.
// A fused flash kernel saves the score traffic: under autocast, shapes it supports (D == Dv in {32, 64,
// 128}) go to flash_attention.cu instead (see use_flash). The f32 path always runs here, exact.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "core/cuda/attention.h"
#include "core/cuda/common.cuh"
#include "core/cuda/elementwise.h"  // gvm_cuda_cast
#include "core/cuda/gemm.h"         // gvm_cuda_sgemm_batched, gvm_cuda_gemm_lowp_batched

namespace {

// Bytes of score-sized matrices (S, dP and their low-precision twins) one chunk of pairs may use.
constexpr size_t kScoreBudget = (size_t)256 << 20;
constexpr int kRowThreads = 256;  // row kernels: 8 warps per block, one row per warp

size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

// How a call is cut up; both the scratch-size functions and the kernels derive it from the dims alone.
struct plan {
    int64_t pairs;     // B * H (pair p = b * H + h, the order of lse [B, H, Tq])
    int64_t ld;        // row stride of the score matrices: Tk rounded up to 8 (aligned rows for tensor cores)
    int64_t chunk;     // pairs per chunk
    size_t lp_size;    // bytes of a low-precision element (0 in f32)
    // Scratch layout (byte offsets): rounded copies of q, k, v, dout (lowp only), then per chunk the f32
    // score matrices S [chunk, Tq, ld] (and dP in the backward), then their lowp twins P, dS (lowp only).
    size_t off_q, off_k, off_v, off_g, off_s, off_dp, off_p, off_ds, total;
};

plan make_plan(const gvm_attention_dims *d, gvm_dtype lp, bool backward) {
    plan pl = {};
    pl.pairs = d->B * d->H;
    pl.ld = (d->Tk + 7) / 8 * 8;
    pl.lp_size = lp == GVM_F32 ? 0 : 2;
    size_t mat = (size_t)d->Tq * (size_t)pl.ld;  // elements of one pair's score matrix
    size_t n_f32 = backward ? 2 : 1;             // S (and dP)
    size_t per_pair = mat * (n_f32 * 4 + n_f32 * pl.lp_size);
    int64_t chunk = per_pair > 0 ? (int64_t)(kScoreBudget / per_pair) : pl.pairs;
    if (chunk < 1) chunk = 1;  // one pair over the budget still has to run
    if (chunk > pl.pairs) chunk = pl.pairs;
    pl.chunk = chunk;
    size_t off = 0;
    if (pl.lp_size) {
        pl.off_q = off, off += align256((size_t)(d->B * d->Tq * d->H * d->D) * pl.lp_size);
        pl.off_k = off, off += align256((size_t)(d->B * d->Tk * d->H * d->D) * pl.lp_size);
        pl.off_v = off, off += align256((size_t)(d->B * d->Tk * d->H * d->Dv) * pl.lp_size);
        if (backward) pl.off_g = off, off += align256((size_t)(d->B * d->Tq * d->H * d->Dv) * pl.lp_size);
    }
    size_t chunk_mat = (size_t)chunk * mat;
    pl.off_s = off, off += align256(chunk_mat * 4);
    if (backward) pl.off_dp = off, off += align256(chunk_mat * 4);
    if (pl.lp_size) {
        pl.off_p = off, off += align256(chunk_mat * pl.lp_size);
        if (backward) pl.off_ds = off, off += align256(chunk_mat * pl.lp_size);
    }
    pl.total = off;
    return pl;
}

bool empty_call(const gvm_attention_dims *d) { return d->B == 0 || d->H == 0 || d->Tq == 0; }

// ---- GEMMs --------------------------------------------------------------------------------------------------

// Row-major batched GEMM (the convention of core/cpu/gemm.h) on operands of type `lp`, f32 C: plain f32
// (no TF32) or the autocast GEMM. Element offsets of A and B are counted in `lp` elements.
void gemm(gvm_dtype lp, int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
          int64_t lda, int64_t sa, const void *B, int64_t ldb, int64_t sb, float beta, float *C, int64_t ldc,
          int64_t sc) {
    if (lp == GVM_F32)
        gvm_cuda_sgemm_batched(batch, ta, tb, M, N, K, alpha, (const float *)A, lda, sa, (const float *)B, ldb, sb,
                               beta, C, ldc, sc);
    else
        gvm_cuda_gemm_lowp_batched(lp, batch, ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
}

// `elems` elements of type `lp` past p (lp == GVM_F32: floats).
const void *at(const void *p, gvm_dtype lp, int64_t elems) {
    return (const char *)p + (size_t)elems * (lp == GVM_F32 ? 4 : 2);
}

// The pairs [p0, p1) of a chunk, cut into runs of one batch row each: heads [h0, h1) of batch b.
template <typename F>
void for_each_batch_run(int64_t p0, int64_t p1, int64_t H, F f) {
    for (int64_t p = p0; p < p1;) {
        int64_t b = p / H, h0 = p - b * H;
        int64_t h1 = p1 - b * H < H ? p1 - b * H : H;
        f(b, h0, h1);
        p = b * H + h1;
    }
}

// ---- row kernels ----------------------------------------------------------------------------------------------

__device__ __forceinline__ void store(float *p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store(__half *p, float x) { *p = __float2half_rn(x); }

__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ double warp_sum(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;  // the butterfly gives every lane the same bits
}

// Keys [0, lim) of query row i are visible under the causal mask (j <= i + Tk - Tq), clamped to [0, Tk].
__device__ __forceinline__ int64_t visible_keys(bool causal, int64_t i, int64_t Tq, int64_t Tk) {
    if (!causal) return Tk;
    int64_t lim = i + 1 + Tk - Tq;
    return lim < 0 ? 0 : lim > Tk ? Tk : lim;
}

struct row_args {
    int64_t rows;    // chunk pairs * Tq; row r is query i = r % Tq of pair p0 + r / Tq
    int64_t p0, Tq, Tk, H, Dv, ld;
    bool causal;
    const uint8_t *mask;  // [B, Tk] or NULL
};

// Forward: S [rows, ld] (scaled scores) -> probabilities P [rows, ld] (zero where masked; P may be S itself:
// each element is read and then written by the same lane) and lse [B, H, Tq]. A row that sees no key gets
// P = 0 and lse = +inf, as on the CPU. With N > 0 (Tk <= 32 N) each lane keeps its N scores in registers, so
// S is read once (the scores of a chunk are far larger than L2); N == 0 serves any Tk and reads S three times.
template <typename PT, int N>
__global__ void __launch_bounds__(kRowThreads) softmax_rows(row_args a, const float *S, PT *P, float *lse) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < a.rows; r += warps) {
        const int64_t pair = a.p0 + r / a.Tq, i = r % a.Tq, b = pair / a.H;
        const int64_t lim = visible_keys(a.causal, i, a.Tq, a.Tk);
        const uint8_t *mrow = a.mask ? a.mask + b * a.Tk : nullptr;
        const float *s = S + r * a.ld;
        PT *p = P + r * a.ld;
        float x[N > 0 ? N : 1];  // N > 0: key lane + 32 t of the row; -inf where not visible (exp gives 0)
        float m = -INFINITY;
        if constexpr (N > 0) {
#pragma unroll
            for (int t = 0; t < N; t++) {
                const int64_t j = lane + 32 * t;
                x[t] = j < lim && (!mrow || mrow[j]) ? s[j] : -INFINITY;
                m = fmaxf(m, x[t]);
            }
        } else {
            for (int64_t j = lane; j < lim; j += 32)
                if (!mrow || mrow[j]) m = fmaxf(m, s[j]);
        }
        m = warp_max(m);
        if (!(m > -INFINITY)) {  // no visible key (the whole warp agrees: m is the same in every lane)
            for (int64_t j = lane; j < a.Tk; j += 32) store(&p[j], 0.0f);
            if (lane == 0) lse[pair * a.Tq + i] = INFINITY;
            continue;
        }
        double sum = 0.0;  // >= 1: the max contributes exp(0)
        if constexpr (N > 0) {
#pragma unroll
            for (int t = 0; t < N; t++) {
                x[t] = expf(x[t] - m);
                sum += (double)x[t];
            }
        } else {
            for (int64_t j = lane; j < lim; j += 32)
                if (!mrow || mrow[j]) sum += (double)expf(s[j] - m);
        }
        sum = warp_sum(sum);
        const float inv = (float)(1.0 / sum);
        if constexpr (N > 0) {
#pragma unroll
            for (int t = 0; t < N; t++) {
                const int64_t j = lane + 32 * t;
                if (j < a.Tk) store(&p[j], x[t] * inv);
            }
        } else {
            for (int64_t j = lane; j < a.Tk; j += 32) {
                float e = j < lim && (!mrow || mrow[j]) ? expf(s[j] - m) * inv : 0.0f;
                store(&p[j], e);
            }
        }
        if (lane == 0) lse[pair * a.Tq + i] = m + (float)log(sum);
    }
}

// Backward: recompute P = exp(S - lse) (zero where masked, or in a row whose lse is +inf) into P, and when dP
// is given turn it into dS = P * (dP - delta) into dS. P may be S and dS may be dP (same-lane read then write).
// delta is the softmax Jacobian's row term, sum_j P_j dP_j = rowsum(dO * O) in exact arithmetic. In f32 it is
// rowsum(dO * O) summed in double, as on the CPU. Under autocast dP comes from rounded dO and V while O and
// dO are f32, and the mismatch would not cancel (a row that sees one key, whose true dS is 0, would get
// dS ~ 2^-8 |dP|); sum_j P_j dP_j from the same dP makes every row of dS sum to ~0 as it should.
template <typename PT>
__global__ void __launch_bounds__(kRowThreads)
    grad_rows(row_args a, const float *out, const float *dout, const float *lse, const float *S, PT *P,
              const float *dP, PT *dS) {
    constexpr bool kExact = std::is_same<PT, float>::value;
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < a.rows; r += warps) {
        const int64_t pair = a.p0 + r / a.Tq, i = r % a.Tq, b = pair / a.H, h = pair - b * a.H;
        const float L = lse[pair * a.Tq + i];
        const int64_t lim = L < INFINITY ? visible_keys(a.causal, i, a.Tq, a.Tk) : 0;  // +inf: saw no key
        const uint8_t *mrow = a.mask ? a.mask + b * a.Tk : nullptr;
        const float *s = S + r * a.ld;
        float delta = 0.0f;
        if (dP) {  // the same branch for the whole warp
            double acc = 0.0;
            if (kExact) {
                const int64_t o = ((b * a.Tq + i) * a.H + h) * a.Dv;  // out/dout row [Dv]
                for (int64_t c = lane; c < a.Dv; c += 32) acc += (double)dout[o + c] * (double)out[o + c];
            } else {
                for (int64_t j = lane; j < lim; j += 32)
                    if (!mrow || mrow[j]) acc += (double)expf(s[j] - L) * (double)dP[r * a.ld + j];
            }
            delta = (float)warp_sum(acc);
        }
        PT *p = P + r * a.ld;
        for (int64_t j = lane; j < a.Tk; j += 32) {
            const bool ok = j < lim && (!mrow || mrow[j]);
            const float pj = ok ? expf(s[j] - L) : 0.0f;
            if (dP) {
                const float ds = ok ? pj * (dP[r * a.ld + j] - delta) : 0.0f;
                store(&dS[r * a.ld + j], ds);
            }
            store(&p[j], pj);
        }
    }
}

unsigned row_blocks(int64_t rows) { return gvm_cuda_blocks(rows * 32, kRowThreads); }

template <typename PT, int N>
void launch_softmax_n(const row_args &a, const float *S, void *P, float *lse) {
    softmax_rows<PT, N><<<row_blocks(a.rows), kRowThreads, 0, gvm_cuda_stream()>>>(a, S, (PT *)P, lse);
    GVM_CUDA_LAUNCH_CHECK();
}

// The smallest register cache that holds a row (up to 64 scores a lane: Tk <= 2048), else the re-reading kernel.
template <typename PT>
void launch_softmax(const row_args &a, const float *S, void *P, float *lse) {
    const int64_t per_lane = (a.Tk + 31) / 32;
    if (per_lane <= 1) launch_softmax_n<PT, 1>(a, S, P, lse);
    else if (per_lane <= 2) launch_softmax_n<PT, 2>(a, S, P, lse);
    else if (per_lane <= 4) launch_softmax_n<PT, 4>(a, S, P, lse);
    else if (per_lane <= 8) launch_softmax_n<PT, 8>(a, S, P, lse);
    else if (per_lane <= 16) launch_softmax_n<PT, 16>(a, S, P, lse);
    else if (per_lane <= 32) launch_softmax_n<PT, 32>(a, S, P, lse);
    else if (per_lane <= 64) launch_softmax_n<PT, 64>(a, S, P, lse);
    else launch_softmax_n<PT, 0>(a, S, P, lse);
}

template <typename PT>
void launch_grad(const row_args &a, const float *out, const float *dout, const float *lse, const float *S, void *P,
                 const float *dP, void *dS) {
    grad_rows<PT><<<row_blocks(a.rows), kRowThreads, 0, gvm_cuda_stream()>>>(a, out, dout, lse, S, (PT *)P, dP,
                                                                               (PT *)dS);
    GVM_CUDA_LAUNCH_CHECK();
}

// Round n floats to `lp` into dst (the operands of the autocast GEMMs).
void round_to(gvm_dtype lp, const float *src, void *dst, int64_t n) {
    if (n > 0) gvm_cuda_cast(src, GVM_F32, dst, lp, n);
}

// ---- forward and backward, any operand type ---------------------------------------------------------------

void forward(gvm_dtype lp, const gvm_attention_dims *d, const float *q, const float *k, const float *v,
             const uint8_t *key_mask, float *out, float *lse, void *scratch) {
    if (empty_call(d)) return;
    const int64_t Tq = d->Tq, Tk = d->Tk, H = d->H, D = d->D, Dv = d->Dv;
    if (Tk == 0) {  // no key at all: every row sees none
        gvm_cuda_memset0(out, (size_t)(d->B * Tq * H * Dv) * sizeof(float));
        gvm_cuda_fill_f32(lse, d->B * H * Tq, INFINITY);
        return;
    }
    const plan pl = make_plan(d, lp, false);
    char *base = (char *)scratch;
    // GEMM operands: the f32 tensors themselves, or their rounded copies.
    const void *qx = q, *kx = k, *vx = v;
    if (lp != GVM_F32) {
        round_to(lp, q, base + pl.off_q, d->B * Tq * H * D);
        round_to(lp, k, base + pl.off_k, d->B * Tk * H * D);
        round_to(lp, v, base + pl.off_v, d->B * Tk * H * Dv);
        qx = base + pl.off_q, kx = base + pl.off_k, vx = base + pl.off_v;
    }
    float *S = (float *)(base + pl.off_s);                      // [chunk, Tq, ld]
    void *P = lp == GVM_F32 ? (void *)S : base + pl.off_p;      // in place in f32
    const int64_t mat = Tq * pl.ld, ldq = H * D, ldv = H * Dv;  // head rows are H*D (H*Dv) apart
    for (int64_t p0 = 0; p0 < pl.pairs; p0 += pl.chunk) {
        const int64_t p1 = p0 + pl.chunk < pl.pairs ? p0 + pl.chunk : pl.pairs;
        for_each_batch_run(p0, p1, H, [&](int64_t b, int64_t h0, int64_t h1) {
            // S[pair] [Tq, Tk] = scale Q K^T
            gemm(lp, h1 - h0, false, true, Tq, Tk, D, d->scale, at(qx, lp, (b * Tq * H + h0) * D), ldq, D,
                 at(kx, lp, (b * Tk * H + h0) * D), ldq, D, 0.0f, S + (b * H + h0 - p0) * mat, pl.ld, mat);
        });
        const row_args a = {(p1 - p0) * Tq, p0, Tq, Tk, H, Dv, pl.ld, d->causal, key_mask};
        if (lp == GVM_F32) launch_softmax<float>(a, S, P, lse);
        else if (lp == GVM_BF16) launch_softmax<__nv_bfloat16>(a, S, P, lse);
        else launch_softmax<__half>(a, S, P, lse);
        for_each_batch_run(p0, p1, H, [&](int64_t b, int64_t h0, int64_t h1) {
            // out [Tq, Dv] (row stride H*Dv) = P V
            gemm(lp, h1 - h0, false, false, Tq, Dv, Tk, 1.0f, at(P, lp, (b * H + h0 - p0) * mat), pl.ld, mat,
                 at(vx, lp, (b * Tk * H + h0) * Dv), ldv, Dv, 0.0f, out + (b * Tq * H + h0) * Dv, ldv, Dv);
        });
    }
}

void backward(gvm_dtype lp, const gvm_attention_dims *d, const float *q, const float *k, const float *v,
              const uint8_t *key_mask, const float *out, const float *lse, const float *dout, float *dq, float *dk,
              float *dv, void *scratch) {
    if (!dq && !dk && !dv) return;
    // No key, or Dv == 0 (then dP = 0 = delta, so dS = 0): nothing flows into any gradient.
    if (empty_call(d) || d->Tk == 0 || d->Dv == 0) return;
    const int64_t Tq = d->Tq, Tk = d->Tk, H = d->H, D = d->D, Dv = d->Dv;
    const plan pl = make_plan(d, lp, true);
    const bool want_ds = dq || dk;
    char *base = (char *)scratch;
    const void *qx = q, *kx = k, *vx = v, *gx = dout;
    if (lp != GVM_F32) {  // S is recomputed from the same rounded q, k as in the forward pass: lse matches
        round_to(lp, q, base + pl.off_q, d->B * Tq * H * D);
        round_to(lp, k, base + pl.off_k, d->B * Tk * H * D);
        if (want_ds) round_to(lp, v, base + pl.off_v, d->B * Tk * H * Dv);  // only dP = dO V^T reads v
        round_to(lp, dout, base + pl.off_g, d->B * Tq * H * Dv);
        qx = base + pl.off_q, kx = base + pl.off_k, vx = base + pl.off_v, gx = base + pl.off_g;
    }
    float *S = (float *)(base + pl.off_s);    // [chunk, Tq, ld]
    float *dP = (float *)(base + pl.off_dp);  // [chunk, Tq, ld]
    void *P = lp == GVM_F32 ? (void *)S : base + pl.off_p;
    void *dS = lp == GVM_F32 ? (void *)dP : base + pl.off_ds;
    const int64_t mat = Tq * pl.ld, ldq = H * D, ldv = H * Dv;
    for (int64_t p0 = 0; p0 < pl.pairs; p0 += pl.chunk) {
        const int64_t p1 = p0 + pl.chunk < pl.pairs ? p0 + pl.chunk : pl.pairs;
        for_each_batch_run(p0, p1, H, [&](int64_t b, int64_t h0, int64_t h1) {
            const int64_t c = (b * H + h0 - p0) * mat;
            // S = scale Q K^T
            gemm(lp, h1 - h0, false, true, Tq, Tk, D, d->scale, at(qx, lp, (b * Tq * H + h0) * D), ldq, D,
                 at(kx, lp, (b * Tk * H + h0) * D), ldq, D, 0.0f, S + c, pl.ld, mat);
            // dP = dO V^T
            if (want_ds)
                gemm(lp, h1 - h0, false, true, Tq, Tk, Dv, 1.0f, at(gx, lp, (b * Tq * H + h0) * Dv), ldv, Dv,
                     at(vx, lp, (b * Tk * H + h0) * Dv), ldv, Dv, 0.0f, dP + c, pl.ld, mat);
        });
        const row_args a = {(p1 - p0) * Tq, p0, Tq, Tk, H, Dv, pl.ld, d->causal, key_mask};
        const float *dPin = want_ds ? dP : nullptr;
        if (lp == GVM_F32) launch_grad<float>(a, out, dout, lse, S, P, dPin, dS);
        else if (lp == GVM_BF16) launch_grad<__nv_bfloat16>(a, out, dout, lse, S, P, dPin, dS);
        else launch_grad<__half>(a, out, dout, lse, S, P, dPin, dS);
        for_each_batch_run(p0, p1, H, [&](int64_t b, int64_t h0, int64_t h1) {
            const int64_t c = (b * H + h0 - p0) * mat, n = h1 - h0;
            // dV [Tk, Dv] += P^T dO
            if (dv)
                gemm(lp, n, true, false, Tk, Dv, Tq, 1.0f, at(P, lp, c), pl.ld, mat,
                     at(gx, lp, (b * Tq * H + h0) * Dv), ldv, Dv, 1.0f, dv + (b * Tk * H + h0) * Dv, ldv, Dv);
            // dQ [Tq, D] += scale dS K
            if (dq)
                gemm(lp, n, false, false, Tq, D, Tk, d->scale, at(dS, lp, c), pl.ld, mat,
                     at(kx, lp, (b * Tk * H + h0) * D), ldq, D, 1.0f, dq + (b * Tq * H + h0) * D, ldq, D);
            // dK [Tk, D] += scale dS^T Q
            if (dk)
                gemm(lp, n, true, false, Tk, D, Tq, d->scale, at(dS, lp, c), pl.ld, mat,
                     at(qx, lp, (b * Tq * H + h0) * D), ldq, D, 1.0f, dk + (b * Tk * H + h0) * D, ldq, D);
        });
    }
}

void check_lowp(gvm_dtype lp) {
    if (lp != GVM_BF16 && lp != GVM_F16)
        gvm_fatal(__FILE__, __LINE__, "attention: autocast type must be bf16 or f16 (got %s)", gvm_dtype_name(lp));
}

// Flash path switch: -1 until first read from GVM_ATTENTION_FLASH, then 0 (off) or 1 (on). Off by default
// until the fused kernels have passed on a GPU (see attention.h).
int g_flash = -1;

bool flash_enabled() {
    if (g_flash < 0) {
        const char *e = getenv("GVM_ATTENTION_FLASH");
        g_flash = e && e[0] && strcmp(e, "0") != 0 ? 1 : 0;
    }
    return g_flash == 1;
}

// The autocast functions' choice; the scratch-size functions and the kernels make it the same way.
bool use_flash(const gvm_attention_dims *d) { return flash_enabled() && gvm_cuda_flash_attention_supported(d); }

}  // namespace

extern "C" void gvm_cuda_attention_set_flash(bool enabled) { g_flash = enabled ? 1 : 0; }

extern "C" bool gvm_cuda_attention_flash_enabled(void) { return flash_enabled(); }

extern "C" size_t gvm_cuda_attention_fwd_scratch(const gvm_attention_dims *d) {
    return make_plan(d, GVM_F32, false).total;
}

extern "C" size_t gvm_cuda_attention_bwd_scratch(const gvm_attention_dims *d) {
    return make_plan(d, GVM_F32, true).total;
}

extern "C" size_t gvm_cuda_attention_fwd_lowp_scratch(gvm_dtype dtype, const gvm_attention_dims *d) {
    check_lowp(dtype);
    return use_flash(d) ? 0 : make_plan(d, dtype, false).total;
}

extern "C" size_t gvm_cuda_attention_bwd_lowp_scratch(gvm_dtype dtype, const gvm_attention_dims *d) {
    check_lowp(dtype);
    return use_flash(d) ? gvm_cuda_flash_attention_bwd_scratch(d) : make_plan(d, dtype, true).total;
}

extern "C" void gvm_cuda_attention_fwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                                       const uint8_t *key_mask, float *out, float *lse, void *scratch) {
    forward(GVM_F32, d, q, k, v, key_mask, out, lse, scratch);
}

extern "C" void gvm_cuda_attention_bwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                                       const uint8_t *key_mask, const float *out, const float *lse,
                                       const float *dout, float *dq, float *dk, float *dv, void *scratch) {
    backward(GVM_F32, d, q, k, v, key_mask, out, lse, dout, dq, dk, dv, scratch);
}

extern "C" void gvm_cuda_attention_fwd_lowp(gvm_dtype dtype, const gvm_attention_dims *d, const float *q,
                                            const float *k, const float *v, const uint8_t *key_mask, float *out,
                                            float *lse, void *scratch) {
    check_lowp(dtype);
    if (use_flash(d)) gvm_cuda_flash_attention_fwd(dtype, d, q, k, v, key_mask, out, lse);
    else forward(dtype, d, q, k, v, key_mask, out, lse, scratch);
}

extern "C" void gvm_cuda_attention_bwd_lowp(gvm_dtype dtype, const gvm_attention_dims *d, const float *q,
                                            const float *k, const float *v, const uint8_t *key_mask,
                                            const float *out, const float *lse, const float *dout, float *dq,
                                            float *dk, float *dv, void *scratch) {
    check_lowp(dtype);
    if (use_flash(d)) gvm_cuda_flash_attention_bwd(dtype, d, q, k, v, key_mask, out, lse, dout, dq, dk, dv, scratch);
    else backward(dtype, d, q, k, v, key_mask, out, lse, dout, dq, dk, dv, scratch);
}
