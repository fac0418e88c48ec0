// device_parity.c: runs one op on the CPU and on CUDA with the same inputs and compares (see
// device_parity.h).
#include "tests/device_parity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed;

void parity_init(int argc, char **argv) {
    (void)argc;
    (void)argv;
    if (gvm_device_init(GVM_DEVICE_CUDA) != GVM_OK) {
        printf("SKIPPED: %s\n", gvm_error_message());
        fflush(stdout);
        exit(77);
    }
    printf("device: %s\n", gvm_device_description(GVM_DEVICE_CUDA));
}

// A CPU heap tensor of seeded random values.
static gvm_tensor *make_input(const parity_input *in, gvm_rng *rng) {
    gvm_tensor *t = gvm_tensor_new(in->dtype, in->ndim, in->shape);
    int64_t n = t->numel;
    if (in->dtype == GVM_F32) {
        float *p = t->data;
        if (in->lo == in->hi)
            gvm_rng_normal(rng, p, (size_t)n, 0.0f, 1.0f);
        else
            gvm_rng_uniform(rng, p, (size_t)n, in->lo, in->hi);
    } else {
        // Integers in [lo, hi), written through a f32 staging tensor and the CPU's exact conversion.
        int64_t lo = (int64_t)in->lo, span = (int64_t)in->hi - lo;
        GVM_CHECK(span > 0, "parity input: integer range [%g, %g) is empty", in->lo, in->hi);
        gvm_tensor *stage = gvm_tensor_new(GVM_F32, in->ndim, in->shape);
        float *p = stage->data;
        for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (int64_t)gvm_rng_below(rng, (uint64_t)span));
        gvm_tensor_copy(t, stage);
        gvm_tensor_free(stage);
    }
    return t;
}

typedef struct side_result {
    gvm_tensor *out;                       // CPU copy of the output
    gvm_tensor *grads[GVM_NODE_MAX_INPUTS];  // CPU copies of the input gradients (NULL: none)
} side_result;

#define MAX_INPUTS 8

// Run `build` on `device`; `seed_grad` (CPU, f32, the output's numel) may be NULL on the first (CPU) run,
// in which case it is made here from `rng` once the output's size is known.
static side_result run_side(gvm_device device, parity_build_fn build, const void *arg, int n_in,
                            const parity_input *inputs, gvm_tensor *const *host_inputs, gvm_tensor **seed_grad,
                            gvm_rng *rng, const parity_opts *o) {
    side_result r = {0};
    gvm_ctx *ctx = gvm_ctx_new(o->seed);
    GVM_CHECK(gvm_ctx_set_device(ctx, device) == GVM_OK, "parity: %s", gvm_error_message());
    ctx->training = o->training;
    ctx->autocast = device == GVM_DEVICE_CPU ? GVM_F32 : o->autocast;
    gvm_tensor *in[MAX_INPUTS] = {0};
    for (int i = 0; i < n_in; i++) {
        in[i] = gvm_tensor_to(host_inputs[i], device);
        in[i]->requires_grad = inputs[i].requires_grad && inputs[i].dtype == GVM_F32;
    }
    gvm_tensor *out = build(ctx, in, arg);
    r.out = gvm_tensor_to(out, GVM_DEVICE_CPU);
    if (!o->forward_only && out->dtype == GVM_F32 && out->requires_grad) {
        if (!*seed_grad) {
            *seed_grad = gvm_tensor_new(GVM_F32, out->ndim, out->shape);
            gvm_rng_normal(rng, (*seed_grad)->data, (size_t)out->numel, 0.0f, 1.0f);
        }
        gvm_tensor *seed = gvm_tensor_to(*seed_grad, device);
        gvm_backward_with_grad(ctx, out, seed->data);
        for (int i = 0; i < n_in && i < GVM_NODE_MAX_INPUTS; i++)
            if (in[i]->grad) r.grads[i] = gvm_tensor_to(in[i]->grad, GVM_DEVICE_CPU);
        gvm_tensor_free(seed);
    }
    for (int i = 0; i < n_in; i++) gvm_tensor_free(in[i]);
    gvm_ctx_free(ctx);
    return r;
}

static void free_side(side_result *r) {
    gvm_tensor_free(r->out);
    for (int i = 0; i < GVM_NODE_MAX_INPUTS; i++) gvm_tensor_free(r->grads[i]);
}

// Compare as f32 on the host. Non-f32 tensors must match exactly. Returns true when within tolerance and
// reports the worst element.
static bool compare(const char *name, const char *what, const gvm_tensor *cpu, const gvm_tensor *gpu, double rtol) {
    if (!cpu || !gpu || cpu->numel != gpu->numel || cpu->dtype != gpu->dtype) {
        printf("FAIL %s: %s: %s on the CPU, %s on the GPU\n", name, what, cpu ? "present" : "missing",
               gpu ? "present" : "missing");
        return false;
    }
    bool exact = cpu->dtype != GVM_F32;
    gvm_tensor *c = gvm_tensor_new(GVM_F32, cpu->ndim, cpu->shape), *g = gvm_tensor_new(GVM_F32, gpu->ndim, gpu->shape);
    gvm_tensor_copy(c, cpu);
    gvm_tensor_copy(g, gpu);
    const float *cv = c->data, *gv = g->data;
    int64_t n = c->numel;
    double sumsq = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(cv[i])) sumsq += (double)cv[i] * cv[i];
    double rms = n ? sqrt(sumsq / (double)n) : 0.0;
    double worst = 0.0;  // largest |gpu - cpu| / allowed over the finite elements
    int64_t worst_i = -1;
    bool ok = true;
    for (int64_t i = 0; i < n; i++) {
        double a = cv[i], b = gv[i];
        if (!isfinite(a) || !isfinite(b)) {  // NaN must meet NaN, inf the same inf
            if (!((isnan(a) && isnan(b)) || a == b)) {
                if (ok) printf("FAIL %s: %s[%lld]: cpu %g, gpu %g\n", name, what, (long long)i, a, b);
                ok = false;
            }
            continue;
        }
        double err = fabs(a - b), allowed = exact ? 0.0 : rtol * (fabs(a) + rms);
        double ratio = err == 0.0 ? 0.0 : allowed > 0.0 ? err / allowed : INFINITY;
        if (worst_i < 0 || ratio > worst) {
            worst = ratio;
            worst_i = i;
        }
    }
    if (worst > 1.0) {
        ok = false;
        printf("FAIL %s: %s[%lld]: cpu %.9g, gpu %.9g, |diff| %.3g > allowed %.3g (rms %.3g, %lld elements)\n", name,
               what, (long long)worst_i, cv[worst_i], gv[worst_i], fabs((double)cv[worst_i] - gv[worst_i]),
               exact ? 0.0 : rtol * (fabs(cv[worst_i]) + rms), rms, (long long)n);
    } else if (ok) {
        printf("  %s %s: worst %.2f of the tolerance\n", name, what, worst);
    }
    gvm_tensor_free(c);
    gvm_tensor_free(g);
    return ok;
}

bool parity_check(const char *name, parity_build_fn build, const void *arg, int n_in, const parity_input *inputs,
                  const parity_opts *opts) {
    GVM_CHECK(n_in <= MAX_INPUTS && n_in <= GVM_NODE_MAX_INPUTS, "parity: at most %d inputs", GVM_NODE_MAX_INPUTS);
    parity_opts o = opts ? *opts : (parity_opts){0};
    if (o.rtol == 0) o.rtol = 1e-5;
    if (o.seed == 0) o.seed = 1234;
    gvm_rng rng;
    gvm_rng_init(&rng, o.seed);
    gvm_tensor *host_in[MAX_INPUTS] = {0};
    for (int i = 0; i < n_in; i++) host_in[i] = make_input(&inputs[i], &rng);
    gvm_tensor *seed_grad = NULL;
    side_result cpu = run_side(GVM_DEVICE_CPU, build, arg, n_in, inputs, host_in, &seed_grad, &rng, &o);
    side_result gpu = run_side(GVM_DEVICE_CUDA, build, arg, n_in, inputs, host_in, &seed_grad, &rng, &o);
    bool ok = compare(name, "output", cpu.out, gpu.out, o.rtol);
    for (int i = 0; i < n_in; i++) {
        if (!cpu.grads[i] && !gpu.grads[i]) continue;
        char what[32];
        snprintf(what, sizeof what, "grad[%d]", i);
        ok = compare(name, what, cpu.grads[i], gpu.grads[i], o.rtol) && ok;
    }
    if (ok)
        g_passed++;
    else
        g_failed++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    fflush(stdout);
    free_side(&cpu);
    free_side(&gpu);
    gvm_tensor_free(seed_grad);
    for (int i = 0; i < n_in; i++) gvm_tensor_free(host_in[i]);
    return ok;
}

// True when the two tensors are both absent, or present with the same dtype, numel and bytes.
static bool same_bytes(const gvm_tensor *a, const gvm_tensor *b) {
    if (!a || !b) return !a && !b;
    return a->dtype == b->dtype && a->numel == b->numel && memcmp(a->data, b->data, gvm_tensor_nbytes(a)) == 0;
}

bool parity_check_deterministic(const char *name, parity_build_fn build, const void *arg, int n_in,
                                const parity_input *inputs, const parity_opts *opts) {
    GVM_CHECK(n_in <= MAX_INPUTS && n_in <= GVM_NODE_MAX_INPUTS, "parity: at most %d inputs", GVM_NODE_MAX_INPUTS);
    parity_opts o = opts ? *opts : (parity_opts){0};
    if (o.seed == 0) o.seed = 1234;
    gvm_rng rng;
    gvm_rng_init(&rng, o.seed);
    gvm_tensor *host_in[MAX_INPUTS] = {0};
    for (int i = 0; i < n_in; i++) host_in[i] = make_input(&inputs[i], &rng);
    gvm_tensor *seed_grad = NULL;
    side_result run[2];
    for (int r = 0; r < 2; r++)
        run[r] = run_side(GVM_DEVICE_CUDA, build, arg, n_in, inputs, host_in, &seed_grad, &rng, &o);
    bool ok = same_bytes(run[0].out, run[1].out);
    if (!ok) printf("FAIL %s: the output differs between two GPU runs\n", name);
    for (int i = 0; i < n_in; i++) {
        if (!same_bytes(run[0].grads[i], run[1].grads[i])) {
            printf("FAIL %s: grad[%d] differs between two GPU runs\n", name, i);
            ok = false;
        }
    }
    if (ok)
        g_passed++;
    else
        g_failed++;
    printf("%s determinism %s\n", ok ? "ok  " : "FAIL", name);
    fflush(stdout);
    free_side(&run[0]);
    free_side(&run[1]);
    gvm_tensor_free(seed_grad);
    for (int i = 0; i < n_in; i++) gvm_tensor_free(host_in[i]);
    return ok;
}

int parity_finish(void) {
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
