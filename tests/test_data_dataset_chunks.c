// test_data_dataset_chunks.c: the reader's raw-chunk path (data/dataset_chunks.c: stored chunks copied under
// the HDF5 lock, inflated and unshuffled outside it) against HDF5's own H5Dread.
//
//  * same bytes: shards of several shapes (edge chunks cut in one and two dimensions, one-sample edge chunks,
//    compressible and incompressible frames, codes, f16 features) read identically with the raw path on and
//    off, and both equal what was written; the counters show which path each dataset took;
//  * threads: several threads reading one shard at once get the written bytes;
//  * foreign storage (what other tools write, made here with raw HDF5): contiguous, fletcher32, big-endian,
//    unallocated chunks, edge chunks left unfiltered go to H5Dread; other chunk shapes, deflate without
//    shuffle and chunks whose filters HDF5 skipped (filter masks) take the raw path; all read what HDF5 reads;
//  * damage: a corrupt frames or audio chunk, and a chunk that inflates short, are GVM_ERR_FORMAT errors
//    naming the file, clip, dataset and chunk, with nothing printed, and the shard's other clips still read.
#include <pthread.h>

#include "data/dataset_internal.h"
#include "tests/dataset_fixture.h"

static const char *k_parts_names[4] = {"frames", "audio", "codes", "features"};

static void counts(int64_t *fast, int64_t *fallback) { gvm_ds_raw_counts(fast, fallback); }

static gvm_status write_clips(const char *path, const gvm_clip *const *clips, int n) {
    gvm_shard_writer *w;
    gvm_status st = gvm_shard_create(path, &k_info, &w);
    for (int i = 0; st == GVM_OK && i < n; i++) st = gvm_shard_add_clip(w, clips[i]);
    if (st != GVM_OK) {
        gvm_shard_writer_close(w, false);
        return st;
    }
    return gvm_shard_writer_close(w, true);
}

// Datasets a full read of these clips touches (frames, audio, and codes/features where present).
static int64_t datasets_of(const gvm_clip *const *want, int n) {
    int64_t k = 0;
    for (int i = 0; i < n; i++) k += 2 + (want[i]->codes.data != NULL) + (want[i]->features.data != NULL);
    return k;
}

// Read every clip of `path` (all parts, then each part alone) and compare with `want`.
static void read_and_compare(const char *path, const gvm_clip *const *want, int n, const char *name) {
    gvm_shard *s;
    gvm_status st = gvm_shard_open(path, &s);
    if (!TEST_CHECK(st == GVM_OK, name, "open: %s", gvm_error_message())) return;
    int bad = 0;
    char first[2048] = "";
    for (int i = 0; i < n; i++) {
        for (int p = -1; p < 4; p++) {
            unsigned parts = p < 0 ? GVM_CLIP_ALL : 1u << p;
            gvm_clip got;
            st = gvm_shard_read_clip_parts(s, i, parts, &got);
            const char *d = st == GVM_OK ? clip_diff(&got, want[i], parts) : gvm_error_message();
            if (d[0] && !bad++)
                snprintf(first, sizeof first, "clip %d, %s: %s", i, p < 0 ? "all parts" : k_parts_names[p], d);
            gvm_clip_free(&got);
        }
    }
    TEST_CHECK(bad == 0, name, "%d reads differ; first: %s", bad, first);
    TEST_CHECK(open_h5_objects() == 0, name, "HDF5 objects left open");
    gvm_shard_close(s);
}

// ---- same bytes both ways ------------------------------------------------------------------------------------------
enum { N_EXTRA = 2, N_SHAPES = N_CLIPS + N_EXTRA };
static owned_clip g_extra[N_EXTRA];
static const gvm_clip *g_shapes[N_SHAPES];

static void make_shapes(void) {
    // Compressible frames (smooth ramps), audio of exactly two chunks, codes whose second chunk is cut in
    // the time dimension ([3, 65536] chunks of [3, 70000]), one feature vector per frame.
    make_clip(&g_extra[0], 11, "extra/smooth", "ramps", 4, 131072, 3, 70000, 1, 3);
    for (int64_t f = 0; f < 4; f++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++)
                    g_extra[0].frames[((f * H + y) * W + x) * 3 + c] = (uint8_t)(f * 40 + y * 3 + x * (c + 1));
    // An audio chunk holding one sample, codes of exactly one chunk [1, 65536].
    make_clip(&g_extra[1], 12, "extra/edge", NULL, 2, 65537, 1, 65536, 0, 0);
    for (int i = 0; i < N_CLIPS; i++) g_shapes[i] = &g_clips[i].c;
    for (int i = 0; i < N_EXTRA; i++) g_shapes[N_CLIPS + i] = &g_extra[i].c;
}

static void test_same_bytes(const char *path) {
    int64_t f0, b0, f1, b1, f2, b2;
    // A pass reads each dataset twice: all parts, then each part alone (which touches only its dataset).
    int64_t per_pass = 2 * datasets_of(g_shapes, N_SHAPES);
    counts(&f0, &b0);
    read_and_compare(path, g_shapes, N_SHAPES, "raw path: every clip as written");
    counts(&f1, &b1);
    TEST_CHECK(f1 - f0 == per_pass && b1 == b0, "raw path: every dataset of gvm's shards takes it",
               "%lld raw, %lld H5Dread (want %lld, 0)", (long long)(f1 - f0), (long long)(b1 - b0),
               (long long)per_pass);
    gvm_ds_raw_enable(false);
    read_and_compare(path, g_shapes, N_SHAPES, "H5Dread: every clip as written");
    gvm_ds_raw_enable(true);
    counts(&f2, &b2);
    TEST_CHECK(f2 == f1 && b2 - b1 == per_pass, "raw path off: every dataset through H5Dread",
               "%lld raw, %lld H5Dread (want 0, %lld)", (long long)(f2 - f1), (long long)(b2 - b1),
               (long long)per_pass);
}

// ---- threads -------------------------------------------------------------------------------------------------------
typedef struct reader_arg {
    gvm_shard *s;
    int seed, bad;
    char first[600];
} reader_arg;

static void *reader_main(void *p) {
    reader_arg *a = p;
    for (int round = 0; round < 4; round++)
        for (int k = 0; k < N_SHAPES; k++) {
            int i = (k + a->seed + round) % N_SHAPES;
            gvm_clip got;
            gvm_status st = gvm_shard_read_clip(a->s, i, &got);
            const char *d = st == GVM_OK ? clip_diff(&got, g_shapes[i], GVM_CLIP_ALL) : gvm_error_message();
            if (d[0] && !a->bad++) snprintf(a->first, sizeof a->first, "clip %d: %s", i, d);
            gvm_clip_free(&got);
        }
    return NULL;
}

static void test_threads(const char *path) {
    gvm_shard *s;
    if (!TEST_CHECK(gvm_shard_open(path, &s) == GVM_OK, "threads: open", "%s", gvm_error_message())) return;
    enum { T = 4 };
    reader_arg args[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        args[t] = (reader_arg){.s = s, .seed = t};
        GVM_CHECK(pthread_create(&th[t], NULL, reader_main, &args[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        TEST_CHECK(args[t].bad == 0, "threads: 4 readers of one shard get the written bytes", "thread %d: %d bad; %s",
                   t, args[t].bad, args[t].first);
    }
    gvm_shard_close(s);
}

// ---- foreign storage -----------------------------------------------------------------------------------------------
// Replace dataset `name` by one of type ftype, shape dims, creation properties dcpl, holding `data` (of type
// mtype; NULL writes nothing).
static void put(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims, hid_t dcpl,
                const void *data) {
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    GVM_CHECK(d >= 0, "cannot create %s", name);
    if (data) GVM_CHECK(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "cannot write %s", name);
    H5Dclose(d);
    H5Sclose(sp);
}

static hid_t chunked(int rank, const hsize_t *chunk, bool fletcher, bool shuffle, bool deflate) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, rank, chunk);
    if (fletcher) H5Pset_fletcher32(p);
    if (shuffle) H5Pset_shuffle(p);
    if (deflate) H5Pset_deflate(p, 6);
    return p;
}

// The shuffle filter's byte order, written out independently: byte b of element i goes to b * n + i.
static void shuffle_bytes(const uint8_t *src, uint8_t *dst, size_t n, size_t elem) {
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < elem; b++) dst[b * n + i] = src[i * elem + b];
}

static uint32_t chunk_mask(hid_t f, const char *name, hsize_t at) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    unsigned mask = 99;
    haddr_t addr;
    hsize_t size;
    H5Dget_chunk_info_by_coord(d, &at, &mask, &addr, &size);
    H5Dclose(d);
    return mask;
}

// Clip 4's audio (32000 samples) in chunks of 4096 with shuffle + deflate, chunks 1, 2, 3 and the cut last
// one rewritten with filters skipped: masks 2 (deflate skipped: shuffled bytes), 3 (both: plain bytes; for
// the last chunk, garbage past the end), 1 (shuffle skipped: deflated plain bytes, taken from a dataset
// with deflate alone). Returns whether HDF5 reports those masks.
static bool write_masked_audio(hid_t f, const float *audio) {
    const char *name = "clips/00000004/audio", *helper = "clips/00000004/helper";
    enum { C = 4096, N = 32000 };
    hsize_t dims = N, chunk = C;
    hid_t p = chunked(1, &chunk, false, true, true);
    put(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dims, p, audio);
    H5Pclose(p);
    p = chunked(1, &chunk, false, false, true);
    put(f, helper, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dims, p, audio);
    H5Pclose(p);
    static uint8_t buf[C * 4], deflated[C * 8];
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), h = H5Dopen2(f, helper, H5P_DEFAULT);
    hsize_t at = 1 * C;
    shuffle_bytes((const uint8_t *)(audio + at), buf, C, 4);
    H5Dwrite_chunk(d, H5P_DEFAULT, 2, &at, sizeof buf, buf);
    at = 2 * C;
    H5Dwrite_chunk(d, H5P_DEFAULT, 3, &at, sizeof buf, audio + at);
    at = 3 * C;
    hsize_t size = 0;
    uint32_t hmask = 0;
    H5Dget_chunk_storage_size(h, &at, &size);
    GVM_CHECK(size > 0 && size <= sizeof deflated, "helper chunk of %llu bytes", (unsigned long long)size);
    H5Dread_chunk(h, H5P_DEFAULT, &at, &hmask, deflated);
    H5Dwrite_chunk(d, H5P_DEFAULT, 1, &at, (size_t)size, deflated);
    at = 7 * C;  // 3328 samples in the dataset, the rest of the chunk unused
    memset(buf, 0xab, sizeof buf);
    memcpy(buf, audio + at, (N - 7 * C) * 4);
    H5Dwrite_chunk(d, H5P_DEFAULT, 3, &at, sizeof buf, buf);
    H5Dclose(h);
    H5Dclose(d);
    H5Ldelete(f, helper, H5P_DEFAULT);
    return chunk_mask(f, name, 0) == 0 && chunk_mask(f, name, 1 * C) == 2 && chunk_mask(f, name, 2 * C) == 3 &&
           chunk_mask(f, name, 3 * C) == 1 && chunk_mask(f, name, 7 * C) == 3;
}

static void test_foreign(const char *good) {
    const char *path = tmp_path("foreign.h5");
    copy_file(good, path, -1);
    const gvm_clip *c[N_CLIPS];
    for (int i = 0; i < N_CLIPS; i++) c[i] = &g_clips[i].c;
    // Clip 4's codes [2, 50] in chunks [2, 8], only the first 24 columns written: chunks 3..6 are never
    // allocated and HDF5 reads them as the fill value 0.
    int16_t codes4[2 * 50];
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < 50; t++) codes4[k * 50 + t] = t < 24 ? c[4]->codes.data[k * 50 + t] : 0;
    gvm_clip want4 = *c[4];
    want4.codes.data = codes4;

    gvm_hdf5_lock();  // direct HDF5 calls hold the library's lock (data/dataset.h)
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    GVM_CHECK(f >= 0, "cannot open %s", path);
    // Clip 0: frames contiguous (no chunks, no filters); audio [1000] in chunks of 300 with its cut edge chunk
    // left unfiltered (H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS). Both through H5Dread.
    hsize_t d0[4] = {3, H, W, 3}, a0 = 1000, ch = 300;
    put(f, "clips/00000000/frames", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, d0, H5P_DEFAULT, c[0]->frames);
    hid_t p = chunked(1, &ch, false, true, true);
    H5Pset_chunk_opts(p, H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS);
    put(f, "clips/00000000/audio", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &a0, p, c[0]->audio);
    H5Pclose(p);
    // Clip 1: frames [5, 12, 20, 3] in chunks [2, 5, 7, 2] (cut in every dimension) with shuffle + deflate, and
    // audio [70001] in chunks of 1000 with deflate alone: the raw path. Codes with fletcher32: H5Dread.
    hsize_t d1[4] = {5, H, W, 3}, c1[4] = {2, 5, 7, 2}, a1 = 70001, ca1 = 1000, k1[2] = {4, 37}, ck1[2] = {2, 16};
    p = chunked(4, c1, false, true, true);
    put(f, "clips/00000001/frames", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, d1, p, c[1]->frames);
    H5Pclose(p);
    p = chunked(1, &ca1, false, false, true);
    put(f, "clips/00000001/audio", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &a1, p, c[1]->audio);
    H5Pclose(p);
    p = chunked(2, ck1, true, true, true);
    put(f, "clips/00000001/codes", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, k1, p, c[1]->codes.data);
    H5Pclose(p);
    hid_t d = H5Dopen2(f, "clips/00000001/codes", H5P_DEFAULT);
    gvm_h5_write_str_attr(d, "codec", c[1]->codes.codec);
    gvm_h5_write_f64_attr(d, "frame_rate", c[1]->codes.frame_rate);
    H5Dclose(d);
    // Clip 3: big-endian audio, deflated: H5Dread converts it.
    hsize_t a3 = 500, ca3 = 128;
    p = chunked(1, &ca3, false, true, true);
    put(f, "clips/00000003/audio", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, 1, &a3, p, c[3]->audio);
    H5Pclose(p);
    // Clip 4: codes partly allocated (H5Dread), audio with filter masks (the raw path).
    hsize_t k4[2] = {2, 50}, ck4[2] = {2, 8}, start[2] = {0, 0}, count[2] = {2, 24};
    p = chunked(2, ck4, false, true, true);
    put(f, "clips/00000004/codes", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, k4, p, NULL);
    H5Pclose(p);
    d = H5Dopen2(f, "clips/00000004/codes", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(2, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    int16_t part[2 * 24];
    for (int k = 0; k < 2; k++) memcpy(part + k * 24, codes4 + k * 50, 24 * sizeof(int16_t));
    H5Dwrite(d, H5T_NATIVE_INT16, ms, fs, H5P_DEFAULT, part);
    H5Sclose(ms);
    H5Sclose(fs);
    gvm_h5_write_str_attr(d, "codec", c[4]->codes.codec);
    gvm_h5_write_f64_attr(d, "frame_rate", c[4]->codes.frame_rate);
    H5Dclose(d);
    bool masks = write_masked_audio(f, c[4]->audio);
    H5Fclose(f);
    gvm_hdf5_unlock();
    TEST_CHECK(masks, "foreign: HDF5 reports the filter masks written", "%s", "");

    c[4] = &want4;
    // H5Dread: clip 0 frames and audio, clip 1 codes, clip 3 audio, clip 4 codes; the raw path: the other 11.
    int64_t f0, b0, f1, b1, f2, b2;
    counts(&f0, &b0);
    read_and_compare(path, c, 1, "foreign: clip 0 (contiguous, unfiltered edge chunk)");
    read_and_compare(path, c, N_CLIPS, "foreign: every clip reads what was written");
    counts(&f1, &b1);
    // Each read_and_compare pass touches every dataset twice (all parts, then its part alone).
    TEST_CHECK(f1 - f0 == 2 * 11 && b1 - b0 == 2 * 2 + 2 * 5, "foreign: the paths taken",
               "%lld raw, %lld H5Dread (want 22, 14)", (long long)(f1 - f0), (long long)(b1 - b0));
    gvm_ds_raw_enable(false);
    read_and_compare(path, c, N_CLIPS, "foreign, H5Dread only: every clip reads what was written");
    gvm_ds_raw_enable(true);
    counts(&f2, &b2);
    TEST_CHECK(f2 == f1 && b2 - b1 == 2 * 16, "foreign, raw path off: all through H5Dread", "%lld raw, %lld H5Dread",
               (long long)(f2 - f1), (long long)(b2 - b1));
}

// ---- damage --------------------------------------------------------------------------------------------------------
// Overwrite 8 bytes in the middle of the stored chunk of dataset `name` at `offset`.
static bool damage_chunk_at(const char *path, const char *name, const hsize_t *offset) {
    gvm_hdf5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    herr_t rc = H5Dget_chunk_info_by_coord(d, offset, &mask, &addr, &size);
    H5Dclose(d);
    H5Fclose(f);
    gvm_hdf5_unlock();
    if (rc < 0 || size < 16 || mask != 0) return false;
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + size / 2 - 4), SEEK_SET);
    fwrite("\xde\xad\xbe\xef\x00\xff\x13\x37", 1, 8, fp);
    fclose(fp);
    return true;
}

// Read clip `bad` of `path` expecting GVM_ERR_FORMAT with every needle in the message and nothing on stderr;
// the other clips must read as written. raw: the raw path on or off.
static void expect_damaged(const char *name, const char *path, int n, int bad, bool raw, const char *n1,
                           const char *n2, const char *n3) {
    char errpath[600], msg[2048] = "";
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *ef = fopen(errpath, "w");
    dup2(fileno(ef), 2);
    gvm_ds_raw_enable(raw);
    gvm_shard *s = NULL;
    gvm_status st = gvm_shard_open(path, &s), bad_st = GVM_OK;
    int others_bad = 0;
    for (int i = 0; st == GVM_OK && i < n; i++) {
        gvm_clip got;
        gvm_status cs = gvm_shard_read_clip(s, i, &got);
        if (i == bad) {
            bad_st = cs;
            snprintf(msg, sizeof msg, "%s", gvm_error_message());
        } else if (cs != GVM_OK || clip_diff(&got, g_shapes[i], GVM_CLIP_ALL)[0]) {
            others_bad++;
        }
        gvm_clip_free(&got);
    }
    bool no_leaks = open_h5_objects() == 0;
    gvm_shard_close(s);
    gvm_ds_raw_enable(true);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(ef);
    if (getenv("GVM_TEST_VERBOSE")) printf("  %s: %s\n", name, msg);
    TEST_CHECK(st == GVM_OK && bad_st == GVM_ERR_FORMAT && contains(msg, path) && contains(msg, n1) &&
                   (!n2 || contains(msg, n2)) && (!n3 || contains(msg, n3)),
               name, "open %s, clip %d %s: %s", gvm_status_name(st), bad, gvm_status_name(bad_st), msg);
    TEST_CHECK(others_bad == 0 && no_leaks, name, "%d other clips did not read as written, or objects left open",
               others_bad);
    TEST_CHECK(file_size(errpath) == 0, name, "%lld bytes printed on stderr", file_size(errpath));
}

// Clip 4's codes [2, 50] as one chunk [2, 50] (200 bytes) whose stored stream is a deflated 100-byte chunk
// of a [2, 25] dataset: it inflates short. HDF5's own reading of such a file is not specified.
static void write_short_chunk(const char *path) {
    gvm_hdf5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[2] = {2, 50}, small[2] = {2, 25}, zero[2] = {0, 0}, size = 0;
    hid_t p = chunked(2, small, false, false, true);
    put(f, "helper", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, small, p, g_clips[4].c.codes.data);
    H5Pclose(p);
    uint8_t stream[400];
    uint32_t mask = 0;
    hid_t h = H5Dopen2(f, "helper", H5P_DEFAULT);
    H5Dget_chunk_storage_size(h, zero, &size);
    GVM_CHECK(size > 0 && size <= sizeof stream, "helper chunk of %llu bytes", (unsigned long long)size);
    H5Dread_chunk(h, H5P_DEFAULT, zero, &mask, stream);
    H5Dclose(h);
    p = chunked(2, dims, false, true, true);
    put(f, "clips/00000004/codes", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, dims, p, NULL);
    H5Pclose(p);
    hid_t d = H5Dopen2(f, "clips/00000004/codes", H5P_DEFAULT);
    H5Dwrite_chunk(d, H5P_DEFAULT, 0, zero, (size_t)size, stream);
    gvm_h5_write_str_attr(d, "codec", g_clips[4].c.codes.codec);
    gvm_h5_write_f64_attr(d, "frame_rate", g_clips[4].c.codes.frame_rate);
    H5Dclose(d);
    H5Fclose(f);
    gvm_hdf5_unlock();
}

static void test_damaged(const char *shapes) {
    const char *p = tmp_path("damaged-frames.h5");
    copy_file(shapes, p, -1);
    hsize_t at_frame[4] = {2, 0, 0, 0}, at_audio[1] = {65536};
    if (TEST_CHECK(damage_chunk_at(p, "clips/00000001/frames", at_frame), "damage frame 2 of clip 1", "no chunk")) {
        expect_damaged("a damaged frames chunk", p, N_SHAPES, 1, true, "clip 1 (clip-001)",
                       "dataset 'frames', chunk 2 of 5 (at [2, 0, 0, 0])", "damaged");
        expect_damaged("a damaged frames chunk, H5Dread", p, N_SHAPES, 1, false, "clip 1 (clip-001)", "frames", NULL);
    }
    p = tmp_path("damaged-audio.h5");
    copy_file(shapes, p, -1);
    if (TEST_CHECK(damage_chunk_at(p, "clips/00000005/audio", at_audio), "damage an audio chunk", "no chunk")) {
        expect_damaged("a damaged shuffled audio chunk", p, N_SHAPES, 5, true, "clip 5 (extra/smooth)",
                       "dataset 'audio', chunk 1 of 2 (at [65536])", "damaged");
        expect_damaged("a damaged shuffled audio chunk, H5Dread", p, N_SHAPES, 5, false, "clip 5 (extra/smooth)",
                       "audio", NULL);
    }
    p = tmp_path("short-chunk.h5");
    copy_file(shapes, p, -1);
    write_short_chunk(p);
    expect_damaged("a chunk that inflates short", p, N_SHAPES, 4, true, "clip 4 (clip-004)",
                   "dataset 'codes', chunk 0 of 1 (at [0, 0])", "inflates to 100 bytes, want 200");
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    fixture_setup();
    make_shapes();
    char good[512], shapes[512];  // tmp_path's buffers are reused: keep these
    snprintf(good, sizeof good, "%s", tmp_path("good.h5"));
    snprintf(shapes, sizeof shapes, "%s", tmp_path("shapes.h5"));
    if (!TEST_CHECK(write_shard(good, N_CLIPS) == GVM_OK, "write the shard", "%s", gvm_error_message()) ||
        !TEST_CHECK(write_clips(shapes, g_shapes, N_SHAPES) == GVM_OK, "write the shapes", "%s", gvm_error_message()))
        return test_finish();
    test_same_bytes(shapes);
    test_threads(shapes);
    test_foreign(good);
    test_damaged(shapes);
    for (int i = 0; i < N_EXTRA; i++) free_clip(&g_extra[i]);
    fixture_teardown();
    return test_finish();
}
