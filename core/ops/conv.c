// ops/conv.c: conv1d and conv_transpose1d (PyTorch semantics: zero padding on both sides, stride,
// dilation, groups, optional bias), forward and backward. The kernels live in core/cpu/conv.c.
#include "core/cpu/conv.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/conv.h"
#endif

typedef int64_t (*conv_scratch_fn)(const gvm_conv1d_geom *g, gvm_conv1d_kernel which, bool need_dw);
typedef void (*conv_fwd_fn)(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias, float *y,
                            float *scratch);
typedef void (*conv_bwd_fn)(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db, float *scratch);

static const conv_scratch_fn k_conv_scratch[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_conv1d_scratch_floats,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_conv1d_scratch_floats)};
static const conv_fwd_fn k_conv1d_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_conv1d_fwd,
                                                           GVM_CUDA_KERNEL(gvm_cuda_conv1d_fwd)};
static const conv_bwd_fn k_conv1d_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_conv1d_bwd,
                                                           GVM_CUDA_KERNEL(gvm_cuda_conv1d_bwd)};
static const conv_fwd_fn k_conv_transpose1d_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_conv_transpose1d_fwd,
                                                                     GVM_CUDA_KERNEL(gvm_cuda_conv_transpose1d_fwd)};
static const conv_bwd_fn k_conv_transpose1d_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_conv_transpose1d_bwd,
                                                                     GVM_CUDA_KERNEL(gvm_cuda_conv_transpose1d_bwd)};

typedef struct {
    gvm_conv1d_geom geom;
} conv_saved;

static float *scratch_for(gvm_ctx *ctx, gvm_device dev, const gvm_conv1d_geom *g, gvm_conv1d_kernel which,
                          bool need_dw) {
    int64_t n = GVM_DISPATCH(k_conv_scratch, dev, "conv1d")(g, which, need_dw);
    return gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(n > 0 ? n : 1) * sizeof(float));
}

// Shared checks; fills everything in *g but Cout and Tout. w [A, C/groups, K] in both layouts.
static void check_common(const char *op, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias, const gvm_conv1d_opts *opts,
                         gvm_conv1d_geom *g) {
    gvm_conv1d_opts o = opts ? *opts : (gvm_conv1d_opts){0};
    GVM_CHECK(x->dtype == GVM_F32 && w->dtype == GVM_F32 && (!bias || bias->dtype == GVM_F32),
              "%s: f32 inputs required", op);
    GVM_CHECK(x->ndim == 3, "%s: x must be [B, Cin, T], got rank %d", op, x->ndim);
    GVM_CHECK(w->ndim == 3, "%s: weight must be 3-D, got rank %d", op, w->ndim);
    GVM_CHECK(x->device == w->device && (!bias || bias->device == x->device), "%s: inputs on different devices", op);
    GVM_CHECK(o.stride >= 0 && o.dilation >= 0 && o.groups >= 0 && o.padding >= 0 && o.output_padding >= 0,
              "%s: negative option (stride %d, padding %d, dilation %d, groups %d, output_padding %d)", op, o.stride,
              o.padding, o.dilation, o.groups, o.output_padding);
    g->B = x->shape[0];
    g->Cin = x->shape[1];
    g->T = x->shape[2];
    g->K = w->shape[2];
    g->stride = o.stride ? o.stride : 1;
    g->padding = o.padding;
    g->dilation = o.dilation ? o.dilation : 1;
    g->groups = o.groups ? o.groups : 1;
    GVM_CHECK(g->K >= 1, "%s: kernel size must be >= 1", op);
    GVM_CHECK(g->T >= 1, "%s: input length must be >= 1", op);
    GVM_CHECK(g->Cin % g->groups == 0, "%s: Cin %lld not divisible by groups %lld", op, (long long)g->Cin,
              (long long)g->groups);
}

// ---- conv1d --------------------------------------------------------------------------------------------------

// The backward of both convolutions: dx, dW and db from one kernel call, whose scratch is released after.
// `kind` picks the scratch size; `table` the kernel (conv1d's or conv_transpose1d's backward).
static void conv_backward(gvm_ctx *ctx, gvm_node *node, gvm_conv1d_kernel kind, const conv_bwd_fn *table,
                          const char *name) {
    const conv_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2];
    float *dx = gvm_needs_grad(x) ? gvm_grad_data(ctx, x) : NULL;        // [B, Cin, T]
    float *dw = gvm_needs_grad(w) ? gvm_grad_data(ctx, w) : NULL;        // w's shape
    float *db = gvm_needs_grad(bias) ? gvm_grad_data(ctx, bias) : NULL;  // [Cout]
    if (!dx && !dw && !db) return;
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    float *scratch = scratch_for(ctx, x->device, &s->geom, kind, dw != NULL);
    GVM_DISPATCH(table, x->device, name)(&s->geom, x->data, w->data, node->out->grad->data, dx, dw, db, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // scratch is dead once the kernel returns
}

static void conv1d_backward(gvm_ctx *ctx, gvm_node *node) {
    conv_backward(ctx, node, GVM_CONV1D_BWD, k_conv1d_bwd, "conv1d");
}

gvm_tensor *gvm_conv1d(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias, const gvm_conv1d_opts *opts) {
    gvm_conv1d_geom g;
    check_common("conv1d", x, w, bias, opts, &g);
    GVM_CHECK(!opts || opts->output_padding == 0, "conv1d: output_padding is for conv_transpose1d only");
    g.Cout = w->shape[0];
    GVM_CHECK(w->shape[1] == g.Cin / g.groups, "conv1d: weight dim 1 is %lld, expected Cin/groups = %lld",
              (long long)w->shape[1], (long long)(g.Cin / g.groups));
    GVM_CHECK(g.Cout % g.groups == 0, "conv1d: Cout %lld not divisible by groups %lld", (long long)g.Cout,
              (long long)g.groups);
    GVM_CHECK(!bias || (bias->ndim == 1 && bias->shape[0] == g.Cout), "conv1d: bias must be [Cout]");
    int64_t span = g.T + 2 * g.padding - g.dilation * (g.K - 1) - 1;
    GVM_CHECK(span >= 0, "conv1d: input length %lld (padded %lld) is shorter than the dilated kernel %lld",
              (long long)g.T, (long long)(g.T + 2 * g.padding), (long long)(g.dilation * (g.K - 1) + 1));
    g.Tout = span / g.stride + 1;

    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){g.B, g.Cout, g.Tout});  // [B, Cout, Tout]
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    float *scratch = scratch_for(ctx, x->device, &g, GVM_CONV1D_FWD, false);
    GVM_DISPATCH(k_conv1d_fwd, x->device, "conv1d")(&g, x->data, w->data, bias ? bias->data : NULL, out->data, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // scratch is dead once the kernel returns
    gvm_tensor *inputs[3] = {x, w, bias};
    gvm_node *node = gvm_record(ctx, "conv1d", conv1d_backward, out, inputs, 3, sizeof(conv_saved));
    if (node) ((conv_saved *)node->saved)->geom = g;
    return out;
}

// ---- conv_transpose1d ------------------------------------------------------------------------------------------

static void conv_transpose1d_backward(gvm_ctx *ctx, gvm_node *node) {
    conv_backward(ctx, node, GVM_CONV_TRANSPOSE1D_BWD, k_conv_transpose1d_bwd, "conv_transpose1d");
}

gvm_tensor *gvm_conv_transpose1d(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias,
                                 const gvm_conv1d_opts *opts) {
    gvm_conv1d_geom g;
    check_common("conv_transpose1d", x, w, bias, opts, &g);
    int64_t op = opts ? opts->output_padding : 0;
    GVM_CHECK(w->shape[0] == g.Cin, "conv_transpose1d: weight dim 0 is %lld, expected Cin = %lld",
              (long long)w->shape[0], (long long)g.Cin);
    g.Cout = w->shape[1] * g.groups;
    GVM_CHECK(op < g.stride || op < g.dilation,
              "conv_transpose1d: output_padding %lld must be smaller than stride %lld or dilation %lld", (long long)op,
              (long long)g.stride, (long long)g.dilation);
    GVM_CHECK(!bias || (bias->ndim == 1 && bias->shape[0] == g.Cout), "conv_transpose1d: bias must be [Cout]");
    g.Tout = (g.T - 1) * g.stride - 2 * g.padding + g.dilation * (g.K - 1) + op + 1;
    GVM_CHECK(g.Tout >= 1, "conv_transpose1d: output length %lld < 1 (padding %lld too large)", (long long)g.Tout,
              (long long)g.padding);

    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){g.B, g.Cout, g.Tout});  // [B, Cout, Tout]
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    float *scratch = scratch_for(ctx, x->device, &g, GVM_CONV_TRANSPOSE1D_FWD, false);
    GVM_DISPATCH(k_conv_transpose1d_fwd, x->device, "conv_transpose1d")
    (&g, x->data, w->data, bias ? bias->data : NULL, out->data, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // scratch is dead once the kernel returns
    gvm_tensor *inputs[3] = {x, w, bias};
    gvm_node *node = gvm_record(ctx, "conv_transpose1d", conv_transpose1d_backward, out, inputs, 3, sizeof(conv_saved));
    if (node) ((conv_saved *)node->saved)->geom = g;
    return out;
}
