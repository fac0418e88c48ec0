// encodec.h: the EnCodec audio codec (Hugging Face's EncodecModel, transformers 5.x): a SEANet encoder
// (waveform -> latent frames), a residual vector quantiser (latent -> K codebook indices per frame) and a
// SEANet decoder (latent -> waveform). GVMGen uses the 32 kHz model (facebook/encodec_32khz) to turn music
// into the 4 x 50 Hz code streams its music LM predicts, and back.
//
// Parameters, under the names of EncodecModel.state_dict() in transformers 5.24 (checked by printing it), so
// a checkpoint maps onto the store by name:
//   encoder.layers.{i}.conv.bias                                     [Cout]
//   encoder.layers.{i}.conv.parametrizations.weight.original0        [O, 1, 1]   weight-norm g
//   encoder.layers.{i}.conv.parametrizations.weight.original1        [O, I, K]   weight-norm v
//   encoder.layers.{i}.block.{1,3}.conv.*, .shortcut.conv.*          the same, inside a residual block
//   encoder.layers.{i}.lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k} [4H, H], [4H, H], [4H], [4H]
//   decoder.layers.{i}.*                                             the same kinds
//   quantizer.layers.{k}.codebook.{inited [1], cluster_size [N], embed [N, D], embed_avg [N, D]}
// Weight norm: transformers 5 applies nn.utils.parametrizations.weight_norm (dim 0), so state_dict() holds
// "parametrizations.weight.original0" (g) and "original1" (v), and that is what we register. The files on
// the Hub (and older transformers) spell the same tensors "<...>.conv.weight_g" / "<...>.conv.weight_v";
// an importer renames weight_g -> parametrizations.weight.original0 and weight_v -> ...original1 (shapes
// equal). w = g * v / ||v|| with the norm over all dims but 0 (gvm_weight_norm). For a transposed conv the
// weight is [Cin, Cout, K] and dim 0 is Cin, so g is [Cin, 1, 1]: exactly what PyTorch does there too.
// The codebook tensors are buffers in PyTorch; here they are store entries with requires_grad = false (no
// gradient, skipped by the optimiser) so that loading and checkpointing by name covers them. They change only
// through gvm_nn_encodec_rvq_ema_update.
//
// Layer indices follow the twin's nn.ModuleList exactly (ELUs take an index and own nothing), e.g. for the
// 32 kHz model: encoder 0 conv, 1 resblock, 2 ELU, 3 down-conv (stride 4), ..., 13 LSTM, 14 ELU, 15 conv;
// decoder 0 conv, 1 LSTM, 2 ELU, 3 up-conv (stride 8), 4 resblock, ..., 14 ELU, 15 conv.
//
// Only what the EnCodec checkpoints GVMGen meets use is supported: norm_type weight_norm (time_group_norm,
// the 48 kHz model's, is rejected), normalize = false, no chunking. Anything else fails the config check with
// a message.
//
// Modules own no memory (nn/module.h) except the layer arrays, freed by gvm_nn_encodec_free.
#ifndef GVM_NN_ENCODEC_H
#define GVM_NN_ENCODEC_H

#include <stdbool.h>

#include "nn/module.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NN_ENCODEC_MAX_RATIOS 8
#define GVM_NN_ENCODEC_MAX_CODEBOOKS 32
#define GVM_NN_ENCODEC_MAX_LSTM 4

typedef enum gvm_nn_encodec_norm {
    GVM_NN_ENCODEC_NORM_WEIGHT = 0,  // "weight_norm"
    GVM_NN_ENCODEC_NORM_TIME_GROUP,  // "time_group_norm": named so a config can say it; rejected
} gvm_nn_encodec_norm;

typedef enum gvm_nn_encodec_pad {
    GVM_NN_ENCODEC_PAD_REFLECT = 0,  // "reflect" (every released EnCodec)
    GVM_NN_ENCODEC_PAD_CONSTANT,     // "constant": zeros
    GVM_NN_ENCODEC_PAD_REPLICATE,    // "replicate"
} gvm_nn_encodec_pad;

// EncodecConfig's fields that shape the network (same names). frame rate = sampling_rate / hop length,
// hop length = prod(upsampling_ratios).
typedef struct gvm_nn_encodec_cfg {
    int64_t sampling_rate;                                    // Hz (32 kHz model: 32000)
    int64_t audio_channels;                                   // 1 or 2
    int64_t num_filters;                                      // width of the first conv
    int64_t num_residual_layers;                              // resblocks per scale (dilations growth^j, 1)
    int64_t upsampling_ratios[GVM_NN_ENCODEC_MAX_RATIOS];     // decoder order; the encoder uses them reversed
    int n_ratios;
    gvm_nn_encodec_norm norm_type;
    int64_t kernel_size, last_kernel_size, residual_kernel_size;
    int64_t dilation_growth_rate;
    bool use_causal_conv;
    gvm_nn_encodec_pad pad_mode;
    int64_t compress;                                         // resblock hidden width = dim / compress
    int64_t num_lstm_layers;                                  // 1..GVM_NN_ENCODEC_MAX_LSTM
    float trim_right_ratio;                                   // causal transposed convs only (else 1)
    bool use_conv_shortcut;                                   // false: identity skip ("true skip")
    int64_t hidden_size;                                      // latent width D
    int64_t codebook_size;                                    // entries per codebook (a power of 2)
    int64_t codebook_dim;                                     // 0 = hidden_size; must equal it (no projection)
    int64_t num_quantizers;                                   // K codebooks (transformers derives it from
                                                              // target_bandwidths[-1]: 2.2 kbps -> 4 at 32 kHz)
    bool normalize;                                           // must be false
} gvm_nn_encodec_cfg;

// facebook/encodec_32khz (config.json, and transformers' convert_encodec_checkpoint_to_pytorch.py):
// 32000 Hz mono, num_filters 64, ratios [8, 5, 4, 4] (hop 640, 50 frames/s), 1 residual layer, kernels
// 7/7/3, dilation growth 2, non-causal, reflect, compress 2, 2 LSTM layers, trim_right_ratio 1,
// use_conv_shortcut false, hidden 128, 2048 x 128 codebooks, 4 quantizers (target_bandwidths [2.2]),
// normalize false.
gvm_nn_encodec_cfg gvm_nn_encodec_cfg_32khz(void);
// A tiny model for tests and smoke runs: 8 kHz mono, 4 filters, ratios [4, 2], hidden 8, 2 codebooks of 16.
gvm_nn_encodec_cfg gvm_nn_encodec_cfg_tiny(void);
// GVM_OK, or GVM_ERR_INVALID with a message naming the field, its value and what is allowed.
gvm_status gvm_nn_encodec_cfg_check(const gvm_nn_encodec_cfg *cfg);
int64_t gvm_nn_encodec_hop_length(const gvm_nn_encodec_cfg *cfg);  // prod(upsampling_ratios)
double gvm_nn_encodec_frame_rate(const gvm_nn_encodec_cfg *cfg);    // sampling_rate / hop (32 kHz: 50)
// Latent frames for `samples` input samples: ceil(samples / hop) (each strided conv pads to a whole window).
int64_t gvm_nn_encodec_num_frames(const gvm_nn_encodec_cfg *cfg, int64_t samples);

// ---- modules --------------------------------------------------------------------------------------------------
// EncodecConv1d / EncodecConvTranspose1d: one weight-normalised convolution with EnCodec's padding rules.
typedef struct gvm_nn_encodec_conv {
    gvm_tensor *g;     // [O, 1, 1]  (O = Cout for a conv, Cin for a transposed conv)
    gvm_tensor *v;     // conv [Cout, Cin, K]; transposed [Cin, Cout, K]
    gvm_tensor *bias;  // [Cout]
    int64_t cin, cout, kernel, stride, dilation;
    bool transposed;
} gvm_nn_encodec_conv;

// EncodecResnetBlock: x + block(x) with block = ELU, conv(dim -> dim/compress, k, dilation), ELU,
// conv(dim/compress -> dim, 1); the skip is a 1x1 conv when use_conv_shortcut.
typedef struct gvm_nn_encodec_resblock {
    gvm_nn_encodec_conv block1, block3, shortcut;
    bool has_shortcut;
} gvm_nn_encodec_resblock;

// EncodecLSTM: a stack of LSTMs over time plus a skip: y = lstm(x) + x.
typedef struct gvm_nn_encodec_lstm {
    gvm_tensor *w_ih[GVM_NN_ENCODEC_MAX_LSTM], *w_hh[GVM_NN_ENCODEC_MAX_LSTM];  // [4H, H] each
    gvm_tensor *b_ih[GVM_NN_ENCODEC_MAX_LSTM], *b_hh[GVM_NN_ENCODEC_MAX_LSTM];  // [4H] each
    int n_layers;
    int64_t dim;
} gvm_nn_encodec_lstm;

typedef enum gvm_nn_encodec_layer_kind {
    GVM_NN_ENCODEC_LAYER_CONV = 0,
    GVM_NN_ENCODEC_LAYER_CONV_TRANSPOSE,
    GVM_NN_ENCODEC_LAYER_RESBLOCK,
    GVM_NN_ENCODEC_LAYER_LSTM,
    GVM_NN_ENCODEC_LAYER_ELU,
} gvm_nn_encodec_layer_kind;

typedef struct gvm_nn_encodec_layer {
    gvm_nn_encodec_layer_kind kind;
    gvm_nn_encodec_conv conv;          // CONV, CONV_TRANSPOSE
    gvm_nn_encodec_resblock resblock;  // RESBLOCK
    gvm_nn_encodec_lstm lstm;          // LSTM
} gvm_nn_encodec_layer;

// EncodecEncoder / EncodecDecoder: the layers in the twin's ModuleList order.
typedef struct gvm_nn_encodec_seanet {
    gvm_nn_encodec_layer *layers;  // [n_layers], heap
    int n_layers;
} gvm_nn_encodec_seanet;

// EncodecEuclideanCodebook's buffers (store entries, requires_grad = false).
typedef struct gvm_nn_encodec_codebook {
    gvm_tensor *inited;        // [1]
    gvm_tensor *cluster_size;  // [N]     EMA of assignments per code
    gvm_tensor *embed;         // [N, D]  the codewords
    gvm_tensor *embed_avg;     // [N, D]  EMA of the sum of vectors assigned to each code
} gvm_nn_encodec_codebook;

typedef struct gvm_nn_encodec {
    gvm_nn_encodec_cfg cfg;  // codebook_dim resolved
    gvm_nn_encodec_seanet encoder, decoder;
    gvm_nn_encodec_codebook codebooks[GVM_NN_ENCODEC_MAX_CODEBOOKS];  // [num_quantizers]
} gvm_nn_encodec;

// Check the config (GVM_ERR_INVALID + message on a bad one; nothing registered then) and register every
// parameter and buffer in the twin's state_dict order.
gvm_status gvm_nn_encodec_init(gvm_nn_encodec *m, gvm_param_store *ps, const gvm_nn_encodec_cfg *cfg);
// PyTorch's default initialisation of the twin's modules, for training from scratch (transformers'
// _init_weights zeroes the codebooks, which suits loading only):
//   conv v ~ U(-b, b), bias ~ U(-b, b), b = 1/sqrt(fan_in) (fan_in = Cin*K; a transposed conv's [Cin, Cout, K]
//     weight has fan_in = Cout*K, as torch computes it), g = ||v|| per row (weight_norm's initial g, so w = v);
//   LSTM weights and biases ~ U(-1/sqrt(H), 1/sqrt(H));
//   codebooks: embed ~ U(-sqrt(6/D), sqrt(6/D)) (audiocraft's uniform_init, kaiming_uniform_), embed_avg = embed,
//     cluster_size = 0, inited = 1. With cluster_size 0 every code counts as dead at the first EMA update,
//     so the first batch restarts the whole codebook from its own vectors (a data-driven init in place of
//     audiocraft's k-means, which is not implemented).
void gvm_nn_encodec_reset_parameters(gvm_nn_encodec *m, gvm_rng *rng);
void gvm_nn_encodec_free(gvm_nn_encodec *m);  // the layer arrays (parameters belong to the store)

// ---- inference -------------------------------------------------------------------------------------------------
// wave [B, C, T] -> latent [B, D, F], F = ceil(T / hop).
gvm_tensor *gvm_nn_encodec_encode_latent(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave);
// latent [B, D, F] -> codes [B, nq, F] i64 (no grad): residual quantisation with the first nq codebooks,
// nearest codeword by squared euclidean distance, ties to the lowest index. 1 <= nq <= num_quantizers.
gvm_tensor *gvm_nn_encodec_quantize(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *latent, int nq);
// codes [B, nq, F] (i32/i64) -> [B, D, F]: the sum of codebook k's codeword for codes[:, k] over k.
gvm_tensor *gvm_nn_encodec_dequantize(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *codes);
// latent [B, D, F] -> wave [B, C, F * hop].
gvm_tensor *gvm_nn_encodec_decode_latent(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *latent);
// wave [B, C, T] -> codes [B, nq, ceil(T / hop)] i64.
gvm_tensor *gvm_nn_encodec_encode(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave, int nq);
// codes [B, nq, F] -> wave [B, C, F * hop], cut to `length` samples when 0 < length < F * hop.
gvm_tensor *gvm_nn_encodec_decode(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *codes, int64_t length);

// ---- training ----------------------------------------------------------------------------------------------------
typedef struct gvm_nn_encodec_train_out {
    gvm_tensor *recon;   // [B, C, T] decoder output on the straight-through latent, cut to the input length
    gvm_tensor *commit;  // scalar commitment loss (formula below)
    gvm_tensor *codes;   // [B, nq, F] i64
    gvm_tensor *latent;  // [B, D, F] encoder output (with its graph; the EMA update reads its values)
} gvm_nn_encodec_train_out;

// The training forward of audiocraft's EncodecModel + ResidualVectorQuantizer (the version with the fix for
// facebookresearch/encodec#25), with sg() = stop-gradient, z = latent, Q_k = codeword of stage k:
//   r_0 = z,  r_{k+1} = r_k - sg(Q_k),  codes_k = argmin_n ||r_k - e_{k,n}||^2
//   quantized = z + sg(sum_k Q_k - z)           (value sum_k Q_k; gradient the identity to z)
//   commit    = (1/nq) sum_{k<nq} mean((r_k - sg(Q_k))^2)
//                 (audiocraft: penalty = torch.mean(commit_loss) over the stages; each stage's loss is
//                  F.mse_loss over B*D*F elements; commitment_weight 1)
//   recon     = decoder(quantized)[..., :T]
// The caller weights commit (EnCodec: 1) and adds its reconstruction losses. Codebooks get no gradient:
// update them with gvm_nn_encodec_rvq_ema_update(out.latent values, out.codes).
void gvm_nn_encodec_forward_train(gvm_ctx *ctx, const gvm_nn_encodec *m, gvm_tensor *wave, int nq,
                                  gvm_nn_encodec_train_out *out);

typedef struct gvm_nn_encodec_ema_opts {
    float decay;      // EMA decay (audiocraft's EnCodec: 0.99); 0 means 0.99
    float eps;        // Laplace smoothing (1e-5); 0 means 1e-5
    float threshold;  // dead-code threshold on the EMA cluster size (2); < 0 disables restarts; 0 means 2
    // The EMA usage a restarted code starts from (0: keep its own, as audiocraft). audiocraft's k-means init
    // gives every code its cluster's count; without it (gvm_nn_encodec_reset_parameters sets 0), every code
    // stays under the threshold for the first ~threshold / ((1 - decay) * vectors per code) steps and is
    // restarted at every one of them, so the decoder never sees a stable codebook. A restart usage of about
    // 2 x threshold gives a new code ln 2 / (1 - decay) steps to attract vectors (gvm train-codec's choice).
    float restart_usage;
} gvm_nn_encodec_ema_opts;

// The codebook update of audiocraft's EuclideanCodebook.forward in training, host-side, no autograd, for the
// first nq = codes.shape[1] codebooks. latent [B, D, F] (any device; its values), codes [B, nq, F] the
// assignments made from it (gvm_nn_encodec_quantize / forward_train). Per stage k, with x_i the stage's
// residuals r_k (computed with the codebooks as they were before this call, as in the forward pass),
// n_c = #{i: code_i = c}, s_c = sum of those x_i, and d = decay:
//   dead_c       = cluster_size_c < threshold          (tested before the EMA, as audiocraft's expire_codes_)
//   cluster_size = d * cluster_size + (1 - d) * n
//   embed_avg    = d * embed_avg + (1 - d) * s
//   N_c          = (cluster_size_c + eps) / (sum(cluster_size) + N * eps) * sum(cluster_size)
//   embed_c      = embed_avg_c / N_c
//   dead codes:  embed_c = a batch vector x_j drawn from `rng` (distinct j while the batch has enough
//                vectors, as sample_vectors), and embed_avg_c = embed_c * N_c so the next EMA starts there.
// The last line differs from audiocraft on purpose: there the replacement is made before the renormalisation,
// which overwrites every row of embed, so a restart never survives the call. The codebooks must be on the CPU
// (the store's host blocks). replaced (optional, [nq * codebook_size] bools) receives the restarts; returns
// their count.
int64_t gvm_nn_encodec_rvq_ema_update(gvm_nn_encodec *m, const gvm_tensor *latent, const gvm_tensor *codes,
                                      const gvm_nn_encodec_ema_opts *opts, gvm_rng *rng, bool *replaced);

#ifdef __cplusplus
}
#endif

#endif
