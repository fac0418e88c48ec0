// test_nn_generate.c: generation (nn/generate.h) and logits processing (nn/sampling.h) on a tiny random GVMGen:
//   greedy generation with the KV cache equals an independent cache-free loop (the whole prefix re-run
//   through gvm_nn_music_lm_forward at every step, delay positions and prompt forced by the test's own
//   rules), with and without guidance, with and without a prompt; seeds (same -> same codes, other ->
//   other codes, a sample's codes do not depend on its batch); the delay pattern of what was fed; guidance
//   at scale 1 equals no guidance; the processed logits equal transformers' processors
//   (tests/golden/gen_nn_generate.py); 20000 draws match the renormalised probabilities (chi-square);
//   a prompt is continued; bad inputs give clear errors; the arena is left as found.
// `test_nn_generate --bench` prints generation speed (codec frames/s) for a tiny and a demo-sized LM.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/generate.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"

typedef struct model {
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    int64_t K, card, D;
} model;

static void model_open(model *mo, int64_t K, int64_t card, int64_t d, int64_t heads, int64_t layers, float std) {
    gvm_nn_gvmgen_cfg c;
    memset(&c, 0, sizeof c);
    c.vision = (gvm_nn_vit_cfg){.image_size = 8, .patch_size = 4, .width = 16, .layers = 1, .heads = 2,
                                .act = GVM_NN_ACT_QUICK_GELU};
    c.qformer = (gvm_nn_qformer_cfg){.width = 16, .layers = 1, .heads = 2, .num_queries = 2, .intermediate = 32,
                                     .out_dim = 8};
    // a larger init than HF's 0.02, so the logits are far from flat and the context changes the argmax
    c.lm = (gvm_nn_music_lm_cfg){.num_codebooks = K, .card = card, .d_model = d, .num_heads = heads,
                                 .num_layers = layers, .init_std = std};
    gvm_param_store_init(&mo->ps);
    gvm_nn_gvmgen_init(&mo->m, &mo->ps, &c);
    gvm_param_store_finalize(&mo->ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 11);
    gvm_nn_gvmgen_reset_parameters(&mo->m, &rng);
    mo->K = K;
    mo->card = card;
    mo->D = d;
}

static void model_close(model *mo) {
    gvm_nn_gvmgen_free(&mo->m);
    gvm_param_store_free(&mo->ps);
}

// A condition [B, F, D] and mask [B, F] (sample 1 has its last two frames padded).
static void make_cond(const model *mo, int64_t B, int64_t F, uint64_t seed, gvm_tensor **cond, gvm_tensor **mask) {
    *cond = test_randn(seed, 3, (int64_t[]){B, F, mo->D}, 1.0f, false);
    *mask = gvm_tensor_new(GVM_U8, 2, (int64_t[]){B, F});
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < F; f++) gvm_tensor_u8(*mask)[b * F + f] = !(b == 1 && f >= F - 2);
}

static gvm_nn_generate_opts greedy_opts(float cfg) {
    gvm_nn_generate_opts o = {.cfg_scale = cfg, .sample = {.temperature = 1.0f, .top_k = 1}};
    return o;
}

static gvm_nn_generate_opts sampled_opts(float cfg, uint64_t seed) {
    gvm_nn_generate_opts o = {.cfg_scale = cfg, .sample = {.temperature = 1.0f, .top_k = 8, .seed = seed}};
    return o;
}

static bool same_i64(const int64_t *a, const int64_t *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

// ---- (a) the KV-cache loop equals a cache-free re-run ------------------------------------------------------

// The oracle: at every step the whole prefix (start token + the delayed sequence so far) goes through the LM
// without a cache; guided rows combined by hand; argmax; the delay and prompt rules written out here.
static void cache_free_greedy(gvm_ctx *ctx, const model *mo, gvm_tensor *cond, gvm_tensor *mask, int64_t T,
                              const int64_t *prompt, int64_t P, float cfg, int64_t *seq /* [B, K, S] */) {
    const int64_t K = mo->K, card = mo->card, B = cond->shape[0], F = cond->shape[1], S = T + K - 1;
    const int64_t rows = cfg > 0 ? 2 * B : B;
    gvm_no_grad_begin(ctx);
    gvm_tensor *c = cond, *cm = mask;
    if (cfg > 0) {  // [cond; zeros], [mask; zeros]
        gvm_tensor *z = gvm_tensor_zeros(ctx, GVM_F32, 3, (int64_t[]){B, F, mo->D});
        c = gvm_concat(ctx, (gvm_tensor *[]){cond, z}, 2, 0);
        cm = gvm_tensor_zeros(ctx, GVM_U8, 2, (int64_t[]){2 * B, F});
        memcpy(gvm_tensor_u8(cm), gvm_tensor_u8(mask), (size_t)(B * F));
    }
    for (int64_t s = 0; s < S; s++) {
        gvm_tensor *in = gvm_tensor_empty(ctx, GVM_I64, 3, (int64_t[]){rows, K, s + 1});
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t j = 0; j <= s; j++)
                    gvm_tensor_i64(in)[(r * K + k) * (s + 1) + j] = j == 0 ? card : seq[((r % B) * K + k) * S + j - 1];
        gvm_tensor *lg[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
        gvm_nn_music_lm_forward(ctx, &mo->m.lm, in, c, cm, NULL, lg);
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < K; k++) {
                int64_t v;
                if (s < k || s - k >= T) {
                    v = card;
                } else if (s - k < P) {
                    v = prompt[(b * K + k) * P + s - k];
                } else {
                    const float *lc = gvm_tensor_f32(lg[k]) + (b * (s + 1) + s) * card;
                    const float *lu = cfg > 0 ? gvm_tensor_f32(lg[k]) + ((b + B) * (s + 1) + s) * card : NULL;
                    v = 0;
                    float best = -INFINITY;
                    for (int64_t j = 0; j < card; j++) {
                        const float x = lu ? lu[j] + (lc[j] - lu[j]) * cfg : lc[j];
                        if (x > best) best = x, v = j;
                    }
                }
                seq[(b * K + k) * S + s] = v;
            }
    }
    gvm_no_grad_end(ctx);
    gvm_ctx_reset(ctx);
}

static void greedy_equals_cache_free(const model *mo, float cfg, int64_t P) {
    char label[96];
    snprintf(label, sizeof label, "greedy == cache-free (cfg %g, prompt %lld)", (double)cfg, (long long)P);
    const int64_t B = 2, F = 5, T = 14, K = mo->K, S = T + K - 1;
    gvm_tensor *cond, *mask;
    make_cond(mo, B, F, 5, &cond, &mask);
    gvm_tensor *pr = P ? test_randint(9, GVM_I64, 3, (int64_t[]){B, K, P}, mo->card) : NULL;
    const int64_t *prompt = pr ? gvm_tensor_i64(pr) : NULL;
    int64_t *codes = calloc((size_t)(B * K * T), sizeof *codes), *seq = calloc((size_t)(B * K * S), sizeof *seq);
    int64_t *ref = calloc((size_t)(B * K * S), sizeof *ref);
    gvm_ctx *ctx = gvm_ctx_new(3);
    gvm_nn_generate_opts o = greedy_opts(cfg);
    o.seq_out = seq;
    const gvm_status st = gvm_nn_generate(ctx, &mo->m, cond, mask, T, prompt, K, P, &o, codes);
    if (TEST_CHECK(st == GVM_OK, label, "%s", gvm_error_message())) {
        cache_free_greedy(ctx, mo, cond, mask, T, prompt, P, cfg, ref);
        int64_t bad = -1;
        for (int64_t i = 0; i < B * K * S && bad < 0; i++)
            if (seq[i] != ref[i]) bad = i;
        TEST_CHECK(bad < 0, label, "first difference at [b %lld, k %lld, s %lld]: %lld vs %lld",
                   (long long)(bad / (K * S)), (long long)(bad / S % K), (long long)(bad % S),
                   (long long)(bad >= 0 ? seq[bad] : 0), (long long)(bad >= 0 ? ref[bad] : 0));
        int distinct = 0;  // a model that always says the same code would make this test vacuous
        for (int64_t v = 0; v < mo->card; v++)
            for (int64_t i = 0; i < B * K * T; i++)
                if (codes[i] == v) {
                    distinct++;
                    break;
                }
        TEST_CHECK(distinct >= 4, label, "only %d distinct codes: the oracle comparison is too weak", distinct);
    }
    gvm_ctx_free(ctx);
    free(codes);
    free(seq);
    free(ref);
    gvm_tensor_free(pr);
    gvm_tensor_free(cond);
    gvm_tensor_free(mask);
}

// ---- (b) seeds, (c) delay pattern, (d) guidance at scale 1, (f) prompt --------------------------------------

typedef struct progress_log {
    int calls;
    int64_t last_step, last_total;
    bool monotone;
} progress_log;

static void on_progress(void *user, int64_t step, int64_t total) {
    progress_log *p = user;
    p->monotone = p->monotone && step > p->last_step && step <= total;
    p->calls++;
    p->last_step = step;
    p->last_total = total;
}

// Generate with the given options; returns the status; codes [B, K, T], seq [B, K, S] when not NULL.
static gvm_status run(const model *mo, gvm_tensor *cond, gvm_tensor *mask, int64_t T, const int64_t *prompt,
                      int64_t P, gvm_nn_generate_opts o, int64_t *codes, int64_t *seq) {
    gvm_ctx *ctx = gvm_ctx_new(99);
    o.seq_out = seq;
    const gvm_status st = gvm_nn_generate(ctx, &mo->m, cond, mask, T, prompt, mo->K, P, &o, codes);
    gvm_ctx_free(ctx);
    return st;
}

static void seeds_and_patterns(const model *mo) {
    const int64_t B = 2, F = 4, T = 20, K = mo->K, S = T + K - 1, n = B * K * T;
    gvm_tensor *cond, *mask;
    make_cond(mo, B, F, 21, &cond, &mask);
    int64_t *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b), *c = calloc((size_t)n, sizeof *c);
    int64_t *seq = calloc((size_t)(B * K * S), sizeof *seq);

    // (b) same seed -> same codes; another seed -> other codes
    run(mo, cond, mask, T, NULL, 0, sampled_opts(3.0f, 7), a, seq);
    run(mo, cond, mask, T, NULL, 0, sampled_opts(3.0f, 7), b, NULL);
    run(mo, cond, mask, T, NULL, 0, sampled_opts(3.0f, 8), c, NULL);
    TEST_CHECK(same_i64(a, b, n), "seed: same seed, same codes", "differ");
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += a[i] != c[i];
    TEST_CHECK(diff > n / 4, "seed: another seed, other codes", "only %lld of %lld codes differ", (long long)diff,
               (long long)n);

    // (c) what was fed: special exactly where codebook k has not started or has ended; never in the codes
    int64_t wrong = 0, special_codes = 0;
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t v = seq[(bb * K + k) * S + s];
                const bool should_be_special = s < k || s - k >= T;
                wrong += should_be_special ? v != mo->card : (v < 0 || v >= mo->card);
                if (!should_be_special) wrong += a[(bb * K + k) * T + s - k] != v;  // codes = the undelayed seq
            }
    for (int64_t i = 0; i < n; i++) special_codes += a[i] < 0 || a[i] >= mo->card;
    TEST_CHECK(wrong == 0, "delay: special before start and after end, codes elsewhere", "%lld wrong",
               (long long)wrong);
    TEST_CHECK(special_codes == 0, "delay: no special token in the codes", "%lld", (long long)special_codes);

    // a sample's stream does not depend on its batch: sample 0 alone gives its codes of the batch of 2
    gvm_tensor *c0 = gvm_tensor_wrap(GVM_F32, 3, (int64_t[]){1, F, mo->D}, gvm_tensor_f32(cond));
    gvm_tensor *m0 = gvm_tensor_wrap(GVM_U8, 2, (int64_t[]){1, F}, gvm_tensor_u8(mask));
    run(mo, c0, m0, T, NULL, 0, sampled_opts(3.0f, 7), b, NULL);
    TEST_CHECK(same_i64(a, b, K * T), "seed: sample 0 alone == sample 0 in a batch", "differ");

    // (d) guidance at scale 1 == no guidance rows (same seed), sampled and greedy; scale 3 changes the codes
    run(mo, cond, mask, T, NULL, 0, sampled_opts(1.0f, 5), a, NULL);
    run(mo, cond, mask, T, NULL, 0, sampled_opts(0.0f, 5), b, NULL);
    TEST_CHECK(same_i64(a, b, n), "cfg 1 == no cfg (sampled)", "differ");
    run(mo, cond, mask, T, NULL, 0, greedy_opts(1.0f), a, NULL);
    run(mo, cond, mask, T, NULL, 0, greedy_opts(0.0f), b, NULL);
    TEST_CHECK(same_i64(a, b, n), "cfg 1 == no cfg (greedy)", "differ");
    run(mo, cond, mask, T, NULL, 0, greedy_opts(3.0f), c, NULL);
    diff = 0;
    for (int64_t i = 0; i < n; i++) diff += b[i] != c[i];
    TEST_CHECK(diff > 0, "cfg 3 changes the codes", "identical to no guidance");

    // (f) a prompt is continued: the first P frames are the prompt's; progress is reported per LM call
    const int64_t P = 6;
    gvm_tensor *pr = test_randint(31, GVM_I64, 3, (int64_t[]){B, K, P}, mo->card);
    progress_log pl = {.monotone = true};
    gvm_nn_generate_opts o = sampled_opts(3.0f, 3);
    o.progress = on_progress;
    o.progress_user = &pl;
    if (TEST_CHECK(run(mo, cond, mask, T, gvm_tensor_i64(pr), P, o, a, NULL) == GVM_OK, "prompt: runs", "%s",
                   gvm_error_message())) {
        int64_t bad = 0;
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t t = 0; t < P; t++)
                    bad += a[(bb * K + k) * T + t] != gvm_tensor_i64(pr)[(bb * K + k) * P + t];
        TEST_CHECK(bad == 0, "prompt: first P frames are the prompt", "%lld differ", (long long)bad);
        TEST_CHECK(pl.monotone && pl.last_step == S && pl.last_total == S && pl.calls == S - P,
                   "progress: one call per LM call, ends at (S, S)", "calls %d, last %lld/%lld", pl.calls,
                   (long long)pl.last_step, (long long)pl.last_total);
    }
    gvm_tensor_free(pr);
    gvm_tensor_free(c0);
    gvm_tensor_free(m0);
    free(a);
    free(b);
    free(c);
    free(seq);
    gvm_tensor_free(cond);
    gvm_tensor_free(mask);
}

// The arena is as the caller left it (the condition made there survives), and training mode is restored.
static void arena_left_as_found(const model *mo) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    ctx->training = true;
    gvm_tensor *frames = test_randn(4, 5, (int64_t[]){1, 3, 3, 8, 8}, 1.0f, false);
    gvm_no_grad_begin(ctx);
    gvm_tensor *cond = gvm_nn_gvmgen_forward_condition(ctx, &mo->m, frames, NULL);  // [1, 3, D], in the arena
    gvm_no_grad_end(ctx);
    float first = gvm_tensor_f32(cond)[0];
    const size_t used = ctx->arena.used;
    int64_t codes[4 * 30];
    gvm_nn_generate_opts o = sampled_opts(3.0f, 1);
    const gvm_status st = gvm_nn_generate(ctx, &mo->m, cond, NULL, 30, NULL, 0, 0, &o, codes);
    TEST_CHECK(st == GVM_OK, "arena: generate from forward_condition", "%s", gvm_error_message());
    TEST_CHECK(ctx->arena.used == used, "arena: released", "used %zu before, %zu after", used, ctx->arena.used);
    TEST_CHECK(gvm_tensor_f32(cond)[0] == first && ctx->training && ctx->tape_len == 0,
               "arena: condition intact, training restored, nothing on the tape", "tape %d", ctx->tape_len);
    gvm_tensor_free(frames);
    gvm_ctx_free(ctx);
}

// ---- (g) bad inputs -----------------------------------------------------------------------------------------

static void expect_invalid(gvm_status st, const char *label, const char *needle) {
    const char *msg = gvm_error_message();
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(msg, needle), label, "status %d, message \"%s\" (want \"%s\")", st,
               msg, needle);
}

static void bad_inputs(const model *mo) {
    const int64_t B = 1, F = 3, K = mo->K;
    gvm_tensor *cond, *mask;
    make_cond(mo, B, F, 2, &cond, &mask);
    int64_t codes[16 * 8], prompt[16 * 8] = {0};
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_nn_generate_opts o = sampled_opts(3.0f, 1);
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 0, NULL, 0, 0, &o, codes), "bad: T = 0", "at least 1");
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, -3, NULL, 0, 0, &o, codes), "bad: T < 0", "at least 1");
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 4, prompt, K, 4, &o, codes), "bad: prompt == T",
                   "shorter than");
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 4, prompt, K, 6, &o, codes), "bad: prompt > T",
                   "shorter than");
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 8, prompt, K - 1, 2, &o, codes), "bad: prompt K",
                   "codebooks");
    prompt[1] = mo->card;  // the special token is not a code
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 8, prompt, K, 2, &o, codes), "bad: prompt code",
                   "not in 0..");
    gvm_tensor *wide = test_randn(1, 3, (int64_t[]){B, F, mo->D + 1}, 1.0f, false);
    expect_invalid(gvm_nn_generate(ctx, &mo->m, wide, NULL, 8, NULL, 0, 0, &o, codes), "bad: cond width", "width");
    gvm_tensor *m2 = gvm_tensor_new(GVM_U8, 2, (int64_t[]){B, F + 1});
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, m2, 8, NULL, 0, 0, &o, codes), "bad: mask shape", "mask");
    o.sample.top_p = -0.5f;
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 8, NULL, 0, 0, &o, codes), "bad: top_p", "top_p");
    o = sampled_opts(-1.0f, 1);
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 8, NULL, 0, 0, &o, codes), "bad: cfg", "cfg");
    o = sampled_opts(3.0f, 1);
    o.sample.temperature = -1.0f;
    expect_invalid(gvm_nn_generate(ctx, &mo->m, cond, mask, 8, NULL, 0, 0, &o, codes), "bad: temperature",
                   "temperature");
    gvm_tensor_free(wide);
    gvm_tensor_free(m2);
    gvm_ctx_free(ctx);
    gvm_tensor_free(cond);
    gvm_tensor_free(mask);
}

// ---- logits processing against transformers, and draw frequencies -----------------------------------------

typedef struct sampling_golden_file {
    gvm_safetensors *st;
    gvm_tensor *cond, *uncond;  // [R, card]
    int64_t rows, card;
} sampling_golden_file;

static bool sg_open(sampling_golden_file *g) {
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_generate/sampling.safetensors", test_golden_dir());
    if (gvm_safetensors_open(path, &g->st) != GVM_OK)
        return test_check(false, "nn_generate golden", "cannot read %s (regenerate: cd tests/golden && python3 "
                          "generate.py --only nn_generate)", gvm_error_message());
    g->cond = nn_golden_load(g->st, "in.cond");
    g->uncond = nn_golden_load(g->st, "in.uncond");
    g->rows = g->cond->shape[0];
    g->card = g->cond->shape[1];
    return true;
}

static void sg_close(sampling_golden_file *g) {
    gvm_tensor_free(g->cond);
    gvm_tensor_free(g->uncond);
    gvm_safetensors_close(g->st);
}

// The case's options and its guided (not yet processed) scores [R, card] (heap, caller frees).
static float *sg_case(const sampling_golden_file *g, const char *name, gvm_nn_sampling_opts *o) {
    char key[128];
    snprintf(key, sizeof key, "case.%s", name);
    const char *spec = gvm_safetensors_metadata(g->st, key);
    GVM_CHECK(spec != NULL, "golden lacks %s", key);
    const test_params p = test_params_parse(spec);
    const float cfg = (float)test_param_f(&p, "cfg", -1);
    *o = (gvm_nn_sampling_opts){.temperature = (float)test_param_f(&p, "temperature", -1),
                                .top_k = test_param_i(&p, "top_k", -1), .top_p = (float)test_param_f(&p, "top_p", -1),
                                .seed = 1234};
    const int64_t n = g->rows * g->card;
    float *s = malloc((size_t)n * sizeof *s);
    if (cfg > 0) gvm_nn_sampling_cfg(gvm_tensor_f32(g->cond), gvm_tensor_f32(g->uncond), g->rows, g->card, cfg, s);
    else memcpy(s, gvm_tensor_f32(g->cond), (size_t)n * sizeof *s);
    return s;
}

static void sampling_golden(void) {
    sampling_golden_file g;
    if (!sg_open(&g)) return;
    const char *cases = gvm_safetensors_metadata(g.st, "cases");
    char list[512], *save = NULL;
    snprintf(list, sizeof list, "%s", cases ? cases : "");
    int n_cases = 0;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save), n_cases++) {
        gvm_nn_sampling_opts o;
        float *s = sg_case(&g, name, &o);
        gvm_nn_sampling_process(s, g.rows, g.card, &o);
        char key[128];
        snprintf(key, sizeof key, "out.%s", name);
        gvm_tensor *want = nn_golden_load(g.st, key);
        const float *w = gvm_tensor_f32(want);
        int64_t mask_wrong = 0, worst = -1;
        double worst_err = 0.0;
        for (int64_t i = 0; i < g.rows * g.card; i++) {
            if (isinf(w[i]) || isinf(s[i])) {
                mask_wrong += !(isinf(w[i]) && isinf(s[i]) && w[i] < 0 && s[i] < 0);
            } else {
                const double e = fabs((double)s[i] - w[i]) / (1.0 + fabs(w[i]));
                if (e > worst_err) worst_err = e, worst = i;
            }
        }
        char label[160];
        snprintf(label, sizeof label, "sampling golden %s: -inf where transformers filters", name);
        TEST_CHECK(mask_wrong == 0, label, "%lld entries differ in being filtered", (long long)mask_wrong);
        snprintf(label, sizeof label, "sampling golden %s: kept scores", name);
        TEST_CHECK(worst_err <= 1e-6, label, "worst at %lld: %g vs %g", (long long)worst,
                   worst >= 0 ? s[worst] : 0.0, worst >= 0 ? w[worst] : 0.0);
        gvm_tensor_free(want);
        free(s);
    }
    TEST_CHECK(n_cases >= 5, "sampling golden: cases", "%d", n_cases);
    sg_close(&g);
}

// 20000 draws of one row through gvm_nn_sampling_sample (fresh stream position each draw) against the
// renormalised softmax of transformers' processed scores: filtered entries are never drawn, and Pearson's
// chi-square over the kept ones stays under df + 6 sqrt(2 df) (a p-value far below 1e-4 for any df here;
// a missing renormalisation or a wrong mask moves it by hundreds).
static void sampling_frequencies(void) {
    sampling_golden_file g;
    if (!sg_open(&g)) return;
    const char *names[] = {"ref", "all", "topp", "nocfg", "big_k"};
    const int64_t draws = 20000, card = g.card;
    for (size_t c = 0; c < sizeof names / sizeof *names; c++)
        for (int64_t row = 0; row < g.rows; row += 3) {
            gvm_nn_sampling_opts o;
            float *s = sg_case(&g, names[c], &o);
            char key[128];
            snprintf(key, sizeof key, "out.%s", names[c]);
            gvm_tensor *want = nn_golden_load(g.st, key);
            const float *w = gvm_tensor_f32(want) + row * card;
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < card; j++) mx = fmax(mx, w[j]);
            for (int64_t j = 0; j < card; j++) sum += exp((double)w[j] - mx);
            int64_t *count = calloc((size_t)card, sizeof *count);
            float *tmp = malloc((size_t)card * sizeof *tmp);
            for (int64_t i = 0; i < draws; i++) {
                memcpy(tmp, s + row * card, (size_t)card * sizeof *tmp);
                int64_t code;
                gvm_nn_sampling_sample(tmp, 1, 1, card, &o, i, &code);
                count[code]++;
            }
            double chi2 = 0.0;
            int64_t kept = 0, filtered_drawn = 0;
            for (int64_t j = 0; j < card; j++) {
                const double p = exp((double)w[j] - mx) / sum;
                if (p == 0.0) {
                    filtered_drawn += count[j];
                } else {
                    const double e = p * (double)draws;
                    chi2 += ((double)count[j] - e) * ((double)count[j] - e) / e;
                    kept++;
                }
            }
            const double df = (double)(kept > 1 ? kept - 1 : 1), bound = df + 6.0 * sqrt(2.0 * df);
            char label[128];
            snprintf(label, sizeof label, "frequencies %s row %lld", names[c], (long long)row);
            TEST_CHECK(filtered_drawn == 0 && (kept == 1 || chi2 <= bound), label,
                       "filtered drawn %lld, chi2 %.1f over %lld kept (bound %.1f)", (long long)filtered_drawn, chi2,
                       (long long)kept, bound);
            free(count);
            free(tmp);
            free(s);
            gvm_tensor_free(want);
        }
    sg_close(&g);
}

// Top-k by selection, against its definition on rows full of ties (and -inf entries): an entry survives iff
// fewer than k entries are strictly larger (transformers: scores < the k-th largest are removed).
static void top_k_ties(void) {
    const int64_t card = 203;
    float *row = malloc((size_t)card * sizeof *row), *orig = malloc((size_t)card * sizeof *orig);
    gvm_rng rng;
    gvm_rng_init(&rng, 77);
    int64_t wrong = 0;
    for (int trial = 0; trial < 300; trial++) {
        const int64_t levels = 1 + (int64_t)gvm_rng_below(&rng, 12), k = 2 + (int64_t)gvm_rng_below(&rng, card);
        for (int64_t j = 0; j < card; j++) {
            const int64_t l = (int64_t)gvm_rng_below(&rng, levels + 1);
            orig[j] = l == levels ? -INFINITY : (float)l * 0.5f - 2.0f;
        }
        memcpy(row, orig, (size_t)card * sizeof *row);
        const gvm_nn_sampling_opts o = {.temperature = 1.0f, .top_k = k};
        gvm_nn_sampling_process(row, 1, card, &o);
        for (int64_t j = 0; j < card; j++) {
            int64_t larger = 0;
            for (int64_t i = 0; i < card; i++) larger += orig[i] > orig[j];
            const bool keep = larger < k;
            wrong += keep ? row[j] != orig[j] : row[j] != -INFINITY;
        }
    }
    TEST_CHECK(wrong == 0, "top-k with ties", "%lld entries wrong", (long long)wrong);
    free(row);
    free(orig);
}

// ---- speed (by hand: test_nn_generate --bench; threads from OMP_NUM_THREADS) ---------------------------------

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int bench(void) {
    const struct {
        const char *name;
        int64_t K, card, d, heads, layers, T;
    } cfgs[] = {{"tiny (K 4, card 32, width 32, 2 layers, 4 heads)", 4, 32, 32, 4, 2, 1500},
                {"demo (K 4, card 2048, width 128, 2 layers, 4 heads)", 4, 2048, 128, 4, 2, 1500}};
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        model mo;
        model_open(&mo, cfgs[i].K, cfgs[i].card, cfgs[i].d, cfgs[i].heads, cfgs[i].layers, 0.02f);
        gvm_tensor *cond, *mask;
        make_cond(&mo, 1, 30, 1, &cond, &mask);
        int64_t *codes = malloc((size_t)(cfgs[i].K * cfgs[i].T) * sizeof *codes);
        for (int guided = 0; guided < 2; guided++) {
            gvm_ctx *ctx = gvm_ctx_new(1);
            gvm_nn_generate_opts o = {.cfg_scale = guided ? 3.0f : 0.0f, .sample = gvm_nn_sampling_opts_default()};
            const double t0 = now_s();
            GVM_CHECK(gvm_nn_generate(ctx, &mo.m, cond, mask, cfgs[i].T, NULL, 0, 0, &o, codes) == GVM_OK, "%s",
                      gvm_error_message());
            const double dt = now_s() - t0;
            uint64_t hash = 1469598103934665603ull;  // FNV-1a of the codes: compare runs across thread counts
            for (int64_t j = 0; j < cfgs[i].K * cfgs[i].T; j++) hash = (hash ^ (uint64_t)codes[j]) * 1099511628211ull;
            printf("%s, %s: %lld frames in %.2f s = %.1f codec frames/s (arena peak %.1f MB, codes %016llx)\n",
                   cfgs[i].name, guided ? "cfg 3 (2 rows)" : "no cfg", (long long)cfgs[i].T, dt,
                   (double)cfgs[i].T / dt, (double)ctx->arena.peak / 1e6, (unsigned long long)hash);
            gvm_ctx_free(ctx);
        }
        free(codes);
        gvm_tensor_free(cond);
        gvm_tensor_free(mask);
        model_close(&mo);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--bench") == 0) return bench();
    test_init(argc, argv);
    model mo;
    model_open(&mo, 4, 32, 32, 4, 2, 0.3f);
    greedy_equals_cache_free(&mo, 0.0f, 0);
    greedy_equals_cache_free(&mo, 3.0f, 0);
    greedy_equals_cache_free(&mo, 3.0f, 5);
    greedy_equals_cache_free(&mo, 0.0f, 3);
    seeds_and_patterns(&mo);
    arena_left_as_found(&mo);
    bad_inputs(&mo);
    model_close(&mo);
    sampling_golden();
    sampling_frequencies();
    top_k_ties();
    return test_finish();
}
