// test_cuda_conv_lstm.c: the CUDA conv1d, conv_transpose1d and LSTM kernels against the CPU reference
// (tests/device_parity.h), forward and backward.
//
// Convolutions: stride 1/2/4, padding 0/1/3, dilation 1/2/3, groups 1/2/depthwise (and depthwise with a
// channel multiplier), kernel 1/3/4/7/8, K > T with padding, stride > K, output_padding (also the case
// output_padding >= stride that dilation allows, where cuDNN's derived length differs and the CUDA code goes
// through a padded copy), with and without bias, B = 1 and 3, T = 1, 2, 17, 2000, channels 1..64, inputs
// that take no gradient (NULL dx / dw / db), an op applied twice with the same weights (the backward must
// accumulate into gradients that already hold something), and an EnCodec-sized case (B 2, 128 -> 64
// channels, K 8, stride 4, T 4000).
// LSTM: B = 1 and 4, T = 1, 5, 100, I = 3 and 64, H = 8 and 128 (all combinations), without biases, with one
// bias, H = 1, odd sizes, inputs without gradient, and two stacked layers sharing weights (accumulation).
// Both families are also run twice on the GPU and must give bit-identical results (determinism).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/device_parity.h"

static int g_det_failed;

// ---- convolutions -----------------------------------------------------------------------------------------------

typedef struct conv_arg {
    bool transposed;
    gvm_conv1d_opts o;
    bool bias;   // in[2] is the bias
    bool twice;  // y = conv(conv(x)) with the same weight and bias (Cin == Cout, length kept)
} conv_arg;

static gvm_tensor *build_conv(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const conv_arg *a = arg;
    gvm_tensor *b = a->bias ? in[2] : NULL;
    gvm_tensor *y = in[0];
    for (int pass = 0; pass < (a->twice ? 2 : 1); pass++)
        y = a->transposed ? gvm_conv_transpose1d(ctx, y, in[1], b, &a->o) : gvm_conv1d(ctx, y, in[1], b, &a->o);
    return y;
}

// The inputs of a case: x [B, Cin, T], w [Cout, Cin/G, K] (conv1d) or [Cin, Cout/G, K] (transposed), bias
// [Cout] when `bias`. grad_mask bit i: input i takes a gradient.
static int conv_inputs(bool transposed, int64_t B, int64_t Cin, int64_t Cout, int64_t T, int64_t K, int G, bool bias,
                       unsigned grad_mask, parity_input *in) {
    int64_t g = G ? G : 1;
    in[0] = PARITY_F32(grad_mask & 1, 3, B, Cin, T);
    in[1] = transposed ? PARITY_F32(grad_mask & 2, 3, Cin, Cout / g, K)
                       : PARITY_F32(grad_mask & 2, 3, Cout, Cin / g, K);
    if (!bias) return 2;
    in[2] = PARITY_F32(grad_mask & 4, 1, Cout);
    return 3;
}

// Runs the case on the GPU twice (same inputs, same upstream gradient) and demands bit-identical outputs and
// gradients.
static void determinism_check(const char *name, parity_build_fn build, const void *arg, int n_in,
                              const parity_input *inputs) {
    if (!parity_check_deterministic(name, build, arg, n_in, inputs, NULL)) g_det_failed++;
}

// One convolution case: the parity check, and optionally the determinism check.
static void conv_case(bool transposed, int64_t B, int64_t Cin, int64_t Cout, int64_t T, int64_t K, int S, int P, int D,
                      int G, int OP, bool bias, unsigned grad_mask, bool twice, bool det) {
    conv_arg a = {transposed, {S, P, D, G, OP}, bias, twice};
    parity_input in[3];
    int n = conv_inputs(transposed, B, Cin, Cout, T, K, G, bias, grad_mask, in);
    char name[200];
    snprintf(name, sizeof name,
             "%s%s B%lld Cin%lld Cout%lld T%lld K%lld S%d P%d D%d G%d OP%d %s grad%u", twice ? "twice " : "",
             transposed ? "conv_transpose1d" : "conv1d", (long long)B, (long long)Cin, (long long)Cout, (long long)T,
             (long long)K, S, P, D, G, OP, bias ? "bias" : "nobias", grad_mask);
    parity_check(name, build_conv, &a, n, in, NULL);
    if (det) determinism_check(name, build_conv, &a, n, in);
}

static void conv1d_cases(void) {
    // B, Cin, Cout, T, K, S, P, D, G (OP 0), bias, grad mask, twice, determinism
    conv_case(false, 3, 4, 6, 17, 3, 1, 1, 1, 1, 0, true, 7, false, false);   // basic
    conv_case(false, 3, 4, 6, 17, 3, 2, 1, 1, 1, 0, true, 7, false, false);   // stride 2
    conv_case(false, 3, 5, 7, 17, 7, 4, 3, 1, 1, 0, true, 7, false, false);   // stride 4, K 7, padding 3
    conv_case(false, 3, 6, 4, 17, 4, 2, 0, 1, 1, 0, true, 7, false, false);   // even K, no padding
    conv_case(false, 3, 4, 6, 17, 3, 1, 2, 2, 1, 0, true, 7, false, false);   // dilation 2
    conv_case(false, 2, 3, 5, 17, 7, 1, 3, 3, 1, 0, true, 7, false, false);   // dilation 3, K 7
    conv_case(false, 3, 4, 6, 17, 3, 2, 3, 3, 2, 0, true, 7, false, false);   // groups 2, dilation 3, stride 2
    conv_case(false, 3, 4, 6, 17, 3, 1, 1, 1, 2, 0, false, 7, false, false);  // groups 2, no bias
    conv_case(false, 3, 8, 8, 17, 3, 1, 1, 1, 8, 0, true, 7, false, false);   // depthwise
    conv_case(false, 2, 8, 16, 17, 7, 2, 3, 1, 8, 0, true, 7, false, false);  // depthwise, multiplier 2
    conv_case(false, 3, 16, 8, 17, 1, 1, 0, 1, 1, 0, true, 7, false, false);  // K 1 (pointwise)
    conv_case(false, 3, 4, 6, 17, 1, 4, 0, 1, 1, 0, true, 7, false, false);   // stride > K
    conv_case(false, 1, 4, 6, 1, 3, 1, 1, 1, 1, 0, true, 7, false, false);    // T 1 with padding
    conv_case(false, 3, 4, 6, 1, 1, 1, 0, 1, 1, 0, true, 7, false, false);    // T 1, K 1
    conv_case(false, 2, 3, 4, 2, 7, 1, 3, 1, 1, 0, true, 7, false, false);    // K > T
    conv_case(false, 1, 1, 1, 17, 3, 1, 1, 1, 1, 0, true, 7, false, false);   // one channel
    conv_case(false, 3, 64, 64, 17, 3, 1, 1, 1, 1, 0, true, 7, false, false);  // 64 channels
    conv_case(false, 3, 64, 64, 17, 7, 1, 3, 1, 64, 0, false, 7, false, false);  // 64 channels depthwise
    conv_case(false, 3, 4, 6, 17, 3, 1, 1, 1, 1, 0, true, 1, false, false);   // only dx wanted
    conv_case(false, 3, 4, 6, 17, 3, 1, 1, 1, 1, 0, true, 2, false, false);   // only dw wanted
    conv_case(false, 3, 4, 6, 17, 3, 2, 1, 1, 1, 0, true, 4, false, false);   // only db wanted
    conv_case(false, 3, 4, 6, 17, 3, 1, 1, 1, 2, 0, true, 6, false, false);   // x takes no gradient
    conv_case(false, 1, 16, 32, 2000, 7, 1, 3, 1, 1, 0, true, 7, false, false);     // long
    conv_case(false, 3, 32, 32, 2000, 3, 2, 1, 1, 2, 0, true, 7, false, false);     // long, groups, stride
    conv_case(false, 3, 64, 64, 2000, 7, 1, 9, 3, 1, 0, true, 7, false, false);     // long, dilated (SEANet)
    conv_case(false, 3, 1, 32, 2000, 7, 1, 3, 1, 1, 0, true, 7, false, false);      // audio in
    conv_case(false, 3, 6, 6, 17, 3, 1, 1, 1, 1, 0, true, 7, true, false);    // twice: accumulation
    conv_case(false, 3, 6, 6, 17, 3, 1, 2, 2, 2, 0, true, 7, true, false);    // twice, groups, dilation
    conv_case(false, 2, 128, 64, 4000, 8, 4, 2, 1, 1, 0, true, 7, false, true);  // EnCodec-like downsampling
}

static void conv_transpose1d_cases(void) {
    // B, Cin, Cout, T, K, S, P, D, G, OP, bias, grad mask, twice, determinism
    conv_case(true, 3, 4, 6, 17, 3, 1, 0, 1, 1, 0, true, 7, false, false);   // basic
    conv_case(true, 3, 4, 6, 17, 3, 2, 1, 1, 1, 1, true, 7, false, false);   // stride 2, output_padding 1
    conv_case(true, 3, 6, 4, 17, 7, 4, 3, 1, 1, 3, true, 7, false, false);   // stride 4, K 7, output_padding 3
    conv_case(true, 3, 6, 4, 17, 8, 4, 2, 1, 1, 0, true, 7, false, false);   // stride 4, K 8
    conv_case(true, 2, 4, 6, 17, 3, 1, 1, 2, 1, 1, true, 7, false, false);   // output_padding >= stride (dilation 2)
    conv_case(true, 2, 4, 6, 17, 7, 2, 3, 3, 2, 2, true, 7, false, false);   // the same with groups 2, dilation 3
    conv_case(true, 3, 4, 6, 17, 3, 1, 1, 3, 1, 0, true, 7, false, false);   // dilation 3
    conv_case(true, 3, 4, 6, 17, 4, 2, 1, 1, 2, 0, true, 7, false, false);   // groups 2
    conv_case(true, 3, 8, 8, 17, 3, 1, 1, 1, 8, 0, true, 7, false, false);   // depthwise
    conv_case(true, 2, 8, 16, 17, 7, 2, 3, 1, 8, 1, false, 7, false, false);  // depthwise, multiplier 2
    conv_case(true, 3, 16, 8, 17, 1, 1, 0, 1, 1, 0, true, 7, false, false);  // K 1
    conv_case(true, 3, 4, 6, 17, 1, 4, 0, 1, 1, 3, true, 7, false, false);   // stride > K, output_padding 3
    conv_case(true, 1, 4, 6, 1, 3, 1, 0, 1, 1, 0, true, 7, false, false);    // T 1
    conv_case(true, 3, 4, 6, 1, 3, 2, 1, 1, 1, 1, true, 7, false, false);    // T 1, stride 2, output_padding 1
    conv_case(true, 2, 3, 4, 5, 7, 2, 3, 1, 1, 0, true, 7, false, false);    // padding 3
    conv_case(true, 1, 1, 1, 17, 3, 2, 0, 1, 1, 0, true, 7, false, false);   // one channel
    conv_case(true, 3, 64, 64, 17, 4, 2, 1, 1, 1, 0, true, 7, false, false);  // 64 channels
    conv_case(true, 3, 64, 64, 17, 3, 1, 1, 1, 64, 0, false, 7, false, false);  // 64 channels depthwise
    conv_case(true, 3, 4, 6, 17, 3, 2, 1, 1, 1, 1, true, 1, false, false);   // only dx wanted
    conv_case(true, 3, 4, 6, 17, 3, 2, 1, 1, 1, 1, true, 2, false, false);   // only dw wanted
    conv_case(true, 3, 4, 6, 17, 3, 2, 1, 1, 1, 1, true, 4, false, false);   // only db wanted
    conv_case(true, 2, 4, 6, 17, 3, 1, 1, 2, 1, 1, true, 6, false, false);   // padded path, x without gradient
    conv_case(true, 2, 4, 6, 17, 3, 1, 1, 2, 1, 1, false, 1, false, false);  // padded path, only dx
    conv_case(true, 1, 16, 8, 2000, 4, 2, 1, 1, 1, 0, true, 7, false, false);    // long
    conv_case(true, 3, 32, 32, 2000, 8, 4, 2, 1, 2, 0, true, 7, false, false);   // long, groups, stride 4
    conv_case(true, 3, 32, 1, 2000, 7, 1, 3, 1, 1, 0, true, 7, false, false);    // audio out
    conv_case(true, 3, 6, 6, 17, 3, 1, 1, 1, 1, 0, true, 7, true, false);    // twice: accumulation
    conv_case(true, 3, 6, 6, 17, 5, 1, 4, 2, 2, 0, true, 7, true, false);    // twice, groups, dilation
    conv_case(true, 2, 128, 64, 4000, 8, 4, 2, 1, 1, 0, true, 7, false, true);  // EnCodec-like upsampling
}

// ---- LSTM ---------------------------------------------------------------------------------------------------------

typedef struct lstm_arg {
    bool b_ih, b_hh;  // in[3] / in[4] are used
    bool twice;       // two stacked layers with the same weights (I == H)
} lstm_arg;

static gvm_tensor *build_lstm(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const lstm_arg *a = arg;
    gvm_tensor *b_ih = a->b_ih ? in[3] : NULL, *b_hh = a->b_hh ? in[4] : NULL;
    gvm_tensor *y = gvm_lstm(ctx, in[0], in[1], in[2], b_ih, b_hh);
    if (a->twice) y = gvm_lstm(ctx, y, in[1], in[2], b_ih, b_hh);
    return y;
}

// x [B, T, I] standard normal; weights and biases uniform in +-1/sqrt(H) (PyTorch's initialisation, which
// keeps the gates out of saturation). grad_mask bit i: input i takes a gradient.
static void lstm_case(int64_t B, int64_t T, int64_t I, int64_t H, bool b_ih, bool b_hh, unsigned grad_mask, bool twice,
                      bool det) {
    float s = 1.0f / sqrtf((float)H);
    lstm_arg a = {b_ih, b_hh, twice};
    parity_input in[5] = {
        PARITY_F32(grad_mask & 1, 3, B, T, I),
        PARITY_F32_RANGE(grad_mask & 2, -s, s, 2, 4 * H, I),
        PARITY_F32_RANGE(grad_mask & 4, -s, s, 2, 4 * H, H),
        PARITY_F32_RANGE(grad_mask & 8, -s, s, 1, 4 * H),
        PARITY_F32_RANGE(grad_mask & 16, -s, s, 1, 4 * H),
    };
    char name[160];
    snprintf(name, sizeof name, "%slstm B%lld T%lld I%lld H%lld%s%s grad%u", twice ? "twice " : "", (long long)B,
             (long long)T, (long long)I, (long long)H, b_ih ? " b_ih" : "", b_hh ? " b_hh" : "", grad_mask);
    parity_check(name, build_lstm, &a, 5, in, NULL);
    if (det) determinism_check(name, build_lstm, &a, 5, in);
}

static void lstm_cases(void) {
    static const int64_t Bs[] = {1, 4}, Ts[] = {1, 5, 100}, Is[] = {3, 64}, Hs[] = {8, 128};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < 2; i++)
                for (int h = 0; h < 2; h++) lstm_case(Bs[b], Ts[t], Is[i], Hs[h], true, true, 31, false, false);
    lstm_case(4, 5, 3, 8, false, false, 31, false, false);    // no biases
    lstm_case(4, 5, 3, 8, true, false, 31, false, false);     // b_ih only
    lstm_case(4, 5, 3, 8, false, true, 31, false, false);     // b_hh only
    lstm_case(3, 7, 5, 1, true, true, 31, false, false);      // H 1
    lstm_case(5, 9, 13, 37, true, true, 31, false, false);    // odd sizes
    lstm_case(4, 5, 3, 8, true, true, 30, false, false);      // x takes no gradient
    lstm_case(4, 5, 3, 8, true, true, 1, false, false);       // only dx
    lstm_case(4, 5, 3, 8, true, true, 4, false, false);       // only dW_hh
    lstm_case(4, 5, 3, 8, true, true, 8, false, false);       // only db_ih
    lstm_case(4, 6, 8, 8, true, true, 31, true, false);       // two layers sharing weights: accumulation
    lstm_case(16, 50, 96, 200, true, true, 31, false, true);  // larger, and run twice for determinism
}

int main(int argc, char **argv) {
    parity_init(argc, argv);
    conv1d_cases();
    conv_transpose1d_cases();
    lstm_cases();
    int rc = parity_finish();
    if (g_det_failed) printf("%d determinism checks failed\n", g_det_failed);
    return rc ? rc : g_det_failed ? 1 : 0;
}
