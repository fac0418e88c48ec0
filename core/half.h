// half.h: f32 <-> f16 (IEEE binary16) and f32 <-> bf16 conversion, round to nearest even.
// Used for f16 activation caches, bf16 checkpoints and mixed precision. NaN stays NaN, overflow goes to
// infinity, f16 subnormals are produced and read exactly.
#ifndef GVM_HALF_H
#define GVM_HALF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint16_t gvm_f32_to_f16(float f);
float gvm_f16_to_f32(uint16_t h);
uint16_t gvm_f32_to_bf16(float f);
float gvm_bf16_to_f32(uint16_t h);

void gvm_f32_to_f16_array(const float *src, uint16_t *dst, size_t n);
void gvm_f16_to_f32_array(const uint16_t *src, float *dst, size_t n);
void gvm_f32_to_bf16_array(const float *src, uint16_t *dst, size_t n);
void gvm_bf16_to_f32_array(const uint16_t *src, float *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif
