// windows.c: the long-video window plan (see windows.h).
#include "nn/windows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WHOLE_TOL 1e-6

// x as a whole number when it is one (to WHOLE_TOL), else -1.
static int64_t whole(double x) {
    const double r = nearbyint(x);
    return fabs(x - r) <= WHOLE_TOL ? (int64_t)r : -1;
}

// ceil(x) forgiving rounding noise just above a whole number (75.00000000001 frames are 75). The duration is
// snapped to whole microseconds first, so real fractions of a frame are far above this tolerance.
static int64_t ceil_tol(double x) {
    return (int64_t)ceil(x - 1e-7);
}

gvm_status gvm_nn_windows_plan(double duration, double clip, double overlap, double fps, double code_rate,
                               gvm_nn_window_plan *out) {
    memset(out, 0, sizeof *out);
    if (!(fps > 0.0) || !isfinite(fps) || !(code_rate > 0.0) || !isfinite(code_rate))
        return gvm_error_set(GVM_ERR_INVALID, "windows: fps %g and codec frame rate %g must be > 0", fps, code_rate);
    if (!isfinite(duration) || duration * fps < 1.0 - WHOLE_TOL)
        return gvm_error_set(GVM_ERR_INVALID, "windows: a video of %g s has no frame at %g fps (need at least "
                             "%g s)", duration, fps, 1.0 / fps);
    if (!(clip > 0.0) || !isfinite(clip))
        return gvm_error_set(GVM_ERR_INVALID, "windows: clip length %g s must be > 0", clip);
    if (!(overlap >= 0.0) || !(overlap < clip))
        return gvm_error_set(GVM_ERR_INVALID, "windows: overlap %g s must be >= 0 and shorter than the clip "
                             "(%g s): each window must add new music", overlap, clip);
    duration = nearbyint(duration * 1e6) / 1e6;
    const int64_t clip_codes = whole(clip * code_rate), ctx_codes = whole(overlap * code_rate);
    if (whole(clip * fps) < 0 || whole(overlap * fps) < 0 || clip_codes < 0 || ctx_codes < 0)
        return gvm_error_set(GVM_ERR_INVALID, "windows: clip %g s and overlap %g s must be whole numbers of video "
                             "frames (1/%g s) and of codec frames (1/%g s)", clip, overlap, fps, code_rate);
    const int64_t N = ceil_tol(duration * code_rate), stride = clip_codes - ctx_codes;
    GVM_CHECK(stride > 0 && clip_codes > 0, "windows: stride must be positive here");
    const int count = N <= clip_codes ? 1 : (int)(1 + (N - clip_codes + stride - 1) / stride);
    out->windows = GVM_CALLOC((size_t)count, sizeof *out->windows);
    out->count = count;
    out->total_codes = N;
    out->total_frames = ceil_tol(duration * fps);
    out->duration = duration;
    out->clip = clip;
    out->overlap = overlap;
    out->fps = fps;
    out->code_rate = code_rate;
    for (int i = 0; i < count; i++) {
        gvm_nn_window *w = &out->windows[i];
        w->code_start = i == 0 ? 0 : out->windows[i - 1].code_end - ctx_codes;
        w->code_end = w->code_start + clip_codes < N ? w->code_start + clip_codes : N;
        w->context = i == 0 ? 0 : ctx_codes;
        w->keep_start = w->code_start + w->context;
        w->keep_end = w->code_end;
        w->start = (double)w->code_start / code_rate;
        w->end = fmin((double)w->code_end / code_rate, duration);
        // starts are multiples of the stride (a whole number of frames): round away the division's noise
        w->frame_first = (int64_t)llround(w->start * fps);
        int64_t last = ceil_tol(w->end * fps);  // one past the last frame time < end
        if (last > out->total_frames) last = out->total_frames;
        w->frame_count = last - w->frame_first;
        GVM_CHECK(w->frame_count > 0 && w->code_end > w->keep_start, "windows: empty window %d", i);
    }
    GVM_CHECK(out->windows[count - 1].code_end == N, "windows: the plan does not reach the end");
    return GVM_OK;
}

void gvm_nn_windows_free(gvm_nn_window_plan *plan) {
    free(plan->windows);
    memset(plan, 0, sizeof *plan);
}

void gvm_nn_windows_stitch(const gvm_nn_window_plan *plan, int w, const int64_t *codes, int64_t num_codebooks,
                           int64_t *out) {
    GVM_CHECK(w >= 0 && w < plan->count, "windows: no window %d", w);
    const gvm_nn_window *win = &plan->windows[w];
    const int64_t T = win->code_end - win->code_start, N = plan->total_codes;
    for (int64_t k = 0; k < num_codebooks; k++)
        for (int64_t f = win->keep_start; f < win->keep_end; f++)
            out[k * N + f] = codes[k * T + (f - win->code_start)];
}

void gvm_nn_windows_prompt(const gvm_nn_window_plan *plan, int w, const int64_t *out, int64_t num_codebooks,
                           int64_t *prompt) {
    GVM_CHECK(w >= 0 && w < plan->count, "windows: no window %d", w);
    const gvm_nn_window *win = &plan->windows[w];
    const int64_t P = win->context, N = plan->total_codes;
    for (int64_t k = 0; k < num_codebooks; k++)
        for (int64_t f = 0; f < P; f++) prompt[k * P + f] = out[k * N + win->code_start + f];
}
