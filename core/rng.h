// rng.h: Philox4x32-10 counter-based random numbers.
//
// Value i of a draw depends only on (seed, the stream's offset, i), never on thread count, device or
// rank: the CPU and CUDA backends, and every rank of a data-parallel job, produce identical streams from
// one seed. A gvm_rng is just the seed and an offset (in 128-bit blocks) that each draw advances.
#ifndef GVM_RNG_H
#define GVM_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_rng {
    uint64_t seed;
    uint64_t offset;  // counter of 4x32-bit blocks already consumed
} gvm_rng;

void gvm_rng_init(gvm_rng *rng, uint64_t seed);
// One Philox4x32-10 block: the four 32-bit words for (key = seed, counter = (ctr, subsequence)).
void gvm_philox4x32(uint64_t seed, uint64_t ctr, uint64_t subsequence, uint32_t out[4]);

// Reserve `n` values: returns the offset of the first block and advances the stream by ceil(n/4)
// blocks. Kernels (CPU threads, CUDA threads) then compute value i from block base + i/4, word i%4.
uint64_t gvm_rng_reserve(gvm_rng *rng, size_t n);

// Value i of the reserved range starting at block `base`, as uniform [0, 1) with 24 random bits.
float gvm_rng_uniform_at(uint64_t seed, uint64_t base, uint64_t i);

void gvm_rng_uniform(gvm_rng *rng, float *out, size_t n, float low, float high);
// Normal(mean, std) by Box-Muller on pairs of words of a block.
void gvm_rng_normal(gvm_rng *rng, float *out, size_t n, float mean, float std);
uint32_t gvm_rng_u32(gvm_rng *rng);
// Uniform integer in [0, n) (n > 0), unbiased by rejection.
uint64_t gvm_rng_below(gvm_rng *rng, uint64_t n);

#ifdef __cplusplus
}
#endif

#endif
