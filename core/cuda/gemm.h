// cuda/gemm.h: GEMMs on the GPU through cuBLAS (the twins of core/cpu/gemm.h), the low-precision GEMMs
// of autocast (bf16/f16 operands, f32 accumulation and output, tensor cores), and the two bias kernels of
// the linear layer. Pointers are device pointers; matrices are row-major as in core/cpu/gemm.h.
#ifndef GVM_CUDA_GEMM_H
#define GVM_CUDA_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [M,K] (A stored [K,M] when trans_a),
// op(B) is [K,N] (B stored [N,K] when trans_b). Leading dims are the row lengths as stored. Plain f32
// (no TF32). K == 0: C = beta * C (0 when beta == 0); M or N == 0: nothing.
void gvm_cuda_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// `batch` independent GEMMs, operand i at base + i * stride (a stride of 0 shares the operand). A stride_c
// of 0 accumulates every product into one C in batch order, as the CPU loop does (C = alpha*P_i + beta*C
// for i = 0, 1, ...); otherwise the C matrices must not overlap.
void gvm_cuda_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                            int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c);

// The same GEMMs with A and B stored in `in_dtype` (GVM_BF16 or GVM_F16), C in f32, products accumulated
// in f32 (autocast). Strides and leading dims count elements, as above.
void gvm_cuda_gemm_lowp(gvm_dtype in_dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const void *A, int64_t lda, const void *B, int64_t ldb, float beta, float *C, int64_t ldc);
void gvm_cuda_gemm_lowp_batched(gvm_dtype in_dtype, int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N,
                                int64_t K, float alpha, const void *A, int64_t lda, int64_t stride_a, const void *B,
                                int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c);

// Linear layer bias. Y[rows, out_f] = b[out_f] broadcast over the rows (the GEMM then accumulates onto it).
void gvm_cuda_bias_rows_fill(float *Y, const float *b, int64_t rows, int64_t out_f);
// db[out_f] += sum over rows of dY[rows, out_f], summed in double in a fixed order (deterministic).
void gvm_cuda_bias_grad(const float *dY, float *db, int64_t rows, int64_t out_f);

#ifdef __cplusplus
}
#endif

#endif
