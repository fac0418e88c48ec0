// dtype.h: element types and devices of tensors.
#ifndef GVM_DTYPE_H
#define GVM_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gvm_dtype {
    GVM_F32 = 0,
    GVM_F16,
    GVM_BF16,
    GVM_I32,
    GVM_I64,
    GVM_U8,
    GVM_BOOL,   // one byte per element, 0 or 1
    GVM_I16,    // codec codes in datasets
    GVM_DTYPE_COUNT
} gvm_dtype;

// Devices. The CPU backend is the reference; the CUDA slot is filled by core/cuda/ when built.
typedef enum gvm_device {
    GVM_DEVICE_CPU = 0,
    GVM_DEVICE_CUDA,
    GVM_DEVICE_COUNT
} gvm_device;

size_t gvm_dtype_size(gvm_dtype dtype);
const char *gvm_dtype_name(gvm_dtype dtype);          // "f32", "bf16", ...
const char *gvm_dtype_safetensors_name(gvm_dtype dtype);  // "F32", "BF16", ... as safetensors spells them
// Parse a safetensors dtype string; returns false when it is not one gvm stores.
bool gvm_dtype_from_safetensors_name(const char *name, gvm_dtype *out);
bool gvm_dtype_is_float(gvm_dtype dtype);
bool gvm_dtype_is_integer(gvm_dtype dtype);   // i16/i32/i64/u8/bool
const char *gvm_device_name(gvm_device device);

#ifdef __cplusplus
}
#endif

#endif
