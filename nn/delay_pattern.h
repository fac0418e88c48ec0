// delay_pattern.h: MusicGen's "delay" codebook interleaving (audiocraft's DelayedPatternProvider with delays
// 0, 1, ..., K-1, the layout Hugging Face's MusicgenForCausalLM.build_delay_pattern_mask produces).
//
// Codebook k is delayed by k steps, so one LM step predicts codebook 0 of frame t together with codebook 1
// of frame t-1, ..., codebook K-1 of frame t-K+1. With T frames the interleaved sequence has S = T + K - 1
// steps (30 s at 50 Hz: 1500 frames, K = 4 -> 1503 steps):
//     seq[b, k, s] = codes[b, k, s - k]   when 0 <= s - k < T
//                  = special              otherwise (before codebook k starts, after it ends)
// e.g. K = 3, T = 2, codes row k = (a_k, b_k), special = X:
//     k = 0:  a0 b0 X  X
//     k = 1:  X  a1 b1 X
//     k = 2:  X  X  a2 b2
// The LM sees one extra step in front: step 0 of its input is all special (audiocraft's empty initial step,
// Hugging Face's decoder_start_token_id = pad = card), and its output at input step s predicts seq[s]:
//     inputs[b, k, 0] = special, inputs[b, k, s] = seq[b, k, s - 1]; targets[b, k, s] = seq[b, k, s] or ignore.
// So the model is trained on S steps (the last sequence step is never fed) and a generation of S steps
// after the start token yields T = S - K + 1 frames.
//
// Code tensors are i32 or i64 and may live on any device: the index work is done on the host (they are
// small: K x T integers per sample) and the results are arena tensors on the context's device.
#ifndef GVM_NN_DELAY_PATTERN_H
#define GVM_NN_DELAY_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

// Steps of the interleaved sequence for T frames and K codebooks: T + K - 1 (0 when T == 0).
static inline int64_t gvm_delay_pattern_steps(int64_t frames, int64_t num_codebooks) {
    return frames > 0 ? frames + num_codebooks - 1 : 0;
}
// Whether step s of codebook k holds a real code for a sequence of T frames (else the special token).
static inline bool gvm_delay_pattern_is_valid(int64_t step, int64_t codebook, int64_t frames) {
    return step - codebook >= 0 && step - codebook < frames;
}

// codes [B, K, T] -> seq [B, K, T + K - 1] (same dtype), as above.
gvm_tensor *gvm_delay_pattern_build(gvm_ctx *ctx, const gvm_tensor *codes, int64_t special);

// The inverse: seq [B, K, S] -> codes [B, K, T] with codes[b, k, t] = seq[b, k, t + k] where t + k < S,
// else `special`. T is any frame count (T = S - K + 1 undoes gvm_delay_pattern_build exactly; a shorter
// generation gives the frames it completed as valid). valid (when not NULL) receives [K, T] u8 (on the
// context's device): 1 where t + k < S (audiocraft's revert_pattern_sequence mask; it does not depend on b).
gvm_tensor *gvm_delay_pattern_revert(gvm_ctx *ctx, const gvm_tensor *seq, int64_t frames, int64_t special,
                                     gvm_tensor **valid);

// A training pair from codes [B, K, T]: inputs [B, K, S] and targets [B, K, S], S = T + K - 1, both of the
// codes' dtype. lengths [B] (host array, or NULL = all T) gives each sample's real frame count: frames
// t >= lengths[b] are padding, treated as if the sample ended there (special in inputs, ignore_index in
// targets). Targets are ignore_index wherever the delayed sequence holds the special token, so the loss
// sees exactly the real codes (audiocraft computes it on the reverted logits with the same mask).
void gvm_delay_pattern_lm_batch(gvm_ctx *ctx, const gvm_tensor *codes, const int64_t *lengths, int64_t special,
                                int64_t ignore_index, gvm_tensor **inputs, gvm_tensor **targets);

#ifdef __cplusplus
}
#endif

#endif
