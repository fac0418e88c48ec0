// import_common.h: `gvm import`: Hugging Face repositories (config.json + safetensors weights) -> gvm weight
// files. Three formats (docs/pretrained.md):
//   hf-clip-vision  CLIPVisionModel or CLIPModel (openai/clip-vit-large-patch14-336) -> vision_model.* of nn/vit.h
//   hf-musicgen     MusicgenForConditionalGeneration (facebook/musicgen-small/-medium) or MusicgenForCausalLM
//                   -> the LM (model.decoder.*, lm_heads.*, enc_to_dec_proj.*) and, from a composite repository,
//                   its EnCodec as a codec file (train/codec_file.h)
//   hf-encodec      EncodecModel (facebook/encodec_32khz) -> a codec file
//
// How: the expected tensors are those our nn/ module registers for the repository's config (init into a
// param store that is never finalised, so no weight memory is allocated); each is looked up in the
// repository under its Hugging Face name, its shape checked, and written by name. Tensors are streamed:
// each is converted to f32 from the mmapped input into one scratch buffer while the output is written, and
// its input pages are dropped after use, so peak memory stays near the largest tensor, not the model.
//
// Weight files (the LM and ViT outputs) carry metadata:
//   "format" "gvm-weights-1", "kind" "clip-vision" | "musicgen-lm", "config" (JSON, below), "source" (the
//   Hugging Face architecture imported). Codec outputs carry the metadata of train/codec_file.h.
// "config" of clip-vision: image_size, patch_size, num_channels, hidden_size, num_hidden_layers,
//   num_attention_heads, intermediate_size, hidden_act, layer_norm_eps (CLIPVisionConfig's names).
// "config" of musicgen-lm: num_codebooks, vocab_size (card), hidden_size, num_hidden_layers,
//   num_attention_heads, ffn_dim, activation_function, layer_norm_eps, encoder_hidden_size (the input width of
//   enc_to_dec_proj; 0 when the file has none).
#ifndef GVM_TRAIN_IMPORT_COMMON_H
#define GVM_TRAIN_IMPORT_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "core/safetensors.h"
#include "nn/encodec.h"
#include "nn/music_lm.h"
#include "nn/vit.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_WEIGHTS_FORMAT "gvm-weights-1"
#define GVM_IMPORT_KIND_CLIP "clip-vision"
#define GVM_IMPORT_KIND_MUSICGEN "musicgen-lm"

typedef struct gvm_import_opts {
    const char *out;         // the weight file (hf-clip-vision, hf-musicgen) or codec file (hf-encodec)
    const char *codec_out;   // hf-musicgen from a composite repository: its EnCodec as a codec file (or NULL)
    const char *codec_name;  // NULL: "encodec_<k>khz" from the sampling rate (facebook/encodec_32khz: encodec_32khz)
    FILE *log;               // a line per file written (NULL: silent)
} gvm_import_opts;

// Each: GVM_OK, or an error naming the repository and the file/tensor/config key at fault.
gvm_status gvm_import_clip_vision(const char *src_dir, const gvm_import_opts *opts);
gvm_status gvm_import_musicgen(const char *src_dir, const gvm_import_opts *opts);
gvm_status gvm_import_encodec(const char *src_dir, const gvm_import_opts *opts);

// Reading an imported weight file's metadata back: the architecture to build before loading it by name.
// Errors: not a gvm weight file, another kind, a malformed config.
gvm_status gvm_import_read_vit_cfg(const char *path, gvm_nn_vit_cfg *out);
// encoder_hidden: the input width of enc_to_dec_proj in the file (0 when it has none); may be NULL.
gvm_status gvm_import_read_lm_cfg(const char *path, gvm_nn_music_lm_cfg *out, int64_t *encoder_hidden);

// ---- shared by the importers (import_*.c) ------------------------------------------------------------------

// A repository opened for reading: config.json parsed, every weight file mmapped (model.safetensors, or the
// shards model.safetensors.index.json lists).
typedef struct gvm_import_repo gvm_import_repo;
gvm_status gvm_import_repo_open(const char *dir, gvm_import_repo **out);
void gvm_import_repo_close(gvm_import_repo *r);
const char *gvm_import_repo_dir(const gvm_import_repo *r);
bool gvm_import_repo_has(const gvm_import_repo *r, const char *tensor_name);
// config.json's root object (a cJSON *, typed void * to keep cJSON out of this header).
const void *gvm_import_repo_config(const gvm_import_repo *r);

// Typed reads of a config object (a cJSON object): a missing key gives `def`; a key of the wrong type is a
// GVM_ERR_FORMAT naming `where`.key.
gvm_status gvm_import_cfg_int(const void *obj, const char *where, const char *key, int64_t def, int64_t *out);
gvm_status gvm_import_cfg_float(const void *obj, const char *where, const char *key, double def, double *out);
gvm_status gvm_import_cfg_bool(const void *obj, const char *where, const char *key, bool def, bool *out);
// *out points into the config (or is def).
gvm_status gvm_import_cfg_str(const void *obj, const char *where, const char *key, const char *def,
                              const char **out);

// One output file being planned: which repository tensor each output tensor comes from.
typedef struct gvm_import_plan gvm_import_plan;
gvm_import_plan *gvm_import_plan_new(gvm_import_repo *r);
void gvm_import_plan_free(gvm_import_plan *p);
// Expect every parameter registered in `ps` (never finalised) under its own name, read from the repository
// tensor src_prefix + name ("audio_encoder." for a composite MusicGen's EnCodec), with `drop` (when not
// NULL) first removed from the front of the name (a CLIPVisionModel saved by transformers 5 has no
// "vision_model." prefix). A weight-norm tensor
// "...parametrizations.weight.original0/1" is also found under the Hub's "...weight_g/_v" spelling.
// Missing and mis-shaped tensors are recorded (reported by gvm_import_plan_write).
void gvm_import_plan_expect_store(gvm_import_plan *p, const gvm_param_store *ps, const char *drop,
                                  const char *src_prefix);
// Repository tensors whose names start with one of `prefixes` are known and deliberately not imported (the
// T5 text encoder, CLIP's text tower, non-persistent buffers older files kept). Every other repository
// tensor that no expected tensor reads is an "unexpected tensor" error, so a repository of another
// architecture or size fails instead of importing part of itself. NULL-terminated list.
void gvm_import_plan_ignore(gvm_import_plan *p, const char *const *prefixes);
void gvm_import_plan_metadata(gvm_import_plan *p, const char *key, const char *value);
// Check (every problem found, listed by name in one error), then write `path` atomically, each tensor
// converted to f32 as it is written.
gvm_status gvm_import_plan_write(gvm_import_plan *p, const char *path);
int64_t gvm_import_plan_bytes(const gvm_import_plan *p);  // bytes of tensor data the file holds

// Open an imported weight file and parse its "config" metadata, after checking "format" and "kind".
struct cJSON;
gvm_status gvm_import_read_config(const char *path, const char *kind, struct cJSON **out);

// A JSON number/string field appender for the "config" metadata (keeps the importers free of cJSON).
// A float config value as the double JSON should show: 1e-05, not 9.99999974737875e-06.
double gvm_import_float_json(float v);
char *gvm_import_json_vit_cfg(const gvm_nn_vit_cfg *c);
char *gvm_import_json_lm_cfg(const gvm_nn_music_lm_cfg *c, int64_t encoder_hidden);

// EncodecConfig (a cJSON object, config.json's root or a composite's "audio_encoder") -> our config, with
// num_quantizers derived from target_bandwidths as transformers does.
gvm_status gvm_import_encodec_cfg(const void *obj, const char *where, gvm_nn_encodec_cfg *out);
// Write the codec file from the repository tensors under src_prefix: gvm_codec_load reads it back.
gvm_status gvm_import_write_codec(gvm_import_repo *r, const void *cfg_obj, const char *src_prefix,
                                  const char *const *ignore, const char *path, const char *name, FILE *log);

#ifdef __cplusplus
}
#endif

#endif
