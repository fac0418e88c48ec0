// cuda/runtime.h: the CUDA runtime layer of the core, as a C API: the device check, the caching memory
// pool, copies, pinned host buffers, events and the one compute stream.
//
// Everything here exists only in builds with GVM_HAVE_CUDA. Code outside core/ reaches it through
// core/device.h, which also works (with a clear error) in CPU-only builds.
//
// Rules:
//  * gvm_cuda_init() is the only entry that may fail softly: on a machine without a usable GPU it returns
//    GVM_ERR_DEVICE with a message saying why. No cuBLAS/cuDNN call, and no allocation, happens before it
//    succeeded; every other function aborts (file:line) when called without it.
//  * All work goes to one stream (gvm_cuda_stream()), so kernels, copies and cuBLAS calls are ordered
//    without events; device-to-host copies synchronise that stream before returning.
//  * Memory comes from a caching pool: freed blocks are kept by size class and handed out again, so a
//    training loop that allocates the same sizes each step makes no cudaMalloc call after the first step.
#ifndef GVM_CUDA_RUNTIME_H
#define GVM_CUDA_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Check once that a CUDA device is usable (driver present, device 0 answers). Idempotent.
gvm_status gvm_cuda_init(void);
bool gvm_cuda_ready(void);  // gvm_cuda_init() has succeeded
// "NVIDIA H100 80GB HBM3, compute 9.0, 132 SMs, driver 13.0, runtime 13.0" (after init).
const char *gvm_cuda_device_description(void);
int gvm_cuda_compute_capability(void);  // e.g. 90

// ---- the caching pool ----------------------------------------------------------------------------------
void *gvm_cuda_malloc(size_t bytes);  // 256-byte aligned; aborts with a message when the card is full
void gvm_cuda_free(void *ptr);        // back to the pool; NULL is fine
typedef struct gvm_cuda_pool_stats {
    size_t bytes_in_use;     // handed out and not yet freed
    size_t bytes_reserved;   // obtained from cudaMalloc (in use + cached)
    size_t peak_in_use;
    uint64_t cuda_malloc_calls;  // how many times the pool went to cudaMalloc
} gvm_cuda_pool_stats;
gvm_cuda_pool_stats gvm_cuda_pool_get_stats(void);
void gvm_cuda_pool_release_cached(void);  // return cached blocks to the driver

// ---- copies and fills (on the compute stream) ------------------------------------------------------------
void gvm_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes);  // async if src is pinned
void gvm_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes);  // returns when dst holds the data
void gvm_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes);
void gvm_cuda_memset0(void *ptr, size_t bytes);
void gvm_cuda_fill_f32(float *ptr, int64_t n, float value);
void gvm_cuda_add_inplace_f32(float *dst, const float *src, int64_t n);  // dst[i] += src[i]
void gvm_cuda_synchronize(void);  // wait for all work on the compute stream

// ---- pinned host memory (fast, asynchronous host-to-device copies for the loader) -----------------------
void *gvm_cuda_host_alloc(size_t bytes);
void gvm_cuda_host_free(void *ptr);

// ---- events (timing and cross-thread ordering) -----------------------------------------------------------
typedef struct gvm_cuda_event gvm_cuda_event;
gvm_cuda_event *gvm_cuda_event_new(void);
void gvm_cuda_event_free(gvm_cuda_event *ev);
void gvm_cuda_event_record(gvm_cuda_event *ev);            // on the compute stream
void gvm_cuda_event_wait(gvm_cuda_event *ev);              // host waits
float gvm_cuda_event_elapsed_ms(gvm_cuda_event *start, gvm_cuda_event *end);

// Peak device memory reported by the driver (cudaMemGetInfo: total - free), in bytes.
size_t gvm_cuda_device_memory_used(void);

#ifdef __cplusplus
}
#endif

#endif
