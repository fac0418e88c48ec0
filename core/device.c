// device.c: device-generic memory (see device.h). The CUDA branches forward to core/cuda/runtime.h.
#include "core/device.h"

#include <stdlib.h>
#include <string.h>

#ifdef GVM_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

#define CPU_ALIGN 64

bool gvm_device_compiled(gvm_device device) {
#ifdef GVM_HAVE_CUDA
    return device == GVM_DEVICE_CPU || device == GVM_DEVICE_CUDA;
#else
    return device == GVM_DEVICE_CPU;
#endif
}

gvm_status gvm_device_init(gvm_device device) {
    if (device == GVM_DEVICE_CPU) return GVM_OK;
    if (device != GVM_DEVICE_CUDA) return gvm_error_set(GVM_ERR_DEVICE, "unknown device %d", (int)device);
#ifdef GVM_HAVE_CUDA
    return gvm_cuda_init();
#else
    return gvm_error_set(GVM_ERR_DEVICE,
                         "this gvm was built without the CUDA backend; rebuild with nvcc installed "
                         "(cmake -DGVM_CUDA=ON) or use the CPU (--device cpu)");
#endif
}

gvm_status gvm_device_parse(const char *name, gvm_device *out) {
    if (name && strcmp(name, "cpu") == 0) {
        *out = GVM_DEVICE_CPU;
        return GVM_OK;
    }
    if (name && strcmp(name, "cuda") == 0) {
        *out = GVM_DEVICE_CUDA;
        return GVM_OK;
    }
    return gvm_error_set(GVM_ERR_INVALID, "unknown device '%s': use cpu or cuda", name ? name : "(null)");
}

const char *gvm_device_description(gvm_device device) {
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) return gvm_cuda_device_description();
#endif
    return gvm_device_name(device);
}

// An internal error: device memory was asked for before gvm_device_init() succeeded, or in a CPU build.
static void no_backend(gvm_device device, const char *what) {
    gvm_fatal(__FILE__, __LINE__, "%s on device %s, which this build or machine cannot use", what,
              gvm_device_name(device));
}

void *gvm_device_alloc(gvm_device device, size_t bytes) {
    if (device == GVM_DEVICE_CPU) {
        void *p = NULL;
        size_t n = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
        if (posix_memalign(&p, CPU_ALIGN, n ? n : CPU_ALIGN) != 0 || !p)
            gvm_fatal(__FILE__, __LINE__, "out of memory allocating %zu bytes", bytes);
        return p;
    }
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) return gvm_cuda_malloc(bytes);
#endif
    no_backend(device, "gvm_device_alloc");
    return NULL;
}

void gvm_device_free(gvm_device device, void *ptr) {
    if (!ptr) return;
    if (device == GVM_DEVICE_CPU) {
        free(ptr);
        return;
    }
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) {
        gvm_cuda_free(ptr);
        return;
    }
#endif
    no_backend(device, "gvm_device_free");
}

void gvm_device_memset0(gvm_device device, void *ptr, size_t bytes) {
    if (!bytes) return;
    if (device == GVM_DEVICE_CPU) {
        memset(ptr, 0, bytes);
        return;
    }
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) {
        gvm_cuda_memset0(ptr, bytes);
        return;
    }
#endif
    no_backend(device, "gvm_device_memset0");
}

void gvm_device_fill_f32(gvm_device device, float *ptr, int64_t n, float value) {
    if (device == GVM_DEVICE_CPU) {
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (int64_t i = 0; i < n; i++) ptr[i] = value;
        return;
    }
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) {
        gvm_cuda_fill_f32(ptr, n, value);
        return;
    }
#endif
    no_backend(device, "gvm_device_fill_f32");
}

void gvm_device_add_f32(gvm_device device, float *dst, const float *src, int64_t n) {
    if (device == GVM_DEVICE_CPU) {
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (int64_t i = 0; i < n; i++) dst[i] += src[i];
        return;
    }
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) {
        gvm_cuda_add_inplace_f32(dst, src, n);
        return;
    }
#endif
    no_backend(device, "gvm_device_add_f32");
}

void gvm_device_copy(void *dst, gvm_device dst_device, const void *src, gvm_device src_device, size_t bytes) {
    if (!bytes) return;
    if (dst_device == GVM_DEVICE_CPU && src_device == GVM_DEVICE_CPU) {
        memmove(dst, src, bytes);
        return;
    }
#ifdef GVM_HAVE_CUDA
    if (dst_device == GVM_DEVICE_CUDA && src_device == GVM_DEVICE_CPU) {
        gvm_cuda_memcpy_h2d(dst, src, bytes);
        return;
    }
    if (dst_device == GVM_DEVICE_CPU && src_device == GVM_DEVICE_CUDA) {
        gvm_cuda_memcpy_d2h(dst, src, bytes);
        return;
    }
    if (dst_device == GVM_DEVICE_CUDA && src_device == GVM_DEVICE_CUDA) {
        gvm_cuda_memcpy_d2d(dst, src, bytes);
        return;
    }
#endif
    no_backend(dst_device == GVM_DEVICE_CPU ? src_device : dst_device, "gvm_device_copy");
}

void gvm_device_synchronize(gvm_device device) {
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) gvm_cuda_synchronize();
#else
    (void)device;
#endif
}
