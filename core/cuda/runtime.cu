// cuda/runtime.cu: the device check, the compute stream, library handles, the caching memory pool,
// copies, pinned host memory and events (see runtime.h).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/common.cuh"

// ---- device check and stream -----------------------------------------------------------------------------
static bool g_ready;
static cudaStream_t g_stream;
static char g_description[320];
static int g_cc;
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;

extern "C" gvm_status gvm_cuda_init(void) {
    pthread_mutex_lock(&g_init_lock);
    if (g_ready) {
        pthread_mutex_unlock(&g_init_lock);
        return GVM_OK;
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    gvm_status st = GVM_OK;
    if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice || err == cudaErrorInitializationError) {
        st = gvm_error_set(GVM_ERR_DEVICE,
                           "no usable CUDA GPU on this machine (%s: %s); run on a machine with an NVIDIA GPU "
                           "and driver, or use the CPU (--device cpu)",
                           cudaGetErrorName(err), cudaGetErrorString(err));
    } else if (err != cudaSuccess) {
        st = gvm_error_set(GVM_ERR_DEVICE, "the CUDA runtime could not list devices (%s: %s)",
                           cudaGetErrorName(err), cudaGetErrorString(err));
    } else if (count == 0) {
        st = gvm_error_set(GVM_ERR_DEVICE, "no CUDA device found; use the CPU (--device cpu)");
    }
    if (st == GVM_OK) {
        cudaDeviceProp prop;
        err = cudaSetDevice(0);
        if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, 0);
        if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
        if (err != cudaSuccess) {
            st = gvm_error_set(GVM_ERR_DEVICE, "CUDA device 0 is not usable (%s: %s)", cudaGetErrorName(err),
                               cudaGetErrorString(err));
        } else {
            int driver = 0, runtime = 0;
            cudaDriverGetVersion(&driver);
            cudaRuntimeGetVersion(&runtime);
            g_cc = prop.major * 10 + prop.minor;
            snprintf(g_description, sizeof g_description,
                     "%.200s, compute %d.%d, %d SMs, %.1f GiB, driver %d.%d, runtime %d.%d", prop.name, prop.major,
                     prop.minor, prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024),
                     driver / 1000, (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10);
            g_ready = true;
        }
    }
    pthread_mutex_unlock(&g_init_lock);
    return st;
}

extern "C" bool gvm_cuda_ready(void) { return g_ready; }
extern "C" const char *gvm_cuda_device_description(void) { return g_ready ? g_description : "(no CUDA device)"; }
extern "C" int gvm_cuda_compute_capability(void) { return g_cc; }

static void require_ready(const char *what) {
    if (!g_ready) gvm_fatal(__FILE__, __LINE__, "%s called before gvm_cuda_init() succeeded", what);
}

extern "C" cudaStream_t gvm_cuda_stream(void) {
    require_ready("gvm_cuda_stream");
    return g_stream;
}

// ---- library handles (created on first use, after the device check) -------------------------------------
static cublasHandle_t g_cublas;
static cublasLtHandle_t g_cublaslt;
static cudnnHandle_t g_cudnn;

extern "C" cublasHandle_t gvm_cuda_cublas(void) {
    require_ready("gvm_cuda_cublas");
    if (!g_cublas) {
        GVM_CUBLAS_CHECK(cublasCreate(&g_cublas));
        GVM_CUBLAS_CHECK(cublasSetStream(g_cublas, g_stream));
        // f32 GEMMs stay exact f32 (no TF32): the CPU parity tests hold them to 1e-5. Reduced precision is
        // asked for explicitly through autocast (bf16/f16 inputs, f32 accumulation).
        GVM_CUBLAS_CHECK(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
    }
    return g_cublas;
}

extern "C" cublasLtHandle_t gvm_cuda_cublaslt(void) {
    require_ready("gvm_cuda_cublaslt");
    if (!g_cublaslt) GVM_CUBLAS_CHECK(cublasLtCreate(&g_cublaslt));
    return g_cublaslt;
}

extern "C" cudnnHandle_t gvm_cuda_cudnn(void) {
    require_ready("gvm_cuda_cudnn");
    if (!g_cudnn) {
        GVM_CUDNN_CHECK(cudnnCreate(&g_cudnn));
        GVM_CUDNN_CHECK(cudnnSetStream(g_cudnn, g_stream));
    }
    return g_cudnn;
}

static void *g_workspace;
static size_t g_workspace_bytes;

extern "C" void *gvm_cuda_workspace(size_t bytes) {
    if (bytes <= g_workspace_bytes) return g_workspace;
    // The old buffer may still be read by queued work; the pool hands it out again only to later work
    // on the same stream, which runs after that work.
    gvm_cuda_free(g_workspace);
    size_t grow = g_workspace_bytes * 2;
    g_workspace_bytes = bytes > grow ? bytes : grow;
    g_workspace = gvm_cuda_malloc(g_workspace_bytes);
    return g_workspace;
}

// ---- the caching pool ------------------------------------------------------------------------------------
// Sizes are rounded to a class: powers of two from 512 B up to 1 MiB, then multiples of 2 MiB. A freed
// block goes on its class's free list; an allocation of the same class takes it back. Work is ordered on
// the one stream, so a block freed by the host while a queued kernel still uses it is only handed to work
// queued after that kernel. A hash table maps live pointers to their class.
#define POOL_SMALL_MAX ((size_t)1 << 20)
#define POOL_LARGE_STEP ((size_t)2 << 20)

typedef struct pool_block {
    void *ptr;
    size_t size;
    struct pool_block *next;
} pool_block;

typedef struct free_list {
    size_t size;
    pool_block *head;
} free_list;

static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static free_list *g_free;  // one per size class seen, unsorted (few classes in practice)
static int g_free_len, g_free_cap;
static pool_block **g_live;  // open addressing by pointer
static size_t g_live_cap, g_live_len;
static gvm_cuda_pool_stats g_stats;

static size_t size_class(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= POOL_SMALL_MAX) {
        size_t s = 512;
        while (s < bytes) s <<= 1;
        return s;
    }
    return (bytes + POOL_LARGE_STEP - 1) / POOL_LARGE_STEP * POOL_LARGE_STEP;
}

static size_t ptr_hash(const void *p, size_t cap) { return (((uintptr_t)p >> 8) * 11400714819323198485ull) & (cap - 1); }

static void live_insert(pool_block *b);
static void live_grow(void) {
    pool_block **old = g_live;
    size_t old_cap = g_live_cap;
    g_live_cap = old_cap ? old_cap * 2 : 1024;
    g_live = (pool_block **)calloc(g_live_cap, sizeof *g_live);
    GVM_CHECK(g_live, "out of host memory in the CUDA pool");
    g_live_len = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) live_insert(old[i]);
    free(old);
}

static void live_insert(pool_block *b) {
    if ((g_live_len + 1) * 2 > g_live_cap) live_grow();
    size_t i = ptr_hash(b->ptr, g_live_cap);
    while (g_live[i]) i = (i + 1) & (g_live_cap - 1);
    g_live[i] = b;
    g_live_len++;
}

static pool_block *live_remove(void *ptr) {
    if (!g_live_cap) return NULL;
    size_t i = ptr_hash(ptr, g_live_cap);
    while (g_live[i] && g_live[i]->ptr != ptr) i = (i + 1) & (g_live_cap - 1);
    pool_block *b = g_live[i];
    if (!b) return NULL;
    g_live[i] = NULL;
    g_live_len--;
    // Re-insert the rest of the cluster so lookups that probed past this slot still find their block.
    for (size_t j = (i + 1) & (g_live_cap - 1); g_live[j]; j = (j + 1) & (g_live_cap - 1)) {
        pool_block *moved = g_live[j];
        g_live[j] = NULL;
        g_live_len--;
        live_insert(moved);
    }
    return b;
}

static free_list *free_list_for(size_t size) {
    for (int i = 0; i < g_free_len; i++)
        if (g_free[i].size == size) return &g_free[i];
    if (g_free_len == g_free_cap) {
        g_free_cap = g_free_cap ? g_free_cap * 2 : 64;
        g_free = (free_list *)realloc(g_free, (size_t)g_free_cap * sizeof *g_free);
        GVM_CHECK(g_free, "out of host memory in the CUDA pool");
    }
    g_free[g_free_len] = (free_list){size, NULL};
    return &g_free[g_free_len++];
}

static void release_cached_locked(void) {
    GVM_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    for (int i = 0; i < g_free_len; i++) {
        pool_block *b = g_free[i].head;
        while (b) {
            pool_block *next = b->next;
            GVM_CUDA_CHECK(cudaFree(b->ptr));
            g_stats.bytes_reserved -= b->size;
            free(b);
            b = next;
        }
        g_free[i].head = NULL;
    }
}

extern "C" void *gvm_cuda_malloc(size_t bytes) {
    require_ready("gvm_cuda_malloc");
    size_t size = size_class(bytes);
    pthread_mutex_lock(&g_pool_lock);
    free_list *fl = free_list_for(size);
    pool_block *b = fl->head;
    if (b) {
        fl->head = b->next;
    } else {
        void *ptr = NULL;
        cudaError_t err = cudaMalloc(&ptr, size);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();  // clear the sticky-free error state before retrying
            release_cached_locked();
            err = cudaMalloc(&ptr, size);
        }
        if (err != cudaSuccess) {
            gvm_cuda_pool_stats s = g_stats;
            pthread_mutex_unlock(&g_pool_lock);
            gvm_fatal(__FILE__, __LINE__,
                      "out of GPU memory: cannot allocate %.1f MiB (%.1f MiB in use, %.1f MiB reserved by gvm): %s; "
                      "lower the batch size or sequence length",
                      (double)size / 1048576.0, (double)s.bytes_in_use / 1048576.0,
                      (double)s.bytes_reserved / 1048576.0, cudaGetErrorString(err));
        }
        b = (pool_block *)malloc(sizeof *b);
        GVM_CHECK(b, "out of host memory in the CUDA pool");
        b->ptr = ptr;
        b->size = size;
        g_stats.bytes_reserved += size;
        g_stats.cuda_malloc_calls++;
    }
    b->next = NULL;
    live_insert(b);
    g_stats.bytes_in_use += size;
    if (g_stats.bytes_in_use > g_stats.peak_in_use) g_stats.peak_in_use = g_stats.bytes_in_use;
    pthread_mutex_unlock(&g_pool_lock);
    return b->ptr;
}

extern "C" void gvm_cuda_free(void *ptr) {
    if (!ptr) return;
    pthread_mutex_lock(&g_pool_lock);
    pool_block *b = live_remove(ptr);
    if (!b) {
        pthread_mutex_unlock(&g_pool_lock);
        gvm_fatal(__FILE__, __LINE__, "gvm_cuda_free of a pointer the pool did not hand out (%p)", ptr);
    }
    g_stats.bytes_in_use -= b->size;
    free_list *fl = free_list_for(b->size);
    b->next = fl->head;
    fl->head = b;
    pthread_mutex_unlock(&g_pool_lock);
}

extern "C" gvm_cuda_pool_stats gvm_cuda_pool_get_stats(void) {
    pthread_mutex_lock(&g_pool_lock);
    gvm_cuda_pool_stats s = g_stats;
    pthread_mutex_unlock(&g_pool_lock);
    return s;
}

extern "C" void gvm_cuda_pool_release_cached(void) {
    if (!g_ready) return;
    pthread_mutex_lock(&g_pool_lock);
    release_cached_locked();
    pthread_mutex_unlock(&g_pool_lock);
}

// ---- copies and fills ------------------------------------------------------------------------------------
extern "C" void gvm_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    require_ready("gvm_cuda_memcpy_h2d");
    // From pageable memory the runtime stages the copy and returns once src may be reused; from pinned
    // memory it is truly asynchronous, and the caller must keep src alive until the stream reaches it.
    GVM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream));
}

extern "C" void gvm_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    require_ready("gvm_cuda_memcpy_d2h");
    GVM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream));
    GVM_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

extern "C" void gvm_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    require_ready("gvm_cuda_memcpy_d2d");
    GVM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
}

extern "C" void gvm_cuda_memset0(void *ptr, size_t bytes) {
    if (!bytes) return;
    require_ready("gvm_cuda_memset0");
    GVM_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, g_stream));
}

__global__ void fill_f32_kernel(float *p, int64_t n, float v) {
    GVM_CUDA_FOR(i, n) p[i] = v;
}

__global__ void add_inplace_f32_kernel(float *dst, const float *src, int64_t n) {
    GVM_CUDA_FOR(i, n) dst[i] += src[i];
}

extern "C" void gvm_cuda_fill_f32(float *ptr, int64_t n, float value) {
    if (n <= 0) return;
    fill_f32_kernel<<<gvm_cuda_blocks(n, 256), 256, 0, gvm_cuda_stream()>>>(ptr, n, value);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_add_inplace_f32(float *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    add_inplace_f32_kernel<<<gvm_cuda_blocks(n, 256), 256, 0, gvm_cuda_stream()>>>(dst, src, n);
    GVM_CUDA_LAUNCH_CHECK();
}

extern "C" void gvm_cuda_synchronize(void) {
    require_ready("gvm_cuda_synchronize");
    GVM_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

// ---- pinned host memory ----------------------------------------------------------------------------------
extern "C" void *gvm_cuda_host_alloc(size_t bytes) {
    require_ready("gvm_cuda_host_alloc");
    void *p = NULL;
    GVM_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
    return p;
}

extern "C" void gvm_cuda_host_free(void *ptr) {
    if (ptr) GVM_CUDA_CHECK(cudaFreeHost(ptr));
}

// ---- events ----------------------------------------------------------------------------------------------
struct gvm_cuda_event {
    cudaEvent_t ev;
};

extern "C" gvm_cuda_event *gvm_cuda_event_new(void) {
    require_ready("gvm_cuda_event_new");
    gvm_cuda_event *e = (gvm_cuda_event *)malloc(sizeof *e);
    GVM_CHECK(e, "out of host memory");
    GVM_CUDA_CHECK(cudaEventCreate(&e->ev));
    return e;
}

extern "C" void gvm_cuda_event_free(gvm_cuda_event *e) {
    if (!e) return;
    GVM_CUDA_CHECK(cudaEventDestroy(e->ev));
    free(e);
}

extern "C" void gvm_cuda_event_record(gvm_cuda_event *e) { GVM_CUDA_CHECK(cudaEventRecord(e->ev, g_stream)); }
extern "C" void gvm_cuda_event_wait(gvm_cuda_event *e) { GVM_CUDA_CHECK(cudaEventSynchronize(e->ev)); }

extern "C" float gvm_cuda_event_elapsed_ms(gvm_cuda_event *start, gvm_cuda_event *end) {
    float ms = 0.0f;
    GVM_CUDA_CHECK(cudaEventElapsedTime(&ms, start->ev, end->ev));
    return ms;
}

extern "C" size_t gvm_cuda_device_memory_used(void) {
    require_ready("gvm_cuda_device_memory_used");
    size_t free_b = 0, total = 0;
    GVM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    return total - free_b;
}
