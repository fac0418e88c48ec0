// cuda/conv.cu: conv1d and conv_transpose1d on the GPU (see conv.h), through cuDNN's convolution API with
// 4-D NCHW descriptors of height 1.
//
// As in core/cpu/conv.c, both ops are one linear map and its adjoint. Call the tensor a convolution reads
// with its window the "signal" (conv1d: x; transposed: y) and the other one the "columns side" (conv1d: y;
// transposed: x). The cuDNN problem is then always the convolution signal [B, Cs, 1, Ls] -> columns
// [B, Cc, 1, Lc] with filter [Cc, Cs/G, 1, K], which is conv1d's weight [Cout, Cin/G, K] and also the
// transposed op's [Cin, Cout/G, K]; its three calls are
//   Forward         col = conv(sig)         conv1d forward, transposed dx
//   BackwardData    sig = adjoint(col)      transposed forward, conv1d dx
//   BackwardFilter  dW  += wgrad(sig, dcol) both weight gradients
// Gradients accumulate through cuDNN's beta = 1. Bias add and bias gradient are our own kernels (the
// gradient is a fixed-order double sum, deterministic).
//
// Numerics and determinism: the descriptors ask for CUDNN_FMA_MATH (plain f32 FMA kernels; the default math
// type lets cuDNN use TF32 tensor cores for f32 on Ampere and later, which misses the CPU by ~1e-3). The
// algorithm of each call comes from cuDNN's heuristics (cudnnGet*_v7, not the timing-based cudnnFind*, whose
// pick can change from run to run and with it the bits of the result), once per geometry, and must be
// reported deterministic (no atomics: this rules out BackwardData/BackwardFilter ALGO_0) and be neither
// FFT nor Winograd based (their transforms lose accuracy).
//
// cuDNN derives the columns length from the signal: floor((Ls + 2P - D(K-1) - 1) / S) + 1. That is Lc for
// conv1d, and for the transposed op too unless output_padding >= stride (allowed when dilation is larger),
// where it is longer: then the columns side goes through a zero-padded copy in the workspace.
#include "core/cuda/conv.h"

#include <limits.h>
#include <stdlib.h>

#include "core/cuda/common.cuh"

// Largest cuDNN workspace an algorithm may ask for (the workspace is a grow-only buffer kept for good).
#define CONV_MAX_WS_BYTES ((size_t)512 << 20)
#define CONV_THREADS 256

// ---- the cuDNN problem of a call -------------------------------------------------------------------------------

// A geometry lowered to the signal / columns sides (see the top of the file).
typedef struct conv_problem {
    int64_t B, Cs, Ls, Cc, Lc, K, S, P, D, G;
    int64_t Lc_dnn;  // columns length cuDNN derives from the signal (>= Lc)
    int64_t chunk;   // batch items per cuDNN call, so each tensor has fewer than 2^31 elements
} conv_problem;

static conv_problem lower(const gvm_conv1d_geom *g, bool transposed) {
    conv_problem p;
    p.B = g->B;
    p.Cs = transposed ? g->Cout : g->Cin;
    p.Ls = transposed ? g->Tout : g->T;
    p.Cc = transposed ? g->Cin : g->Cout;
    p.Lc = transposed ? g->T : g->Tout;
    p.K = g->K;
    p.S = g->stride;
    p.P = g->padding;
    p.D = g->dilation;
    p.G = g->groups;
    int64_t span = p.Ls + 2 * p.P - p.D * (p.K - 1) - 1;
    GVM_CHECK(span >= 0, "conv (cuda): signal length %lld too short for the dilated kernel", (long long)p.Ls);
    p.Lc_dnn = span / p.S + 1;
    GVM_CHECK(p.Lc_dnn >= p.Lc, "conv (cuda): columns length %lld < %lld", (long long)p.Lc_dnn, (long long)p.Lc);
    int64_t per = p.Cs * p.Ls > p.Cc * p.Lc_dnn ? p.Cs * p.Ls : p.Cc * p.Lc_dnn;  // elements per batch item
    GVM_CHECK(per <= INT_MAX, "conv (cuda): %lld elements per batch item exceed cuDNN's int range", (long long)per);
    p.chunk = per > 0 ? INT_MAX / per : p.B;
    if (p.chunk > p.B) p.chunk = p.B;
    if (p.chunk < 1) p.chunk = 1;
    return p;
}

// ---- per-geometry plans: descriptors and algorithms, made once ----------------------------------------------------

enum { ST_FWD = 0, ST_DATA = 1, ST_FILTER = 2, ST_COUNT = 3 };  // cuDNN's Forward, BackwardData, BackwardFilter

typedef struct conv_plan {
    int64_t B, Cs, Ls, Cc, Lc_dnn, K, S, P, D, G;  // the key (B: items per call)
    cudnnTensorDescriptor_t sig, col;             // [B, Cs, 1, Ls], [B, Cc, 1, Lc_dnn]
    cudnnFilterDescriptor_t wd;                   // [Cc, Cs/G, 1, K]
    cudnnConvolutionDescriptor_t cd;
    bool chosen[ST_COUNT];
    int algo[ST_COUNT];
    size_t ws[ST_COUNT];  // workspace bytes of the chosen algorithm
    struct conv_plan *next;
} conv_plan;

// Plans live for the process: a model has a handful of geometries. The CUDA backend runs on one thread (one
// compute stream), so the list needs no lock.
static conv_plan *g_plans;

static conv_plan *get_plan(const conv_problem *pb, int64_t B) {
    for (conv_plan *p = g_plans; p; p = p->next)
        if (p->B == B && p->Cs == pb->Cs && p->Ls == pb->Ls && p->Cc == pb->Cc && p->Lc_dnn == pb->Lc_dnn &&
            p->K == pb->K && p->S == pb->S && p->P == pb->P && p->D == pb->D && p->G == pb->G)
            return p;
    GVM_CHECK(pb->K <= INT_MAX && pb->S <= INT_MAX && pb->P <= INT_MAX && pb->D <= INT_MAX && pb->G <= INT_MAX,
              "conv (cuda): geometry outside cuDNN's int range");
    conv_plan *p = (conv_plan *)GVM_CALLOC(1, sizeof(conv_plan));
    p->B = B;
    p->Cs = pb->Cs;
    p->Ls = pb->Ls;
    p->Cc = pb->Cc;
    p->Lc_dnn = pb->Lc_dnn;
    p->K = pb->K;
    p->S = pb->S;
    p->P = pb->P;
    p->D = pb->D;
    p->G = pb->G;
    GVM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->sig));
    GVM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->col));
    GVM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    GVM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd));
    GVM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->sig, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)B, (int)p->Cs, 1,
                                               (int)p->Ls));
    GVM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->col, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)B, (int)p->Cc, 1,
                                               (int)p->Lc_dnn));
    GVM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)p->Cc,
                                               (int)(p->Cs / p->G), 1, (int)p->K));
    GVM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd, 0, (int)p->P, 1, (int)p->S, 1, (int)p->D,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    GVM_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->cd, (int)p->G));
    GVM_CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, CUDNN_FMA_MATH));
    // Our columns length must be the one cuDNN derives, or every call would fail its shape check.
    int n, c, h, w;
    GVM_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->cd, p->sig, p->wd, &n, &c, &h, &w));
    GVM_CHECK(n == B && c == p->Cc && h == 1 && w == p->Lc_dnn,
              "conv (cuda): cuDNN derives columns [%d, %d, %d, %d], expected [%lld, %lld, 1, %lld]", n, c, h, w,
              (long long)B, (long long)p->Cc, (long long)p->Lc_dnn);
    p->next = g_plans;
    g_plans = p;
    return p;
}

// A heuristic's candidate is usable when it runs here, is deterministic, stays off tensor cores (no TF32) and
// fits the workspace cap.
static bool usable(cudnnStatus_t status, cudnnDeterminism_t det, cudnnMathType_t math, size_t memory) {
    return status == CUDNN_STATUS_SUCCESS && det == CUDNN_DETERMINISTIC &&
           (math == CUDNN_FMA_MATH || math == CUDNN_DEFAULT_MATH) && memory <= CONV_MAX_WS_BYTES;
}

// Algorithms that are plain (implicit or explicit) GEMMs: accurate to f32 rounding. The order is the
// fallback order when the heuristics offer none.
static const cudnnConvolutionFwdAlgo_t k_fwd_algos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
static const cudnnConvolutionBwdDataAlgo_t k_data_algos[] = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1};
static const cudnnConvolutionBwdFilterAlgo_t k_filter_algos[] = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static bool fwd_algo_ok(cudnnConvolutionFwdAlgo_t a) {
    for (int i = 0; i < COUNT_OF(k_fwd_algos); i++)
        if (k_fwd_algos[i] == a) return true;
    return false;
}
// BackwardData/BackwardFilter ALGO_0 and ALGO_3 are accepted only when cuDNN reports them deterministic.
static bool data_algo_ok(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
static bool filter_algo_ok(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// Pick the algorithm of stage `st` for plan p (once) and its workspace size.
static void choose(conv_plan *p, int st) {
    if (p->chosen[st]) return;
    cudnnHandle_t h = gvm_cuda_cudnn();
    int n = 0, algo = -1;
    size_t ws = 0;
    if (st == ST_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        GVM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->sig, p->wd, p->cd, p->col,
                                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
        for (int i = 0; i < n && algo < 0; i++)
            if (usable(perf[i].status, perf[i].determinism, perf[i].mathType, perf[i].memory) &&
                fwd_algo_ok(perf[i].algo))
                algo = (int)perf[i].algo;
        for (int i = 0; i < COUNT_OF(k_fwd_algos) && algo < 0; i++)
            if (cudnnGetConvolutionForwardWorkspaceSize(h, p->sig, p->wd, p->cd, p->col, k_fwd_algos[i], &ws) ==
                    CUDNN_STATUS_SUCCESS &&
                ws <= CONV_MAX_WS_BYTES)
                algo = (int)k_fwd_algos[i];
        GVM_CHECK(algo >= 0, "conv (cuda): cuDNN offers no usable forward algorithm");
        GVM_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p->sig, p->wd, p->cd, p->col,
                                                                (cudnnConvolutionFwdAlgo_t)algo, &ws));
    } else if (st == ST_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        GVM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->col, p->cd, p->sig,
                                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
        for (int i = 0; i < n && algo < 0; i++)
            if (usable(perf[i].status, perf[i].determinism, perf[i].mathType, perf[i].memory) &&
                data_algo_ok(perf[i].algo))
                algo = (int)perf[i].algo;
        for (int i = 0; i < COUNT_OF(k_data_algos) && algo < 0; i++)
            if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->col, p->cd, p->sig, k_data_algos[i], &ws) ==
                    CUDNN_STATUS_SUCCESS &&
                ws <= CONV_MAX_WS_BYTES)
                algo = (int)k_data_algos[i];
        GVM_CHECK(algo >= 0, "conv (cuda): cuDNN offers no usable deterministic backward-data algorithm");
        GVM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->col, p->cd, p->sig,
                                                                     (cudnnConvolutionBwdDataAlgo_t)algo, &ws));
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        GVM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, p->sig, p->col, p->cd, p->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
        for (int i = 0; i < n && algo < 0; i++)
            if (usable(perf[i].status, perf[i].determinism, perf[i].mathType, perf[i].memory) &&
                filter_algo_ok(perf[i].algo))
                algo = (int)perf[i].algo;
        for (int i = 0; i < COUNT_OF(k_filter_algos) && algo < 0; i++)
            if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->sig, p->col, p->cd, p->wd, k_filter_algos[i],
                                                               &ws) == CUDNN_STATUS_SUCCESS &&
                ws <= CONV_MAX_WS_BYTES)
                algo = (int)k_filter_algos[i];
        GVM_CHECK(algo >= 0, "conv (cuda): cuDNN offers no usable deterministic backward-filter algorithm");
        GVM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->sig, p->col, p->cd, p->wd,
                                                                       (cudnnConvolutionBwdFilterAlgo_t)algo, &ws));
    }
    p->algo[st] = algo;
    p->ws[st] = ws;
    p->chosen[st] = true;
}

// ---- one call's resources --------------------------------------------------------------------------------------

// The plans of a call (full chunks and the last, shorter one) and its slice of the workspace: cuDNN's
// workspace, then up to two zero-padded columns buffers [chunk, Cc, Lc_dnn].
typedef struct conv_call {
    conv_plan *full, *tail;  // tail: NULL when chunk divides B
    void *ws;
    size_t ws_bytes;
    float *pad[2];
} conv_call;

static conv_call prepare(const conv_problem *pb, const bool stages[ST_COUNT], int n_pads) {
    conv_call c = {};
    c.full = get_plan(pb, pb->chunk);
    int64_t rem = pb->B % pb->chunk;
    c.tail = rem ? get_plan(pb, rem) : NULL;
    for (int st = 0; st < ST_COUNT; st++) {
        if (!stages[st]) continue;
        choose(c.full, st);
        if (c.ws_bytes < c.full->ws[st]) c.ws_bytes = c.full->ws[st];
        if (c.tail) {
            choose(c.tail, st);
            if (c.ws_bytes < c.tail->ws[st]) c.ws_bytes = c.tail->ws[st];
        }
    }
    size_t ws_aligned = (c.ws_bytes + 255) & ~(size_t)255;
    size_t pad_bytes = ((size_t)(pb->chunk * pb->Cc * pb->Lc_dnn) * sizeof(float) + 255) & ~(size_t)255;
    size_t total = ws_aligned + (size_t)n_pads * pad_bytes;
    if (total == 0) return c;
    char *base = (char *)gvm_cuda_workspace(total);  // once per call: the buffer moves when it grows
    c.ws = c.ws_bytes ? base : NULL;
    for (int i = 0; i < n_pads; i++) c.pad[i] = (float *)(base + ws_aligned + (size_t)i * pad_bytes);
    return c;
}

static const conv_plan *plan_for(const conv_call *c, int64_t nb) { return nb == c->full->B ? c->full : c->tail; }

// ---- small kernels -------------------------------------------------------------------------------------------------

// y [R, L] (R = B * C rows) = bias[row % C] when bias is given, else 0.
__global__ void fill_bias_kernel(float *y, const float *bias, int64_t C, int64_t L, int64_t n) {
    GVM_CUDA_FOR(i, n) y[i] = bias ? bias[(i / L) % C] : 0.0f;
}

// y [R, L] += bias[row % C].
__global__ void add_bias_kernel(float *y, const float *bias, int64_t C, int64_t L, int64_t n) {
    GVM_CUDA_FOR(i, n) y[i] += bias[(i / L) % C];
}

// db[c] += sum over b, t of dy [B, C, L]. One block per channel (grid-stride over channels); each thread sums
// a fixed set of elements in double, then a fixed tree over the block: the result does not depend on timing.
__global__ void bias_grad_kernel(const float *dy, float *db, int64_t B, int64_t C, int64_t L) {
    __shared__ double part[CONV_THREADS / 32];
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++) {
            const float *row = dy + (b * C + c) * L;
            for (int64_t t = threadIdx.x; t < L; t += blockDim.x) acc += (double)row[t];
        }
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            double s = 0.0;
            for (int w = 0; w < CONV_THREADS / 32; w++) s += part[w];
            db[c] += (float)s;
        }
        __syncthreads();  // part[] is reused by the next channel
    }
}

// dst [R, Ld] = src [R, Ls] in the first Ls columns, zeros after (Ld >= Ls).
__global__ void pad_cols_kernel(const float *src, float *dst, int64_t Ls, int64_t Ld, int64_t n) {
    GVM_CUDA_FOR(i, n) {
        int64_t r = i / Ld, t = i % Ld;
        dst[i] = t < Ls ? src[r * Ls + t] : 0.0f;
    }
}

// dst [R, Ld] += the first Ld columns of src [R, Ls] (Ls >= Ld).
__global__ void add_trimmed_kernel(const float *src, float *dst, int64_t Ls, int64_t Ld, int64_t n) {
    GVM_CUDA_FOR(i, n) {
        int64_t r = i / Ld, t = i % Ld;
        dst[i] += src[r * Ls + t];
    }
}

static void fill_bias(float *y, const float *bias, int64_t B, int64_t C, int64_t L) {
    int64_t n = B * C * L;
    if (n == 0) return;
    fill_bias_kernel<<<gvm_cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, gvm_cuda_stream()>>>(y, bias, C, L, n);
    GVM_CUDA_LAUNCH_CHECK();
}

static void add_bias(float *y, const float *bias, int64_t B, int64_t C, int64_t L) {
    int64_t n = B * C * L;
    if (n == 0 || !bias) return;
    add_bias_kernel<<<gvm_cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, gvm_cuda_stream()>>>(y, bias, C, L, n);
    GVM_CUDA_LAUNCH_CHECK();
}

static void bias_grad(const float *dy, float *db, int64_t B, int64_t C, int64_t L) {
    if (!db || C == 0) return;
    if (B * L == 0) return;  // nothing to add
    unsigned grid = (unsigned)(C < (1 << 20) ? C : (1 << 20));
    bias_grad_kernel<<<grid, CONV_THREADS, 0, gvm_cuda_stream()>>>(dy, db, B, C, L);
    GVM_CUDA_LAUNCH_CHECK();
}

static void pad_cols(const float *src, float *dst, int64_t rows, int64_t Ls, int64_t Ld) {
    int64_t n = rows * Ld;
    if (n == 0) return;
    pad_cols_kernel<<<gvm_cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, gvm_cuda_stream()>>>(src, dst, Ls, Ld, n);
    GVM_CUDA_LAUNCH_CHECK();
}

static void add_trimmed(const float *src, float *dst, int64_t rows, int64_t Ls, int64_t Ld) {
    int64_t n = rows * Ld;
    if (n == 0) return;
    unsigned blocks = gvm_cuda_blocks(n, CONV_THREADS);
    add_trimmed_kernel<<<blocks, CONV_THREADS, 0, gvm_cuda_stream()>>>(src, dst, Ls, Ld, n);
    GVM_CUDA_LAUNCH_CHECK();
}

// ---- the four kernels ---------------------------------------------------------------------------------------------

static const float k_one = 1.0f, k_zero = 0.0f;

extern "C" int64_t gvm_cuda_conv1d_scratch_floats(const gvm_conv1d_geom *g, gvm_conv1d_kernel which,
                                                  bool need_dw) {
    (void)g;
    (void)which;
    (void)need_dw;
    return 0;  // temporary memory comes from gvm_cuda_workspace
}

extern "C" void gvm_cuda_conv1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *bias,
                                    float *y, float *scratch) {
    (void)scratch;
    conv_problem pb = lower(g, false);  // signal x [B, Cin, T], columns y [B, Cout, Tout]
    if (pb.B * pb.Cc * pb.Lc == 0) return;
    if (pb.Cs == 0) {  // no input channels: y is the bias alone
        fill_bias(y, bias, pb.B, pb.Cc, pb.Lc);
        return;
    }
    GVM_CHECK(pb.Lc_dnn == pb.Lc, "conv1d (cuda): output length %lld, cuDNN's %lld", (long long)pb.Lc,
              (long long)pb.Lc_dnn);
    bool stages[ST_COUNT] = {true, false, false};
    conv_call c = prepare(&pb, stages, 0);
    cudnnHandle_t h = gvm_cuda_cudnn();
    for (int64_t b0 = 0; b0 < pb.B; b0 += pb.chunk) {
        int64_t nb = pb.B - b0 < pb.chunk ? pb.B - b0 : pb.chunk;
        const conv_plan *p = plan_for(&c, nb);
        GVM_CUDNN_CHECK(cudnnConvolutionForward(h, &k_one, p->sig, x + b0 * pb.Cs * pb.Ls, p->wd, w, p->cd,
                                                (cudnnConvolutionFwdAlgo_t)p->algo[ST_FWD], c.ws, c.ws_bytes, &k_zero,
                                                p->col, y + b0 * pb.Cc * pb.Lc));
    }
    add_bias(y, bias, pb.B, pb.Cc, pb.Lc);
}

extern "C" void gvm_cuda_conv1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w, const float *dy,
                                    float *dx, float *dw, float *db, float *scratch) {
    (void)scratch;
    conv_problem pb = lower(g, false);  // signal x / dx [B, Cin, T], columns dy [B, Cout, Tout]
    if (pb.B == 0) return;
    bias_grad(dy, db, pb.B, pb.Cc, pb.Lc);
    if (pb.Cs == 0 || pb.Cc == 0 || (!dx && !dw)) return;  // dx and dw are empty or not wanted
    GVM_CHECK(pb.Lc_dnn == pb.Lc, "conv1d (cuda): output length %lld, cuDNN's %lld", (long long)pb.Lc,
              (long long)pb.Lc_dnn);
    bool stages[ST_COUNT] = {false, dx != NULL, dw != NULL};
    conv_call c = prepare(&pb, stages, 0);
    cudnnHandle_t h = gvm_cuda_cudnn();
    for (int64_t b0 = 0; b0 < pb.B; b0 += pb.chunk) {
        int64_t nb = pb.B - b0 < pb.chunk ? pb.B - b0 : pb.chunk;
        const conv_plan *p = plan_for(&c, nb);
        const float *dyb = dy + b0 * pb.Cc * pb.Lc;
        if (dw)
            GVM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
                h, &k_one, p->sig, x + b0 * pb.Cs * pb.Ls, p->col, dyb, p->cd,
                (cudnnConvolutionBwdFilterAlgo_t)p->algo[ST_FILTER], c.ws, c.ws_bytes, &k_one, p->wd, dw));
        if (dx)
            GVM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &k_one, p->wd, w, p->col, dyb, p->cd,
                                                         (cudnnConvolutionBwdDataAlgo_t)p->algo[ST_DATA], c.ws,
                                                         c.ws_bytes, &k_one, p->sig, dx + b0 * pb.Cs * pb.Ls));
    }
}

extern "C" void gvm_cuda_conv_transpose1d_fwd(const gvm_conv1d_geom *g, const float *x, const float *w,
                                              const float *bias, float *y, float *scratch) {
    (void)scratch;
    conv_problem pb = lower(g, true);  // signal y [B, Cout, Tout], columns x [B, Cin, T]
    if (pb.B * pb.Cs * pb.Ls == 0) return;
    if (pb.Cc == 0) {  // no input channels: y is the bias alone
        fill_bias(y, bias, pb.B, pb.Cs, pb.Ls);
        return;
    }
    bool padded = pb.Lc_dnn != pb.Lc;
    bool stages[ST_COUNT] = {false, true, false};
    conv_call c = prepare(&pb, stages, padded ? 1 : 0);
    cudnnHandle_t h = gvm_cuda_cudnn();
    for (int64_t b0 = 0; b0 < pb.B; b0 += pb.chunk) {
        int64_t nb = pb.B - b0 < pb.chunk ? pb.B - b0 : pb.chunk;
        const conv_plan *p = plan_for(&c, nb);
        const float *xb = x + b0 * pb.Cc * pb.Lc;
        if (padded) {  // columns cuDNN expects beyond T are zeros
            pad_cols(xb, c.pad[0], nb * pb.Cc, pb.Lc, pb.Lc_dnn);
            xb = c.pad[0];
        }
        GVM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &k_one, p->wd, w, p->col, xb, p->cd,
                                                     (cudnnConvolutionBwdDataAlgo_t)p->algo[ST_DATA], c.ws,
                                                     c.ws_bytes, &k_zero, p->sig, y + b0 * pb.Cs * pb.Ls));
    }
    add_bias(y, bias, pb.B, pb.Cs, pb.Ls);
}

extern "C" void gvm_cuda_conv_transpose1d_bwd(const gvm_conv1d_geom *g, const float *x, const float *w,
                                              const float *dy, float *dx, float *dw, float *db, float *scratch) {
    (void)scratch;
    conv_problem pb = lower(g, true);  // signal dy [B, Cout, Tout], columns x / dx [B, Cin, T]
    if (pb.B == 0) return;
    bias_grad(dy, db, pb.B, pb.Cs, pb.Ls);
    if (pb.Cs == 0 || pb.Cc == 0 || (!dx && !dw)) return;  // dx and dw are empty or not wanted
    bool padded = pb.Lc_dnn != pb.Lc;
    bool stages[ST_COUNT] = {dx != NULL, false, dw != NULL};
    // Padded: pad[0] holds x widened for the weight gradient, pad[1] the widened dx before it is trimmed.
    conv_call c = prepare(&pb, stages, padded ? 2 : 0);
    cudnnHandle_t h = gvm_cuda_cudnn();
    for (int64_t b0 = 0; b0 < pb.B; b0 += pb.chunk) {
        int64_t nb = pb.B - b0 < pb.chunk ? pb.B - b0 : pb.chunk;
        const conv_plan *p = plan_for(&c, nb);
        const float *dyb = dy + b0 * pb.Cs * pb.Ls;
        if (dx) {
            float *dxb = dx + b0 * pb.Cc * pb.Lc;
            GVM_CUDNN_CHECK(cudnnConvolutionForward(h, &k_one, p->sig, dyb, p->wd, w, p->cd,
                                                    (cudnnConvolutionFwdAlgo_t)p->algo[ST_FWD], c.ws, c.ws_bytes,
                                                    padded ? &k_zero : &k_one, p->col, padded ? c.pad[1] : dxb));
            if (padded) add_trimmed(c.pad[1], dxb, nb * pb.Cc, pb.Lc_dnn, pb.Lc);
        }
        if (dw) {
            const float *xb = x + b0 * pb.Cc * pb.Lc;
            if (padded) {
                pad_cols(xb, c.pad[0], nb * pb.Cc, pb.Lc, pb.Lc_dnn);
                xb = c.pad[0];
            }
            GVM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &k_one, p->sig, dyb, p->col, xb, p->cd,
                                                           (cudnnConvolutionBwdFilterAlgo_t)p->algo[ST_FILTER], c.ws,
                                                           c.ws_bytes, &k_one, p->wd, dw));
        }
    }
}
