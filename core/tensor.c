// tensor.c: creation, views bookkeeping and element access for gvm_tensor.
#include "core/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/device.h"
#include "core/error.h"
#include "core/half.h"

#ifdef GVM_HAVE_CUDA
// From core/cuda/elementwise.h: dtype conversion on the device.
void gvm_cuda_cast(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n);
#endif

int64_t gvm_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static void set_shape(gvm_tensor *t, gvm_dtype dtype, int ndim, const int64_t *shape) {
    GVM_CHECK(ndim >= 0 && ndim <= GVM_MAX_DIMS, "tensor rank %d outside 0..%d", ndim, GVM_MAX_DIMS);
    GVM_CHECK(dtype < GVM_DTYPE_COUNT, "bad dtype %d", (int)dtype);
    t->dtype = dtype;
    t->device = GVM_DEVICE_CPU;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        GVM_CHECK(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
    }
    t->numel = gvm_shape_numel(ndim, shape);
}

size_t gvm_tensor_nbytes(const gvm_tensor *t) { return (size_t)t->numel * gvm_dtype_size(t->dtype); }

gvm_tensor *gvm_tensor_new_on(gvm_device device, gvm_dtype dtype, int ndim, const int64_t *shape) {
    gvm_tensor *t = GVM_CALLOC(1, sizeof *t);
    set_shape(t, dtype, ndim, shape);
    t->device = device;
    size_t bytes = gvm_tensor_nbytes(t);
    t->data = gvm_device_alloc(device, bytes);
    gvm_device_memset0(device, t->data, bytes);
    t->flags = GVM_TENSOR_HEAP_STRUCT | GVM_TENSOR_OWNS_DATA;
    return t;
}

gvm_tensor *gvm_tensor_new(gvm_dtype dtype, int ndim, const int64_t *shape) {
    return gvm_tensor_new_on(GVM_DEVICE_CPU, dtype, ndim, shape);
}

gvm_tensor *gvm_tensor_wrap_on(gvm_device device, gvm_dtype dtype, int ndim, const int64_t *shape, void *data) {
    gvm_tensor *t = GVM_CALLOC(1, sizeof *t);
    set_shape(t, dtype, ndim, shape);
    t->device = device;
    t->data = data;
    t->flags = GVM_TENSOR_HEAP_STRUCT;
    return t;
}

gvm_tensor *gvm_tensor_wrap(gvm_dtype dtype, int ndim, const int64_t *shape, void *data) {
    return gvm_tensor_wrap_on(GVM_DEVICE_CPU, dtype, ndim, shape, data);
}

gvm_tensor *gvm_tensor_to(const gvm_tensor *t, gvm_device device) {
    gvm_tensor *out = gvm_tensor_new_on(device, t->dtype, t->ndim, t->shape);
    gvm_device_copy(out->data, device, t->data, t->device, gvm_tensor_nbytes(t));
    out->name = t->name;
    return out;
}

void gvm_tensor_free(gvm_tensor *t) {
    if (!t) return;
    GVM_CHECK(t->flags & GVM_TENSOR_HEAP_STRUCT, "gvm_tensor_free on an arena tensor");
    if (t->grad && (t->grad->flags & GVM_TENSOR_HEAP_STRUCT)) gvm_tensor_free(t->grad);
    if (t->flags & GVM_TENSOR_OWNS_DATA) gvm_device_free(t->device, t->data);
    free(t);
}

gvm_tensor *gvm_tensor_empty(gvm_ctx *ctx, gvm_dtype dtype, int ndim, const int64_t *shape) {
    gvm_tensor *t = gvm_arena_calloc(&ctx->arena, sizeof *t);  // the struct is host memory
    set_shape(t, dtype, ndim, shape);
    t->device = ctx->device;
    t->data = gvm_arena_alloc(gvm_ctx_data_arena(ctx), gvm_tensor_nbytes(t));
    return t;
}

gvm_tensor *gvm_tensor_zeros(gvm_ctx *ctx, gvm_dtype dtype, int ndim, const int64_t *shape) {
    gvm_tensor *t = gvm_tensor_empty(ctx, dtype, ndim, shape);
    gvm_device_memset0(t->device, t->data, gvm_tensor_nbytes(t));
    return t;
}

gvm_tensor *gvm_tensor_from_f32(gvm_ctx *ctx, const float *values, int ndim, const int64_t *shape) {
    gvm_tensor *t = gvm_tensor_empty(ctx, GVM_F32, ndim, shape);
    gvm_device_copy(t->data, t->device, values, GVM_DEVICE_CPU, gvm_tensor_nbytes(t));
    return t;
}

gvm_tensor *gvm_tensor_empty_like(gvm_ctx *ctx, const gvm_tensor *like) {
    return gvm_tensor_empty(ctx, like->dtype, like->ndim, like->shape);
}

bool gvm_tensor_same_shape(const gvm_tensor *a, const gvm_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int gvm_tensor_axis(const gvm_tensor *t, int axis) {
    int a = axis < 0 ? axis + t->ndim : axis;
    GVM_CHECK(a >= 0 && a < t->ndim, "axis %d out of range for a rank-%d tensor", axis, t->ndim);
    return a;
}

const char *gvm_shape_str(int ndim, const int64_t *shape, char *buf, size_t buf_size) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, buf_size - off, "[");
    for (int i = 0; i < ndim && off < buf_size; i++)
        off += (size_t)snprintf(buf + off, buf_size - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < buf_size) snprintf(buf + off, buf_size - off, "]");
    return buf;
}

// Host access to a tensor's elements: the typed accessors abort on device memory, which the host cannot
// read (copy it with gvm_tensor_to first).
#define CHECK_HOST(t) GVM_CHECK((t)->device == GVM_DEVICE_CPU, "host access to a tensor on %s", gvm_device_name((t)->device))

float *gvm_tensor_f32(const gvm_tensor *t) {
    CHECK_HOST(t);
    GVM_CHECK(t->dtype == GVM_F32, "expected an f32 tensor, got %s", gvm_dtype_name(t->dtype));
    return (float *)t->data;
}
int32_t *gvm_tensor_i32(const gvm_tensor *t) {
    CHECK_HOST(t);
    GVM_CHECK(t->dtype == GVM_I32, "expected an i32 tensor, got %s", gvm_dtype_name(t->dtype));
    return (int32_t *)t->data;
}
int64_t *gvm_tensor_i64(const gvm_tensor *t) {
    CHECK_HOST(t);
    GVM_CHECK(t->dtype == GVM_I64, "expected an i64 tensor, got %s", gvm_dtype_name(t->dtype));
    return (int64_t *)t->data;
}
uint8_t *gvm_tensor_u8(const gvm_tensor *t) {
    CHECK_HOST(t);
    GVM_CHECK(t->dtype == GVM_U8 || t->dtype == GVM_BOOL, "expected a u8/bool tensor, got %s",
              gvm_dtype_name(t->dtype));
    return (uint8_t *)t->data;
}

int64_t gvm_tensor_get_index(const gvm_tensor *t, int64_t i) {
    CHECK_HOST(t);
    switch (t->dtype) {
    case GVM_I16: return ((const int16_t *)t->data)[i];
    case GVM_I32: return ((const int32_t *)t->data)[i];
    case GVM_I64: return ((const int64_t *)t->data)[i];
    case GVM_U8:
    case GVM_BOOL: return ((const uint8_t *)t->data)[i];
    default: gvm_fatal(__FILE__, __LINE__, "expected an integer tensor, got %s", gvm_dtype_name(t->dtype));
    }
}

void gvm_tensor_fill(gvm_tensor *t, float value) {
    GVM_CHECK(t->dtype == GVM_F32, "gvm_tensor_fill: expected an f32 tensor, got %s", gvm_dtype_name(t->dtype));
    gvm_device_fill_f32(t->device, t->data, t->numel, value);
}

static double load_as_double(const void *data, gvm_dtype dtype, int64_t i) {
    switch (dtype) {
    case GVM_F32: return ((const float *)data)[i];
    case GVM_F16: return gvm_f16_to_f32(((const uint16_t *)data)[i]);
    case GVM_BF16: return gvm_bf16_to_f32(((const uint16_t *)data)[i]);
    case GVM_I16: return ((const int16_t *)data)[i];
    case GVM_I32: return ((const int32_t *)data)[i];
    case GVM_I64: return (double)((const int64_t *)data)[i];
    case GVM_U8: return ((const uint8_t *)data)[i];
    case GVM_BOOL: return ((const uint8_t *)data)[i] != 0;
    default: return 0;
    }
}

// Integer targets saturate (NaN -> 0): a plain C cast of an out-of-range float is undefined.
static double clamp_to(double v, double lo, double hi) { return v != v ? 0.0 : v < lo ? lo : v > hi ? hi : v; }

static void store_from_double(void *data, gvm_dtype dtype, int64_t i, double v) {
    if (gvm_dtype_is_integer(dtype) && dtype != GVM_BOOL) {
        switch (dtype) {
        case GVM_I16: v = clamp_to(v, INT16_MIN, INT16_MAX); break;
        case GVM_I32: v = clamp_to(v, INT32_MIN, INT32_MAX); break;
        case GVM_I64: v = clamp_to(v, -9223372036854775808.0, 9223372036854774784.0); break;
        case GVM_U8: v = clamp_to(v, 0, 255); break;
        default: break;
        }
    }
    switch (dtype) {
    case GVM_F32: ((float *)data)[i] = (float)v; break;
    case GVM_F16: ((uint16_t *)data)[i] = gvm_f32_to_f16((float)v); break;
    case GVM_BF16: ((uint16_t *)data)[i] = gvm_f32_to_bf16((float)v); break;
    case GVM_I16: ((int16_t *)data)[i] = (int16_t)v; break;
    case GVM_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    case GVM_I64: ((int64_t *)data)[i] = (int64_t)v; break;
    case GVM_U8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case GVM_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    default: break;
    }
}

void gvm_tensor_copy(gvm_tensor *dst, const gvm_tensor *src) {
    GVM_CHECK(dst->numel == src->numel, "copy of %lld elements into %lld", (long long)src->numel,
              (long long)dst->numel);
    if (dst->dtype == src->dtype) {
        gvm_device_copy(dst->data, dst->device, src->data, src->device, gvm_tensor_nbytes(src));
        return;
    }
    if (dst->device != GVM_DEVICE_CPU || src->device != GVM_DEVICE_CPU) {
#ifdef GVM_HAVE_CUDA
        if (dst->device == GVM_DEVICE_CUDA && src->device == GVM_DEVICE_CUDA) {
            gvm_cuda_cast(src->data, src->dtype, dst->data, dst->dtype, src->numel);
            return;
        }
#endif
        gvm_fatal(__FILE__, __LINE__, "gvm_tensor_copy: converting %s to %s between devices %s and %s: copy, then "
                  "convert on one device", gvm_dtype_name(src->dtype), gvm_dtype_name(dst->dtype),
                  gvm_device_name(src->device), gvm_device_name(dst->device));
    }
    if (src->dtype == GVM_F32 && dst->dtype == GVM_F16) {
        gvm_f32_to_f16_array(src->data, dst->data, (size_t)src->numel);
    } else if (src->dtype == GVM_F32 && dst->dtype == GVM_BF16) {
        gvm_f32_to_bf16_array(src->data, dst->data, (size_t)src->numel);
    } else if (src->dtype == GVM_F16 && dst->dtype == GVM_F32) {
        gvm_f16_to_f32_array(src->data, dst->data, (size_t)src->numel);
    } else if (src->dtype == GVM_BF16 && dst->dtype == GVM_F32) {
        gvm_bf16_to_f32_array(src->data, dst->data, (size_t)src->numel);
    } else {
        // i64 values above 2^53 would lose bits through double; no caller converts such values.
        for (int64_t i = 0; i < src->numel; i++)
            store_from_double(dst->data, dst->dtype, i, load_as_double(src->data, src->dtype, i));
    }
}

void gvm_tensor_print(FILE *f, const gvm_tensor *t, const char *label) {
    char buf[128];
    fprintf(f, "%s: %s %s on %s", label ? label : "tensor", gvm_dtype_name(t->dtype),
            gvm_shape_str(t->ndim, t->shape, buf, sizeof buf), gvm_device_name(t->device));
    int64_t n = t->numel < 8 ? t->numel : 8;
    uint64_t head[8];  // the first values, copied to the host
    gvm_device_copy(head, GVM_DEVICE_CPU, t->data, t->device, (size_t)n * gvm_dtype_size(t->dtype));
    fprintf(f, " {");
    for (int64_t i = 0; i < n; i++) fprintf(f, i ? ", %g" : "%g", load_as_double(head, t->dtype, i));
    fprintf(f, t->numel > n ? ", ...}\n" : "}\n");
}
