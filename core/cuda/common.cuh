// cuda/common.cuh: what every .cu file of the CUDA backend shares: error checks, the compute stream,
// the library handles, scratch workspace and launch-size helpers. Internal to core/cuda/.
//
// Kernel files mirror core/cpu/: core/cuda/<family>.cu implements the functions declared in
// core/cuda/<family>.h, whose signatures are those of core/cpu/<family>.h with gvm_cuda_ in place of
// gvm_cpu_. Pointers are device pointers; structs passed by pointer (gvm_broadcast, dims) are host memory
// and are read on the host before the launch.
#ifndef GVM_CUDA_COMMON_CUH
#define GVM_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

#include "core/cuda/runtime.h"
#include "core/error.h"

// Abort with file:line on any CUDA runtime error (internal invariant: the device check happened at init).
#define GVM_CUDA_CHECK(expr)                                                                           \
    do {                                                                                               \
        cudaError_t gvm_err_ = (expr);                                                                 \
        if (gvm_err_ != cudaSuccess)                                                                   \
            gvm_fatal(__FILE__, __LINE__, "CUDA error %s: %s (in %s)", cudaGetErrorName(gvm_err_),     \
                      cudaGetErrorString(gvm_err_), #expr);                                            \
    } while (0)
// After every kernel launch: catches bad launch configurations at once (not asynchronous faults).
#define GVM_CUDA_LAUNCH_CHECK() GVM_CUDA_CHECK(cudaGetLastError())
#define GVM_CUBLAS_CHECK(expr)                                                                         \
    do {                                                                                               \
        cublasStatus_t gvm_st_ = (expr);                                                               \
        if (gvm_st_ != CUBLAS_STATUS_SUCCESS)                                                          \
            gvm_fatal(__FILE__, __LINE__, "cuBLAS error %d (%s) in %s", (int)gvm_st_,                  \
                      cublasGetStatusString(gvm_st_), #expr);                                          \
    } while (0)
#define GVM_CUDNN_CHECK(expr)                                                                          \
    do {                                                                                               \
        cudnnStatus_t gvm_st_ = (expr);                                                                \
        if (gvm_st_ != CUDNN_STATUS_SUCCESS)                                                           \
            gvm_fatal(__FILE__, __LINE__, "cuDNN error %d (%s) in %s", (int)gvm_st_,                   \
                      cudnnGetErrorString(gvm_st_), #expr);                                            \
    } while (0)

#ifdef __cplusplus
extern "C" {
#endif
// The one compute stream (after gvm_cuda_init). Every launch, copy and library call uses it.
cudaStream_t gvm_cuda_stream(void);
// Library handles, created on first use and bound to the compute stream.
cublasHandle_t gvm_cuda_cublas(void);
cublasLtHandle_t gvm_cuda_cublaslt(void);
cudnnHandle_t gvm_cuda_cudnn(void);
// Scratch for library calls (cuBLASLt, cuDNN workspaces) and kernels that need temporary memory within
// one call: a grow-only buffer, valid until the next gvm_cuda_workspace call. Work on the one stream is
// ordered, so a buffer reused by the next call is never still being read.
void *gvm_cuda_workspace(size_t bytes);
#ifdef __cplusplus
}
#endif

// Blocks of `threads` covering n items (at least 1; capped so the grid fits: kernels use grid-stride loops).
static inline unsigned gvm_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32;
    return (unsigned)b;
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define GVM_CUDA_FOR(i, n)                                                                             \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                          \
         i += (int64_t)blockDim.x * gridDim.x)

#endif
