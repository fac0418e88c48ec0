// test_param_store.c: parameters, gradients and optimiser state in one block each (core/param_store.c).
//
// Layout (one block, 64-byte aligned disjoint offsets, views into the blocks, zeroed state), save ->
// load round trip bit-exact (NaN payloads, -0.0, subnormals, another registration order), f16/bf16
// files converted on load, and the load errors: missing tensor, wrong shape, extra tensor (unless
// allow_extra), integer dtype, missing file; each with the right status and the tensor's and file's names
// in gvm_error_message().
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_util.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[3];
} spec;

static const spec k_specs[] = {
    {"enc.w", 2, {3, 5}},  {"enc.b", 1, {7}}, {"scale", 0, {0}},
    {"dec.w", 2, {4, 16}}, {"one", 1, {1}},   {"cube", 3, {2, 3, 3}},
};
enum { N_SPECS = sizeof k_specs / sizeof k_specs[0] };

// Register the specs in order `order` (a permutation) into a fresh store.
static void build(gvm_param_store *ps, const int *order, int n) {
    gvm_param_store_init(ps);
    for (int i = 0; i < n; i++) {
        const spec *s = &k_specs[order ? order[i] : i];
        gvm_param_store_add(ps, s->name, s->ndim, s->shape);
    }
    gvm_param_store_finalize(ps);
}

static void test_layout(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    char name[32];
    int64_t numel = 0;
    for (int i = 0; i < N_SPECS; i++) {
        snprintf(name, sizeof name, "%s", k_specs[i].name);  // the store must copy names
        gvm_tensor *t = gvm_param_store_add(&ps, name, k_specs[i].ndim, k_specs[i].shape);
        memset(name, 'x', sizeof name - 1);
        TEST_CHECK(t->requires_grad && t->dtype == GVM_F32 && t->grad_fn == NULL, "param is a leaf that requires grad",
                   "%s", k_specs[i].name);
        numel += t->numel;
    }
    TEST_CHECK(!ps.finalized && ps.data == NULL, "nothing allocated before finalize", "data %p", (void *)ps.data);
    gvm_param_store_finalize(&ps);
    TEST_CHECK(gvm_param_store_numel(&ps) == numel && numel == 15 + 7 + 1 + 64 + 1 + 18, "param numel", "%lld",
               (long long)gvm_param_store_numel(&ps));
    TEST_CHECK(((uintptr_t)ps.data % 64) == 0 && ((uintptr_t)ps.grad % 64) == 0 && ps.total % 16 == 0,
               "blocks 64-byte aligned", "data %p grad %p total %zu", (void *)ps.data, (void *)ps.grad, ps.total);
    int bad = 0;
    size_t end = 0;
    for (int i = 0; i < ps.n_params; i++) {
        gvm_tensor *t = ps.params[i];
        size_t off = ps.offsets[i];
        bad += (off * sizeof(float)) % 64 != 0;                  // 64-byte aligned offset
        bad += off < end;                                        // disjoint, in registration order
        bad += t->data != ps.data + off;                         // a view into the parameter block
        bad += !t->grad || t->grad->data != ps.grad + off;       // and its gradient into the gradient block
        bad += t->grad && (!gvm_tensor_same_shape(t, t->grad) || t->grad->dtype != GVM_F32);
        bad += strcmp(t->name, k_specs[i].name) != 0;
        end = off + (size_t)t->numel;
    }
    TEST_CHECK(bad == 0 && end <= ps.total, "offsets aligned, disjoint, views in the blocks", "%d problems", bad);
    int nz = 0;
    for (size_t i = 0; i < ps.total; i++) nz += ps.data[i] != 0 || ps.grad[i] != 0;
    TEST_CHECK(nz == 0, "blocks zeroed", "%d non-zero", nz);
    TEST_CHECK(gvm_param_store_find(&ps, "dec.w") == ps.params[3] && gvm_param_store_find(&ps, "dec") == NULL,
               "find", "wrong");

    float *s0 = gvm_param_store_state(&ps, 0), *s3 = gvm_param_store_state(&ps, GVM_PARAM_MAX_STATES - 1);
    nz = 0;
    for (size_t i = 0; i < ps.total; i++) nz += s0[i] != 0 || s3[i] != 0;
    s0[ps.total - 1] = 1.0f;  // the whole block is ours (ASan)
    TEST_CHECK(nz == 0 && s0 != s3 && ((uintptr_t)s0 % 64) == 0 && gvm_param_store_state(&ps, 0) == s0 &&
                   s0[ps.total - 1] == 1.0f,
               "state blocks zeroed, stable, distinct", "wrong");

    for (size_t i = 0; i < ps.total; i++) ps.grad[i] = 1.0f;
    gvm_param_store_zero_grad(&ps);
    nz = 0;
    for (int i = 0; i < ps.n_params; i++)
        for (int64_t j = 0; j < ps.params[i]->numel; j++) nz += gvm_tensor_f32(ps.params[i]->grad)[j] != 0;
    TEST_CHECK(nz == 0, "zero_grad", "%d non-zero", nz);
    gvm_param_store_free(&ps);
}

static void fill_tricky(gvm_param_store *ps) {
    static const uint32_t special[] = {0x7fc12345u, 0xffbfffffu, 0x80000000u, 0x00000001u, 0x7f800000u, 0xff800000u,
                                       0x007fffffu, 0x3f800000u};
    gvm_rng rng;
    gvm_rng_init(&rng, 77);
    for (int i = 0; i < ps->n_params; i++) {
        gvm_tensor *t = ps->params[i];
        gvm_rng_normal(&rng, t->data, (size_t)t->numel, 0.0f, 3.0f);
        for (int64_t j = 0; j < t->numel && j < 8; j += 2) memcpy(gvm_tensor_f32(t) + j, &special[(i + j) % 8], 4);
    }
}

static void test_round_trip(void) {
    gvm_param_store a, b;
    build(&a, NULL, N_SPECS);
    fill_tricky(&a);
    const char *meta[] = {"step", "1234", "config", "tiny.yaml", NULL};
    const char *path = tmp_path("params.safetensors");
    gvm_status st = gvm_param_store_save(&a, path, meta);
    TEST_CHECK(st == GVM_OK, "param save", "%s", gvm_error_message());

    // Another registration order: loading is by name.
    int order[N_SPECS] = {5, 3, 1, 0, 2, 4};
    build(&b, order, N_SPECS);
    st = gvm_param_store_load(&b, path, false);
    TEST_CHECK(st == GVM_OK, "param load", "%s", gvm_error_message());
    int bad = 0;
    for (int i = 0; i < a.n_params; i++) {
        gvm_tensor *x = a.params[i], *y = gvm_param_store_find(&b, x->name);
        bad += !y || memcmp(x->data, y->data, gvm_tensor_nbytes(x)) != 0;
    }
    TEST_CHECK(bad == 0, "save -> load bit-exact", "%d tensors differ", bad);

    gvm_safetensors *f = NULL;
    if (TEST_CHECK(gvm_safetensors_open(path, &f) == GVM_OK, "saved file opens", "%s", gvm_error_message())) {
        const gvm_st_entry *e = gvm_safetensors_find(f, "cube");
        TEST_CHECK(gvm_safetensors_count(f) == N_SPECS && e && e->dtype == GVM_F32 && e->ndim == 3 &&
                       e->shape[2] == 3 && gvm_safetensors_find(f, "scale")->ndim == 0,
                   "saved file holds f32 tensors with shapes", "wrong");
        const char *m = gvm_safetensors_metadata(f, "step");
        TEST_CHECK(m && strcmp(m, "1234") == 0 && gvm_safetensors_metadata(f, "config") != NULL,
                   "saved metadata", "step = %s", m ? m : "(none)");
        gvm_safetensors_close(f);
    }

    // f16 / bf16 files are converted on load.
    gvm_param_store c;
    int one[1] = {0};  // enc.w [3, 5]
    build(&c, one, 1);
    uint16_t h[15], bf[15];
    float want_h[15], want_b[15];
    for (int i = 0; i < 15; i++) {
        float v = (float)(i - 7) * 0.3f;
        h[i] = gvm_f32_to_f16(v);
        bf[i] = gvm_f32_to_bf16(v);
        want_h[i] = gvm_f16_to_f32(h[i]);
        want_b[i] = gvm_bf16_to_f32(bf[i]);
    }
    for (int k = 0; k < 2; k++) {
        gvm_st_writer *w = gvm_st_writer_new();
        gvm_st_writer_add(w, "enc.w", k ? GVM_BF16 : GVM_F16, 2, (int64_t[]){3, 5}, k ? (void *)bf : (void *)h);
        const char *p = tmp_path(k ? "bf16.safetensors" : "f16.safetensors");
        gvm_status ws = gvm_st_writer_write(w, p);
        gvm_st_writer_free(w);
        st = ws == GVM_OK ? gvm_param_store_load(&c, p, false) : ws;
        TEST_CHECK(st == GVM_OK && memcmp(c.params[0]->data, k ? want_b : want_h, sizeof want_h) == 0,
                   k ? "bf16 file loads converted" : "f16 file loads converted", "%s", gvm_error_message());
    }
    gvm_param_store_free(&a);
    gvm_param_store_free(&b);
    gvm_param_store_free(&c);
}

// Status, and the message names both the file and the tensor.
static void expect_error(const char *what, gvm_status got, gvm_status want, const char *path, const char *tensor) {
    const char *msg = gvm_error_message();
    TEST_CHECK(got == want && contains(msg, path) && (!tensor || contains(msg, tensor)), what,
               "status %s (want %s), message '%s'", gvm_status_name(got), gvm_status_name(want), msg);
}

static void test_load_errors(void) {
    gvm_param_store full, more, shape, fewer;
    build(&full, NULL, N_SPECS);
    fill_tricky(&full);
    const char *path = tmp_path("errors.safetensors");
    TEST_CHECK(gvm_param_store_save(&full, path, NULL) == GVM_OK, "save for error tests", "%s", gvm_error_message());

    // The store has a parameter the file lacks.
    gvm_param_store_init(&more);
    for (int i = 0; i < N_SPECS; i++) gvm_param_store_add(&more, k_specs[i].name, k_specs[i].ndim, k_specs[i].shape);
    gvm_param_store_add(&more, "head.extra_bias", 1, (int64_t[]){4});
    gvm_param_store_finalize(&more);
    gvm_error_clear();
    expect_error("load: missing tensor", gvm_param_store_load(&more, path, false), GVM_ERR_NOT_FOUND, path,
                 "head.extra_bias");
    gvm_error_clear();
    expect_error("load: missing tensor (allow_extra)", gvm_param_store_load(&more, path, true), GVM_ERR_NOT_FOUND,
                 path, "head.extra_bias");

    // Same names, one shape transposed.
    gvm_param_store_init(&shape);
    for (int i = 0; i < N_SPECS; i++) {
        spec s = k_specs[i];
        if (strcmp(s.name, "dec.w") == 0) s.shape[0] = 16, s.shape[1] = 4;
        gvm_param_store_add(&shape, s.name, s.ndim, s.shape);
    }
    gvm_param_store_finalize(&shape);
    gvm_error_clear();
    expect_error("load: wrong shape", gvm_param_store_load(&shape, path, false), GVM_ERR_FORMAT, path, "dec.w");
    TEST_CHECK(contains(gvm_error_message(), "[4, 16]") && contains(gvm_error_message(), "[16, 4]"),
               "wrong-shape message shows both shapes", "'%s'", gvm_error_message());

    // The file has a tensor the store lacks.
    build(&fewer, NULL, N_SPECS - 1);  // no "cube"
    gvm_error_clear();
    expect_error("load: extra tensor", gvm_param_store_load(&fewer, path, false), GVM_ERR_FORMAT, path, "cube");
    gvm_error_clear();
    gvm_status st = gvm_param_store_load(&fewer, path, true);
    int bad = 0;
    for (int i = 0; i < fewer.n_params; i++)
        bad += memcmp(fewer.params[i]->data, full.params[i]->data, gvm_tensor_nbytes(full.params[i])) != 0;
    TEST_CHECK(st == GVM_OK && bad == 0, "load: extra tensor allowed", "%s; %d differ", gvm_error_message(), bad);

    // An integer tensor under a parameter's name.
    const char *ipath = tmp_path("int.safetensors");
    int32_t iv[15] = {0};
    gvm_st_writer *w = gvm_st_writer_new();
    gvm_st_writer_add(w, "enc.w", GVM_I32, 2, (int64_t[]){3, 5}, iv);
    TEST_CHECK(gvm_st_writer_write(w, ipath) == GVM_OK, "write int file", "%s", gvm_error_message());
    gvm_st_writer_free(w);
    gvm_param_store one;
    build(&one, (int[]){0}, 1);
    gvm_error_clear();
    expect_error("load: integer dtype", gvm_param_store_load(&one, ipath, false), GVM_ERR_FORMAT, ipath, "enc.w");

    const char *missing = tmp_path("does-not-exist.safetensors");
    gvm_error_clear();
    expect_error("load: missing file", gvm_param_store_load(&one, missing, false), GVM_ERR_IO, missing, NULL);
    gvm_error_clear();
    const char *nodir = tmp_path("no/such/dir/p.safetensors");
    expect_error("save: unwritable place", gvm_param_store_save(&one, nodir, NULL), GVM_ERR_IO, nodir, NULL);

    gvm_param_store_free(&full);
    gvm_param_store_free(&more);
    gvm_param_store_free(&shape);
    gvm_param_store_free(&fewer);
    gvm_param_store_free(&one);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/gvm_test_param_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    GVM_CHECK(mkdtemp(g_dir), "cannot make a temporary folder");
    test_layout();
    test_round_trip();
    test_load_errors();
    const char *files[] = {"params.safetensors", "f16.safetensors", "bf16.safetensors", "errors.safetensors",
                           "int.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tmp_path(files[i]));
    rmdir(g_dir);
    return test_finish();
}
