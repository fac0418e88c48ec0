// cuda/philox.cuh: Philox4x32-10 on the device, bit for bit the CPU's (core/rng.c), so that a seeded draw
// (dropout masks above all) is the same on both backends, element for element.
//
// The CPU takes the high and low halves of a 64-bit product; here __umulhi gives the high half and the
// 32-bit product the low half: the same two words. Keys advance after each round, as on the CPU. The
// uniform value uses the same 24 high bits and the same exact scaling by 2^-24 (a 24-bit integer converts to
// float exactly, and the scaling is a power of two), so no rounding can differ between the backends.
// Internal to core/cuda/.
#ifndef GVM_CUDA_PHILOX_CUH
#define GVM_CUDA_PHILOX_CUH

#include <stdint.h>

#define GVM_PHILOX_M0 0xD2511F53u
#define GVM_PHILOX_M1 0xCD9E8D57u
#define GVM_PHILOX_W0 0x9E3779B9u
#define GVM_PHILOX_W1 0xBB67AE85u

// One block: the four words for (key = seed, counter = (ctr, subsequence)); gvm_philox4x32's twin.
__device__ __forceinline__ void gvm_philox4x32_dev(uint64_t seed, uint64_t ctr, uint64_t subsequence,
                                                   uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32);
    uint32_t c2 = (uint32_t)subsequence, c3 = (uint32_t)(subsequence >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(GVM_PHILOX_M0, c0), lo0 = GVM_PHILOX_M0 * c0;
        uint32_t hi1 = __umulhi(GVM_PHILOX_M1, c2), lo1 = GVM_PHILOX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += GVM_PHILOX_W0;
        k1 += GVM_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// A word as uniform [0, 1) with 24 random bits (core/rng.c: u32_to_unit).
__device__ __forceinline__ float gvm_philox_unit(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

// Value i of the range reserved at block `base` (gvm_rng_uniform_at's twin).
__device__ __forceinline__ float gvm_rng_uniform_at_dev(uint64_t seed, uint64_t base, uint64_t i) {
    uint32_t w[4];
    gvm_philox4x32_dev(seed, base + i / 4, 0, w);
    return gvm_philox_unit(w[i % 4]);
}

#endif
