// test_data_dataset.c: writing and reading the HDF5 dataset shard format v1 (data/dataset*.c,
// docs/dataset-format.md); broken files are test_data_dataset_errors.c's job.
//
//  * write clips of different lengths, with and without codes and features, UTF-8 tags and ids with '/',
//    then read them back bit-exact; clip count, index entries, metadata, partial reads, part masks, and
//    no HDF5 object left open;
//  * in-place updates: add, overwrite (the file must not grow) and replace codes and features, remove
//    them; frames and audio stay as they were; refused updates; an update while a reader is open;
//  * commit=false leaves no file and no temporary file (and an older file at the path untouched);
//    invalid clips are refused and leave the writer usable; a full disk gives an error and leaves nothing;
//  * several threads reading at once (shared and own handles) get exact data.
//
// `test_data_dataset --write-sample PATH` writes the shard that tests/check_dataset_h5py.py reads with
// h5py (keep write_sample() and that script in step).
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "tests/dataset_fixture.h"

// ---- round trip -----------------------------------------------------------------------------------------------------
static void test_round_trip(const char *path) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    gvm_status st = write_shard(path, N_CLIPS);
    TEST_CHECK(st == GVM_OK, "write", "%s", gvm_error_message());
    TEST_CHECK(exists(path) && !exists(tmp), "write: committed", "file %d, temporary file %d", exists(path),
               exists(tmp));

    gvm_shard *s;
    st = gvm_shard_open(path, &s);
    if (!TEST_CHECK(st == GVM_OK, "open", "%s", gvm_error_message())) return;
    const gvm_shard_info *info = gvm_shard_get_info(s);
    TEST_CHECK(gvm_shard_clip_count(s) == N_CLIPS, "count", "%lld", (long long)gvm_shard_clip_count(s));
    TEST_CHECK(info->frame_height == H && info->frame_width == W && info->fps == 1.0 && info->sample_rate == 32000 &&
                   str_eq(info->created_by, "gvm test_data_dataset"),
               "file attributes", "%dx%d fps %g rate %d by '%s'", info->frame_height, info->frame_width, info->fps,
               info->sample_rate, info->created_by);
    TEST_CHECK(str_eq(gvm_shard_path(s), path), "path", "%s", gvm_shard_path(s));
    for (int i = 0; i < N_CLIPS; i++) {
        const gvm_clip *want = &g_clips[i].c;
        const gvm_clip_entry *e = gvm_shard_entry(s, i);
        TEST_CHECK(e && str_eq(e->clip_id, want->clip_id) && str_eq(e->split, want->split ? want->split : "train") &&
                       str_eq(e->style, want->style ? want->style : "") && e->num_frames == want->num_frames &&
                       e->num_samples == want->num_samples,
                   "index entry", "clip %d", i);
        TEST_CHECK(gvm_shard_find(s, want->clip_id) == i, "find", "%s", want->clip_id);
        gvm_clip got;
        st = gvm_shard_read_clip(s, i, &got);
        if (TEST_CHECK(st == GVM_OK, "read clip", "%d: %s", i, gvm_error_message())) {
            const char *d = clip_diff(&got, want, GVM_CLIP_ALL);
            TEST_CHECK(!d[0], "read clip: bit-exact", "clip %d: %s differs", i, d);
        }
        gvm_clip_free(&got);
        unsigned present = 0;
        st = gvm_shard_clip_parts(s, i, &present);
        unsigned want_parts = GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | (want->codes.data ? GVM_CLIP_CODES : 0u) |
                              (want->features.data ? GVM_CLIP_FEATURES : 0u);
        TEST_CHECK(st == GVM_OK && present == want_parts, "clip parts", "clip %d: %#x, want %#x", i, present,
                   want_parts);
    }
    TEST_CHECK(gvm_shard_entry(s, N_CLIPS) == NULL && gvm_shard_entry(s, -1) == NULL, "entry out of range", "not NULL");
    TEST_CHECK(gvm_shard_find(s, "no such clip") == -1, "find: absent", "found");

    // A trainer with cached features reads only codes and features: no frames or audio come back.
    gvm_clip got;
    st = gvm_shard_read_clip_parts(s, 1, GVM_CLIP_CODES | GVM_CLIP_FEATURES, &got);
    if (TEST_CHECK(st == GVM_OK, "partial read", "%s", gvm_error_message())) {
        const char *d = clip_diff(&got, &g_clips[1].c, GVM_CLIP_CODES | GVM_CLIP_FEATURES);
        TEST_CHECK(!d[0], "partial read: parts", "%s", d);
    }
    gvm_clip_free(&got);
    st = gvm_shard_read_clip_parts(s, 4, GVM_CLIP_AUDIO, &got);
    TEST_CHECK(st == GVM_OK && !clip_diff(&got, &g_clips[4].c, GVM_CLIP_AUDIO)[0], "partial read: audio only", "%s",
               gvm_error_message());
    gvm_clip_free(&got);

    st = gvm_shard_read_clip(s, N_CLIPS, &got);
    TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), path) && got.frames == NULL,
               "read: index out of range", "%s: %s", gvm_status_name(st), gvm_error_message());
    st = gvm_shard_read_clip(s, -1, &got);
    TEST_CHECK(st == GVM_ERR_INVALID, "read: negative index", "%s", gvm_status_name(st));
    TEST_CHECK(open_h5_objects() == 0, "read: no HDF5 objects left open", "%zd", open_h5_objects());
    gvm_shard_close(s);
    gvm_shard_close(NULL);
}

// ---- in-place updates -------------------------------------------------------------------------------------------
static void test_update(const char *path) {
    gvm_status st = write_shard(path, N_CLIPS);
    if (!TEST_CHECK(st == GVM_OK, "update: write", "%s", gvm_error_message())) return;
    gvm_clip want[N_CLIPS];
    const gvm_clip *wp[N_CLIPS];
    for (int i = 0; i < N_CLIPS; i++) want[i] = g_clips[i].c, wp[i] = &want[i];

    // gvm encode: add codes to a clip without them, in one call.
    owned_clip extra;
    make_clip(&extra, 77, "unused", NULL, 3, 10, 4, 20, 2, 3);
    extra.c.codes.codec = "encodec_32khz_v2";
    st = gvm_shard_write_codes(path, 0, &extra.c.codes);
    TEST_CHECK(st == GVM_OK, "update: add codes", "%s", gvm_error_message());
    want[0].codes = extra.c.codes;
    check_shard(path, wp, N_CLIPS, "update: after adding codes");

    // Overwrite codes of the same shape many times: in place, so the file does not grow.
    owned_clip same;
    make_clip(&same, 78, "unused", NULL, 1, 1, 4, 37, 0, 0);
    long long before = file_size(path);
    for (int rep = 0; rep < 6; rep++) {
        same.codes[5] = (int16_t)rep;
        st = gvm_shard_write_codes(path, 1, &same.c.codes);
        TEST_CHECK(st == GVM_OK, "update: overwrite codes", "%s", gvm_error_message());
    }
    TEST_CHECK(file_size(path) == before, "update: overwrite in place", "size %lld -> %lld", before, file_size(path));
    want[1].codes = same.c.codes;

    // Several updates through one handle: new codes of another shape, features added, replaced, removed.
    gvm_shard_updater *u;
    st = gvm_shard_update_open(path, &u);
    if (TEST_CHECK(st == GVM_OK, "update: open", "%s", gvm_error_message())) {
        owned_clip c2;
        make_clip(&c2, 79, "unused", NULL, 1, 1, 8, 3, 0, 0);
        st = gvm_shard_update_codes(u, 2, &c2.c.codes);
        TEST_CHECK(st == GVM_OK, "update: codes of another shape", "%s", gvm_error_message());
        want[2].codes = c2.c.codes;
        st = gvm_shard_update_features(u, 0, &extra.c.features);  // extra has T_v = 3, like clip 0
        TEST_CHECK(st == GVM_OK, "update: add features", "%s", gvm_error_message());
        want[0].features = extra.c.features;
        st = gvm_shard_update_features(u, 3, NULL);
        TEST_CHECK(st == GVM_OK, "update: remove features", "%s", gvm_error_message());
        want[3].features = (gvm_features){0};
        st = gvm_shard_update_codes(u, 4, NULL);
        TEST_CHECK(st == GVM_OK, "update: remove codes", "%s", gvm_error_message());
        want[4].codes = (gvm_codes){0};
        // Refused, with the writer still usable: wrong row count, out of range, no codec name.
        st = gvm_shard_update_features(u, 1, &extra.c.features);  // clip 1 has 5 frames, features 3 rows
        TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), "clip 1 (clip-001)"),
                   "update: features of the wrong length", "%s: %s", gvm_status_name(st), gvm_error_message());
        st = gvm_shard_update_codes(u, N_CLIPS, &c2.c.codes);
        TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), path), "update: index out of range", "%s: %s",
                   gvm_status_name(st), gvm_error_message());
        gvm_codes nameless = c2.c.codes;
        nameless.codec = NULL;
        st = gvm_shard_update_codes(u, 2, &nameless);
        TEST_CHECK(st == GVM_ERR_INVALID, "update: codes without a codec name", "%s", gvm_status_name(st));
        TEST_CHECK(open_h5_objects() == 0, "update: no HDF5 objects left open", "%zd", open_h5_objects());
        st = gvm_shard_update_close(u);
        TEST_CHECK(st == GVM_OK, "update: close", "%s", gvm_error_message());
        check_shard(path, wp, N_CLIPS, "update: after several updates");
        free_clip(&c2);
    }
    gvm_shard_update_close(NULL);

    // A reader holds the file: HDF5 will not also open it for writing in this process; an error, no crash.
    gvm_shard *s;
    if (gvm_shard_open(path, &s) == GVM_OK) {
        st = gvm_shard_write_codes(path, 0, &same.c.codes);
        TEST_CHECK(st != GVM_OK && contains(gvm_error_message(), path), "update: while open for reading", "%s: %s",
                   gvm_status_name(st), gvm_error_message());
        if (getenv("GVM_TEST_VERBOSE")) printf("  update while open: %s\n", gvm_error_message());
        gvm_shard_close(s);
    }
    st = gvm_shard_write_codes(tmp_path("no-such-shard.h5"), 0, &same.c.codes);
    TEST_CHECK(st == GVM_ERR_NOT_FOUND, "update: missing file", "%s", gvm_status_name(st));
    free_clip(&extra);
    free_clip(&same);
}

// ---- abandoned writes and refused clips -----------------------------------------------------------------------------
static void test_abandon_and_refuse(void) {
    const char *path = tmp_path("abandoned.h5"), *tmp = tmp_path("abandoned.h5.tmp");
    gvm_shard_writer *w;
    gvm_status st = gvm_shard_create(path, &k_info, &w);
    if (TEST_CHECK(st == GVM_OK, "abandon: create", "%s", gvm_error_message())) {
        TEST_CHECK(exists(tmp) && !exists(path), "abandon: writes to the temporary name", "tmp %d path %d", exists(tmp),
                   exists(path));
        gvm_shard_add_clip(w, &g_clips[0].c);
        gvm_shard_add_clip(w, &g_clips[1].c);
        st = gvm_shard_writer_close(w, false);
        TEST_CHECK(st == GVM_OK && !exists(path) && !exists(tmp), "abandon: nothing left", "%s; path %d tmp %d",
                   gvm_status_name(st), exists(path), exists(tmp));
    }
    // An older file at the path survives an abandoned rewrite.
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    if (gvm_shard_create(path, &k_info, &w) == GVM_OK) {
        gvm_shard_add_clip(w, &g_clips[0].c);
        gvm_shard_writer_close(w, false);
    }
    TEST_CHECK(file_size(path) == 3 && !exists(tmp), "abandon: older file kept", "size %lld", file_size(path));
    gvm_shard_writer_close(NULL, true);

    // Refused clips: each names the clip, and the writer carries on.
    const char *rpath = tmp_path("refused.h5");
    st = gvm_shard_create(rpath, &k_info, &w);
    if (!TEST_CHECK(st == GVM_OK, "refuse: create", "%s", gvm_error_message())) return;
    gvm_shard_add_clip(w, &g_clips[0].c);
    struct { const char *name; gvm_clip c; const char *msg; } bad[16];
    int nb = 0;
    gvm_clip base = g_clips[1].c;
    base.clip_id = "bad-clip";
    bad[nb].name = "frame size"; bad[nb].c = base; bad[nb].c.width = W + 1; bad[nb++].msg = "frame size";
    bad[nb].name = "fps"; bad[nb].c = base; bad[nb].c.fps = 25.0; bad[nb++].msg = "fps";
    bad[nb].name = "sample rate"; bad[nb].c = base; bad[nb].c.sample_rate = 44100; bad[nb++].msg = "sample rate";
    bad[nb].name = "duplicate id"; bad[nb].c = base; bad[nb].c.clip_id = "clip-000"; bad[nb++].msg = "already used";
    bad[nb].name = "empty id"; bad[nb].c = base; bad[nb].c.clip_id = ""; bad[nb++].msg = "without an id";
    bad[nb].name = "bad UTF-8"; bad[nb].c = base; bad[nb].c.style = "caf\xe9"; bad[nb++].msg = "UTF-8";
    bad[nb].name = "overlong UTF-8"; bad[nb].c = base; bad[nb].c.split = "\xc0\xaf"; bad[nb++].msg = "UTF-8";
    bad[nb].name = "surrogate"; bad[nb].c = base; bad[nb].c.source_file = "a\xed\xa0\x80"; bad[nb++].msg = "UTF-8";
    bad[nb].name = "beyond U+10FFFF"; bad[nb].c = base; bad[nb].c.clip_id = "\xf4\x90\x80\x80"; bad[nb++].msg = "UTF-8";
    bad[nb].name = "cut UTF-8"; bad[nb].c = base; bad[nb].c.style = "\xe5\x8f"; bad[nb++].msg = "UTF-8";
    bad[nb].name = "no frames"; bad[nb].c = base; bad[nb].c.num_frames = 0; bad[nb++].msg = "frames";
    bad[nb].name = "duration"; bad[nb].c = base; bad[nb].c.duration = 0; bad[nb++].msg = "duration";
    bad[nb].name = "codes without codec"; bad[nb].c = base; bad[nb].c.codes.codec = NULL; bad[nb++].msg = "codec";
    bad[nb].name = "features rows"; bad[nb].c = base; bad[nb].c.features.t = 4; bad[nb++].msg = "features";
    float nan_audio[3] = {0.0f, NAN, 0.5f};
    bad[nb].name = "NaN audio"; bad[nb].c = base; bad[nb].c.audio = nan_audio; bad[nb].c.num_samples = 3;
    bad[nb++].msg = "sample 1";
    for (int i = 0; i < nb; i++) {
        st = gvm_shard_add_clip(w, &bad[i].c);
        const char *m = gvm_error_message();
        if (getenv("GVM_TEST_VERBOSE")) printf("  refused %s: %s\n", bad[i].name, m);
        TEST_CHECK(st == GVM_ERR_INVALID && contains(m, rpath) && contains(m, bad[i].msg), "refuse", "%s: %s: %s",
                   bad[i].name, gvm_status_name(st), m);
    }
    st = gvm_shard_add_clip(w, &g_clips[1].c);
    TEST_CHECK(st == GVM_OK && gvm_shard_writer_count(w) == 2, "refuse: writer usable", "%s", gvm_error_message());
    // The writer holds its /clips group open between clips, and nothing else.
    TEST_CHECK(open_h5_objects() == 1, "write: no HDF5 objects left open", "%zd", open_h5_objects());
    st = gvm_shard_writer_close(w, true);
    TEST_CHECK(st == GVM_OK, "refuse: commit", "%s", gvm_error_message());
    const gvm_clip *want[2] = {&g_clips[0].c, &g_clips[1].c};
    check_shard(rpath, want, 2, "refuse: shard holds the good clips");

    // An empty shard is valid; a bad header is refused; a folder that does not exist gives IO.
    const char *epath = tmp_path("empty.h5");
    st = gvm_shard_create(epath, &k_info, &w);
    if (st == GVM_OK) st = gvm_shard_writer_close(w, true);
    check_shard(epath, NULL, 0, "empty shard");
    gvm_shard_info bad_info = k_info;
    bad_info.fps = 0;
    st = gvm_shard_create(tmp_path("x.h5"), &bad_info, &w);
    TEST_CHECK(st == GVM_ERR_INVALID, "create: bad fps", "%s", gvm_status_name(st));
    st = gvm_shard_create(tmp_path("no/such/folder/x.h5"), &k_info, &w);
    TEST_CHECK(st == GVM_ERR_IO && contains(gvm_error_message(), "no/such/folder/x.h5.tmp"), "create: no folder",
               "%s: %s", gvm_status_name(st), gvm_error_message());
}

// A full disk, made with a file size limit in a child process: some call must fail with GVM_ERR_IO naming
// the file, and neither the shard nor its temporary file may be left behind. Exit code 0 when so.
static int disk_full_child(void) {
    const char *path = tmp_path("full.h5"), *tmp = tmp_path("full.h5.tmp");
    signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG instead of killing us
    struct rlimit lim = {48 * 1024, 48 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) return 10;
    gvm_shard_writer *w;
    gvm_status st = gvm_shard_create(path, &k_info, &w);
    if (st != GVM_OK) return 11;
    gvm_status first = GVM_OK;
    char msg[2048] = "";
    for (int i = 0; i < N_CLIPS; i++) {
        st = gvm_shard_add_clip(w, &g_clips[i].c);
        if (st != GVM_OK && first == GVM_OK) {
            first = st;
            snprintf(msg, sizeof msg, "%s", gvm_error_message());
        }
    }
    st = gvm_shard_writer_close(w, true);
    if (st != GVM_OK && first == GVM_OK) {
        first = st;
        snprintf(msg, sizeof msg, "%s", gvm_error_message());
    }
    if (getenv("GVM_TEST_VERBOSE")) printf("  disk full: %s (close: %s)\n", msg, gvm_error_message());
    fflush(stdout);
    if (first != GVM_ERR_IO || st == GVM_OK || !contains(msg, "full.h5")) return 12;
    return exists(path) || exists(tmp) ? 13 : 0;
}

static void test_disk_full(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(disk_full_child());
    int status = 0;
    waitpid(pid, &status, 0);
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "disk full: an error and no file left",
               "child status %d (exit %d)", status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

// ---- threads ------------------------------------------------------------------------------------------------------
typedef struct reader_job {
    const char *path;
    gvm_shard *shared;  // NULL: open its own handle
    int failures;
    char first[512];
} reader_job;

static void *reader_thread(void *arg) {
    reader_job *j = arg;
    gvm_shard *s = j->shared;
    if (!s && gvm_shard_open(j->path, &s) != GVM_OK) {
        j->failures++;
        snprintf(j->first, sizeof j->first, "open: %s", gvm_error_message());
        return NULL;
    }
    for (int rep = 0; rep < 4; rep++)
        for (int k = 0; k < N_CLIPS; k++) {
            int i = (k * 3 + rep) % N_CLIPS;
            gvm_clip c;
            gvm_status st = gvm_shard_read_clip(s, i, &c);
            const char *d = st == GVM_OK ? clip_diff(&c, &g_clips[i].c, GVM_CLIP_ALL) : gvm_error_message();
            if (d[0] && j->failures++ == 0) snprintf(j->first, sizeof j->first, "clip %d: %s", i, d);
            gvm_clip_free(&c);
        }
    if (!j->shared) gvm_shard_close(s);
    return NULL;
}

static void test_threads(const char *path) {
    gvm_shard *shared;
    if (!TEST_CHECK(gvm_shard_open(path, &shared) == GVM_OK, "threads: open", "%s", gvm_error_message())) return;
    enum { N = 4 };
    pthread_t th[N];
    reader_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (reader_job){path, i % 2 ? shared : NULL, 0, ""};
        pthread_create(&th[i], NULL, reader_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        TEST_CHECK(jobs[i].failures == 0, "threads: exact reads", "thread %d: %d failures, first %s", i,
                   jobs[i].failures, jobs[i].first);
    }
    gvm_shard_close(shared);
}

// ---- the sample for h5py (tests/check_dataset_h5py.py computes the same values) -------------------------------------
static int write_sample(const char *path) {
    enum { SH = 6, SW = 10 };
    gvm_shard_info info = {SH, SW, 1.0, 32000, "gvm test_data_dataset --write-sample"};
    gvm_shard_writer *w;
    if (gvm_shard_create(path, &info, &w) != GVM_OK) {
        fprintf(stderr, "%s\n", gvm_error_message());
        return 1;
    }
    const char *ids[3] = {"clip-000", "clip/001", "clip-002"};
    const char *styles[3] = {"taiko 太鼓", "guzheng 古筝 — ①", ""};
    const char *splits[3] = {"train", "eval", "train"};
    const int64_t tv[3] = {3, 2, 1}, ta[3] = {4000, 70001, 1};
    gvm_status st = GVM_OK;
    for (int i = 0; i < 3 && st == GVM_OK; i++) {
        uint8_t *frames = malloc((size_t)(tv[i] * SH * SW * 3));
        for (int64_t t = 0; t < tv[i]; t++)
            for (int y = 0; y < SH; y++)
                for (int x = 0; x < SW; x++)
                    for (int c = 0; c < 3; c++)
                        frames[((t * SH + y) * SW + x) * 3 + c] =
                            (uint8_t)((t * 31 + y * 17 + x * 7 + c * 101 + i * 13) % 256);
        float *audio = malloc((size_t)ta[i] * sizeof(float));
        for (int64_t n = 0; n < ta[i]; n++) audio[n] = (float)((n * 7 + i) % 256 - 128) / 128.0f;
        int16_t codes[4 * 9];
        for (int k = 0; k < 4; k++)
            for (int t = 0; t < 9; t++) codes[k * 9 + t] = (int16_t)((k * 1000 + t * 37) % 4096 - 2048);
        uint16_t feat[2 * 3 * 4];
        int64_t fs = i == 1 ? 3 : 1, fd = i == 1 ? 4 : 2;
        for (int64_t n = 0; n < tv[i] * fs * fd; n++) feat[n] = gvm_f32_to_f16((float)(n - 20) * 0.125f);
        gvm_clip c = {.clip_id = ids[i], .source_file = "videos/太鼓 drums.mp4", .style = styles[i],
                      .split = splits[i],
                      .start_time = 12.5 + 30.0 * i, .duration = (double)ta[i] / 32000.0, .fps = 1.0,
                      .sample_rate = 32000, .frames = frames, .num_frames = tv[i], .height = SH, .width = SW,
                      .audio = audio, .num_samples = ta[i]};
        if (i == 1) c.codes = (gvm_codes){codes, 4, 9, 50.0, "encodec_32khz"};
        if (i >= 1) c.features = (gvm_features){feat, tv[i], fs, fd, "test-vit layer -2"};
        st = gvm_shard_add_clip(w, &c);
        free(frames);
        free(audio);
    }
    if (st != GVM_OK) {
        fprintf(stderr, "%s\n", gvm_error_message());
        gvm_shard_writer_close(w, false);
        return 1;
    }
    if (gvm_shard_writer_close(w, true) != GVM_OK) {
        fprintf(stderr, "%s\n", gvm_error_message());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) return write_sample(argv[2]);
    test_init(argc, argv);
    fixture_setup();
    char good[512];  // tmp_path's buffers are reused: keep this one
    snprintf(good, sizeof good, "%s", tmp_path("good.h5"));
    test_round_trip(good);
    test_update(tmp_path("update.h5"));
    test_abandon_and_refuse();
    test_disk_full();
    test_threads(good);
    fixture_teardown();
    return test_finish();
}
