// test_data_prep.c: `gvm prep` (data/prep*.c, data/progress.c, tools/gvm/) on media made here with the ffmpeg
// program from lavfi sources (a test pattern and a sine of a known frequency per file), in a temporary folder.
//
//  * folder input: clip counts per source from the known lengths (7.5 s, 12.5 s, 3.4 s and 0.6 s at 2 s clips:
//    4, 6, 2 and none), ids (stem, the hash's value from a Python oracle, window number), metadata, shapes,
//    frames equal to a direct read of each window, audio equal to the slice of the whole track, and at the
//    source's sine frequency; windows read one by one when hop * fps is not a whole number;
//  * manifests: CSV and JSON lines with separate music files (the clips carry the music's frequency, not the
//    video's), styles, the default style, a video without sound given music, missing videos and music as
//    per-source failures; the two manifests give identical shards; manifest mistakes name file:line;
//  * the split: by source, matching the documented hash (values from a Python oracle), the same on a second run;
//    explicit splits of a manifest's split column / key honoured whatever --eval-fraction (0, 0.5, 1), mixed with
//    sources left to the hash; CSV and JSON lines agree; a bad split value names file:line;
//  * 1 and 3 threads give identical shards (many shards: --shard-mb below one source);
//  * the gvm program: bad files reported and skipped with exit status 3; --help, --version, unknown commands,
//    bad options (2), options that differ from the run being resumed (2), a finished run re-run (nothing to do);
//  * resuming: a run killed (SIGKILL) after two shard commits, re-run, equals an uninterrupted run (a manifest
//    mixing explicit train/eval and hash splits); a split changed since for a source already in a shard is an
//    error naming the source and its manifest line, --force starts over; leftover
//    temporary files and a torn journal line are cleaned up; SIGTERM leaves no temporary file, exit 143. A
//    FIFO stands in for one video so the run waits at a known point (no timing involved);
//  * the progress display: durations, plain lines, the bar redrawn with '\r'.
//
// The gvm program: $GVM_BIN, else "gvm" next to this test program.
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/media_fixture.h"

#include "data/dataset.h"
#include "data/media.h"
#include "data/prep.h"
#include "data/progress.h"
#include "tests/test_util.h"

extern char **environ;
static char g_gvm[1024];

// ---- helpers -----------------------------------------------------------------------------------------------------
static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static char *slurp(const char *path) {  // a file's text ("" when unreadable); free()
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc((size_t)(size > 0 ? size : 0) + 1);
        n = buf ? fread(buf, 1, (size_t)(size > 0 ? size : 0), f) : 0;
        fclose(f);
    }
    if (!buf) buf = malloc(1);
    buf[n] = '\0';
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    GVM_CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

// A video of `seconds` (testsrc2 64x48 at 25 fps, H.264, a keyframe every second) with a sine of `freq` Hz
// as AAC (freq 0: no sound track), at g_dir/rel.
static bool make_video(const char *rel, double seconds, int freq) {
    char args[1024];
    sh("mkdir -p \"$(dirname '%s')\"", tmp_path(rel));
    if (freq > 0)
        snprintf(args, sizeof args, "-f lavfi -i testsrc2=size=64x48:rate=25 -f lavfi -i sine=frequency=%d:"
                 "sample_rate=44100 -t %g -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p -c:a aac", freq,
                 seconds);
    else
        snprintf(args, sizeof args, "-f lavfi -i testsrc2=size=64x48:rate=25 -t %g -c:v libx264 -preset ultrafast "
                 "-g 25 -pix_fmt yuv420p -an", seconds);
    return ffmpeg(rel, args);
}

static bool make_tone(const char *rel, double seconds, int freq) {
    char args[256];
    sh("mkdir -p \"$(dirname '%s')\"", tmp_path(rel));
    snprintf(args, sizeof args, "-f lavfi -i sine=frequency=%d:sample_rate=44100 -t %g", freq, seconds);
    return ffmpeg(rel, args);
}

// The test settings: 2 s clips, 2 fps, 32 px, 8 kHz, all train, quiet.
static gvm_prep_options small_opts(const char *input, const char *out) {
    gvm_prep_options o;
    gvm_prep_options_default(&o);
    o.input = input;
    o.out_dir = out;
    o.clip_seconds = 2;
    o.fps = 2;
    o.size = 32;
    o.sample_rate = 8000;
    o.eval_fraction = 0;
    o.threads = 2;
    o.quiet = true;
    return o;
}

// Every clip of every shard of an output folder, in shard-name then clip order.
typedef struct out_clip {
    char shard[256];
    gvm_clip c;
} out_clip;

static int only_h5(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n > 3 && strcmp(e->d_name + n - 3, ".h5") == 0;
}

static int64_t read_output(const char *dir, out_clip **out) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, only_h5, alphasort);
    int64_t count = 0, cap = 0;
    *out = NULL;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        gvm_shard *s = NULL;
        if (TEST_CHECK(gvm_shard_open(path, &s) == GVM_OK, "read output", "%s", gvm_error_message())) {
            for (int64_t k = 0; k < gvm_shard_clip_count(s); k++) {
                if (count == cap) *out = realloc(*out, (size_t)(cap = cap ? 2 * cap : 64) * sizeof **out);
                out_clip *oc = &(*out)[count];
                snprintf(oc->shard, sizeof oc->shard, "%s", names[i]->d_name);
                if (TEST_CHECK(gvm_shard_read_clip(s, k, &oc->c) == GVM_OK, "read clip", "%s", gvm_error_message()))
                    count++;
            }
            gvm_shard_close(s);
        }
        free(names[i]);
    }
    free(names);
    return count;
}

static void free_output(out_clip *c, int64_t n) {
    for (int64_t i = 0; i < n; i++) gvm_clip_free(&c[i].c);
    free(c);
}

// Shards of two folders hold the same clips (names, order, metadata, frame and audio bytes).
static bool same_output(const char *name, const char *dir_a, const char *dir_b) {
    out_clip *a, *b;
    int64_t na = read_output(dir_a, &a), nb = read_output(dir_b, &b);
    bool ok = TEST_CHECK(na == nb && na > 0, name, "%lld clips in %s, %lld in %s", (long long)na, dir_a,
                         (long long)nb, dir_b);
    for (int64_t i = 0; ok && i < na; i++) {
        const gvm_clip *x = &a[i].c, *y = &b[i].c;
        ok = TEST_CHECK(strcmp(a[i].shard, b[i].shard) == 0 && strcmp(x->clip_id, y->clip_id) == 0 &&
                            strcmp(x->source_file, y->source_file) == 0 && strcmp(x->style, y->style) == 0 &&
                            strcmp(x->split, y->split) == 0 && x->start_time == y->start_time &&
                            x->duration == y->duration && x->num_frames == y->num_frames &&
                            x->num_samples == y->num_samples,
                        name, "clip %lld: %s/%s vs %s/%s", (long long)i, a[i].shard, x->clip_id, b[i].shard,
                        y->clip_id);
        if (ok)
            ok = TEST_CHECK(memcmp(x->frames, y->frames, (size_t)x->num_frames * x->height * x->width * 3) == 0 &&
                                memcmp(x->audio, y->audio, (size_t)x->num_samples * sizeof(float)) == 0,
                            name, "clip %s: frames or audio differ", x->clip_id);
    }
    free_output(a, na);
    free_output(b, nb);
    return ok;
}

// ---- the gvm program as a child process ---------------------------------------------------------------------------
// Start gvm with the arguments (NULL-terminated), stdout and stderr to files.
static pid_t spawn_gvm(const char *out_file, const char *err_file, const char *const *args) {
    const char *argv[64] = {g_gvm};
    int n = 1;
    while (args[n - 1] && n < 63) argv[n] = args[n - 1], n++;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    if (posix_spawn(&pid, g_gvm, &fa, &at, (char *const *)argv, environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return pid;
}

static int wait_status(pid_t pid) {
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Run gvm to the end; its stdout and stderr are left in *out / *err (free them).
static int run_gvm(char **out, char **err, const char *const *args) {
    char of[600], ef[600];
    snprintf(of, sizeof of, "%s", tmp_path("gvm.stdout"));
    snprintf(ef, sizeof ef, "%s", tmp_path("gvm.stderr"));
    int rc = wait_status(spawn_gvm(of, ef, args));
    *out = slurp(of);
    *err = slurp(ef);
    return rc;
}

#define SMALL "--clip-seconds", "2", "--fps", "2", "--size", "32", "--sample-rate", "8000"

// ---- folder input ------------------------------------------------------------------------------------------------
typedef struct expect_src {
    const char *name, *hash8;
    int freq, n_clips;
} expect_src;

// Clip k of `src` in `clips` (by id), or NULL.
static const gvm_clip *find_clip(const out_clip *clips, int64_t n, const char *stem, const char *hash8, int k) {
    char id[128];
    snprintf(id, sizeof id, "%s-%s-c%04d", stem, hash8, k);
    for (int64_t i = 0; i < n; i++)
        if (strcmp(clips[i].c.clip_id, id) == 0) return &clips[i].c;
    return NULL;
}

// Frames equal a direct read of the clip's window; audio equals the slice of the whole track and has the
// source's sine frequency.
static void check_clip_data(const char *name, const gvm_clip *c, const char *video, const char *audio_file, int freq) {
    uint8_t *fr = NULL;
    int64_t nf = 0;
    gvm_status st = gvm_video_read_frames(video, 2, 32, c->start_time, c->duration, &fr, &nf);
    if (TEST_CHECK(st == GVM_OK && nf == c->num_frames, name, "%s: direct read %lld frames, clip has %lld (%s)",
                   c->clip_id, (long long)nf, (long long)c->num_frames, gvm_error_message()))
        TEST_CHECK(memcmp(fr, c->frames, (size_t)nf * 32 * 32 * 3) == 0, name, "%s: frames differ from a direct read",
                   c->clip_id);
    free(fr);
    float *a = NULL;
    int64_t na = 0;
    st = gvm_audio_read(audio_file, 8000, 0, 0, &a, &na);
    int64_t a0 = llround(c->start_time * 8000);
    if (TEST_CHECK(st == GVM_OK && a0 + c->num_samples <= na, name, "%s: audio slice out of range", c->clip_id))
        TEST_CHECK(memcmp(a + a0, c->audio, (size_t)c->num_samples * sizeof(float)) == 0, name,
                   "%s: audio differs from the track at %lld", c->clip_id, (long long)a0);
    free(a);
    double f = zero_crossing_freq(c->audio, c->num_samples, 8000);
    TEST_CHECK(fabs(f - freq) < 0.01 * freq, name, "%s: audio at %.1f Hz, want %d", c->clip_id, f, freq);
}

static void test_folder(void) {
    if (!TEST_CHECK(make_video("folder/a.mp4", 7.5, 440) && make_video("folder/sub/b.mp4", 12.5, 660) &&
                        make_video("folder/c.mp4", 3.4, 550) && make_video("folder/short.mp4", 0.6, 440),
                    "folder: make media", "ffmpeg failed"))
        return;
    write_text(tmp_path("folder/notes.txt"), "not a video\n");
    sh("cp '%s' '%s'", tmp_path("folder/c.mp4"), tmp_path("folder/.hidden.mp4"));
    char in[512], out[512];
    snprintf(in, sizeof in, "%s", tmp_path("folder"));
    snprintf(out, sizeof out, "%s", tmp_path("out_folder"));
    gvm_prep_options o = small_opts(in, out);
    gvm_prep_summary s;
    gvm_status st = gvm_prep_run(&o, &s);
    TEST_CHECK(st == GVM_OK, "folder: run", "%s", gvm_error_message());
    TEST_CHECK(s.sources_total == 4 && s.sources_done == 3 && s.sources_short == 1 && s.sources_failed == 0 &&
                   s.clips[0] == 12 && s.clips[1] == 0 && s.shards[0] == 1 && !s.interrupted,
               "folder: summary", "total %lld done %lld short %lld failed %lld clips %lld/%lld shards %lld",
               (long long)s.sources_total, (long long)s.sources_done, (long long)s.sources_short,
               (long long)s.sources_failed, (long long)s.clips[0], (long long)s.clips[1], (long long)s.shards[0]);
    TEST_CHECK(fabs(s.media_seconds - (7.5 + 12.5 + 3.4 + 0.6)) < 0.3, "folder: media seconds", "%g", s.media_seconds);
    gvm_prep_summary_free(&s);

    out_clip *clips;
    int64_t n = read_output(out, &clips);
    TEST_CHECK(n == 12, "folder: clips read back", "%lld", (long long)n);
    // Source order (sorted names) then window order; hash8 from a Python FNV-1a + SplitMix64 oracle.
    const expect_src src[] = {{"a.mp4", "cd9c9650", 440, 4}, {"c.mp4", "d8e55abb", 550, 2},
                              {"sub/b.mp4", "8b07362f", 660, 6}};
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
        char stem[16], video[1024];
        snprintf(stem, sizeof stem, "%s", strchr(src[i].name, '/') ? "b.mp4" : src[i].name);
        *strchr(stem, '.') = '\0';
        snprintf(video, sizeof video, "%s/%s", in, src[i].name);
        for (int k = 0; k < src[i].n_clips; k++, at++) {
            const gvm_clip *c = find_clip(clips, n, stem, src[i].hash8, k);
            if (!TEST_CHECK(c != NULL, "folder: clip id", "%s window %d missing", src[i].name, k)) continue;
            TEST_CHECK(at < n && c == &clips[at].c, "folder: clip order", "%s", c->clip_id);
            bool last = k == src[i].n_clips - 1 && src[i].n_clips != 6;
            TEST_CHECK(strcmp(c->source_file, src[i].name) == 0 && strcmp(c->split, "train") == 0 &&
                           strcmp(c->style, "") == 0 && c->fps == 2 && c->sample_rate == 8000 &&
                           c->start_time == 2.0 * k && c->height == 32 && c->width == 32,
                       "folder: metadata", "%s: source %s split %s start %g", c->clip_id, c->source_file, c->split,
                       c->start_time);
            if (!last) {
                TEST_CHECK(c->duration == 2 && c->num_frames == 4 && c->num_samples == 16000, "folder: full clip",
                           "%s: %g s, %lld frames, %lld samples", c->clip_id, c->duration, (long long)c->num_frames,
                           (long long)c->num_samples);
            } else {  // the last, partial window: 7.5 s -> [6, ~7.5), 3.4 s -> [2, ~3.4)
                double want = i == 0 ? 1.5 : 1.4;
                TEST_CHECK(fabs(c->duration - want) < 0.06 && c->num_frames == (int64_t)floor(c->duration * 2) &&
                               c->num_samples == llround(c->duration * 8000),
                           "folder: last clip", "%s: %g s, %lld frames, %lld samples", c->clip_id, c->duration,
                           (long long)c->num_frames, (long long)c->num_samples);
            }
            check_clip_data("folder: data", c, video, video, src[i].freq);
        }
    }
    free_output(clips, n);

    // Windows read one by one: hop 1.25 s at 2 fps is 2.5 frames. 7.5 s -> starts 0, 1.25, ..., 6.25.
    char man[512], out2[512];
    snprintf(man, sizeof man, "%s", tmp_path("one.csv"));
    write_text(man, "video\nfolder/a.mp4\n");
    snprintf(out2, sizeof out2, "%s", tmp_path("out_hop"));
    o = small_opts(man, out2);
    o.hop_seconds = 1.25;
    st = gvm_prep_run(&o, &s);
    TEST_CHECK(st == GVM_OK && s.clips[0] == 6, "hop: run", "%lld clips: %s", (long long)s.clips[0],
               gvm_error_message());
    gvm_prep_summary_free(&s);
    n = read_output(out2, &clips);
    char video[1024];
    snprintf(video, sizeof video, "%s/a.mp4", in);
    for (int k = 0; k < n; k++) {
        const gvm_clip *c = &clips[k].c;
        TEST_CHECK(c->start_time == 1.25 * k && (k == 5 || (c->duration == 2 && c->num_frames == 4)), "hop: windows",
                   "%s: start %g, %g s, %lld frames", c->clip_id, c->start_time, c->duration, (long long)c->num_frames);
        check_clip_data("hop: data", c, video, video, 440);
    }
    free_output(clips, n);
}

// ---- manifests ---------------------------------------------------------------------------------------------------------
static void check_manifest_error(const char *file, const char *text, const char *want1, const char *want2) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path(file));
    write_text(path, text);
    gvm_prep_source_list l;
    gvm_status st = gvm_prep_sources_load(path, &l);
    const char *msg = gvm_error_message();
    TEST_CHECK(st != GVM_OK && contains(msg, want1) && contains(msg, want2), "manifest errors", "%s: status %s: %s",
               file, gvm_status_name(st), msg);
    if (st == GVM_OK) gvm_prep_sources_free(&l);
}

static void test_manifests(void) {
    if (!TEST_CHECK(make_video("man/media/v1.mp4", 6, 440) && make_video("man/media/v2.mp4", 4.4, 550) &&
                        make_video("man/media/silent.mp4", 5, 0) && make_tone("man/music/m1.wav", 20, 880) &&
                        make_tone("man/music/m3.flac", 3, 330),
                    "manifest: make media", "ffmpeg failed"))
        return;
    sh("ln -s v1.mp4 '%s'", tmp_path("man/media/v3.mp4"));
    write_text(tmp_path("man/list.csv"), "\xEF\xBB\xBFvideo,music,style\r\n"
                                         "media/v1.mp4,music/m1.wav,rock\r\n"
                                         "./media/v2.mp4,,\r\n"
                                         "\r\n"
                                         "\"media/silent.mp4\",\"music/m3.flac\",\"guzheng, \xe5\x8f\xa4\xe7\xad\x9d\"\r\n"
                                         "media/missing.mp4\r\n"
                                         "media/v3.mp4,music/nothere.wav,rock\r\n");
    write_text(tmp_path("man/list.jsonl"),
               "{\"video\": \"media/v1.mp4\", \"music\": \"music/m1.wav\", \"style\": \"rock\"}\n"
               "{\"video\": \"./media/v2.mp4\", \"music\": null}\n"
               "\n"
               "{\"video\": \"media/silent.mp4\", \"music\": \"music/m3.flac\", \"style\": \"guzheng, \xe5\x8f\xa4\xe7\xad\x9d\"}\n"
               "{\"video\": \"media/missing.mp4\"}\n"
               "{\"style\": \"rock\", \"video\": \"media/v3.mp4\", \"music\": \"music/nothere.wav\"}\n");
    const char *files[2] = {"man/list.csv", "man/list.jsonl"};
    char outs[2][512];
    for (int m = 0; m < 2; m++) {
        char in[512];
        snprintf(in, sizeof in, "%s", tmp_path(files[m]));
        snprintf(outs[m], sizeof outs[m], "%s/out_manifest%d", g_dir, m);
        gvm_prep_options o = small_opts(in, outs[m]);
        o.style = "pop";
        gvm_prep_summary s;
        gvm_status st = gvm_prep_run(&o, &s);
        TEST_CHECK(st == GVM_OK && s.sources_total == 5 && s.sources_done == 3 && s.sources_failed == 2 &&
                       s.clips[0] == 7 && s.n_failures == 2,
                   "manifest: summary", "%s: %s; total %lld done %lld failed %lld clips %lld", files[m],
                   gvm_error_message(), (long long)s.sources_total, (long long)s.sources_done,
                   (long long)s.sources_failed, (long long)s.clips[0]);
        if (s.n_failures == 2)
            TEST_CHECK(strcmp(s.failures[0].source, "media/missing.mp4") == 0 &&
                           contains(s.failures[0].reason, "missing.mp4") && contains(s.failures[0].reason, "cannot open") &&
                           strcmp(s.failures[1].source, "media/v3.mp4") == 0 &&
                           contains(s.failures[1].reason, "nothere.wav"),
                       "manifest: failures", "%s: %s / %s: %s", s.failures[0].source, s.failures[0].reason,
                       s.failures[1].source, s.failures[1].reason);
        gvm_prep_summary_free(&s);
    }
    out_clip *clips;
    int64_t n = read_output(outs[0], &clips);
    // v1: music 880 Hz (not its own 440), 6 s -> 3 clips, rock; v2: own 550 Hz, 4.4 s -> 2 clips, the default
    // style; silent: no sound track, music 3 s at 330 Hz -> the source is 3 s long: [0,2), [2,3).
    struct {
        const char *source, *style;
        int freq, clips;
        double last;
    } want[] = {{"media/v1.mp4", "rock", 880, 3, 2}, {"media/v2.mp4", "pop", 550, 2, 2},
                {"media/silent.mp4", "guzheng, \xe5\x8f\xa4\xe7\xad\x9d", 330, 2, 1}};
    const char *video[] = {"man/media/v1.mp4", "man/media/v2.mp4", "man/media/silent.mp4"};
    const char *audio[] = {"man/music/m1.wav", "man/media/v2.mp4", "man/music/m3.flac"};
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < want[i].clips; k++, at++) {
            if (!TEST_CHECK(at < n, "manifest: clip count", "%lld clips", (long long)n)) break;
            const gvm_clip *c = &clips[at].c;
            TEST_CHECK(strcmp(c->source_file, want[i].source) == 0 && strcmp(c->style, want[i].style) == 0 &&
                           c->start_time == 2.0 * k &&
                           fabs(c->duration - (k == want[i].clips - 1 ? want[i].last : 2)) < 0.01,
                       "manifest: clips", "clip %lld: %s from %s, style '%s', start %g, %g s", (long long)at,
                       c->clip_id, c->source_file, c->style, c->start_time, c->duration);
            char v[512], a[512];
            snprintf(v, sizeof v, "%s", tmp_path(video[i]));
            snprintf(a, sizeof a, "%s", tmp_path(audio[i]));
            check_clip_data("manifest: data", c, v, a, want[i].freq);
        }
    }
    TEST_CHECK(n == 7, "manifest: clip count", "%lld", (long long)n);
    free_output(clips, n);
    same_output("manifest: CSV and JSON lines agree", outs[0], outs[1]);

    check_manifest_error("bad1.csv", "video,music\nmedia/v1.mp4,\"open\n", "bad1.csv:2:", "not closed");
    check_manifest_error("bad2.csv", "vid,music\nmedia/v1.mp4,\n", "bad2.csv:1:", "unknown column 'vid'");
    check_manifest_error("bad3.jsonl", "{\"video\": \"a.mp4\"}\n{\"video\": 3}\n", "bad3.jsonl:2:",
                         "'video' is a number");
    check_manifest_error("bad4.jsonl", "{\"video\": \"a.mp4\"}\n\n{\"video\": \"b.mp4\", \"colour\": \"red\"}\n",
                         "bad4.jsonl:3:", "unknown key 'colour'");
    check_manifest_error("bad5.csv", "video\na.mp4\n./a.mp4\n", "bad5.csv:3:", "already listed on line 2");
    check_manifest_error("bad6.jsonl", "{\"video\": \"a.mp4\",}\n", "bad6.jsonl:1:", "not valid JSON");
    check_manifest_error("bad7.csv", "video,style\na.mp4,rock,extra\n", "bad7.csv:2:", "3 fields");
    check_manifest_error("bad8.csv", "music\na.wav\n", "bad8.csv:1:", "no 'video' column");
    check_manifest_error("bad9.csv", "video,music\n,a.wav\n", "bad9.csv:2:", "no video path");
    check_manifest_error("bad10.jsonl", "[{\"video\": \"a.mp4\"}]\n", "bad10.jsonl:1:", "not an object");
    check_manifest_error("list.txt", "video\na.mp4\n", "list.txt", "not a folder or a manifest");
    check_manifest_error("empty.csv", "", "empty.csv", "empty manifest");
    check_manifest_error("bad11.csv", "video,split\na.mp4,train\nb.mp4,test\n", "bad11.csv:3: split 'test' is not "
                         "valid", "the valid values are 'train' and 'eval'");
    check_manifest_error("bad12.jsonl", "{\"video\": \"a.mp4\", \"split\": \"Eval\"}\n", "bad12.jsonl:1:",
                         "split 'Eval' is not valid");
    check_manifest_error("bad13.jsonl", "{\"video\": \"a.mp4\", \"split\": 1}\n", "bad13.jsonl:1:",
                         "'split' is a number");
    check_manifest_error("bad14.csv", "video,split,split\na.mp4,,\n", "bad14.csv:1:", "'split' appears twice");
}

// ---- the split, and determinism over thread counts ---------------------------------------------------------------
static void test_split_and_threads(void) {
    // The documented rule, against values computed in Python (FNV-1a 64, SplitMix64 finaliser, top 53 bits).
    TEST_CHECK(gvm_prep_split_value("a.mp4") == 0.8031705806361952 &&
                   gvm_prep_split_value("sub/b.mp4") == 0.5430787913259406 &&
                   gvm_prep_split_value("s3.mp4") == 0.08473957916140129 &&
                   gvm_prep_name_hash("s2.mp4") == 0x3d14d31b2064ae6full,
               "split: hash oracle", "a.mp4 -> %.17g", gvm_prep_split_value("a.mp4"));
    bool made = true;
    for (int i = 0; i < 8 && made; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "split/s%d.mp4", i);
        made = make_video(rel, 2.2, 300 + 50 * i);
    }
    if (!TEST_CHECK(made, "split: make media", "ffmpeg failed")) return;
    const bool is_eval[8] = {false, false, true, true, false, false, true, false};  // u < 0.5 (Python)
    char in[512], outs[3][512];
    snprintf(in, sizeof in, "%s", tmp_path("split"));
    const int threads[3] = {2, 1, 3};
    for (int r = 0; r < 3; r++) {
        snprintf(outs[r], sizeof outs[r], "%s/out_split%d", g_dir, r);
        gvm_prep_options o = small_opts(in, outs[r]);
        o.eval_fraction = 0.5;
        o.threads = threads[r];
        if (r > 0) o.shard_mb = 0.05;  // one source (76 KB of clip data) per shard
        gvm_prep_summary s;
        gvm_status st = gvm_prep_run(&o, &s);
        TEST_CHECK(st == GVM_OK && s.clips[0] == 5 && s.clips[1] == 3 && s.shards[0] == (r ? 5 : 1) &&
                       s.shards[1] == (r ? 3 : 1),
                   "split: run", "threads %d: %s; clips %lld/%lld shards %lld/%lld", threads[r], gvm_error_message(),
                   (long long)s.clips[0], (long long)s.clips[1], (long long)s.shards[0], (long long)s.shards[1]);
        gvm_prep_summary_free(&s);
    }
    out_clip *clips;
    int64_t n = read_output(outs[0], &clips);
    int seen[8] = {0};
    for (int64_t i = 0; i < n; i++) {
        const gvm_clip *c = &clips[i].c;
        int k = -1;
        sscanf(c->source_file, "s%d.mp4", &k);
        if (!TEST_CHECK(k >= 0 && k < 8, "split: source", "%s", c->source_file)) continue;
        seen[k]++;
        bool in_eval_shard = strncmp(clips[i].shard, "eval-", 5) == 0;
        TEST_CHECK(strcmp(c->split, is_eval[k] ? "eval" : "train") == 0 && in_eval_shard == is_eval[k] &&
                       gvm_prep_split_is_eval(c->source_file, 0.5) == is_eval[k],
                   "split: by source", "%s in %s with split %s", c->clip_id, clips[i].shard, c->split);
    }
    for (int k = 0; k < 8; k++) TEST_CHECK(seen[k] == 1, "split: one clip per source", "s%d: %d", k, seen[k]);
    free_output(clips, n);
    same_output("threads 1 and 3 give the same shards", outs[1], outs[2]);
    // A second run with other threads and the same shard size splits the same way.
    char out4[512];
    snprintf(out4, sizeof out4, "%s", tmp_path("out_split3"));
    gvm_prep_options o = small_opts(in, out4);
    o.eval_fraction = 0.5;
    o.threads = 1;
    gvm_prep_summary s;
    TEST_CHECK(gvm_prep_run(&o, &s) == GVM_OK, "split: second run", "%s", gvm_error_message());
    gvm_prep_summary_free(&s);
    same_output("split: the same on a second run", outs[0], out4);
}

// ---- explicit splits in a manifest ---------------------------------------------------------------------------------
// The videos of test_split_and_threads, listed with a split for some: an explicit one wins whatever the
// fraction, the others follow the hash (is_eval at 0.5 from Python, as there).
static void test_explicit_splits(void) {
    write_text(tmp_path("split/explicit.csv"), "split,style,video\neval,,s0.mp4\n,,s1.mp4\ntrain,,s2.mp4\n"
                                               ",x,s3.mp4\n  train  ,,s4.mp4\n\"eval\",,s6.mp4\n");
    write_text(tmp_path("split/explicit.jsonl"),
               "{\"video\": \"s0.mp4\", \"split\": \"eval\"}\n{\"video\": \"s1.mp4\", \"split\": null}\n"
               "{\"split\": \"train\", \"video\": \"s2.mp4\"}\n{\"video\": \"s3.mp4\", \"split\": \"\", \"style\": \"x\"}\n"
               "{\"video\": \"s4.mp4\", \"split\": \"train\"}\n{\"video\": \"s6.mp4\", \"split\": \"eval\"}\n");
    const int src[6] = {0, 1, 2, 3, 4, 6}, given[6] = {1, -1, 0, -1, 0, 1};  // -1: none, the hash decides
    const bool hash_eval[6] = {false, false, true, true, false, true};      // u < 0.5 (Python)
    gvm_prep_source_list l;
    gvm_status st = gvm_prep_sources_load(tmp_path("split/explicit.csv"), &l);
    if (TEST_CHECK(st == GVM_OK && l.n == 6, "explicit split: load", "%s", gvm_error_message())) {
        for (int i = 0; i < 6; i++)
            TEST_CHECK(l.items[i].split == given[i] && l.items[i].line == i + 2, "explicit split: parsed",
                       "%s: split %d line %lld, want %d", l.items[i].name, l.items[i].split,
                       (long long)l.items[i].line, given[i]);
        gvm_prep_sources_free(&l);
    }
    const double fractions[3] = {0.5, 0, 1};
    for (int r = 0; r < 4; r++) {
        double f = fractions[r < 3 ? r : 0];
        char in[512], out[512];
        snprintf(in, sizeof in, "%s", tmp_path(r < 3 ? "split/explicit.csv" : "split/explicit.jsonl"));
        snprintf(out, sizeof out, "%s/out_explicit%d", g_dir, r);
        gvm_prep_options o = small_opts(in, out);
        o.eval_fraction = f;
        gvm_prep_summary s;
        st = gvm_prep_run(&o, &s);
        TEST_CHECK(st == GVM_OK && s.sources_done == 6, "explicit split: run", "%s: %s", in, gvm_error_message());
        gvm_prep_summary_free(&s);
        out_clip *clips;
        int64_t n = read_output(out, &clips);
        TEST_CHECK(n == 6, "explicit split: one clip per source", "%lld clips", (long long)n);
        for (int64_t i = 0; i < n; i++) {
            int k = -1, at = -1;
            sscanf(clips[i].c.source_file, "s%d.mp4", &k);
            for (int j = 0; j < 6; j++) at = src[j] == k ? j : at;
            if (!TEST_CHECK(at >= 0, "explicit split: source", "%s", clips[i].c.source_file)) continue;
            bool want = given[at] >= 0 ? given[at] == 1 : f == 1 || (f == 0.5 && hash_eval[at]);
            TEST_CHECK(strcmp(clips[i].c.split, want ? "eval" : "train") == 0 &&
                           (strncmp(clips[i].shard, "eval-", 5) == 0) == want,
                       "explicit split: honoured", "--eval-fraction %g: %s in %s (%s), want %s", f,
                       clips[i].c.source_file, clips[i].shard, clips[i].c.split, want ? "eval" : "train");
        }
        free_output(clips, n);
    }
    same_output("explicit split: CSV and JSON lines agree", tmp_path("out_explicit0"), tmp_path("out_explicit3"));
}

// ---- the gvm program: bad inputs, usage, exit codes -----------------------------------------------------------------
static void test_cli(void) {
    if (!TEST_CHECK(g_gvm[0] && access(g_gvm, X_OK) == 0, "gvm program", "not found at '%s' (set GVM_BIN)", g_gvm))
        return;
    char *out, *err;
    int rc = run_gvm(&out, &err, (const char *[]){"--help", NULL});
    TEST_CHECK(rc == 0 && contains(out, "usage: gvm <command>") && contains(out, "prep"), "gvm --help", "rc %d: %s",
               rc, out);
    free(out), free(err);
    rc = run_gvm(&out, &err, (const char *[]){"--version", NULL});
    TEST_CHECK(rc == 0 && strncmp(out, "gvm ", 4) == 0, "gvm --version", "rc %d: %s", rc, out);
    free(out), free(err);
    rc = run_gvm(&out, &err, (const char *[]){"prep", "--help", NULL});
    TEST_CHECK(rc == 0 && contains(out, "--eval-fraction") && contains(out, "--shard-mb"), "gvm prep --help", "rc %d",
               rc);
    free(out), free(err);
    rc = run_gvm(&out, &err, (const char *[]){"frobnicate", NULL});
    TEST_CHECK(rc == 2 && contains(err, "unknown command 'frobnicate'") && contains(err, "prep"), "unknown command",
               "rc %d: %s", rc, err);
    free(out), free(err);
    rc = run_gvm(&out, &err, (const char *[]){"prep", "-i", "x", "-o", "y", "--fps", "fast", NULL});
    TEST_CHECK(rc == 2 && contains(err, "gvm: error: --fps 'fast' is not a number"), "bad option value", "rc %d: %s",
               rc, err);
    free(out), free(err);
    rc = run_gvm(&out, &err, (const char *[]){"prep", "-i", "x", "--frames", "3", NULL});
    TEST_CHECK(rc == 2 && contains(err, "unknown option '--frames'"), "unknown option", "rc %d: %s", rc, err);
    free(out), free(err);

    // Bad inputs among a good one: reported with the reason, skipped, exit status 3.
    if (!TEST_CHECK(make_video("bad/good.mp4", 2.2, 440) && make_video("bad/noaudio.mp4", 3, 0) &&
                        make_tone("bad/tone.m4a", 3, 440),
                    "bad inputs: make media", "ffmpeg failed"))
        return;
    sh("mv '%s' '%s' && head -c 20000 /dev/urandom > '%s' && : > '%s'", tmp_path("bad/tone.m4a"),
       tmp_path("bad/audioonly.mp4"), tmp_path("bad/junk.mkv"), tmp_path("bad/empty.mov"));
    char in[512], outd[512];
    snprintf(in, sizeof in, "%s", tmp_path("bad"));
    snprintf(outd, sizeof outd, "%s", tmp_path("out_bad"));
    const char *args[] = {"prep", "-i", in, "-o", outd, SMALL, "--eval-fraction", "0", "--progress", "lines", NULL};
    rc = run_gvm(&out, &err, args);
    TEST_CHECK(rc == 3 && contains(out, "1 written, 4 failed") && contains(out, "audioonly.mp4: ") &&
                   contains(out, "no video stream") && contains(out, "empty.mov: ") && contains(out, "zero length") &&
                   contains(out, "junk.mkv: ") && contains(out, "not a media file") && contains(out, "noaudio.mp4: ") &&
                   contains(out, "no audio stream") && contains(err, "skipped junk.mkv"),
               "bad inputs: reported, exit 3", "rc %d\nstdout: %s\nstderr: %s", rc, out, err);
    free(out), free(err);
    out_clip *clips;
    int64_t n = read_output(outd, &clips);
    TEST_CHECK(n == 1 && strcmp(clips[0].c.source_file, "good.mp4") == 0, "bad inputs: the good one written", "%lld",
               (long long)n);
    free_output(clips, n);

    // Other options than the run that made the folder: a usage error naming the option.
    const char *other[] = {"prep", "-i", in, "-o", outd, SMALL, "--eval-fraction", "0.2", "-q", NULL};
    rc = run_gvm(&out, &err, other);
    TEST_CHECK(rc == 2 && contains(err, "--eval-fraction was 0 in the run that made it, and is 0.2 now") &&
                   contains(err, "--force"),
               "options differ", "rc %d: %s", rc, err);
    free(out), free(err);
    // The same options again: the good source is done, the bad ones are tried again (and fail again).
    args[15] = "-q", args[16] = NULL;  // in place of --progress lines
    rc = run_gvm(&out, &err, args);
    TEST_CHECK(rc == 3 && contains(out, "0 written, 4 failed, 0 too short for a clip, 1 already in shards"),
               "re-run retries failed sources", "rc %d: %s", rc, out);
    free(out), free(err);
    // --force starts over with the new options.
    const char *forced[] = {"prep", "-i", in, "-o", outd, SMALL, "--eval-fraction", "0.2", "-q", "--force", NULL};
    rc = run_gvm(&out, &err, forced);
    TEST_CHECK(rc == 3 && contains(out, "1 written, 4 failed"), "--force", "rc %d: %s %s", rc, out, err);
    free(out), free(err);
}

// ---- resuming ----------------------------------------------------------------------------------------------------------
static int count_records(const char *journal, const char *key) {
    char *text = slurp(journal);
    int n = count_substr(text, key);
    free(text);
    return n;
}

static bool has_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) found |= strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return found;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_resume(void) {
    if (!g_gvm[0] || access(g_gvm, X_OK) != 0) return;  // reported by test_cli
    bool made = true;
    // Explicit splits mixed with the hash rule (--eval-fraction 0: train): r0 and r4 in eval, the rest train.
    const char *split_of[6] = {"eval", "", "train", "", "eval", ""};
    char manifest[4096] = "video,split\n";
    for (int i = 0; i < 6 && made; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "res/media/r%d.mp4", i);
        made = make_video(rel, 2.2, 300 + 70 * i);
        snprintf(manifest + strlen(manifest), sizeof manifest - strlen(manifest), "media/r%d.mp4,%s\n", i,
                 split_of[i]);
    }
    if (!TEST_CHECK(made, "resume: make media", "ffmpeg failed")) return;
    write_text(tmp_path("res/list.csv"), manifest);
    char fifo[512], real[512], list[512], outk[512], outr[512], journal[600], of[600], ef[600];
    snprintf(fifo, sizeof fifo, "%s", tmp_path("res/media/r2.mp4"));
    snprintf(real, sizeof real, "%s", tmp_path("res/r2.real"));
    snprintf(list, sizeof list, "%s", tmp_path("res/list.csv"));
    snprintf(outk, sizeof outk, "%s", tmp_path("out_killed"));
    snprintf(outr, sizeof outr, "%s", tmp_path("out_reference"));
    snprintf(journal, sizeof journal, "%s/%s", outk, GVM_PREP_STATE_FILE);
    snprintf(of, sizeof of, "%s", tmp_path("res.stdout"));
    snprintf(ef, sizeof ef, "%s", tmp_path("res.stderr"));
    // r2 is a FIFO: the run commits r0 (eval) and r1 (train), one shard each, and then waits for it, at a known
    // point.
    GVM_CHECK(rename(fifo, real) == 0 && mkfifo(fifo, 0644) == 0, "cannot make the FIFO");
    const char *args[] = {"prep", "-i", list, "-o", outk, SMALL, "--eval-fraction", "0", "--shard-mb", "0.05",
                          "--threads", "2", "-q", NULL};
    pid_t pid = spawn_gvm(of, ef, args);
    int waited = 0;
    while (count_records(journal, "\"shard\"") < 2 && waited < 120000) sleep_ms(20), waited += 20;
    bool committed = count_records(journal, "\"shard\"") == 2;
    kill(pid, SIGKILL);
    int rc = wait_status(pid);
    char *jtext = slurp(journal);
    TEST_CHECK(committed && rc == 128 + SIGKILL, "resume: killed after two commits", "rc %d, journal:\n%s", rc, jtext);
    free(jtext);
    char path[700];
    snprintf(path, sizeof path, "%s/eval-00000.h5", outk);
    bool first = file_exists(path);
    snprintf(path, sizeof path, "%s/train-00000.h5", outk);
    bool second = file_exists(path);
    snprintf(path, sizeof path, "%s/train-00001.h5", outk);
    TEST_CHECK(first && second && !file_exists(path), "resume: committed shards on disk",
               "eval-00000 %d, train-00000 %d, train-00001 %d", first, second, file_exists(path));
    // Put the real video in place, plant stale files and a torn journal record, and re-run.
    GVM_CHECK(unlink(fifo) == 0 && rename(real, fifo) == 0, "cannot restore r2");
    snprintf(path, sizeof path, "%s/eval-00007.h5.tmp", outk);  // a temporary file of a killed run
    write_text(path, "stale");
    snprintf(path, sizeof path, "%s/train-00009.h5", outk);  // renamed, but the journal never heard of it
    write_text(path, "stale");
    FILE *j = fopen(journal, "ab");
    fputs("{\"shard\":\"train-0000", j);
    fclose(j);
    char *out, *err;
    const char *again[] = {"prep", "-i", list, "-o", outk, SMALL, "--eval-fraction", "0", "--shard-mb", "0.05",
                           "--threads", "3", "--progress", "lines", NULL};
    rc = run_gvm(&out, &err, again);
    TEST_CHECK(rc == 0 && contains(err, "resuming") && contains(out, "4 written") &&
                   contains(out, "2 already in shards") && !has_tmp_files(outk),
               "resume: re-run", "rc %d\nstdout: %s\nstderr: %s", rc, out, err);
    free(out), free(err);
    const char *ref[] = {"prep", "-i", list, "-o", outr, SMALL, "--eval-fraction", "0", "--shard-mb", "0.05", "-q",
                         NULL};
    rc = run_gvm(&out, &err, ref);
    TEST_CHECK(rc == 0, "resume: uninterrupted run", "rc %d: %s", rc, err);
    free(out), free(err);
    same_output("resume: killed + resumed = uninterrupted", outk, outr);
    out_clip *clips;
    int64_t n = read_output(outk, &clips);
    for (int64_t i = 0; i < n; i++) {
        int k = -1;
        sscanf(clips[i].c.source_file, "media/r%d.mp4", &k);
        const char *want = k == 0 || k == 4 ? "eval" : "train";
        TEST_CHECK(k >= 0 && k < 6 && strcmp(clips[i].c.split, want) == 0 &&
                       strncmp(clips[i].shard, want, strlen(want)) == 0,
                   "resume: explicit splits", "%s in %s (%s), want %s", clips[i].c.source_file, clips[i].shard,
                   clips[i].c.split, want);
    }
    TEST_CHECK(n == 6, "resume: clips", "%lld", (long long)n);
    free_output(clips, n);
    jtext = slurp(journal);
    TEST_CHECK(count_substr(jtext, "\"shard\"") == 6 && count_substr(jtext, "\"complete\"") == 1 &&
                   !contains(jtext, "\"train-0000\n"),
               "resume: journal", "%s", jtext);
    free(jtext);
    rc = run_gvm(&out, &err, again);
    TEST_CHECK(rc == 0 && contains(out, "nothing to do"), "resume: finished run is a no-op", "rc %d: %s", rc, out);
    free(out), free(err);
    // A split given explicitly that equals the hash's changes nothing; r0 moved to train (and r4 to the hash's
    // train) would mix the folder's splits: refused, naming the first such source and its line, exit 2.
    write_text(list, "video,split\nmedia/r0.mp4,eval\nmedia/r1.mp4,train\nmedia/r2.mp4\nmedia/r3.mp4,train\n"
                     "media/r4.mp4,eval\nmedia/r5.mp4,\n");
    rc = run_gvm(&out, &err, again);
    TEST_CHECK(rc == 0 && contains(out, "nothing to do"), "resume: same split given explicitly", "rc %d: %s %s", rc,
               out, err);
    free(out), free(err);
    write_text(list, "video,split\nmedia/r0.mp4,train\nmedia/r1.mp4\nmedia/r2.mp4,train\nmedia/r3.mp4\n"
                     "media/r4.mp4\nmedia/r5.mp4\n");
    rc = run_gvm(&out, &err, again);
    TEST_CHECK(rc == 2 && contains(err, "list.csv:2: 'media/r0.mp4' is now in train (as the manifest says)") &&
                   contains(err, "holds its clips in eval shards") && contains(err, "and 1 more sources changed") &&
                   contains(err, "--force"),
               "resume: changed split refused", "rc %d: %s", rc, err);
    free(out), free(err);
    const char *forced[] = {"prep", "-i", list, "-o", outk, SMALL, "--eval-fraction", "0", "--shard-mb", "0.05",
                            "-q", "--force", NULL};
    rc = run_gvm(&out, &err, forced);
    snprintf(path, sizeof path, "%s/eval-00000.h5", outk);
    TEST_CHECK(rc == 0 && contains(out, "6 written") && !file_exists(path), "resume: changed split with --force",
               "rc %d: %s %s", rc, out, err);
    free(out), free(err);
    write_text(list, manifest);

    // SIGTERM with a shard in progress: it is discarded (no temporary file), the exit status is 143 and the
    // message says how to resume.
    char outt[512], tmpfile_path[700];
    snprintf(outt, sizeof outt, "%s", tmp_path("out_term"));
    snprintf(tmpfile_path, sizeof tmpfile_path, "%s/train-00000.h5.tmp", outt);
    GVM_CHECK(rename(fifo, real) == 0 && mkfifo(fifo, 0644) == 0, "cannot make the FIFO");
    const char *term[] = {"prep", "-i", list, "-o", outt, SMALL, "--eval-fraction", "0", "--progress", "lines", NULL};
    pid = spawn_gvm(of, ef, term);
    waited = 0;
    while (!file_exists(tmpfile_path) && waited < 120000) sleep_ms(20), waited += 20;
    bool in_progress = file_exists(tmpfile_path);
    kill(pid, SIGTERM);
    // Let the decoder waiting on the FIFO see an end of file, so the run can finish.
    for (waited = 0; waited < 120000; waited += 20) {
        int fd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            close(fd);
            break;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pid = -1;
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        sleep_ms(20);
    }
    if (pid > 0) rc = wait_status(pid);
    err = slurp(ef);
    snprintf(path, sizeof path, "%s/train-00000.h5", outt);
    TEST_CHECK(in_progress && rc == 143 && !has_tmp_files(outt) && !file_exists(path) &&
                   count_records(tmp_path("out_term/" GVM_PREP_STATE_FILE), "\"shard\"") == 0 &&
                   contains(err, "To resume, run the same command again") && contains(err, "gvm prep -i"),
               "SIGTERM: shard in progress discarded", "in progress %d, rc %d, stderr: %s", in_progress, rc, err);
    free(err);
    GVM_CHECK(unlink(fifo) == 0 && rename(real, fifo) == 0, "cannot restore r2");
}

// ---- the progress display ------------------------------------------------------------------------------------------------
static void test_progress(void) {
    struct {
        double s;
        const char *want;
    } d[] = {{0, "0s"}, {59.9, "59s"}, {61, "1m01s"}, {3725, "1h02m"}, {90061, "1d01h"}, {-1, "?"}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        char buf[32];
        gvm_progress_format_duration(d[i].s, buf, sizeof buf);
        TEST_CHECK(strcmp(buf, d[i].want) == 0, "progress: durations", "%g -> %s, want %s", d[i].s, buf, d[i].want);
    }
    FILE *f = tmpfile();
    gvm_progress *p = gvm_progress_start(f, GVM_PROGRESS_AUTO, "prep", 200, 5);
    TEST_CHECK(gvm_progress_get_mode(p) == GVM_PROGRESS_LINES, "progress: a file gets lines", "mode %d",
               (int)gvm_progress_get_mode(p));
    gvm_progress_update(p, 100, "3/6 sources", true);
    gvm_progress_update(p, 120, "4/6 sources", false);  // within the interval: not drawn
    gvm_progress_end(p);
    rewind(f);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    TEST_CHECK(contains(text, "prep:  50%  3/6 sources") && !contains(text, "\r") && count_substr(text, "\n") == 2 &&
                   contains(text, "prep:  60%  4/6 sources"),
               "progress: lines", "%s", text);
    f = tmpfile();
    p = gvm_progress_start(f, GVM_PROGRESS_BAR, "prep", 100, 5);
    gvm_progress_update(p, 25, "1/4", true);
    gvm_progress_print(p, "a warning");
    gvm_progress_update(p, 100, "4/4", true);
    gvm_progress_end(p);
    rewind(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    TEST_CHECK(contains(text, "\r[######..................]  25%  1/4") && contains(text, "\r\033[Ka warning\n") &&
                   contains(text, "\r[########################] 100%  4/4") && text[n - 1] == '\n',
               "progress: bar", "%s", text);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    media_fixture_init("gvm_prep");
    const char *bin = getenv("GVM_BIN");
    if (bin && bin[0]) {
        snprintf(g_gvm, sizeof g_gvm, "%s", bin);
    } else {
        char self[900];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        if (k > 0) {
            self[k] = '\0';
            snprintf(g_gvm, sizeof g_gvm, "%s/gvm", dirname(self));
        }
    }
    test_progress();
    test_folder();
    test_manifests();
    test_split_and_threads();
    test_explicit_splits();
    test_cli();
    test_resume();
    return media_fixture_finish(test_finish());
}
