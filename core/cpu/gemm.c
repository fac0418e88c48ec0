// cpu/gemm.c: OpenBLAS sgemm wrappers (see gemm.h).
#include "core/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

void gvm_cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {  // BLAS would leave C untouched for beta == 1 but not scale it otherwise
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void gvm_cpu_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                           int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c) {
    // Below ~64 MFLOP a GEMM does not keep every thread busy inside OpenBLAS (packing and the fork/join
    // dominate); when the GEMMs divide evenly among the threads (or are many), give each thread whole GEMMs.
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int threads = omp_get_max_threads();
    bool across_batch = stride_c != 0 && threads > 1 && (batch % threads == 0 || batch >= 4 * threads) && flops < 64e6;
    if (across_batch) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < batch; i++)
            gvm_cpu_sgemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                          C + i * stride_c, ldc);
    } else {
        for (int64_t i = 0; i < batch; i++)
            gvm_cpu_sgemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                          C + i * stride_c, ldc);
    }
}
