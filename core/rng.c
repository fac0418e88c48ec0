// rng.c: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void gvm_rng_init(gvm_rng *rng, uint64_t seed) {
    rng->seed = seed;
    rng->offset = 0;
}

void gvm_philox4x32(uint64_t seed, uint64_t ctr, uint64_t subsequence, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32);
    uint32_t c2 = (uint32_t)subsequence, c3 = (uint32_t)(subsequence >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint64_t gvm_rng_reserve(gvm_rng *rng, size_t n) {
    uint64_t base = rng->offset;
    rng->offset += (n + 3) / 4;
    return base;
}

static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float gvm_rng_uniform_at(uint64_t seed, uint64_t base, uint64_t i) {
    uint32_t w[4];
    gvm_philox4x32(seed, base + i / 4, 0, w);
    return u32_to_unit(w[i % 4]);
}

void gvm_rng_uniform(gvm_rng *rng, float *out, size_t n, float low, float high) {
    uint64_t base = gvm_rng_reserve(rng, n);
    uint64_t seed = rng->seed;
    float span = high - low;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t blk = 0; blk < (n + 3) / 4; blk++) {
        uint32_t w[4];
        gvm_philox4x32(seed, base + blk, 0, w);
        for (size_t j = 0; j < 4 && blk * 4 + j < n; j++) out[blk * 4 + j] = low + span * u32_to_unit(w[j]);
    }
}

void gvm_rng_normal(gvm_rng *rng, float *out, size_t n, float mean, float std) {
    uint64_t base = gvm_rng_reserve(rng, n);
    uint64_t seed = rng->seed;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t blk = 0; blk < (n + 3) / 4; blk++) {
        uint32_t w[4];
        gvm_philox4x32(seed, base + blk, 0, w);
        for (int pair = 0; pair < 2; pair++) {
            // u1 in (0, 1] so log(u1) is finite.
            double u1 = ((double)(w[2 * pair] >> 8) + 1.0) / 16777216.0;
            double u2 = (double)(w[2 * pair + 1] >> 8) / 16777216.0;
            double r = sqrt(-2.0 * log(u1));
            double z[2] = {r * cos(2.0 * M_PI * u2), r * sin(2.0 * M_PI * u2)};
            for (int j = 0; j < 2; j++) {
                size_t idx = blk * 4 + (size_t)(2 * pair + j);
                if (idx < n) out[idx] = mean + std * (float)z[j];
            }
        }
    }
}

uint32_t gvm_rng_u32(gvm_rng *rng) {
    uint32_t w[4];
    gvm_philox4x32(rng->seed, gvm_rng_reserve(rng, 4), 0, w);
    return w[0];
}

uint64_t gvm_rng_below(gvm_rng *rng, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint32_t w[4];
        gvm_philox4x32(rng->seed, gvm_rng_reserve(rng, 4), 0, w);
        uint64_t x = ((uint64_t)w[0] << 32) | w[1];
        if (x < limit) return x % n;
    }
}
