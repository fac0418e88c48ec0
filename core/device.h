// device.h: memory on a device, for code that does not care which: allocation, zeroing, fills and copies
// between any two devices. The CPU is always there; CUDA exists in builds with GVM_HAVE_CUDA and is
// usable once gvm_device_init(GVM_DEVICE_CUDA) has succeeded (a machine without a GPU gets a clear
// GVM_ERR_DEVICE message, never a crash).
#ifndef GVM_DEVICE_H
#define GVM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Make `device` usable (idempotent). GVM_ERR_DEVICE with a message when it is not: no GPU, no driver, a
// build without CUDA.
gvm_status gvm_device_init(gvm_device device);
// Was this build compiled with the device's backend?
bool gvm_device_compiled(gvm_device device);
// "cpu" / "cuda" -> device; GVM_ERR_INVALID naming the valid choices otherwise.
gvm_status gvm_device_parse(const char *name, gvm_device *out);
// One line about the device ("NVIDIA H100 ..., compute 9.0, ..."; the CPU: "cpu").
const char *gvm_device_description(gvm_device device);

// Memory aligned to 64 bytes (CPU) or 256 bytes (CUDA). Aborts when out of memory.
void *gvm_device_alloc(gvm_device device, size_t bytes);
void gvm_device_free(gvm_device device, void *ptr);  // NULL is fine
void gvm_device_memset0(gvm_device device, void *ptr, size_t bytes);
void gvm_device_fill_f32(gvm_device device, float *ptr, int64_t n, float value);
void gvm_device_add_f32(gvm_device device, float *dst, const float *src, int64_t n);  // dst += src
// Copy between any two devices (returns when a copy to the host has landed).
void gvm_device_copy(void *dst, gvm_device dst_device, const void *src, gvm_device src_device, size_t bytes);
// Wait until all queued work on the device is done (no-op on the CPU).
void gvm_device_synchronize(gvm_device device);

#ifdef __cplusplus
}
#endif

#endif
