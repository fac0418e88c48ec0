// prep_internal.h: what the parts of `gvm prep` share (not a public API): the resolved settings, one decoded
// source (prep_decode.c), a set of source names, and the journal of committed shards (prep_journal.c).
#ifndef GVM_DATA_PREP_INTERNAL_H
#define GVM_DATA_PREP_INTERNAL_H

#include <cjson/cJSON.h>

#include "data/dataset.h"
#include "data/media.h"
#include "data/prep.h"

enum { PREP_TRAIN = GVM_PREP_SPLIT_TRAIN, PREP_EVAL = GVM_PREP_SPLIT_EVAL };  // the values of data/prep.h
static inline const char *prep_split_name(int split) { return split == PREP_EVAL ? "eval" : "train"; }

// The options after defaults are applied (what decoding needs).
typedef struct prep_params {
    double clip, hop, fps, min_clip, eval_fraction;
    int size, rate;
    const char *style;  // default style tag ("" when none)
    volatile sig_atomic_t *stop;
} prep_params;

// One source decoded into clips. The clips' arrays point into `frames`/`audio` (one read of the whole
// source) or into per-clip buffers in `owned` (sources read window by window).
typedef struct prep_result {
    char *error;           // why the source failed (NULL: it did not)
    int split;             // PREP_TRAIN / PREP_EVAL
    gvm_clip *clips;       // [n_clips]
    int64_t n_clips;
    char **strings;        // owned strings the clips point to (ids, source name, style)
    int64_t n_strings;
    void **owned;          // owned arrays (whole-source frames and audio, or per-clip buffers)
    int64_t n_owned;
    double media_seconds;  // the source's length as used for cutting
    int64_t bytes;         // frame and audio bytes of the clips (what --shard-mb counts)
} prep_result;

// Probe the source's video (for its length, before memory for it is reserved).
gvm_status prep_probe(const gvm_prep_source *src, gvm_media_info *info);
// Bytes of decoded media a source of `duration` seconds holds in memory while waiting to be written.
int64_t prep_estimate_bytes(const prep_params *p, double duration);
// Decode one source into clips (never fails as a whole: a bad source gives r->error). `info` from prep_probe.
void prep_decode(const gvm_prep_source *src, const prep_params *p, const gvm_media_info *info, prep_result *r);
void prep_result_free(prep_result *r);  // frees the contents and zeroes r

// ---- a set of strings (source names) --------------------------------------------------------------------------
typedef struct prep_keyset {
    char **slots;
    int64_t cap, n;
} prep_keyset;
bool prep_keyset_has(const prep_keyset *s, const char *key);
bool prep_keyset_add(prep_keyset *s, const char *key);  // false when out of memory
void prep_keyset_free(prep_keyset *s);

// ---- the journal: OUT/prep-state.jsonl --------------------------------------------------------------------------
typedef struct prep_journal {
    char *out_dir, *path;
    int fd;                  // open for appending, flock'ed
    prep_keyset done;        // sources in committed shards, or decoded without a clip
    prep_keyset in_split[2]; // the sources of committed shards, by the shard's split (PREP_TRAIN / PREP_EVAL)
    int64_t next_shard[2];   // the number of the next shard of each split
    int64_t shards[2];       // shards committed by earlier runs
    int64_t clips[2];        // their clips
    bool resumed;            // an earlier run's journal was found and is continued
    bool complete;           // ... and its last run finished
    int64_t removed;         // stale files removed at open (temporary shards, shards the journal never listed)
} prep_journal;

// Open (create, resume or, with force, restart) the journal of out_dir. `options` (an object of the settings
// that change the output, keyed by their command-line names) is stored on creation and compared on resume.
gvm_status prep_journal_open(prep_journal *j, const char *out_dir, const cJSON *options, bool force);
// Delete the folder's shards and start a new journal (what --force does when the folder cannot be resumed).
gvm_status prep_journal_restart(prep_journal *j, const cJSON *options);
// The split whose committed shards hold `source`'s clips: PREP_TRAIN, PREP_EVAL, or -1 (none).
int prep_journal_split_of(const prep_journal *j, const char *source);
// The name of shard `number` of `split`: "train-00003.h5".
void prep_shard_name(int split, int64_t number, char *buf, size_t size);
// Record a committed shard (after its rename): appended and fsync'ed.
gvm_status prep_journal_commit(prep_journal *j, int split, const char *shard, int64_t clips, char *const *sources,
                               int64_t n_sources);
// Informational records (not fsync'ed): kind "failed" (with the reason) or "no_clips" (a source too short
// for a clip, which a resumed run then skips).
void prep_journal_note(prep_journal *j, const char *kind, const char *source, const char *reason);
// The run finished: a "complete" record with the totals (fsync'ed).
gvm_status prep_journal_finish(prep_journal *j, int64_t sources, int64_t failed);
void prep_journal_close(prep_journal *j);

#endif
