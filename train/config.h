// config.h: the experiment configuration: a typed schema of every key, YAML loading with command-line
// overrides ("a.b.c=value"), validation, and writing back as YAML, JSON and a Markdown reference.
//
// The config is a plain struct so model and training code read fields directly (cfg->model.lm.width).
// The schema (train/config_schema.c) lists every key once: dotted path, type, default, range and a one-line
// doc; loading, writing, equality and docs/config.md all walk that one table, so a key added there is
// loaded, checked, written and documented at once. Unknown keys are errors (DESIGN.md), with the closest
// valid key as a suggestion. Bad input never aborts: functions return a gvm_status and set the message
// (gvm_error_message()) naming the file:line or override, the key, what is wrong and what would be valid.
#ifndef GVM_TRAIN_CONFIG_H
#define GVM_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dtype.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_CONFIG_STR_MAX 512   // bytes of a string value, NUL included (paths, names)
#define GVM_CONFIG_LIST_MAX 16   // elements of a list value

typedef enum gvm_schedule {
    GVM_SCHEDULE_COSINE = 0,     // linear warm-up, then cosine decay to 0 at train.steps
    GVM_SCHEDULE_CONSTANT,       // linear warm-up, then constant
} gvm_schedule;

// Stage 1: the spatial self-attention (a CLIP ViT).
typedef struct gvm_config_vision {
    int width, layers, heads, patch, image_size;
    bool freeze;                       // all but ln_post and the projection frozen
    bool cache_features;               // frozen ViT: its tokens cached (f16) in the shards (train/feature_cache.h)
    char init[GVM_CONFIG_STR_MAX];     // safetensors weights ("" : random init)
} gvm_config_vision;

// Stage 2: the Q-Former with learned music queries.
typedef struct gvm_config_qformer {
    int width, layers, heads, queries, cross_every, ffn;
    double dropout, ln_eps;
} gvm_config_qformer;

// Stage 3: the music LM decoder (MusicGen shape) with temporal cross-attention.
typedef struct gvm_config_lm {
    int width, heads, layers, ffn, codebooks, card;
    int delays[GVM_CONFIG_LIST_MAX];   // [codebooks] delay pattern: codebook k is shifted by delays[k] steps
    int num_delays;
    double dropout, cond_dropout;
    char init[GVM_CONFIG_STR_MAX];
} gvm_config_lm;

typedef struct gvm_config_model {
    gvm_config_vision vision;
    gvm_config_qformer qformer;
    gvm_config_lm lm;
    int cond_dim;                      // per-frame visual vector (the projection's output)
} gvm_config_model;

typedef struct gvm_config_codec {
    char name[GVM_CONFIG_STR_MAX];
    int sample_rate, frame_rate, codebooks, card;
    char init[GVM_CONFIG_STR_MAX];     // codec file (gvm train-codec or gvm import): carries its architecture
    // The architecture of a codec that gvm train-codec builds (EnCodec's SEANet + RVQ, nn/encodec.h); a codec
    // file carries its own, so these matter only when training one.
    int filters, hidden, residual_layers, lstm_layers, compress;
    int ratios[GVM_CONFIG_LIST_MAX];   // decoder (upsampling) order; prod(ratios) = sample_rate / frame_rate
    int num_ratios;
    bool causal;
} gvm_config_codec;

// gvm train-codec: training a small EnCodec-style codec on the shards' audio (train/codec_loop.h).
typedef struct gvm_config_codec_train {
    int steps, warmup_steps, batch_size;
    double lr;
    double betas[2];
    double segment_seconds;            // random crop of each clip's audio per step
    double l1_weight, mel_weight, commit_weight;
    double codebook_decay, dead_code_threshold;
    double grad_clip;
    int log_every, eval_every, eval_clips, checkpoint_every;
    double eval_seconds;
} gvm_config_codec_train;

typedef struct gvm_config_data {
    char dir[GVM_CONFIG_STR_MAX];
    char train_split[GVM_CONFIG_STR_MAX], eval_split[GVM_CONFIG_STR_MAX];
    double clip_seconds;
    int fps, image_size, batch_size, workers, prefetch;
} gvm_config_data;

typedef struct gvm_config_train {
    int steps;
    double lr;
    double betas[2];
    double eps, weight_decay;
    int warmup_steps;
    gvm_schedule schedule;
    double grad_clip, ema_decay;
    int grad_accum;
    int64_t seed;
    gvm_dtype precision;               // GVM_F32, GVM_BF16 or GVM_F16
    gvm_device device;
    int log_every, eval_every, eval_batches, checkpoint_every, keep_checkpoints;
} gvm_config_train;

typedef struct gvm_config_run {
    char dir[GVM_CONFIG_STR_MAX], name[GVM_CONFIG_STR_MAX];
} gvm_config_run;

typedef struct gvm_config {
    gvm_config_model model;
    gvm_config_codec codec;
    gvm_config_codec_train codec_train;
    gvm_config_data data;
    gvm_config_train train;
    gvm_config_run run;
} gvm_config;

// ---- loading --------------------------------------------------------------------------------------------
// Every key at its default (the gvmgen-small reference values of GVMGEN.md).
void gvm_config_default(gvm_config *cfg);

// The whole load: defaults, then the YAML file `path` (NULL: none), then each override "a.b.c=value" in
// order (the value is read as a YAML scalar or flow list/mapping), then gvm_config_validate. On error
// *cfg holds the state reached so far.
gvm_status gvm_config_load(gvm_config *cfg, const char *path, int num_overrides, const char *const *overrides);

// Apply the keys of one YAML file onto *cfg (keys not in the file keep their value). No validation.
gvm_status gvm_config_apply_file(gvm_config *cfg, const char *path);
// Same, from memory; `name` is the file name used in messages.
gvm_status gvm_config_apply_string(gvm_config *cfg, const char *text, size_t len, const char *name);
// Apply one override "a.b.c=value". No validation.
gvm_status gvm_config_apply_override(gvm_config *cfg, const char *assignment);

// Checks between keys (width divisible by heads, the LM's codebooks against the codec's, precision
// against device, ...). Single keys are range-checked as they are set.
gvm_status gvm_config_validate(const gvm_config *cfg);

// ---- writing --------------------------------------------------------------------------------------------
// Every key (defaults included) as YAML, each with its doc as a comment; loads back to an equal config.
gvm_status gvm_config_write_yaml(const gvm_config *cfg, const char *path);
gvm_status gvm_config_fprint_yaml(const gvm_config *cfg, FILE *f);
// The config as one JSON object (nested by section) for checkpoint metadata. malloc'd; the caller frees.
char *gvm_config_to_json(const gvm_config *cfg);
// Every key of a and b equal (strings compared as text, floats exactly).
bool gvm_config_equal(const gvm_config *a, const gvm_config *b);

// ---- the schema -----------------------------------------------------------------------------------------
typedef enum gvm_config_type {
    GVM_CONFIG_INT = 0,     // int (or int64_t when is64)
    GVM_CONFIG_FLOAT,       // double
    GVM_CONFIG_BOOL,        // bool
    GVM_CONFIG_STRING,      // char[GVM_CONFIG_STR_MAX]
    GVM_CONFIG_ENUM,        // an int-sized C enum; names in choices[], values in choice_values[]
    GVM_CONFIG_INT_LIST,    // int[GVM_CONFIG_LIST_MAX] + an int count
    GVM_CONFIG_FLOAT_LIST,  // double[fixed_len]
} gvm_config_type;

typedef struct gvm_config_key {
    const char *path;            // "train.lr"
    gvm_config_type type;
    size_t offset;               // of the value in gvm_config
    size_t count_offset;         // INT_LIST: of its int count
    bool is64;                   // INT: the field is int64_t
    double min, max;             // range of the value (of each element for lists); inclusive
    bool min_open;               // the range excludes min (lr > 0)
    int min_len, max_len;        // lists: element count (FLOAT_LIST: min_len == max_len, fixed)
    const char *const *choices;  // ENUM: names, NULL-terminated
    const int *choice_values;    // ENUM: the C enum value of each name
    const char *def;             // default, as YAML text (parsed at gvm_config_default)
    const char *doc;             // one line
} gvm_config_key;

// The schema, in the order keys are written (grouped by section).
const gvm_config_key *gvm_config_schema(int *count);
const gvm_config_key *gvm_config_find_key(const char *path);
// The Markdown reference table of every key (docs/config.md holds it between its GENERATED markers).
void gvm_config_fprint_markdown(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
