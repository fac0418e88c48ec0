// codec_file.h: a codec as one safetensors file, so `gvm encode` and `gvm generate` rebuild it from the file
// alone: its parameters and codebook buffers under EncodecModel's names (nn/encodec.h) and, in the metadata,
//   "format"          "gvm-codec-1"
//   "codec_name"      the name written beside the codes it makes (a shard's codes.codec; data.codec.name)
//   "encodec_config"  the architecture as JSON with transformers' EncodecConfig field names
//                     (sampling_rate, audio_channels, num_filters, upsampling_ratios, ...), so a Hugging Face
//                     config.json maps onto it field by field (gvm import)
// gvm train-codec writes one at the end of a run (<run>/codec.safetensors) and the config's codec.init names it.
#ifndef GVM_TRAIN_CODEC_FILE_H
#define GVM_TRAIN_CODEC_FILE_H

#include "nn/encodec.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_CODEC_FORMAT "gvm-codec-1"

// A loaded codec: its store (CPU) and model.
typedef struct gvm_codec {
    gvm_param_store ps;
    gvm_nn_encodec model;
    char name[GVM_CONFIG_STR_MAX];
} gvm_codec;

// The architecture gvm train-codec builds from a config's codec.* keys (the fixed EnCodec choices: kernels
// 7/7/3, dilation growth 2, reflect padding, identity skips, trim ratio 1, codeword size = hidden).
gvm_nn_encodec_cfg gvm_codec_cfg_from_config(const gvm_config *cfg);

// The architecture as EncodecConfig JSON (malloc'd) and back. from_json: GVM_ERR_FORMAT naming the field
// when one is missing or of the wrong type, then gvm_nn_encodec_cfg_check.
char *gvm_codec_cfg_to_json(const gvm_nn_encodec_cfg *cfg);
gvm_status gvm_codec_cfg_from_json(const char *json, const char *where, gvm_nn_encodec_cfg *out);

// Write `path` atomically (param store save: temp file, fsync, rename).
gvm_status gvm_codec_save(const char *path, const gvm_nn_encodec *m, const gvm_param_store *ps, const char *name);
// Build and load a codec from `path`. Errors name the file: not a codec file (no/other format: e.g. a GVMGen
// checkpoint given as a codec), a bad architecture, missing or mis-shaped tensors, a truncated file.
gvm_status gvm_codec_load(const char *path, gvm_codec *out);
void gvm_codec_free(gvm_codec *c);

#ifdef __cplusplus
}
#endif

#endif
