// generate_video.h: `gvm generate`: music for a video from a trained GVMGen checkpoint and a codec.
//
//   1. The checkpoint (a run folder: its latest checkpoint; or one ckpt-<step> folder) gives the model: its
//      config is in model.safetensors' metadata, its weights are checked (checksums) and loaded; the EMA weights
//      (ema.safetensors) are used when present, as audiocraft generates with them.
//   2. The codec: the file the request or the config's codec.init names (train/codec_file.h); its name,
//      codebooks and codebook size must be what the LM was trained on.
//   3. The video is decoded as gvm prep samples it (data.fps frames per second, data.image_size pixels,
//      CLIP normalisation) for `duration` seconds (<= 0: all of it).
//   4. The window plan (nn/windows.h): one window when the video fits the trained clip (data.clip_seconds),
//      else overlapping windows, each conditioned on the frames of its own seconds and continuing from the
//      previous window's last `overlap` seconds of codes. Each window: the visual stack once, then the LM step
//      by step with the KV cache, the delay pattern and classifier-free guidance (nn/generate.h). Window w
//      samples with seed + w (the sampler's streams are per seed), so the output depends only on the seed.
//   5. The stitched codes are decoded by the codec, cut to the duration, loudness-normalised (data/loudness.h:
//      -14 LUFS, peak <= -1 dBFS), written as a 16-bit WAV and, when asked, muxed under the video (the video
//      stream copied, not re-encoded; data/media.h).
// Same request and seed -> the same WAV, bit for bit, on the same machine and thread count.
#ifndef GVM_TRAIN_GENERATE_VIDEO_H
#define GVM_TRAIN_GENERATE_VIDEO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "data/loudness.h"

#ifdef __cplusplus
extern "C" {
#endif

// Progress: LM steps done of the total over all windows, and the window being generated.
typedef void (*gvm_generate_progress_fn)(void *user, int64_t step, int64_t total, int window, int windows);

typedef struct gvm_generate_request {
    const char *checkpoint;  // run folder or checkpoint folder
    const char *video;
    const char *out_wav;     // required
    const char *mux;         // MP4 (or .mov/.mkv) with the music under the video, or NULL
    const char *codec;       // codec file, or NULL: the checkpoint config's codec.init
    uint64_t seed;
    float cfg_scale;         // classifier-free guidance (GVMGen: 3.0; 0: off)
    int top_k;               // 250; <= 0: off
    float top_p;             // 0: off
    float temperature;       // 1.0; 0: greedy
    double duration;         // seconds of music from the video's start; <= 0: the whole video
    double overlap;          // seconds of continuation between windows; < 0: the default (a third of the clip)
    bool no_ema;             // use the raw weights even when the checkpoint has EMA weights
    bool no_normalize;       // skip loudness normalisation
    gvm_generate_progress_fn progress;
    void *progress_user;
} gvm_generate_request;

// The defaults above (seed 0, cfg 3, top-k 250, top-p off, temperature 1, whole video, default overlap).
gvm_generate_request gvm_generate_request_default(void);

typedef struct gvm_generate_report {
    char checkpoint[4096];     // the checkpoint folder used
    int64_t step;              // its training step
    bool used_ema;
    int windows;
    double duration;           // seconds of music written
    int64_t codec_frames;      // codes generated (stitched)
    double lm_seconds;         // wall time of the LM sampling (all windows)
    double total_seconds;      // wall time of the whole request
    int sample_rate;
    gvm_loudness_report loudness;
} gvm_generate_report;

// Errors (with messages naming the file and what to do): a checkpoint that is missing, damaged, truncated or not
// a GVMGen checkpoint; a codec that does not match the model; a video without frames; a duration beyond the
// video; bad sampling options. Nothing is written on error (the WAV and MP4 are written atomically).
gvm_status gvm_generate_video(const gvm_generate_request *req, gvm_generate_report *report);

#ifdef __cplusplus
}
#endif

#endif
