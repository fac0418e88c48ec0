// loader_internal.h: what the batch loader's two files share and nothing else uses: the ring slot (one
// batch's buffers, allocated once) and the batch assembly of loader_batch.c (normalise, pad, mask).
#ifndef GVM_DATA_LOADER_INTERNAL_H
#define GVM_DATA_LOADER_INTERNAL_H

#include "data/loader.h"

// The shape settings every slot is built for (from the config and the shards' common info).
typedef struct gvm_loader_shape {
    int64_t batch;        // B
    unsigned parts;       // GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES
    int64_t frames;       // T_v
    int64_t height, width;
    int64_t code_steps;   // T_m
    int32_t codebooks;    // K
    int32_t code_pad;
    const char *codec;    // NULL: any
    int64_t audio_samples;  // T_a
    int64_t feature_tokens, feature_dim;  // S, D
    const char *feature_source;           // NULL: any
    bool pinned;
} gvm_loader_shape;

enum { GVM_SLOT_FREE, GVM_SLOT_FILLING, GVM_SLOT_READY, GVM_SLOT_FAILED };

// One batch of the ring. The arrays live as long as the loader; the tensors wrap them.
typedef struct gvm_loader_slot {
    int state;                      // GVM_SLOT_*, under the loader's mutex
    gvm_loader_position position;
    int64_t count;
    int64_t *clip, *shard_clip;     // [B]
    int32_t *shard;                 // [B]
    int64_t *frame_len, *code_len, *audio_len;  // [B]
    gvm_tensor *frames, *features, *frame_mask, *codes, *code_mask, *audio, *audio_mask;  // NULL when not loaded
} gvm_loader_slot;

// Allocate the slot's buffers (page-locked when shape->pinned; the caller checked CUDA is usable).
// GVM_ERR_MEMORY with the sizes when the host is out of memory.
gvm_status gvm_loader_slot_alloc(gvm_loader_slot *slot, const gvm_loader_shape *shape);
void gvm_loader_slot_free(gvm_loader_slot *slot, const gvm_loader_shape *shape);

// Row `row` from a clip read with the shape's parts: normalise, truncate, pad, mask. `where` names the clip
// for messages ("a.h5: clip 3 (id)"). Fails (GVM_ERR_FORMAT) on a clip that lacks codes, has another codec or
// fewer than K codebooks.
gvm_status gvm_loader_fill_row(gvm_loader_slot *slot, const gvm_loader_shape *shape, int64_t row,
                               const gvm_clip *clip, const char *where);
// Row `row` as padding: zeros, code_pad, all masks 0, lengths 0.
void gvm_loader_pad_row(gvm_loader_slot *slot, const gvm_loader_shape *shape, int64_t row);

#endif
