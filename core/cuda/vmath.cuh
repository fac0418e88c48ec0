// cuda/vmath.cuh: the CPU's float math (core/cpu/vmath.h, core/cpu/elementwise.c) as device functions, operation
// for operation, so that CUDA activations give the CPU's bits. Internal to core/cuda/elementwise.cu.
#ifndef GVM_CUDA_VMATH_CUH
#define GVM_CUDA_VMATH_CUH

#include <math.h>
#include <stdint.h>

// ---- the CPU's math, operation for operation ---------------------------------------------------------------
// exp, expm1, tanh and gelu are the CPU's own polynomials (core/cpu/elementwise.c, "math the compiler can
// vectorise"), ported with the same constants and the same fused multiply-adds (fmaf there, fmaf here), so
// every activation gives the CPU's bits. That matters where the formulas cancel: sigmoid's and tanh's
// gradients y (1 - y) and 1 - y^2 turn a 1-ulp difference of y near 1 into a large relative one, and the
// gelu polynomials' error is absolute (~1e-7), large next to gelu's far left tail. Elsewhere, where the CPU
// rounds a * b + c twice (it builds with -std=c11, which does not contract), the sums are written
// __fadd_rn/__fsub_rn, which nvcc never fuses with the multiply before them. pow and log use CUDA's powf
// and logf (within 1-2 ulp of glibc's; their formulas do not cancel).

// e^r for |r| <= ln2 / 2 (the CPU's exp_poly).
__device__ __forceinline__ float exp_poly(float r) {
    float p = fmaf(1.381458598e-03f, r, 8.368707262e-03f);
    p = fmaf(p, r, 4.166838899e-02f);
    p = fmaf(p, r, 1.666652113e-01f);
    p = fmaf(p, r, 4.999999404e-01f);
    p = fmaf(p, r, 1.0f);
    return fmaf(p, r, 1.0f);
}

// exp(x) for x already in [-86, 88]: 2^n straight into the exponent bits (the CPU's exp_bounded).
__device__ __forceinline__ float exp_bounded(float x) {
    float t = fmaf(x, 1.44269504088896341f, 12582912.0f);  // n = round(x / ln2) in the low mantissa bits
    float nf = __fsub_rn(t, 12582912.0f);
    float r = fmaf(nf, -0.693359375f, x);
    r = fmaf(nf, 2.12194440e-4f, r);
    return __uint_as_float(__float_as_uint(exp_poly(r)) + (__float_as_uint(t) << 23));
}

// exp(x) for every float: NaN in, NaN out; overflow to inf, underflow through denormals (the CPU's v_exp).
__device__ __forceinline__ float v_exp(float x) {
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    xc = xc == xc ? xc : 0.0f;
    float t = fmaf(xc, 1.44269504088896341f, 12582912.0f);
    int32_t n = (int32_t)(__float_as_uint(t) - 0x4B400000u);
    float nf = __fsub_rn(t, 12582912.0f);
    float r = fmaf(nf, -0.693359375f, xc);
    r = fmaf(nf, 2.12194440e-4f, r);
    int32_t n1 = n / 2, n2 = n - n1;  // 2^n as two normal factors
    float y = __fmul_rn(__fmul_rn(exp_poly(r), __uint_as_float((uint32_t)(n1 + 127) << 23)),
                        __uint_as_float((uint32_t)(n2 + 127) << 23));
    return x == x ? y : x;
}

// exp(x) - 1 with a Taylor polynomial below |x| = 0.5 (the CPU's v_expm1).
__device__ __forceinline__ float v_expm1(float x) {
    float small = fmaf(x, 1.0f / 40320, 1.0f / 5040);
    small = fmaf(x, small, 1.0f / 720);
    small = fmaf(x, small, 1.0f / 120);
    small = fmaf(x, small, 1.0f / 24);
    small = fmaf(x, small, 1.0f / 6);
    small = fmaf(x, small, 0.5f);
    small = __fmul_rn(x, fmaf(x, small, 1.0f));
    return fabsf(x) < 0.5f ? small : __fsub_rn(v_exp(x), 1.0f);
}

// tanh: x + x^3 P(x^2) below 0.625, 1 - 2 / (exp(2|x|) + 1) above (the CPU's v_tanh).
__device__ __forceinline__ float v_tanh(float x) {
    float ax = fabsf(x), u = __fmul_rn(x, x);
    float p = fmaf(-6.1049480114e-03f, u, 2.1003641221e-02f);
    p = fmaf(p, u, -5.3852497469e-02f);
    p = fmaf(p, u, 1.3332782264e-01f);
    p = fmaf(p, u, -3.3333329100e-01f);
    float small = fmaf(__fmul_rn(x, u), p, x);
    float big = __fsub_rn(1.0f, 2.0f / __fadd_rn(v_exp(2.0f * ax), 1.0f));
    return ax < 0.625f ? small : (x < 0.0f ? -big : big);
}

// gelu (erf form) and its derivative: Phi(x) - 1/2 and gelu'(x) - 1/2 are x P(u), u = 2 x^2 / B^2 - 1, on
// |x| <= B; past B the input is clamped, and below -B the value is exactly 0 (the CPU's odd_poly).
#define PHI_B 5.45f
#define DGELU_B 6.0f
// Phi(x) = 0.5 + x P(u), degree 14 in u.
__constant__ float k_phi_poly[15] = {
    4.604025453e-04f,  -1.187968301e-03f, 9.490876109e-04f,  -1.215347671e-03f, 3.940822091e-03f,
    -7.182567380e-03f, 1.006128918e-02f,  -1.432706043e-02f, 1.997629553e-02f,  -2.593938634e-02f,
    3.210764378e-02f,  -3.900123388e-02f, 4.811779037e-02f,  -6.474591792e-02f, 1.297292709e-01f};
// gelu'(x) = Phi(x) + x phi(x) = 0.5 + x P(u), degree 18 in u.
__constant__ float k_dgelu_poly[19] = {
    2.771552419e-03f,  -6.890422199e-03f, 1.886360464e-03f,  1.630222658e-03f,  1.603089646e-02f,
    -3.296749666e-02f, 3.140518442e-02f,  -3.633761406e-02f, 5.444333330e-02f,  -6.575416028e-02f,
    6.686606258e-02f,  -6.431142986e-02f, 5.869455636e-02f,  -5.093631521e-02f, 4.455547780e-02f,
    -4.236553609e-02f, 4.605771601e-02f,  -5.934280902e-02f, 1.178977638e-01f};

// 0.5 + xc P(2 xc^2 / b^2 - 1) with xc = x clamped to [-b, b] (NaN stays NaN); coef high to low.
template <int N> __device__ __forceinline__ float odd_poly(float x, float b, const float *coef) {
    float xc = x > b ? b : x;
    xc = xc < -b ? -b : xc;
    float u = fmaf(__fmul_rn(xc, xc), 2.0f / (b * b), -1.0f);
    float p = coef[0];
#pragma unroll
    for (int i = 1; i < N; i++) p = fmaf(p, u, coef[i]);
    return fmaf(xc, p, 0.5f);
}

__device__ __forceinline__ float gelu_fwd1(float x) {
    float y = __fmul_rn(x, odd_poly<15>(x, PHI_B, k_phi_poly));
    return x < -PHI_B ? 0.0f : y;
}

__device__ __forceinline__ float gelu_grad1(float x) {
    float d = odd_poly<19>(x, DGELU_B, k_dgelu_poly);
    return x < -DGELU_B ? 0.0f : d;
}

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_TANH_C 0.044715f

// sigmoid(x) and 1 - sigmoid(x), without cancellation or overflow (the CPU's sigmoid_pair).
__device__ __forceinline__ void sigmoid_pair(float x, float &s, float &oms) {
    float e = v_exp(-fabsf(x));
    float inv = 1.0f / __fadd_rn(1.0f, e);
    s = x >= 0 ? inv : __fmul_rn(e, inv);
    oms = x >= 0 ? __fmul_rn(e, inv) : inv;
}

// silu's clamped input (to [-88, 86]) and e = exp(-xc), from x already clamped below (the CPU's silu_e).
__device__ __forceinline__ float silu_e(float xl, float &xc) {
    xc = xl > 86.0f ? 86.0f : xl;
    return exp_bounded(-xc);
}

// gelu_tanh's s = sigmoid(2u) = 0.5 (1 + tanh(u)), 1 - s and u' (the CPU's gelu_tanh_parts). -2u is capped
// with a select, which keeps NaN a NaN as the CPU's does (fminf would turn it into 80).
__device__ __forceinline__ void gelu_tanh_parts(float x, float &s, float &oms, float &du) {
    float cube = __fmul_rn(__fmul_rn(__fmul_rn(GELU_TANH_C, x), x), x);
    float u = __fmul_rn(SQRT_2_OVER_PI, __fadd_rn(x, cube));
    float m2u = -2.0f * u;
    float e = v_exp(m2u > 80.0f ? 80.0f : m2u);
    s = 1.0f / __fadd_rn(1.0f, e);
    oms = __fmul_rn(e, s);
    du = __fmul_rn(SQRT_2_OVER_PI, __fadd_rn(1.0f, __fmul_rn(__fmul_rn(3.0f * GELU_TANH_C, x), x)));
}

#endif
