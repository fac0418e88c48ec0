// ops/matmul.c: batched matrix product and the linear layer, forward and backward.
//
// Every product is a (strided batched) GEMM on the tensors' device. Under autocast (ctx->autocast bf16 or
// f16, CUDA only) the GEMM operands are rounded to that type into scratch copies and multiplied with f32
// accumulation; outputs and gradients stay f32. A node remembers the type its forward ran in, so its
// backward multiplies in the same type even when it runs outside the autocast scope.
#include <string.h>

#include "core/cpu/gemm.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/grad_internal.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/elementwise.h"
#include "core/cuda/gemm.h"
#endif

typedef struct {
    bool trans_a, trans_b;
    int64_t batch, M, N, K;
    bool b_shared;    // b is 2-D and used by every batch entry
    gvm_dtype dtype;  // what the GEMMs multiply in: GVM_F32, or the autocast type of the forward
} matmul_saved;

typedef struct {
    gvm_dtype dtype;  // as in matmul_saved
} linear_saved;

static void matmul_backward(gvm_ctx *ctx, gvm_node *node);

// Forward and backward all reduce to strided batched GEMMs, so one kernel table serves both.
typedef void (*sgemm_batched_fn)(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                 float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                                 int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c);
static const sgemm_batched_fn k_gemm[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_sgemm_batched,
                                                          GVM_CUDA_KERNEL(gvm_cuda_sgemm_batched)};

// The autocast GEMMs: A and B in bf16/f16, C in f32. The CPU ignores autocast, so it has no slot.
typedef void (*gemm_lowp_batched_fn)(gvm_dtype in_dtype, int64_t batch, bool trans_a, bool trans_b, int64_t M,
                                     int64_t N, int64_t K, float alpha, const void *A, int64_t lda, int64_t stride_a,
                                     const void *B, int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                                     int64_t stride_c);
static const gemm_lowp_batched_fn k_gemm_lowp[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = NULL,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_gemm_lowp_batched)};

// Rounding f32 operands to the autocast type (CUDA only, as above).
typedef void (*cast_fn)(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n);
static const cast_fn k_cast[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = NULL, GVM_CUDA_KERNEL(gvm_cuda_cast)};

// The type a GEMM on `device` multiplies in under ctx's autocast setting: the CPU always uses f32.
static gvm_dtype gemm_dtype(const gvm_ctx *ctx, gvm_device device) {
    if (device == GVM_DEVICE_CPU) return GVM_F32;
    return ctx->autocast == GVM_BF16 || ctx->autocast == GVM_F16 ? ctx->autocast : GVM_F32;
}

// An f32 operand src[n] as the GEMM reads it: src itself for f32, else a copy rounded to `dtype` in the data
// arena (the caller took a mark before and rewinds to it once the GEMMs are queued).
static const void *gemm_operand(gvm_ctx *ctx, gvm_device device, gvm_dtype dtype, const float *src, int64_t n) {
    if (dtype == GVM_F32) return src;
    void *dst = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(n > 0 ? n : 1) * gvm_dtype_size(dtype));
    if (n > 0) GVM_DISPATCH(k_cast, device, "matmul (autocast)")(src, GVM_F32, dst, dtype, n);
    return dst;
}

// Batched GEMM on `device` with A and B of `dtype` (f32, or the autocast type on CUDA); C is f32.
static void gemm_batched(gvm_device device, gvm_dtype dtype, int64_t batch, bool trans_a, bool trans_b, int64_t M,
                         int64_t N, int64_t K, float alpha, const void *A, int64_t lda, int64_t stride_a,
                         const void *B, int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                         int64_t stride_c) {
    if (dtype == GVM_F32)
        GVM_DISPATCH(k_gemm, device, "matmul")(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb,
                                               stride_b, beta, C, ldc, stride_c);
    else
        GVM_DISPATCH(k_gemm_lowp, device, "matmul (autocast)")(dtype, batch, trans_a, trans_b, M, N, K, alpha, A, lda,
                                                               stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}

// One GEMM on `device` (a batch of one).
static void gemm(gvm_device device, gvm_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_batched(device, dtype, 1, trans_a, trans_b, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
}

gvm_tensor *gvm_matmul(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, bool trans_a, bool trans_b) {
    GVM_CHECK(a->dtype == GVM_F32 && b->dtype == GVM_F32, "matmul: f32 inputs required");
    GVM_CHECK(a->ndim >= 2 && b->ndim >= 2, "matmul: inputs need at least 2 dims (got %d and %d)", a->ndim, b->ndim);
    int64_t M = trans_a ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    int64_t Ka = trans_a ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t Kb = trans_b ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    int64_t N = trans_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    GVM_CHECK(Ka == Kb, "matmul: inner dims differ (%lld vs %lld)", (long long)Ka, (long long)Kb);
    bool b_shared = b->ndim == 2 && a->ndim > 2;
    if (!b_shared) {
        GVM_CHECK(a->ndim == b->ndim, "matmul: batch ranks differ (%d vs %d)", a->ndim, b->ndim);
        for (int i = 0; i < a->ndim - 2; i++)
            GVM_CHECK(a->shape[i] == b->shape[i], "matmul: batch dim %d differs (%lld vs %lld)", i,
                      (long long)a->shape[i], (long long)b->shape[i]);
    }
    int64_t batch = gvm_shape_numel(a->ndim - 2, a->shape);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim, shape);
    float *C = out->data;
    gvm_device dev = a->device;
    gvm_dtype dt = gemm_dtype(ctx, dev);
    // Autocast copies of the operands live only until the GEMMs are queued (work on the one stream is ordered).
    gvm_arena *scratch = gvm_ctx_data_arena(ctx);
    gvm_arena_mark mark = gvm_arena_save(scratch);
    const void *A = gemm_operand(ctx, dev, dt, a->data, a->numel), *B = gemm_operand(ctx, dev, dt, b->data, b->numel);
    int64_t lda = trans_a ? M : Ka, ldb = trans_b ? Ka : N;
    if (b_shared && !trans_a) {
        // All batch rows stacked form one [batch*M, K] matrix: one large GEMM.
        gemm(dev, dt, false, trans_b, batch * M, N, Ka, A, lda, B, ldb, 0.0f, C, N);
    } else {
        gemm_batched(dev, dt, batch, trans_a, trans_b, M, N, Ka, 1.0f, A, lda, M * Ka, B, ldb, b_shared ? 0 : Ka * N,
                     0.0f, C, N, M * N);
    }
    gvm_arena_rewind(scratch, mark);
    gvm_tensor *inputs[2] = {a, b};
    gvm_node *node = gvm_record(ctx, "matmul", matmul_backward, out, inputs, 2, sizeof(matmul_saved));
    if (node) *(matmul_saved *)node->saved = (matmul_saved){trans_a, trans_b, batch, M, N, Ka, b_shared, dt};
    return out;
}

static void matmul_backward(gvm_ctx *ctx, gvm_node *node) {
    const matmul_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *b = node->in[1];
    gvm_device dev = a->device;
    int64_t M = s->M, N = s->N, K = s->K;
    int64_t lda = s->trans_a ? M : K, ldb = s->trans_b ? K : N;
    int64_t sa = M * K, sb = s->b_shared ? 0 : K * N, sc = M * N;
    // Gradient buffers first: they may be allocated now, and must not fall inside the scratch mark.
    float *dA = gvm_needs_grad(a) ? gvm_grad_data(ctx, a) : NULL;
    float *dB = gvm_needs_grad(b) ? gvm_grad_data(ctx, b) : NULL;
    gvm_arena *scratch = gvm_ctx_data_arena(ctx);
    gvm_arena_mark mark = gvm_arena_save(scratch);
    const void *dC = gemm_operand(ctx, dev, s->dtype, node->out->grad->data, node->out->numel);
    const void *A = dB ? gemm_operand(ctx, dev, s->dtype, a->data, a->numel) : NULL;
    const void *B = dA ? gemm_operand(ctx, dev, s->dtype, b->data, b->numel) : NULL;
    if (dA) {
        if (!s->trans_a) {
            // dA[M,K] += dC[M,N] op(B)^T
            if (s->b_shared)
                gemm(dev, s->dtype, false, !s->trans_b, s->batch * M, K, N, dC, N, B, ldb, 1.0f, dA, K);
            else
                gemm_batched(dev, s->dtype, s->batch, false, !s->trans_b, M, K, N, 1.0f, dC, N, sc, B, ldb, sb, 1.0f,
                             dA, K, sa);
        } else {
            // A stored [K,M]: dA[K,M] += op(B)[K,N] dC^T
            gemm_batched(dev, s->dtype, s->batch, s->trans_b, true, K, M, N, 1.0f, B, ldb, sb, dC, N, sc, 1.0f, dA, M,
                         sa);
        }
    }
    if (dB) {
        if (s->b_shared && !s->trans_a) {
            // Stacked rows: one GEMM over batch*M.
            if (!s->trans_b)
                gemm(dev, s->dtype, true, false, K, N, s->batch * M, A, lda, dC, N, 1.0f, dB, N);
            else
                gemm(dev, s->dtype, true, false, N, K, s->batch * M, dC, N, A, lda, 1.0f, dB, K);
        } else if (!s->trans_b) {
            // dB[K,N] += op(A)^T dC
            gemm_batched(dev, s->dtype, s->batch, !s->trans_a, false, K, N, M, 1.0f, A, lda, sa, dC, N, sc, 1.0f, dB,
                         N, sb);
        } else {
            // B stored [N,K]: dB[N,K] += dC^T op(A)
            gemm_batched(dev, s->dtype, s->batch, true, s->trans_a, N, K, M, 1.0f, dC, N, sc, A, lda, sa, 1.0f, dB,
                         K, sb);
        }
    }
    gvm_arena_rewind(scratch, mark);
}

// ---- linear ----------------------------------------------------------------------------------------------

// Y[rows, out_f] = b[out_f] on every row: the GEMM then accumulates onto it.
typedef void (*bias_fill_fn)(float *Y, const float *b, int64_t rows, int64_t out_f);
// db[out_f] += column sums of dY[rows, out_f].
typedef void (*bias_grad_fn)(const float *dY, float *db, int64_t rows, int64_t out_f);

static void cpu_bias_rows_fill(float *Y, const float *b, int64_t rows, int64_t out_f) {
#pragma omp parallel for schedule(static) if (rows * out_f > 65536)
    for (int64_t r = 0; r < rows; r++) memcpy(Y + r * out_f, b, (size_t)out_f * sizeof(float));
}

// Each column is summed in double in row order, as a column-by-column loop would (the same bits on every
// thread count), but rows are read contiguously: a thread owns a block of columns and streams every row's
// slice of it, instead of striding down one column at a time (one cache line per element).
static void cpu_bias_grad(const float *dY, float *db, int64_t rows, int64_t out_f) {
    enum { BLOCK = 256 };
    const int64_t n_blocks = (out_f + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (rows * out_f > 65536)
    for (int64_t bl = 0; bl < n_blocks; bl++) {
        const int64_t j0 = bl * BLOCK, nj = out_f - j0 < BLOCK ? out_f - j0 : BLOCK;
        double acc[BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *row = dY + r * out_f + j0;
            for (int64_t j = 0; j < nj; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < nj; j++) db[j0 + j] += (float)acc[j];
    }
}

static const bias_fill_fn k_bias_fill[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = cpu_bias_rows_fill,
                                                           GVM_CUDA_KERNEL(gvm_cuda_bias_rows_fill)};
static const bias_grad_fn k_bias_grad[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = cpu_bias_grad,
                                                           GVM_CUDA_KERNEL(gvm_cuda_bias_grad)};

static void linear_backward(gvm_ctx *ctx, gvm_node *node) {
    const linear_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2];
    gvm_device dev = x->device;
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t rows = gvm_shape_numel(x->ndim - 1, x->shape);
    const float *dY = node->out->grad->data;  // [rows, out]
    // Gradient buffers first: they may be allocated now, and must not fall inside the scratch mark.
    // A first gradient of x is written by the GEMM (beta 0): no zero fill, no read of C.
    bool fresh_x = false;
    float *dX = gvm_needs_grad(x) ? gvm_grad_fresh(ctx, x, &fresh_x) : NULL;
    float *dW = gvm_needs_grad(w) ? gvm_grad_data(ctx, w) : NULL;
    float *db = gvm_needs_grad(bias) ? gvm_grad_data(ctx, bias) : NULL;
    gvm_arena *scratch = gvm_ctx_data_arena(ctx);
    gvm_arena_mark mark = gvm_arena_save(scratch);
    const void *dYc = dX || dW ? gemm_operand(ctx, dev, s->dtype, dY, node->out->numel) : NULL;
    if (dX)  // dX[rows,in] += dY[rows,out] W[out,in]
        gemm(dev, s->dtype, false, false, rows, in_f, out_f, dYc, out_f,
             gemm_operand(ctx, dev, s->dtype, w->data, w->numel), in_f, fresh_x ? 0.0f : 1.0f, dX, in_f);
    if (dW)  // dW[out,in] += dY^T X
        gemm(dev, s->dtype, true, false, out_f, in_f, rows, dYc, out_f,
             gemm_operand(ctx, dev, s->dtype, x->data, x->numel), in_f, 1.0f, dW, in_f);
    gvm_arena_rewind(scratch, mark);
    if (db) GVM_DISPATCH(k_bias_grad, dev, "linear")(dY, db, rows, out_f);  // f32 dY even under autocast
}

gvm_tensor *gvm_linear(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias) {
    GVM_CHECK(x->dtype == GVM_F32 && w->dtype == GVM_F32, "linear: f32 inputs required");
    GVM_CHECK(w->ndim == 2, "linear: weight must be [out, in], got rank %d", w->ndim);
    GVM_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1], "linear: x's last dim %lld != weight in %lld",
              (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    GVM_CHECK(!bias || (bias->ndim == 1 && bias->shape[0] == w->shape[0]), "linear: bias must be [out]");
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    // The leading dims (not numel / in_f: that is 0 / 0 for in_f == 0, where Y is still [rows, out_f]).
    int64_t rows = gvm_shape_numel(x->ndim - 1, x->shape);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, x->ndim, shape);
    float *Y = out->data;
    gvm_device dev = x->device;
    float beta = 0.0f;
    if (bias) {
        // Start from the broadcast bias and let the GEMM accumulate onto it.
        GVM_DISPATCH(k_bias_fill, dev, "linear")(Y, bias->data, rows, out_f);
        beta = 1.0f;
    }
    gvm_dtype dt = gemm_dtype(ctx, dev);
    gvm_arena *scratch = gvm_ctx_data_arena(ctx);
    gvm_arena_mark mark = gvm_arena_save(scratch);
    gemm(dev, dt, false, true, rows, out_f, in_f, gemm_operand(ctx, dev, dt, x->data, x->numel), in_f,
         gemm_operand(ctx, dev, dt, w->data, w->numel), in_f, beta, Y, out_f);
    gvm_arena_rewind(scratch, mark);
    gvm_tensor *inputs[3] = {x, w, bias};
    gvm_node *node = gvm_record(ctx, "linear", linear_backward, out, inputs, 3, sizeof(linear_saved));
    if (node) *(linear_saved *)node->saved = (linear_saved){dt};
    return out;
}
