// loader.h: the batch loader: dataset shards (data/dataset.h) in, fixed-shape training batches out.
//
// What it does, and why (docs/loader.md has the details and the numbers):
//  * Index. At open every shard is opened once to count its clips; clip g of the run is (shard, local index)
//    in shard order (the shard list as given, or a folder's <split>-*.h5 files sorted by name).
//  * Order. Epoch e visits a permutation of all M clips: Fisher-Yates driven by Philox4x32-10 with key
//    `seed` and counter subsequence e (core/rng.h), so every rank computes the same permutation without
//    talking to the others. Rank r of N takes positions r, r+N, r+2N, ... (disjoint, covering); its batch b
//    holds rank-local positions b*B .. b*B+B-1. Every rank gets the same number of batches per epoch (a
//    data-parallel step is collective, so ranks must agree):
//      drop_last:  floor(M / (N*B)) full batches; the M mod (N*B) clips at the end of each epoch's
//                  permutation are skipped (different ones each epoch).
//      otherwise:  ceil(M / (N*B)) batches; in the last one the rows past the end of the permutation are
//                  padding rows (count < B, all masks 0, clip -1), so each clip is seen exactly once per
//                  epoch across ranks (an evaluation pass). Weight losses by valid tokens, not rows.
//  * Batches. Fixed shapes whatever the clip lengths: longer clips are truncated, shorter ones padded and
//    masked (mask 1 = real data). Frames are CLIP-normalised f32, channel-first per frame.
//  * Prefetch. One background thread fills a ring of `prefetch` batches (all batch buffers allocated at
//    open; in steady state only the shard reader's per-clip read buffers are allocated) and rolls over
//    epochs by itself; gvm_loader_next blocks only when the ring is empty. `workers` - 1 helper threads
//    can fill the rows of a batch alongside it; the batches are the same for any number of workers.
//  * Resume. gvm_loader_get_position gives the position of the next batch gvm_loader_next will return
//    (not of what the thread has read ahead); a loader opened with that position as `start` (same shards,
//    clip_split, seed, shuffle, batch size, rank count, drop_last, shapes) returns the same batches from
//    there on. The position is the same on every rank, so rank 0 can save it in the checkpoint.
//
// Errors: a bad configuration or a shard that cannot be opened fails gvm_loader_open; a clip that
// cannot be read (a damaged chunk, no codes, a codec other than the configured one) makes
// gvm_loader_next return that status, with a message naming the shard, the clip index and id, and the
// batch position. The error is sticky (later calls return it again): ranks must not skip a batch alone.
//
// Threads: one consumer thread calls next/release/position/stats; the loader's own thread does the
// reading. Reads go through data/dataset.h, which serialises HDF5 calls process-wide.
#ifndef GVM_DATA_LOADER_H
#define GVM_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"
#include "data/dataset.h"

// Where a loader stands: batch `batch` (0-based) of epoch `epoch` in this rank's order. Normalised:
// 0 <= batch < batches per epoch (after an epoch's last batch the position is {epoch + 1, 0}).
typedef struct gvm_loader_position {
    int64_t epoch;
    int64_t batch;
} gvm_loader_position;

// CLIP's normalisation (openai/clip-vit-large-patch14-336 preprocessor), applied to uint8 / 255.
#define GVM_CLIP_MEAN_R 0.48145466
#define GVM_CLIP_MEAN_G 0.4578275
#define GVM_CLIP_MEAN_B 0.40821073
#define GVM_CLIP_STD_R 0.26862954
#define GVM_CLIP_STD_G 0.26130258
#define GVM_CLIP_STD_B 0.27577711

typedef struct gvm_loader_config {
    // Shards: an explicit list (kept in its order), or (shards == NULL) every "<folder>/<split>-*.h5", sorted by
    // name (byte order). The run's clips are numbered in shard order, after the clip_split filter.
    const char *const *shards;
    int num_shards;
    const char *folder;
    const char *split;       // "train", "eval", ...; names the files in folder mode
    const char *clip_split;  // keep only clips whose index row has this split (NULL: every clip)

    int64_t batch_size;      // B >= 1
    unsigned parts;          // GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES | GVM_CLIP_FEATURES (non-empty)
    int64_t frames;          // T_v: frames per row (FRAMES, FEATURES)
    int64_t code_steps;      // T_m: codec frames per row (CODES)
    int32_t codebooks;       // K (CODES): clips with more keep the first K (RVQ: the coarse ones); fewer is an error
    int32_t code_pad;        // value of codes in padded steps and rows (e.g. an ignore index, or a special token)
    const char *codec;       // CODES: required codec name of every clip ("encodec_32khz"); NULL accepts any
    int64_t audio_samples;   // T_a: waveform samples per row (AUDIO)
    // FEATURES (cached vision tokens, docs/dataset-format.md): `frames` rows of feature_tokens x feature_dim
    // each; every clip must hold features of exactly that shape and, when feature_source is not NULL, made by
    // that source (a stale cache is an error, not silently used).
    int64_t feature_tokens, feature_dim;
    const char *feature_source;

    uint64_t seed;
    bool shuffle;            // false: every epoch in index order (evaluation)
    int rank, world_size;    // 0 <= rank < world_size
    bool drop_last;          // see "Order" above
    int prefetch;            // batches read ahead (queue depth); 0: 2
    int workers;             // threads filling one batch's rows (the loader's thread + workers - 1 helpers); 0: 1.
                             // More help only where work runs outside the HDF5 lock (see docs/loader.md)
    bool pinned;             // the consumer copies to CUDA: page-locked buffers (CUDA builds, a usable GPU)
    int max_open_shards;     // shard files kept open at once (least recently used closed first); 0: 64; at least B
    gvm_loader_position start;  // first batch to return ({0, 0}: the beginning)
} gvm_loader_config;

// The defaults above (prefetch 2, 1 worker, shuffle on, world size 1, 64 open shards); the caller fills the rest.
gvm_loader_config gvm_loader_config_default(void);

// One batch: a view into the loader's buffers, valid until the next gvm_loader_next or
// gvm_loader_release (or close). The tensors are CPU tensors (in page-locked memory when `pinned`);
// those of parts not loaded are NULL. Row i < count is clip `clip[i]`; rows >= count are padding.
// With `pinned`, a host-to-device copy from these buffers is asynchronous: let it finish (an event, or
// gvm_device_synchronize) before the next gvm_loader_next or gvm_loader_release hands them back.
typedef struct gvm_loader_batch {
    gvm_loader_position position;  // of this batch
    int64_t size;                  // B
    int64_t count;                 // valid rows (B, except in the last batch of an epoch without drop_last)
    const int64_t *clip;           // [B] global clip index (shard order), -1 for padding rows
    const int32_t *shard;          // [B] shard number (gvm_loader_shard_path), -1 for padding rows
    const int64_t *shard_clip;     // [B] clip index inside that shard, -1 for padding rows

    gvm_tensor *frames;            // f32  [B, T_v, 3, H, W]: (u8 / 255 - mean[c]) / std[c], RGB; padding 0
    gvm_tensor *features;          // f32  [B, T_v, S, D]: cached vision tokens (f16 in the shard); padding 0
    gvm_tensor *frame_mask;        // bool [B, T_v] (frames or features: the same rows)
    const int64_t *frame_len;      // [B] valid frames per row
    gvm_tensor *codes;             // i32  [B, K, T_m]: codebook-major as stored; padding code_pad
    gvm_tensor *code_mask;         // bool [B, T_m]
    const int64_t *code_len;       // [B]
    gvm_tensor *audio;             // f32  [B, T_a]: the stored waveform; padding 0
    gvm_tensor *audio_mask;        // bool [B, T_a]
    const int64_t *audio_len;      // [B]
} gvm_loader_batch;

typedef struct gvm_loader_stats {
    int64_t batches;        // batches returned by gvm_loader_next
    double wait_seconds;    // time gvm_loader_next spent blocked on an empty ring
    double fill_seconds;    // time the background thread spent reading and assembling batches
    int64_t clips_read;
} gvm_loader_stats;

typedef struct gvm_loader gvm_loader;

// Open the shards, build the index, allocate the ring and start the background thread.
gvm_status gvm_loader_open(const gvm_loader_config *config, gvm_loader **out);
// Stop the thread (mid-epoch is fine), close the shards, free everything. NULL is fine.
void gvm_loader_close(gvm_loader *l);

// The next batch (blocks while the ring is empty). Releases the batch returned before.
gvm_status gvm_loader_next(gvm_loader *l, gvm_loader_batch *out);
// Hand the current batch's buffers back early, so the thread can refill them while the step runs
// (after its tensors were copied to the device, say). The view is invalid afterwards.
void gvm_loader_release(gvm_loader *l);

gvm_loader_position gvm_loader_get_position(const gvm_loader *l);  // of the next batch to be returned
gvm_loader_stats gvm_loader_get_stats(const gvm_loader *l);

int64_t gvm_loader_clip_count(const gvm_loader *l);         // M: clips in the run (after clip_split)
int64_t gvm_loader_batches_per_epoch(const gvm_loader *l);  // per rank (the same on every rank)
int gvm_loader_shard_count(const gvm_loader *l);
const char *gvm_loader_shard_path(const gvm_loader *l, int shard);
const gvm_shard_info *gvm_loader_info(const gvm_loader *l);  // frame size, fps, sample rate (all shards agree)
// The batches' frame normalisation, for code that feeds frames to the model itself (generation, feature
// caching): `count` frames u8 [H*W, 3] (interleaved RGB, as stored) -> f32 [count, 3, H*W], CLIP-normalised.
void gvm_loader_normalise_frames(const uint8_t *frames, int64_t count, int64_t hw, float *out);
// Epoch `epoch`'s permutation of the clips 0..m-1 into out[m] (identity when !shuffle): Fisher-Yates from
// i = m-1 down to 1, swapping i with j uniform in [0, i]; draw k (k = 0, 1, ...) is the 64-bit number made of
// words 0 and 1 of the Philox4x32-10 block (key seed, counter k, subsequence epoch), rejected when it falls in
// the incomplete top range (unbiased). Every rank computes the same permutation; the loader uses this.
void gvm_loader_permutation(uint64_t seed, int64_t epoch, int64_t m, bool shuffle, int64_t *out);

#endif
