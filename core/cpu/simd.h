// cpu/simd.h: GVM_VEC_CLONES, for hot CPU loops that should use the machine's widest vectors.
//
// A function marked GVM_VEC_CLONES is compiled three times, for baseline x86-64 (SSE2), AVX2 and
// AVX-512, and the loader picks one at start-up (GCC's target_clones), as PyTorch picks its kernels by CPU
// capability: each doubling of the vector width nearly doubles the throughput of exp-heavy loops, and the
// default build stays portable. Only the vector width differs (no FMA contraction under -std=c11), so the
// clones agree to rounding. Off for clang, non-x86 and GVM_NATIVE builds (already at the native width).
#ifndef GVM_CPU_SIMD_H
#define GVM_CPU_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define GVM_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GVM_VEC_CLONES
#endif

#endif
