// test_data_media_errors.c: the bad-input corpus of tests/data/make_bad_media.sh (made at test time) through
// every media call (probe, video frames from 0 and from 1.5 s, audio from 0 and from 1.5 s): each file gives
// its documented status, with a message naming the file and saying what is wrong (docs/media.md), and never
// crashes. Each file runs in a forked child, so a crash or a sanitizer report (leaks included: the child
// leaves through exit) fails that case alone; then all of them run in one process, followed by a good file
// that must still decode.
#include <sys/wait.h>

#include "tests/media_fixture.h"

#include "data/media.h"
#include "tests/test_util.h"

// ---- the bad corpus ------------------------------------------------------------------------------------------------------
// What each call must give for one file: a status and a phrase of its message (GVM_OK: any message).
typedef struct bad_case {
    const char *file;
    gvm_status probe, video, audio;
    const char *phrase;    // in every error message (with the file's name)
    int64_t min_frames, max_frames;  // of a 3 s read at 1 fps, when video is GVM_OK
} bad_case;

static bool expect(bool ok, const char *file, const char *what, gvm_status s) {
    if (!ok) printf("FAIL bad corpus %s: %s: status %d (%s): %s\n", file, what, s, gvm_status_name(s), gvm_error_message());
    return ok;
}

// The status `want`, and for an error a message naming the file and saying the phrase: the case's, or for
// a missing stream which stream.
static bool expect_status(const bad_case *c, const char *what, gvm_status got, gvm_status want) {
    const char *msg = gvm_error_message();
    bool ok = got == want;
    const char *phrase = want != GVM_ERR_NOT_FOUND ? c->phrase
                         : contains(what, "video") ? "no video stream" : "no audio stream";
    if (ok && got != GVM_OK) ok = contains(msg, c->file) && (!phrase || contains(msg, phrase));
    return expect(ok, c->file, what, got);
}

// Every call on one file, in this process. True when all give what the case says.
static bool run_bad_case(const bad_case *c) {
    const char *path = tmp_path(c->file);
    bool ok = true;
    gvm_media_info info;
    ok &= expect_status(c, "probe", gvm_media_probe(path, &info), c->probe);
    uint8_t *fr = NULL;
    int64_t n = -1;
    gvm_status s = gvm_video_read_frames(path, 1, 32, 0, 3, &fr, &n);
    ok &= expect_status(c, "video", s, c->video);
    if (s == GVM_OK) ok &= expect(n >= c->min_frames && n <= c->max_frames, c->file, "video frame count", s);
    else ok &= expect(fr == NULL && n == 0, c->file, "video output on error", s);
    free(fr);
    float *x = NULL;
    s = gvm_audio_read(path, 32000, 0, 0, &x, &n);
    ok &= expect_status(c, "audio", s, c->audio);
    if (s != GVM_OK) ok &= expect(x == NULL && n == 0, c->file, "audio output on error", s);
    free(x);
    // Starting in the middle of a bad file (the seeking path).
    s = gvm_video_read_frames(path, 1, 32, 1.5, 1, &fr, &n);
    if (c->video != GVM_OK) ok &= expect_status(c, "video from 1.5 s", s, c->video);
    free(fr);
    s = gvm_audio_read(path, 32000, 1.5, 1, &x, &n);
    if (c->audio != GVM_OK) ok &= expect_status(c, "audio from 1.5 s", s, c->audio);
    free(x);
    return ok;
}

static void test_bad_corpus(const char *script) {
    if (!TEST_CHECK(sh("sh '%s' '%s'", script, tmp_path("bad")), "bad corpus script", "%s failed", script)) return;
    const gvm_status OK = GVM_OK, FMT = GVM_ERR_FORMAT, NF = GVM_ERR_NOT_FOUND, IO = GVM_ERR_IO;
    const bad_case cases[] = {
        {"bad/truncated.mp4", FMT, FMT, FMT, "not a media file FFmpeg can open", 0, 0},
        {"bad/garbage.mp4", FMT, FMT, FMT, "not a media file FFmpeg can open", 0, 0},
        {"bad/empty.mp4", FMT, FMT, FMT, "zero length", 0, 0},
        {"bad/video_only.mp4", OK, OK, NF, "no audio stream", 3, 3},
        {"bad/audio_only.m4a", OK, NF, OK, "no video stream", 0, 0},
        {"bad/one_frame.mp4", OK, OK, NF, NULL, 1, 1},
        {"bad/corrupt_stream.mp4", OK, FMT, NF, "cannot decode", 0, 0},
        {"bad/cover_art.mp3", OK, NF, OK, "no video stream", 0, 0},
        {"bad/truncated_faststart.mp4", OK, OK, OK, NULL, 1, 3},
        {"bad/no_such_file.mp4", IO, IO, IO, "cannot open", 0, 0},
        {"bad", IO, IO, IO, "folder", 0, 0},
        {"bad/good.mp4", OK, OK, OK, NULL, 3, 3},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < nc; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) exit(run_bad_case(&cases[i]) ? 0 : 1);  // exit, not _exit: LeakSanitizer checks at exit
        int st = 0;
        waitpid(pid, &st, 0);
        TEST_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bad corpus", "%s: %s %d", cases[i].file,
                   WIFEXITED(st) ? "exit status" : "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    // All of them in one process, then a good file: nothing bad lingers.
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        bool ok = true;
        for (int i = 0; i < nc; i++) ok &= run_bad_case(&cases[i]);
        uint8_t *fr = NULL;
        int64_t n = 0;
        gvm_status s = gvm_video_read_frames(tmp_path("bad/good.mp4"), 2, 48, 0.5, 2, &fr, &n);
        ok &= expect(s == GVM_OK && n == 4, "bad/good.mp4", "video after the bad files", s);
        free(fr);
        exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    TEST_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bad corpus in one process", "child failed");
}


int main(int argc, char **argv) {
    test_init(argc, argv);
    media_fixture_init("gvm_media_errors");
    // The corpus script sits in the source tree: the golden folder is <source>/tests/golden/data.
    char script[1024];
    snprintf(script, sizeof script, "%s/../../data/make_bad_media.sh", test_golden_dir());
    test_bad_corpus(script);
    return media_fixture_finish(test_finish());
}
