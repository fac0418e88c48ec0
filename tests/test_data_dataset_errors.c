// test_data_dataset_errors.c: broken and unusual dataset shards (data/dataset*.c,
// docs/dataset-format.md). Each broken file must give a clear status naming the file (and the clip, where
// one is at fault), never a crash, and nothing printed by HDF5 itself: missing, empty, a folder, garbage,
// truncated at several points, format_version 2 or missing, an HDF5 file of another kind, a missing index
// column, a missing clip group or dataset, a wrong dtype or shape, a damaged compressed chunk; the other
// clips of a partly broken shard still read. Also: a shard held by another process (file locks), and a
// shard written with other tools' types (fixed-length strings, int64 attributes), which reads the same.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

#include "tests/dataset_fixture.h"

// file system with locks; where flock is unsupported the check is skipped).
static void test_other_process(const char *path) {
    int fd = open(path, O_RDONLY);
    bool locks = fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) == 0;
    if (fd >= 0) close(fd);
    if (!locks) {
        printf("SKIPPED lock check: flock unsupported here\n");
        return;
    }
    int ready[2], done[2];
    GVM_CHECK(pipe(ready) == 0 && pipe(done) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        gvm_shard_updater *u = NULL;
        char ok = gvm_shard_update_open(path, &u) == GVM_OK ? '1' : '0';
        if (write(ready[1], &ok, 1) != 1) _exit(2);
        char c;
        if (read(done[0], &c, 1) != 1) _exit(3);
        _exit(gvm_shard_update_close(u) == GVM_OK ? 0 : 4);
    }
    char ok = '0';
    if (read(ready[0], &ok, 1) != 1) ok = '0';
    gvm_shard *s = NULL;
    gvm_status st = ok == '1' ? gvm_shard_open(path, &s) : GVM_OK;
    if (getenv("GVM_TEST_VERBOSE")) printf("  another process: %s\n", gvm_error_message());
    TEST_CHECK(ok == '1' && st == GVM_ERR_IO && contains(gvm_error_message(), "another process"),
               "update: another process holds the shard", "child opened %c; %s: %s", ok, gvm_status_name(st),
               gvm_error_message());
    gvm_shard_close(s);
    if (write(done[1], "x", 1) != 1) GVM_CHECK(false, "pipe write");
    int status = 0;
    waitpid(pid, &status, 0);
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "update: the other process", "status %d", status);
    close(ready[0]);
    close(ready[1]);
    close(done[0]);
    close(done[1]);
}

// ---- broken files -----------------------------------------------------------------------------------------------
// Edit a copy of a good shard with raw HDF5 (what a damaged or foreign file might look like).
static hid_t open_rw(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    GVM_CHECK(f >= 0, "cannot open %s", path);
    return f;
}

static void set_version(const char *path, int version, bool remove) {
    hid_t f = open_rw(path);
    H5Adelete(f, "format_version");
    if (!remove) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "format_version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &version);
        H5Aclose(a);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

static void replace_dataset(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims) {
    hid_t f = open_rw(path);
    H5Ldelete(f, name, H5P_DEFAULT);
    if (rank > 0) {
        hid_t sp = H5Screate_simple(rank, dims, NULL);
        hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

// What another tool (an h5py script) might write: fixed-length strings, int64 and integer-valued
// attributes where gvm writes int32 and float64, a fixed-length string column. The reader accepts them.
static void write_foreign_types(const char *path) {
    hid_t f = open_rw(path);
    hid_t g = H5Gopen2(f, "clips/00000000", H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    H5Adelete(g, "style");
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 20);
    H5Tset_strpad(st, H5T_STR_SPACEPAD);
    H5Tset_cset(st, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(g, "style", st, scalar, H5P_DEFAULT, H5P_DEFAULT);
    char style[20];
    memset(style, ' ', sizeof style);
    memcpy(style, "guzheng 古筝", strlen("guzheng 古筝"));  // 14 bytes, then spaces to 20
    H5Awrite(a, st, style);
    H5Aclose(a);
    H5Adelete(g, "sample_rate");
    int64_t rate = 32000;
    a = H5Acreate2(g, "sample_rate", H5T_STD_I64BE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &rate);
    H5Aclose(a);
    H5Adelete(g, "fps");
    int64_t fps = 1;
    a = H5Acreate2(g, "fps", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &fps);
    H5Aclose(a);
    H5Gclose(g);
    // The split column as fixed-length, null-padded strings exactly as long as the longest ("train" = 5).
    H5Ldelete(f, "index/split", H5P_DEFAULT);
    hid_t ct = H5Tcopy(H5T_C_S1);
    H5Tset_size(ct, 5);
    H5Tset_strpad(ct, H5T_STR_NULLPAD);
    hsize_t n = N_CLIPS;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "index/split", ct, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    char rows[N_CLIPS][5];
    for (int i = 0; i < N_CLIPS; i++) {
        const char *s = g_clips[i].c.split ? g_clips[i].c.split : "train";
        memset(rows[i], 0, 5);
        memcpy(rows[i], s, strlen(s) < 5 ? strlen(s) : 5);
    }
    H5Dwrite(d, ct, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(ct);
    H5Tclose(st);
    H5Sclose(scalar);
    H5Fclose(f);
}

static void test_foreign_types(const char *good) {
    const char *p = tmp_path("foreign-types.h5");
    copy_file(good, p, -1);
    write_foreign_types(p);
    const gvm_clip *want[N_CLIPS];
    for (int i = 0; i < N_CLIPS; i++) want[i] = &g_clips[i].c;
    check_shard(p, want, N_CLIPS, "shard with other tools' types");
}


// Open `path` and read every clip; expect `status` from the open (or, when open succeeds, from reading
// clip `bad_clip`), with every `needles` in the message, and nothing printed on stderr.
static void expect_broken(const char *name, const char *path, gvm_status status, int bad_clip, const char *n1,
                          const char *n2) {
    // HDF5 must print nothing: its error stack goes into our message. Catch fd 2 in a file meanwhile.
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *ef = fopen(errpath, "w");
    dup2(fileno(ef), 2);
    gvm_shard *s = NULL;
    gvm_status st = gvm_shard_open(path, &s);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", gvm_error_message());
    bool others_ok = true;
    if (st == GVM_OK) {
        for (int i = 0; i < gvm_shard_clip_count(s); i++) {
            gvm_clip c;
            gvm_status cs = gvm_shard_read_clip(s, i, &c);
            if (i == bad_clip) {
                st = cs;
                snprintf(msg, sizeof msg, "%s", gvm_error_message());
            } else if (cs != GVM_OK) {
                others_ok = false;
            }
            gvm_clip_free(&c);
        }
        others_ok = others_ok && open_h5_objects() == 0;
        gvm_shard_close(s);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(ef);
    long long printed = file_size(errpath);
    if (getenv("GVM_TEST_VERBOSE")) printf("  %s: %s: %s\n", name, gvm_status_name(st), msg);
    TEST_CHECK(st == status && contains(msg, path) && (!n1 || contains(msg, n1)) && (!n2 || contains(msg, n2)), name,
               "%s (want %s): %s", gvm_status_name(st), gvm_status_name(status), msg);
    TEST_CHECK(others_ok, name, "another clip of the shard did not read, or HDF5 objects were left open");
    TEST_CHECK(printed == 0, name, "%lld bytes printed on stderr", printed);
}

static void test_broken(const char *good) {
    expect_broken("missing file", tmp_path("missing.h5"), GVM_ERR_NOT_FOUND, -1, "no such", NULL);
    const char *p = tmp_path("empty-file.h5");
    copy_file(good, p, 0);
    expect_broken("empty file", p, GVM_ERR_FORMAT, -1, "empty", NULL);
    p = tmp_path("garbage.h5");
    FILE *f = fopen(p, "wb");
    g_rng = 99;
    for (int i = 0; i < 8192; i++) fputc((int)(rnd() & 0xff), f);
    fclose(f);
    expect_broken("garbage file", p, GVM_ERR_FORMAT, -1, "not an HDF5 file", NULL);
    expect_broken("folder", g_dir, GVM_ERR_IO, -1, "folder", NULL);

    long long size = file_size(good);
    long long cuts[] = {size / 2, size - 1, 4096, 600, 64, 9};
    for (int i = 0; i < 6; i++) {
        p = tmp_path("truncated.h5");
        copy_file(good, p, cuts[i]);
        char name[64];
        snprintf(name, sizeof name, "truncated to %lld of %lld bytes", cuts[i], size);
        // With its superblock cut short HDF5 cannot tell truncation from damage; either way a FORMAT error.
        expect_broken(name, p, GVM_ERR_FORMAT, -1, cuts[i] >= 64 ? "truncated file" : NULL, NULL);
    }

    p = tmp_path("v2.h5");
    copy_file(good, p, -1);
    set_version(p, 2, false);
    expect_broken("format_version 2", p, GVM_ERR_FORMAT, -1, "format_version 2", NULL);
    p = tmp_path("noversion.h5");
    copy_file(good, p, -1);
    set_version(p, 0, true);
    expect_broken("no format_version", p, GVM_ERR_FORMAT, -1, "no format_version", NULL);

    p = tmp_path("foreign.h5");
    hid_t h = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    expect_broken("an HDF5 file of another kind", p, GVM_ERR_FORMAT, -1, "no format_version", NULL);

    p = tmp_path("noindex.h5");
    copy_file(good, p, -1);
    replace_dataset(p, "index/num_samples", -1, 0, NULL);
    expect_broken("index column missing", p, GVM_ERR_FORMAT, -1, "num_samples", NULL);

    p = tmp_path("noaudio.h5");
    copy_file(good, p, -1);
    replace_dataset(p, "clips/00000001/audio", -1, 0, NULL);
    expect_broken("audio missing", p, GVM_ERR_FORMAT, 1, "clip 1 (clip-001)", "'audio' is missing");

    p = tmp_path("floatframes.h5");
    copy_file(good, p, -1);
    hsize_t fdims[4] = {3, H, W, 3};
    replace_dataset(p, "clips/00000000/frames", H5T_IEEE_F32LE, 4, fdims);
    expect_broken("frames of the wrong class", p, GVM_ERR_FORMAT, 0, "clip 0 (clip-000)", "frames");
    p = tmp_path("i16frames.h5");
    copy_file(good, p, -1);
    replace_dataset(p, "clips/00000000/frames", H5T_STD_I16LE, 4, fdims);
    expect_broken("frames of the wrong dtype", p, GVM_ERR_FORMAT, 0, "clip 0 (clip-000)", "dtype");
    p = tmp_path("shortaudio.h5");
    copy_file(good, p, -1);
    hsize_t adims[1] = {999};
    replace_dataset(p, "clips/00000000/audio", H5T_IEEE_F32LE, 1, adims);
    expect_broken("audio of the wrong length", p, GVM_ERR_FORMAT, 0, "clip 0 (clip-000)", "999 samples");
    p = tmp_path("bigframes.h5");
    copy_file(good, p, -1);
    hsize_t bdims[4] = {3, H + 1, W, 3};
    replace_dataset(p, "clips/00000000/frames", H5T_STD_U8LE, 4, bdims);
    expect_broken("frames of the wrong size", p, GVM_ERR_FORMAT, 0, "clip 0 (clip-000)", "frames are");
    p = tmp_path("nogroup.h5");
    copy_file(good, p, -1);
    replace_dataset(p, "clips/00000004", -1, 0, NULL);
    expect_broken("clip group missing", p, GVM_ERR_FORMAT, 4, "clip 4 (clip-004)", "missing");

    p = tmp_path("damaged.h5");
    copy_file(good, p, -1);
    if (TEST_CHECK(damage_chunk(p, "clips/00000001/frames"), "damage a chunk", "no chunk found"))
        expect_broken("a damaged frames chunk", p, GVM_ERR_FORMAT, 1, "clip 1 (clip-001)", "frames");
    p = tmp_path("damaged-audio.h5");
    copy_file(good, p, -1);
    if (TEST_CHECK(damage_chunk(p, "clips/00000004/audio"), "damage a chunk", "no chunk found"))
        expect_broken("a damaged audio chunk", p, GVM_ERR_FORMAT, 4, "clip 4 (clip-004)", "audio");
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    fixture_setup();
    char good[512];  // tmp_path's buffers are reused: keep this one
    snprintf(good, sizeof good, "%s", tmp_path("good.h5"));
    if (!TEST_CHECK(write_shard(good, N_CLIPS) == GVM_OK, "write the shard", "%s", gvm_error_message()))
        return test_finish();
    test_broken(good);
    test_foreign_types(good);
    test_other_process(good);
    fixture_teardown();
    return test_finish();
}
