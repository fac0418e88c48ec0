// ops.h: every differentiable op of the core library.
//
// Conventions
//  * Every op takes the context first, runs at once, returns a new arena tensor (or a view) and records
//    a tape node when an input requires grad (see autograd.h). Inputs are never modified.
//  * Float math is f32 on the CPU. Index tensors may be i32 or i64; masks are bool (or u8), nonzero =
//    true.
//  * Shapes are written [B, T, D]-style beside each op; "..." is any number of leading dims.
//  * A misuse (mismatched shapes, wrong dtype) is a programming error and aborts with file:line.
#ifndef GVM_OPS_H
#define GVM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/autograd.h"
#include "core/context.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_AXIS_ALL 1000  // reduce over every element

// ---- matmul (core/ops/matmul.c) --------------------------------------------------------------------------
// a [..., M, K] (or [..., K, M] with trans_a), b [..., K, N] (or [..., N, K] with trans_b) -> [..., M, N].
// Batch dims must match, or b may be 2-D (shared by every batch entry, e.g. a weight).
gvm_tensor *gvm_matmul(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, bool trans_a, bool trans_b);
// x [..., in] , w [out, in], bias [out] or NULL -> [..., out] = x w^T + bias (PyTorch's nn.Linear layout).
gvm_tensor *gvm_linear(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias);

// ---- elementwise binary with NumPy broadcasting (core/ops/binary.c) ---------------------------------------
gvm_tensor *gvm_add(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);
gvm_tensor *gvm_sub(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);
gvm_tensor *gvm_mul(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);
gvm_tensor *gvm_div(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);

// ---- scalar and unary math (core/ops/unary.c) --------------------------------------------------------------
gvm_tensor *gvm_add_scalar(gvm_ctx *ctx, gvm_tensor *a, float s);  // a + s
gvm_tensor *gvm_mul_scalar(gvm_ctx *ctx, gvm_tensor *a, float s);  // a * s
gvm_tensor *gvm_pow_scalar(gvm_ctx *ctx, gvm_tensor *a, float p);  // a ^ p
gvm_tensor *gvm_neg(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_exp(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_log(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_sqrt(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_abs(gvm_ctx *ctx, gvm_tensor *a);

// ---- activations (core/ops/activation.c) ---------------------------------------------------------------------
gvm_tensor *gvm_gelu(gvm_ctx *ctx, gvm_tensor *a);       // exact: x * Phi(x) (erf form)
gvm_tensor *gvm_gelu_tanh(gvm_ctx *ctx, gvm_tensor *a);  // tanh approximation
gvm_tensor *gvm_relu(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_elu(gvm_ctx *ctx, gvm_tensor *a, float alpha);
gvm_tensor *gvm_silu(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_tanh(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_sigmoid(gvm_ctx *ctx, gvm_tensor *a);
// Zero each element with probability p and scale the rest by 1/(1-p), from the context's Philox stream;
// identity when !ctx->training or p == 0.
gvm_tensor *gvm_dropout(gvm_ctx *ctx, gvm_tensor *a, float p);
// out = mask ? value : a, mask (bool/u8) broadcast to a's shape.
gvm_tensor *gvm_masked_fill(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *mask, float value);

// ---- reductions (core/ops/reduce.c) -----------------------------------------------------------------------------
// Over one axis (negative counts from the end) or GVM_AXIS_ALL (result is a scalar, ndim 0).
gvm_tensor *gvm_sum(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim);
gvm_tensor *gvm_mean(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim);
// Max values; the gradient goes to the first maximal element (as PyTorch's max(dim)).
gvm_tensor *gvm_max(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim);
// Mean pooling over `axis` of x, counting only positions where mask != 0. mask (bool/u8) has shape
// x.shape[0..axis] (e.g. x [B, T, D], axis 1, mask [B, T]); NULL = plain mean. Rows with no valid
// position give 0. Output drops the axis: [B, D].
gvm_tensor *gvm_mean_pool(gvm_ctx *ctx, gvm_tensor *x, int axis, gvm_tensor *mask);

// ---- shape and indexing (core/ops/shape.c, core/ops/index.c) -------------------------------------------------
// A view with a new shape (one entry may be -1). Shares storage.
gvm_tensor *gvm_reshape(gvm_ctx *ctx, gvm_tensor *a, int ndim, const int64_t *shape);
// Copy with dims reordered: out.shape[i] = a.shape[perm[i]].
gvm_tensor *gvm_permute(gvm_ctx *ctx, gvm_tensor *a, const int *perm);
gvm_tensor *gvm_transpose(gvm_ctx *ctx, gvm_tensor *a, int dim0, int dim1);
// A contiguous copy (storage is always contiguous; this detaches a view from its base's storage).
gvm_tensor *gvm_contiguous(gvm_ctx *ctx, gvm_tensor *a);
gvm_tensor *gvm_concat(gvm_ctx *ctx, gvm_tensor *const *parts, int n_parts, int axis);
// Split `a` along `axis` into n_parts pieces of the given sizes (summing to a.shape[axis]); writes out[].
void gvm_split(gvm_ctx *ctx, gvm_tensor *a, int axis, int n_parts, const int64_t *sizes, gvm_tensor **out);
// a[..., start:end, ...] along `axis`. Along axis 0 it is a view (shares storage), otherwise a copy.
gvm_tensor *gvm_slice(gvm_ctx *ctx, gvm_tensor *a, int axis, int64_t start, int64_t end);
// Rows of `a` along `axis` picked by idx [n] (i32/i64): out.shape[axis] = n.
gvm_tensor *gvm_index_select(gvm_ctx *ctx, gvm_tensor *a, int axis, gvm_tensor *idx);
// PyTorch's gather: out[i][j][k] = a[i][idx[i][j][k]][k] for axis 1; idx has a's rank, out has idx's shape.
gvm_tensor *gvm_gather(gvm_ctx *ctx, gvm_tensor *a, int axis, gvm_tensor *idx);
// weight [V, D], idx [...] (i32/i64, each in 0..V-1) -> [..., D].
gvm_tensor *gvm_embedding(gvm_ctx *ctx, gvm_tensor *weight, gvm_tensor *idx);
// Convert dtype (float <-> float rounds to nearest even; gradient flows for float -> float).
gvm_tensor *gvm_cast(gvm_ctx *ctx, gvm_tensor *a, gvm_dtype dtype);

// ---- softmax, losses and normalisation (core/ops/softmax.c, loss.c, norm.c) -----------------------------------
gvm_tensor *gvm_softmax(gvm_ctx *ctx, gvm_tensor *a, int axis);
gvm_tensor *gvm_log_softmax(gvm_ctx *ctx, gvm_tensor *a, int axis);
// logits [N, C], targets [N] (i32/i64) -> scalar: mean over targets != ignore_index of -log softmax.
// All targets ignored gives 0 (and zero gradients), never NaN.
gvm_tensor *gvm_cross_entropy(gvm_ctx *ctx, gvm_tensor *logits, gvm_tensor *targets, int64_t ignore_index);
gvm_tensor *gvm_mse_loss(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);  // mean((a-b)^2), scalar
gvm_tensor *gvm_l1_loss(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b);   // mean(|a-b|), scalar
// Over the last dim: x [..., D], weight [D] or NULL, bias [D] or NULL.
gvm_tensor *gvm_layer_norm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *weight, gvm_tensor *bias, float eps);
// x [..., D], weight [D] or NULL: x * rsqrt(mean(x^2) + eps) * weight (F.rms_norm).
gvm_tensor *gvm_rms_norm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *weight, float eps);
// x / max(||x||_2, eps) along axis (PyTorch's F.normalize).
gvm_tensor *gvm_l2_normalize(gvm_ctx *ctx, gvm_tensor *x, int axis, float eps);
// sum(a / max(||a||, eps) * b / max(||b||, eps), axis) (current PyTorch's F.cosine_similarity); a, b same shape.
gvm_tensor *gvm_cosine_similarity(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, int axis, float eps);
// Weight normalisation (PyTorch's weight_norm, dim 0): w = g * v / ||v||, norm over all dims but 0.
// g [O, 1, ..., 1] (v's rank), v [O, ...] -> [O, ...].
gvm_tensor *gvm_weight_norm(gvm_ctx *ctx, gvm_tensor *g, gvm_tensor *v);

// ---- attention (core/ops/attention.c) ------------------------------------------------------------------------------
typedef struct gvm_attention_opts {
    bool causal;            // query i sees keys j <= i + (Tk - Tq) (aligned at the end, as with a KV cache)
    gvm_tensor *key_mask;   // [B, Tk] bool/u8, nonzero = attend; NULL = all keys
    float scale;            // 0 = 1/sqrt(D)
    // > 0: only the first kv_len of the Tk steps of k and v are keys (a KV cache's filled prefix inside its
    // capacity, so decoding needs no copy of the cache); key_mask is then [B, kv_len]. Inference only: the CPU,
    // f32, and no input may need a gradient.
    int64_t kv_len;
} gvm_attention_opts;
// Scaled dot-product attention, multi-head, as one fused op. Heads stay interleaved as linear layers
// produce them, so no permute copies are needed:
//   q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv] -> out [B, Tq, H, Dv]
// Memory is O(T) per query row: the B x H x Tq x Tk score tensor is never stored; the backward pass
// recomputes scores from the saved log-sum-exp [B, H, Tq]. A query row that may see no key gives 0.
gvm_tensor *gvm_attention(gvm_ctx *ctx, gvm_tensor *q, gvm_tensor *k, gvm_tensor *v,
                          const gvm_attention_opts *opts);

// ---- convolution and recurrence (core/ops/conv.c, core/ops/lstm.c) ------------------------------------------------
typedef struct gvm_conv1d_opts {
    int stride, padding, dilation, groups;  // 0 for stride/dilation/groups means 1
    int output_padding;                     // conv_transpose1d only
} gvm_conv1d_opts;
// x [B, Cin, T], w [Cout, Cin/groups, K], bias [Cout] or NULL -> [B, Cout, T'] (PyTorch's conv1d).
gvm_tensor *gvm_conv1d(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias, const gvm_conv1d_opts *opts);
// x [B, Cin, T], w [Cin, Cout/groups, K], bias [Cout] or NULL -> [B, Cout, T'] (PyTorch's conv_transpose1d).
gvm_tensor *gvm_conv_transpose1d(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias,
                                 const gvm_conv1d_opts *opts);
// One LSTM layer (PyTorch's nn.LSTM, gate order i, f, g, o), zero initial state, batch first:
// x [B, T, I], w_ih [4H, I], w_hh [4H, H], b_ih [4H] or NULL, b_hh [4H] or NULL -> [B, T, H].
gvm_tensor *gvm_lstm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w_ih, gvm_tensor *w_hh, gvm_tensor *b_ih,
                     gvm_tensor *b_hh);

#ifdef __cplusplus
}
#endif

#endif
