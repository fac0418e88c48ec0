// checkpoint.h: saving and resuming a training run: weights, EMA weights, optimiser state and the run's
// position (step, config, RNG, data order, loss scale), crash-safe.
//
// Layout in the run folder (one folder per checkpoint, named by the global step):
//   <run>/ckpt-000000001000/model.safetensors   parameters, f32, names as registered; __metadata__ holds
//                                               everything of gvm_checkpoint_state (keys below)
//   <run>/ckpt-000000001000/ema.safetensors     EMA weights under the same names (when the store has them)
//   <run>/ckpt-000000001000/optim.safetensors   AdamW state: "m.<name>", "v.<name>" (when it has them)
//   <run>/latest                                "ckpt-000000001000\n": the checkpoint to resume from
// All values are f32 in the store's layout; Python's safetensors reads every file.
//
// Crash safety. A checkpoint is written into "<run>/ckpt-<step>.tmp.<pid>/" (each file fsync'd), the
// folder fsync'd and renamed to its final name (atomic), the run folder fsync'd; then "latest" is
// replaced atomically (temp file, fsync, rename); only then are checkpoints beyond keep_last deleted. A
// crash at any point leaves the previous checkpoint intact and loadable. Each file's metadata records the
// format, the step and a 64-bit checksum of its tensor data, so a truncated or damaged file is found at
// load time (and never crashes the loader).
//
// One writer per run folder (rank 0): a save deletes every "ckpt-*.tmp.*" / "ckpt-*.old.*" leftover it finds.
//
// Resuming. gvm_checkpoint_load_latest tries the one "latest" names, then every other "ckpt-<digits>"
// folder from the highest step down (temp folders are ignored), and loads the first that validates
// completely; the ones skipped are described in gvm_checkpoint_loaded.skipped (the caller prints it).
// Loading is all-or-nothing: every file and tensor is checked (names, shapes, f32, checksums, metadata)
// before anything in the store changes.
//
// Metadata keys (strings) of model.safetensors: format ("gvm-checkpoint-1"), gvm_version, step,
// optim_step, config, rng_seed, rng_offset, data_epoch, data_batch, loss_scale, loss_scale_growth_factor,
// loss_scale_backoff_factor, loss_scale_growth_interval, loss_scale_growth_tracker, files
// ("model,ema,optim": the files the checkpoint has), checksum. ema/optim files: format, step, checksum.
// Floats are written with 9 significant digits (exact for f32), integers in decimal.
//
// Stores on any device: blocks are copied through the host one file at a time.
#ifndef GVM_TRAIN_CHECKPOINT_H
#define GVM_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/optim.h"
#include "core/param_store.h"
#include "core/rng.h"
#include "data/loader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_CHECKPOINT_FORMAT "gvm-checkpoint-1"

// Everything about a run except the tensors.
typedef struct gvm_checkpoint_state {
    int64_t step;              // global steps done (names the folder)
    int64_t optim_step;        // AdamW steps applied (the next gvm_adamw_step gets optim_step + 1); it
                               // lags `step` by the steps the loss scaler skipped
    const char *config;        // the resolved config text (opaque YAML/JSON); NULL is saved as ""
    gvm_rng rng;               // seed and offset of the run's generator
    gvm_loader_position data;  // gvm_loader_get_position: the next batch
    gvm_loss_scaler scaler;
} gvm_checkpoint_state;

typedef struct gvm_checkpoint_opts {
    int keep_last;     // save: keep this many newest checkpoints (0: keep all)
    int slot_m, slot_v;  // param-store state slots of AdamW's m and v (default 0 and 1, as the loop uses)
    int slot_ema;      // state slot of the EMA weights (default 2); -1: none
    bool weights_only; // load: parameters only (fine-tuning, generation); EMA and optimiser files untouched
} gvm_checkpoint_opts;

gvm_checkpoint_opts gvm_checkpoint_opts_default(void);  // keep all, m 0, v 1, EMA 2

// Write checkpoint `state->step` of `ps` into run folder `run_dir` (created when missing). The optimiser
// file is written when slots m and v both exist in the store, the EMA file when slot_ema does. A
// checkpoint of the same step already there is replaced. On failure the previous checkpoints and
// "latest" are unchanged and the message names the file.
gvm_status gvm_checkpoint_save(const char *run_dir, const gvm_param_store *ps, const gvm_checkpoint_state *state,
                               const gvm_checkpoint_opts *opts);

// What a load found. Free with gvm_checkpoint_loaded_free.
typedef struct gvm_checkpoint_loaded {
    gvm_checkpoint_state state;  // state.config is owned (heap)
    char *path;                  // the checkpoint folder loaded
    char *version;               // gvm version that wrote it
    bool has_ema, has_optim;     // loaded into slot_ema / slot_m, slot_v (false with weights_only)
    char *skipped;               // load_latest: one line per newer checkpoint that failed to validate, or NULL
} gvm_checkpoint_loaded;

void gvm_checkpoint_loaded_free(gvm_checkpoint_loaded *l);

// Load one checkpoint folder into `ps` (finalized, same parameters). EMA and optimiser state go into their
// slots (allocated when missing). Error (store unchanged) naming the file and tensor on anything wrong.
gvm_status gvm_checkpoint_load(const char *ckpt_dir, gvm_param_store *ps, const gvm_checkpoint_opts *opts,
                               gvm_checkpoint_loaded *out);
// Load the latest good checkpoint of a run folder (see "Resuming"). GVM_ERR_NOT_FOUND when the folder
// has no checkpoint at all (a fresh run); when it has some but none loads, the error of the newest.
gvm_status gvm_checkpoint_load_latest(const char *run_dir, gvm_param_store *ps, const gvm_checkpoint_opts *opts,
                                      gvm_checkpoint_loaded *out);

// The "checksum" metadata (16 lowercase hex digits) of a file: starting from the seed 0xcbf29ce484222325,
// h = gvm_checkpoint_hash(h, bytes) over each tensor's data in the store's parameter order (optim: all
// of m, then all of v), then over each metadata key and its value, both with their NUL
// terminators, in the order of the key list above (model file) or format, step (ema, optim). One call:
// 64-bit little-endian words (the tail zero-padded) mixed as h = (h ^ w) * 0x100000001b3, then
// h ^= h >> 29. Every step is invertible, so any single changed word changes the sum.
uint64_t gvm_checkpoint_hash(uint64_t h, const void *data, size_t nbytes);
#define GVM_CHECKPOINT_HASH_SEED 0xcbf29ce484222325ull

#ifdef __cplusplus
}
#endif

#endif
