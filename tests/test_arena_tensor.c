// test_arena_tensor.c: the activation arena (core/arena.c) and tensor bookkeeping (core/tensor.c).
//
// Arena: 64-byte alignment, non-overlapping allocations, calloc zeroes reused memory, and the steady
// state promised by arena.h: after one step the arena is a single block and 100 identical steps neither
// grow nor move it. Tensors: heap / wrapped / arena flags and ownership, scalar and empty shapes,
// gvm_tensor_copy between every pair of dtypes, shape strings (truncation included), axis
// normalisation, and that bad axes abort (checked in a forked child).
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_util.h"

static int block_count(const gvm_arena *a) {
    int n = 0;
    for (const gvm_arena_block *b = a->head; b; b = b->next) n++;
    return n;
}

static void test_arena_alignment(void) {
    gvm_arena a;
    gvm_arena_init(&a, 1000);  // small blocks: forces several
    char *prev = NULL;
    size_t prev_bytes = 0;
    int misaligned = 0, overlap = 0;
    for (size_t i = 0; i < 300; i++) {
        size_t bytes = (i * 37) % 500;  // 0 included
        char *p = gvm_arena_alloc(&a, bytes);
        misaligned += ((uintptr_t)p % GVM_ARENA_ALIGN) != 0;
        // Within one block allocations go upwards and must not overlap the previous one.
        if (prev && p > prev) overlap += p < prev + prev_bytes;
        memset(p, 0x5a, bytes);  // ASan: the whole range is ours
        prev = p;
        prev_bytes = bytes;
    }
    TEST_CHECK(misaligned == 0, "arena 64-byte alignment", "%d misaligned", misaligned);
    TEST_CHECK(overlap == 0, "arena allocations disjoint", "%d overlap", overlap);
    void *z1 = gvm_arena_alloc(&a, 0), *z2 = gvm_arena_alloc(&a, 0);
    TEST_CHECK(z1 != z2, "arena zero-byte allocations distinct", "same pointer");
    // A request larger than any block gets a block of its own size.
    char *big = gvm_arena_alloc(&a, 100000);
    memset(big, 1, 100000);
    TEST_CHECK(((uintptr_t)big % 64) == 0 && a.head->size >= 100000, "arena large request", "wrong");
    gvm_arena_free(&a);
    TEST_CHECK(a.head == NULL && a.used == 0, "arena free", "not emptied");
}

// One "training step": a fixed sequence of allocations.
static void fake_step(gvm_arena *a) {
    for (int i = 0; i < 50; i++) {
        char *p = gvm_arena_alloc(a, (size_t)(i % 7 + 1) * 333);
        p[0] = 1;
    }
    memset(gvm_arena_calloc(a, 4096), 2, 4096);
}

static void test_arena_steady_state(void) {
    gvm_arena a;
    gvm_arena_init(&a, 4096);  // much smaller than a step: the first step spans many blocks
    fake_step(&a);
    int first_blocks = block_count(&a);
    size_t peak = a.peak;
    gvm_arena_reset(&a);
    TEST_CHECK(first_blocks > 1 && block_count(&a) == 1 && a.head->size >= peak && a.used == 0,
               "arena reset coalesces", "%d blocks before, %d after, size %zu peak %zu", first_blocks,
               block_count(&a), a.head ? a.head->size : 0, peak);
    gvm_arena_block *head = a.head;
    size_t size = head->size;
    int moved = 0, grew = 0;
    for (int step = 0; step < 100; step++) {
        fake_step(&a);
        grew += block_count(&a) != 1 || a.head->size != size || a.peak != peak;
        gvm_arena_reset(&a);
        moved += a.head != head;
    }
    TEST_CHECK(moved == 0 && grew == 0, "arena steady state: one block, no growth", "%d steps moved, %d grew", moved,
               grew);

    // calloc zeroes memory that the previous step left dirty.
    unsigned char *p = gvm_arena_alloc(&a, 2000);
    memset(p, 0xff, 2000);
    gvm_arena_reset(&a);
    unsigned char *q = gvm_arena_calloc(&a, 2000);
    int nonzero = 0;
    for (int i = 0; i < 2000; i++) nonzero += q[i] != 0;
    TEST_CHECK(q == p, "arena reset reuses memory", "first allocation after reset moved");
    TEST_CHECK(nonzero == 0, "arena calloc zeroes", "%d non-zero bytes", nonzero);

    // A bigger step after the steady state grows once, then settles again.
    for (int i = 0; i < 4; i++) gvm_arena_alloc(&a, size);
    gvm_arena_reset(&a);
    TEST_CHECK(block_count(&a) == 1 && a.head->size >= 4 * size, "arena grows to a new peak", "size %zu",
               a.head->size);
    gvm_arena_free(&a);
}

static void test_tensor_flags(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    int64_t shape[3] = {2, 3, 4};
    gvm_tensor *h = gvm_tensor_new(GVM_F32, 3, shape);
    float *hv = gvm_tensor_f32(h);
    int nonzero = 0;
    for (int i = 0; i < 24; i++) nonzero += hv[i] != 0.0f;
    TEST_CHECK(h->numel == 24 && h->ndim == 3 && h->shape[2] == 4 && gvm_tensor_nbytes(h) == 96 && nonzero == 0 &&
                   ((uintptr_t)h->data % 64) == 0 && !h->requires_grad && !h->grad && !h->grad_fn,
               "heap tensor", "wrong fields");
    TEST_CHECK(h->flags == (GVM_TENSOR_HEAP_STRUCT | GVM_TENSOR_OWNS_DATA), "heap tensor flags", "0x%x", h->flags);

    // A wrap borrows: freeing it must leave the buffer alone (ASan reports a double free otherwise).
    float *buf = malloc(6 * sizeof(float));
    gvm_tensor *w = gvm_tensor_wrap(GVM_F32, 2, (int64_t[]){2, 3}, buf);
    TEST_CHECK(w->data == buf && w->flags == GVM_TENSOR_HEAP_STRUCT && w->numel == 6, "wrapped tensor", "flags 0x%x",
               w->flags);
    gvm_tensor_free(w);
    buf[5] = 1.0f;
    free(buf);
    gvm_tensor_free(NULL);

    gvm_tensor *a = gvm_tensor_empty(ctx, GVM_BF16, 3, shape);
    TEST_CHECK(a->flags == 0 && a->numel == 24 && gvm_tensor_nbytes(a) == 48 && ((uintptr_t)a->data % 64) == 0 &&
                   !a->requires_grad && !a->grad_fn,
               "arena tensor", "flags 0x%x", a->flags);
    gvm_tensor *l = gvm_tensor_empty_like(ctx, a);
    TEST_CHECK(l->dtype == GVM_BF16 && gvm_tensor_same_shape(l, a) && l->data != a->data, "empty_like", "wrong");
    memset(l->data, 0xff, gvm_tensor_nbytes(l));
    gvm_ctx_reset(ctx);
    gvm_tensor *zr = gvm_tensor_zeros(ctx, GVM_I64, 3, shape);
    nonzero = 0;
    for (int i = 0; i < 24; i++) nonzero += gvm_tensor_i64(zr)[i] != 0;
    TEST_CHECK(nonzero == 0, "zeros on reused arena memory", "%d non-zero", nonzero);

    float vals[6] = {1, 2, 3, 4, 5, 6};
    gvm_tensor *f = gvm_tensor_from_f32(ctx, vals, 2, (int64_t[]){3, 2});
    TEST_CHECK(memcmp(f->data, vals, sizeof vals) == 0 && f->data != (void *)vals, "from_f32 copies", "wrong");
    gvm_tensor_fill(f, -0.5f);
    TEST_CHECK(gvm_tensor_f32(f)[5] == -0.5f && gvm_tensor_f32(f)[0] == -0.5f, "fill", "wrong");

    // Scalars (ndim 0) hold one value; a zero dimension holds none.
    gvm_tensor *s = gvm_tensor_new(GVM_F32, 0, NULL);
    gvm_tensor *e = gvm_tensor_new(GVM_F32, 2, (int64_t[]){0, 5});
    gvm_tensor *ea = gvm_tensor_empty(ctx, GVM_I32, 2, (int64_t[]){3, 0});
    TEST_CHECK(s->numel == 1 && s->ndim == 0 && gvm_tensor_nbytes(s) == 4 && e->numel == 0 && ea->numel == 0 &&
                   gvm_tensor_nbytes(e) == 0 && e->data != NULL,
               "scalar and empty tensors", "scalar numel %lld, empty numel %lld", (long long)s->numel,
               (long long)e->numel);
    gvm_tensor_f32(s)[0] = 2.0f;
    gvm_tensor_free(s);
    gvm_tensor_free(e);

    TEST_CHECK(gvm_tensor_same_shape(h, zr) && !gvm_tensor_same_shape(h, f) && gvm_shape_numel(0, NULL) == 1,
               "same_shape / shape_numel", "wrong");

    // Typed accessors and get_index.
    gvm_tensor *i16 = gvm_tensor_empty(ctx, GVM_I16, 1, (int64_t[]){3});
    ((int16_t *)i16->data)[2] = -7;
    gvm_tensor *bo = gvm_tensor_empty(ctx, GVM_BOOL, 1, (int64_t[]){2});
    gvm_tensor_u8(bo)[1] = 1;
    TEST_CHECK(gvm_tensor_get_index(i16, 2) == -7 && gvm_tensor_get_index(bo, 1) == 1, "get_index", "wrong");
    gvm_tensor_free(h);
    gvm_ctx_free(ctx);
}

// Every source dtype x every destination dtype, on values each dtype holds exactly.
static void test_tensor_copy_all_pairs(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    // Non-negative integers up to 255 fit u8, i16, f16 and bf16 (bf16 holds integers up to 256 exactly).
    const double vals[8] = {0, 1, 2, 3, 100, 255, 7, 0};
    const double neg[8] = {-1, -128, 5, -3, 0, 64, -2, 9};  // for the signed and float types
    int bad_pairs = 0;
    char first[64] = "";
    for (int s = 0; s < GVM_DTYPE_COUNT; s++) {
        for (int d = 0; d < GVM_DTYPE_COUNT; d++) {
            bool signed_ok = s != GVM_U8 && s != GVM_BOOL && d != GVM_U8 && d != GVM_BOOL;
            for (int set = 0; set < (signed_ok ? 2 : 1); set++) {
                const double *v = set ? neg : vals;
                gvm_tensor *src = gvm_tensor_empty(ctx, (gvm_dtype)s, 2, (int64_t[]){2, 4});
                gvm_tensor *dst = gvm_tensor_empty(ctx, (gvm_dtype)d, 1, (int64_t[]){8});  // same numel, other shape
                double expect[8];
                for (int i = 0; i < 8; i++) {
                    double x = s == GVM_BOOL ? (v[i] != 0) : v[i];
                    switch (s) {
                    case GVM_F32: ((float *)src->data)[i] = (float)x; break;
                    case GVM_F16: ((uint16_t *)src->data)[i] = gvm_f32_to_f16((float)x); break;
                    case GVM_BF16: ((uint16_t *)src->data)[i] = gvm_f32_to_bf16((float)x); break;
                    case GVM_I32: ((int32_t *)src->data)[i] = (int32_t)x; break;
                    case GVM_I64: ((int64_t *)src->data)[i] = (int64_t)x; break;
                    case GVM_I16: ((int16_t *)src->data)[i] = (int16_t)x; break;
                    default: ((uint8_t *)src->data)[i] = (uint8_t)x; break;
                    }
                    expect[i] = d == GVM_BOOL ? (x != 0) : x;
                }
                gvm_tensor_copy(dst, src);
                bool ok = true;
                for (int i = 0; i < 8; i++) {
                    double got;
                    switch (d) {
                    case GVM_F32: got = ((float *)dst->data)[i]; break;
                    case GVM_F16: got = gvm_f16_to_f32(((uint16_t *)dst->data)[i]); break;
                    case GVM_BF16: got = gvm_bf16_to_f32(((uint16_t *)dst->data)[i]); break;
                    default: got = (double)gvm_tensor_get_index(dst, i); break;
                    }
                    ok &= got == expect[i];
                }
                if (!ok && !bad_pairs++)
                    snprintf(first, sizeof first, "%s -> %s", gvm_dtype_name((gvm_dtype)s),
                             gvm_dtype_name((gvm_dtype)d));
            }
        }
    }
    TEST_CHECK(bad_pairs == 0, "tensor_copy all dtype pairs", "%d pairs wrong (first %s)", bad_pairs, first);

    // Float narrowing rounds to nearest even (here 1 + 2^-11 is an f16 tie, 1 + 2^-8 a bf16 tie).
    float fv[4] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
    gvm_tensor *src = gvm_tensor_from_f32(ctx, fv, 1, (int64_t[]){4});
    gvm_tensor *h = gvm_tensor_empty(ctx, GVM_F16, 1, (int64_t[]){4});
    gvm_tensor *b = gvm_tensor_empty(ctx, GVM_BF16, 1, (int64_t[]){4});
    gvm_tensor *back = gvm_tensor_empty(ctx, GVM_F32, 1, (int64_t[]){4});
    gvm_tensor_copy(h, src);
    gvm_tensor_copy(b, src);
    const uint16_t *hv = h->data, *bv = b->data;
    TEST_CHECK(hv[0] == 0x3c00 && hv[1] == 0x3c02 && bv[2] == 0x3f80 && bv[3] == 0x3f82, "tensor_copy rounds to even",
               "f16 %04x %04x bf16 %04x %04x", hv[0], hv[1], bv[2], bv[3]);
    gvm_tensor_copy(back, h);  // f16 -> f32 -> f16 round trip through copy
    gvm_tensor_copy(src, back);
    TEST_CHECK(gvm_tensor_f32(src)[1] == 1.0f + 2.0f / 1024, "tensor_copy f16 -> f32", "%g", gvm_tensor_f32(src)[1]);

    // Same dtype is a plain byte copy: NaN payloads and -0.0 survive.
    uint32_t bits[3] = {0x7fc12345u, 0x80000000u, 0xff800001u};
    gvm_tensor *x = gvm_tensor_empty(ctx, GVM_F32, 1, (int64_t[]){3}), *y = gvm_tensor_empty_like(ctx, x);
    memcpy(x->data, bits, sizeof bits);
    gvm_tensor_copy(y, x);
    TEST_CHECK(memcmp(y->data, bits, sizeof bits) == 0, "tensor_copy same dtype bit-exact", "bits changed");

    // Large i64 values survive i64 -> i64.
    gvm_tensor *li = gvm_tensor_empty(ctx, GVM_I64, 1, (int64_t[]){2}), *lo = gvm_tensor_empty_like(ctx, li);
    gvm_tensor_i64(li)[0] = (1ll << 62) + 1;
    gvm_tensor_i64(li)[1] = INT64_MIN;
    gvm_tensor_copy(lo, li);
    TEST_CHECK(gvm_tensor_i64(lo)[0] == (1ll << 62) + 1 && gvm_tensor_i64(lo)[1] == INT64_MIN, "tensor_copy i64",
               "wrong");
    gvm_ctx_free(ctx);
}

static void test_shape_str_axis(void) {
    char buf[64];
    TEST_CHECK(strcmp(gvm_shape_str(3, (int64_t[]){2, 3, 4}, buf, sizeof buf), "[2, 3, 4]") == 0, "shape_str", "'%s'",
               buf);
    TEST_CHECK(strcmp(gvm_shape_str(0, NULL, buf, sizeof buf), "[]") == 0, "shape_str scalar", "'%s'", buf);
    TEST_CHECK(strcmp(gvm_shape_str(2, (int64_t[]){0, 1234567890123ll}, buf, sizeof buf), "[0, 1234567890123]") == 0,
               "shape_str big", "'%s'", buf);
    // Small buffers truncate and stay terminated; heap buffers of the exact size let ASan see overruns.
    int bad = 0;
    for (size_t n = 1; n < 24; n++) {
        char *small = malloc(n);
        gvm_shape_str(6, (int64_t[]){100, 200, 300, 400, 500, 600}, small, n);
        bad += strlen(small) >= n || strncmp(small, "[100, 200, 300, 400, 500, 600]", strlen(small)) != 0;
        free(small);
    }
    TEST_CHECK(bad == 0, "shape_str truncates safely", "%d sizes wrong", bad);

    gvm_tensor *t = gvm_tensor_new(GVM_F32, 4, (int64_t[]){1, 2, 3, 4});
    TEST_CHECK(gvm_tensor_axis(t, 0) == 0 && gvm_tensor_axis(t, 3) == 3 && gvm_tensor_axis(t, -1) == 3 &&
                   gvm_tensor_axis(t, -4) == 0 && gvm_tensor_axis(t, -2) == 2,
               "axis normalisation", "wrong");
    // Out-of-range axes are internal errors: they must abort (in a child, so the test goes on).
    int bad_axes[3] = {4, -5, 100};
    for (int i = 0; i < 3; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr)) _exit(3);
            gvm_tensor_axis(t, bad_axes[i]);
            _exit(0);  // reached only when the check is missing
        }
        int status = 0;
        waitpid(pid, &status, 0);
        TEST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "bad axis aborts", "axis %d did not abort",
                   bad_axes[i]);
    }
    gvm_tensor_free(t);
}

// Scratch taken after a mark is released by the rewind: within a block the next allocation reuses the
// same address; blocks made after the mark are freed; the peak remembers the scratch.
static void test_arena_rewind(void) {
    gvm_arena a;
    gvm_arena_init(&a, 4096);
    void *keep = gvm_arena_alloc(&a, 100);
    gvm_arena_mark m = gvm_arena_save(&a);
    void *scratch = gvm_arena_alloc(&a, 200);
    gvm_arena_rewind(&a, m);
    TEST_CHECK(gvm_arena_alloc(&a, 200) == scratch, "arena rewind reuses", "the rewound memory was not reused");
    TEST_CHECK(keep != scratch, "arena rewind keeps", "memory before the mark was handed out again");
    m = gvm_arena_save(&a);
    size_t used = a.used;
    gvm_arena_alloc(&a, 1 << 20);  // larger than the block: a new one
    TEST_CHECK(a.head != m.head, "arena grows past the mark", "no new block");
    gvm_arena_rewind(&a, m);
    TEST_CHECK(a.head == m.head && a.used == used, "arena rewind frees new blocks", "head %p used %zu (want %p %zu)",
               (void *)a.head, a.used, (void *)m.head, used);
    TEST_CHECK(a.peak >= used + (1 << 20), "arena peak counts scratch", "peak %zu", a.peak);
    gvm_arena_reset(&a);
    TEST_CHECK(a.head && a.head->next == NULL && a.head->size >= a.peak, "arena reset after rewind", "not one block");
    gvm_arena_free(&a);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_arena_rewind();
    test_arena_alignment();
    test_arena_steady_state();
    test_tensor_flags();
    test_tensor_copy_all_pairs();
    test_shape_str_axis();
    return test_finish();
}
