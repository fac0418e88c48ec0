// ops/matmul.c: batched matrix product and the linear layer, forward and backward.
#include <string.h>

#include "core/cpu/gemm.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

typedef struct {
    bool trans_a, trans_b;
    int64_t batch, M, N, K;
    bool b_shared;  // b is 2-D and used by every batch entry
} matmul_saved;

static void matmul_backward(gvm_ctx *ctx, gvm_node *node);

// Forward and backward all reduce to strided batched GEMMs, so one kernel table serves both.
typedef void (*sgemm_batched_fn)(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                 float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                                 int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c);
static const sgemm_batched_fn k_gemm[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_sgemm_batched};

// One GEMM on `device` (a batch of one).
static void gemm(gvm_device device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    GVM_DISPATCH(k_gemm, device, "matmul")(1, trans_a, trans_b, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
}

static void gemm_batched(gvm_device device, int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                         int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c) {
    GVM_DISPATCH(k_gemm, device, "matmul")(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
                                           beta, C, ldc, stride_c);
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
    const float *A = a->data, *B = b->data;
    float *C = out->data;
    int64_t lda = trans_a ? M : Ka, ldb = trans_b ? Ka : N;
    if (b_shared && !trans_a) {
        // All batch rows stacked form one [batch*M, K] matrix: one large GEMM.
        gemm(a->device, false, trans_b, batch * M, N, Ka, A, lda, B, ldb, 0.0f, C, N);
    } else {
        gemm_batched(a->device, batch, trans_a, trans_b, M, N, Ka, 1.0f, A, lda, M * Ka, B, ldb, b_shared ? 0 : Ka * N,
                              0.0f, C, N, M * N);
    }
    gvm_tensor *inputs[2] = {a, b};
    gvm_node *node = gvm_record(ctx, "matmul", matmul_backward, out, inputs, 2, sizeof(matmul_saved));
    if (node) *(matmul_saved *)node->saved = (matmul_saved){trans_a, trans_b, batch, M, N, Ka, b_shared};
    return out;
}

static void matmul_backward(gvm_ctx *ctx, gvm_node *node) {
    const matmul_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *b = node->in[1];
    const float *dC = node->out->grad->data;
    const float *A = a->data, *B = b->data;
    int64_t M = s->M, N = s->N, K = s->K;
    int64_t lda = s->trans_a ? M : K, ldb = s->trans_b ? K : N;
    int64_t sa = M * K, sb = s->b_shared ? 0 : K * N, sc = M * N;
    if (gvm_needs_grad(a)) {
        float *dA = gvm_grad_data(ctx, a);
        if (!s->trans_a) {
            // dA[M,K] += dC[M,N] op(B)^T
            if (s->b_shared)
                gemm(a->device, false, !s->trans_b, s->batch * M, K, N, dC, N, B, ldb, 1.0f, dA, K);
            else
                gemm_batched(a->device, s->batch, false, !s->trans_b, M, K, N, 1.0f, dC, N, sc, B, ldb, sb, 1.0f, dA, K,
                                      sa);
        } else {
            // A stored [K,M]: dA[K,M] += op(B)[K,N] dC^T
            gemm_batched(a->device, s->batch, s->trans_b, true, K, M, N, 1.0f, B, ldb, sb, dC, N, sc, 1.0f, dA, M, sa);
        }
    }
    if (gvm_needs_grad(b)) {
        float *dB = gvm_grad_data(ctx, b);
        if (s->b_shared && !s->trans_a) {
            // Stacked rows: one GEMM over batch*M.
            if (!s->trans_b)
                gemm(a->device, true, false, K, N, s->batch * M, A, lda, dC, N, 1.0f, dB, N);
            else
                gemm(a->device, true, false, N, K, s->batch * M, dC, N, A, lda, 1.0f, dB, K);
        } else if (!s->trans_b) {
            // dB[K,N] += op(A)^T dC
            gemm_batched(a->device, s->batch, !s->trans_a, false, K, N, M, 1.0f, A, lda, sa, dC, N, sc, 1.0f, dB, N, sb);
        } else {
            // B stored [N,K]: dB[N,K] += dC^T op(A)
            gemm_batched(a->device, s->batch, true, s->trans_a, N, K, M, 1.0f, dC, N, sc, A, lda, sa, 1.0f, dB, K, sb);
        }
    }
}

// ---- linear ----------------------------------------------------------------------------------------------

static void linear_backward(gvm_ctx *ctx, gvm_node *node) {
    gvm_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2];
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t rows = x->numel / in_f;
    const float *dY = node->out->grad->data;  // [rows, out]
    if (gvm_needs_grad(x))  // dX[rows,in] += dY[rows,out] W[out,in]
        gemm(x->device, false, false, rows, in_f, out_f, dY, out_f, w->data, in_f, 1.0f, gvm_grad_data(ctx, x),
                      in_f);
    if (gvm_needs_grad(w))  // dW[out,in] += dY^T X
        gemm(x->device, true, false, out_f, in_f, rows, dY, out_f, x->data, in_f, 1.0f, gvm_grad_data(ctx, w),
                      in_f);
    if (gvm_needs_grad(bias)) {
        float *db = gvm_grad_data(ctx, bias);
#pragma omp parallel for schedule(static) if (rows * out_f > 65536)
        for (int64_t j = 0; j < out_f; j++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++) acc += dY[r * out_f + j];
            db[j] += (float)acc;
        }
    }
}

gvm_tensor *gvm_linear(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *w, gvm_tensor *bias) {
    GVM_CHECK(x->dtype == GVM_F32 && w->dtype == GVM_F32, "linear: f32 inputs required");
    GVM_CHECK(w->ndim == 2, "linear: weight must be [out, in], got rank %d", w->ndim);
    GVM_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1], "linear: x's last dim %lld != weight in %lld",
              (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    GVM_CHECK(!bias || (bias->ndim == 1 && bias->shape[0] == w->shape[0]), "linear: bias must be [out]");
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t rows = x->numel / (in_f ? in_f : 1);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, x->ndim, shape);
    float *Y = out->data;
    float beta = 0.0f;
    if (bias) {
        // Start from the broadcast bias and let the GEMM accumulate onto it.
        const float *bv = bias->data;
#pragma omp parallel for schedule(static) if (rows * out_f > 65536)
        for (int64_t r = 0; r < rows; r++) memcpy(Y + r * out_f, bv, (size_t)out_f * sizeof(float));
        beta = 1.0f;
    }
    gemm(x->device, false, true, rows, out_f, in_f, x->data, in_f, w->data, in_f, beta, Y, out_f);
    gvm_tensor *inputs[3] = {x, w, bias};
    gvm_record(ctx, "linear", linear_backward, out, inputs, 3, 0);
    return out;
}
