// generate.h: autoregressive music generation from GVMGen's LM (what `gvm generate` runs for each window of
// a video, nn/windows.h).
//
//   cond      [B, F, D]  per-frame visual vectors (gvm_nn_gvmgen_forward_condition), F frames of the window
//   cond_mask [B, F]     bool/u8, 1 = real frame, or NULL (all real)
//   prompt    [B, K, P]  host int64 codes (not delayed) to continue from, or NULL (P = 0): the previous
//                        window's last seconds; 0 <= P < T
//   codes     [B, K, T]  host int64 result (not delayed), every value in 0..card-1
//
// The loop runs the LM over the delay-interleaved sequence (nn/delay_pattern.h) with its KV cache: step 0
// feeds the start token (card) for every codebook, as in training; LM input step s feeds seq[s-1], and its
// logits predict seq[s], s = 0 .. S-1, S = T + K - 1. Positions seq[s][k] where codebook k has not started
// (s < k) or has ended (s - k >= T) are the special token `card` (what training feeds and
// build_delay_pattern_mask forces); positions covered by the prompt (s - k < P) are the prompt's codes;
// only the rest is sampled. The prompt's first P + 1 input steps are fully known, so they go through the
// LM in one call (prefill); every later step is one call of one step.
//
// Classifier-free guidance (cfg_scale > 0): one LM batch of 2B rows, rows 0..B-1 with the condition and
// rows B..2B-1 with a zero condition and an all-zero mask (exactly what gvm_nn_music_lm_cond_dropout makes
// of a dropped sample in training), both fed the same tokens; logits = uncond + cfg_scale * (cond - uncond)
// (nn/sampling.h). cfg_scale == 0 runs the B conditional rows alone (guidance off; cfg_scale 1 gives the
// same logits up to rounding at twice the cost). GVMGen's reference uses 3.0.
//
// The model runs under no-grad with ctx->training = false (restored on return). Everything allocated in the
// context's arenas during the call is released before it returns, and after every step (arena marks), so
// memory stays bounded however long the generation; the caller's arena tensors (cond) are untouched.
// Only the KV cache grows with the steps (heap, freed on return).
#ifndef GVM_NN_GENERATE_H
#define GVM_NN_GENERATE_H

#include <stdint.h>

#include "nn/gvmgen.h"
#include "nn/sampling.h"

#ifdef __cplusplus
extern "C" {
#endif

// Called after each LM step: step in 1..total (total = S, the delay-pattern steps); a progress bar.
typedef void (*gvm_nn_generate_progress_fn)(void *user, int64_t step, int64_t total);

typedef struct gvm_nn_generate_opts {
    float cfg_scale;              // >= 0; 0 = no guidance rows (GVMGen: 3.0)
    gvm_nn_sampling_opts sample;  // temperature, top_k, top_p, seed
    gvm_nn_generate_progress_fn progress;  // or NULL
    void *progress_user;
    // For tests and inspection: when not NULL, receives the delayed sequence [B, K, S] that was fed (seq,
    // special token included), host int64.
    int64_t *seq_out;
} gvm_nn_generate_opts;

// GVMGen's reference settings: cfg 3.0, top-k 250, top-p off, temperature 1, seed 0.
gvm_nn_generate_opts gvm_nn_generate_opts_default(void);

// Generate T = frames codec frames for each of the B samples of cond into codes [B, K, T] (host, caller's
// memory). prompt [B, K, prompt_frames] host int64 or NULL (prompt_frames must be 0 then). Returns
// GVM_ERR_INVALID with a message (and writes nothing) when frames <= 0, the prompt is not shorter than
// frames, a prompt code is not in 0..card-1, cond is not [B, F, D] with D the LM width (or its mask not
// [B, F]), prompt_num_codebooks differs from the model's K, or an option is out of range.
gvm_status gvm_nn_generate(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *cond, gvm_tensor *cond_mask,
                           int64_t frames, const int64_t *prompt, int64_t prompt_num_codebooks,
                           int64_t prompt_frames, const gvm_nn_generate_opts *opts, int64_t *codes);
// The same on a bare LM (cond [B, F, cross_dim]).
gvm_status gvm_nn_generate_lm(gvm_ctx *ctx, const gvm_nn_music_lm *lm, gvm_tensor *cond, gvm_tensor *cond_mask,
                              int64_t frames, const int64_t *prompt, int64_t prompt_num_codebooks,
                              int64_t prompt_frames, const gvm_nn_generate_opts *opts, int64_t *codes);

#ifdef __cplusplus
}
#endif

#endif
