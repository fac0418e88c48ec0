// sampling.h: turning the music LM's logits into codes: classifier-free guidance, temperature, top-k, top-p,
// then one draw from the softmax (or the argmax). Host float rows: generation has a handful of rows per
// step (batch x codebooks), so this is never the cost; the LM is.
//
// Semantics are Hugging Face transformers' (generation/logits_process.py), applied in MusicGen's order:
//   cfg         ClassifierFreeGuidanceLogitsProcessor: scores = uncond + (cond - uncond) * scale, cond rows
//               first then uncond rows (the LM batch is [cond rows; uncond rows], 2B rows for B samples)
//   temperature TemperatureLogitsWarper: scores / temperature
//   top_k       TopKLogitsWarper: scores below the k-th largest become -inf (ties with it are kept)
//   top_p       TopPLogitsWarper (min_tokens_to_keep = 1): sort ascending, cumulative softmax; entries whose
//               cumulative probability is <= 1 - top_p become -inf, the largest entry always stays
// then the draw from softmax(scores) (entries at -inf have probability 0 and are never drawn).
//
// Option values that switch a stage off (documented differences from transformers, which rejects them):
//   temperature == 0 or top_k == 1 -> greedy (argmax of the guided logits, first index on ties): what
//                                     do_sample=False gives;
//   top_k <= 0 -> no top-k;  top_p <= 0 or top_p >= 1 -> no top-p (audiocraft's convention, so GVMGen's
//                                     reference "top_p 0" means off, as it does there).
//
// Random numbers: the draw for (sample b, codebook k, step s) uses Philox4x32(key = seed, counter = s * K + k,
// subsequence = b) alone, so the codes depend on the seed and nothing else: not on thread count, device,
// batch size (sample b gets the same stream alone or in a batch) or whether guidance rows were added.
#ifndef GVM_NN_SAMPLING_H
#define GVM_NN_SAMPLING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_sampling_opts {
    float temperature;  // > 0; 0 = greedy
    int64_t top_k;      // keep the k largest (GVMGen: 250); 0 = off, 1 = greedy
    float top_p;        // nucleus mass in (0, 1); 0 (or >= 1) = off
    uint64_t seed;
} gvm_nn_sampling_opts;

// GVMGen's reference sampling (GVMGEN.md): top-k 250, top-p off, temperature 1.
gvm_nn_sampling_opts gvm_nn_sampling_opts_default(void);
// GVM_ERR_INVALID with a message naming the option when one is out of range (temperature < 0 or not finite,
// top_k < 0, top_p < 0 or not finite).
gvm_status gvm_nn_sampling_check(const gvm_nn_sampling_opts *o);
// Whether these options draw nothing (argmax).
bool gvm_nn_sampling_is_greedy(const gvm_nn_sampling_opts *o);

// out [rows, card] = uncond + (cond - uncond) * scale, cond and uncond [rows, card] (out may alias cond).
void gvm_nn_sampling_cfg(const float *cond, const float *uncond, int64_t rows, int64_t card, float scale,
                         float *out);
// Temperature, top-k, top-p in place on scores [rows, card] (the greedy settings leave the row unchanged:
// the argmax is taken from it). Needs no scratch from the caller.
void gvm_nn_sampling_process(float *scores, int64_t rows, int64_t card, const gvm_nn_sampling_opts *o);
// Index of the draw from softmax(row) [card] for a uniform u in [0, 1): the first index whose cumulative
// probability exceeds u (computed in double). Entries at -inf are never chosen.
int64_t gvm_nn_sampling_draw(const float *row, int64_t card, double u);
int64_t gvm_nn_sampling_argmax(const float *row, int64_t card);  // first index of the largest value
// The uniform [0, 1) (53 bits) for (sample, codebook, step) as described above; num_codebooks = K.
double gvm_nn_sampling_uniform(uint64_t seed, int64_t sample, int64_t codebook, int64_t step,
                               int64_t num_codebooks);

// One step for B samples x K codebooks: scores [B*K, card] row b*K + k, already guided; processed in place
// (unless greedy), then codes[b*K + k] = the argmax or the draw with gvm_nn_sampling_uniform(seed, b, k,
// step, K).
void gvm_nn_sampling_sample(float *scores, int64_t batch, int64_t num_codebooks, int64_t card,
                            const gvm_nn_sampling_opts *o, int64_t step, int64_t *codes);

#ifdef __cplusplus
}
#endif

#endif
