// cuda/lstm.cu: one LSTM layer on the GPU (see lstm.h).
//
// Forward: the input projection of every step is one GEMM (gates [B*T, 4H] = x [B*T, I] W_ih^T); then each
// step adds h_{t-1} W_hh^T to its slice of the gates (a GEMM of B rows, whose rows sit T*4H apart in the
// [B, T, 4H] layout) and one fused kernel applies the biases (b_ih + b_hh, summed in the CPU's order) and the
// gate activations and writes c_t and h_t.
//
// Backward through time, in reverse: per step a GEMM dh_rec = dG_{t+1} W_hh, then one fused kernel that
// turns dh_t + dh_rec and the carried dc into the pre-activation gate gradients dG_t [B, 4H] and the next
// dc. dx, dW_ih and dW_hh then come out of three GEMMs over all steps (dW_hh against h shifted by one step,
// zero at t = 0), and the bias gradients out of one fixed-order column sum in double. GEMMs go through
// gvm_cuda_sgemm (plain f32, deterministic); no kernel here uses atomics.
#include "core/cuda/lstm.h"

#include "core/cuda/common.cuh"
#include "core/cuda/gemm.h"

#define LSTM_THREADS 256

// sigmoid from exp(-|x|) in (0, 1]: no overflow, no cancellation on either side (as the CPU's sigm).
static __device__ __forceinline__ float sigm(float x) {
    float e = expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

// Step t of the forward for every (b, j), j < H. gates [B, T, 4H] holds x W_ih^T + h_{t-1} W_hh^T at step t
// and gets the activated i, f, g, o; cell and h [B, T, H] get c_t and h_t. b_ih / b_hh [4H] may be NULL.
__global__ void lstm_fwd_step_kernel(int64_t B, int64_t T, int64_t H, int64_t t, const float *b_ih, const float *b_hh,
                                     float *gates, float *cell, float *h) {
    GVM_CUDA_FOR(i, B * H) {
        int64_t b = i / H, j = i % H, row = b * T + t;
        float *g = gates + row * 4 * H + j;  // gate q at g[q * H]
        float pre[4];
        for (int q = 0; q < 4; q++) {
            float bias = (b_ih ? b_ih[q * H + j] : 0.0f) + (b_hh ? b_hh[q * H + j] : 0.0f);
            pre[q] = g[q * H] + bias;
        }
        float ig = sigm(pre[0]), fg = sigm(pre[1]), gg = tanhf(pre[2]), og = sigm(pre[3]);
        g[0] = ig;
        g[H] = fg;
        g[2 * H] = gg;
        g[3 * H] = og;
        float cp = t > 0 ? cell[(row - 1) * H + j] : 0.0f;
        float cv = ig * gg + fg * cp;
        cell[row * H + j] = cv;
        h[row * H + j] = og * tanhf(cv);
    }
}

// Step t of the backward for every (b, j), j < H: from the activated gates [B, T, 4H], cell [B, T, H], the
// upstream dh [B, T, H], the gradient through step t+1 dh_rec [B, H] and the carried dc [B, H] (both read as
// zero at the last step, where they hold nothing yet), the pre-activation gate gradients dG [B, T, 4H] at t
// and the dc carried to step t-1.
__global__ void lstm_bwd_step_kernel(int64_t B, int64_t T, int64_t H, int64_t t, const float *gates,
                                     const float *cell, const float *dh, const float *dh_rec, float *dc, float *dG) {
    bool last = t + 1 == T;
    GVM_CUDA_FOR(i, B * H) {
        int64_t b = i / H, j = i % H, row = b * T + t;
        const float *g = gates + row * 4 * H + j;
        float ig = g[0], fg = g[H], gg = g[2 * H], og = g[3 * H];
        float c = cell[row * H + j];
        float cp = t > 0 ? cell[(row - 1) * H + j] : 0.0f;
        float tc = tanhf(c);
        float dhv = dh[row * H + j] + (last ? 0.0f : dh_rec[i]);
        float dcv = (last ? 0.0f : dc[i]) + dhv * og * (1.0f - tc * tc);
        float *dg = dG + row * 4 * H + j;
        dg[0] = dcv * gg * ig * (1.0f - ig);
        dg[H] = dcv * cp * fg * (1.0f - fg);
        dg[2 * H] = dcv * ig * (1.0f - gg * gg);
        dg[3 * H] = dhv * tc * og * (1.0f - og);
        dc[i] = dcv * fg;
    }
}

// h_prev [B, T, H] = h shifted by one step: h_{t-1}, zero at t = 0.
__global__ void lstm_shift_kernel(int64_t n, int64_t T, int64_t H, const float *h, float *h_prev) {
    GVM_CUDA_FOR(i, n) {
        int64_t t = (i / H) % T;
        h_prev[i] = t > 0 ? h[i - H] : 0.0f;
    }
}

// db_ih, db_hh [C] (either may be NULL) += sum over the rows of dG [R, C]. Block (32, 32) owns 32 columns:
// thread (x, y) sums rows y, y + 32, ... of column x in double, then thread y = 0 adds the 32 partials in
// order. Reads are coalesced along the columns; the result does not depend on timing.
__global__ void lstm_colsum_kernel(const float *dG, int64_t R, int64_t C, float *db_ih, float *db_hh) {
    __shared__ double part[32][33];
    int64_t col = (int64_t)blockIdx.x * 32 + threadIdx.x;
    double acc = 0.0;
    if (col < C)
        for (int64_t r = threadIdx.y; r < R; r += 32) acc += (double)dG[r * C + col];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < C) {
        double s = 0.0;
        for (int k = 0; k < 32; k++) s += part[k][threadIdx.x];
        if (db_ih) db_ih[col] += (float)s;
        if (db_hh) db_hh[col] += (float)s;
    }
}

extern "C" int64_t gvm_cuda_lstm_fwd_scratch_floats(const gvm_lstm_dims *d) {
    (void)d;
    return 0;
}

extern "C" void gvm_cuda_lstm_fwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh,
                                  const float *b_ih, const float *b_hh, float *h, float *gates, float *cell,
                                  float *scratch) {
    (void)scratch;
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H;
    if (B * T * H == 0) return;
    // gates [B*T, 4H] = x [B*T, I] W_ih^T; the biases go in with the activations.
    gvm_cuda_sgemm(false, true, B * T, G4, I, 1.0f, x, I, w_ih, I, 0.0f, gates, G4);
    unsigned blocks = gvm_cuda_blocks(B * H, LSTM_THREADS);
    for (int64_t t = 0; t < T; t++) {
        // gates[:, t] [B, 4H] (rows T*4H apart) += h[:, t-1] [B, H] (rows T*H apart) W_hh^T
        if (t > 0)
            gvm_cuda_sgemm(false, true, B, G4, H, 1.0f, h + (t - 1) * H, T * H, w_hh, H, 1.0f, gates + t * G4, T * G4);
        lstm_fwd_step_kernel<<<blocks, LSTM_THREADS, 0, gvm_cuda_stream()>>>(B, T, H, t, b_ih, b_hh, gates, cell, h);
        GVM_CUDA_LAUNCH_CHECK();
    }
}

extern "C" int64_t gvm_cuda_lstm_bwd_scratch_floats(const gvm_lstm_dims *d) {
    int64_t B = d->B, T = d->T, H = d->H;
    return B * T * 4 * H + B * T * H + 2 * B * H;  // dG, h_prev, dh_rec, dc
}

extern "C" void gvm_cuda_lstm_bwd(const gvm_lstm_dims *d, const float *x, const float *w_ih, const float *w_hh,
                                  const float *h, const float *gates, const float *cell, const float *dh, float *dx,
                                  float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *scratch) {
    int64_t B = d->B, T = d->T, I = d->I, H = d->H, G4 = 4 * H, rows = B * T;
    if (rows * H == 0) return;
    if (!dx && !dw_ih && !dw_hh && !db_ih && !db_hh) return;
    float *dG = scratch;                // [B, T, 4H]
    float *h_prev = dG + rows * G4;     // [B, T, H]
    float *dh_rec = h_prev + rows * H;  // [B, H]
    float *dc = dh_rec + B * H;         // [B, H]
    unsigned blocks = gvm_cuda_blocks(B * H, LSTM_THREADS);
    for (int64_t t = T - 1; t >= 0; t--) {
        // dh_rec [B, H] = dG[:, t+1] [B, 4H] (rows T*4H apart) W_hh [4H, H]
        if (t + 1 < T)
            gvm_cuda_sgemm(false, false, B, H, G4, 1.0f, dG + (t + 1) * G4, T * G4, w_hh, H, 0.0f, dh_rec, H);
        lstm_bwd_step_kernel<<<blocks, LSTM_THREADS, 0, gvm_cuda_stream()>>>(B, T, H, t, gates, cell, dh, dh_rec, dc,
                                                                            dG);
        GVM_CUDA_LAUNCH_CHECK();
    }
    if (dx) gvm_cuda_sgemm(false, false, rows, I, G4, 1.0f, dG, G4, w_ih, I, 1.0f, dx, I);    // dx += dG W_ih
    if (dw_ih) gvm_cuda_sgemm(true, false, G4, I, rows, 1.0f, dG, G4, x, I, 1.0f, dw_ih, I);  // dW_ih += dG^T x
    if (dw_hh && T > 1) {  // dW_hh += dG^T h_prev; h_prev's zero rows drop the t = 0 terms
        int64_t n = rows * H;
        lstm_shift_kernel<<<gvm_cuda_blocks(n, LSTM_THREADS), LSTM_THREADS, 0, gvm_cuda_stream()>>>(n, T, H, h, h_prev);
        GVM_CUDA_LAUNCH_CHECK();
        gvm_cuda_sgemm(true, false, G4, H, rows, 1.0f, dG, G4, h_prev, H, 1.0f, dw_hh, H);
    }
    if (db_ih || db_hh) {  // both biases enter as one sum, so both get the sum of dG over (b, t)
        dim3 block(32, 32);
        unsigned grid = (unsigned)((G4 + 31) / 32);
        lstm_colsum_kernel<<<grid, block, 0, gvm_cuda_stream()>>>(dG, rows, G4, db_ih, db_hh);
        GVM_CUDA_LAUNCH_CHECK();
    }
}
