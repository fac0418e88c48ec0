// cuda/shape.cu: data-movement kernels on the GPU (see shape.h): permute, slice/concat windows, identity
// gradients, index select / embedding, gather, casts.
//
// Building blocks:
//  * a "rows" mover: dst rows (+)= src rows, each row `len` contiguous elements, the rows addressed by up to
//    kMaxDims outer dims with their own src and dst strides. Permutes that keep the last dim last, slices,
//    concat windows and identity gradients are all this. Rows move in the widest word (16, 8, 4, 2 or 1
//    bytes) that the row length, the strides and the pointers allow: a row of 64 f32 is 16 float4 moves;
//  * a tiled transpose (32 x 32 tiles through shared memory) for permutes that move the last dim, so both the
//    reads and the writes are coalesced;
//  * index kernels. Gathers read their index per element. The scatter-adds give each output element to one
//    thread, which adds the contributions in index order: bitwise the CPU's order, and no float atomics.
//    With many indices (embedding) the (index, position) pairs are first sorted (stable radix sort), so each
//    distinct row is summed by one pass over its run of positions instead of every column scanning every
//    index.
// Offsets are 64-bit. When a launch's items number fewer than 2^31, divisions by the dims use multiply-shift
// dividers: 64-bit division would otherwise cost more than the memory traffic of a permute.
#include <cub/device/device_radix_sort.cuh>
#include <stdio.h>
#include <string.h>

#include "core/cuda/common.cuh"
#include "core/cuda/elementwise.h"  // gvm_cuda_cast
#include "core/cuda/shape.h"

namespace {

constexpr int kMaxDims = 8;                          // 6 tensor dims, + 1 byte dim for odd element sizes
constexpr int kThreads = 256;
constexpr int64_t kFastLimit = (int64_t)1 << 31;     // items below which the 32-bit dividers are exact
constexpr int64_t kSortMinIndices = 33;              // index_select backward sorts from this many indices

// ---- division by a dim ----------------------------------------------------------------------------------------
// n / d for 0 <= n < 2^31, 1 <= d < 2^31 by multiply and shift (as PyTorch's IntDivider): with s = ceil(log2 d)
// and m = floor(2^32 (2^s - d) / d) + 1, n / d = (umulhi(n, m) + n) >> s. (Checked exhaustively on small d and
// on random n up to 2^31 for d up to 2^31 - 1.)
struct fast_div {
    int64_t d;  // the divisor, for the 64-bit path and remainders
    uint32_t m, s;
};

fast_div make_div(int64_t d) {
    fast_div f;
    f.d = d;
    f.m = 0;
    f.s = 0;
    if (d >= 1 && d < kFastLimit) {
        uint32_t s = 0;
        while (((uint64_t)1 << s) < (uint64_t)d) s++;
        f.s = s;
        f.m = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << s) - (uint64_t)d)) / (uint64_t)d + 1);
    }
    return f;
}

template <bool FAST>
__device__ __forceinline__ int64_t div_by(int64_t n, const fast_div &f) {
    if constexpr (FAST) {
        const uint32_t t = __umulhi((uint32_t)n, f.m);
        return (int64_t)((t + (uint32_t)n) >> f.s);
    } else {
        return n / f.d;
    }
}

unsigned grid_for(int64_t items) { return gvm_cuda_blocks(items, kThreads); }

// ---- element moves --------------------------------------------------------------------------------------------

__device__ __forceinline__ void add_to(float *d, const float *s) { *d += *s; }
__device__ __forceinline__ void add_to(float2 *d, const float2 *s) {
    float2 a = *d;
    const float2 b = *s;
    a.x += b.x;
    a.y += b.y;
    *d = a;
}
__device__ __forceinline__ void add_to(float4 *d, const float4 *s) {
    float4 a = *d;
    const float4 b = *s;
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
    *d = a;
}

// *d = *s, or (ACC: W is float, float2 or float4) *d += *s.
template <typename W, bool ACC>
__device__ __forceinline__ void move_word(W *d, const W *s) {
    if constexpr (ACC)
        add_to(d, s);
    else
        *d = *s;
}

// ---- the rows mover ---------------------------------------------------------------------------------------------

struct rows_plan {
    int nd;                        // outer dims, innermost first
    fast_div size[kMaxDims];       // their sizes
    int64_t src_stride[kMaxDims];  // in words
    int64_t dst_stride[kMaxDims];  // in words
    fast_div len;                  // words per row
    int64_t total;                 // rows * len words
};

template <typename W, bool ACC, bool FAST>
__global__ void rows_kernel(const W *__restrict__ src, W *__restrict__ dst, rows_plan p) {
    GVM_CUDA_FOR(i, p.total) {
        int64_t row = div_by<FAST>(i, p.len);
        const int64_t col = i - row * p.len.d;
        int64_t so = col, dof = col;
#pragma unroll
        for (int d = 0; d < kMaxDims; d++) {
            if (d >= p.nd) break;
            const int64_t q = div_by<FAST>(row, p.size[d]);
            const int64_t c = row - q * p.size[d].d;
            row = q;
            so += c * p.src_stride[d];
            dof += c * p.dst_stride[d];
        }
        move_word<W, ACC>(dst + dof, src + so);
    }
}

template <typename W, bool ACC>
void launch_rows(const void *src, void *dst, const rows_plan &p) {
    if (p.total < kFastLimit)
        rows_kernel<W, ACC, true><<<grid_for(p.total), kThreads, 0, gvm_cuda_stream()>>>((const W *)src, (W *)dst, p);
    else
        rows_kernel<W, ACC, false><<<grid_for(p.total), kThreads, 0, gvm_cuda_stream()>>>((const W *)src, (W *)dst, p);
    GVM_CUDA_LAUNCH_CHECK();
}

// The widest word (16, 8, 4, 2, 1 bytes) dividing every value OR-ed into `bits`.
size_t word_size(uintptr_t bits) {
    size_t w = 16;
    while (w > 1 && (bits & (w - 1))) w >>= 1;
    return w;
}

// Rows of `len` contiguous elements of `esize` bytes: the row with outer coordinates c (nd dims, innermost
// first, sizes size[]) starts at src + sum c_d sstride_d and dst + sum c_d dstride_d (strides in elements).
// acc: f32 data, dst += src; otherwise a copy.
void move_rows(const void *src, void *dst, size_t esize, bool acc, int nd, const int64_t *size,
               const int64_t *sstride, const int64_t *dstride, int64_t len) {
    GVM_CHECK(nd >= 0 && nd <= kMaxDims, "move_rows: %d outer dims (internal)", nd);
    int64_t rows = 1;
    for (int d = 0; d < nd; d++) rows *= size[d];
    if (rows == 0 || len == 0) return;
    const size_t row_bytes = (size_t)len * esize;
    uintptr_t bits = (uintptr_t)src | (uintptr_t)dst | (uintptr_t)row_bytes;
    for (int d = 0; d < nd; d++)
        bits |= (uintptr_t)((size_t)sstride[d] * esize) | (uintptr_t)((size_t)dstride[d] * esize);
    const size_t w = word_size(bits);
    GVM_CHECK(!acc || (esize == 4 && w >= 4), "move_rows: accumulation needs aligned f32 (internal)");
    rows_plan p;
    memset(&p, 0, sizeof p);
    p.nd = nd;
    for (int d = 0; d < nd; d++) {
        p.size[d] = make_div(size[d]);
        p.src_stride[d] = (int64_t)((size_t)sstride[d] * esize / w);
        p.dst_stride[d] = (int64_t)((size_t)dstride[d] * esize / w);
    }
    p.len = make_div((int64_t)(row_bytes / w));
    p.total = rows * (int64_t)(row_bytes / w);
    if (acc) {
        if (w == 16)
            launch_rows<float4, true>(src, dst, p);
        else if (w == 8)
            launch_rows<float2, true>(src, dst, p);
        else
            launch_rows<float, true>(src, dst, p);
        return;
    }
    switch (w) {
    case 16: launch_rows<uint4, false>(src, dst, p); break;
    case 8: launch_rows<uint2, false>(src, dst, p); break;
    case 4: launch_rows<uint32_t, false>(src, dst, p); break;
    case 2: launch_rows<uint16_t, false>(src, dst, p); break;
    default: launch_rows<uint8_t, false>(src, dst, p); break;
    }
}

// ---- tiled transpose ----------------------------------------------------------------------------------------
// dst[batch][a][b] (+)= src[batch][b][a] with a contiguous in src and b contiguous in dst (strides general
// otherwise). A block (32 x 8 threads) moves 32 x 32 tiles: reads along a, writes along b.

constexpr int kTile = 32;
constexpr int kTileRows = 8;

struct tile_plan {
    int nbd;                      // batch dims, innermost first
    fast_div bsize[kMaxDims];
    int64_t bsrc[kMaxDims], bdst[kMaxDims];
    int64_t na, nb;               // sizes of the transposed dims
    int64_t src_b, dst_a;         // stride of b in src, of a in dst (a in src and b in dst have stride 1)
    fast_div ta, tb;              // tiles along a and along b
    int64_t tiles;                // batch * ta * tb
};

template <typename T, bool ACC, bool FAST>
__global__ void tile_kernel(const T *__restrict__ src, T *__restrict__ dst, tile_plan p) {
    __shared__ T tile[kTile][kTile + 1];  // [b][a]; +1 against bank conflicts on the transposed read
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (int64_t t = blockIdx.x; t < p.tiles; t += gridDim.x) {  // uniform over the block: barriers are safe
        int64_t rest = div_by<FAST>(t, p.tb);
        const int64_t bt = t - rest * p.tb.d;
        int64_t bat = div_by<FAST>(rest, p.ta);
        const int64_t at = rest - bat * p.ta.d;
        int64_t so = 0, dof = 0;
#pragma unroll
        for (int d = 0; d < kMaxDims; d++) {
            if (d >= p.nbd) break;
            const int64_t q = div_by<FAST>(bat, p.bsize[d]);
            const int64_t c = bat - q * p.bsize[d].d;
            bat = q;
            so += c * p.bsrc[d];
            dof += c * p.bdst[d];
        }
        const int64_t a0 = at * kTile, b0 = bt * kTile;
        for (int k = ty; k < kTile; k += kTileRows) {
            const int64_t a = a0 + tx, b = b0 + k;
            if (a < p.na && b < p.nb) tile[k][tx] = src[so + a + b * p.src_b];
        }
        __syncthreads();
        for (int k = ty; k < kTile; k += kTileRows) {
            const int64_t a = a0 + k, b = b0 + tx;
            if (a < p.na && b < p.nb) {
                T *d = dst + dof + a * p.dst_a + b;
                if constexpr (ACC)
                    *d += tile[tx][k];
                else
                    *d = tile[tx][k];
            }
        }
        __syncthreads();  // the tile is rewritten by the next iteration
    }
}

template <typename T, bool ACC>
void launch_tiles(const void *src, void *dst, const tile_plan &p) {
    const dim3 block(kTile, kTileRows);
    const unsigned grid = gvm_cuda_blocks(p.tiles, 1);
    if (p.tiles < kFastLimit)
        tile_kernel<T, ACC, true><<<grid, block, 0, gvm_cuda_stream()>>>((const T *)src, (T *)dst, p);
    else
        tile_kernel<T, ACC, false><<<grid, block, 0, gvm_cuda_stream()>>>((const T *)src, (T *)dst, p);
    GVM_CUDA_LAUNCH_CHECK();
}

// ---- permute ------------------------------------------------------------------------------------------------------
// The plan is the CPU's (cpu/shape.c): size-1 dims dropped, dims adjacent and in order in both layouts merged.
// Then the last dim either stays last (rows) or moves (tiles).

void permute_run(const void *src, void *dst, size_t esize, bool acc, int ndim, const int64_t *shape_in,
                 const int *perm_in) {
    GVM_CHECK(ndim >= 0 && ndim < kMaxDims, "permute: rank %d (internal)", ndim);
    int64_t shape[kMaxDims];
    int perm[kMaxDims];
    for (int d = 0; d < ndim; d++) {
        shape[d] = shape_in[d];
        perm[d] = perm_in[d];
    }
    // An element size no dtype has: each element becomes a row of esize bytes (a last dim that stays last).
    if (!acc && esize != 1 && esize != 2 && esize != 4 && esize != 8) {
        shape[ndim] = (int64_t)esize;
        perm[ndim] = ndim;
        ndim++;
        esize = 1;
    }
    int64_t stride[kMaxDims], s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
    if (s == 0) return;
    int k = 0;
    int64_t size[kMaxDims], sstr[kMaxDims], dstr[kMaxDims];
    for (int j = 0; j < ndim; j++) {
        const int d = perm[j];
        if (shape[d] == 1) continue;
        if (k > 0 && sstr[k - 1] == shape[d] * stride[d]) {
            size[k - 1] *= shape[d];  // src dim d directly follows the previous one: one dim
            sstr[k - 1] = stride[d];
        } else {
            size[k] = shape[d];
            sstr[k] = stride[d];
            k++;
        }
    }
    s = 1;
    for (int j = k - 1; j >= 0; j--) {
        dstr[j] = s;
        s *= size[j];
    }
    if (k == 0) {  // a single element
        move_rows(src, dst, esize, acc, 0, NULL, NULL, NULL, 1);
        return;
    }
    if (sstr[k - 1] == 1) {
        // The last dim stays innermost: rows of size[k-1] elements; outer dims k-2 .. 0, innermost first.
        int64_t osize[kMaxDims], os[kMaxDims], od[kMaxDims];
        for (int i = 0; i < k - 1; i++) {
            osize[i] = size[k - 2 - i];
            os[i] = sstr[k - 2 - i];
            od[i] = dstr[k - 2 - i];
        }
        move_rows(src, dst, esize, acc, k - 1, osize, os, od, size[k - 1]);
        return;
    }
    // The last dim moves: dim a (contiguous in src) and the last dim b (contiguous in dst) are transposed.
    const int b_dim = k - 1;
    int a_dim = -1;
    for (int j = 0; j < k - 1; j++)
        if (sstr[j] == 1) a_dim = j;
    GVM_CHECK(a_dim >= 0, "permute: no contiguous source dim (internal)");
    tile_plan p;
    memset(&p, 0, sizeof p);
    int64_t batch = 1;
    for (int j = k - 1; j >= 0; j--) {
        if (j == a_dim || j == b_dim) continue;
        p.bsize[p.nbd] = make_div(size[j]);
        p.bsrc[p.nbd] = sstr[j];
        p.bdst[p.nbd] = dstr[j];
        p.nbd++;
        batch *= size[j];
    }
    p.na = size[a_dim];
    p.nb = size[b_dim];
    p.src_b = sstr[b_dim];
    p.dst_a = dstr[a_dim];
    const int64_t ta = (p.na + kTile - 1) / kTile, tb = (p.nb + kTile - 1) / kTile;
    p.ta = make_div(ta);
    p.tb = make_div(tb);
    p.tiles = batch * ta * tb;
    if (acc) {
        launch_tiles<float, true>(src, dst, p);
        return;
    }
    switch (esize) {
    case 1: launch_tiles<uint8_t, false>(src, dst, p); break;
    case 2: launch_tiles<uint16_t, false>(src, dst, p); break;
    case 4: launch_tiles<uint32_t, false>(src, dst, p); break;
    default: launch_tiles<uint64_t, false>(src, dst, p); break;
    }
}

// dst [outer, dst_n, inner] rows [dst_start, +len) (+)= src [outer, src_n, inner] rows [src_start, +len).
void window_move(void *dst, int64_t dst_n, int64_t dst_start, const void *src, int64_t src_n, int64_t src_start,
                 int64_t outer, int64_t len, int64_t inner, size_t esize, bool acc) {
    const int64_t run = len * inner;
    if (run == 0 || outer == 0) return;
    const int64_t size[1] = {outer}, ss[1] = {src_n * inner}, ds[1] = {dst_n * inner};
    const char *s = (const char *)src + (size_t)(src_start * inner) * esize;
    char *d = (char *)dst + (size_t)(dst_start * inner) * esize;
    move_rows(s, d, esize, acc, 1, size, ss, ds, run);
}

// ---- index select / embedding ---------------------------------------------------------------------------------

template <typename I>
__device__ __forceinline__ int64_t checked_index(const I *idx, int64_t at, int64_t n, const char *op) {
    const int64_t v = (int64_t)idx[at];
    if (v < 0 || v >= n) {
        printf("gvm: %s: index %lld outside 0..%lld\n", op, (long long)v, (long long)(n - 1));
        __trap();
    }
    return v;
}

// dst [outer, m, inner] = src [outer, n, inner][:, idx, :]; inner counted in words W.
template <typename W, typename I, bool FAST>
__global__ void index_select_fwd_kernel(const W *__restrict__ src, W *__restrict__ dst, const I *__restrict__ idx,
                                        int64_t n, fast_div m, fast_div inner, int64_t total) {
    GVM_CUDA_FOR(i, total) {
        const int64_t r = div_by<FAST>(i, inner), c = i - r * inner.d;
        const int64_t o = div_by<FAST>(r, m), j = r - o * m.d;
        const int64_t v = checked_index(idx, j, n, "index_select");
        dst[i] = src[(o * n + v) * inner.d + c];
    }
}

template <typename W, typename I>
void launch_index_select_fwd(const void *src, void *dst, const void *idx, int64_t outer, int64_t n, int64_t m,
                             int64_t inner_w) {
    const int64_t total = outer * m * inner_w;
    if (total < kFastLimit)
        index_select_fwd_kernel<W, I, true><<<grid_for(total), kThreads, 0, gvm_cuda_stream()>>>(
            (const W *)src, (W *)dst, (const I *)idx, n, make_div(m), make_div(inner_w), total);
    else
        index_select_fwd_kernel<W, I, false><<<grid_for(total), kThreads, 0, gvm_cuda_stream()>>>(
            (const W *)src, (W *)dst, (const I *)idx, n, make_div(m), make_div(inner_w), total);
    GVM_CUDA_LAUNCH_CHECK();
}

template <typename I>
void index_select_fwd_words(const void *src, void *dst, size_t esize, const void *idx, int64_t outer, int64_t n,
                            int64_t m, int64_t inner) {
    // Rows of `inner` elements start at multiples of inner * esize bytes: move them in the widest word.
    const size_t row_bytes = (size_t)inner * esize;
    const size_t w = word_size((uintptr_t)src | (uintptr_t)dst | (uintptr_t)row_bytes);
    const int64_t inner_w = (int64_t)(row_bytes / w);
    switch (w) {
    case 16: launch_index_select_fwd<uint4, I>(src, dst, idx, outer, n, m, inner_w); break;
    case 8: launch_index_select_fwd<uint2, I>(src, dst, idx, outer, n, m, inner_w); break;
    case 4: launch_index_select_fwd<uint32_t, I>(src, dst, idx, outer, n, m, inner_w); break;
    case 2: launch_index_select_fwd<uint16_t, I>(src, dst, idx, outer, n, m, inner_w); break;
    default: launch_index_select_fwd<uint8_t, I>(src, dst, idx, outer, n, m, inner_w); break;
    }
}

// Few indices: one thread per (outer, inner) column walks the indices in order (the CPU's order).
template <typename I>
__global__ void index_select_bwd_cols_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                             const I *__restrict__ idx, int64_t n, int64_t m, int64_t inner,
                                             int64_t total) {
    GVM_CUDA_FOR(i, total) {
        const int64_t o = i / inner, c = i - o * inner;
        for (int64_t j = 0; j < m; j++) {
            const int64_t v = checked_index(idx, j, n, "index_select");
            dx[(o * n + v) * inner + c] += dy[(o * m + j) * inner + c];
        }
    }
}

// Keys (the indices, checked) and values (their positions) for the stable sort.
template <typename I>
__global__ void index_keys_kernel(const I *__restrict__ idx, int64_t m, int64_t n, uint32_t *__restrict__ keys,
                                  uint32_t *__restrict__ pos) {
    GVM_CUDA_FOR(j, m) {
        keys[j] = (uint32_t)checked_index(idx, j, n, "index_select");
        pos[j] = (uint32_t)j;
    }
}

// keys [m] sorted, pos [m] the positions in ascending order within equal keys. The thread of (o, p, c) where p
// starts a run of equal keys adds the run's rows of dy into dx[o, key, c] in position order; others return.
template <bool FAST>
__global__ void index_select_bwd_sorted_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                               const uint32_t *__restrict__ keys, const uint32_t *__restrict__ pos,
                                               int64_t n, fast_div m, fast_div inner, int64_t total) {
    GVM_CUDA_FOR(i, total) {
        const int64_t r = div_by<FAST>(i, inner), c = i - r * inner.d;
        const int64_t o = div_by<FAST>(r, m), p = r - o * m.d;
        const uint32_t key = keys[p];
        if (p > 0 && keys[p - 1] == key) continue;
        float *d = dx + (o * n + (int64_t)key) * inner.d + c;
        float acc = *d;
        for (int64_t q = p; q < m.d && keys[q] == key; q++) acc += dy[(o * m.d + (int64_t)pos[q]) * inner.d + c];
        *d = acc;
    }
}

size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

template <typename I>
void index_select_bwd_sorted(const float *dy, float *dx, const I *idx, int64_t outer, int64_t n, int64_t m,
                             int64_t inner) {
    GVM_CHECK(m < kFastLimit && n <= (int64_t)UINT32_MAX, "index_select backward: %lld indices into %lld rows is "
              "beyond the sort's 32-bit keys", (long long)m, (long long)n);
    int bits = 1;  // key bits the sort needs: keys are < n <= 2^bits
    while (bits < 32 && ((uint64_t)1 << bits) < (uint64_t)n) bits++;
    cudaStream_t stream = gvm_cuda_stream();
    size_t temp = 0;
    GVM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp, (const uint32_t *)nullptr, (uint32_t *)nullptr,
                                                   (const uint32_t *)nullptr, (uint32_t *)nullptr, (int)m, 0, bits,
                                                   stream));
    const size_t arr = align256((size_t)m * sizeof(uint32_t));
    char *ws = (char *)gvm_cuda_workspace(4 * arr + align256(temp));
    uint32_t *keys_in = (uint32_t *)ws, *keys = (uint32_t *)(ws + arr);
    uint32_t *pos_in = (uint32_t *)(ws + 2 * arr), *pos = (uint32_t *)(ws + 3 * arr);
    void *temp_ptr = ws + 4 * arr;
    index_keys_kernel<I><<<grid_for(m), kThreads, 0, stream>>>(idx, m, n, keys_in, pos_in);
    GVM_CUDA_LAUNCH_CHECK();
    // LSD radix sort is stable: equal keys keep their positions in ascending order.
    GVM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp_ptr, temp, keys_in, keys, pos_in, pos, (int)m, 0, bits,
                                                   stream));
    const int64_t total = outer * m * inner;
    if (total < kFastLimit)
        index_select_bwd_sorted_kernel<true><<<grid_for(total), kThreads, 0, stream>>>(
            dy, dx, keys, pos, n, make_div(m), make_div(inner), total);
    else
        index_select_bwd_sorted_kernel<false><<<grid_for(total), kThreads, 0, stream>>>(
            dy, dx, keys, pos, n, make_div(m), make_div(inner), total);
    GVM_CUDA_LAUNCH_CHECK();
}

template <typename I>
void index_select_bwd_run(const float *dy, float *dx, const I *idx, int64_t outer, int64_t n, int64_t m,
                          int64_t inner) {
    if (m < kSortMinIndices) {
        const int64_t total = outer * inner;
        index_select_bwd_cols_kernel<I><<<grid_for(total), kThreads, 0, gvm_cuda_stream()>>>(dy, dx, idx, n, m, inner,
                                                                                            total);
        GVM_CUDA_LAUNCH_CHECK();
    } else {
        index_select_bwd_sorted<I>(dy, dx, idx, outer, n, m, inner);
    }
}

// ---- gather ---------------------------------------------------------------------------------------------------------

struct gather_plan {
    int ndim, axis;
    fast_div idx_size[kMaxDims];    // idx_shape
    int64_t idx_stride[kMaxDims];   // contiguous strides of idx
    int64_t src_stride[kMaxDims];   // contiguous strides of src
    int64_t axis_src_stride, axis_idx_stride;
    int64_t n_axis;                 // src_shape[axis]
    int64_t m_axis;                 // idx_shape[axis]
};

gather_plan plan_gather(int ndim, const int64_t *src_shape, const int64_t *idx_shape, int axis) {
    GVM_CHECK(ndim >= 1 && ndim < kMaxDims && axis >= 0 && axis < ndim, "gather: rank %d, axis %d (internal)", ndim,
              axis);
    gather_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = ndim;
    p.axis = axis;
    int64_t ss = 1, is = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        p.idx_size[d] = make_div(idx_shape[d]);
        p.src_stride[d] = ss;
        p.idx_stride[d] = is;
        ss *= src_shape[d];
        is *= idx_shape[d];
    }
    p.axis_src_stride = p.src_stride[axis];
    p.axis_idx_stride = p.idx_stride[axis];
    p.n_axis = src_shape[axis];
    p.m_axis = idx_shape[axis];
    return p;
}

// dst [idx_shape]: element i takes src at i's coordinates with the axis one replaced by idx[i]. Elements are
// `ew` words of T (1 for the dtypes; bytes for an odd element size).
template <typename T, typename I, bool FAST>
__global__ void gather_fwd_kernel(const T *__restrict__ src, T *__restrict__ dst, const I *__restrict__ idx,
                                  gather_plan p, int64_t total, int64_t ew) {
    GVM_CUDA_FOR(i, total) {
        int64_t rest = i, so = 0;
#pragma unroll
        for (int d = kMaxDims - 1; d >= 0; d--) {
            if (d >= p.ndim) continue;
            const int64_t q = div_by<FAST>(rest, p.idx_size[d]);
            const int64_t c = rest - q * p.idx_size[d].d;
            rest = q;
            if (d != p.axis) so += c * p.src_stride[d];
        }
        so += checked_index(idx, i, p.n_axis, "gather") * p.axis_src_stride;
        for (int64_t e = 0; e < ew; e++) dst[i * ew + e] = src[so * ew + e];
    }
}

template <typename T, typename I>
void launch_gather_fwd(const void *src, void *dst, const I *idx, const gather_plan &p, int64_t total, int64_t ew) {
    if (total < kFastLimit)
        gather_fwd_kernel<T, I, true><<<grid_for(total), kThreads, 0, gvm_cuda_stream()>>>((const T *)src, (T *)dst,
                                                                                          idx, p, total, ew);
    else
        gather_fwd_kernel<T, I, false><<<grid_for(total), kThreads, 0, gvm_cuda_stream()>>>((const T *)src, (T *)dst,
                                                                                           idx, p, total, ew);
    GVM_CUDA_LAUNCH_CHECK();
}

template <typename I>
void gather_fwd_run(const void *src, void *dst, size_t esize, const I *idx, const gather_plan &p, int64_t total) {
    switch (esize) {
    case 1: launch_gather_fwd<uint8_t, I>(src, dst, idx, p, total, 1); break;
    case 2: launch_gather_fwd<uint16_t, I>(src, dst, idx, p, total, 1); break;
    case 4: launch_gather_fwd<uint32_t, I>(src, dst, idx, p, total, 1); break;
    case 8: launch_gather_fwd<uint64_t, I>(src, dst, idx, p, total, 1); break;
    default: launch_gather_fwd<uint8_t, I>(src, dst, idx, p, total, (int64_t)esize); break;
    }
}

// One thread per column (every idx coordinate but the axis one) adds its m_axis elements in axis order: two
// elements of idx reach the same src element only when they share the column, so no two threads collide.
template <typename I>
__global__ void gather_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx, const I *__restrict__ idx,
                                  gather_plan p, int64_t cols) {
    GVM_CUDA_FOR(col, cols) {
        int64_t rest = col, so = 0, io = 0;
#pragma unroll
        for (int d = kMaxDims - 1; d >= 0; d--) {
            if (d >= p.ndim || d == p.axis) continue;
            const int64_t q = rest / p.idx_size[d].d;
            const int64_t c = rest - q * p.idx_size[d].d;
            rest = q;
            so += c * p.src_stride[d];
            io += c * p.idx_stride[d];
        }
        for (int64_t j = 0; j < p.m_axis; j++) {
            const int64_t e = io + j * p.axis_idx_stride;
            dx[so + checked_index(idx, e, p.n_axis, "gather") * p.axis_src_stride] += dy[e];
        }
    }
}

}  // namespace

// ---- the API ------------------------------------------------------------------------------------------------------

extern "C" void gvm_cuda_permute_fwd(const void *src, void *dst, size_t esize, int ndim, const int64_t *shape,
                                     const int *perm) {
    permute_run(src, dst, esize, false, ndim, shape, perm);
}

extern "C" void gvm_cuda_permute_bwd(const float *dy, float *dx, int ndim, const int64_t *shape, const int *perm) {
    // dx = dy permuted by the inverse permutation; dy's shape is the permuted one.
    int inv[kMaxDims];
    int64_t out_shape[kMaxDims];
    for (int i = 0; i < ndim; i++) {
        inv[perm[i]] = i;
        out_shape[i] = shape[perm[i]];
    }
    permute_run(dy, dx, sizeof(float), true, ndim, out_shape, inv);
}

extern "C" void gvm_cuda_reshape_bwd(const float *dy, float *dx, int64_t n) {
    move_rows(dy, dx, sizeof(float), true, 0, NULL, NULL, NULL, n);
}

extern "C" void gvm_cuda_contiguous_fwd(const void *src, void *dst, size_t nbytes) {
    gvm_cuda_memcpy_d2d(dst, src, nbytes);
}

extern "C" void gvm_cuda_slice_fwd(const void *src, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                                   int64_t start, int64_t len) {
    window_move(dst, len, 0, src, n, start, outer, len, inner, esize, false);
}

extern "C" void gvm_cuda_slice_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, int64_t start,
                                   int64_t len) {
    window_move(dx, n, start, dy, len, 0, outer, len, inner, sizeof(float), true);
}

extern "C" void gvm_cuda_concat_fwd(const void *part, void *dst, size_t esize, int64_t outer, int64_t n,
                                    int64_t inner, int64_t start, int64_t len) {
    window_move(dst, n, start, part, len, 0, outer, len, inner, esize, false);
}

extern "C" void gvm_cuda_concat_bwd(const float *dy, float *dpart, int64_t outer, int64_t n, int64_t inner,
                                    int64_t start, int64_t len) {
    window_move(dpart, len, 0, dy, n, start, outer, len, inner, sizeof(float), true);
}

extern "C" void gvm_cuda_index_select_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64,
                                          int64_t outer, int64_t n, int64_t m, int64_t inner) {
    if (outer == 0 || m == 0 || inner == 0 || esize == 0) return;
    if (idx64)
        index_select_fwd_words<int64_t>(src, dst, esize, idx, outer, n, m, inner);
    else
        index_select_fwd_words<int32_t>(src, dst, esize, idx, outer, n, m, inner);
}

extern "C" void gvm_cuda_index_select_bwd(const float *dy, float *dx, const void *idx, bool idx64, int64_t outer,
                                          int64_t n, int64_t m, int64_t inner) {
    if (outer == 0 || m == 0 || inner == 0) return;
    if (idx64)
        index_select_bwd_run<int64_t>(dy, dx, (const int64_t *)idx, outer, n, m, inner);
    else
        index_select_bwd_run<int32_t>(dy, dx, (const int32_t *)idx, outer, n, m, inner);
}

extern "C" void gvm_cuda_gather_fwd(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int ndim,
                                    const int64_t *src_shape, const int64_t *idx_shape, int axis) {
    gather_plan p = plan_gather(ndim, src_shape, idx_shape, axis);
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) total *= idx_shape[d];
    if (total == 0 || esize == 0) return;
    if (idx64)
        gather_fwd_run<int64_t>(src, dst, esize, (const int64_t *)idx, p, total);
    else
        gather_fwd_run<int32_t>(src, dst, esize, (const int32_t *)idx, p, total);
}

extern "C" void gvm_cuda_gather_bwd(const float *dy, float *dx, const void *idx, bool idx64, int ndim,
                                    const int64_t *src_shape, const int64_t *idx_shape, int axis) {
    gather_plan p = plan_gather(ndim, src_shape, idx_shape, axis);
    int64_t cols = 1;
    for (int d = 0; d < ndim; d++)
        if (d != axis) cols *= idx_shape[d];
    if (cols == 0 || p.m_axis == 0) return;
    if (idx64)
        gather_bwd_kernel<int64_t><<<grid_for(cols), kThreads, 0, gvm_cuda_stream()>>>(dy, dx, (const int64_t *)idx, p,
                                                                                      cols);
    else
        gather_bwd_kernel<int32_t><<<grid_for(cols), kThreads, 0, gvm_cuda_stream()>>>(dy, dx, (const int32_t *)idx, p,
                                                                                      cols);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_cast_fwd(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n) {
    gvm_cuda_cast(src, src_dtype, dst, dst_dtype, n);
}
