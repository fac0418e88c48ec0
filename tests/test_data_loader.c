// test_data_loader.c: the batch loader (data/loader.c, data/loader_batch.c, docs/loader.md).
//
// Small shards with known content are written with the dataset writer into a temporary folder; then
//  * round trip: every value of a batch against the content written: frames CLIP-normalised (against a double
//    computation with the constants typed here), channel-first; codes, audio; truncation of long clips, padding
//    and masks for short ones; padding rows in the last batch; parts left out; the first K of more codebooks;
//    the folder + split listing (other splits and "*.h5.tmp" ignored) and the clip_split filter;
//  * rank sharding for N = 1..4, with and without drop_last: every rank the same number of batches, ranks
//    disjoint, their union all clips (or N*B*floor(M/(N*B)) of them), each rank's valid rows as documented;
//  * shuffles: a permutation each epoch, different across epochs and seeds, identical for the same seed;
//    uniform (each clip lands in each position about equally often over many epochs);
//  * resume: a loader opened at the position reported after k batches returns the batches the uninterrupted
//    loader returned from k on (mid-epoch, at an epoch boundary, and the unnormalised {e, batches} form), with
//    1-3 workers: the batches must not depend on the worker count;
//  * errors: a truncated shard fails the open naming the file; a damaged chunk, a clip without codes and a
//    codec mismatch make next() fail (sticky) naming the shard, the clip and the batch, without a crash, the
//    first bad row's error whether 1 or 4 workers fill the batch;
//    bad settings; pinned buffers without a GPU give GVM_ERR_DEVICE (with one: the same values);
//  * closing mid-epoch with a full ring and with a blocked thread (run under ASan for leaks and races).
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/device.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "tests/file_fixture.h"
#include "tests/test_util.h"

enum { H = 6, W = 10, K_STORED = 4 };  // small, not square: a transposed frame would show

// The constants of the CLIP preprocessor, typed here independently of loader.h.
static const double MEAN[3] = {0.48145466, 0.4578275, 0.40821073};
static const double STD[3] = {0.26862954, 0.26130258, 0.27577711};

static char g_dir[256];

static const char *path_in(const char *sub, const char *name) {
    static char buf[8][600];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s/%s", g_dir, sub, name);
    return p;
}

static void make_dir(const char *sub) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", g_dir, sub);
    GVM_CHECK(mkdir(p, 0700) == 0, "mkdir %s", p);
}




// ---- the known content of clip `gid` ----------------------------------------------------------------------------------
static int64_t clip_frames(int gid) { return 1 + gid % 6; }           // 1..6 against T_v = 4
static int64_t clip_steps(int gid) { return 3 + (gid * 3) % 10; }     // 3..12 against T_m = 8
static int64_t clip_samples(int gid) { return 20 + (gid * 7) % 60; }  // 20..79 against T_a = 50
static uint8_t pix(int gid, int64_t f, int64_t y, int64_t x, int c) {
    return (uint8_t)((gid * 53 + f * 29 + y * 7 + x * 3 + c * 85) & 255);
}
static int16_t code(int gid, int k, int64_t t) { return (int16_t)((gid * 97 + k * 500 + t * 13) % 2048); }
static float sample(int gid, int64_t t) { return 0.5f * sinf(0.1f * (float)t + (float)gid); }

typedef struct shard_spec {
    const char *name;
    int first, count;     // clips gid first .. first+count-1
    bool codes;           // write codes
    const char *codec;
    int height;           // frame height (H unless testing a mismatch)
} shard_spec;

static const char *clip_split_of(int gid) { return gid == 3 || gid == 7 ? "holdout" : "train"; }

static void write_shard(const char *path, const shard_spec *sp) {
    gvm_shard_info info = {.frame_height = sp->height ? sp->height : H, .frame_width = W, .fps = 1.0,
                           .sample_rate = 32000, .created_by = "test_data_loader"};
    gvm_shard_writer *w = NULL;
    GVM_CHECK(gvm_shard_create(path, &info, &w) == GVM_OK, "create %s: %s", path, gvm_error_message());
    for (int gid = sp->first; gid < sp->first + sp->count; gid++) {
        int64_t nf = clip_frames(gid), tm = clip_steps(gid), ns = clip_samples(gid);
        uint8_t *frames = malloc((size_t)(nf * info.frame_height * W * 3));
        for (int64_t f = 0; f < nf; f++)
            for (int64_t y = 0; y < info.frame_height; y++)
                for (int64_t x = 0; x < W; x++)
                    for (int c = 0; c < 3; c++) frames[((f * info.frame_height + y) * W + x) * 3 + c] = pix(gid, f, y, x, c);
        int16_t *codes = malloc((size_t)(K_STORED * tm) * sizeof(int16_t));
        for (int k = 0; k < K_STORED; k++)
            for (int64_t t = 0; t < tm; t++) codes[k * tm + t] = code(gid, k, t);
        float *audio = malloc((size_t)ns * sizeof(float));
        for (int64_t t = 0; t < ns; t++) audio[t] = sample(gid, t);
        char id[32];
        snprintf(id, sizeof id, "clip/%03d", gid);
        gvm_clip c = {.clip_id = id, .split = clip_split_of(gid), .duration = (double)ns / 32000.0, .fps = 1.0,
                      .sample_rate = 32000, .frames = frames, .num_frames = nf, .height = info.frame_height,
                      .width = W, .audio = audio, .num_samples = ns};
        if (sp->codes) c.codes = (gvm_codes){codes, K_STORED, tm, 50.0, sp->codec ? sp->codec : "encodec_32khz"};
        GVM_CHECK(gvm_shard_add_clip(w, &c) == GVM_OK, "add clip %d: %s", gid, gvm_error_message());
        free(frames);
        free(codes);
        free(audio);
    }
    GVM_CHECK(gvm_shard_writer_close(w, true) == GVM_OK, "close %s: %s", path, gvm_error_message());
}

// The run used by most tests: folder "ds" with train-000 (gid 0..3), train-001 (gid 4..9), eval-000
// (gid 100, 101), and files the listing must skip.
enum { M = 10 };
static int gid_of(int shard, int64_t local) { return shard == 0 ? (int)local : 4 + (int)local; }

static void write_dataset(void) {
    make_dir("ds");
    write_shard(path_in("ds", "train-001.h5"), &(shard_spec){"train-001", 4, 6, true, NULL, 0});
    write_shard(path_in("ds", "train-000.h5"), &(shard_spec){"train-000", 0, 4, true, NULL, 0});
    write_shard(path_in("ds", "eval-000.h5"), &(shard_spec){"eval-000", 100, 2, true, NULL, 0});
    FILE *f = fopen(path_in("ds", "train-002.h5.tmp"), "w");  // a shard being written: not listed
    fputs("not yet", f);
    fclose(f);
    f = fopen(path_in("ds", "notes.txt"), "w");
    fputs("hello", f);
    fclose(f);
}

static gvm_loader_config base_config(void) {
    gvm_loader_config c = gvm_loader_config_default();
    static char folder[600];
    snprintf(folder, sizeof folder, "%s/ds", g_dir);
    c.folder = folder;
    c.split = "train";
    c.batch_size = 3;
    c.parts = GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES;
    c.frames = 4;
    c.code_steps = 8;
    c.codebooks = 4;
    c.code_pad = -100;
    c.codec = "encodec_32khz";
    c.audio_samples = 50;
    c.seed = 1234;
    return c;
}

static const char *folder_of(const char *sub) {
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, sub);
    return buf;
}

static gvm_loader *open_or_fail(const gvm_loader_config *c, const char *name) {
    gvm_loader *l = NULL;
    gvm_status st = gvm_loader_open(c, &l);
    TEST_CHECK(st == GVM_OK, name, "open: %s", gvm_error_message());
    return st == GVM_OK ? l : NULL;
}

// ---- checking a batch against the content written ---------------------------------------------------------------------
// Every value of every row: valid rows against clip content, padding rows against zeros and masks 0.
static bool check_batch(const gvm_loader_batch *b, const gvm_loader_config *c, const char *name) {
    int64_t B = c->batch_size, tv = c->frames, tm = c->code_steps, K = c->codebooks, ta = c->audio_samples;
    int bad = 0;
#define EXPECT(cond, ...) \
    do { if (!(cond) && bad++ == 0) test_check(false, name, __VA_ARGS__); } while (0)
    EXPECT(b->size == B && b->count >= 0 && b->count <= B, "size %lld count %lld", (long long)b->size,
           (long long)b->count);
    EXPECT(!(c->parts & GVM_CLIP_FRAMES) == !b->frames && !(c->parts & GVM_CLIP_CODES) == !b->codes &&
               !(c->parts & GVM_CLIP_AUDIO) == !b->audio, "tensors of the parts asked for");
    if (b->frames) {
        EXPECT(b->frames->dtype == GVM_F32 && b->frames->ndim == 5 && b->frames->shape[0] == B &&
                   b->frames->shape[1] == tv && b->frames->shape[2] == 3 && b->frames->shape[3] == H &&
                   b->frames->shape[4] == W && b->frame_mask->dtype == GVM_BOOL && b->frame_mask->shape[1] == tv,
               "frames shape");
    }
    if (b->codes)
        EXPECT(b->codes->dtype == GVM_I32 && b->codes->ndim == 3 && b->codes->shape[1] == K &&
                   b->codes->shape[2] == tm && b->code_mask->shape[1] == tm, "codes shape");
    if (b->audio)
        EXPECT(b->audio->dtype == GVM_F32 && b->audio->shape[1] == ta && b->audio_mask->shape[1] == ta, "audio shape");
    if (bad) return false;
    for (int64_t i = 0; i < B; i++) {
        bool valid = i < b->count;
        int gid = valid ? gid_of(b->shard[i], b->shard_clip[i]) : -1;
        EXPECT(valid ? b->clip[i] >= 0 && b->shard[i] >= 0 : b->clip[i] == -1 && b->shard[i] == -1 &&
                                                                   b->shard_clip[i] == -1, "row %lld indices", (long long)i);
        if (b->frames) {
            const float *fr = gvm_tensor_f32(b->frames) + i * tv * 3 * H * W;
            const uint8_t *mask = gvm_tensor_u8(b->frame_mask) + i * tv;
            int64_t n = valid ? (clip_frames(gid) < tv ? clip_frames(gid) : tv) : 0;
            EXPECT(b->frame_len[i] == n, "row %lld: frame_len %lld, want %lld", (long long)i,
                   (long long)b->frame_len[i], (long long)n);
            for (int64_t f = 0; f < tv; f++) {
                EXPECT(mask[f] == (f < n), "row %lld frame %lld: mask %d", (long long)i, (long long)f, mask[f]);
                for (int ch = 0; ch < 3; ch++)
                    for (int64_t y = 0; y < H; y++)
                        for (int64_t x = 0; x < W; x++) {
                            float want = f < n ? (float)(((double)pix(gid, f, y, x, ch) / 255.0 - MEAN[ch]) / STD[ch])
                                               : 0.0f;
                            float got = fr[((f * 3 + ch) * H + y) * W + x];
                            EXPECT(got == want, "row %lld (clip %d) frame %lld channel %d (%lld, %lld): %.9g, want %.9g",
                                   (long long)i, gid, (long long)f, ch, (long long)y, (long long)x, got, want);
                        }
            }
        }
        if (b->codes) {
            const int32_t *co = gvm_tensor_i32(b->codes) + i * K * tm;
            const uint8_t *mask = gvm_tensor_u8(b->code_mask) + i * tm;
            int64_t n = valid ? (clip_steps(gid) < tm ? clip_steps(gid) : tm) : 0;
            EXPECT(b->code_len[i] == n, "row %lld: code_len %lld, want %lld", (long long)i, (long long)b->code_len[i],
                   (long long)n);
            for (int64_t t = 0; t < tm; t++) {
                EXPECT(mask[t] == (t < n), "row %lld step %lld: code mask %d", (long long)i, (long long)t, mask[t]);
                for (int k = 0; k < K; k++) {
                    int32_t want = t < n ? code(gid, k, t) : c->code_pad;
                    EXPECT(co[k * tm + t] == want, "row %lld (clip %d) codebook %d step %lld: %d, want %d",
                           (long long)i, gid, k, (long long)t, co[k * tm + t], want);
                }
            }
        }
        if (b->audio) {
            const float *au = gvm_tensor_f32(b->audio) + i * ta;
            const uint8_t *mask = gvm_tensor_u8(b->audio_mask) + i * ta;
            int64_t n = valid ? (clip_samples(gid) < ta ? clip_samples(gid) : ta) : 0;
            EXPECT(b->audio_len[i] == n, "row %lld: audio_len", (long long)i);
            for (int64_t t = 0; t < ta; t++) {
                float want = t < n ? sample(gid, t) : 0.0f;
                EXPECT(mask[t] == (t < n) && au[t] == want, "row %lld (clip %d) sample %lld: %g mask %d, want %g",
                       (long long)i, gid, (long long)t, au[t], mask[t], want);
            }
        }
    }
#undef EXPECT
    return test_check(bad == 0, name, "%d wrong values", bad);
}

// FNV-1a over a batch's clips and values: equal batches hash equal.
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
static uint64_t batch_hash(const gvm_loader_batch *b) {
    uint64_t h = fnv(14695981039346656037ull, b->clip, (size_t)b->size * sizeof(int64_t));
    h = fnv(h, &b->count, sizeof b->count);
    gvm_tensor *ts[6] = {b->frames, b->frame_mask, b->codes, b->code_mask, b->audio, b->audio_mask};
    for (int i = 0; i < 6; i++)
        if (ts[i]) h = fnv(h, ts[i]->data, gvm_tensor_nbytes(ts[i]));
    return h;
}

// ---- round trip -----------------------------------------------------------------------------------------------------
static void test_round_trip(void) {
    gvm_loader_config c = base_config();
    c.shuffle = false;  // index order: clip g of the run is gid g
    gvm_loader *l = open_or_fail(&c, "round trip");
    if (!l) return;
    TEST_CHECK(gvm_loader_shard_count(l) == 2 && contains(gvm_loader_shard_path(l, 0), "/train-000.h5") &&
                   contains(gvm_loader_shard_path(l, 1), "/train-001.h5"),
               "folder listing: train-*.h5 sorted", "%d shards: %s, %s", gvm_loader_shard_count(l),
               gvm_loader_shard_path(l, 0), gvm_loader_shard_path(l, 1));
    TEST_CHECK(gvm_loader_clip_count(l) == M && gvm_loader_batches_per_epoch(l) == 4, "round trip: counts",
               "%lld clips, %lld batches", (long long)gvm_loader_clip_count(l),
               (long long)gvm_loader_batches_per_epoch(l));
    const gvm_shard_info *info = gvm_loader_info(l);
    TEST_CHECK(info->frame_height == H && info->frame_width == W && info->sample_rate == 32000, "round trip: info",
               "%dx%d %d Hz", info->frame_height, info->frame_width, info->sample_rate);
    for (int e = 0; e < 2; e++)
        for (int bi = 0; bi < 4; bi++) {
            gvm_loader_batch b;
            gvm_status st = gvm_loader_next(l, &b);
            if (!TEST_CHECK(st == GVM_OK, "round trip: next", "%s", gvm_error_message())) break;
            int64_t want_count = bi < 3 ? 3 : 1;  // 10 clips in batches of 3: the last has 1 row and 2 padding rows
            bool order = b.position.epoch == e && b.position.batch == bi && b.count == want_count;
            for (int64_t i = 0; i < b.count; i++) order = order && b.clip[i] == bi * 3 + i;
            TEST_CHECK(order, "round trip: index order, count, position", "epoch %d batch %d: position {%lld, %lld}, "
                       "count %lld", e, bi, (long long)b.position.epoch, (long long)b.position.batch,
                       (long long)b.count);
            check_batch(&b, &c, "round trip: values");
        }
    gvm_loader_stats s = gvm_loader_get_stats(l);
    TEST_CHECK(s.batches == 8 && s.clips_read >= 20, "round trip: stats", "%lld batches, %lld clips read",
               (long long)s.batches, (long long)s.clips_read);
    gvm_loader_close(l);

    // Parts left out, fewer codebooks than stored (the first K), another pad value; an explicit shard list.
    const char *list[2] = {path_in("ds", "train-001.h5"), path_in("ds", "train-000.h5")};
    c = base_config();
    c.shuffle = false;
    c.shards = list;
    c.num_shards = 2;
    c.folder = NULL;
    c.parts = GVM_CLIP_CODES;
    c.codebooks = 2;
    c.code_pad = 2048;
    c.batch_size = 4;
    if ((l = open_or_fail(&c, "codes only"))) {
        gvm_loader_batch b;
        if (TEST_CHECK(gvm_loader_next(l, &b) == GVM_OK, "codes only: next", "%s", gvm_error_message())) {
            // The list's order is kept: shard 0 is train-001 (gid 4..): remap for check_batch.
            TEST_CHECK(b.shard[0] == 0 && b.shard_clip[0] == 0 && !b.frames && !b.audio, "codes only: list order",
                       "shard %d", b.shard[0]);
            gvm_loader_batch copy = b;
            int32_t shard_swapped[4];
            for (int i = 0; i < 4; i++) shard_swapped[i] = 1 - b.shard[i];  // gid_of expects train-000 as shard 0
            copy.shard = shard_swapped;
            check_batch(&copy, &c, "codes only: values");
        }
        gvm_loader_close(l);
    }

    // Audio only (a codec pass), with the clip_split filter: gid 3 and 7 are "holdout".
    c = base_config();
    c.shuffle = false;
    c.parts = GVM_CLIP_AUDIO;
    c.clip_split = "train";
    c.batch_size = 8;
    c.audio_samples = 80;  // longer than every clip: all padded
    if ((l = open_or_fail(&c, "audio only"))) {
        gvm_loader_batch b;
        TEST_CHECK(gvm_loader_clip_count(l) == 8, "clip_split: count", "%lld", (long long)gvm_loader_clip_count(l));
        if (TEST_CHECK(gvm_loader_next(l, &b) == GVM_OK, "audio only: next", "%s", gvm_error_message())) {
            bool ok = b.count == 8;
            for (int i = 0; i < b.count; i++)
                ok = ok && strcmp(clip_split_of(gid_of(b.shard[i], b.shard_clip[i])), "train") == 0;
            TEST_CHECK(ok, "clip_split: only train clips", "count %lld", (long long)b.count);
            check_batch(&b, &c, "audio only: values");
        }
        gvm_loader_close(l);
    }

    // The eval split of the same folder.
    c = base_config();
    c.split = "eval";
    if ((l = open_or_fail(&c, "eval split"))) {
        TEST_CHECK(gvm_loader_shard_count(l) == 1 && gvm_loader_clip_count(l) == 2, "eval split: one shard, 2 clips",
                   "%d shards, %lld clips", gvm_loader_shard_count(l), (long long)gvm_loader_clip_count(l));
        gvm_loader_close(l);
    }
}

// ---- rank sharding and shuffles -----------------------------------------------------------------------------------------
static void test_ranks(void) {
    for (int drop = 0; drop < 2; drop++)
        for (int n = 1; n <= 4; n++) {
            const int64_t B = 2;
            int64_t nb_want = drop ? M / (n * B) : (M + n * B - 1) / (n * B);
            for (int e = 0; e < 2; e++) {
                int seen[M] = {0}, total = 0;
                bool ok = true;
                char name[96];
                snprintf(name, sizeof name, "ranks: N=%d drop_last=%d epoch %d", n, drop, e);
                int64_t perm[M];
                gvm_loader_permutation(77, e, M, true, perm);
                for (int r = 0; r < n; r++) {
                    gvm_loader_config c = base_config();
                    c.parts = GVM_CLIP_CODES;
                    c.batch_size = B;
                    c.seed = 77;
                    c.rank = r;
                    c.world_size = n;
                    c.drop_last = drop;
                    c.start = (gvm_loader_position){e, 0};
                    c.prefetch = 1 + r % 3;  // neither the depth nor the worker count may change anything
                    c.workers = 1 + (r + n) % 3;
                    gvm_loader *l = open_or_fail(&c, name);
                    if (!l) return;
                    ok = ok && gvm_loader_batches_per_epoch(l) == nb_want;
                    for (int64_t bi = 0; bi < nb_want; bi++) {
                        gvm_loader_batch b;
                        if (gvm_loader_next(l, &b) != GVM_OK) {
                            ok = test_check(false, name, "next: %s", gvm_error_message());
                            break;
                        }
                        // Rank-local position q = bi*B + j is global position q*N + r: valid rows while that is < M.
                        int64_t want_count = 0;
                        for (int64_t j = 0; j < B; j++) want_count += (bi * B + j) * n + r < M;
                        ok = ok && b.count == want_count && b.position.epoch == e && b.position.batch == bi;
                        for (int64_t j = 0; j < b.count; j++) {
                            ok = ok && b.clip[j] >= 0 && b.clip[j] < M && b.clip[j] == perm[(bi * B + j) * n + r];
                            if (b.clip[j] >= 0 && b.clip[j] < M) seen[b.clip[j]]++;
                            total++;
                        }
                        check_batch(&b, &c, name);
                    }
                    gvm_loader_position p = gvm_loader_get_position(l);
                    ok = ok && p.epoch == e + 1 && p.batch == 0;
                    gvm_loader_close(l);
                }
                int dup = 0, covered = 0;
                for (int i = 0; i < M; i++) {
                    dup += seen[i] > 1;
                    covered += seen[i] == 1;
                }
                int want_total = drop ? (int)(nb_want * n * B) : M;
                TEST_CHECK(ok && dup == 0 && total == want_total && covered == want_total, name,
                           "ok %d, %d clips seen twice, %d rows for %d wanted, %d distinct", ok, dup, total,
                           want_total, covered);
            }
        }
}

static void test_shuffle(void) {
    // The loader's epoch order, twice with one seed, once with another.
    int64_t order[3][3][M];  // [loader][epoch][position]
    uint64_t seeds[3] = {5, 5, 6};
    for (int li = 0; li < 3; li++) {
        gvm_loader_config c = base_config();
        c.parts = GVM_CLIP_AUDIO;
        c.batch_size = 5;
        c.seed = seeds[li];
        gvm_loader *l = open_or_fail(&c, "shuffle");
        if (!l) return;
        for (int e = 0; e < 3; e++)
            for (int bi = 0; bi < 2; bi++) {
                gvm_loader_batch b;
                GVM_CHECK(gvm_loader_next(l, &b) == GVM_OK, "%s", gvm_error_message());
                memcpy(&order[li][e][bi * 5], b.clip, 5 * sizeof(int64_t));
            }
        gvm_loader_close(l);
    }
    for (int e = 0; e < 3; e++) {
        int seen[M] = {0}, distinct = 0;
        for (int i = 0; i < M; i++) seen[order[0][e][i]]++;
        for (int i = 0; i < M; i++) distinct += seen[i] == 1;
        TEST_CHECK(distinct == M, "shuffle: each epoch a permutation", "epoch %d: %d distinct", e, distinct);
        TEST_CHECK(memcmp(order[0][e], order[1][e], sizeof order[0][e]) == 0, "shuffle: same seed, same order",
                   "epoch %d", e);
        TEST_CHECK(memcmp(order[0][e], order[2][e], sizeof order[0][e]) != 0, "shuffle: other seed, other order",
                   "epoch %d", e);
    }
    TEST_CHECK(memcmp(order[0][0], order[0][1], sizeof order[0][0]) != 0 &&
                   memcmp(order[0][1], order[0][2], sizeof order[0][0]) != 0,
               "shuffle: epochs differ", "%s", "");

    // Uniformity of the permutation: over E epochs each of m clips lands in each of m positions E/m times on
    // average. Chi-square over the m*m cells with (m-1)^2 degrees of freedom (= 16): the 1e-6 tail is ~ 55.
    enum { MM = 5, E = 20000 };
    int64_t cnt[MM][MM] = {{0}}, p[MM];
    for (int e = 0; e < E; e++) {
        gvm_loader_permutation(99, e, MM, true, p);
        for (int i = 0; i < MM; i++) cnt[i][p[i]]++;
    }
    double chi2 = 0, want = (double)E / MM;
    for (int i = 0; i < MM; i++)
        for (int j = 0; j < MM; j++) chi2 += ((double)cnt[i][j] - want) * ((double)cnt[i][j] - want) / want;
    TEST_CHECK(chi2 < 55.0, "shuffle: uniform positions", "chi-square %.1f over 16 degrees of freedom", chi2);
    gvm_loader_permutation(99, 3, MM, false, p);
    TEST_CHECK(p[0] == 0 && p[4] == 4, "shuffle off: identity", "%s", "");
}

// ---- resume -------------------------------------------------------------------------------------------------------------
static void test_resume(void) {
    enum { TOTAL = 12 };
    gvm_loader_config c = base_config();
    c.batch_size = 2;
    c.world_size = 2;
    c.rank = 1;
    c.drop_last = true;  // 10 clips, 2 ranks, batches of 2: 2 batches per epoch, 2 clips dropped each epoch
    c.seed = 31;
    gvm_loader *l = open_or_fail(&c, "resume");
    if (!l) return;
    int64_t nb = gvm_loader_batches_per_epoch(l);
    uint64_t hash[TOTAL];
    gvm_loader_position pos[TOTAL + 1];
    bool ok = true;
    pos[0] = gvm_loader_get_position(l);
    for (int k = 0; k < TOTAL; k++) {
        gvm_loader_batch b;
        if (gvm_loader_next(l, &b) != GVM_OK) {
            TEST_CHECK(false, "resume: next", "%s", gvm_error_message());
            gvm_loader_close(l);
            return;
        }
        hash[k] = batch_hash(&b);
        if (k == 3) gvm_loader_release(l);  // an early release must not change what comes next
        pos[k + 1] = gvm_loader_get_position(l);
        ok = ok && pos[k + 1].epoch == (k + 1) / nb && pos[k + 1].batch == (k + 1) % nb &&
             b.position.epoch == k / nb && b.position.batch == k % nb;
    }
    gvm_loader_close(l);
    TEST_CHECK(nb == 2 && ok, "resume: positions", "%lld batches per epoch", (long long)nb);

    // Resume after k batches: k = 3 (mid-epoch), 4 (an epoch boundary), 7; and {1, nb} = {2, 0}.
    int ks[3] = {3, 4, 7};
    for (int i = 0; i < 4; i++) {
        int k = i < 3 ? ks[i] : 4;
        c.start = i < 3 ? pos[k] : (gvm_loader_position){1, nb};
        c.workers = 1 + i % 3;  // 1, 2, 3, 1 threads: the batches must not depend on it
        char name[64];
        snprintf(name, sizeof name, "resume after %d batches%s", k, i == 3 ? " (unnormalised position)" : "");
        if (!(l = open_or_fail(&c, name))) continue;
        gvm_loader_position p = gvm_loader_get_position(l);
        bool same = p.epoch == pos[k].epoch && p.batch == pos[k].batch;
        for (int j = k; j < TOTAL; j++) {
            gvm_loader_batch b;
            same = same && gvm_loader_next(l, &b) == GVM_OK && batch_hash(&b) == hash[j];
        }
        TEST_CHECK(same, name, "differs from the uninterrupted run (start {%lld, %lld})", (long long)c.start.epoch,
                   (long long)c.start.batch);
        gvm_loader_close(l);
    }
    // Hashes of different batches differ (else the comparison above proves nothing).
    TEST_CHECK(hash[0] != hash[1] && hash[0] != hash[2], "resume: hashes tell batches apart", "%s", "");
}

// ---- errors -------------------------------------------------------------------------------------------------------------

// Read batches until one fails; expect `status` at batch `bad_batch` with every needle in the message, the
// same error again on the next call, and nothing before it.
static void expect_next_fails_with(gvm_loader_config *c, const char *name, int bad_batch, gvm_status status,
                                   const char *n1, const char *n2, const char *n3) {
    gvm_loader *l = open_or_fail(c, name);
    if (!l) return;
    gvm_loader_batch b;
    int k = 0;
    gvm_status st = GVM_OK;
    for (; k <= bad_batch && (st = gvm_loader_next(l, &b)) == GVM_OK; k++) {}
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", gvm_error_message());
    TEST_CHECK(k == bad_batch && st == status && contains(msg, n1) && (!n2 || contains(msg, n2)) &&
                   (!n3 || contains(msg, n3)),
               name, "failed at batch %d with %s: %s", k, gvm_status_name(st), msg);
    gvm_loader_position p = gvm_loader_get_position(l);
    TEST_CHECK(gvm_loader_next(l, &b) == status && p.batch == c->start.batch + bad_batch && strcmp(gvm_error_message(), msg) == 0,
               name, "the error is not sticky, or the position moved: {%lld, %lld}", (long long)p.epoch,
               (long long)p.batch);
    gvm_loader_close(l);
}

// The same with one thread and with 4 (the error of the first bad row wins, however rows were spread).
static void expect_next_fails(gvm_loader_config *c, const char *name, int bad_batch, gvm_status status,
                              const char *n1, const char *n2, const char *n3) {
    char name4[128];
    snprintf(name4, sizeof name4, "%s (4 workers)", name);
    c->workers = 1;
    expect_next_fails_with(c, name, bad_batch, status, n1, n2, n3);
    c->workers = 4;
    expect_next_fails_with(c, name4, bad_batch, status, n1, n2, n3);
    c->workers = 1;
}

static void test_errors(void) {
    gvm_loader_config c;
    gvm_loader *l = NULL;
    gvm_status st;

    // A truncated shard: the open fails and names the file.
    make_dir("trunc");
    copy_file(path_in("ds", "train-000.h5"), path_in("trunc", "train-000.h5"), -1);
    copy_file(path_in("ds", "train-001.h5"), path_in("trunc", "train-001.h5"),
              file_size(path_in("ds", "train-001.h5")) * 2 / 3);
    c = base_config();
    c.folder = folder_of("trunc");
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_FORMAT && !l && contains(gvm_error_message(), "trunc/train-001.h5") &&
                   contains(gvm_error_message(), "truncated"),
               "truncated shard: open fails", "%s: %s", gvm_status_name(st), gvm_error_message());

    // A damaged frames chunk of clip 2: batch 1 (clips 2, 3 in index order) fails, naming the shard and clip.
    make_dir("damaged");
    copy_file(path_in("ds", "train-000.h5"), path_in("damaged", "train-000.h5"), -1);
    copy_file(path_in("ds", "train-001.h5"), path_in("damaged", "train-001.h5"), -1);
    // Clip 3 (row 1) is damaged too: with several workers it may fail first, but row 0's error is reported.
    if (TEST_CHECK(damage_chunk(path_in("damaged", "train-000.h5"), "clips/00000002/frames") &&
                       damage_chunk(path_in("damaged", "train-000.h5"), "clips/00000003/audio"),
                   "damage a chunk", "no chunk found")) {
        c = base_config();
        c.folder = folder_of("damaged");
        c.shuffle = false;
        c.batch_size = 2;
        expect_next_fails(&c, "damaged chunk: next fails", 1, GVM_ERR_FORMAT, "damaged/train-000.h5",
                          "clip 2 (clip/002)", "epoch 0, batch 1");
    }

    // No codes in a shard, and codes of another codec.
    make_dir("nocodes");
    write_shard(path_in("nocodes", "train-000.h5"), &(shard_spec){"train-000", 0, 4, false, NULL, 0});
    write_shard(path_in("nocodes", "train-001.h5"), &(shard_spec){"train-001", 4, 6, true, "dac_44khz", 0});
    c = base_config();
    c.folder = folder_of("nocodes");
    c.shuffle = false;
    c.batch_size = 4;
    expect_next_fails(&c, "no codes: next fails", 0, GVM_ERR_FORMAT, "nocodes/train-000.h5", "clip 0 (clip/000)",
                      "gvm encode");
    c.start = (gvm_loader_position){0, 1};  // clips 4..7: the other codec
    expect_next_fails(&c, "codec mismatch: next fails", 0, GVM_ERR_FORMAT, "dac_44khz", "encodec_32khz",
                      "nocodes/train-001.h5");
    c.start = (gvm_loader_position){0, 0};
    c.parts = GVM_CLIP_FRAMES | GVM_CLIP_AUDIO;  // without codes the same shards are fine
    if ((l = open_or_fail(&c, "no codes asked"))) {
        gvm_loader_batch b;
        TEST_CHECK(gvm_loader_next(l, &b) == GVM_OK && check_batch(&b, &c, "no codes asked: values"), "no codes asked",
                   "%s", gvm_error_message());
        gvm_loader_close(l);
    }
    c.parts = GVM_CLIP_CODES;
    c.codebooks = 5;  // more codebooks than stored
    c.codec = NULL;
    c.start = (gvm_loader_position){0, 1};
    expect_next_fails(&c, "too few codebooks: next fails", 0, GVM_ERR_FORMAT, "4 codebooks", "wants 5", NULL);

    // Shards that disagree on the frame size.
    make_dir("mixed");
    write_shard(path_in("mixed", "train-000.h5"), &(shard_spec){"train-000", 0, 2, true, NULL, 0});
    write_shard(path_in("mixed", "train-001.h5"), &(shard_spec){"train-001", 4, 2, true, NULL, 8});
    c = base_config();
    c.folder = folder_of("mixed");
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_FORMAT && contains(gvm_error_message(), "mixed/train-001.h5") &&
                   contains(gvm_error_message(), "must agree"),
               "mixed frame sizes: open fails", "%s: %s", gvm_status_name(st), gvm_error_message());

    // Bad settings.
    c = base_config();
    c.rank = 2;
    c.world_size = 2;
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), "rank 2 of world size 2"), "bad rank", "%s",
               gvm_error_message());
    c = base_config();
    c.batch_size = 6;
    c.world_size = 2;
    c.drop_last = true;  // 10 clips < 2 x 6
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), "fewer than one batch"), "too few clips", "%s",
               gvm_error_message());
    c = base_config();
    c.split = "test";
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_NOT_FOUND && contains(gvm_error_message(), "test-*.h5"), "no shard of the split", "%s",
               gvm_error_message());
    c = base_config();
    c.start = (gvm_loader_position){0, 5};  // 4 batches per epoch
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), "start position"), "start past the epoch", "%s",
               gvm_error_message());
    c = base_config();
    c.parts = GVM_CLIP_FEATURES;
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_INVALID, "parts: features", "%s", gvm_error_message());
    c = base_config();
    c.frames = 0;
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_INVALID && contains(gvm_error_message(), "frames per clip 0"), "frames 0", "%s",
               gvm_error_message());
    c = base_config();
    c.clip_split = "nothing";
    st = gvm_loader_open(&c, &l);
    TEST_CHECK(st == GVM_ERR_NOT_FOUND && contains(gvm_error_message(), "no clips with split 'nothing'"),
               "clip_split matches nothing", "%s", gvm_error_message());
}

// ---- pinned buffers ---------------------------------------------------------------------------------------------------
static void test_pinned(void) {
    gvm_loader_config c = base_config();
    c.pinned = true;
    gvm_loader *l = NULL;
    bool gpu = gvm_device_init(GVM_DEVICE_CUDA) == GVM_OK;
    gvm_status st = gvm_loader_open(&c, &l);
    if (!gpu) {
        TEST_CHECK(st == GVM_ERR_DEVICE && !l && contains(gvm_error_message(), "pinned"), "pinned without a GPU",
                   "%s: %s", gvm_status_name(st), gvm_error_message());
        printf("SKIPPED: pinned buffers with a GPU (no usable CUDA device)\n");
        return;
    }
    if (!TEST_CHECK(st == GVM_OK, "pinned: open", "%s", gvm_error_message())) return;
    c.pinned = false;
    gvm_loader *plain = open_or_fail(&c, "pinned: plain twin");
    for (int k = 0; plain && k < 6; k++) {
        gvm_loader_batch a, b;
        bool ok = gvm_loader_next(l, &a) == GVM_OK && gvm_loader_next(plain, &b) == GVM_OK;
        TEST_CHECK(ok && batch_hash(&a) == batch_hash(&b) && check_batch(&a, &c, "pinned: values"),
                   "pinned: same batches", "batch %d", k);
    }
    gvm_loader_close(plain);
    gvm_loader_close(l);
}

// ---- closing mid-epoch ----------------------------------------------------------------------------------------------------
static void test_close(void) {
    gvm_loader_config c = base_config();
    c.batch_size = 1;
    c.prefetch = 3;
    gvm_loader *l = NULL;
    // Right after open (the thread is filling), after one batch (ring full, thread blocked), after release.
    for (int i = 0; i < 3; i++) {
        c.workers = 1 + i;
        if (!(l = open_or_fail(&c, "close mid-epoch"))) return;
        gvm_loader_batch b;
        if (i >= 1) TEST_CHECK(gvm_loader_next(l, &b) == GVM_OK, "close: next", "%s", gvm_error_message());
        if (i == 2) {
            gvm_loader_release(l);
            gvm_loader_release(l);  // twice is harmless
        }
        gvm_loader_close(l);
    }
    gvm_loader_close(NULL);
    TEST_CHECK(true, "close mid-epoch", "%s", "");
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    snprintf(g_dir, sizeof g_dir, "%s/gvm-loader-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    GVM_CHECK(mkdtemp(g_dir), "cannot make a temporary folder");
    write_dataset();
    test_round_trip();
    test_ranks();
    test_shuffle();
    test_resume();
    test_errors();
    test_pinned();
    test_close();
    int rc = test_finish();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (rc == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rc;
}
