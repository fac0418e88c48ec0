// codec_loop.h: gvm train-codec: training a small EnCodec-style codec (nn/encodec.h) on the shards' audio,
// so the whole pipeline works offline without the pretrained 32 kHz model (configs/codec-demo.yaml).
//
// One step: data.batch of codec_train.batch_size clips (the first data.clip_seconds of each, shuffled,
// full batches), from each a random crop of codec_train.segment_seconds (the crop offset of row r at step s
// is drawn from Philox(train.seed, s, r): resumable without state), then
//   recon, commit = forward_train(crop)       (straight-through RVQ over all codec.codebooks)
//   loss = l1_weight * mean|recon - crop| + mel_weight * msmel(recon, crop) + commit_weight * commit
//   (msmel: audiocraft's multi-scale mel loss, nn/audio_loss.h)
//   backward, clip the global norm to codec_train.grad_clip, Adam (betas codec_train.betas, no weight
//   decay) with linear warm-up then a constant rate, and the codebooks' EMA update with dead-code restarts
//   (decay codec_train.codebook_decay, threshold codec_train.dead_code_threshold; restarts draw from the
//   run's RNG, saved in every checkpoint).
// Evaluation (every codec_train.eval_every steps and at the end): the first codec_train.eval_clips clips of
// the eval split, their first codec_train.eval_seconds, encoded to codes and decoded (the inference path
// gvm encode and gvm generate use); SI-SNR (dB) and mel distance against the original (nn/audio_loss.h).
//
// Run folder: config.yaml, metrics.jsonl (step lines: loss, l1, mel, commit, restarts, lr, grad_norm;
// eval lines: eval_si_snr, eval_mel_distance), ckpt-<step>/ (train/checkpoint.h: weights with the
// codebooks, Adam state, step, RNG, data position) and, at the end, codec.safetensors (train/codec_file.h)
// for codec.init. Resume, SIGTERM and NaN behave as in gvm train (train/loop.h): on the CPU a resumed run
// is bit-identical to an uninterrupted one.
#ifndef GVM_TRAIN_CODEC_LOOP_H
#define GVM_TRAIN_CODEC_LOOP_H

#include "train/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

gvm_status gvm_codec_train_run(const gvm_config *cfg, const char *run_dir, bool resume, const gvm_train_opts *opts,
                               gvm_train_result *result);

#ifdef __cplusplus
}
#endif

#endif
