// cpu/optim.c: CPU kernels of the optimiser (see optim.h): fused AdamW, the sum of squares of the
// gradients, and the EMA update.
//
// Every kernel is one streaming pass (memory-bound: AdamW reads 16 and writes 12 bytes per element), so
// the per-element arithmetic is done in double at no cost in time: each stored value is rounded to f32
// once, which keeps a few steps within 1e-6 of a float64 PyTorch reference and makes the CUDA kernels,
// which do the same operations in the same order, agree with these to rounding.
#include "core/cpu/optim.h"

#include <math.h>
#include <omp.h>

#include "core/cpu/simd.h"

#define PAR_MIN 65536     // elements below which a pass stays on one thread
#define SUMSQ_CHUNKS 256  // the sum of squares adds this many partial sums, in order, whatever the threads

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// The contiguous share [lo, hi) of thread t of T over n elements.
static inline void thread_span(int64_t n, int t, int T, int64_t *lo, int64_t *hi) {
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

// ---- AdamW -------------------------------------------------------------------------------------------------

GVM_VEC_CLONES static void adamw_span(float *restrict param, const float *restrict grad, float *restrict m,
                                      float *restrict v, int64_t n, gvm_adamw_coefs c) {
    for (int64_t i = 0; i < n; i++) {
        double g = (double)grad[i] * c.grad_scale;
        double p = (double)param[i] * c.decay;
        double mi = c.beta1 * (double)m[i] + c.one_minus_beta1 * g;
        double vi = c.beta2 * (double)v[i] + c.one_minus_beta2 * (g * g);
        double denom = sqrt(vi) * c.inv_sqrt_bc2 + c.eps;
        p = p - c.step_size * (mi / denom);
        param[i] = (float)p;
        m[i] = (float)mi;
        v[i] = (float)vi;
    }
}

void gvm_cpu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, const gvm_adamw_coefs *c) {
    gvm_adamw_coefs cc = *c;  // by value: the loop then keeps the scalars in registers
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        thread_span(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        adamw_span(param + lo, grad + lo, m + lo, v + lo, hi - lo, cc);
    }
}

// ---- sum of squares ---------------------------------------------------------------------------------------

// sum x[i]^2 over [0, n) in double. A float squared is exact in double; eight independent accumulators
// let the loop vectorise without reordering any one sum (no -ffast-math), so the result is the same for
// every vector width. inf and NaN propagate into the sum.
GVM_VEC_CLONES static double sumsq_span(const float *x, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += (double)x[i] * (double)x[i];
    return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

double gvm_cpu_grad_sumsq(const float *grad, int64_t n) {
    if (n < PAR_MIN) return sumsq_span(grad, n);
    // Chunk bounds depend on n only, so the partial sums, and their sum in chunk order, do not depend on
    // how many threads computed them.
    double part[SUMSQ_CHUNKS];
    int64_t chunk = (n + SUMSQ_CHUNKS - 1) / SUMSQ_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        int64_t lo = min64(n, (int64_t)c * chunk), hi = min64(n, lo + chunk);
        part[c] = sumsq_span(grad + lo, hi - lo);
    }
    double s = 0.0;
    for (int c = 0; c < SUMSQ_CHUNKS; c++) s += part[c];
    return s;
}

// ---- EMA ------------------------------------------------------------------------------------------------------

GVM_VEC_CLONES static void ema_span(float *restrict ema, const float *restrict param, int64_t n, double decay,
                                    double one_minus_decay) {
    for (int64_t i = 0; i < n; i++) ema[i] = (float)(decay * (double)ema[i] + one_minus_decay * (double)param[i]);
}

void gvm_cpu_ema_update(float *ema, const float *param, int64_t n, float decay) {
    double d = decay, omd = 1.0 - d;  // exact in double for an f32 decay in [0, 1]
    int nt = n >= PAR_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        thread_span(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        ema_span(ema + lo, param + lo, hi - lo, d, omd);
    }
}
