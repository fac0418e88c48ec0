// windows.h: the plan for generating music for a video longer than the model's clip length: a list of
// windows, each generated with the LM (nn/generate.h) continuing from the previous window's last seconds,
// each conditioned on the video frames of exactly its own seconds (GVMGen's reference fed the whole video to
// every window, so long videos sounded like several unrelated pieces; GVMGEN.md).
//
// Everything is planned in whole codec frames (code_rate per second, 50 for EnCodec 32 kHz), so the
// stitched result covers the video without gaps or overlaps:
//   (the duration is first rounded to whole microseconds, so float noise never adds a frame)
//   N      = ceil(duration * code_rate) codec frames for the whole video (the last may run past its end;
//            the audio is trimmed to the duration after decoding)
//   clip   = C * code_rate, ctx = O * code_rate (both whole numbers: see gvm_nn_windows_plan)
//   window 0:     codes [0, min(clip, N)), no context, keeps all of it
//   window i > 0: codes [a_i, b_i) with a_i = b_{i-1} - ctx and b_i = min(a_i + clip, N); its first ctx codec
//                 frames are its prompt = the previous window's last ctx frames (local frames
//                 [len_{i-1} - ctx, len_{i-1}) of window i-1's codes, already kept from it); it keeps
//                 [a_i + ctx, b_i)
//   until a window ends at N. The last window is therefore shorter than the clip (it is not moved back to end
//   at the video's end with a longer context): every window continues from exactly O seconds, so the
//   music's continuity is the same at every seam, and no frame is generated twice for nothing.
//   D <= C gives one window of N frames. O = 0 gives independent windows that abut.
//
// Window i's visual condition: the video frames sampled at `fps` (frame j shows time j / fps, as
// data/media.h samples them) whose time lies in its own range [start, end) = [a_i / code_rate,
// min(b_i / code_rate, duration)): frames [frame_first, frame_first + frame_count). Window starts fall on
// the frame grid (a multiple of the stride C - O, which must be a whole number of frames), so condition
// frame 0 shows the window's second 0, as in training. The video has ceil(duration * fps) such frames
// (what gvm_video_read_frames returns when asked for the whole stream).
#ifndef GVM_NN_WINDOWS_H
#define GVM_NN_WINDOWS_H

#include <stdint.h>

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_window {
    int64_t code_start, code_end;      // codec frames [a, b) the window's LM produces (T = b - a <= clip)
    int64_t context;                   // its first `context` frames are the prompt (0 for window 0)
    int64_t keep_start, keep_end;      // codec frames kept in the stitched output: [a + context, b)
    double start, end;                 // seconds: [a / code_rate, min(b / code_rate, duration))
    int64_t frame_first, frame_count;  // visual condition: video frames at fps in [start, end)
} gvm_nn_window;

typedef struct gvm_nn_window_plan {
    gvm_nn_window *windows;  // [count], heap
    int count;
    int64_t total_codes;     // N: codec frames of the stitched output
    int64_t total_frames;    // video frames at fps: ceil(duration * fps)
    double duration, clip, overlap, fps, code_rate;
} gvm_nn_window_plan;

// Plan the windows for `duration` seconds of video, a trained clip length `clip` seconds and `overlap`
// seconds of continuation context, with video frames at `fps` and codec frames at `code_rate` per second.
// GVM_ERR_INVALID with a message when: duration < 1 / fps (not one frame of video) or not finite, clip <= 0,
// overlap < 0 or overlap >= clip, fps or code_rate <= 0, or clip, overlap and clip - overlap are not whole
// numbers of video frames and of codec frames (to 1e-6).
gvm_status gvm_nn_windows_plan(double duration, double clip, double overlap, double fps, double code_rate,
                               gvm_nn_window_plan *out);
void gvm_nn_windows_free(gvm_nn_window_plan *plan);

// Copy window w's kept codec frames into the stitched output: codes [K, T] (T = w->code_end - w->code_start,
// the window's generation) -> out [K, N] columns [keep_start, keep_end). Host int64.
void gvm_nn_windows_stitch(const gvm_nn_window_plan *plan, int w, const int64_t *codes, int64_t num_codebooks,
                           int64_t *out);
// The prompt of window w > 0 from the stitched output so far: out [K, N] -> prompt [K, context]
// (= columns [code_start, code_start + context), all kept from earlier windows). Host int64.
void gvm_nn_windows_prompt(const gvm_nn_window_plan *plan, int w, const int64_t *out, int64_t num_codebooks,
                           int64_t *prompt);

#ifdef __cplusplus
}
#endif

#endif
