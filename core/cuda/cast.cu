// cuda/cast.cu: dtype conversion on the device (gvm_cuda_cast, declared in core/cuda/elementwise.h), equal
// to the CPU's gvm_tensor_copy conversions bit for bit. Used by tensor copies, the cast op and autocast.
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "core/cuda/common.cuh"
#include "core/cuda/elementwise.h"

#define THREADS 256

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ==== dtype conversion ====================================================================================
// The CPU (core/tensor.c: gvm_tensor_copy) converts f32 <-> f16/bf16 directly and everything else through
// double: load_as_double, saturate for integer targets (NaN -> 0), then a C cast, which truncates. Here:
//  * float -> float (f32, f16, bf16 on both sides) through a float. That is the CPU's value: f16 and bf16
//    are exact in f32 and f32 is exact in double. Only a NaN can come out of the CPU's detour through double
//    (f16 <-> bf16) with its quiet bit set, and the f16/bf16 NaN rules below set that bit anyway.
//  * anything with an integer side through double, as the CPU.
// f32 -> f16 rounds with the hardware conversion (__float2half_rn: round to nearest even, subnormals and
// overflow to inf as IEEE, so exactly half.c's result) except for NaN, which takes half.c's payload rule.
// f32 -> bf16 is half.c's integer rounding itself (three integer operations, exact by construction), and the
// widenings f16/bf16 -> f32 are half.c's bit moves.

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return __uint_as_float(sign);
        float v = (float)mant * (1.0f / 16777216.0f);  // subnormal: exactly mant * 2^-24
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

__device__ __forceinline__ uint16_t f32_to_f16(float f) {
    uint32_t x = __float_as_uint(f), abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(((x >> 16) & 0x8000u) | 0x7c00u | 0x200u | ((abs >> 13) & 0x3ffu));
    return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
    uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ bool dtype_is_float(int dt) { return dt == GVM_F32 || dt == GVM_F16 || dt == GVM_BF16; }

// A float-typed element as f32 (exact).
__device__ __forceinline__ float load_float(const void *src, int dt, int64_t i) {
    switch (dt) {
    case GVM_F32: return ((const float *)src)[i];
    case GVM_F16: return f16_to_f32(((const uint16_t *)src)[i]);
    default: return __uint_as_float((uint32_t)((const uint16_t *)src)[i] << 16);  // GVM_BF16
    }
}

__device__ __forceinline__ void store_float(void *dst, int dt, int64_t i, float v) {
    switch (dt) {
    case GVM_F32: ((float *)dst)[i] = v; break;
    case GVM_F16: ((uint16_t *)dst)[i] = f32_to_f16(v); break;
    default: ((uint16_t *)dst)[i] = f32_to_bf16(v); break;  // GVM_BF16
    }
}

// core/tensor.c's load_as_double.
__device__ __forceinline__ double load_as_double(const void *src, int dt, int64_t i) {
    switch (dt) {
    case GVM_F32: return ((const float *)src)[i];
    case GVM_F16: return f16_to_f32(((const uint16_t *)src)[i]);
    case GVM_BF16: return __uint_as_float((uint32_t)((const uint16_t *)src)[i] << 16);
    case GVM_I16: return ((const int16_t *)src)[i];
    case GVM_I32: return ((const int32_t *)src)[i];
    case GVM_I64: return (double)((const int64_t *)src)[i];
    case GVM_U8: return ((const uint8_t *)src)[i];
    case GVM_BOOL: return ((const uint8_t *)src)[i] != 0;
    default: return 0;
    }
}

// Saturate to [lo, hi], NaN -> 0 (core/tensor.c's clamp_to).
__device__ __forceinline__ double clamp_to(double v, double lo, double hi) {
    return v != v ? 0.0 : v < lo ? lo : v > hi ? hi : v;
}

// core/tensor.c's store_from_double.
__device__ __forceinline__ void store_from_double(void *dst, int dt, int64_t i, double v) {
    switch (dt) {
    case GVM_F32: ((float *)dst)[i] = (float)v; break;
    case GVM_F16: ((uint16_t *)dst)[i] = f32_to_f16((float)v); break;
    case GVM_BF16: ((uint16_t *)dst)[i] = f32_to_bf16((float)v); break;
    case GVM_I16: ((int16_t *)dst)[i] = (int16_t)clamp_to(v, -32768.0, 32767.0); break;
    case GVM_I32: ((int32_t *)dst)[i] = (int32_t)clamp_to(v, -2147483648.0, 2147483647.0); break;
    case GVM_I64: ((int64_t *)dst)[i] = (int64_t)clamp_to(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case GVM_U8: ((uint8_t *)dst)[i] = (uint8_t)clamp_to(v, 0.0, 255.0); break;
    case GVM_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
    default: break;
    }
}

// src [n] -> dst [n] for any pair of dtypes (the dtype switches are uniform across the grid).
__global__ void cast_kernel(const void *__restrict__ src, int sdt, void *__restrict__ dst, int ddt, int64_t n) {
    const bool floats = dtype_is_float(sdt) && dtype_is_float(ddt);
    GVM_CUDA_FOR(i, n) {
        if (floats)
            store_float(dst, ddt, i, load_float(src, sdt, i));
        else
            store_from_double(dst, ddt, i, load_as_double(src, sdt, i));
    }
}

// The mixed-precision pairs (f32 <-> f16/bf16): four elements per thread, moved as a float4 and a uint2
// (4 halves, the first in the low bits), for groups [0, n4) when both pointers are aligned to those; then
// elements [4 n4, n) one at a time.
template <int SD, int DD>
__global__ void cast_vec4_kernel(const void *__restrict__ src, void *__restrict__ dst, int64_t n4, int64_t n) {
    GVM_CUDA_FOR(k, n4) {
        float v[4];
        if (SD == GVM_F32) {
            float4 t = reinterpret_cast<const float4 *>(src)[k];
            v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
        } else {
            uint2 t = reinterpret_cast<const uint2 *>(src)[k];
            uint16_t h[4] = {(uint16_t)(t.x & 0xffffu), (uint16_t)(t.x >> 16), (uint16_t)(t.y & 0xffffu),
                             (uint16_t)(t.y >> 16)};
#pragma unroll
            for (int j = 0; j < 4; j++) v[j] = SD == GVM_F16 ? f16_to_f32(h[j]) : __uint_as_float((uint32_t)h[j] << 16);
        }
        if (DD == GVM_F32) {
            reinterpret_cast<float4 *>(dst)[k] = make_float4(v[0], v[1], v[2], v[3]);
        } else {
            uint32_t h[4];
#pragma unroll
            for (int j = 0; j < 4; j++) h[j] = DD == GVM_F16 ? f32_to_f16(v[j]) : f32_to_bf16(v[j]);
            reinterpret_cast<uint2 *>(dst)[k] = make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
        }
    }
    GVM_CUDA_FOR(j, n - 4 * n4) {
        int64_t i = 4 * n4 + j;
        store_float(dst, DD, i, load_float(src, SD, i));
    }
}

template <int SD, int DD> static void cast_vec4_launch(const void *src, void *dst, int64_t n) {
    // float4 on the f32 side, uint2 on the 16-bit side.
    bool vec = ((uintptr_t)src & (SD == GVM_F32 ? 15u : 7u)) == 0 && ((uintptr_t)dst & (DD == GVM_F32 ? 15u : 7u)) == 0;
    int64_t n4 = vec ? n / 4 : 0;
    cast_vec4_kernel<SD, DD><<<gvm_cuda_blocks(max64(n4, n - 4 * n4), THREADS), THREADS, 0, gvm_cuda_stream()>>>(
        src, dst, n4, n);
}

extern "C" void gvm_cuda_cast(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n) {
    GVM_CHECK(src_dtype >= 0 && src_dtype < GVM_DTYPE_COUNT && dst_dtype >= 0 && dst_dtype < GVM_DTYPE_COUNT,
              "cast: bad dtypes %d -> %d", (int)src_dtype, (int)dst_dtype);
    if (n <= 0) return;
    if (src_dtype == dst_dtype) {
        gvm_cuda_memcpy_d2d(dst, src, (size_t)n * gvm_dtype_size(src_dtype));
        return;
    }
    int s = (int)src_dtype, d = (int)dst_dtype;
    if (s == GVM_F32 && d == GVM_F16)
        cast_vec4_launch<GVM_F32, GVM_F16>(src, dst, n);
    else if (s == GVM_F32 && d == GVM_BF16)
        cast_vec4_launch<GVM_F32, GVM_BF16>(src, dst, n);
    else if (s == GVM_F16 && d == GVM_F32)
        cast_vec4_launch<GVM_F16, GVM_F32>(src, dst, n);
    else if (s == GVM_BF16 && d == GVM_F32)
        cast_vec4_launch<GVM_BF16, GVM_F32>(src, dst, n);
    else
        cast_kernel<<<gvm_cuda_blocks(n, THREADS), THREADS, 0, gvm_cuda_stream()>>>(src, s, dst, d, n);
    GVM_CUDA_LAUNCH_CHECK();
}
