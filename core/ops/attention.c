// ops/attention.c: fused scaled dot-product attention (multi-head, self or cross, causal, key padding mask).
//
//   q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv], key_mask [B, Tk] or NULL -> out [B, Tq, H, Dv]
//
// The tape keeps the inputs, the output and the per-row log-sum-exp [B, H, Tq]; the backward pass
// recomputes the attention probabilities block by block, so memory stays O(Tq + Tk) per (batch, head).
// On CUDA under autocast (ctx->autocast bf16/f16) the GEMMs take rounded operands; the node remembers
// which precision the forward pass ran in so that the backward pass recomputes the same probabilities.
#include <math.h>

#include "core/cpu/attention.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/attention.h"
#endif

typedef void (*attention_fwd_fn)(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                                 const uint8_t *key_mask, float *out, float *lse, void *scratch);
typedef void (*attention_bwd_fn)(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                                 const uint8_t *key_mask, const float *out, const float *lse, const float *dout,
                                 float *dq, float *dk, float *dv, void *scratch);
typedef size_t (*attention_scratch_fn)(const gvm_attention_dims *d);
// Autocast variants (devices with low-precision GEMMs): `dtype` is GVM_BF16 or GVM_F16.
typedef void (*attention_fwd_lowp_fn)(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                      const float *v, const uint8_t *key_mask, float *out, float *lse, void *scratch);
typedef void (*attention_bwd_lowp_fn)(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                      const float *v, const uint8_t *key_mask, const float *out, const float *lse,
                                      const float *dout, float *dq, float *dk, float *dv, void *scratch);
typedef size_t (*attention_lowp_scratch_fn)(gvm_dtype dtype, const gvm_attention_dims *d);

static const attention_fwd_fn k_attention_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_attention_fwd,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_attention_fwd)};
static const attention_bwd_fn k_attention_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_attention_bwd,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_attention_bwd)};
static const attention_scratch_fn k_attention_fwd_scratch[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_attention_fwd_scratch, GVM_CUDA_KERNEL(gvm_cuda_attention_fwd_scratch)};
static const attention_scratch_fn k_attention_bwd_scratch[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_attention_bwd_scratch, GVM_CUDA_KERNEL(gvm_cuda_attention_bwd_scratch)};
// The CPU has none: autocast is ignored there (compute_type() never picks these for it).
static const attention_fwd_lowp_fn k_attention_fwd_lowp[GVM_DEVICE_COUNT] = {
    GVM_CUDA_KERNEL(gvm_cuda_attention_fwd_lowp)};
static const attention_bwd_lowp_fn k_attention_bwd_lowp[GVM_DEVICE_COUNT] = {
    GVM_CUDA_KERNEL(gvm_cuda_attention_bwd_lowp)};
static const attention_lowp_scratch_fn k_attention_fwd_lowp_scratch[GVM_DEVICE_COUNT] = {
    GVM_CUDA_KERNEL(gvm_cuda_attention_fwd_lowp_scratch)};
static const attention_lowp_scratch_fn k_attention_bwd_lowp_scratch[GVM_DEVICE_COUNT] = {
    GVM_CUDA_KERNEL(gvm_cuda_attention_bwd_lowp_scratch)};

typedef struct {
    gvm_attention_dims dims;
    gvm_tensor *lse;    // [B, H, Tq]
    gvm_dtype compute;  // GEMM operand type of the forward pass: GVM_F32, or the autocast type
} attention_saved;

// Tensor data is handed to the kernels as it is (device memory on a GPU): never read here.
static const uint8_t *mask_data(const gvm_tensor *mask) { return mask ? (const uint8_t *)mask->data : NULL; }

// The GEMM operand type on `device`: the context's autocast type where the backend has one, else f32.
static gvm_dtype compute_type(const gvm_ctx *ctx, gvm_device device) {
    return device == GVM_DEVICE_CPU ? GVM_F32 : ctx->autocast;
}

static void attention_backward(gvm_ctx *ctx, gvm_node *node) {
    const attention_saved *s = node->saved;
    gvm_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2], *mask = node->in[3];
    float *dq = gvm_needs_grad(q) ? gvm_grad_data(ctx, q) : NULL;
    float *dk = gvm_needs_grad(k) ? gvm_grad_data(ctx, k) : NULL;
    float *dv = gvm_needs_grad(v) ? gvm_grad_data(ctx, v) : NULL;
    bool lowp = s->compute != GVM_F32;
    size_t scratch_bytes = lowp ? GVM_DISPATCH(k_attention_bwd_lowp_scratch, q->device, "attention")(s->compute, &s->dims)
                                : GVM_DISPATCH(k_attention_bwd_scratch, q->device, "attention")(&s->dims);
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    void *scratch = gvm_arena_alloc(gvm_ctx_data_arena(ctx), scratch_bytes);
    if (lowp)
        GVM_DISPATCH(k_attention_bwd_lowp, q->device, "attention")
        (s->compute, &s->dims, q->data, k->data, v->data, mask_data(mask), node->out->data, s->lse->data,
         node->out->grad->data, dq, dk, dv, scratch);
    else
        GVM_DISPATCH(k_attention_bwd, q->device, "attention")
        (&s->dims, q->data, k->data, v->data, mask_data(mask), node->out->data, s->lse->data, node->out->grad->data,
         dq, dk, dv, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // the scratch is dead; the next layer reuses it
}

gvm_tensor *gvm_attention(gvm_ctx *ctx, gvm_tensor *q, gvm_tensor *k, gvm_tensor *v, const gvm_attention_opts *opts) {
    GVM_CHECK(q->dtype == GVM_F32 && k->dtype == GVM_F32 && v->dtype == GVM_F32, "attention: f32 q, k, v required");
    GVM_CHECK(q->ndim == 4 && k->ndim == 4 && v->ndim == 4,
              "attention: q, k, v must be [B, T, H, D] (ranks %d, %d, %d)", q->ndim, k->ndim, v->ndim);
    int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    int64_t Tk = k->shape[1], Dv = v->shape[3];
    GVM_CHECK(k->shape[0] == B && k->shape[2] == H && k->shape[3] == D,
              "attention: k must be [B=%lld, Tk, H=%lld, D=%lld]", (long long)B, (long long)H, (long long)D);
    GVM_CHECK(v->shape[0] == B && v->shape[1] == Tk && v->shape[2] == H,
              "attention: v must be [B=%lld, Tk=%lld, H=%lld, Dv]", (long long)B, (long long)Tk, (long long)H);
    GVM_CHECK(D > 0, "attention: head dim D must be positive");
    GVM_CHECK(q->device == k->device && q->device == v->device, "attention: q, k, v on different devices");
    // A KV cache's prefix: the first kv_len steps of k and v are the keys (k, v rows are Tk_all long).
    const int64_t Tk_all = Tk, kv_len = opts ? opts->kv_len : 0;
    if (kv_len > 0) {
        GVM_CHECK(kv_len <= Tk_all, "attention: kv_len %lld exceeds k's %lld steps", (long long)kv_len,
                  (long long)Tk_all);
        GVM_CHECK(q->device == GVM_DEVICE_CPU && compute_type(ctx, q->device) == GVM_F32,
                  "attention: kv_len is for f32 inference on the CPU");
        GVM_CHECK(!gvm_needs_grad(q) && !gvm_needs_grad(k) && !gvm_needs_grad(v),
                  "attention: kv_len is for inference (no input may need a gradient)");
        Tk = kv_len;
    }
    gvm_tensor *mask = opts ? opts->key_mask : NULL;
    if (mask) {
        GVM_CHECK(mask->dtype == GVM_BOOL || mask->dtype == GVM_U8, "attention: key_mask must be bool or u8");
        GVM_CHECK(mask->ndim == 2 && mask->shape[0] == B && mask->shape[1] == Tk,
                  "attention: key_mask must be [B=%lld, Tk=%lld]", (long long)B, (long long)Tk);
        GVM_CHECK(mask->device == q->device, "attention: key_mask on another device");
    }
    float scale = opts && opts->scale != 0.0f ? opts->scale : (float)(1.0 / sqrt((double)D));
    gvm_attention_dims dims = {B, Tq, Tk, H, D, Dv, opts && opts->causal, scale, kv_len > 0 ? Tk_all : 0};

    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 4, (int64_t[]){B, Tq, H, Dv});
    gvm_tensor *lse = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){B, H, Tq});
    gvm_dtype compute = compute_type(ctx, q->device);
    bool lowp = compute != GVM_F32;
    size_t scratch_bytes = lowp ? GVM_DISPATCH(k_attention_fwd_lowp_scratch, q->device, "attention")(compute, &dims)
                                : GVM_DISPATCH(k_attention_fwd_scratch, q->device, "attention")(&dims);
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    void *scratch = gvm_arena_alloc(gvm_ctx_data_arena(ctx), scratch_bytes);
    if (lowp)
        GVM_DISPATCH(k_attention_fwd_lowp, q->device, "attention")
        (compute, &dims, q->data, k->data, v->data, mask_data(mask), out->data, lse->data, scratch);
    else
        GVM_DISPATCH(k_attention_fwd, q->device, "attention")
        (&dims, q->data, k->data, v->data, mask_data(mask), out->data, lse->data, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);

    gvm_tensor *inputs[4] = {q, k, v, mask};
    gvm_node *node = gvm_record(ctx, "attention", attention_backward, out, inputs, 4, sizeof(attention_saved));
    if (node) *(attention_saved *)node->saved = (attention_saved){dims, lse, compute};
    return out;
}
