// test_nn_gvmgen.c: the whole GVMGen model (nn/gvmgen.h) at a tiny config against a float64 PyTorch twin
// (tests/golden/gen_nn_gvmgen.py: ViT -> Q-Former -> enc_to_dec_proj -> MusicGen LM, parameters loaded by
// name): the condition, the loss and every parameter gradient; freezing (frozen parts get no gradient, the
// others the twin's, a frozen ViT stays off the tape); condition dropout p = 1 equals the null condition;
// the parameter summary.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/delay_pattern.h"
#include "nn/gvmgen.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"

#define TOL 1e-5  // the twin runs in float64: this bounds our f32 error alone

typedef struct golden {
    gvm_safetensors *st;
    test_params p;
    gvm_nn_gvmgen_cfg cfg;
    gvm_tensor *frames, *frame_mask, *codes, *code_len;
} golden;

static gvm_tensor *load(const golden *g, const char *key) { return nn_golden_load(g->st, key); }

static void compare(const golden *g, const char *key, const gvm_tensor *got) {
    nn_golden_compare(g->st, NULL, key, got);
}

static bool golden_open(golden *g) {
    memset(g, 0, sizeof *g);
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_gvmgen/gvmgen.safetensors", test_golden_dir());
    if (gvm_safetensors_open(path, &g->st) != GVM_OK)
        return test_check(false, "nn_gvmgen golden", "cannot read %s (regenerate: cd tests/golden && python3 "
                          "generate.py --only nn_gvmgen)", gvm_error_message());
    const char *params = gvm_safetensors_metadata(g->st, "params");
    g->p = test_params_parse(params ? params : "");
    const test_params *p = &g->p;
    g->cfg.vision = (gvm_nn_vit_cfg){.image_size = test_param_i(p, "image", 0), .patch_size = test_param_i(p, "patch", 0),
                                     .width = test_param_i(p, "vit_width", 0), .layers = test_param_i(p, "vit_layers", 0),
                                     .heads = test_param_i(p, "vit_heads", 0), .mlp_dim = test_param_i(p, "vit_mlp", 0),
                                     .act = GVM_NN_ACT_QUICK_GELU};
    g->cfg.qformer = (gvm_nn_qformer_cfg){.width = test_param_i(p, "qf_width", 0),
                                          .layers = test_param_i(p, "qf_layers", 0),
                                          .heads = test_param_i(p, "qf_heads", 0),
                                          .num_queries = test_param_i(p, "queries", 0),
                                          .intermediate = test_param_i(p, "qf_inter", 0),
                                          .cross_attention_frequency = test_param_i(p, "qf_freq", 0),
                                          .out_dim = test_param_i(p, "qf_out", 0)};
    g->cfg.lm = (gvm_nn_music_lm_cfg){.num_codebooks = test_param_i(p, "K", 0), .card = test_param_i(p, "card", 0),
                                      .d_model = test_param_i(p, "d_model", 0),
                                      .num_heads = test_param_i(p, "lm_heads", 0),
                                      .num_layers = test_param_i(p, "lm_layers", 0),
                                      .ffn_dim = test_param_i(p, "ffn", 0)};
    g->frames = load(g, "in.frames");
    g->frame_mask = load(g, "in.frame_mask");
    g->codes = load(g, "in.codes");
    g->code_len = load(g, "in.code_len");
    return true;
}

static void golden_close(golden *g) {
    gvm_tensor_free(g->frames);
    gvm_tensor_free(g->frame_mask);
    gvm_tensor_free(g->codes);
    gvm_tensor_free(g->code_len);
    gvm_safetensors_close(g->st);
}

// Build the model with the given freeze flags and load the twin's values; the golden must hold exactly the
// store's parameters, so a wrong or missing name fails here.
static bool model_open(const golden *g, bool fv, bool fq, bool fl, gvm_param_store *ps, gvm_nn_gvmgen *m) {
    gvm_nn_gvmgen_cfg cfg = g->cfg;
    cfg.freeze_vision = fv;
    cfg.freeze_qformer = fq;
    cfg.freeze_lm = fl;
    gvm_param_store_init(ps);
    gvm_nn_gvmgen_init(m, ps, &cfg);
    gvm_param_store_finalize(ps);
    return nn_golden_load_params(g->st, ps, "nn_gvmgen names");
}

static void model_close(gvm_param_store *ps, gvm_nn_gvmgen *m) {
    gvm_nn_gvmgen_free(m);
    gvm_param_store_free(ps);
}

static gvm_nn_gvmgen_part part_of(const gvm_nn_gvmgen *m, int i) {
    for (int p = GVM_NN_GVMGEN_PARTS - 1; p >= 0; p--)
        if (i >= m->first[p]) return (gvm_nn_gvmgen_part)p;
    return GVM_NN_GVMGEN_VISION;
}

static bool all_zero(const gvm_tensor *t) {
    if (!t) return true;
    const float *v = gvm_tensor_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        if (v[i] != 0.0f) return false;
    return true;
}

// The loss and gradients with the given parts frozen: frozen parameters get none (exact zeros after
// zero_grad), every other one the twin's gradient (a frozen part does not change the others').
static void golden_case(const golden *g, bool fv, bool fq, bool fl) {
    char label[96];
    snprintf(label, sizeof label, "nn_gvmgen freeze v%d q%d lm%d", fv, fq, fl);
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    if (!model_open(g, fv, fq, fl, &ps, &m)) {
        model_close(&ps, &m);
        return;
    }
    gvm_param_store_zero_grad(&ps);
    gvm_ctx *ctx = gvm_ctx_new(1);
    if (!fv && !fq && !fl) {  // the condition itself, once
        gvm_no_grad_begin(ctx);
        compare(g, "out.cond", gvm_nn_gvmgen_forward_condition(ctx, &m, g->frames, g->frame_mask));
        gvm_no_grad_end(ctx);
        gvm_ctx_reset(ctx);
    }
    gvm_tensor *loss = gvm_nn_gvmgen_forward_loss(ctx, &m, g->frames, g->frame_mask, g->codes,
                                                  gvm_tensor_i64(g->code_len), 0.0f, NULL);
    char key[GVM_NN_NAME_MAX + 32];
    snprintf(key, sizeof key, "%s: loss", label);
    gvm_tensor *want = load(g, "out.loss");
    test_allclose(key, gvm_tensor_f32(loss), gvm_tensor_f32(want), 1, TOL, TOL);
    gvm_tensor_free(want);
    if (fv && fq && fl) {  // nothing trainable: nothing may be recorded
        TEST_CHECK(ctx->tape_len == 0, label, "all frozen, yet %d tape nodes", ctx->tape_len);
    } else {
        gvm_backward(ctx, loss);
    }
    int wrong_frozen = 0;
    for (int i = 0; i < ps.n_params; i++) {
        const gvm_nn_gvmgen_part part = part_of(&m, i);
        const bool frozen = part == GVM_NN_GVMGEN_VISION ? fv : part == GVM_NN_GVMGEN_LM ? fl : fq;
        const gvm_tensor *t = ps.params[i];
        if (frozen) {
            wrong_frozen += t->requires_grad || !all_zero(t->grad);
        } else {
            snprintf(key, sizeof key, "grad.param.%s", t->name);
            compare(g, key, t->grad);
        }
    }
    TEST_CHECK(wrong_frozen == 0, label, "%d frozen parameters require or received a gradient", wrong_frozen);
    gvm_ctx_free(ctx);
    model_close(&ps, &m);
}

// A frozen ViT records nothing: forward_condition's tape equals that of the Q-Former and projection alone
// on the ViT tokens; an unfrozen one records more.
static void frozen_vit_off_tape(const golden *g) {
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    if (!model_open(g, true, false, false, &ps, &m)) {
        model_close(&ps, &m);
        return;
    }
    gvm_ctx *ctx = gvm_ctx_new(1);
    // frames that require grad: the no-grad scope, not merely the frozen weights, keeps the ViT off the tape
    gvm_tensor *frames = gvm_tensor_new(GVM_F32, 5, g->frames->shape);
    memcpy(frames->data, g->frames->data, (size_t)frames->numel * sizeof(float));
    frames->requires_grad = true;
    gvm_nn_gvmgen_forward_condition(ctx, &m, frames, g->frame_mask);
    const int n_frozen = ctx->tape_len;
    gvm_ctx_reset(ctx);
    const int64_t B = g->frames->shape[0], T = g->frames->shape[1], S = g->frames->shape[3];
    gvm_no_grad_begin(ctx);
    gvm_tensor *tokens = gvm_nn_vit_forward(ctx, &m.vision, gvm_reshape(ctx, g->frames, 4, (int64_t[]){B * T, 3, S, S}),
                                            NULL);
    gvm_no_grad_end(ctx);
    gvm_tensor *v = gvm_nn_qformer_forward(ctx, &m.qformer, tokens, NULL, NULL);
    gvm_nn_linear_forward(ctx, &m.cond_proj, gvm_reshape(ctx, v, 3, (int64_t[]){B, T, m.qformer.out_dim}));
    const int n_rest = ctx->tape_len;
    gvm_ctx_reset(ctx);
    gvm_nn_gvmgen_set_frozen(&m, GVM_NN_GVMGEN_VISION, false);
    gvm_nn_gvmgen_forward_condition(ctx, &m, g->frames, g->frame_mask);
    const int n_full = ctx->tape_len;
    TEST_CHECK(n_frozen > 0 && n_frozen == n_rest && n_full > n_frozen, "nn_gvmgen frozen ViT is off the tape",
               "tape nodes: frozen %d, Q-Former + proj alone %d, unfrozen %d", n_frozen, n_rest, n_full);
    gvm_tensor_free(frames);
    gvm_ctx_free(ctx);
    model_close(&ps, &m);
}

// Condition dropout p = 1 in training: the loss equals the LM's on the null condition (zeros, zero mask),
// bit for bit, and the condition path gets zero gradient while the LM's is not zero. p = 1 outside
// training changes nothing.
static void cond_dropout_null(const golden *g) {
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    if (!model_open(g, false, false, false, &ps, &m)) {
        model_close(&ps, &m);
        return;
    }
    gvm_param_store_zero_grad(&ps);
    gvm_ctx *ctx = gvm_ctx_new(7);
    ctx->training = true;  // the tiny config has no dropout elsewhere
    gvm_tensor *loss = gvm_nn_gvmgen_forward_loss(ctx, &m, g->frames, g->frame_mask, g->codes,
                                                  gvm_tensor_i64(g->code_len), 1.0f, NULL);
    const float dropped = gvm_tensor_f32(loss)[0];
    gvm_backward(ctx, loss);
    bool cond_zero = true, lm_nonzero = false;
    for (int i = 0; i < ps.n_params; i++) {
        const gvm_nn_gvmgen_part part = part_of(&m, i);
        if (part == GVM_NN_GVMGEN_LM) lm_nonzero |= !all_zero(ps.params[i]->grad);
        else cond_zero &= all_zero(ps.params[i]->grad);
    }
    gvm_ctx_reset(ctx);
    ctx->training = false;
    gvm_no_grad_begin(ctx);
    const int64_t B = g->frames->shape[0], T = g->frames->shape[1], K = m.lm.num_codebooks;
    gvm_tensor *nc, *nm, *in, *tg, *l[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    gvm_nn_music_lm_null_cond(ctx, B, T, m.cond_dim, &nc, &nm);
    gvm_delay_pattern_lm_batch(ctx, g->codes, gvm_tensor_i64(g->code_len), m.lm.card, GVM_NN_MUSIC_LM_IGNORE_INDEX,
                               &in, &tg);
    gvm_nn_music_lm_forward(ctx, &m.lm, in, nc, nm, NULL, l);
    const float null_loss = gvm_tensor_f32(gvm_nn_music_lm_loss(ctx, l, K, tg, GVM_NN_MUSIC_LM_IGNORE_INDEX))[0];
    const float eval_p1 = gvm_tensor_f32(gvm_nn_gvmgen_forward_loss(ctx, &m, g->frames, g->frame_mask, g->codes,
                                                                    gvm_tensor_i64(g->code_len), 1.0f, NULL))[0];
    gvm_no_grad_end(ctx);
    gvm_tensor *want = load(g, "out.loss");
    const float cond_loss = gvm_tensor_f32(want)[0];
    gvm_tensor_free(want);
    TEST_CHECK(dropped == null_loss && fabsf(dropped - cond_loss) > 1e-4f, "nn_gvmgen cond dropout p=1 = null cond",
               "dropped %.9g, null %.9g, conditioned %.9g", dropped, null_loss, cond_loss);
    TEST_CHECK(cond_zero && lm_nonzero, "nn_gvmgen cond dropout p=1 gradients",
               "condition path zero: %d, LM nonzero: %d", cond_zero, lm_nonzero);
    TEST_CHECK(fabsf(eval_p1 - cond_loss) <= 1e-5f * (1 + fabsf(cond_loss)), "nn_gvmgen cond dropout off in eval",
               "loss %.9g, expected %.9g", eval_p1, cond_loss);
    gvm_ctx_free(ctx);
    model_close(&ps, &m);
}

// Counts per part against the store, by name prefix; the trainable ones follow the flags.
static void summary(const golden *g) {
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    if (!model_open(g, true, false, false, &ps, &m)) {
        model_close(&ps, &m);
        return;
    }
    int64_t want[GVM_NN_GVMGEN_PARTS] = {0};
    for (int i = 0; i < ps.n_params; i++) {
        const char *n = ps.params[i]->name;
        const int p = strncmp(n, "vision_model.", 13) == 0 ? 0 : strncmp(n, "qformer.", 8) == 0 ? 1
                      : strncmp(n, "enc_to_dec_proj.", 16) == 0 ? 2 : 3;
        want[p] += ps.params[i]->numel;
    }
    gvm_nn_gvmgen_summary s = gvm_nn_gvmgen_count(&m);
    bool ok = s.all_total == gvm_param_store_numel(&ps) && s.trainable[0] == 0 &&
              s.all_trainable == s.all_total - want[0];
    for (int p = 0; p < GVM_NN_GVMGEN_PARTS; p++) ok &= s.total[p] == want[p] && want[p] > 0;
    ok &= s.trainable[1] == want[1] && s.trainable[2] == want[2] && s.trainable[3] == want[3];
    // enc_to_dec_proj: [D, out] + [D]
    ok &= want[2] == m.cond_dim * (m.qformer.out_dim + 1);
    gvm_nn_gvmgen_set_frozen(&m, GVM_NN_GVMGEN_LM, true);
    s = gvm_nn_gvmgen_count(&m);
    ok &= s.trainable[3] == 0 && s.all_trainable == want[1] + want[2];
    TEST_CHECK(ok, "nn_gvmgen parameter summary", "counts differ from the store");
    // the printed summary names every part and marks the frozen ones
    FILE *f = tmpfile();
    char text[2048] = {0};
    if (f) {
        gvm_nn_gvmgen_print_summary(&m, f);
        rewind(f);
        text[fread(text, 1, sizeof text - 1, f)] = 0;
        fclose(f);
    }
    TEST_CHECK(strstr(text, "vision_model") && strstr(text, "qformer") && strstr(text, "enc_to_dec_proj") &&
                   strstr(text, "(frozen)") && strstr(text, "total"),
               "nn_gvmgen printed summary", "got: %s", text);
    model_close(&ps, &m);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    golden g;
    if (golden_open(&g)) {
        golden_case(&g, false, false, false);
        golden_case(&g, true, false, false);  // GVMGen's reference training
        golden_case(&g, false, true, false);  // the ViT still learns through a frozen Q-Former
        golden_case(&g, true, true, false);
        golden_case(&g, false, false, true);
        golden_case(&g, true, true, true);
        frozen_vit_off_tape(&g);
        cond_dropout_null(&g);
        summary(&g);
        golden_close(&g);
    }
    return test_finish();
}
