// cpu/gemm.h: single-precision GEMM on the CPU through OpenBLAS.
#ifndef GVM_CPU_GEMM_H
#define GVM_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [M,K] (A stored [K,M] when trans_a),
// op(B) is [K,N] (B stored [N,K] when trans_b). Leading dims are the row lengths as stored.
void gvm_cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// `batch` independent GEMMs, operand i at base + i * stride (a stride of 0 shares the operand). When the
// matrices are small the batch is spread over OpenMP threads (BLAS then runs single-threaded in each);
// when stride_c is 0 (accumulating into one C) the loop stays serial.
void gvm_cpu_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                           int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c);

#ifdef __cplusplus
}
#endif

#endif
