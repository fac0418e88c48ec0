// test_nn_music_lm.c: the music decoder (nn/music_lm.h) and the delay pattern (nn/delay_pattern.h):
// the pattern's exact layout, round trips and training pairs; the LM's logits and every gradient against a
// float64 PyTorch twin of MusicgenForCausalLM (tests/golden/gen_nn_lm.py, parameters loaded by their Hugging
// Face names); the loss on valid steps only; KV-cache decoding against the full forward; condition dropout.
#include <math.h>
#include <string.h>

#include "nn/delay_pattern.h"
#include "nn/music_lm.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"


static gvm_tensor *i64_tensor(gvm_ctx *ctx, int ndim, const int64_t *shape, const int64_t *v) {
    gvm_tensor *t = gvm_tensor_empty(ctx, GVM_I64, ndim, shape);
    memcpy(t->data, v, (size_t)t->numel * sizeof *v);
    return t;
}

static bool same_ints(const gvm_tensor *a, const int64_t *e, int64_t n) {
    if (a->numel != n) return false;
    for (int64_t i = 0; i < n; i++)
        if (gvm_tensor_get_index(a, i) != e[i]) return false;
    return true;
}

// ---- delay pattern ------------------------------------------------------------------------------------------
// audiocraft's DelayedPatternProvider for K = 3, T = 3 (delays 0, 1, 2), written out by hand; X = special 9.
static void delay_layout_by_hand(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    const int64_t codes[] = {1, 2, 3, /**/ 4, 5, 6, /**/ 7, 8, 0};  // [1, 3, 3]
    const int64_t X = 9;
    const int64_t seq[] = {1, 2, 3, X, X, /**/ X, 4, 5, 6, X, /**/ X, X, 7, 8, 0};  // [1, 3, 5]
    gvm_tensor *c = i64_tensor(ctx, 3, (int64_t[]){1, 3, 3}, codes);
    gvm_tensor *s = gvm_delay_pattern_build(ctx, c, X);
    TEST_CHECK(s->shape[2] == 5 && same_ints(s, seq, 15), "delay layout by hand", "interleaved sequence differs");
    // LM training pair: the start step, then the sequence without its last step; targets ignore X
    gvm_tensor *in, *tg;
    gvm_delay_pattern_lm_batch(ctx, c, NULL, X, -100, &in, &tg);
    const int64_t ein[] = {X, 1, 2, 3, X, /**/ X, X, 4, 5, 6, /**/ X, X, X, 7, 8};
    const int64_t etg[] = {1, 2, 3, -100, -100, /**/ -100, 4, 5, 6, -100, /**/ -100, -100, 7, 8, 0};
    TEST_CHECK(same_ints(in, ein, 15), "delay lm inputs by hand", "inputs differ");
    TEST_CHECK(same_ints(tg, etg, 15), "delay lm targets by hand", "targets differ");
    // padding: the same sample with only 2 real frames
    gvm_delay_pattern_lm_batch(ctx, c, (int64_t[]){2}, X, -100, &in, &tg);
    const int64_t pin[] = {X, 1, 2, X, X, /**/ X, X, 4, 5, X, /**/ X, X, X, 7, 8};
    const int64_t ptg[] = {1, 2, -100, -100, -100, /**/ -100, 4, 5, -100, -100, /**/ -100, -100, 7, 8, -100};
    TEST_CHECK(same_ints(in, pin, 15) && same_ints(tg, ptg, 15), "delay lm batch with lengths", "padded pair differs");
    // 30 s at 50 Hz with 4 codebooks: 1503 steps (GVMGEN.md)
    TEST_CHECK(gvm_delay_pattern_steps(1500, 4) == 1503, "delay steps 1500x4", "%lld",
               (long long)gvm_delay_pattern_steps(1500, 4));
    // a partial revert (a generation 2 steps short): frames whose last codebook is missing are invalid
    gvm_tensor *valid;
    gvm_tensor *r = gvm_delay_pattern_revert(ctx, gvm_slice(ctx, gvm_contiguous(ctx, s), 2, 0, 3), 3, X, &valid);
    const int64_t er[] = {1, 2, 3, /**/ 4, 5, X, /**/ 7, X, X};
    const int64_t ev[] = {1, 1, 1, 1, 1, 0, 1, 0, 0};
    TEST_CHECK(same_ints(r, er, 9) && same_ints(valid, ev, 9), "delay partial revert", "codes or mask differ");
    gvm_ctx_free(ctx);
}

static void delay_round_trip(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    int fails = 0;
    for (int64_t K = 1; K <= 4; K++)
        for (int64_t T = 1; T <= 50; T++) {
            const gvm_dtype dt = T % 2 ? GVM_I32 : GVM_I64;
            gvm_tensor *c = test_randint((uint64_t)(K * 100 + T), dt, 3, (int64_t[]){2, K, T}, 2048);
            gvm_tensor *s = gvm_delay_pattern_build(ctx, c, 2048);
            gvm_tensor *valid;
            gvm_tensor *r = gvm_delay_pattern_revert(ctx, s, T, 2048, &valid);
            bool ok = s->shape[2] == T + K - 1 && s->dtype == dt && r->dtype == dt && r->numel == c->numel;
            for (int64_t i = 0; ok && i < c->numel; i++)
                ok = gvm_tensor_get_index(r, i) == gvm_tensor_get_index(c, i);
            for (int64_t i = 0; ok && i < valid->numel; i++) ok = gvm_tensor_get_index(valid, i) == 1;
            // every step holds exactly the codes the definition puts there
            for (int64_t b = 0; ok && b < 2; b++)
                for (int64_t k = 0; ok && k < K; k++)
                    for (int64_t st = 0; ok && st < T + K - 1; st++) {
                        const int64_t v = gvm_tensor_get_index(s, (b * K + k) * (T + K - 1) + st);
                        const bool real = gvm_delay_pattern_is_valid(st, k, T);
                        ok = real ? v == gvm_tensor_get_index(c, (b * K + k) * T + st - k) : v == 2048;
                    }
            fails += !ok;
            gvm_tensor_free(c);
            gvm_ctx_reset(ctx);
        }
    TEST_CHECK(fails == 0, "delay round trip K 1..4, T 1..50", "%d cases failed", fails);
    gvm_ctx_free(ctx);
}

// ---- the golden model ------------------------------------------------------------------------------------------
typedef struct lm_golden {
    gvm_safetensors *st;
    test_params p;
    gvm_param_store ps;
    gvm_nn_music_lm m;
    gvm_nn_music_lm_cfg cfg;
} lm_golden;

static gvm_tensor *load(const lm_golden *g, const char *key) { return nn_golden_load(g->st, key); }

static void compare(const lm_golden *g, const char *key, const gvm_tensor *got) {
    nn_golden_compare(g->st, NULL, key, got);
}

static bool golden_open(lm_golden *g) {
    memset(g, 0, sizeof *g);
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_lm/lm.safetensors", test_golden_dir());
    if (gvm_safetensors_open(path, &g->st) != GVM_OK)
        return test_check(false, "nn_lm golden", "cannot read %s (regenerate: cd tests/golden && python3 "
                          "generate.py --only nn_lm)", gvm_error_message());
    const char *params = gvm_safetensors_metadata(g->st, "params");
    g->p = test_params_parse(params ? params : "");
    g->cfg = (gvm_nn_music_lm_cfg){.num_codebooks = test_param_i(&g->p, "K", 0), .card = test_param_i(&g->p, "card", 0),
                                   .d_model = test_param_i(&g->p, "d_model", 0),
                                   .num_heads = test_param_i(&g->p, "heads", 0),
                                   .num_layers = test_param_i(&g->p, "layers", 0),
                                   .ffn_dim = test_param_i(&g->p, "ffn", 0)};
    gvm_param_store_init(&g->ps);
    gvm_nn_music_lm_init(&g->m, &g->ps, &g->cfg);
    gvm_param_store_finalize(&g->ps);
    // the file must hold exactly the store's parameters, so a wrong or missing name fails here
    return nn_golden_load_params(g->st, &g->ps, "nn_lm names");
}

static void golden_close(lm_golden *g) {
    gvm_nn_music_lm_free(&g->m);
    gvm_param_store_free(&g->ps);
    gvm_safetensors_close(g->st);
}

// Logits and every gradient for sum(logits * gout); the training pair built by the C delay pattern equals
// the twin's; the loss and its logits gradient.
static void golden_forward_backward(void) {
    lm_golden g;
    if (!golden_open(&g)) return;
    gvm_ctx *ctx = gvm_ctx_new(3);
    gvm_tensor *frames = load(&g, "in.frames"), *lengths = load(&g, "in.lengths"), *codes = load(&g, "in.codes");
    gvm_tensor *targets = load(&g, "in.targets"), *cond = load(&g, "in.cond"), *cmask = load(&g, "in.cond_mask");
    cond->requires_grad = true;

    gvm_tensor *in, *tg;
    gvm_delay_pattern_lm_batch(ctx, frames, gvm_tensor_i64(lengths), g.cfg.card, GVM_NN_MUSIC_LM_IGNORE_INDEX, &in,
                               &tg);
    TEST_CHECK(same_ints(in, gvm_tensor_i64(codes), codes->numel), "nn_lm delay inputs", "differ from the twin's");
    TEST_CHECK(same_ints(tg, gvm_tensor_i64(targets), targets->numel), "nn_lm delay targets", "differ from the twin's");

    gvm_tensor *logits[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    gvm_nn_music_lm_forward(ctx, &g.m, codes, cond, cmask, NULL, logits);
    gvm_tensor *out = gvm_nn_music_lm_stack_logits(ctx, logits, g.cfg.num_codebooks);  // [B, K, S, card]
    compare(&g, "out", out);
    const gvm_st_entry *gout = gvm_safetensors_find(g.st, "gout");
    GVM_CHECK(gout && (int64_t)(gout->nbytes / 4) == out->numel, "nn_lm: bad gout");
    gvm_backward_with_grad(ctx, out, gout->data);
    char key[GVM_NN_NAME_MAX + 32];
    for (int i = 0; i < g.ps.n_params; i++) {
        snprintf(key, sizeof key, "grad.param.%s", g.ps.params[i]->name);
        compare(&g, key, g.ps.params[i]->grad);
    }
    compare(&g, "grad.in.cond", cond->grad);

    // the loss from the model's logits (forward only), then on the twin's logits as leaves for its gradient
    gvm_ctx_reset(ctx);
    gvm_no_grad_begin(ctx);
    gvm_nn_music_lm_forward(ctx, &g.m, codes, cond, cmask, NULL, logits);
    compare(&g, "loss", gvm_nn_music_lm_loss(ctx, logits, g.cfg.num_codebooks, targets, GVM_NN_MUSIC_LM_IGNORE_INDEX));
    gvm_no_grad_end(ctx);
    gvm_tensor *ref = load(&g, "out");  // [B, K, S, card]
    const int64_t B = ref->shape[0], K = ref->shape[1], S = ref->shape[2], C = ref->shape[3];
    gvm_tensor *leaves[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    for (int64_t k = 0; k < K; k++) {
        leaves[k] = gvm_tensor_new(GVM_F32, 3, (int64_t[]){B, S, C});
        for (int64_t b = 0; b < B; b++)
            memcpy(gvm_tensor_f32(leaves[k]) + b * S * C, gvm_tensor_f32(ref) + (b * K + k) * S * C,
                   (size_t)(S * C) * sizeof(float));
        leaves[k]->requires_grad = true;
    }
    gvm_tensor *loss = gvm_nn_music_lm_loss(ctx, leaves, K, targets, GVM_NN_MUSIC_LM_IGNORE_INDEX);
    compare(&g, "loss", loss);
    gvm_backward(ctx, loss);
    gvm_tensor *lg[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    for (int64_t k = 0; k < K; k++) lg[k] = leaves[k]->grad;
    compare(&g, "loss_grad_logits", gvm_nn_music_lm_stack_logits(ctx, lg, K));

    // invalid steps carry no gradient and changing their logits leaves the loss unchanged
    float zero_ok = 1, moved = 0;
    const float before = gvm_tensor_f32(loss)[0];
    for (int64_t k = 0; k < K; k++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++)
                if (gvm_tensor_i64(targets)[(b * K + k) * S + s] == GVM_NN_MUSIC_LM_IGNORE_INDEX)
                    for (int64_t c = 0; c < C; c++) {
                        zero_ok *= gvm_tensor_f32(leaves[k]->grad)[(b * S + s) * C + c] == 0.0f;
                        gvm_tensor_f32(leaves[k])[(b * S + s) * C + c] += 5.0f * (float)(c % 3);
                    }
    gvm_no_grad_begin(ctx);
    moved = fabsf(gvm_tensor_f32(gvm_nn_music_lm_loss(ctx, leaves, K, targets, -100))[0] - before);
    gvm_no_grad_end(ctx);
    TEST_CHECK(zero_ok == 1 && moved == 0.0f, "nn_lm loss ignores invalid steps", "grad nonzero or loss moved %g",
               moved);
    for (int64_t k = 0; k < K; k++) gvm_tensor_free(leaves[k]);
    gvm_tensor_free(ref);

    // KV cache: the start step alone, then 1, 2 and 3 steps at a time, equal the full forward
    gvm_ctx_reset(ctx);
    gvm_no_grad_begin(ctx);
    gvm_nn_music_lm_forward(ctx, &g.m, codes, cond, cmask, NULL, logits);
    gvm_tensor *full = gvm_nn_music_lm_stack_logits(ctx, logits, K);  // [B, K, S, C]
    gvm_nn_music_lm_cache cache;
    gvm_nn_music_lm_cache_init(&cache, &g.m);
    for (int pass = 0; pass < 2; pass++) {
        gvm_nn_music_lm_cache_reset(&cache);
        const int64_t chunks[] = {1, 1, 2, 3};
        float worst = 0;
        for (int64_t ci = 0, t0 = 0; ci < 4; t0 += chunks[ci], ci++) {
            gvm_tensor *cs = gvm_slice(ctx, codes, 2, t0, t0 + chunks[ci]);  // [B, K, n]
            gvm_nn_music_lm_forward(ctx, &g.m, cs, t0 == 0 ? cond : NULL, cmask, &cache, logits);
            gvm_tensor *step = gvm_nn_music_lm_stack_logits(ctx, logits, K);  // [B, K, n, C]
            gvm_tensor *want = gvm_contiguous(ctx, gvm_slice(ctx, full, 2, t0, t0 + chunks[ci]));
            for (int64_t i = 0; i < step->numel; i++)
                worst = fmaxf(worst, fabsf(gvm_tensor_f32(step)[i] - gvm_tensor_f32(want)[i]));
            if (isnan(gvm_tensor_f32(step)[0])) worst = INFINITY;
        }
        TEST_CHECK(worst <= 1e-5f && gvm_nn_music_lm_cache_len(&cache) == S, "nn_lm kv cache = full forward",
                   "pass %d: differs by %g (cache len %lld)", pass, worst,
                   (long long)gvm_nn_music_lm_cache_len(&cache));
    }
    gvm_nn_music_lm_cache_free(&cache);
    gvm_no_grad_end(ctx);

    gvm_tensor_free(frames);
    gvm_tensor_free(lengths);
    gvm_tensor_free(codes);
    gvm_tensor_free(targets);
    gvm_tensor_free(cond);
    gvm_tensor_free(cmask);
    gvm_ctx_free(ctx);
    golden_close(&g);
}

// Per-codebook means, then the mean over K (audiocraft), not one mean over all valid targets: the codebooks
// here have 3 and 1 valid targets, where the two differ.
static void loss_per_codebook_mean(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    const int64_t B = 1, S = 4, C = 5;
    gvm_tensor *l[2] = {test_randn(1, 3, (int64_t[]){B, S, C}, 2.0f, false),
                        test_randn(2, 3, (int64_t[]){B, S, C}, 2.0f, false)};  // [B, S, C] per codebook
    const int64_t t[] = {1, 4, -100, 0, /**/ -100, -100, 3, -100};  // [1, 2, 4]
    gvm_tensor *tg = i64_tensor(ctx, 3, (int64_t[]){B, 2, S}, t);
    double ref = 0;
    for (int k = 0; k < 2; k++) {
        double sum = 0;
        int n = 0;
        for (int s = 0; s < S; s++) {
            const int64_t y = t[k * S + s];
            if (y == -100) continue;
            const float *row = gvm_tensor_f32(l[k]) + s * C;
            double mx = row[0], z = 0;
            for (int c = 1; c < C; c++) mx = fmax(mx, row[c]);
            for (int c = 0; c < C; c++) z += exp(row[c] - mx);
            sum += log(z) + mx - row[y];
            n++;
        }
        ref += sum / n / 2;
    }
    gvm_tensor *loss = gvm_nn_music_lm_loss(ctx, l, 2, tg, -100);
    test_close_to_ref("nn_lm loss: per-codebook mean, then over K", gvm_tensor_f32(loss), &ref, 1, 1e-6);
    gvm_tensor_free(l[0]);
    gvm_tensor_free(l[1]);
    gvm_ctx_free(ctx);
}

// The positions are MusicGen's [cos | sin] halves, including an odd width's zero column and an offset.
static void positions_formula(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *pe = gvm_nn_music_lm_positions(ctx, 1497, 3, 9);  // [3, 9], half 4
    double ref[27];
    for (int s = 0; s < 3; s++) {
        for (int j = 0; j < 4; j++) {
            const double a = (1497.0 + s) * pow(10000.0, -(double)j / 3.0);
            ref[s * 9 + j] = cos(a);
            ref[s * 9 + 4 + j] = sin(a);
        }
        ref[s * 9 + 8] = 0.0;
    }
    test_close_to_ref("nn_lm positions [cos | sin], offset, odd width", gvm_tensor_f32(pe), ref, 27, 1e-6);
    gvm_ctx_free(ctx);
}

// ---- condition dropout ---------------------------------------------------------------------------------------
static void cond_dropout(void) {
    const int64_t B = 64, F = 3, Dc = 5;
    gvm_ctx *ctx = gvm_ctx_new(42);
    ctx->training = true;
    gvm_tensor *cond = test_randn(9, 3, (int64_t[]){B, F, Dc}, 1.0f, true);
    gvm_tensor *co, *mo;
    bool dropped[64];
    gvm_nn_music_lm_cond_dropout(ctx, cond, NULL, 0.0f, &co, &mo, dropped);
    TEST_CHECK(co == cond && mo == NULL, "cond dropout p=0 identity", "inputs not returned unchanged");

    gvm_nn_music_lm_cond_dropout(ctx, cond, NULL, 1.0f, &co, &mo, dropped);
    bool all = mo != NULL;
    for (int64_t i = 0; all && i < co->numel; i++) all = gvm_tensor_f32(co)[i] == 0.0f;
    for (int64_t i = 0; all && i < mo->numel; i++) all = gvm_tensor_u8(mo)[i] == 0;
    for (int64_t b = 0; all && b < B; b++) all = dropped[b];
    TEST_CHECK(all, "cond dropout p=1 drops all", "some condition or mask left");

    // p = 0.3: seeded (same seed, same decisions; another seed, others), about 30 %, rows zeroed exactly
    int n_drop[2] = {0, 0};
    bool same = true, other = false;
    for (int run = 0; run < 3; run++) {
        gvm_ctx *c2 = gvm_ctx_new(run < 2 ? 5 : 6);
        c2->training = true;
        gvm_tensor *mask = gvm_tensor_empty(c2, GVM_U8, 2, (int64_t[]){B, F});
        for (int64_t i = 0; i < B * F; i++) gvm_tensor_u8(mask)[i] = i % 4 != 1;
        bool d[64];
        gvm_nn_music_lm_cond_dropout(c2, cond, mask, 0.3f, &co, &mo, d);
        bool rows_ok = true;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t i = 0; i < F * Dc; i++)
                rows_ok &= gvm_tensor_f32(co)[b * F * Dc + i] == (d[b] ? 0.0f : gvm_tensor_f32(cond)[b * F * Dc + i]);
            for (int64_t f = 0; f < F; f++)
                rows_ok &= gvm_tensor_u8(mo)[b * F + f] == (d[b] ? 0 : gvm_tensor_u8(mask)[b * F + f]);
            if (run < 2) n_drop[run] += d[b];
            if (run == 1) same &= d[b] == dropped[b];
            if (run == 2) other |= d[b] != dropped[b];
            if (run == 0) dropped[b] = d[b];
        }
        TEST_CHECK(rows_ok, "cond dropout zeroes whole samples", "run %d: a row is not exactly dropped/kept", run);
        if (run == 0) {  // gradient reaches kept samples only
            gvm_backward(c2, gvm_sum(c2, co, GVM_AXIS_ALL, false));
            bool g_ok = true;
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < F * Dc; i++)
                    g_ok &= gvm_tensor_f32(cond->grad)[b * F * Dc + i] == (d[b] ? 0 : 1);
            TEST_CHECK(g_ok, "cond dropout gradient", "kept samples must get grad 1, dropped 0");
        }
        gvm_ctx_free(c2);
    }
    TEST_CHECK(same && n_drop[0] == n_drop[1], "cond dropout seeded", "same seed gave other decisions");
    TEST_CHECK(other, "cond dropout depends on the seed", "another seed gave the same decisions");
    TEST_CHECK(n_drop[0] >= 8 && n_drop[0] <= 32, "cond dropout rate", "%d of 64 dropped at p = 0.3", n_drop[0]);

    ctx->training = false;
    gvm_nn_music_lm_cond_dropout(ctx, cond, NULL, 1.0f, &co, &mo, dropped);
    TEST_CHECK(co == cond && mo == NULL, "cond dropout off in eval", "eval dropped the condition");
    gvm_tensor_free(cond);
    gvm_ctx_free(ctx);
}

// A dropped sample's logits equal the unconditional ones (null condition), the kept sample's do not.
static void cond_dropout_is_null(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_music_lm m;
    const gvm_nn_music_lm_cfg cfg = {.num_codebooks = 2, .card = 8, .d_model = 16, .num_heads = 2, .num_layers = 2,
                                     .init_std = 0.3f};
    gvm_nn_music_lm_init(&m, &ps, &cfg);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 4);
    gvm_nn_music_lm_reset_parameters(&m, &rng);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *cond = test_randn(3, 3, (int64_t[]){1, 4, 16}, 1.0f, false);
    gvm_tensor *codes = test_randint(5, GVM_I64, 3, (int64_t[]){1, 2, 5}, 9);
    gvm_tensor *l[2], *co, *mo, *nc, *nm;
    ctx->training = true;
    gvm_nn_music_lm_cond_dropout(ctx, cond, NULL, 1.0f, &co, &mo, NULL);
    ctx->training = false;
    gvm_nn_music_lm_forward(ctx, &m, codes, co, mo, NULL, l);
    gvm_tensor *dropped = gvm_nn_music_lm_stack_logits(ctx, l, 2);
    gvm_nn_music_lm_null_cond(ctx, 1, 4, 16, &nc, &nm);
    gvm_nn_music_lm_forward(ctx, &m, codes, nc, nm, NULL, l);
    gvm_tensor *uncond = gvm_nn_music_lm_stack_logits(ctx, l, 2);
    gvm_nn_music_lm_forward(ctx, &m, codes, cond, NULL, NULL, l);
    gvm_tensor *condl = gvm_nn_music_lm_stack_logits(ctx, l, 2);
    float same = 0, diff = 0;
    for (int64_t i = 0; i < uncond->numel; i++) {
        same = fmaxf(same, fabsf(gvm_tensor_f32(dropped)[i] - gvm_tensor_f32(uncond)[i]));
        diff = fmaxf(diff, fabsf(gvm_tensor_f32(condl)[i] - gvm_tensor_f32(uncond)[i]));
    }
    TEST_CHECK(same == 0.0f && diff > 1e-3f, "cond dropout = null condition", "dropped vs null %g, cond vs null %g",
               same, diff);
    const char *names[] = {"model.decoder.embed_tokens.1.weight", "model.decoder.layers.1.encoder_attn.v_proj.weight",
                           "model.decoder.layer_norm.bias", "lm_heads.1.weight"};
    for (int i = 0; i < 4; i++)
        TEST_CHECK(gvm_param_store_find(&ps, names[i]) != NULL, "nn_lm names", "missing %s", names[i]);
    TEST_CHECK(m.embed_tokens[0].weight->shape[0] == 9 && m.lm_heads[1].weight->shape[0] == 8 && !m.lm_heads[0].bias,
               "nn_lm shapes", "embedding card+1 rows, heads card rows without bias");
    gvm_tensor_free(cond);
    gvm_tensor_free(codes);
    gvm_ctx_free(ctx);
    gvm_nn_music_lm_free(&m);
    gvm_param_store_free(&ps);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    delay_layout_by_hand();
    delay_round_trip();
    positions_formula();
    loss_per_codebook_mean();
    golden_forward_backward();
    cond_dropout();
    cond_dropout_is_null();
    return test_finish();
}
