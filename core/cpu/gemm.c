// cpu/gemm.c: OpenBLAS sgemm wrappers (see gemm.h).
#include "core/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

#include "core/cpu/simd.h"

// At M <= 4 (a decode step of generation: one row per sample, two with guidance) OpenBLAS 0.3.21's sgemm
// still packs the whole B operand (a 1024 x 4096 weight: 2.4 ms at M = 1 against 0.1-0.2 ms for a
// matrix-vector product here), so those products run as matrix-vector products, one per row of C
// (N == 1: one down the column). The common form (a linear layer, W [N, K] row-major) uses the loop below,
// threaded only from GEMV_PAR_MIN matrix elements (64 MB: larger than any weight here): OpenBLAS's own
// sgemv forks its threads from 9216 elements on, and on this busy 2-core machine each of those forks waited
// a scheduler slice for its second thread (gvmgen-small decode ran 15x slower on 2 threads than on 1; even
// one fork per FFN matrix, 48 a step, made it 5x slower), while a memory-bound product gains little from a
// second core.
// The transposed form (rare at these shapes: attention's P V, gradients) goes to cblas_sgemv when large.
#define GEMV_MAX_ROWS 4
#define GEMV_BLAS_MIN (1 << 20)
#define GEMV_PAR_MIN (1 << 24)

// y[n] = alpha * W[n, :] . x + beta * y[n * incy], W [N, K] rows of stride ldw, x contiguous [K].
GVM_VEC_CLONES static void gemv_rows_dot(int64_t N, int64_t K, float alpha, const float *W, int64_t ldw, const float *x,
                          float beta, float *y, int64_t incy) {
#pragma omp parallel for schedule(static) if (N * K >= GEMV_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *w = W + n * ldw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; k++) s += w[k] * x[k];
        float *o = y + n * incy;
        *o = beta == 0.0f ? alpha * s : alpha * s + beta * *o;
    }
}

// y[:] = alpha * x^T W + beta * y, W [K, N] rows of stride ldw, x strided by incx, y contiguous [N].
GVM_VEC_CLONES static void gemv_rows_axpy(int64_t N, int64_t K, float alpha, const float *W, int64_t ldw, const float *x,
                           int64_t incx, float beta, float *y) {
    for (int64_t n = 0; n < N; n++) y[n] = beta == 0.0f ? 0.0f : beta * y[n];
    for (int64_t k = 0; k < K; k++) {
        const float a = alpha * x[k * incx];
        const float *w = W + k * ldw;
#pragma omp simd
        for (int64_t n = 0; n < N; n++) y[n] += a * w[n];
    }
}

static void gemv_rows(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    // the matrix of the products: op(A) when N == 1, op(B) otherwise
    const bool blas = (N == 1 ? M : N) * K >= GEMV_BLAS_MIN;
    if (blas && beta == 0.0f)  // BLAS's beta == 0 must not read C (arena memory may hold NaN)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
    if (N == 1) {  // C[:, 0] = op(A) [M, K] times the column op(B)[:, 0] (stride incx)
        const int64_t incx = trans_b ? 1 : ldb;
        if (blas) {
            cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (int)(trans_a ? K : M),
                        (int)(trans_a ? M : K), alpha, A, (int)lda, B, (int)incx, beta, C, (int)ldc);
        } else if (!trans_a && incx == 1) {
            gemv_rows_dot(M, K, alpha, A, lda, B, beta, C, ldc);
        } else {  // rare shapes (gradients of a one-column product): the plain loop
            for (int64_t i = 0; i < M; i++) {
                float s = 0.0f;
                for (int64_t k = 0; k < K; k++) s += (trans_a ? A[k * lda + i] : A[i * lda + k]) * B[k * incx];
                C[i * ldc] = beta == 0.0f ? alpha * s : alpha * s + beta * C[i * ldc];
            }
        }
        return;
    }
    for (int64_t i = 0; i < M; i++) {  // C[i, :] = op(B)^T op(A)[i, :]
        const float *x = trans_a ? A + i : A + i * lda;
        const int64_t incx = trans_a ? lda : 1;
        if (trans_b && incx == 1)  // B stored [N, K]: a linear layer's weight
            gemv_rows_dot(N, K, alpha, B, ldb, x, beta, C + i * ldc, 1);
        else if (blas)  // B stored [K, N], or a strided x
            cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, (int)(trans_b ? N : K),
                        (int)(trans_b ? K : N), alpha, B, (int)ldb, x, (int)incx, beta, C + i * ldc, 1);
        else if (!trans_b)
            gemv_rows_axpy(N, K, alpha, B, ldb, x, incx, beta, C + i * ldc);
        else
            for (int64_t j = 0; j < N; j++) {
                float s = 0.0f;
                for (int64_t k = 0; k < K; k++) s += B[j * ldb + k] * x[k * incx];
                C[i * ldc + j] = beta == 0.0f ? alpha * s : alpha * s + beta * C[i * ldc + j];
            }
    }
}

void gvm_cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {  // BLAS would leave C untouched for beta == 1 but not scale it otherwise
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    if (M <= GEMV_MAX_ROWS || N == 1) {
        gemv_rows(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
