// config_schema.c: the one table of every config key (path, type, default, range, doc) and the Markdown
// reference generated from it (docs/config.md). Defaults are the gvmgen-small reference of GVMGEN.md.
#include <stddef.h>
#include <string.h>

#include "train/config.h"

#define OFF(field) offsetof(gvm_config, field)
#define BIG 2147483647.0

static const char *const k_schedules[] = {"cosine", "constant", NULL};
static const int k_schedule_values[] = {GVM_SCHEDULE_COSINE, GVM_SCHEDULE_CONSTANT};
static const char *const k_precisions[] = {"f32", "bf16", "f16", NULL};
static const int k_precision_values[] = {GVM_F32, GVM_BF16, GVM_F16};
static const char *const k_devices[] = {"cpu", "cuda", NULL};
static const int k_device_values[] = {GVM_DEVICE_CPU, GVM_DEVICE_CUDA};

// The enum fields are read and written as int through the schema.
_Static_assert(sizeof(gvm_schedule) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(gvm_dtype) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(gvm_device) == sizeof(int), "enum fields must be int-sized");

#define INT(p, f, lo, hi, d, doc) {p, GVM_CONFIG_INT, OFF(f), 0, false, lo, hi, false, 0, 0, NULL, NULL, d, doc}
#define INT64(p, f, lo, hi, d, doc) {p, GVM_CONFIG_INT, OFF(f), 0, true, lo, hi, false, 0, 0, NULL, NULL, d, doc}
#define FLT(p, f, lo, hi, d, doc) {p, GVM_CONFIG_FLOAT, OFF(f), 0, false, lo, hi, false, 0, 0, NULL, NULL, d, doc}
#define FLT_POS(p, f, hi, d, doc) {p, GVM_CONFIG_FLOAT, OFF(f), 0, false, 0, hi, true, 0, 0, NULL, NULL, d, doc}
#define BOOL(p, f, d, doc) {p, GVM_CONFIG_BOOL, OFF(f), 0, false, 0, 1, false, 0, 0, NULL, NULL, d, doc}
#define STR(p, f, d, doc) {p, GVM_CONFIG_STRING, OFF(f), 0, false, 0, 0, false, 0, 0, NULL, NULL, d, doc}
#define ENUM(p, f, names, values, d, doc) \
    {p, GVM_CONFIG_ENUM, OFF(f), 0, false, 0, 0, false, 0, 0, names, values, d, doc}

static const gvm_config_key k_schema[] = {
    INT("model.vision.width", model.vision.width, 1, 65536, "1024", "ViT width (ViT-L/14: 1024)"),
    INT("model.vision.layers", model.vision.layers, 1, 1024, "24", "ViT transformer layers"),
    INT("model.vision.heads", model.vision.heads, 1, 1024, "16", "ViT attention heads (divide width)"),
    INT("model.vision.patch", model.vision.patch, 1, 4096, "14", "ViT patch size in pixels (divides image_size)"),
    INT("model.vision.image_size", model.vision.image_size, 1, 65536, "336",
        "ViT input size in pixels (square; equals data.image_size)"),
    BOOL("model.vision.freeze", model.vision.freeze, "true",
         "freeze the ViT (only ln_post and the projection train), as in the reference"),
    BOOL("model.vision.cache_features", model.vision.cache_features, "false",
         "cache the frozen ViT's output tokens (f16) in the shards, so training runs the ViT once per clip, "
         "not every epoch (needs model.vision.freeze)"),
    STR("model.vision.init", model.vision.init, "\"\"",
        "ViT weights: a file of `gvm import --format hf-clip-vision` (docs/pretrained.md; \"\": random init)"),

    INT("model.qformer.width", model.qformer.width, 1, 65536, "1024", "Q-Former width"),
    INT("model.qformer.layers", model.qformer.layers, 1, 1024, "6", "Q-Former layers"),
    INT("model.qformer.heads", model.qformer.heads, 1, 1024, "16", "Q-Former attention heads (divide width)"),
    INT("model.qformer.queries", model.qformer.queries, 1, 4096, "16", "learned music queries, mean-pooled per frame"),
    INT("model.qformer.cross_every", model.qformer.cross_every, 1, 1024, "2",
        "cross-attention to the ViT tokens in every n-th layer (0, n, 2n, ...)"),
    INT("model.qformer.ffn", model.qformer.ffn, 1, 1 << 20, "2048", "Q-Former FFN hidden width (GELU)"),
    FLT("model.qformer.dropout", model.qformer.dropout, 0, 0.999, "0.1", "Q-Former dropout"),
    FLT_POS("model.qformer.ln_eps", model.qformer.ln_eps, 1, "1e-12", "Q-Former LayerNorm epsilon"),

    INT("model.lm.width", model.lm.width, 1, 65536, "1024", "music LM width (MusicGen small 1024, medium 1536)"),
    INT("model.lm.heads", model.lm.heads, 1, 1024, "16", "music LM attention heads (divide width)"),
    INT("model.lm.layers", model.lm.layers, 1, 1024, "24", "music LM decoder layers (small 24, medium 48)"),
    INT("model.lm.ffn", model.lm.ffn, 1, 1 << 20, "4096", "music LM FFN hidden width (4 x width, GELU)"),
    INT("model.lm.codebooks", model.lm.codebooks, 1, GVM_CONFIG_LIST_MAX, "4",
        "codebooks K the LM models (at most codec.codebooks)"),
    INT("model.lm.card", model.lm.card, 0, 1 << 20, "0",
        "entries per codebook (0: codec.card; anything else must equal it)"),
    {"model.lm.delays", GVM_CONFIG_INT_LIST, OFF(model.lm.delays), OFF(model.lm.num_delays), false, 0, 4096, false,
     1, GVM_CONFIG_LIST_MAX, NULL, NULL, "[0, 1, 2, 3]",
     "delay pattern: codebook k is delayed by delays[k] steps (one per codebook)"},
    FLT("model.lm.dropout", model.lm.dropout, 0, 0.999, "0.0", "music LM dropout (none in MusicGen)"),
    FLT("model.lm.cond_dropout", model.lm.cond_dropout, 0, 1, "0.3",
        "probability that a sample's whole visual condition is dropped (classifier-free guidance)"),
    STR("model.lm.init", model.lm.init, "\"\"",
        "LM weights: a file of `gvm import --format hf-musicgen` (docs/pretrained.md; \"\": random init)"),
    INT("model.cond_dim", model.cond_dim, 1, 65536, "768", "per-frame visual vector width (Q-Former projection output)"),

    STR("codec.name", codec.name, "encodec_32khz", "codec of the dataset's codes (clips with another are refused)"),
    INT("codec.sample_rate", codec.sample_rate, 1, 1000000, "32000", "audio sample rate in Hz"),
    INT("codec.frame_rate", codec.frame_rate, 1, 10000, "50", "codec frames per second (32 kHz / stride 640)"),
    INT("codec.codebooks", codec.codebooks, 1, 64, "4", "codebooks the codec produces"),
    INT("codec.card", codec.card, 2, 1 << 20, "2048", "entries per codec codebook"),
    STR("codec.init", codec.init, "\"\"",
        "codec file (gvm train-codec's codec.safetensors, or `gvm import`: docs/pretrained.md) for gvm encode and generate"),
    INT("codec.filters", codec.filters, 1, 4096, "64", "codec to train: width of the first SEANet conv"),
    {"codec.ratios", GVM_CONFIG_INT_LIST, OFF(codec.ratios), OFF(codec.num_ratios), false, 1, 64, false, 1, 8, NULL,
     NULL, "[8, 5, 4, 4]", "codec to train: up-sampling ratios (decoder order); their product = sample_rate / frame_rate"},
    INT("codec.hidden", codec.hidden, 1, 65536, "128", "codec to train: latent width (= codeword size)"),
    INT("codec.residual_layers", codec.residual_layers, 1, 16, "1", "codec to train: residual units per scale"),
    INT("codec.lstm_layers", codec.lstm_layers, 0, 4, "2", "codec to train: LSTM layers at the bottleneck (0: none)"),
    INT("codec.compress", codec.compress, 1, 64, "2", "codec to train: residual unit width = dim / compress"),
    BOOL("codec.causal", codec.causal, "false", "codec to train: causal convolutions (the 32 kHz model: false)"),

    INT("codec_train.steps", codec_train.steps, 1, BIG, "2000", "gvm train-codec optimiser steps"),
    FLT_POS("codec_train.lr", codec_train.lr, 10, "3e-4", "codec Adam learning rate"),
    {"codec_train.betas", GVM_CONFIG_FLOAT_LIST, OFF(codec_train.betas), 0, false, 0, 0.999999, false, 2, 2, NULL,
     NULL, "[0.5, 0.9]", "codec Adam betas (audiocraft's EnCodec recipe)"},
    INT("codec_train.warmup_steps", codec_train.warmup_steps, 0, BIG, "0", "codec linear warm-up steps"),
    INT("codec_train.batch_size", codec_train.batch_size, 1, 1 << 20, "8", "audio segments per step"),
    FLT_POS("codec_train.segment_seconds", codec_train.segment_seconds, 3600, "1.0",
            "length of the random audio segment cut from each clip per step"),
    FLT("codec_train.l1_weight", codec_train.l1_weight, 0, 1e6, "0.1", "weight of the waveform L1 loss"),
    FLT("codec_train.mel_weight", codec_train.mel_weight, 0, 1e6, "2.0",
        "weight of the multi-scale mel loss (audiocraft's msspec)"),
    FLT("codec_train.commit_weight", codec_train.commit_weight, 0, 1e6, "1.0", "weight of the commitment loss"),
    FLT("codec_train.codebook_decay", codec_train.codebook_decay, 0, 0.999999, "0.99",
        "EMA decay of the codebook updates"),
    FLT("codec_train.dead_code_threshold", codec_train.dead_code_threshold, 0, 1e9, "2.0",
        "codes whose EMA usage falls below this are restarted from batch vectors"),
    FLT("codec_train.grad_clip", codec_train.grad_clip, 0, 1e9, "1.0", "clip the global gradient norm (0: off)"),
    INT("codec_train.log_every", codec_train.log_every, 1, BIG, "20", "steps between log lines"),
    INT("codec_train.eval_every", codec_train.eval_every, 0, BIG, "500",
        "steps between reconstruction evaluations on the eval split (0: only at the end)"),
    INT("codec_train.eval_clips", codec_train.eval_clips, 1, BIG, "8", "eval clips reconstructed per evaluation"),
    FLT_POS("codec_train.eval_seconds", codec_train.eval_seconds, 3600, "5.0", "seconds of each eval clip"),
    INT("codec_train.checkpoint_every", codec_train.checkpoint_every, 0, BIG, "500",
        "steps between checkpoints (0: only at the end)"),

    STR("data.dir", data.dir, "datasets/debian-demo/out/shards", "folder of the HDF5 shards (<split>-*.h5)"),
    STR("data.train_split", data.train_split, "train", "split trained on"),
    STR("data.eval_split", data.eval_split, "eval", "split evaluated on"),
    FLT_POS("data.clip_seconds", data.clip_seconds, 3600, "30", "seconds of each training clip"),
    INT("data.fps", data.fps, 1, 1000, "1", "video frames per second given to the model"),
    INT("data.image_size", data.image_size, 1, 65536, "336", "frame size in pixels in the shards"),
    INT("data.batch_size", data.batch_size, 1, 1 << 20, "16", "clips per step per process (before grad_accum)"),
    INT("data.workers", data.workers, 1, 256, "1", "loader threads filling a batch"),
    INT("data.prefetch", data.prefetch, 1, 1024, "2", "batches the loader reads ahead"),

    INT("train.steps", train.steps, 1, BIG, "20000", "optimiser steps"),
    FLT_POS("train.lr", train.lr, 10, "1e-4", "peak learning rate"),
    {"train.betas", GVM_CONFIG_FLOAT_LIST, OFF(train.betas), 0, false, 0, 0.999999, false, 2, 2, NULL, NULL,
     "[0.9, 0.95]", "AdamW betas [beta1, beta2]"},
    FLT_POS("train.eps", train.eps, 1, "1e-8", "AdamW epsilon"),
    FLT("train.weight_decay", train.weight_decay, 0, 10, "0.1", "AdamW decoupled weight decay"),
    INT("train.warmup_steps", train.warmup_steps, 0, BIG, "500", "linear warm-up steps from 0 to train.lr"),
    ENUM("train.schedule", train.schedule, k_schedules, k_schedule_values, "cosine",
         "learning-rate schedule after warm-up"),
    FLT("train.grad_clip", train.grad_clip, 0, 1e9, "1.0", "clip the global gradient norm to this (0: off)"),
    FLT("train.ema_decay", train.ema_decay, 0, 0.999999, "0.999", "EMA of the weights, per step (0: off)"),
    INT("train.grad_accum", train.grad_accum, 1, 65536, "1", "micro-batches accumulated per optimiser step"),
    INT64("train.seed", train.seed, 0, 9007199254740991.0, "42", "seed of initialisation, shuffling and dropout"),
    ENUM("train.precision", train.precision, k_precisions, k_precision_values, "bf16",
         "compute precision (f32 master weights; bf16/f16 need train.device cuda)"),
    ENUM("train.device", train.device, k_devices, k_device_values, "cuda", "device to train on"),
    INT("train.log_every", train.log_every, 1, BIG, "50", "steps between log lines"),
    INT("train.eval_every", train.eval_every, 0, BIG, "1000", "steps between evaluations (0: never)"),
    INT("train.eval_batches", train.eval_batches, 0, BIG, "20", "batches per evaluation (0: the whole eval split)"),
    INT("train.checkpoint_every", train.checkpoint_every, 0, BIG, "1000",
        "steps between checkpoints (0: only at the end)"),
    INT("train.keep_checkpoints", train.keep_checkpoints, 0, 100000, "3",
        "checkpoints kept besides the last (older ones deleted; 0: keep all)"),

    STR("run.dir", run.dir, "runs", "folder holding the run folders"),
    STR("run.name", run.name, "gvmgen-small", "run folder name under run.dir (config, logs, checkpoints)"),
};

const gvm_config_key *gvm_config_schema(int *count) {
    *count = (int)(sizeof k_schema / sizeof k_schema[0]);
    return k_schema;
}

const gvm_config_key *gvm_config_find_key(const char *path) {
    int n;
    const gvm_config_key *keys = gvm_config_schema(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i].path, path) == 0) return &keys[i];
    return NULL;
}

static const char *type_name(const gvm_config_key *k) {
    switch (k->type) {
    case GVM_CONFIG_INT: return "int";
    case GVM_CONFIG_FLOAT: return "float";
    case GVM_CONFIG_BOOL: return "bool";
    case GVM_CONFIG_STRING: return "string";
    case GVM_CONFIG_ENUM: return "enum";
    case GVM_CONFIG_INT_LIST: return "list of ints";
    case GVM_CONFIG_FLOAT_LIST: return "list of floats";
    }
    return "?";
}

// Backslash-escape '|' so a cell never splits the table.
static void fprint_cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void gvm_config_fprint_markdown(FILE *f) {
    int n;
    const gvm_config_key *keys = gvm_config_schema(&n);
    fprintf(f, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const gvm_config_key *k = &keys[i];
        fprintf(f, "| `%s` | ", k->path);
        if (k->type == GVM_CONFIG_ENUM) {
            for (int c = 0; k->choices[c]; c++) fprintf(f, "%s%s", c ? " \\| " : "", k->choices[c]);
        } else {
            fputs(type_name(k), f);
        }
        fputs(" | `", f);
        fprint_cell(f, k->def);
        fputs("` | ", f);
        if (k->type == GVM_CONFIG_INT || k->type == GVM_CONFIG_FLOAT || k->type == GVM_CONFIG_INT_LIST ||
            k->type == GVM_CONFIG_FLOAT_LIST) {
            if (k->type == GVM_CONFIG_INT_LIST || k->type == GVM_CONFIG_FLOAT_LIST) {
                if (k->min_len == k->max_len) fprintf(f, "%d items, each ", k->min_len);
                else fprintf(f, "%d to %d items, each ", k->min_len, k->max_len);
            }
            fprintf(f, "%s%.17g, %.17g]", k->min_open ? "(" : "[", k->min, k->max);
        }
        fputs(" | ", f);
        fprint_cell(f, k->doc);
        fputs(" |\n", f);
    }
}
