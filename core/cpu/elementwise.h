// cpu/elementwise.h: CPU kernels of the elementwise ops: broadcasting binary arithmetic, scalar and
// unary math, activations, dropout and masked_fill. Kernels take raw pointers, sizes and broadcast
// plans (core/broadcast.h); backward kernels ACCUMULATE (+=) into the gradients they are given.
#ifndef GVM_CPU_ELEMENTWISE_H
#define GVM_CPU_ELEMENTWISE_H

#include <stdint.h>

#include "core/broadcast.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gvm_binary_op {
    GVM_BINARY_ADD = 0,
    GVM_BINARY_SUB,
    GVM_BINARY_MUL,
    GVM_BINARY_DIV,
} gvm_binary_op;

// y = a (op) b with the broadcast `bc` planned for inputs (a, b); y [bc->shape] contiguous.
void gvm_cpu_binary_fwd(gvm_binary_op op, const float *a, const float *b, float *y, const gvm_broadcast *bc);
// ga [a's shape] += reduce(gy * d(a op b)/da), gb likewise; either may be NULL (not wanted). The
// reduction over broadcast dims accumulates in double. ga and gb may be the same buffer (a == b).
void gvm_cpu_binary_bwd(gvm_binary_op op, const float *a, const float *b, const float *gy, float *ga, float *gb,
                        const gvm_broadcast *bc);

typedef enum gvm_unary_op {
    GVM_UNARY_ADD_SCALAR = 0,  // x + param
    GVM_UNARY_MUL_SCALAR,      // x * param
    GVM_UNARY_POW,             // x ^ param
    GVM_UNARY_NEG,
    GVM_UNARY_EXP,
    GVM_UNARY_LOG,
    GVM_UNARY_SQRT,
    GVM_UNARY_ABS,
    GVM_UNARY_GELU,            // x * Phi(x), erf form
    GVM_UNARY_GELU_TANH,       // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    GVM_UNARY_RELU,
    GVM_UNARY_ELU,             // x > 0 ? x : param * (exp(x) - 1)
    GVM_UNARY_SILU,
    GVM_UNARY_TANH,
    GVM_UNARY_SIGMOID,
    GVM_UNARY_COUNT
} gvm_unary_op;

// x [n] -> y [n].
void gvm_cpu_unary_fwd(gvm_unary_op op, const float *x, float *y, int64_t n, float param);
// gx [n] += gy * f'(x); y = f(x) as the forward returned it (some derivatives read it instead of x).
void gvm_cpu_unary_bwd(gvm_unary_op op, const float *x, const float *y, const float *gy, float *gx, int64_t n,
                       float param);

// Dropout with the mask regenerated from Philox: element i is kept iff
// gvm_rng_uniform_at(seed, base, i) >= p, and kept values are scaled by 1 / (1 - p). 0 < p < 1.
void gvm_cpu_dropout_fwd(const float *x, float *y, int64_t n, uint64_t seed, uint64_t base, float p);
void gvm_cpu_dropout_bwd(const float *gy, float *gx, int64_t n, uint64_t seed, uint64_t base, float p);

// y = mask ? value : a, with `bc` planned for inputs (a, mask) and a covering the output.
void gvm_cpu_masked_fill_fwd(const float *a, const uint8_t *mask, float *y, float value, const gvm_broadcast *bc);
// ga += mask ? 0 : gy.
void gvm_cpu_masked_fill_bwd(const uint8_t *mask, const float *gy, float *ga, const gvm_broadcast *bc);

#ifdef __cplusplus
}
#endif

#endif
