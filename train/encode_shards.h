// encode_shards.h: `gvm encode`: fill the codes slot of dataset shards (docs/dataset-format.md) with a codec's
// codes of each clip's audio, so gvm train trains GVMGen on real codes.
//
// Each clip's whole stored audio (mono, the shard's rate = the codec's) is encoded at once with all the codec's
// codebooks: codes int16 [K, ceil(num_samples / hop)], attributes codec = the codec file's name and
// frame_rate = its codec frames per second. A clip that already has codes of this codec is skipped (force:
// re-encoded). Per shard, the codes are computed with the shard open for reading, then written in one update
// (HDF5 cannot open for writing a file the process holds read-only); the update is atomic per clip and fsynced.
//
// Errors: a shard that cannot be opened, or whose sample rate is not the codec's, is reported and skipped; a
// clip whose audio cannot be read is reported and skipped; the other shards and clips go on. The stats count
// what happened; the call returns GVM_OK when everything was encoded, else the first error's status (with its
// message) after finishing the rest.
#ifndef GVM_TRAIN_ENCODE_SHARDS_H
#define GVM_TRAIN_ENCODE_SHARDS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "train/codec_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_encode_stats {
    int64_t shards, shards_failed;
    int64_t clips, encoded, skipped, failed;
    double audio_seconds, seconds;  // audio encoded, wall time
} gvm_encode_stats;

// Encode the clips of the shards `paths[0..n)`. log: one line per shard (NULL: none).
gvm_status gvm_encode_shards(gvm_codec *codec, const char *const *paths, int n, bool force, FILE *log,
                             gvm_encode_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
