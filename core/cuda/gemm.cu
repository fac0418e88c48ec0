// cuda/gemm.cu: GEMMs through cuBLAS (see gemm.h): f32 (no TF32, so the CPU parity holds at 1e-5), the
// bf16/f16 GEMMs of autocast (f32 accumulation and output on tensor cores), and the bias kernels of the
// linear layer.
//
// cuBLAS is column-major and our matrices are row-major. A row-major [R,C] matrix with leading dim ld is
// the column-major [C,R] matrix (its transpose) with the same ld, so C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T: B goes first, A second, and the sizes are (N, M, K).
#include <limits.h>

#include "core/cuda/common.cuh"
#include "core/cuda/gemm.h"

// Products of one stride_c == 0 batch go to a temporary of at most this size before they are summed into C.
#define GEMM_ACCUM_TMP_BYTES ((size_t)256 << 20)

// cuBLAS takes int sizes and leading dims.
static int to_int(int64_t v, const char *what) {
    if (v < 0 || v > INT_MAX)
        gvm_fatal(__FILE__, __LINE__, "gemm: %s = %lld is outside cuBLAS's int range", what, (long long)v);
    return (int)v;
}

// K == 0: C = beta * C (0 when beta == 0, without reading C), applied `reps` times in a row (a stride_c == 0
// batch applies it once per entry, as the CPU loop does). nmat matrices at C + b * stride_c.
static __global__ void scale_c_kernel(float *C, int64_t M, int64_t N, int64_t ldc, int64_t nmat, int64_t stride_c, float beta,
                               int64_t reps) {
    int64_t per = M * N;
    GVM_CUDA_FOR(i, nmat * per) {
        int64_t b = i / per, r = i % per, m = r / N, n = r % N;
        float *c = C + b * stride_c + m * ldc + n;
        if (beta == 0.0f) {
            *c = 0.0f;
        } else {
            float v = *c;
            for (int64_t k = 0; k < reps; k++) v = beta * v;
            *c = v;
        }
    }
}

// C[M,N] (leading dim ldc) takes g products P[g][M][N] (contiguous) in order: C = alpha * P_b + beta * C,
// the stride_c == 0 semantics of the CPU loop. One thread per element of C: deterministic.
static __global__ void accumulate_products_kernel(float *C, int64_t ldc, const float *P, int64_t M, int64_t N, int64_t g,
                                           float alpha, float beta) {
    int64_t per = M * N;
    GVM_CUDA_FOR(i, per) {
        int64_t m = i / N, n = i % N;
        float *c = C + m * ldc + n;
        float v = beta == 0.0f ? 0.0f : *c;
        for (int64_t b = 0; b < g; b++) {
            float p = alpha * P[b * per + i];
            v = beta == 0.0f ? p : p + beta * v;
        }
        *c = v;
    }
}

// One column-major cuBLAS call for `batch` GEMMs whose C matrices are disjoint (batch 1: plain GemmEx).
static void cublas_gemm(cudaDataType_t type, int64_t batch, bool trans_a, bool trans_b, int m, int n, int k,
                        float alpha, const void *A, int lda, int64_t stride_a, const void *B, int ldb,
                        int64_t stride_b, float beta, float *C, int ldc, int64_t stride_c) {
    cublasHandle_t h = gvm_cuda_cublas();
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    // Row-major C[m,n] = op(A) op(B)  <=>  column-major C^T[n,m] = op(B)^T op(A)^T (see the top of the file).
    if (batch == 1) {
        GVM_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, n, m, k, &alpha, B, type, ldb, A, type, lda, &beta, C,
                                      CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        GVM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op_b, op_a, n, m, k, &alpha, B, type, ldb, (long long)stride_b,
                                                    A, type, lda, (long long)stride_a, &beta, C, CUDA_R_32F, ldc,
                                                    (long long)stride_c, to_int(batch, "batch"), CUBLAS_COMPUTE_32F,
                                                    CUBLAS_GEMM_DEFAULT));
    }
}

// Every GEMM of this file: A and B of `type` (f32, bf16 or f16, `esize` bytes each), C f32, f32 accumulation.
// Under the handle's default math mode an f32 GEMM stays f32 (no TF32) and 16-bit inputs use tensor cores.
static void gemm_any(cudaDataType_t type, size_t esize, int64_t batch, bool trans_a, bool trans_b, int64_t M,
                     int64_t N, int64_t K, float alpha, const void *A, int64_t lda, int64_t stride_a, const void *B,
                     int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c) {
    if (batch <= 0 || M == 0 || N == 0) return;
    if (K == 0) {
        // Nothing to multiply, and cuBLAS would reject the leading dims of the empty operands.
        if (beta == 1.0f) return;
        int64_t nmat = stride_c == 0 ? 1 : batch, reps = stride_c == 0 ? batch : 1;
        scale_c_kernel<<<gvm_cuda_blocks(nmat * M * N, 256), 256, 0, gvm_cuda_stream()>>>(C, M, N, ldc, nmat, stride_c,
                                                                                        beta, reps);
        GVM_CUDA_LAUNCH_CHECK();
        return;
    }
    int m = to_int(M, "M"), n = to_int(N, "N"), k = to_int(K, "K");
    int ia = to_int(lda, "lda"), ib = to_int(ldb, "ldb"), ic = to_int(ldc, "ldc");
    const char *a = (const char *)A, *b = (const char *)B;
    if (batch == 1 || stride_c != 0) {
        cublas_gemm(type, batch, trans_a, trans_b, m, n, k, alpha, A, ia, stride_a, B, ib, stride_b, beta, C, ic,
                    stride_c);
        return;
    }
    // stride_c == 0: every product accumulates into the one C, in batch order. cuBLAS runs a batch in
    // parallel, so the products go to a temporary (groups of `group`) and a kernel adds them in order.
    size_t per_bytes = (size_t)M * (size_t)N * sizeof(float);
    int64_t group = per_bytes > GEMM_ACCUM_TMP_BYTES ? 1 : (int64_t)(GEMM_ACCUM_TMP_BYTES / per_bytes);
    if (group > batch) group = batch;
    if (group <= 1) {
        // One product is already too large for the temporary: one GEMM per entry, straight into C.
        for (int64_t i = 0; i < batch; i++)
            cublas_gemm(type, 1, trans_a, trans_b, m, n, k, alpha, a + (size_t)(i * stride_a) * esize, ia, 0,
                        b + (size_t)(i * stride_b) * esize, ib, 0, beta, C, ic, 0);
        return;
    }
    float *tmp = (float *)gvm_cuda_workspace((size_t)group * per_bytes);  // [group][M][N]
    for (int64_t i0 = 0; i0 < batch; i0 += group) {
        int64_t g = batch - i0 < group ? batch - i0 : group;
        cublas_gemm(type, g, trans_a, trans_b, m, n, k, 1.0f, a + (size_t)(i0 * stride_a) * esize, ia, stride_a,
                    b + (size_t)(i0 * stride_b) * esize, ib, stride_b, 0.0f, tmp, n, M * N);
        accumulate_products_kernel<<<gvm_cuda_blocks(M * N, 256), 256, 0, gvm_cuda_stream()>>>(C, ldc, tmp, M, N, g,
                                                                                             alpha, beta);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

static cudaDataType_t lowp_type(gvm_dtype dtype) {
    if (dtype == GVM_BF16) return CUDA_R_16BF;
    if (dtype == GVM_F16) return CUDA_R_16F;
    gvm_fatal(__FILE__, __LINE__, "gemm_lowp: inputs must be bf16 or f16 (got gvm_dtype %d)", (int)dtype);
}

extern "C" void gvm_cuda_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                               int64_t ldc) {
    gemm_any(CUDA_R_32F, sizeof(float), 1, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
}

extern "C" void gvm_cuda_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                       float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                                       int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                                       int64_t stride_c) {
    gemm_any(CUDA_R_32F, sizeof(float), batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
             beta, C, ldc, stride_c);
}

extern "C" void gvm_cuda_gemm_lowp(gvm_dtype in_dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                   float alpha, const void *A, int64_t lda, const void *B, int64_t ldb, float beta,
                                   float *C, int64_t ldc) {
    gemm_any(lowp_type(in_dtype), 2, 1, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
}

extern "C" void gvm_cuda_gemm_lowp_batched(gvm_dtype in_dtype, int64_t batch, bool trans_a, bool trans_b, int64_t M,
                                           int64_t N, int64_t K, float alpha, const void *A, int64_t lda,
                                           int64_t stride_a, const void *B, int64_t ldb, int64_t stride_b, float beta,
                                           float *C, int64_t ldc, int64_t stride_c) {
    gemm_any(lowp_type(in_dtype), 2, batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta,
             C, ldc, stride_c);
}

// ---- linear bias ------------------------------------------------------------------------------------------

// Y[rows, out_f] = b[out_f] per row, as n = rows * out_f elements (float4 when out_f % 4 == 0 and aligned).
static __global__ void bias_fill_kernel(float *Y, const float *b, int64_t n, int64_t out_f) {
    GVM_CUDA_FOR(i, n) Y[i] = b[i % out_f];
}
static __global__ void bias_fill4_kernel(float4 *Y, const float4 *b, int64_t n4, int64_t out4) {
    GVM_CUDA_FOR(i, n4) Y[i] = b[i % out4];
}

extern "C" void gvm_cuda_bias_rows_fill(float *Y, const float *b, int64_t rows, int64_t out_f) {
    int64_t n = rows * out_f;
    if (n == 0) return;
    bool vec = out_f % 4 == 0 && ((uintptr_t)Y % 16) == 0 && ((uintptr_t)b % 16) == 0;
    if (vec) {
        bias_fill4_kernel<<<gvm_cuda_blocks(n / 4, 256), 256, 0, gvm_cuda_stream()>>>((float4 *)Y, (const float4 *)b,
                                                                                    n / 4, out_f / 4);
    } else {
        bias_fill_kernel<<<gvm_cuda_blocks(n, 256), 256, 0, gvm_cuda_stream()>>>(Y, b, n, out_f);
    }
    GVM_CUDA_LAUNCH_CHECK();
}

// Column sums of dY[rows, out_f] in two deterministic passes. Pass 1: block (x: 32 columns, y: 8 lanes) sums
// its columns over one chunk of rows (lane l takes rows l, l+8, ... of the chunk, coalesced 128-byte loads
// across the warp), the 8 lane sums are added in lane order, and the chunk's sum goes to partial[chunk][j]
// or, when there is one chunk, straight into db. Pass 2 adds the chunk sums of a column (one warp each).
#define BG_COLS 32
#define BG_LANES 8
static __global__ void bias_grad_partial_kernel(const float *dY, double *partial, float *db, int64_t rows, int64_t out_f,
                                         int64_t rows_per_chunk) {
    __shared__ double lane_sum[BG_LANES][BG_COLS];
    int64_t j = (int64_t)blockIdx.x * BG_COLS + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    double acc = 0.0;
    if (j < out_f) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += BG_LANES) acc += (double)dY[r * out_f + j];
    }
    lane_sum[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < out_f) {
        double s = 0.0;
        for (int l = 0; l < BG_LANES; l++) s += lane_sum[l][threadIdx.x];
        if (partial)
            partial[(int64_t)blockIdx.y * out_f + j] = s;
        else
            db[j] += (float)s;
    }
}

// One warp per column: lane l adds chunks l, l + 32, ... in order, then a fixed shuffle tree adds the lanes
// (a warp, not a thread, so that narrow outputs with many chunks are not one long chain of dependent loads).
static __global__ void bias_grad_final_kernel(const double *partial, float *db, int64_t chunks, int64_t out_f) {
    int lane = threadIdx.x & 31;
    int64_t j = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (j >= out_f) return;  // the same j for the whole warp: it leaves together, the shuffles stay full
    double s = 0.0;
    for (int64_t c = lane; c < chunks; c += 32) s += partial[c * out_f + j];
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) db[j] += (float)s;
}

extern "C" void gvm_cuda_bias_grad(const float *dY, float *db, int64_t rows, int64_t out_f) {
    // rows == 0 still adds 0 to db, as the CPU loop does.
    if (out_f == 0) return;
    // Enough chunks for ~2048 blocks of 256 threads (132 SMs, several blocks each), but at least 64 rows
    // (8 per lane) per chunk so pass 2 stays small; the chunking depends on the shape only (deterministic).
    int64_t col_tiles = (out_f + BG_COLS - 1) / BG_COLS;
    int64_t chunks = (2048 + col_tiles - 1) / col_tiles;
    int64_t by_rows = (rows + 63) / 64;
    if (chunks > by_rows) chunks = by_rows;
    if (chunks > 65535) chunks = 65535;  // gridDim.y limit
    if (chunks < 1) chunks = 1;
    int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    if (rows_per_chunk > 0) chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;  // no empty chunks
    double *partial = chunks > 1 ? (double *)gvm_cuda_workspace((size_t)chunks * (size_t)out_f * sizeof(double))
                                 : NULL;  // [chunks][out_f]
    dim3 grid((unsigned)col_tiles, (unsigned)chunks), block(BG_COLS, BG_LANES);
    bias_grad_partial_kernel<<<grid, block, 0, gvm_cuda_stream()>>>(dY, partial, db, rows, out_f, rows_per_chunk);
    GVM_CUDA_LAUNCH_CHECK();
    if (partial) {
        int64_t blocks = (out_f + 7) / 8;  // 8 warps (columns) per block of 256
        bias_grad_final_kernel<<<(unsigned)blocks, 256, 0, gvm_cuda_stream()>>>(partial, db, chunks, out_f);
        GVM_CUDA_LAUNCH_CHECK();
    }
}
