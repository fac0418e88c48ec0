// ops/lstm.c: one LSTM layer (PyTorch's nn.LSTM with batch_first, zero initial state, gates i, f, g, o),
// forward and backward through time. The kernels live in core/cpu/lstm.c; a stacked LSTM is several calls.
#include "core/cpu/lstm.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/lstm.h"
#endif

typedef void (*lstm_fwd_fn)(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh,
                            const float *b_ih, const float *b_hh, float *h, float *gates, float *cell,
                            float *scratch);
typedef int64_t (*lstm_scratch_fn)(const gvm_lstm_dims *d);
typedef void (*lstm_bwd_fn)(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh,
                            const float *h, const float *gates, const float *cell, const float *dh, float *dx,
                            float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *scratch);

static const lstm_fwd_fn k_lstm_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_lstm_fwd,
                                                         GVM_CUDA_KERNEL(gvm_cuda_lstm_fwd)};
static const lstm_scratch_fn k_lstm_fwd_scratch[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_lstm_fwd_scratch_floats, GVM_CUDA_KERNEL(gvm_cuda_lstm_fwd_scratch_floats)};
static const lstm_scratch_fn k_lstm_bwd_scratch[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_lstm_bwd_scratch_floats, GVM_CUDA_KERNEL(gvm_cuda_lstm_bwd_scratch_floats)};
static const lstm_bwd_fn k_lstm_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_lstm_bwd,
                                                         GVM_CUDA_KERNEL(gvm_cuda_lstm_bwd)};

typedef struct {
    gvm_lstm_dims dims;
    float *gates;  // [B, T, 4H] post-activation i, f, g, o (arena)
    float *cell;   // [B, T, H] c_t (arena)
} lstm_saved;

static void lstm_backward(gvm_ctx *ctx, gvm_node *node) {
    const lstm_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *w_ih = node->in[1], *w_hh = node->in[2], *b_ih = node->in[3], *b_hh = node->in[4];
    float *dx = gvm_needs_grad(x) ? gvm_grad_data(ctx, x) : NULL;           // [B, T, I]
    float *dw_ih = gvm_needs_grad(w_ih) ? gvm_grad_data(ctx, w_ih) : NULL;  // [4H, I]
    float *dw_hh = gvm_needs_grad(w_hh) ? gvm_grad_data(ctx, w_hh) : NULL;  // [4H, H]
    float *db_ih = gvm_needs_grad(b_ih) ? gvm_grad_data(ctx, b_ih) : NULL;  // [4H]
    float *db_hh = gvm_needs_grad(b_hh) ? gvm_grad_data(ctx, b_hh) : NULL;  // [4H]
    int64_t n = GVM_DISPATCH(k_lstm_bwd_scratch, x->device, "lstm")(&s->dims);
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    float *scratch = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(n > 0 ? n : 1) * sizeof(float));
    GVM_DISPATCH(k_lstm_bwd, x->device, "lstm")
    (&s->dims, x->data, w_ih->data, w_hh->data, node->out->data, s->gates, s->cell, node->out->grad->data, dx, dw_ih,
     dw_hh, db_ih, db_hh, scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // scratch is dead once the kernel returns
}

gvm_tensor *gvm_lstm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w_ih, gvm_tensor *w_hh, gvm_tensor *b_ih,
                     gvm_tensor *b_hh) {
    GVM_CHECK(x->dtype == GVM_F32 && w_ih->dtype == GVM_F32 && w_hh->dtype == GVM_F32 &&
                  (!b_ih || b_ih->dtype == GVM_F32) && (!b_hh || b_hh->dtype == GVM_F32),
              "lstm: f32 inputs required");
    GVM_CHECK(x->ndim == 3, "lstm: x must be [B, T, I], got rank %d", x->ndim);
    GVM_CHECK(w_hh->ndim == 2 && w_hh->shape[0] == 4 * w_hh->shape[1] && w_hh->shape[1] >= 1,
              "lstm: w_hh must be [4H, H]");
    gvm_lstm_dims d = {x->shape[0], x->shape[1], x->shape[2], w_hh->shape[1]};
    GVM_CHECK(d.T >= 1, "lstm: sequence length must be >= 1");
    GVM_CHECK(w_ih->ndim == 2 && w_ih->shape[0] == 4 * d.H && w_ih->shape[1] == d.I,
              "lstm: w_ih must be [4H, I] = [%lld, %lld]", (long long)(4 * d.H), (long long)d.I);
    GVM_CHECK(!b_ih || (b_ih->ndim == 1 && b_ih->shape[0] == 4 * d.H), "lstm: b_ih must be [4H]");
    GVM_CHECK(!b_hh || (b_hh->ndim == 1 && b_hh->shape[0] == 4 * d.H), "lstm: b_hh must be [4H]");
    GVM_CHECK(w_ih->device == x->device && w_hh->device == x->device && (!b_ih || b_ih->device == x->device) &&
                  (!b_hh || b_hh->device == x->device),
              "lstm: inputs on different devices");

    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){d.B, d.T, d.H});  // [B, T, H]
    // The forward needs these buffers anyway; when a node is recorded they double as its saved state.
    float *gates = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(d.B * d.T * 4 * d.H) * sizeof(float));  // [B, T, 4H]
    float *cell = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(d.B * d.T * d.H) * sizeof(float));       // [B, T, H]
    int64_t n = GVM_DISPATCH(k_lstm_fwd_scratch, x->device, "lstm")(&d);
    gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
    float *scratch = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(n > 0 ? n : 1) * sizeof(float));
    GVM_DISPATCH(k_lstm_fwd, x->device, "lstm")
    (&d, x->data, w_ih->data, w_hh->data, b_ih ? b_ih->data : NULL, b_hh ? b_hh->data : NULL, out->data, gates, cell,
     scratch);
    gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);  // scratch is dead once the kernel returns
    gvm_tensor *inputs[5] = {x, w_ih, w_hh, b_ih, b_hh};
    gvm_node *node = gvm_record(ctx, "lstm", lstm_backward, out, inputs, 5, sizeof(lstm_saved));
    if (node) *(lstm_saved *)node->saved = (lstm_saved){d, gates, cell};
    return out;
}
