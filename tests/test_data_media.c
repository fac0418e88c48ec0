// test_data_media.c: video frames (gvm_video_read_frames, gvm_media_probe) against independent oracles. All
// media are made here, in a temporary folder, with the ffmpeg program from lavfi sources.
//
//  * frame sampling: a clip whose frame N shows N in binary (8 horizontal bands, dark = 0, light = 1), so
//    every sample says which source frame it is: counts and picks for fps 1, 2, 3, 20, non-zero starts (which
//    seek), past the end, to the end, a start past the end; the same clip in MPEG-TS (start time 1.4 s),
//    with a timestamp gap (variable frame rate), with repeated timestamps, as a raw H.264 stream, and in many
//    codecs / pixel formats (yuv420p, yuvj, gray, 10-bit, alpha, rgb, rgb48, palette, nv12), where the band
//    levels (mid greys) also check the colour range;
//  * colour matrices: BT.601, BT.709 (limited and full range), BT.2020 and unflagged flat colours decode to
//    the source RGB;
//  * geometry: shorter-side resize and centre crop, on landscape, portrait, odd-width and upscaled inputs
//    whose red/blue boundary lands on a known output column (torchvision's rounding);
//  * rotation tags (phone video): our frames equal ffmpeg's own autorotated, resized and cropped frame.
// The bad-input corpus is in test_data_media_errors.c; audio, WAV and mux in test_data_media_audio.c.
#include "tests/media_fixture.h"

#include "data/media.h"
#include "tests/test_util.h"

// ---- frame sampling ---------------------------------------------------------------------------------------------
// The counter clip: frame N has 8 horizontal bands (rows [30b, 30b + 30) of 240), band b light grey (208) when
// bit b of N is set, dark grey (48) when not. Mid greys, so a wrong colour range (which moves 48 to 37 or 57
// and 208 to 224 or 195) shows. The geq source makes gray frames; each test encodes them its own way.
#define COUNTER_SRC(rate, dur)                                                                                  \
    "-f lavfi -i \"color=c=black:s=320x240:r=" rate ":d=" dur                                                   \
    ",format=gray,geq=lum='48+160*mod(floor(N/pow(2,floor(Y/30))),2)'\""

// The source frame number a sampled frame (uint8 [size, size, 3]) shows; -1 when a band's mean is not within 5
// levels of 48 or 208 in every channel.
static int frame_number(const uint8_t *fr, int size) {
    int n = 0;
    for (int b = 0; b < 8; b++) {
        int y = (int)((b + 0.5) * size / 8);
        double sum[3] = {0, 0, 0};
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) sum[c] += fr[((size_t)y * size + x) * 3 + c];
        for (int c = 0; c < 3; c++) {
            double mean = sum[c] / size;
            if (fabs(mean - 48) > 5 && fabs(mean - 208) > 5) return -1;
        }
        if (sum[0] / size > 128) n |= 1 << b;
    }
    return n;
}

// Read frames and compare the source frame numbers with `expect` [n_expect].
static void check_picks(const char *name, const char *file, double fps, double start, double dur,
                        const int *expect, int n_expect) {
    uint8_t *fr = NULL;
    int64_t n = -1;
    const int size = 64;
    gvm_status s = gvm_video_read_frames(tmp_path(file), fps, size, start, dur, &fr, &n);
    if (!TEST_CHECK(s == GVM_OK, name, "%s", gvm_error_message())) return;
    if (TEST_CHECK(n == n_expect, name, "%s fps %g start %g dur %g: %lld frames, want %d", file, fps, start, dur,
                   (long long)n, n_expect)) {
        for (int i = 0; i < n_expect; i++) {
            int got = frame_number(fr + (size_t)i * size * size * 3, size);
            TEST_CHECK(got == expect[i], name, "%s fps %g start %g: sample %d shows frame %d, want %d", file, fps,
                       start, i, got, expect[i]);
        }
    }
    free(fr);
}

static void test_frame_sampling(void) {
    // 25 s at 10 fps (250 frames), keyframes every 3 s, B-frames (display order differs from decode order).
    if (!TEST_CHECK(ffmpeg("counter.mp4", COUNTER_SRC("10", "25") " -c:v libx264 -preset veryfast -g 30 -bf 2 "
                           "-pix_fmt yuv420p"), "counter clip", "ffmpeg failed"))
        return;
    int e[32];
    for (int i = 0; i < 25; i++) e[i] = 10 * i;
    check_picks("sampling fps 1", "counter.mp4", 1, 0, 25, e, 25);
    check_picks("sampling to the end", "counter.mp4", 1, 0, 0, e, 25);
    check_picks("sampling past the end", "counter.mp4", 1, 0, 40, e, 25);
    for (int i = 0; i < 8; i++) e[i] = 5 * i;
    check_picks("sampling fps 2", "counter.mp4", 2, 0, 4, e, 8);
    // Non-zero starts (these seek): frame shown at t is floor(10 t), the last one with pts <= t (the
    // nearest would be 13 for t = 1.27).
    int e2[] = {133, 138, 143, 148, 153, 158};
    check_picks("sampling fps 2 from 13.37 s", "counter.mp4", 2, 13.37, 3, e2, 6);
    int e3[] = {12, 17, 22, 27};
    check_picks("sampling fps 2 from 1.27 s", "counter.mp4", 2, 1.27, 2, e3, 4);
    int e4[] = {10, 13, 16};
    check_picks("sampling fps 3 from 1 s", "counter.mp4", 3, 1, 1, e4, 3);
    int e5[] = {230, 240};  // t = 23, 24; t = 25 is the end of the last frame
    check_picks("sampling from 23 s to the end", "counter.mp4", 1, 23, 0, e5, 2);
    int e6[] = {0, 0, 1, 1};  // fps 20 above the source's 10: frames repeat (t = 0, 0.05, 0.1, 0.15)
    check_picks("sampling fps 20", "counter.mp4", 20, 0, 0.2, e6, 4);

    uint8_t *fr = NULL;
    int64_t n = -1;
    gvm_status s = gvm_video_read_frames(tmp_path("counter.mp4"), 1, 64, 30, 5, &fr, &n);
    TEST_CHECK(s == GVM_ERR_INVALID && fr == NULL && n == 0 && contains(gvm_error_message(), "past the end"),
               "start past the end", "status %d n %lld: %s", s, (long long)n, gvm_error_message());
    s = gvm_video_read_frames(tmp_path("counter.mp4"), 0, 64, 0, 5, &fr, &n);
    TEST_CHECK(s == GVM_ERR_INVALID, "fps 0 is invalid", "status %d", s);
    s = gvm_video_read_frames(tmp_path("counter.mp4"), 1, 0, 0, 5, &fr, &n);
    TEST_CHECK(s == GVM_ERR_INVALID, "size 0 is invalid", "status %d", s);
    s = gvm_video_read_frames(tmp_path("counter.mp4"), 1, 64, -1, 5, &fr, &n);
    TEST_CHECK(s == GVM_ERR_INVALID, "negative start is invalid", "status %d", s);

    gvm_media_info info;
    s = gvm_media_probe(tmp_path("counter.mp4"), &info);
    TEST_CHECK(s == GVM_OK && info.has_video && !info.has_audio && info.width == 320 && info.height == 240 &&
                   fabs(info.fps - 10) < 1e-9 && info.video_frames == 250 && fabs(info.duration_s - 25) < 0.01 &&
                   !strcmp(info.video_codec, "h264"),
               "probe counter.mp4", "status %d video %d audio %d %dx%d fps %g frames %lld dur %g codec %s", s,
               info.has_video, info.has_audio, info.width, info.height, info.fps, (long long)info.video_frames,
               info.duration_s, info.video_codec);

    // MPEG-TS starts its clock near 1.4 s: times count from the file's start all the same.
    if (TEST_CHECK(ffmpeg("counter.ts", COUNTER_SRC("10", "25") " -c:v libx264 -preset veryfast -g 30 -bf 2 "
                          "-pix_fmt yuv420p"), "counter.ts", "ffmpeg failed")) {
        double start = probe_value(tmp_path("counter.ts"), NULL, "format=start_time");
        s = gvm_media_probe(tmp_path("counter.ts"), &info);
        TEST_CHECK(s == GVM_OK && start > 1 && fabs(info.start_s - start) < 1e-6, "probe start time of counter.ts",
                   "ours %g, ffprobe %g", info.start_s, start);
        check_picks("MPEG-TS fps 2 from 13.37 s", "counter.ts", 2, 13.37, 3, e2, 6);
        for (int i = 0; i < 8; i++) e[i] = 5 * i;
        check_picks("MPEG-TS fps 2", "counter.ts", 2, 0, 4, e, 8);
    }

    // Variable frame rate: frames 20.. are shown one second later than their index says (a gap after frame
    // 19 at 1.9 s). At t = 2 s frame 19 is on screen; index-based sampling would give 20.
    if (TEST_CHECK(ffmpeg("gap.mkv", COUNTER_SRC("10", "4") " -vf \"setpts='N+10*gte(N\\,20)'\" "
                          "-fps_mode passthrough -c:v ffv1"), "gap clip", "ffmpeg failed")) {
        int eg[] = {0, 10, 19, 20, 30};
        check_picks("timestamp gap", "gap.mkv", 1, 0, 0, eg, 5);
    }
    // Repeated timestamps: frames 15 and 25 carry 14's and 24's. They are moved one frame on (to 1.5 and 2.5
    // s), so at 1.45 s frame 14 shows, not 15.
    if (TEST_CHECK(ffmpeg("dup.mkv", COUNTER_SRC("10", "4") " -vf \"setpts='N-eq(N\\,15)-eq(N\\,25)'\" "
                          "-fps_mode passthrough -c:v ffv1"), "repeated timestamps clip", "ffmpeg failed")) {
        int ed[] = {14, 24};
        check_picks("repeated timestamps", "dup.mkv", 1, 1.45, 2, ed, 2);
        int ed2[] = {0, 10, 20, 30};
        check_picks("repeated timestamps from 0", "dup.mkv", 1, 0, 0, ed2, 4);
    }
    // A raw H.264 stream: no container, timestamps from the bitstream's timing, no index to seek by.
    if (TEST_CHECK(ffmpeg("counter.h264", COUNTER_SRC("10", "4") " -c:v libx264 -preset veryfast -g 30 "
                          "-pix_fmt yuv420p"), "raw h264 clip", "ffmpeg failed")) {
        int er[] = {0, 10, 20, 30};
        check_picks("raw H.264", "counter.h264", 1, 0, 0, er, 4);
        int er2[] = {12, 22};
        check_picks("raw H.264 from 1.27 s", "counter.h264", 1, 1.27, 2, er2, 2);
    }
}

// The counter in many codecs and pixel formats: 3 s at 10 fps, sampled at 1 fps.
static void test_pixel_formats(void) {
    static const struct { const char *file, *args; } cases[] = {
        {"fmt_yuvj422p.avi", "-c:v mjpeg -pix_fmt yuvj422p -q:v 2"},
        {"fmt_gray.mkv", "-c:v ffv1 -pix_fmt gray"},
        {"fmt_yuv444p10.mkv", "-c:v ffv1 -pix_fmt yuv444p10le"},
        {"fmt_yuva420p.mkv", "-c:v ffv1 -pix_fmt yuva420p"},
        {"fmt_rgb24.mkv", "-c:v png -pix_fmt rgb24"},
        {"fmt_rgb48.mkv", "-c:v png -pix_fmt rgb48be"},
        {"fmt_pal8.gif", "-c:v gif -pix_fmt gray"},
        {"fmt_nv12.nut", "-c:v rawvideo -pix_fmt nv12"},
        {"fmt_yuv420p_limited.mkv", "-c:v ffv1 -pix_fmt yuv420p -color_range tv"},
        {"fmt_vp9.webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 1M -pix_fmt yuv420p"},
        {"fmt_mpeg2.mpg", "-c:v mpeg2video -q:v 2 -pix_fmt yuv420p"},
    };
    int e[] = {0, 10, 20};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, COUNTER_SRC("10", "3") " %s", cases[i].args);
        char name[128];
        snprintf(name, sizeof name, "pixel format %s", cases[i].file);
        if (strstr(cases[i].args, "libvpx") && system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libvpx-vp9")) {
            printf("note: this ffmpeg has no libvpx-vp9 encoder; %s not tested\n", cases[i].file);
            continue;
        }
        if (!TEST_CHECK(ffmpeg(cases[i].file, args), name, "ffmpeg failed")) continue;
        check_picks(name, cases[i].file, 1, 0, 3, e, 3);
    }
}

// A flat colour (200, 60, 30) through YUV with the given matrix and range, flagged in the stream: decoded back
// with the flagged matrix it is within 3 levels (BT.601 for BT.709 content is 10+ levels off in green).
static void test_colour_matrix(void) {
    static const struct { const char *file, *args; } cases[] = {
        {"colour_709.mp4", "-vf scale=out_color_matrix=bt709:out_range=tv,format=yuv420p -colorspace bt709 "
                           "-color_range tv"},
        {"colour_601.mp4", "-vf scale=out_color_matrix=bt601:out_range=tv,format=yuv420p -colorspace smpte170m "
                           "-color_range tv"},
        {"colour_unflagged.mp4", "-vf scale=out_color_matrix=bt601:out_range=tv,format=yuv420p"},
        {"colour_709_full.mp4", "-vf scale=out_color_matrix=bt709:out_range=pc,format=yuv420p -colorspace bt709 "
                                "-color_range pc"},
        {"colour_2020.mp4", "-vf scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p -colorspace bt2020nc "
                            "-color_range tv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512], name[128];
        snprintf(name, sizeof name, "colour matrix %s", cases[i].file);
        snprintf(args, sizeof args, "-f lavfi -i \"color=c=black:s=64x64:r=10:d=1,format=gbrp,geq=r=200:g=60:b=30\" "
                 "%s -c:v libx264 -qp 0", cases[i].args);
        if (!TEST_CHECK(ffmpeg(cases[i].file, args), name, "ffmpeg failed")) continue;
        uint8_t *fr = NULL;
        int64_t n = 0;
        gvm_status s = gvm_video_read_frames(tmp_path(cases[i].file), 1, 16, 0, 1, &fr, &n);
        if (TEST_CHECK(s == GVM_OK && n == 1, name, "%s", gvm_error_message())) {
            const uint8_t *p = fr + (8 * 16 + 8) * 3;
            TEST_CHECK(abs(p[0] - 200) <= 3 && abs(p[1] - 60) <= 3 && abs(p[2] - 30) <= 3, name,
                       "decoded %d %d %d, want 200 60 30", p[0], p[1], p[2]);
        }
        free(fr);
    }
}

// ---- geometry ---------------------------------------------------------------------------------------------------------
// First column (or row, when `rows`) of a sampled frame where blue exceeds the other colour; -1 if none.
static int first_blue(const uint8_t *fr, int size, bool rows) {
    for (int i = 0; i < size; i++) {
        int x = rows ? size / 2 : i, y = rows ? i : size / 2;
        const uint8_t *p = fr + ((size_t)y * size + x) * 3;
        if (p[2] > p[0] && p[2] > p[1]) return i;
    }
    return -1;
}

static void check_boundary(const char *name, const char *file, const char *src, int size, bool rows, int expect) {
    char args[512];
    snprintf(args, sizeof args, "-f lavfi -i \"%s\" -frames:v 1 -c:v ffv1 -pix_fmt gbrp", src);
    if (!TEST_CHECK(ffmpeg(file, args), name, "ffmpeg failed")) return;
    uint8_t *fr = NULL;
    int64_t n = 0;
    gvm_status s = gvm_video_read_frames(tmp_path(file), 1, size, 0, 1, &fr, &n);
    if (!TEST_CHECK(s == GVM_OK && n == 1, name, "status %d n %lld: %s", s, (long long)n, gvm_error_message())) {
        free(fr);
        return;
    }
    int got = first_blue(fr, size, rows);
    TEST_CHECK(got == expect, name, "boundary at %s %d, want %d", rows ? "row" : "column", got, expect);
    // Away from the boundary the colours are pure (bicubic overshoot is clamped).
    int a = rows ? size / 2 : 2, b = rows ? 2 : size / 2;
    const uint8_t *p = fr + ((size_t)b * size + a) * 3;
    TEST_CHECK(p[2] < 10 && (p[0] > 245 || p[1] > 245), name, "first colour at (%d, %d) is %d %d %d", a, b, p[0],
               p[1], p[2]);
    p = fr + ((size_t)(size - 1 - (rows ? 2 : size / 2)) * size + (rows ? size / 2 : size - 3)) * 3;
    TEST_CHECK(p[2] > 245 && p[0] < 10 && p[1] < 10, name, "blue side is %d %d %d", p[0], p[1], p[2]);
    free(fr);
}

// A phone-style video: the stream carries a display matrix (the mp4 "rotate" tag). Our frames must be turned
// as ffmpeg's own decoder turns them (its autorotation; the oracle), then resized and cropped the same way.
static void test_rotation(void) {
    static const int turns[] = {90, 180, 270};
    for (int k = 0; k < 3; k++) {
        char name[64], plain[64], file[64], args[512];
        snprintf(name, sizeof name, "rotation tag %d", turns[k]);
        snprintf(plain, sizeof plain, "rot_plain%d.mp4", turns[k]);
        snprintf(file, sizeof file, "rot%d.mp4", turns[k]);
        // Red for x < 100 and green for y < 60 of 320x240, blue elsewhere: every turn looks different.
        bool made = ffmpeg(plain, "-f lavfi -i \"color=c=black:s=320x240,format=gbrp,geq=r='255*lt(X,100)*gte(Y,60)'"
                                  ":g='255*lt(Y,60)':b='255*gte(X,100)*gte(Y,60)'\" -frames:v 1 -c:v libx264 -qp 0 "
                                  "-pix_fmt yuv444p");
        snprintf(args, sizeof args, "-i '%s' -c copy -metadata:s:v:0 rotate=%d", tmp_path(plain), turns[k]);
        made = made && ffmpeg(file, args);
        if (!TEST_CHECK(made, name, "ffmpeg failed")) continue;
        gvm_media_info info;
        gvm_status s = gvm_media_probe(tmp_path(file), &info);
        TEST_CHECK(s == GVM_OK && info.rotation % 90 == 0 && info.rotation != 0, name, "probe: rotation %d",
                   info.rotation);
        // ffmpeg's turned frame, resized (shorter side 96) and centre-cropped by its filters.
        const int size = 96;
        bool portrait = turns[k] != 180;
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -i '%s' -vf 'scale=%s:flags=bicubic,crop=%d:%d' "
                 "-frames:v 1 -f rawvideo -pix_fmt rgb24 -", tmp_path(file), portrait ? "96:128" : "128:96", size, size);
        uint8_t *want = malloc((size_t)size * size * 3);
        FILE *pp = popen(cmd, "r");
        size_t got = pp ? fread(want, 1, (size_t)size * size * 3, pp) : 0;
        if (pp) pclose(pp);
        uint8_t *fr = NULL;
        int64_t n = 0;
        s = gvm_video_read_frames(tmp_path(file), 1, size, 0, 1, &fr, &n);
        if (TEST_CHECK(got == (size_t)size * size * 3 && s == GVM_OK && n == 1, name, "ffmpeg gave %zu bytes; %s",
                       got, gvm_error_message())) {
            // Compare the colour of every pixel away from the boundaries (within 3 pixels of one, skip).
            int wrong = 0, compared = 0;
            for (int y = 3; y < size - 3; y++)
                for (int x = 3; x < size - 3; x++) {
                    bool edge = false;
                    for (int dy = -3; dy <= 3 && !edge; dy += 6)
                        for (int dx = -3; dx <= 3 && !edge; dx += 6) {
                            const uint8_t *a2 = want + ((size_t)(y + dy) * size + x + dx) * 3, *b2 = want + ((size_t)y * size + x) * 3;
                            edge = abs(a2[0] - b2[0]) + abs(a2[1] - b2[1]) + abs(a2[2] - b2[2]) > 60;
                        }
                    if (edge) continue;
                    const uint8_t *a1 = want + ((size_t)y * size + x) * 3, *b1 = fr + ((size_t)y * size + x) * 3;
                    compared++;
                    wrong += abs(a1[0] - b1[0]) + abs(a1[1] - b1[1]) + abs(a1[2] - b1[2]) > 60;
                }
            TEST_CHECK(compared > size * size / 2 && wrong == 0, name, "%d of %d pixels differ from ffmpeg's", wrong,
                       compared);
        }
        free(fr);
        free(want);
    }
}

static void test_geometry(void) {
    // 320x240, red for x < 100: resized to 160x120, crop offset 20: the boundary (scaled 50) at column 30.
    // A squash would put it at 37.5, a left-aligned crop at 50.
    check_boundary("crop landscape", "geo_land.mkv",
                   "color=c=black:s=320x240,format=gbrp,geq=r='255*lt(X,100)':g=0:b='255*gte(X,100)'", 120, false, 30);
    // 240x320 portrait, green for y < 100: 120x160, crop offset 20: boundary at row 30.
    check_boundary("crop portrait", "geo_port.mkv",
                   "color=c=black:s=240x320,format=gbrp,geq=r=0:g='255*lt(Y,100)':b='255*gte(Y,100)'", 120, true, 30);
    // 330x240: 165x120, offset round(22.5) = 22 (half to even, as torchvision): boundary at 50 - 22 = 28.
    check_boundary("crop rounding", "geo_odd.mkv",
                   "color=c=black:s=330x240,format=gbrp,geq=r='255*lt(X,100)':g=0:b='255*gte(X,100)'", 120, false, 28);
    // Upscaling: 160x120 to 240: 320x240, offset 40, boundary (scaled 100) at 60.
    check_boundary("crop upscale", "geo_up.mkv",
                   "color=c=black:s=160x120,format=gbrp,geq=r='255*lt(X,50)':g=0:b='255*gte(X,50)'", 240, false, 60);
}


int main(int argc, char **argv) {
    test_init(argc, argv);
    media_fixture_init("gvm_media_video");
    test_frame_sampling();
    test_pixel_formats();
    test_colour_matrix();
    test_geometry();
    test_rotation();
    return media_fixture_finish(test_finish());
}
