// test_safetensors.c: the safetensors reader and atomic writer (core/safetensors.c).
//
//  * a file written by Python's safetensors (tests/golden/data/infra/st_python.safetensors, from
//    gen_infra.py): every dtype gvm reads, a 0-d and an empty tensor, metadata, conversions on read;
//  * C write -> C read round trip of every dtype, ranks 0..6, metadata, exact file layout;
//  * a corpus of broken files, made here in a temporary folder: each must give its status (FORMAT, or IO)
//    with the file's name (and the tensor's, where one is at fault) in the message, and never crash;
//    each runs in a forked child so a crash or a sanitizer report fails that case alone;
//  * valid files whose tensors are not aligned to their element size (Python reads them);
//  * atomic writes that fail (temporary name taken, target a folder, file size limit, no such folder)
//    return GVM_ERR_IO, leave the existing file intact and leave no temporary file behind.
//
// `test_safetensors --write-for-python PATH` writes the file that tests/check_safetensors_python.py
// loads with Python's safetensors.
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_util.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    GVM_CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return (size_t)-1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

// A safetensors file from a header string and data bytes; header_len < 0 writes the true length.
static void write_st(const char *path, const char *header, long long header_len, const void *data, size_t data_len) {
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *buf = malloc(n ? n : 1);
    uint64_t len = header_len < 0 ? (uint64_t)hl : (uint64_t)header_len;
    memcpy(buf, &len, 8);
    memcpy(buf + 8, header, hl);
    if (data_len) memcpy(buf + 8 + hl, data, data_len);
    write_bytes(path, buf, n);
    free(buf);
}

// Run fn(arg) in a child: returns its exit code, or 1000 + signal when it died (crash, sanitizer abort).
static int run_isolated(int (*fn)(const void *), const void *arg) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(fn(arg));
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

// ---- a file from Python ---------------------------------------------------------------------------------------
static bool entry_is(const gvm_safetensors *st, const char *name, gvm_dtype dtype, int ndim, const int64_t *shape) {
    const gvm_st_entry *e = gvm_safetensors_find(st, name);
    bool ok = e && e->dtype == dtype && e->ndim == ndim && strcmp(e->name, name) == 0;
    for (int d = 0; ok && d < ndim; d++) ok = e->shape[d] == shape[d];
    return TEST_CHECK(ok, "python file: entry", "%s: wrong dtype or shape", name);
}

static void test_python_file(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/infra/st_python.safetensors", test_golden_dir());
    gvm_safetensors *st = NULL;
    if (!TEST_CHECK(gvm_safetensors_open(path, &st) == GVM_OK, "python file opens", "%s", gvm_error_message())) return;
    TEST_CHECK(gvm_safetensors_count(st) == 11 && strcmp(gvm_safetensors_path(st), path) == 0, "python file count",
               "%d entries", gvm_safetensors_count(st));
    entry_is(st, "f32", GVM_F32, 2, (int64_t[]){2, 3});
    entry_is(st, "f16", GVM_F16, 1, (int64_t[]){5});
    entry_is(st, "bf16", GVM_BF16, 1, (int64_t[]){4});
    entry_is(st, "i64", GVM_I64, 2, (int64_t[]){2, 2});
    entry_is(st, "i32", GVM_I32, 1, (int64_t[]){3});
    entry_is(st, "i16", GVM_I16, 1, (int64_t[]){2});
    entry_is(st, "u8", GVM_U8, 1, (int64_t[]){3});
    entry_is(st, "bool", GVM_BOOL, 1, (int64_t[]){4});
    entry_is(st, "scalar", GVM_F32, 0, NULL);
    entry_is(st, "empty", GVM_F32, 2, (int64_t[]){0, 3});
    entry_is(st, "nested.name.weight", GVM_F32, 3, (int64_t[]){2, 1, 1});
    TEST_CHECK(gvm_safetensors_find(st, "missing") == NULL && gvm_safetensors_find(st, "f3") == NULL,
               "python file: find missing", "found");

    // Raw bytes in the stored dtype (as gen_infra.py wrote them).
    static const uint16_t f16_bits[5] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x8000};
    static const uint16_t bf16_bits[4] = {0x3f80, 0xc040, 0x3e20, 0x7f62};  // 3e38 rounds to 0x7f62
    static const int64_t i64v[4] = {(1ll << 40) + 1, -5, 0, -(1ll << 62)};
    static const int32_t i32v[3] = {INT32_MIN, INT32_MAX, 7};
    static const int16_t i16v[2] = {-32768, 32767};
    static const uint8_t u8v[3] = {0, 255, 17}, boolv[4] = {1, 0, 1, 1};
    struct {
        const char *name;
        const void *want;
        size_t n;
    } raw[] = {{"f16", f16_bits, sizeof f16_bits}, {"bf16", bf16_bits, sizeof bf16_bits}, {"i64", i64v, sizeof i64v},
               {"i32", i32v, sizeof i32v},         {"i16", i16v, sizeof i16v},           {"u8", u8v, sizeof u8v},
               {"bool", boolv, sizeof boolv}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        gvm_tensor *t = NULL;
        gvm_status s = gvm_safetensors_load(st, raw[i].name, &t);
        TEST_CHECK(s == GVM_OK && t && gvm_tensor_nbytes(t) == raw[i].n && memcmp(t->data, raw[i].want, raw[i].n) == 0,
                   "python file: values", "%s differs", raw[i].name);
        gvm_tensor_free(t);
    }
    // Floats read into f32 (f16/bf16 converted); integers into i64.
    gvm_tensor *f = gvm_tensor_new(GVM_F32, 2, (int64_t[]){2, 3});
    bool ok = gvm_safetensors_read_into(st, "f32", f) == GVM_OK;
    for (int i = 0; i < 6; i++) ok &= gvm_tensor_f32(f)[i] == 0.5f * (float)i - 1.0f;
    TEST_CHECK(ok, "python file: f32 values", "wrong");
    gvm_tensor *h = gvm_tensor_new(GVM_F32, 1, (int64_t[]){5});
    ok = gvm_safetensors_read_into(st, "f16", h) == GVM_OK;
    const float hf[5] = {1.0f, -2.5f, 65504.0f, 5.9604644775390625e-8f, -0.0f};
    ok = ok && memcmp(h->data, hf, sizeof hf) == 0;
    TEST_CHECK(ok, "python file: f16 -> f32", "wrong");
    gvm_tensor *b = gvm_tensor_new(GVM_F32, 1, (int64_t[]){4});
    ok = gvm_safetensors_read_into(st, "bf16", b) == GVM_OK;
    ok = ok && gvm_tensor_f32(b)[1] == -3.0f && gvm_tensor_f32(b)[2] == 0.15625f;
    TEST_CHECK(ok, "python file: bf16 -> f32", "wrong");
    gvm_tensor *i = gvm_tensor_new(GVM_I64, 1, (int64_t[]){3});
    ok = gvm_safetensors_read_into(st, "i32", i) == GVM_OK;
    ok = ok && gvm_tensor_i64(i)[0] == INT32_MIN && gvm_tensor_i64(i)[1] == INT32_MAX;
    TEST_CHECK(ok, "python file: i32 -> i64", "wrong");
    gvm_tensor *s = gvm_tensor_new(GVM_F32, 0, NULL);
    ok = gvm_safetensors_read_into(st, "scalar", s) == GVM_OK && gvm_tensor_f32(s)[0] == 3.5f;
    TEST_CHECK(ok, "python file: 0-d tensor", "wrong");
    gvm_tensor *e = NULL;
    ok = gvm_safetensors_load(st, "empty", &e) == GVM_OK && e->numel == 0 &&
         gvm_safetensors_find(st, "empty")->nbytes == 0;
    TEST_CHECK(ok, "python file: empty tensor", "wrong");

    // Errors on read name the file and the tensor.
    gvm_tensor *wrong = gvm_tensor_new(GVM_F32, 2, (int64_t[]){3, 2});
    gvm_status st1 = gvm_safetensors_read_into(st, "f32", wrong);
    TEST_CHECK(st1 == GVM_ERR_FORMAT && contains(gvm_error_message(), path) && contains(gvm_error_message(), "f32"),
               "python file: read_into wrong shape", "%s: %s", gvm_status_name(st1), gvm_error_message());
    st1 = gvm_safetensors_read_into(st, "nope", wrong);
    TEST_CHECK(st1 == GVM_ERR_NOT_FOUND && contains(gvm_error_message(), path) && contains(gvm_error_message(), "nope"),
               "python file: read_into missing", "%s: %s", gvm_status_name(st1), gvm_error_message());
    gvm_tensor *fi = gvm_tensor_new(GVM_F32, 1, (int64_t[]){3});
    st1 = gvm_safetensors_read_into(st, "i32", fi);
    TEST_CHECK(st1 == GVM_ERR_FORMAT && contains(gvm_error_message(), "i32"), "python file: int into float refused",
               "%s: %s", gvm_status_name(st1), gvm_error_message());
    gvm_tensor *nt = (gvm_tensor *)1;
    st1 = gvm_safetensors_load(st, "nope", &nt);
    TEST_CHECK(st1 == GVM_ERR_NOT_FOUND && nt == NULL, "python file: load missing", "%s", gvm_status_name(st1));

    const char *note = gvm_safetensors_metadata(st, "note");
    TEST_CHECK(
        note && strcmp(note, "h\xc3\xa9llo from gen_infra.py") == 0 && gvm_safetensors_metadata(st, "format") == NULL,
        "python file: metadata", "note=%s", note ? note : "(null)");
    gvm_tensor *all[] = {f, h, b, i, s, e, wrong, fi};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) gvm_tensor_free(all[k]);
    gvm_safetensors_close(st);

    // A valid file with a dtype gvm does not read: refused, naming the file, tensor and dtype.
    snprintf(path, sizeof path, "%s/infra/st_python_f64.safetensors", test_golden_dir());
    gvm_status s64 = gvm_safetensors_open(path, &st);
    TEST_CHECK(s64 == GVM_ERR_FORMAT && st == NULL && contains(gvm_error_message(), path) &&
                   contains(gvm_error_message(), "double") && contains(gvm_error_message(), "F64"),
               "python F64 file refused", "%s: %s", gvm_status_name(s64), gvm_error_message());
}

// ---- C write -> C read ----------------------------------------------------------------------------------------
static void test_round_trip(void) {
    float f32v[6] = {1.5f, -2.0f, 0.0f, -0.0f, 3e38f, 1e-40f};
    uint16_t f16v[3] = {0x3c00, 0x7e00, 0x8001}, bf16v[2] = {0x3f80, 0xff80};
    int32_t i32v[2] = {-7, INT32_MAX};
    int64_t i64v[3] = {INT64_MIN, 0, INT64_MAX};
    uint8_t u8v[5] = {0, 1, 2, 254, 255}, boolv[3] = {1, 0, 1};
    int16_t i16v[4] = {-1, 2, -3, 4};
    float scalar = 42.0f, deep[2] = {7, 8};
    struct {
        const char *name;
        gvm_dtype dtype;
        int ndim;
        int64_t shape[GVM_MAX_DIMS];
        const void *data;
    } t[] = {
        {"a.f32", GVM_F32, 2, {2, 3}, f32v},
        {"b.f16", GVM_F16, 1, {3}, f16v},
        {"c.bf16", GVM_BF16, 2, {1, 2}, bf16v},
        {"d.i32", GVM_I32, 1, {2}, i32v},
        {"e.i64", GVM_I64, 1, {3}, i64v},
        {"f.u8", GVM_U8, 1, {5}, u8v},
        {"g.bool", GVM_BOOL, 1, {3}, boolv},
        {"h.i16", GVM_I16, 2, {2, 2}, i16v},
        {"scalar", GVM_F32, 0, {0}, &scalar},
        {"empty", GVM_I64, 3, {2, 0, 4}, u8v},
        {"deep", GVM_F32, 6, {1, 1, 2, 1, 1, 1}, deep},
    };
    const int n = sizeof t / sizeof t[0];
    gvm_st_writer *w = gvm_st_writer_new();
    size_t data_bytes = 0;
    for (int i = 0; i < n; i++) {
        gvm_st_writer_add(w, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, t[i].data);
        data_bytes += (size_t)gvm_shape_numel(t[i].ndim, t[i].shape) * gvm_dtype_size(t[i].dtype);
    }
    gvm_st_writer_add_metadata(w, "step", "1");
    gvm_st_writer_add_metadata(w, "step", "2");  // a key set twice keeps the last value
    gvm_st_writer_add_metadata(w, "quote", "a \"b\" \\ c\n");
    const char *path = tmp_path("round.safetensors");
    gvm_status s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    if (!TEST_CHECK(s == GVM_OK, "C write", "%s", gvm_error_message())) return;

    gvm_safetensors *st = NULL;
    if (!TEST_CHECK(gvm_safetensors_open(path, &st) == GVM_OK, "C read", "%s", gvm_error_message())) return;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const gvm_st_entry *e = gvm_safetensors_find(st, t[i].name);
        size_t nb = (size_t)gvm_shape_numel(t[i].ndim, t[i].shape) * gvm_dtype_size(t[i].dtype);
        bool ok = e && e->dtype == t[i].dtype && e->ndim == t[i].ndim && e->nbytes == nb &&
                  (nb == 0 || memcmp(e->data, t[i].data, nb) == 0);
        for (int d = 0; ok && d < t[i].ndim; d++) ok = e->shape[d] == t[i].shape[d];
        if (!ok && bad++ < 3) printf("  round trip: %s differs\n", t[i].name);
    }
    TEST_CHECK(bad == 0 && gvm_safetensors_count(st) == n, "C round trip: names, dtypes, shapes, bytes",
               "%d differ, %d entries", bad, gvm_safetensors_count(st));
    const char *step = gvm_safetensors_metadata(st, "step"), *q = gvm_safetensors_metadata(st, "quote");
    TEST_CHECK(step && strcmp(step, "2") == 0 && q && strcmp(q, "a \"b\" \\ c\n") == 0, "C round trip: metadata",
               "step=%s", step ? step : "(null)");
    // Every tensor's data is aligned to its element size within the file (the mapping is page aligned),
    // as Python's writer guarantees, so readers may cast in place.
    int misaligned = 0;
    for (int i = 0; i < n; i++) {
        const gvm_st_entry *e = gvm_safetensors_find(st, t[i].name);
        if (e && e->nbytes && (uintptr_t)e->data % gvm_dtype_size(e->dtype) != 0) {
            if (!misaligned++) printf("  %s (%s) starts at a misaligned offset\n", e->name, gvm_dtype_name(e->dtype));
        }
    }
    TEST_CHECK(misaligned == 0, "C writer aligns tensor data", "%d tensors misaligned", misaligned);
    gvm_safetensors_close(st);

    // Layout: 8-byte length, header padded to a multiple of 8 (data 8-aligned), then exactly the data.
    static char buf[1 << 16];
    size_t size = read_file(path, buf, sizeof buf);
    uint64_t hl = 0;
    memcpy(&hl, buf, 8);
    TEST_CHECK(hl % 8 == 0 && size == 8 + hl + data_bytes && buf[8] == '{', "C write layout",
               "header %llu, size %zu, data %zu", (unsigned long long)hl, size, data_bytes);

    // No tensors, no metadata: still a valid file.
    w = gvm_st_writer_new();
    const char *p0 = tmp_path("nothing.safetensors");
    s = gvm_st_writer_write(w, p0);
    gvm_st_writer_free(w);
    st = NULL;
    TEST_CHECK(s == GVM_OK && gvm_safetensors_open(p0, &st) == GVM_OK && gvm_safetensors_count(st) == 0,
               "C write: empty file", "%s", gvm_error_message());
    gvm_safetensors_close(st);
    gvm_safetensors_close(NULL);
}

// ---- broken files -----------------------------------------------------------------------------------------------
typedef struct {
    const char *file;     // name in the temporary folder
    const char *header;   // JSON (NULL: `raw` bytes are the whole file)
    long long header_len; // < 0: true length
    size_t data_len;      // bytes of data after the header (zeros)
    gvm_status want;      // GVM_ERR_FORMAT, or GVM_ERR_IO
    const char *tensor;   // must appear in the message (NULL: only the file name)
    const char *raw;
    size_t raw_len;
} broken_case;

static int check_broken(const void *arg) {
    const broken_case *c = arg;
    const char *path = tmp_path(c->file);
    gvm_error_clear();
    gvm_safetensors *st = (gvm_safetensors *)1;
    gvm_status s = gvm_safetensors_open(path, &st);
    const char *msg = gvm_error_message();
    bool ok = (s == c->want || (c->want == GVM_ERR_IO && s == GVM_ERR_FORMAT)) && st == NULL && contains(msg, path) &&
              (!c->tensor || contains(msg, c->tensor));
    if (!ok) printf("  %s: status %s, message '%s'\n", c->file, gvm_status_name(s), msg);
    if (s == GVM_OK) gvm_safetensors_close(st);
    fflush(stdout);
    return ok ? 10 : 11;
}

static void test_broken_corpus(void) {
    static char deep[200002];
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    const char *T = "{\"t\":{\"dtype\":";
    static char hdr[40][512];
    int k = 0;
#define H(...) (snprintf(hdr[k], sizeof hdr[0], __VA_ARGS__), hdr[k++])
    broken_case cases[] = {
        {"empty.safetensors", NULL, -1, 0, GVM_ERR_FORMAT, NULL, "", 0},
        {"short.safetensors", NULL, -1, 0, GVM_ERR_FORMAT, NULL, "\x10\x00\x00\x00\x00", 5},
        {"header_beyond_file.safetensors", "{}", 1000, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"header_len_huge.safetensors", "{}", (long long)0x7fffffffffffffffll, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"header_len_zero.safetensors", "{}", 0, 16, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"invalid_json.safetensors", H("%s\"F32\",\"shape\":[1],", T), -1, 4, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"json_array.safetensors", "[1, 2, 3]", -1, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"json_string.safetensors", "\"hello\"", -1, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"json_null.safetensors", "null", -1, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"deep_nesting.safetensors", deep, -1, 0, GVM_ERR_FORMAT, NULL, NULL, 0},
        {"truncated_data.safetensors", H("%s\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", T), -1, 8, GVM_ERR_FORMAT,
         "'t'", NULL, 0},
        {"offsets_outside.safetensors", H("%s\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"offsets_reversed.safetensors", H("%s\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"offsets_negative.safetensors", H("%s\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"offsets_three.safetensors", H("%s\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"offsets_strings.safetensors", H("%s\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"offsets_huge.safetensors", H("%s\"F32\",\"shape\":[1],\"data_offsets\":[0,1e30]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"shape_bytes_mismatch.safetensors", H("%s\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", T), -1, 16,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"unknown_dtype.safetensors", H("%s\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", T), -1, 4, GVM_ERR_FORMAT,
         "Q4", NULL, 0},
        {"dtype_f64.safetensors", H("%s\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", T), -1, 8, GVM_ERR_FORMAT,
         "F64", NULL, 0},
        {"dtype_number.safetensors", H("%s1,\"shape\":[1],\"data_offsets\":[0,4]}}", T), -1, 4, GVM_ERR_FORMAT, "'t'",
         NULL, 0},
        {"too_many_dims.safetensors", H("%s\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", T), -1, 4,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"negative_dim.safetensors", H("%s\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", T), -1, 4, GVM_ERR_FORMAT,
         "'t'", NULL, 0},
        {"dim_string.safetensors", H("%s\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", T), -1, 4,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"dim_fraction.safetensors", H("%s\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", T), -1, 4,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"shape_not_array.safetensors", H("%s\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", T), -1, 4, GVM_ERR_FORMAT,
         "'t'", NULL, 0},
        {"missing_dtype.safetensors", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, GVM_ERR_FORMAT, "'t'",
         NULL, 0},
        {"entry_not_object.safetensors", "{\"t\":5}", -1, 0, GVM_ERR_FORMAT, "'t'", NULL, 0},
        // shape x dtype size overflows 64 bits and wraps to the 0 bytes the offsets give.
        {"bytes_overflow.safetensors", H("%s\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}", T), -1,
         0, GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"numel_overflow.safetensors",
         H("%s\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", T), -1, 0,
         GVM_ERR_FORMAT, "'t'", NULL, 0},
        {"second_entry_bad.safetensors",
         "{\"ok\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
         "\"bad.one\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,6]}}",
         -1, 6, GVM_ERR_FORMAT, "bad.one", NULL, 0},
        {"does_not_exist.safetensors", NULL, -2, 0, GVM_ERR_IO, NULL, NULL, 0},
        {"a_directory.safetensors", NULL, -3, 0, GVM_ERR_IO, NULL, NULL, 0},
    };
#undef H
    static const char zeros[64];
    const int n = sizeof cases / sizeof cases[0];
    for (int i = 0; i < n; i++) {
        broken_case *c = &cases[i];
        const char *path = tmp_path(c->file);
        if (c->header_len == -2) continue;  // left absent
        if (c->header_len == -3) {
            mkdir(path, 0755);
            continue;
        }
        if (c->header)
            write_st(path, c->header, c->header_len, zeros, c->data_len);
        else
            write_bytes(path, c->raw, c->raw_len);
    }
    int passed = 0;
    for (int i = 0; i < n; i++) {
        int rc = run_isolated(check_broken, &cases[i]);
        char label[128];
        snprintf(label, sizeof label, "broken file %s", cases[i].file);
        passed += TEST_CHECK(rc == 10, label, rc >= 1000 ? "crashed (signal %d)" : rc == 11 ? "wrong status or message"
                                                                                        : "sanitizer error (exit %d)",
                             rc >= 1000 ? rc - 1000 : rc);
    }
    for (int i = 0; i < n; i++) {
        if (cases[i].header_len == -3)
            rmdir(tmp_path(cases[i].file));
        else
            unlink(tmp_path(cases[i].file));
    }
    printf("broken corpus: %d of %d cases right\n", passed, n);
}

// ---- valid files with misaligned tensors ----------------------------------------------------------------------
// Python's safetensors reads these (it only requires contiguous offsets); we must too, without
// unaligned loads (UBSan reports those).
static int check_misaligned(const void *arg) {
    const char *path = arg;
    gvm_safetensors *st = NULL;
    if (gvm_safetensors_open(path, &st) != GVM_OK) {
        printf("  %s\n", gvm_error_message());
        return 11;
    }
    gvm_tensor *h = gvm_tensor_new(GVM_F32, 1, (int64_t[]){2});
    gvm_tensor *f = gvm_tensor_new(GVM_F32, 1, (int64_t[]){1});
    gvm_tensor *i = gvm_tensor_new(GVM_I64, 1, (int64_t[]){2});
    bool ok = gvm_safetensors_read_into(st, "half", h) == GVM_OK && gvm_safetensors_read_into(st, "f", f) == GVM_OK &&
              gvm_safetensors_read_into(st, "i", i) == GVM_OK;
    ok = ok && gvm_tensor_f32(h)[0] == 1.5f && gvm_tensor_f32(h)[1] == -2.0f && gvm_tensor_f32(f)[0] == 3.25f &&
         gvm_tensor_i64(i)[0] == -9 && gvm_tensor_i64(i)[1] == 100000;
    gvm_tensor_free(h);
    gvm_tensor_free(f);
    gvm_tensor_free(i);
    gvm_safetensors_close(st);
    return ok ? 10 : 11;
}

static void test_misaligned(void) {
    const char *hdr = "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]},"
                      "\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[3,7]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[7,11]},"
                      "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[11,19]}}";
    unsigned char data[19] = {1, 0, 1};
    uint16_t hv[2] = {0x3e00, 0xc000};
    float fv = 3.25f;
    int32_t iv[2] = {-9, 100000};
    memcpy(data + 3, hv, 4);
    memcpy(data + 7, &fv, 4);
    memcpy(data + 11, iv, 8);
    const char *path = tmp_path("misaligned.safetensors");
    write_st(path, hdr, -1, data, sizeof data);
    int rc = run_isolated(check_misaligned, path);
    TEST_CHECK(rc == 10, "misaligned tensors read correctly", rc >= 1000 ? "crashed (signal %d)" : "exit %d",
               rc >= 1000 ? rc - 1000 : rc);
    unlink(path);
}

// ---- atomic writes -----------------------------------------------------------------------------------------------
static bool no_temporaries(void) {
    DIR *d = opendir(g_dir);
    bool clean = true;
    for (struct dirent *e; d && (e = readdir(d));) clean &= strstr(e->d_name, ".tmp.") == NULL;
    if (d) closedir(d);
    return clean;
}

static gvm_status write_one(const char *path, size_t n) {
    static float data[4096];
    gvm_st_writer *w = gvm_st_writer_new();
    gvm_st_writer_add(w, "x", GVM_F32, 1, (int64_t[]){(int64_t)n}, data);
    gvm_status s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    return s;
}

static void expect_failed_write(const char *what, gvm_status s, const char *path, const char *old, size_t old_len) {
    static char now[1 << 16];
    size_t len = old ? read_file(path, now, sizeof now) : 0;
    TEST_CHECK(s == GVM_ERR_IO && contains(gvm_error_message(), path), what, "status %s, message '%s'",
               gvm_status_name(s), gvm_error_message());
    char label[160];
    snprintf(label, sizeof label, "%s: old file intact, no temporary left", what);
    TEST_CHECK((!old || (len == old_len && memcmp(now, old, old_len) == 0)) && no_temporaries(), label, "changed");
}

static void test_atomic_write(void) {
    const char *path = tmp_path("ckpt.safetensors");
    static char old[1 << 16];
    TEST_CHECK(write_one(path, 10) == GVM_OK, "atomic write: first", "%s", gvm_error_message());
    size_t old_len = read_file(path, old, sizeof old);

    // The temporary name is taken by a folder: creating it fails.
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    mkdir(tmpname, 0755);
    gvm_error_clear();
    gvm_status s = write_one(path, 20);
    rmdir(tmpname);
    expect_failed_write("atomic write: temporary cannot be created", s, path, old, old_len);

    // The file size limit cuts the data short (root ignores permissions, not RLIMIT_FSIZE).
    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    fflush(stdout);  // nothing may reach a file while the limit is low
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {200, saved.rlim_max};
    setrlimit(RLIMIT_FSIZE, &small);
    gvm_error_clear();
    s = write_one(path, 4096);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    expect_failed_write("atomic write: short write", s, path, old, old_len);

    // The target is a folder: the rename fails and the folder stays.
    const char *dirpath = tmp_path("a_folder.safetensors");
    mkdir(dirpath, 0755);
    gvm_error_clear();
    s = write_one(dirpath, 10);
    struct stat sb;
    TEST_CHECK(stat(dirpath, &sb) == 0 && S_ISDIR(sb.st_mode), "atomic write: folder target kept", "gone");
    rmdir(dirpath);
    expect_failed_write("atomic write: target is a folder", s, dirpath, NULL, 0);

    const char *nodir = tmp_path("missing/dir/x.safetensors");
    gvm_error_clear();
    expect_failed_write("atomic write: no such folder", write_one(nodir, 10), nodir, NULL, 0);

    // A successful write replaces the old file.
    TEST_CHECK(write_one(path, 20) == GVM_OK, "atomic write: replace", "%s", gvm_error_message());
    gvm_safetensors *st = NULL;
    TEST_CHECK(gvm_safetensors_open(path, &st) == GVM_OK && gvm_safetensors_find(st, "x")->shape[0] == 20 &&
                   no_temporaries(),
               "atomic write: new content", "%s", gvm_error_message());
    gvm_safetensors_close(st);
    unlink(path);
}

// ---- the file tests/check_safetensors_python.py checks (keep the two in step) ---------------------------------
static int write_for_python(const char *path) {
    static float weight[6], scalar = 3.5f, deep[2] = {7, 8};
    static uint16_t half[4], brain[3];
    static const int64_t ids[4] = {(1ll << 40) + 1, -5, 0, -(1ll << 62)};
    static const int32_t i32v[3] = {INT32_MIN, INT32_MAX, 7};
    static const int16_t i16v[2] = {-32768, 32767};
    static const uint8_t bytes[3] = {0, 255, 17}, mask[5] = {1, 0, 1, 1, 0};
    for (int i = 0; i < 6; i++) weight[i] = 0.5f * (float)i - 1.0f;
    const float hv[4] = {1.0f, -2.5f, 65504.0f, 5.9604644775390625e-8f}, bv[3] = {1.0f, -3.0f, 0.15625f};
    gvm_f32_to_f16_array(hv, half, 4);
    gvm_f32_to_bf16_array(bv, brain, 3);
    gvm_st_writer *w = gvm_st_writer_new();
    // An odd-length bool first: the tensors after it must still be readable.
    gvm_st_writer_add(w, "mask", GVM_BOOL, 1, (int64_t[]){5}, mask);
    gvm_st_writer_add(w, "weight", GVM_F32, 2, (int64_t[]){2, 3}, weight);
    gvm_st_writer_add(w, "half", GVM_F16, 1, (int64_t[]){4}, half);
    gvm_st_writer_add(w, "brain", GVM_BF16, 1, (int64_t[]){3}, brain);
    gvm_st_writer_add(w, "ids", GVM_I64, 2, (int64_t[]){2, 2}, ids);
    gvm_st_writer_add(w, "i32", GVM_I32, 1, (int64_t[]){3}, i32v);
    gvm_st_writer_add(w, "i16", GVM_I16, 1, (int64_t[]){2}, i16v);
    gvm_st_writer_add(w, "bytes", GVM_U8, 1, (int64_t[]){3}, bytes);
    gvm_st_writer_add(w, "scalar", GVM_F32, 0, NULL, &scalar);
    gvm_st_writer_add(w, "empty", GVM_F32, 2, (int64_t[]){0, 3}, weight);
    gvm_st_writer_add(w, "layers.0.deep", GVM_F32, 6, (int64_t[]){1, 1, 1, 1, 1, 2}, deep);
    gvm_st_writer_add_metadata(w, "format", "gvm");
    gvm_st_writer_add_metadata(w, "note", "h\xc3\xa9llo \"quoted\"");
    gvm_st_writer_add_metadata(w, "step", "42");
    gvm_status s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    if (s != GVM_OK) fprintf(stderr, "%s\n", gvm_error_message());
    return s == GVM_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-for-python") == 0) return write_for_python(argv[2]);
    test_init(argc, argv);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/gvm_test_safetensors.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    GVM_CHECK(mkdtemp(g_dir), "cannot make a temporary folder");
    test_python_file();
    test_round_trip();
    test_broken_corpus();
    test_misaligned();
    test_atomic_write();
    unlink(tmp_path("round.safetensors"));
    unlink(tmp_path("nothing.safetensors"));
    rmdir(g_dir);
    return test_finish();
}
