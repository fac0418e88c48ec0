// cpu/vmath.h: vectorisable float math shared by the CPU kernels.
//
// libm's expf is a function call GCC cannot vectorise without -ffast-math, and exp is most of the
// non-GEMM work in softmax, cross-entropy and attention. This header holds one tested version.
#ifndef GVM_CPU_VMATH_H
#define GVM_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

// exp(x) for x < 88 (every caller passes x - max <= 0). Cephes' expf: x = k ln2 + r with |r| <= ln2/2,
// exp(r) by a degree-7 polynomial (about 1 ulp), times 2^k assembled in the exponent bits. Inputs below
// -87.3 (where exp(x) would be subnormal), and -inf, give 0; NaN stays NaN.
static inline float gvm_exp_nonpos(float x) {
    const float lo = -87.3f;
    // Selects are done on the bits: with a plain `x > lo ? x : lo` GCC clones the polynomial into a
    // branch for the constant lo and then cannot vectorise the loop (-ftrapping-math forbids
    // if-converting float arithmetic). NaN fails x > lo, so it reaches the int conversion as lo.
    uint32_t keep = 0u - (uint32_t)(x > lo), xb, lb;  // all ones where x > lo
    memcpy(&xb, &x, sizeof xb);
    memcpy(&lb, &lo, sizeof lb);
    xb = (xb & keep) | (lb & ~keep);
    float xc;
    memcpy(&xc, &xb, sizeof xc);
    // Round x / ln2 to the nearest integer with the 1.5 * 2^23 trick (no floorf: it needs SSE4.1).
    float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - k * 0.693359375f;  // ln2 split in two so that k * hi is exact
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;  // k in -126..126: a normal power of two
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float e = p * scale;
    uint32_t eb;
    memcpy(&eb, &e, sizeof eb);
    eb &= keep;                                     // x <= lo (or -inf): 0
    eb |= (0u - (uint32_t)(x != x)) & 0x7fc00000u;  // NaN in, NaN out
    memcpy(&e, &eb, sizeof e);
    return e;
}

#endif
