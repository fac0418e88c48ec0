// test_nn_windows.c: the long-video window plan (nn/windows.h). For each plan, checked against rules written
// out here with integer arithmetic: the kept codec frames cover [0, N) exactly once; every window is at
// most one clip long and continues from exactly the previous window's last `overlap` seconds; every
// window's condition is exactly the video frames whose time lies in its own seconds (each video frame
// tested against each window) and starts on the window's second 0; stitching and prompts through a simulated
// generation. Cases: D < C, D = C, D = 2.5 C, fractional D, overlap 0 and > 0 (> C/2 too), fps 2, and the
// errors (overlap >= C, negative overlap, overlap off the frame grid, no frame of video, bad rates).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/windows.h"
#include "tests/test_util.h"

// fps and code_rate are whole numbers in these cases, so times compare exactly as integers:
// video frame j (time j / fps) lies at or after codec frame a (time a / R) iff j * R >= a * fps.
static void check_plan(double D, double C, double O, int64_t fps, int64_t R, int expect_windows) {
    char label[128];
    snprintf(label, sizeof label, "plan D %g C %g O %g fps %lld", D, C, O, (long long)fps);
    gvm_nn_window_plan p;
    if (!TEST_CHECK(gvm_nn_windows_plan(D, C, O, (double)fps, (double)R, &p) == GVM_OK, label, "%s",
                    gvm_error_message()))
        return;
    const int64_t N = (int64_t)ceil(D * (double)R - 1e-7), frames = (int64_t)ceil(D * (double)fps - 1e-7);
    const int64_t clip = llround(C * (double)R), ctx = llround(O * (double)R);
    TEST_CHECK(p.total_codes == N && p.total_frames == frames, label, "N %lld (want %lld), frames %lld (want %lld)",
               (long long)p.total_codes, (long long)N, (long long)p.total_frames, (long long)frames);
    TEST_CHECK(expect_windows <= 0 || p.count == expect_windows, label, "%d windows, want %d", p.count, expect_windows);

    int *cover = calloc((size_t)N, sizeof *cover);
    int64_t bad_shape = 0, bad_frames = 0, bad_time = 0;
    for (int i = 0; i < p.count; i++) {
        const gvm_nn_window *w = &p.windows[i];
        const int64_t len = w->code_end - w->code_start;
        bad_shape += len <= 0 || len > clip || w->code_start < 0 || w->code_end > N;
        if (i == 0) {
            bad_shape += w->code_start != 0 || w->context != 0;
        } else {  // the prompt is exactly the previous window's last `overlap` seconds
            const gvm_nn_window *prev = &p.windows[i - 1];
            bad_shape += w->context != ctx || w->code_start + ctx != prev->code_end;
        }
        bad_shape += w->keep_start != w->code_start + w->context || w->keep_end != w->code_end ||
                     w->keep_end <= w->keep_start;
        bad_shape += (i + 1 < p.count) != (w->code_end < N);  // only the last window reaches N
        for (int64_t f = w->keep_start; f < w->keep_end && f >= 0 && f < N; f++) cover[f]++;
        bad_time += fabs(w->start - (double)w->code_start / (double)R) > 1e-12 ||
                    fabs(w->end - fmin((double)w->code_end / (double)R, D)) > 1e-12;
        // the condition: frame j belongs iff start <= j / fps < end (end: the window's end or the video's)
        for (int64_t j = 0; j < frames; j++) {
            const bool in = j * R >= w->code_start * fps && j * R < w->code_end * fps && (double)j < D * (double)fps;
            const bool got = j >= w->frame_first && j < w->frame_first + w->frame_count;
            bad_frames += in != got;
        }
        bad_frames += w->frame_first * R != w->code_start * fps;  // condition frame 0 = the window's second 0
        bad_frames += w->frame_count > llround(C * (double)fps) || w->frame_count <= 0;
    }
    int64_t gaps = 0, doubles = 0;
    for (int64_t f = 0; f < N; f++) gaps += cover[f] == 0, doubles += cover[f] > 1;
    TEST_CHECK(gaps == 0 && doubles == 0, label, "kept frames: %lld gaps, %lld covered twice", (long long)gaps,
               (long long)doubles);
    TEST_CHECK(bad_shape == 0, label, "%lld window range errors", (long long)bad_shape);
    TEST_CHECK(bad_frames == 0, label, "%lld condition-frame errors", (long long)bad_frames);
    TEST_CHECK(bad_time == 0, label, "%lld seconds errors", (long long)bad_time);

    // a simulated generation: window i "generates" truth(frame) for its new frames and must be prompted
    // with truth of its context frames, taken from what was stitched so far
    const int64_t K = 2;
    int64_t *out = malloc((size_t)(K * N) * sizeof *out);
    for (int64_t i = 0; i < K * N; i++) out[i] = -1;
    int64_t bad_prompt = 0;
    for (int i = 0; i < p.count; i++) {
        const gvm_nn_window *w = &p.windows[i];
        const int64_t T = w->code_end - w->code_start, P = w->context;
        int64_t *prompt = malloc((size_t)(K * (P ? P : 1)) * sizeof *prompt);
        int64_t *codes = malloc((size_t)(K * T) * sizeof *codes);
        if (i > 0) gvm_nn_windows_prompt(&p, i, out, K, prompt);
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t truth = (w->code_start + t) * 10 + k;
                if (t < P) bad_prompt += prompt[k * P + t] != truth;
                codes[k * T + t] = truth;
            }
        gvm_nn_windows_stitch(&p, i, codes, K, out);
        free(prompt);
        free(codes);
    }
    int64_t bad_out = 0;
    for (int64_t k = 0; k < K; k++)
        for (int64_t f = 0; f < N; f++) bad_out += out[k * N + f] != f * 10 + k;
    TEST_CHECK(bad_prompt == 0 && bad_out == 0, label, "stitch: %lld prompt and %lld output frames wrong",
               (long long)bad_prompt, (long long)bad_out);
    free(out);
    free(cover);
    gvm_nn_windows_free(&p);
}

// The plans of the reference numbers, written out (C = 30 s, 1 fps, 50 Hz).
static void explicit_plans(void) {
    gvm_nn_window_plan p;
    // D = 2.5 C with 10 s of context: stride 20 s -> [0,30) [20,50) [40,70) [60,75)
    GVM_CHECK(gvm_nn_windows_plan(75.0, 30.0, 10.0, 1.0, 50.0, &p) == GVM_OK, "%s", gvm_error_message());
    const int64_t want[4][5] = {{0, 1500, 0, 0, 30}, {1000, 2500, 500, 20, 30}, {2000, 3500, 500, 40, 30},
                                {3000, 3750, 500, 60, 15}};
    bool ok = p.count == 4;
    for (int i = 0; ok && i < 4; i++) {
        const gvm_nn_window *w = &p.windows[i];
        ok = w->code_start == want[i][0] && w->code_end == want[i][1] && w->context == want[i][2] &&
             w->frame_first == want[i][3] && w->frame_count == want[i][4];
    }
    TEST_CHECK(ok, "explicit: 75 s, overlap 10", "plan differs (%d windows)", p.count);
    gvm_nn_windows_free(&p);
    // fractional: 75.5 s, overlap 10: the last window is [60, 75.5) with frames 60..75 (16 frames)
    GVM_CHECK(gvm_nn_windows_plan(75.5, 30.0, 10.0, 1.0, 50.0, &p) == GVM_OK, "%s", gvm_error_message());
    const gvm_nn_window *l = &p.windows[p.count - 1];
    TEST_CHECK(p.count == 4 && l->code_start == 3000 && l->code_end == 3775 && l->frame_first == 60 &&
                   l->frame_count == 16 && fabs(l->end - 75.5) < 1e-12,
               "explicit: 75.5 s, overlap 10", "last window [%lld, %lld) frames %lld+%lld", (long long)l->code_start,
               (long long)l->code_end, (long long)l->frame_first, (long long)l->frame_count);
    gvm_nn_windows_free(&p);
    // D <= C: one window, the whole video
    GVM_CHECK(gvm_nn_windows_plan(30.0, 30.0, 10.0, 1.0, 50.0, &p) == GVM_OK, "%s", gvm_error_message());
    TEST_CHECK(p.count == 1 && p.windows[0].code_end == 1500 && p.windows[0].frame_count == 30,
               "explicit: D = C is one window", "%d windows", p.count);
    gvm_nn_windows_free(&p);
}

static void expect_invalid(double D, double C, double O, double fps, double R, const char *needle) {
    char label[128];
    snprintf(label, sizeof label, "error: D %g C %g O %g fps %g rate %g", D, C, O, fps, R);
    gvm_nn_window_plan p;
    const gvm_status st = gvm_nn_windows_plan(D, C, O, fps, R, &p);
    const char *msg = gvm_error_message();
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(msg, needle) && p.windows == NULL && p.count == 0, label,
               "status %d, message \"%s\" (want \"%s\")", st, msg, needle);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    explicit_plans();
    check_plan(12.3, 30, 10, 1, 50, 1);   // D < C
    check_plan(30, 30, 10, 1, 50, 1);     // D = C
    check_plan(30.02, 30, 10, 1, 50, 2);  // one codec frame past C
    check_plan(75, 30, 0, 1, 50, 3);      // D = 2.5 C, no overlap
    check_plan(75, 30, 10, 1, 50, 4);     // D = 2.5 C, 10 s of context
    check_plan(75.5, 30, 10, 1, 50, 4);   // fractional D
    check_plan(61.01, 30, 0, 1, 50, 3);   // a last window of half a codec frame... rounded up to one
    check_plan(200.37, 30, 12, 1, 50, 0); // the reference's 18 s stride
    check_plan(100, 30, 20, 1, 50, 0);    // overlap > C / 2: prompts reach into earlier windows' prompts
    check_plan(45.25, 30, 12.5, 2, 50, 0);  // 2 fps: a half-second overlap is on the grid
    check_plan(1, 30, 10, 1, 50, 1);      // one frame of video
    expect_invalid(60, 30, 30, 1, 50, "shorter than the clip");
    expect_invalid(60, 30, 45, 1, 50, "shorter than the clip");
    expect_invalid(60, 30, -1, 1, 50, "overlap");
    expect_invalid(60, 30, 2.5, 1, 50, "whole numbers");
    expect_invalid(60, 30.01, 0, 1, 50, "whole numbers");
    expect_invalid(0.5, 30, 10, 1, 50, "no frame");
    expect_invalid(NAN, 30, 10, 1, 50, "no frame");
    expect_invalid(60, 0, 0, 1, 50, "clip length");
    expect_invalid(60, 30, 10, 0, 50, "must be > 0");
    expect_invalid(60, 30, 10, 1, -50, "must be > 0");
    return test_finish();
}
