// dataset.h: the gvm dataset, format v1: HDF5 shard files of paired (video frames, music) clips.
//
// The layout on disk is documented in docs/dataset-format.md (keep the two in step). One shard holds
// N clips; each clip has
//   frames   uint8 [T_v, H, W, 3]   RGB frames at the shard's fps (1 frame per second in the reference)
//   audio    f32   [T_a]            mono waveform at the shard's sample rate (32 kHz)
//   codes    int16 [K, T_m]         optional: codec codes (EnCodec: K = 4, 50 frames/s), filled by `gvm encode`
//   features f16   [T_v, S, D]      optional: cached per-frame vision features (S tokens of width D)
// and metadata (clip id, source file, start time, duration, fps, sample rate, style tag, split).
//
// Writing: gvm_shard_create writes to "<path>.tmp"; gvm_shard_writer_close(w, true) fsyncs and renames
// it to <path>, so a file at <path> is always a complete shard; commit=false removes the temporary file.
// Reading: gvm_shard_open validates the file-level keys and loads the clip index; clips are read by index.
// In place: gvm_shard_update_* fills or replaces the optional codes/features of existing clips.
//
// Threads. A serial HDF5 library keeps global state (identifier tables, the error stack, free lists), so
// even calls on different files must not overlap. Every function here therefore holds one process-wide
// mutex while it calls HDF5: any number of threads may share or own gvm_shard (reader) handles and call
// these functions at once (the HDF5 part of the calls runs one at a time). A writer or updater handle is
// used by one thread at a time. Other code in this process that calls HDF5 directly must hold the same
// lock (gvm_hdf5_lock/gvm_hdf5_unlock) meanwhile, and must not call gvm_shard_* while holding it.
//
// Errors: bad files give GVM_ERR_NOT_FOUND (no such file), GVM_ERR_FORMAT (not HDF5, truncated, wrong
// format_version, a missing dataset or attribute, a wrong shape or dtype, a damaged chunk), GVM_ERR_IO
// (a folder, cannot create/rename/fsync, a full disk, the shard in use by another process or handle),
// GVM_ERR_INVALID (a bad argument, e.g. a clip whose frames do not match the shard, an index out of range)
// or GVM_ERR_MEMORY; the message (gvm_error_message) names the file and, where one is at fault, the clip
// (index and id). HDF5 prints nothing during our calls: its error stack becomes part of our message.
#ifndef GVM_DATA_DATASET_H
#define GVM_DATA_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define GVM_DATASET_FORMAT_VERSION 1

// What every clip of one shard shares; stored as file attributes.
typedef struct gvm_shard_info {
    int32_t frame_height, frame_width;  // frames are [T_v, frame_height, frame_width, 3] (336 x 336)
    double fps;                         // video frames per second (1.0)
    int32_t sample_rate;                // audio samples per second (32000)
    const char *created_by;             // free text, e.g. "gvm 0.1.0 prep"; NULL writes "gvm"
} gvm_shard_info;

// Codec codes of one clip. On write the caller owns `data`; on read the clip owns it.
typedef struct gvm_codes {
    const int16_t *data;  // [k, t] row-major; NULL: none (or not requested)
    int32_t k;            // codebooks (4); 0 on read means the clip has no codes
    int64_t t;            // codec frames (50 per second of audio)
    double frame_rate;    // codec frames per second (50.0)
    const char *codec;    // which codec made them, e.g. "encodec_32khz"; a reader compares it with its config
} gvm_codes;

// Cached vision features of one clip, one row of S tokens per video frame, f16 (IEEE binary16) bits.
typedef struct gvm_features {
    const uint16_t *data;  // [t, tokens, dim] row-major f16 bits (core/half.h converts); NULL: none
    int64_t t;             // must equal the clip's T_v; 0 on read means the clip has no features
    int64_t tokens;        // S: 577 for the full ViT-L/14@336 token sequence, 1 for one vector per frame
    int64_t dim;           // D: 1024 (ViT width) or 768 (projected)
    const char *source;    // what produced them (model + layer), so a stale cache can be detected
} gvm_features;

// One clip. For gvm_shard_add_clip every pointer is borrowed from the caller; gvm_shard_read_clip fills a
// clip whose strings and arrays the library allocated: release them with gvm_clip_free.
typedef struct gvm_clip {
    const char *clip_id;      // unique within the shard, non-empty UTF-8
    const char *source_file;  // the media file the clip was cut from (UTF-8; NULL writes "")
    const char *style;        // style tag, e.g. "guzheng" or "电影配乐" (UTF-8; NULL writes "")
    const char *split;        // "train", "eval", "test", ... (UTF-8; NULL writes "train")
    double start_time;        // seconds into source_file where the clip starts (>= 0)
    double duration;          // seconds (> 0)
    double fps;               // must equal the shard's
    int32_t sample_rate;      // must equal the shard's

    const uint8_t *frames;    // [num_frames, height, width, 3] RGB, row-major
    int64_t num_frames;       // T_v >= 1
    int32_t height, width;    // must equal the shard's frame size

    const float *audio;       // [num_samples] mono, finite (nominally in [-1, 1])
    int64_t num_samples;      // T_a >= 1

    gvm_codes codes;          // optional (data == NULL on write: none)
    gvm_features features;    // optional (data == NULL on write: none)
} gvm_clip;

// Parts of a clip, for partial reads and for asking what a clip holds. Metadata is always read.
enum {
    GVM_CLIP_FRAMES = 1u << 0,
    GVM_CLIP_AUDIO = 1u << 1,
    GVM_CLIP_CODES = 1u << 2,
    GVM_CLIP_FEATURES = 1u << 3,
    GVM_CLIP_ALL = 0xfu,
};

// One row of the shard's index, read at open (no clip group is touched).
typedef struct gvm_clip_entry {
    const char *clip_id;
    const char *split;
    const char *style;
    int64_t num_frames;   // T_v
    int64_t num_samples;  // T_a
} gvm_clip_entry;

// ---- writing a new shard ---------------------------------------------------------------------------------------
typedef struct gvm_shard_writer gvm_shard_writer;

// Start a shard at "<path>.tmp" (a stale one from a killed run is overwritten). `info` is copied.
gvm_status gvm_shard_create(const char *path, const gvm_shard_info *info, gvm_shard_writer **out);
// Append a clip (compressed, chunked). A clip that does not fit the shard (frame size, fps, sample rate, a
// duplicate id, bad UTF-8, non-finite audio) gives GVM_ERR_INVALID and leaves the writer usable; an HDF5
// failure (disk full) makes the writer fail, and gvm_shard_writer_close then reports it.
gvm_status gvm_shard_add_clip(gvm_shard_writer *w, const gvm_clip *clip);
int64_t gvm_shard_writer_count(const gvm_shard_writer *w);
// Write the index and close. commit: fsync, rename to <path> (replacing any file there), fsync the folder;
// !commit (or an earlier failure): remove the temporary file and leave <path> untouched. Frees `w`
// (NULL is fine) and returns the first error met, if any.
gvm_status gvm_shard_writer_close(gvm_shard_writer *w, bool commit);

// ---- reading ---------------------------------------------------------------------------------------------------
typedef struct gvm_shard gvm_shard;

// Open read-only; checks format_version, the file attributes and the index. Errors name the file.
gvm_status gvm_shard_open(const char *path, gvm_shard **out);
void gvm_shard_close(gvm_shard *s);  // NULL is fine
int64_t gvm_shard_clip_count(const gvm_shard *s);
const gvm_shard_info *gvm_shard_get_info(const gvm_shard *s);  // created_by is owned by the shard
const char *gvm_shard_path(const gvm_shard *s);
const gvm_clip_entry *gvm_shard_entry(const gvm_shard *s, int64_t index);  // NULL when out of range
int64_t gvm_shard_find(const gvm_shard *s, const char *clip_id);           // -1 when absent

// Read clip `index` (0-based, index order): metadata, frames, audio, and codes/features when present.
gvm_status gvm_shard_read_clip(gvm_shard *s, int64_t index, gvm_clip *out);
// The same for the parts in `parts` (GVM_CLIP_* bits); the metadata and every present part's shape are
// always filled, data pointers only for the parts asked for (a trainer with cached features skips frames).
gvm_status gvm_shard_read_clip_parts(gvm_shard *s, int64_t index, unsigned parts, gvm_clip *out);
// Which parts clip `index` holds (GVM_CLIP_FRAMES | GVM_CLIP_AUDIO, plus CODES / FEATURES when present).
gvm_status gvm_shard_clip_parts(gvm_shard *s, int64_t index, unsigned *present);
// Free what gvm_shard_read_clip allocated and zero the struct. Only for clips the library filled.
void gvm_clip_free(gvm_clip *clip);

// ---- filling the optional slots of an existing shard, in place -------------------------------------------------
// Not atomic: a process killed during an update can leave the shard damaged (HDF5 1.10 has no journal).
// The codes and features can be regenerated, so `gvm encode` re-runs over a damaged shard's clips after
// `gvm prep` rebuilds it. The shard must not be open elsewhere (HDF5 refuses to open a file for writing
// that this process has open read-only, and file locking refuses other processes' readers).
typedef struct gvm_shard_updater gvm_shard_updater;

gvm_status gvm_shard_update_open(const char *path, gvm_shard_updater **out);
// Set (create or replace) clip `index`'s codes; NULL codes or codes->data == NULL removes them.
gvm_status gvm_shard_update_codes(gvm_shard_updater *u, int64_t index, const gvm_codes *codes);
// Set clip `index`'s features (t must equal the clip's T_v); NULL or data == NULL removes them.
gvm_status gvm_shard_update_features(gvm_shard_updater *u, int64_t index, const gvm_features *features);
// Flush, close and fsync. Frees `u` (NULL is fine); returns the first error met, if any.
gvm_status gvm_shard_update_close(gvm_shard_updater *u);
// One clip's codes in one call (open, set, close).
gvm_status gvm_shard_write_codes(const char *path, int64_t index, const gvm_codes *codes);

// ---- the process-wide HDF5 lock (see "Threads" above) ------------------------------------------------------------
void gvm_hdf5_lock(void);
void gvm_hdf5_unlock(void);

#endif
