// dtype.c: sizes and names of element types.
#include "core/dtype.h"

#include <string.h>

static const struct {
    size_t size;
    const char *name;
    const char *st_name;
} k_dtypes[GVM_DTYPE_COUNT] = {
    [GVM_F32] = {4, "f32", "F32"},   [GVM_F16] = {2, "f16", "F16"}, [GVM_BF16] = {2, "bf16", "BF16"},
    [GVM_I32] = {4, "i32", "I32"},   [GVM_I64] = {8, "i64", "I64"}, [GVM_U8] = {1, "u8", "U8"},
    [GVM_BOOL] = {1, "bool", "BOOL"}, [GVM_I16] = {2, "i16", "I16"},
};

size_t gvm_dtype_size(gvm_dtype dtype) { return dtype < GVM_DTYPE_COUNT ? k_dtypes[dtype].size : 0; }

const char *gvm_dtype_name(gvm_dtype dtype) {
    return dtype < GVM_DTYPE_COUNT ? k_dtypes[dtype].name : "?";
}

const char *gvm_dtype_safetensors_name(gvm_dtype dtype) {
    return dtype < GVM_DTYPE_COUNT ? k_dtypes[dtype].st_name : "?";
}

bool gvm_dtype_from_safetensors_name(const char *name, gvm_dtype *out) {
    for (int i = 0; i < GVM_DTYPE_COUNT; i++) {
        if (strcmp(name, k_dtypes[i].st_name) == 0) {
            *out = (gvm_dtype)i;
            return true;
        }
    }
    return false;
}

bool gvm_dtype_is_float(gvm_dtype dtype) {
    return dtype == GVM_F32 || dtype == GVM_F16 || dtype == GVM_BF16;
}

bool gvm_dtype_is_integer(gvm_dtype dtype) { return !gvm_dtype_is_float(dtype); }

const char *gvm_device_name(gvm_device device) {
    switch (device) {
    case GVM_DEVICE_CPU: return "cpu";
    case GVM_DEVICE_CUDA: return "cuda";
    default: return "?";
    }
}
