// prep.h: `gvm prep`, the dataset builder: videos (a folder, or a CSV / JSON-lines manifest) cut into
// clips of fixed length, decoded (frames at a fixed rate, mono audio) and written to HDF5 shards
// (data/dataset.h) split into train and eval by source file. docs/prep.md is the user's reference.
//
//  * sources: a folder scanned recursively for video files, or a manifest naming each video, an optional
//    separate music file, an optional style tag and an optional split (prep_sources.c);
//  * the split: the manifest's split of a source when it gives one (an official split, or one decided by
//    the user, e.g. by music track), else a hash of the source's name against the eval fraction, so a
//    source is in one split only and in the same one on every run (prep_split.c);
//  * the run: N worker threads decode sources (prep_decode.c), one writer commits them in source order, so
//    the shards are the same whatever the thread count; a journal in the output folder (prep_journal.c)
//    records every committed shard, so an interrupted run resumes exactly where it stopped (prep_run.c).
//
// Errors: gvm_prep_run returns GVM_OK when the run went through, even if some sources were bad: those are
// reported per source (reason included) in the summary. It returns an error status (with
// gvm_error_message()) only for what stops the whole run: bad options (GVM_ERR_INVALID, also when the
// output folder was made with other options), an unreadable input or manifest (GVM_ERR_IO/FORMAT/NOT_FOUND),
// an output folder that cannot be written or a shard write that fails (GVM_ERR_IO). A source the output
// folder already holds in one split that the manifest now puts in the other is GVM_ERR_INVALID too (the
// folder would mix two splits); --force starts over.
#ifndef GVM_DATA_PREP_H
#define GVM_DATA_PREP_H

#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#ifndef GVM_VERSION
#define GVM_VERSION "0.1.0"  // the build may define it from the project version
#endif

#define GVM_PREP_STATE_FILE "prep-state.jsonl"  // the journal in the output folder

typedef struct gvm_prep_options {
    const char *input;        // a folder of videos, or a manifest (.csv, .jsonl / .ndjson / .json)
    const char *out_dir;      // created when missing
    double clip_seconds;      // window length (30)
    double hop_seconds;       // start of window k = k * hop (0: the clip length, windows back to back)
    double fps;               // frames per second sampled (1)
    int size;                 // frames are size x size RGB (336)
    int sample_rate;          // audio Hz, mono (32000)
    double shard_mb;          // a shard is closed once its clips pass this many MiB (1024), between sources
    double eval_fraction;     // share of sources in the eval split, in [0, 1] (0.1)
    double min_clip_seconds;  // a last window shorter than this is dropped (<= 0: clip_seconds / 2)
    const char *style;        // style tag of sources whose manifest line has none (NULL: "")
    int threads;              // decoding threads (0: the CPUs this process may use)
    double max_memory_mb;     // decoded media held at once, besides the source being written (2048)
    bool force;               // start over in an output folder made with other options (deletes its shards)
    bool quiet;               // no progress bar and no per-source lines (the summary is the caller's)
    int progress;             // 0 auto (bar on a terminal, lines every few seconds otherwise), 1 bar, 2 lines
    double progress_interval; // seconds between plain progress lines (5)
    // Set by a signal handler (the signal number) to stop: no new sources are started, the shard in
    // progress is discarded, committed shards are kept. NULL: never stopped.
    volatile sig_atomic_t *stop;
} gvm_prep_options;

void gvm_prep_options_default(gvm_prep_options *o);

// One source that could not be used, and why (the media library's message).
typedef struct gvm_prep_failure {
    char *source;  // the source's name (path relative to the input folder, or as the manifest writes it)
    char *reason;
} gvm_prep_failure;

typedef struct gvm_prep_summary {
    int64_t sources_total;     // sources in the input
    int64_t sources_done;      // decoded and written by this run
    int64_t sources_short;     // decoded by this run but shorter than one clip (no clip written)
    int64_t sources_failed;    // bad inputs, skipped (failures[])
    int64_t sources_previous;  // already in the shards of an earlier run (resumed or finished run)
    int64_t clips[2];          // clips written by this run: [0] train, [1] eval
    int64_t shards[2];         // shards committed by this run
    double media_seconds;      // length of the sources this run decoded
    double wall_seconds;
    int threads;               // worker threads used
    int cores;                 // min(threads, CPUs this process may use): the "per core" divisor
    double realtime_per_core;  // media_seconds / wall_seconds / cores
    bool resumed;              // the output folder held an earlier run's shards
    bool nothing_to_do;        // every source was already in a shard
    int interrupted;           // the signal number that stopped the run (0: ran to the end)
    gvm_prep_failure *failures;
    int64_t n_failures;
} gvm_prep_summary;

// Run `gvm prep`. The summary is filled whatever the status (zeroed first); free it with
// gvm_prep_summary_free.
gvm_status gvm_prep_run(const gvm_prep_options *opts, gvm_prep_summary *summary);
void gvm_prep_summary_free(gvm_prep_summary *s);
// The summary as the gvm program prints it (a few lines, failures listed, at most 20 of them).
void gvm_prep_summary_print(const gvm_prep_summary *s, const gvm_prep_options *opts, FILE *out);

// ---- sources (prep_sources.c) ---------------------------------------------------------------------------------
// A source's split as its manifest line gives it; GVM_PREP_SPLIT_HASH: none given, the hash rule decides.
enum { GVM_PREP_SPLIT_HASH = -1, GVM_PREP_SPLIT_TRAIN = 0, GVM_PREP_SPLIT_EVAL = 1 };

typedef struct gvm_prep_source {
    char *name;    // key of the source: its path relative to the input folder (folder input) or the video
                   // path as the manifest writes it; used for the split, the clip ids and the journal
    char *video;   // the path to open
    char *music;   // a separate music file, or NULL: the video's own sound track
    char *style;   // NULL: the default (--style)
    int split;     // GVM_PREP_SPLIT_TRAIN / _EVAL from the manifest, GVM_PREP_SPLIT_HASH (folder input, or none)
    int64_t line;  // the manifest line (0: folder input), for messages
    int64_t bytes; // file size (0 when it cannot be stat'ed): the progress bar's measure of work
} gvm_prep_source;

typedef struct gvm_prep_source_list {
    gvm_prep_source *items;
    int64_t n;
    bool is_manifest;
} gvm_prep_source_list;

// The sources of `input`: a folder (video files by extension, recursively, hidden entries skipped, sorted
// by relative path), or a manifest file (its order). Manifest errors name file:line; so does a split other
// than "train", "eval" or empty.
gvm_status gvm_prep_sources_load(const char *input, gvm_prep_source_list *out);
void gvm_prep_sources_free(gvm_prep_source_list *l);
// True when `path`'s extension is one of the video extensions a folder scan takes.
bool gvm_prep_is_video_name(const char *path);

// ---- the split (prep_split.c) ---------------------------------------------------------------------------------
// The 64-bit hash of a source name: FNV-1a 64 of its bytes, then the SplitMix64 finaliser.
uint64_t gvm_prep_name_hash(const char *name);
// u = (hash >> 11) * 2^-53, uniform in [0, 1); the source is in eval when u < eval_fraction.
double gvm_prep_split_value(const char *name);
bool gvm_prep_split_is_eval(const char *name, double eval_fraction);
// The split a source goes to: the manifest's when it gives one (whatever eval_fraction is), else the hash
// rule above. GVM_PREP_SPLIT_TRAIN or GVM_PREP_SPLIT_EVAL.
int gvm_prep_source_split(const gvm_prep_source *src, double eval_fraction);

#endif
