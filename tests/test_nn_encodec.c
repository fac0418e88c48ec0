// test_nn_encodec.c: EnCodec (nn/encodec.h) against the real transformers EncodecModel
// (tests/golden/gen_nn_encodec.py: three tiny random configs, non-causal reflect / causal reflect stereo /
// causal constant with trim_right_ratio 0.5): encoder latent, codes, decoded audio from codes, each for a
// batch and for an input short enough to hit reflect padding's small-input rule; the straight-through
// training forward (reconstruction, commitment loss, every parameter's gradient) against a float64 twin;
// the EMA codebook update against audiocraft's formulas, restarts as properties; the 32 kHz model's
// parameter names and shapes against its state_dict; config errors; padding by hand; lengths; the init.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/encodec.h"
#include "nn/encodec_seanet.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"

#define TOL 1e-4  // f32 against a float64 twin, |got - want| <= TOL + TOL * |want|

typedef struct golden {
    gvm_safetensors *st;
    test_params p;
    gvm_nn_encodec_cfg cfg;
    gvm_param_store ps;
    gvm_nn_encodec m;
    char key[8];
} golden;

static void compare(golden *g, const char *key, const gvm_tensor *got) {
    char label[128];
    snprintf(label, sizeof label, "nn_encodec %s %s", g->key, key);
    gvm_tensor *e = nn_golden_load(g->st, key);
    if (!got || got->numel != e->numel || got->dtype != GVM_F32)
        test_check(false, label, "size %lld, expected %lld", (long long)(got ? got->numel : -1), (long long)e->numel);
    else
        test_allclose(label, gvm_tensor_f32(got), gvm_tensor_f32(e), e->numel, TOL, TOL);
    gvm_tensor_free(e);
}

static void compare_codes(golden *g, const char *key, const gvm_tensor *got) {
    gvm_tensor *e = nn_golden_load(g->st, key);
    bool ok = got->numel == e->numel && got->ndim == 3;
    for (int i = 0; ok && i < 3; i++) ok = got->shape[i] == e->shape[i];
    for (int64_t i = 0; ok && i < e->numel; i++) ok = gvm_tensor_get_index(got, i) == gvm_tensor_get_index(e, i);
    TEST_CHECK(ok, "nn_encodec codes", "%s %s differ from transformers' encode", g->key, key);
    gvm_tensor_free(e);
}

static gvm_nn_encodec_pad pad_mode(const char *s) {
    return strcmp(s, "reflect") == 0    ? GVM_NN_ENCODEC_PAD_REFLECT
           : strcmp(s, "constant") == 0 ? GVM_NN_ENCODEC_PAD_CONSTANT
                                        : GVM_NN_ENCODEC_PAD_REPLICATE;
}

static bool golden_open(golden *g, const char *key) {
    memset(g, 0, sizeof *g);
    snprintf(g->key, sizeof g->key, "%s", key);
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_encodec/%s.safetensors", test_golden_dir(), key);
    if (gvm_safetensors_open(path, &g->st) != GVM_OK)
        return test_check(false, "nn_encodec golden", "cannot read %s (regenerate: cd tests/golden && python3 "
                          "generate.py --only nn_encodec)", gvm_error_message());
    const char *params = gvm_safetensors_metadata(g->st, "params");
    g->p = test_params_parse(params ? params : "");
    const test_params *p = &g->p;
    gvm_nn_encodec_cfg c = {0};
    c.sampling_rate = test_param_i(p, "sampling_rate", 0);
    c.audio_channels = test_param_i(p, "audio_channels", 0);
    c.num_filters = test_param_i(p, "num_filters", 0);
    c.num_residual_layers = test_param_i(p, "num_residual_layers", 0);
    const char *r = test_param_s(p, "upsampling_ratios", "");
    while (*r && c.n_ratios < GVM_NN_ENCODEC_MAX_RATIOS) {
        char *end;
        c.upsampling_ratios[c.n_ratios++] = strtoll(r, &end, 10);
        r = *end ? end + 1 : end;
    }
    c.kernel_size = test_param_i(p, "kernel_size", 0);
    c.last_kernel_size = test_param_i(p, "last_kernel_size", 0);
    c.residual_kernel_size = test_param_i(p, "residual_kernel_size", 0);
    c.dilation_growth_rate = test_param_i(p, "dilation_growth_rate", 0);
    c.use_causal_conv = test_param_i(p, "use_causal_conv", 0) != 0;
    c.pad_mode = pad_mode(test_param_s(p, "pad_mode", ""));
    c.compress = test_param_i(p, "compress", 0);
    c.num_lstm_layers = test_param_i(p, "num_lstm_layers", 0);
    c.trim_right_ratio = (float)test_param_f(p, "trim_right_ratio", 1.0);
    c.use_conv_shortcut = test_param_i(p, "use_conv_shortcut", 0) != 0;
    c.hidden_size = test_param_i(p, "hidden_size", 0);
    c.codebook_size = test_param_i(p, "codebook_size", 0);
    c.num_quantizers = test_param_i(p, "nq", 0);
    g->cfg = c;
    gvm_param_store_init(&g->ps);
    if (!test_check(gvm_nn_encodec_init(&g->m, &g->ps, &c) == GVM_OK, "nn_encodec init", "%s: %s", key,
                    gvm_error_message()))
        return false;
    gvm_param_store_finalize(&g->ps);
    // the file holds exactly the twin's state_dict: a wrong, missing or extra name fails here
    return nn_golden_load_params(g->st, &g->ps, "nn_encodec names = transformers state_dict");
}

static void golden_close(golden *g) {
    gvm_nn_encodec_free(&g->m);
    gvm_param_store_free(&g->ps);
    gvm_safetensors_close(g->st);
}

// Latent, codes and decoded audio for the batch and the short input; lengths of the convenience paths.
static void golden_inference(const char *key) {
    golden g;
    if (!golden_open(&g, key)) return;
    gvm_ctx *ctx = gvm_ctx_new(1);
    const int nq = (int)g.cfg.num_quantizers;
    const int64_t hop = gvm_nn_encodec_hop_length(&g.cfg);
    for (int s = 0; s < 2; s++) {
        const char *sfx = s ? "_short" : "";
        char k_wave[32], k_lat[32], k_codes[32], k_dec[32];
        snprintf(k_wave, sizeof k_wave, "in.wave%s", sfx);
        snprintf(k_lat, sizeof k_lat, "out.latent%s", sfx);
        snprintf(k_codes, sizeof k_codes, "out.codes%s", sfx);
        snprintf(k_dec, sizeof k_dec, "out.decoded%s", sfx);
        gvm_tensor *wave = nn_golden_load(g.st, k_wave), *codes_ref = nn_golden_load(g.st, k_codes);
        gvm_no_grad_begin(ctx);
        gvm_tensor *lat = gvm_nn_encodec_encode_latent(ctx, &g.m, wave);
        compare(&g, k_lat, lat);
        const int64_t T = wave->shape[2];
        TEST_CHECK(lat->shape[2] == gvm_nn_encodec_num_frames(&g.cfg, T), "nn_encodec frames = ceil(T / hop)",
                   "%s: %lld frames for %lld samples", key, (long long)lat->shape[2], (long long)T);
        compare_codes(&g, k_codes, gvm_nn_encodec_quantize(ctx, &g.m, lat, nq));
        compare_codes(&g, k_codes, gvm_nn_encodec_encode(ctx, &g.m, wave, nq));
        gvm_tensor *dec = gvm_nn_encodec_decode(ctx, &g.m, codes_ref, 0);  // from transformers' codes
        compare(&g, k_dec, dec);
        TEST_CHECK(dec->shape[2] == codes_ref->shape[2] * hop && dec->shape[1] == g.cfg.audio_channels,
                   "nn_encodec decode length = F * hop", "%s: %lld", key, (long long)dec->shape[2]);
        gvm_tensor *cut = gvm_nn_encodec_decode(ctx, &g.m, gvm_nn_encodec_encode(ctx, &g.m, wave, nq), T);
        bool same = cut->shape[2] == T;
        for (int64_t b = 0; same && b < cut->shape[0] * cut->shape[1]; b++)
            for (int64_t t = 0; same && t < T; t++)
                same = gvm_tensor_f32(cut)[b * T + t] == gvm_tensor_f32(dec)[b * dec->shape[2] + t];
        TEST_CHECK(same, "nn_encodec decode(encode(x), T) = first T samples", "%s: length %lld, want %lld", key,
                   (long long)cut->shape[2], (long long)T);
        // a single codebook decodes to the first codebook's codewords alone
        gvm_tensor *one = gvm_nn_encodec_dequantize(ctx, &g.m, gvm_slice(ctx, codes_ref, 1, 0, 1));
        gvm_tensor *two = gvm_nn_encodec_dequantize(ctx, &g.m, codes_ref);
        TEST_CHECK(one->numel == two->numel && nq == 2, "nn_encodec dequantize shapes", "%s", key);
        gvm_no_grad_end(ctx);
        gvm_tensor_free(wave);
        gvm_tensor_free(codes_ref);
        gvm_ctx_reset(ctx);
    }
    gvm_ctx_free(ctx);
    golden_close(&g);
}

// The training forward: recon, commit, codes and every parameter gradient of sum(recon * gout) + commit.
static void golden_train(const char *key) {
    golden g;
    if (!golden_open(&g, key)) return;
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *wave = nn_golden_load(g.st, "in.wave"), *gout = nn_golden_load(g.st, "in.gout");
    gvm_nn_encodec_train_out out;
    gvm_nn_encodec_forward_train(ctx, &g.m, wave, (int)g.cfg.num_quantizers, &out);
    compare(&g, "out.recon", out.recon);
    compare(&g, "out.commit", out.commit);
    compare(&g, "out.latent", out.latent);
    compare_codes(&g, "out.codes", out.codes);
    gvm_tensor *loss = gvm_add(ctx, gvm_sum(ctx, gvm_mul(ctx, out.recon, gout), GVM_AXIS_ALL, false), out.commit);
    gvm_backward(ctx, loss);
    char k[GVM_NN_NAME_MAX + 32];
    int n_grads = 0;
    for (int i = 0; i < g.ps.n_params; i++) {
        gvm_tensor *p = g.ps.params[i];
        if (!p->requires_grad) {
            // the codebooks are buffers: their slots in the store's gradient block stay zero
            bool zero = true;
            for (int64_t j = 0; p->grad && j < p->numel; j++) zero = zero && gvm_tensor_f32(p->grad)[j] == 0.0f;
            TEST_CHECK(strstr(p->name, "quantizer.") == p->name && zero, "nn_encodec buffers take no grad", "%s",
                       p->name);
            continue;
        }
        snprintf(k, sizeof k, "grad.param.%s", p->name);
        compare(&g, k, p->grad);
        n_grads++;
    }
    TEST_CHECK(n_grads > 20, "nn_encodec grads checked", "%s: only %d", key, n_grads);
    gvm_tensor_free(wave);
    gvm_tensor_free(gout);
    gvm_ctx_free(ctx);
    golden_close(&g);
}

// One EMA update on the golden latent and codes: live codes by audiocraft's formulas, dead codes restarted
// from one of the stage's batch vectors with embed_avg = embed * N_c.
static void golden_ema(const char *key) {
    golden g;
    if (!golden_open(&g, key)) return;
    const int64_t N = g.cfg.codebook_size, D = g.cfg.hidden_size, nq = g.cfg.num_quantizers;
    gvm_tensor *lat = nn_golden_load(g.st, "out.latent"), *codes = nn_golden_load(g.st, "out.codes");
    const gvm_nn_encodec_ema_opts o = {.decay = (float)test_param_f(&g.p, "ema_decay", 0),
                                       .eps = (float)test_param_f(&g.p, "ema_eps", 0),
                                       .threshold = (float)test_param_f(&g.p, "ema_threshold", 0)};
    gvm_rng rng;
    gvm_rng_init(&rng, 5);
    bool *replaced = calloc((size_t)(nq * N), sizeof *replaced);
    const int64_t n_rep = gvm_nn_encodec_rvq_ema_update(&g.m, lat, codes, &o, &rng, replaced);
    int64_t n_dead = 0;
    char k[64];
    for (int64_t q = 0; q < nq; q++) {
        snprintf(k, sizeof k, "ema.cluster_size.%lld", (long long)q);
        compare(&g, k, g.m.codebooks[q].cluster_size);
        gvm_tensor *dead = nn_golden_load(g.st, (snprintf(k, sizeof k, "ema.dead.%lld", (long long)q), k));
        gvm_tensor *emb = nn_golden_load(g.st, (snprintf(k, sizeof k, "ema.embed.%lld", (long long)q), k));
        gvm_tensor *avg = nn_golden_load(g.st, (snprintf(k, sizeof k, "ema.embed_avg.%lld", (long long)q), k));
        gvm_tensor *norm = nn_golden_load(g.st, (snprintf(k, sizeof k, "ema.norm.%lld", (long long)q), k));
        gvm_tensor *res = nn_golden_load(g.st, (snprintf(k, sizeof k, "ema.residual.%lld", (long long)q), k));
        const float *ge = gvm_tensor_f32(g.m.codebooks[q].embed), *ga = gvm_tensor_f32(g.m.codebooks[q].embed_avg);
        const float *we = gvm_tensor_f32(emb), *wa = gvm_tensor_f32(avg), *wn = gvm_tensor_f32(norm);
        const float *rv = gvm_tensor_f32(res);
        const int64_t R = res->shape[0];
        double live_err = 0, dead_err = 0;
        int bad_restart = 0, bad_flag = 0, repeats = 0;
        int64_t *picked = calloc((size_t)N, sizeof *picked);
        int64_t n_picked = 0;
        for (int64_t c = 0; c < N; c++) {
            const bool is_dead = gvm_tensor_get_index(dead, c) != 0;
            bad_flag += replaced[q * N + c] != is_dead;
            n_dead += is_dead;
            if (!is_dead) {
                for (int64_t d = 0; d < D; d++) {
                    live_err = fmax(live_err, fabs(ge[c * D + d] - we[c * D + d]) / (1 + fabs(we[c * D + d])));
                    live_err = fmax(live_err, fabs(ga[c * D + d] - wa[c * D + d]) / (1 + fabs(wa[c * D + d])));
                }
                continue;
            }
            int64_t src = -1;
            for (int64_t i = 0; i < R && src < 0; i++) {
                bool eq = true;
                for (int64_t d = 0; eq && d < D; d++) eq = fabsf(ge[c * D + d] - rv[i * D + d]) <= 1e-5f;
                if (eq) src = i;
            }
            bad_restart += src < 0;
            for (int64_t j = 0; j < n_picked; j++) repeats += picked[j] == src;
            picked[n_picked++] = src;
            for (int64_t d = 0; d < D; d++)
                dead_err = fmax(dead_err, fabs(ga[c * D + d] - ge[c * D + d] * wn[c]) / (1 + fabs(ga[c * D + d])));
        }
        TEST_CHECK(live_err <= TOL && dead_err <= TOL, "nn_encodec ema update (live codes; dead embed_avg)",
                   "%s stage %lld: live err %g, dead err %g", key, (long long)q, live_err, dead_err);
        TEST_CHECK(bad_restart == 0 && bad_flag == 0, "nn_encodec ema restarts dead codes from batch vectors",
                   "%s stage %lld: %d restarts not a batch vector, %d flags wrong", key, (long long)q, bad_restart,
                   bad_flag);
        // with at least N batch vectors the restarts are distinct (sample_vectors' randperm)
        if (R >= N)
            TEST_CHECK(repeats == 0, "nn_encodec ema distinct restarts", "%s stage %lld: %d repeats", key,
                       (long long)q, repeats);
        free(picked);
        gvm_tensor_free(dead);
        gvm_tensor_free(emb);
        gvm_tensor_free(avg);
        gvm_tensor_free(norm);
        gvm_tensor_free(res);
    }
    TEST_CHECK(n_rep == n_dead && n_dead > 0 && n_dead < nq * N, "nn_encodec ema restart count",
               "%s: %lld restarts, %lld dead codes", key, (long long)n_rep, (long long)n_dead);
    free(replaced);
    gvm_tensor_free(lat);
    gvm_tensor_free(codes);
    golden_close(&g);
}

// ---- without goldens ------------------------------------------------------------------------------------------------

static void config_32khz_and_errors(void) {
    gvm_nn_encodec_cfg c = gvm_nn_encodec_cfg_32khz();
    TEST_CHECK(gvm_nn_encodec_cfg_check(&c) == GVM_OK, "nn_encodec 32 kHz config is valid", "%s", gvm_error_message());
    TEST_CHECK(gvm_nn_encodec_hop_length(&c) == 640 && gvm_nn_encodec_frame_rate(&c) == 50.0 &&
                   gvm_nn_encodec_num_frames(&c, 320000) == 500 && gvm_nn_encodec_num_frames(&c, 320001) == 501,
               "nn_encodec 32 kHz hop 640, 50 frames/s", "hop %lld", (long long)gvm_nn_encodec_hop_length(&c));
    struct {
        const char *label, *needle;
        void (*edit)(gvm_nn_encodec_cfg *);
    } cases[] = {
        {"ratios empty", "upsampling_ratios", NULL},
        {"codebook_dim mismatch", "codebook_dim = 64 but hidden_size = 128", NULL},
        {"time_group_norm", "time_group_norm", NULL},
        {"trim ratio without causal", "trim_right_ratio", NULL},
        {"codebook size not a power of 2", "power of 2", NULL},
        {"normalize", "normalize", NULL},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        gvm_nn_encodec_cfg b = gvm_nn_encodec_cfg_32khz();
        switch (i) {
        case 0: b.n_ratios = 0; break;
        case 1: b.codebook_dim = 64; break;
        case 2: b.norm_type = GVM_NN_ENCODEC_NORM_TIME_GROUP; break;
        case 3: b.trim_right_ratio = 0.5f; break;
        case 4: b.codebook_size = 1000; break;
        case 5: b.normalize = true; break;
        }
        gvm_param_store ps;
        gvm_param_store_init(&ps);
        gvm_nn_encodec m;
        const gvm_status st = gvm_nn_encodec_init(&m, &ps, &b);
        const char *msg = gvm_error_message();
        TEST_CHECK(st == GVM_ERR_INVALID && strstr(msg, cases[i].needle) && strstr(msg, "encodec config") &&
                       ps.n_params == 0,
                   "nn_encodec config error", "%s: status %s, message '%s', %d params registered", cases[i].label,
                   gvm_status_name(st), msg, ps.n_params);
        gvm_param_store_free(&ps);
        gvm_error_clear();
    }
}

// The 32 kHz model registers exactly facebook/encodec_32khz's state_dict names and shapes, in its order.
static void names_32khz(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_encodec/names_32khz.txt", test_golden_dir());
    FILE *f = fopen(path, "r");
    if (!test_check(f != NULL, "nn_encodec 32 kHz names", "cannot open %s", path)) return;
    gvm_nn_encodec_cfg c = gvm_nn_encodec_cfg_32khz();
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_encodec m;
    GVM_CHECK(gvm_nn_encodec_init(&m, &ps, &c) == GVM_OK, "%s", gvm_error_message());
    char name[512], shape[64];
    int i = 0, bad = 0;
    while (fscanf(f, "%511s %63s", name, shape) == 2) {
        char mine[64] = "";
        if (i < ps.n_params) {
            const gvm_tensor *t = ps.params[i];
            for (int d = 0, n = 0; d < t->ndim; d++)
                n += snprintf(mine + n, sizeof mine - (size_t)n, d ? "x%lld" : "%lld", (long long)t->shape[d]);
        }
        if (i >= ps.n_params || strcmp(ps.params[i]->name, name) != 0 || strcmp(mine, shape) != 0) {
            if (bad++ < 3)
                test_check(false, "nn_encodec 32 kHz names", "entry %d: want %s [%s], got %s [%s]", i, name, shape,
                           i < ps.n_params ? ps.params[i]->name : "(none)", mine);
        }
        i++;
    }
    fclose(f);
    TEST_CHECK(bad == 0 && i == ps.n_params && i == 116, "nn_encodec 32 kHz state_dict names, shapes, order",
               "%d mismatches, %d names in file, %d registered", bad, i, ps.n_params);
    gvm_nn_encodec_free(&m);
    gvm_param_store_free(&ps);
}

static void check_pad(gvm_ctx *ctx, const float *x, int64_t T, int64_t l, int64_t r, gvm_nn_encodec_pad mode,
                      const float *want, const char *label) {
    gvm_tensor *t = gvm_tensor_from_f32(ctx, x, 3, (int64_t[]){1, 1, T});
    gvm_tensor *p = gvm_nn_encodec_pad1d(ctx, t, l, r, mode);
    bool ok = p->shape[2] == l + T + r;
    for (int64_t i = 0; ok && i < l + T + r; i++) ok = gvm_tensor_f32(p)[i] == want[i];
    TEST_CHECK(ok, "nn_encodec pad1d by hand", "%s", label);
}

// Values printed by transformers' EncodecConv1d._pad1d; the extra padding of a strided conv.
static void padding_by_hand(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    const float x2[] = {1, 2}, x5[] = {1, 2, 3, 4, 5};
    check_pad(ctx, x2, 2, 3, 3, GVM_NN_ENCODEC_PAD_REFLECT, (const float[]){0, 0, 2, 1, 2, 0, 0, 0},
              "reflect of a short input (zeros appended first)");
    check_pad(ctx, x5, 5, 2, 4, GVM_NN_ENCODEC_PAD_REFLECT, (const float[]){3, 2, 1, 2, 3, 4, 5, 4, 3, 2, 1},
              "reflect");
    check_pad(ctx, x5, 5, 2, 1, GVM_NN_ENCODEC_PAD_REPLICATE, (const float[]){1, 1, 1, 2, 3, 4, 5, 5}, "replicate");
    check_pad(ctx, x5, 5, 1, 2, GVM_NN_ENCODEC_PAD_CONSTANT, (const float[]){0, 1, 2, 3, 4, 5, 0, 0}, "constant");
    // kernel 8, stride 4: pads to a multiple of the stride
    TEST_CHECK(gvm_nn_encodec_extra_padding(19, 8, 4) == 1 && gvm_nn_encodec_extra_padding(20, 8, 4) == 0 &&
                   gvm_nn_encodec_extra_padding(1, 8, 4) == 3 && gvm_nn_encodec_extra_padding(7, 7, 1) == 0,
               "nn_encodec extra padding", "19 -> %lld", (long long)gvm_nn_encodec_extra_padding(19, 8, 4));
    gvm_ctx_free(ctx);
}

// reset_parameters: g = ||v|| (w = v at the start), bounds, codebooks; the first EMA update restarts every code.
static void init_and_first_update(void) {
    gvm_nn_encodec_cfg c = gvm_nn_encodec_cfg_tiny();
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_encodec m;
    GVM_CHECK(gvm_nn_encodec_init(&m, &ps, &c) == GVM_OK, "%s", gvm_error_message());
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 9);
    gvm_nn_encodec_reset_parameters(&m, &rng);
    const gvm_nn_encodec_conv *cv = &m.encoder.layers[0].conv;  // [4, 1, 7]: bound 1/sqrt(7)
    double worst = 0, vmax = 0;
    for (int64_t o = 0; o < cv->v->shape[0]; o++) {
        double s = 0;
        for (int64_t i = 0; i < 7; i++) {
            const double v = gvm_tensor_f32(cv->v)[o * 7 + i];
            s += v * v;
            vmax = fmax(vmax, fabs(v));
        }
        worst = fmax(worst, fabs(sqrt(s) - gvm_tensor_f32(cv->g)[o]));
    }
    TEST_CHECK(worst < 1e-6 && vmax <= 1 / sqrt(7.0) && vmax > 0.2, "nn_encodec init: g = ||v||, v in bounds",
               "g err %g, max |v| %g", worst, vmax);
    TEST_CHECK(gvm_tensor_f32(m.codebooks[1].inited)[0] == 1 && gvm_tensor_f32(m.codebooks[1].cluster_size)[3] == 0 &&
                   gvm_tensor_f32(m.codebooks[1].embed)[5] == gvm_tensor_f32(m.codebooks[1].embed_avg)[5],
               "nn_encodec init: codebook buffers", "unexpected values");
    gvm_ctx *ctx = gvm_ctx_new(2);
    gvm_tensor *wave = test_randn(3, 3, (int64_t[]){2, 1, 101}, 1.0f, false);
    gvm_nn_encodec_train_out out;
    gvm_nn_encodec_forward_train(ctx, &m, wave, 2, &out);
    TEST_CHECK(out.recon->shape[2] == 101 && out.codes->shape[2] == 13 && isfinite(gvm_tensor_f32(out.commit)[0]),
               "nn_encodec train shapes", "recon %lld, frames %lld", (long long)out.recon->shape[2],
               (long long)out.codes->shape[2]);
    const float before = gvm_tensor_f32(out.commit)[0];
    const int64_t n = gvm_nn_encodec_rvq_ema_update(&m, out.latent, out.codes, NULL, &rng, NULL);
    TEST_CHECK(n == 2 * c.codebook_size, "nn_encodec first EMA update restarts every code", "%lld restarts",
               (long long)n);
    // after the restart the first stage's codewords are batch latents: quantising again is much closer
    gvm_ctx_reset(ctx);
    gvm_nn_encodec_forward_train(ctx, &m, wave, 2, &out);
    TEST_CHECK(gvm_tensor_f32(out.commit)[0] < before, "nn_encodec restarted codebooks fit the batch better",
               "commitment %g before the update, %g after", before, gvm_tensor_f32(out.commit)[0]);
    // With a restart usage, the restarted codes start from it (and embed_avg = embed * N_c still holds), so the
    // next update restarts only the codes that got no vector since; without one, every code is restarted again.
    for (int k = 0; k < 2; k++) {  // all dead again
        memset(gvm_tensor_f32(m.codebooks[k].cluster_size), 0, (size_t)c.codebook_size * sizeof(float));
    }
    const gvm_nn_encodec_ema_opts grace = {.decay = 0.99f, .threshold = 2.0f, .restart_usage = 4.0f};
    const int64_t n1 = gvm_nn_encodec_rvq_ema_update(&m, out.latent, out.codes, &grace, &rng, NULL);
    bool at_grace = true;
    for (int k = 0; k < 2; k++)
        for (int64_t j = 0; j < c.codebook_size; j++) at_grace &= gvm_tensor_f32(m.codebooks[k].cluster_size)[j] == 4.0f;
    const int64_t n2 = gvm_nn_encodec_rvq_ema_update(&m, out.latent, out.codes, &grace, &rng, NULL);
    TEST_CHECK(n1 == 2 * c.codebook_size && at_grace && n2 == 0, "nn_encodec restart usage gives a grace period",
               "%lld then %lld restarts, usage set %d", (long long)n1, (long long)n2, at_grace);
    gvm_tensor_free(wave);
    gvm_ctx_free(ctx);
    gvm_nn_encodec_free(&m);
    gvm_param_store_free(&ps);
}

// Nearest codeword ties go to the lowest index (codebook 0: rows 3 and 7 equal the latent; codebook 1: rows 2
// and 5 are the zero residual); every other row is far away.
static void quantize_ties(void) {
    gvm_nn_encodec_cfg c = gvm_nn_encodec_cfg_tiny();
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_encodec m;
    GVM_CHECK(gvm_nn_encodec_init(&m, &ps, &c) == GVM_OK, "%s", gvm_error_message());
    gvm_param_store_finalize(&ps);
    const int64_t N = c.codebook_size, D = c.hidden_size, F = 3;
    float *e0 = gvm_tensor_f32(m.codebooks[0].embed), *e1 = gvm_tensor_f32(m.codebooks[1].embed);
    float lat[8 * 3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            e0[n * D + d] = (n == 3 || n == 7) ? 0.25f * (float)(d - 3) : 10.0f + (float)n;
            e1[n * D + d] = (n == 2 || n == 5) ? 0.0f : -10.0f - (float)n;
        }
    for (int64_t d = 0; d < D; d++)
        for (int64_t f = 0; f < F; f++) lat[d * F + f] = 0.25f * (float)(d - 3);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *codes = gvm_nn_encodec_quantize(ctx, &m, gvm_tensor_from_f32(ctx, lat, 3, (int64_t[]){1, D, F}), 2);
    bool ok = true;
    for (int64_t f = 0; f < F; f++)
        ok = ok && gvm_tensor_get_index(codes, f) == 3 && gvm_tensor_get_index(codes, F + f) == 2;
    TEST_CHECK(ok, "nn_encodec quantize ties to the lowest index", "codes %lld %lld",
               (long long)gvm_tensor_get_index(codes, 0), (long long)gvm_tensor_get_index(codes, F));
    gvm_ctx_free(ctx);
    gvm_nn_encodec_free(&m);
    gvm_param_store_free(&ps);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    config_32khz_and_errors();
    names_32khz();
    padding_by_hand();
    init_and_first_update();
    quantize_ties();
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) golden_inference(keys[i]);
    golden_train("a");
    golden_train("b");
    golden_ema("a");
    golden_ema("b");
    return test_finish();
}
