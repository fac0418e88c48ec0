// gvmgen.c: the whole GVMGen model (see gvmgen.h).
#include "nn/gvmgen.h"

#include <string.h>

#include "nn/delay_pattern.h"

gvm_nn_gvmgen_cfg gvm_nn_gvmgen_cfg_gvmgen(void) {
    gvm_nn_gvmgen_cfg c = {0};
    c.vision = gvm_nn_vit_cfg_clip_l14_336();
    c.qformer = gvm_nn_qformer_cfg_gvmgen();
    c.lm = (gvm_nn_music_lm_cfg){.num_codebooks = 4, .card = 2048, .d_model = 1024, .num_heads = 16,
                                 .num_layers = 24};
    c.freeze_vision = true;
    return c;
}

static const char *const k_part_names[GVM_NN_GVMGEN_PARTS] = {"vision_model", "qformer", "enc_to_dec_proj",
                                                               "lm"};

const char *gvm_nn_gvmgen_part_name(gvm_nn_gvmgen_part part) {
    return part >= 0 && part < GVM_NN_GVMGEN_PARTS ? k_part_names[part] : "?";
}

void gvm_nn_gvmgen_init(gvm_nn_gvmgen *m, gvm_param_store *ps, const gvm_nn_gvmgen_cfg *cfg) {
    memset(m, 0, sizeof *m);
    m->ps = ps;
    gvm_nn_qformer_cfg qc = cfg->qformer;
    if (qc.encoder_width <= 0) qc.encoder_width = cfg->vision.width;
    GVM_CHECK(qc.encoder_width == cfg->vision.width, "gvmgen: Q-Former encoder width %lld != ViT width %lld",
              (long long)qc.encoder_width, (long long)cfg->vision.width);
    gvm_nn_music_lm_cfg lc = cfg->lm;
    lc.cross_dim = lc.d_model;  // enc_to_dec_proj already maps the condition to the LM width
    m->cond_dim = lc.d_model;

    // Each part registers a contiguous run of the store's parameters: freezing and counting walk that run.
    m->first[GVM_NN_GVMGEN_VISION] = ps->n_params;
    gvm_nn_vit_init(&m->vision, ps, "vision_model", &cfg->vision);
    m->first[GVM_NN_GVMGEN_QFORMER] = ps->n_params;
    gvm_nn_qformer_init(&m->qformer, ps, "qformer", &qc);
    m->first[GVM_NN_GVMGEN_COND_PROJ] = ps->n_params;
    const gvm_nn_linear_cfg pc = {.in = m->qformer.out_dim, .out = lc.d_model, .bias = true,
                                  .init_std = lc.init_std};
    gvm_nn_linear_init(&m->cond_proj, ps, "enc_to_dec_proj", &pc);
    m->first[GVM_NN_GVMGEN_LM] = ps->n_params;
    gvm_nn_music_lm_init(&m->lm, ps, &lc);
    for (int p = 0; p < GVM_NN_GVMGEN_PARTS; p++)
        m->count[p] = (p + 1 < GVM_NN_GVMGEN_PARTS ? m->first[p + 1] : ps->n_params) - m->first[p];

    gvm_nn_gvmgen_set_frozen(m, GVM_NN_GVMGEN_VISION, cfg->freeze_vision);
    gvm_nn_gvmgen_set_frozen(m, GVM_NN_GVMGEN_QFORMER, cfg->freeze_qformer);
    gvm_nn_gvmgen_set_frozen(m, GVM_NN_GVMGEN_COND_PROJ, cfg->freeze_qformer);
    gvm_nn_gvmgen_set_frozen(m, GVM_NN_GVMGEN_LM, cfg->freeze_lm);
}

void gvm_nn_gvmgen_set_frozen(gvm_nn_gvmgen *m, gvm_nn_gvmgen_part part, bool frozen) {
    GVM_CHECK(part >= 0 && part < GVM_NN_GVMGEN_PARTS, "gvmgen: bad part %d", (int)part);
    for (int i = 0; i < m->count[part]; i++) m->ps->params[m->first[part] + i]->requires_grad = !frozen;
    m->frozen[part] = frozen;
}

void gvm_nn_gvmgen_reset_parameters(gvm_nn_gvmgen *m, gvm_rng *rng) {
    gvm_nn_vit_reset_parameters(&m->vision, rng);
    gvm_nn_qformer_reset_parameters(&m->qformer, rng);
    gvm_nn_linear_reset_parameters(&m->cond_proj, rng);
    gvm_nn_music_lm_reset_parameters(&m->lm, rng);
}

void gvm_nn_gvmgen_free(gvm_nn_gvmgen *m) {
    gvm_nn_vit_free(&m->vision);
    gvm_nn_qformer_free(&m->qformer);
    gvm_nn_music_lm_free(&m->lm);
}

gvm_tensor *gvm_nn_gvmgen_vision_tokens(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames) {
    const gvm_nn_vit *v = &m->vision;
    GVM_CHECK(frames->ndim == 5 && frames->shape[2] == v->channels && frames->shape[3] == v->image_size &&
                  frames->shape[4] == v->image_size,
              "gvmgen: frames must be [B, T_v, %lld, %lld, %lld]", (long long)v->channels,
              (long long)v->image_size, (long long)v->image_size);
    const int64_t B = frames->shape[0], T = frames->shape[1];
    // A frozen ViT never needs its activations kept: the no-grad scope keeps its (largest) part of the
    // forward off the tape and out of the saved state (and no gradient reaches the frames).
    const bool frozen = m->frozen[GVM_NN_GVMGEN_VISION];
    if (frozen) gvm_no_grad_begin(ctx);
    gvm_tensor *images = gvm_reshape(ctx, frames, 4,
                                     (int64_t[]){B * T, v->channels, v->image_size, v->image_size});
    gvm_tensor *tokens = gvm_nn_vit_forward(ctx, v, images, NULL);           // [B*T_v, N+1, W_vit]
    tokens = gvm_reshape(ctx, tokens, 4, (int64_t[]){B, T, v->n_tokens, v->width});  // [B, T_v, N+1, W_vit]
    if (frozen) gvm_no_grad_end(ctx);
    return tokens;
}

gvm_tensor *gvm_nn_gvmgen_condition_from_tokens(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *tokens) {
    const gvm_nn_vit *v = &m->vision;
    GVM_CHECK(tokens->ndim == 4 && tokens->shape[2] == v->n_tokens && tokens->shape[3] == v->width,
              "gvmgen: vision tokens must be [B, T_v, %lld, %lld]", (long long)v->n_tokens, (long long)v->width);
    const int64_t B = tokens->shape[0], T = tokens->shape[1];
    gvm_tensor *flat = gvm_reshape(ctx, tokens, 3, (int64_t[]){B * T, v->n_tokens, v->width});
    gvm_tensor *vec = gvm_nn_qformer_forward(ctx, &m->qformer, flat, NULL, NULL);  // [B*T_v, out]
    vec = gvm_reshape(ctx, vec, 3, (int64_t[]){B, T, m->qformer.out_dim});        // [B, T_v, out]
    return gvm_nn_linear_forward(ctx, &m->cond_proj, vec);                        // [B, T_v, D]
}

gvm_tensor *gvm_nn_gvmgen_forward_condition(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames,
                                            gvm_tensor *frame_mask) {
    GVM_CHECK(frames->ndim == 5, "gvmgen: frames must be [B, T_v, C, S, S]");
    const int64_t B = frames->shape[0], T = frames->shape[1];
    GVM_CHECK(!frame_mask || (frame_mask->ndim == 2 && frame_mask->shape[0] == B && frame_mask->shape[1] == T &&
                              (frame_mask->dtype == GVM_U8 || frame_mask->dtype == GVM_BOOL)),
              "gvmgen: frame_mask must be bool/u8 [%lld, %lld]", (long long)B, (long long)T);
    return gvm_nn_gvmgen_condition_from_tokens(ctx, m, gvm_nn_gvmgen_vision_tokens(ctx, m, frames));
}

gvm_tensor *gvm_nn_gvmgen_loss_from_condition(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *cond,
                                              gvm_tensor *frame_mask, gvm_tensor *codes, const int64_t *code_len,
                                              float cond_dropout, gvm_tensor **logits) {
    const int64_t K = m->lm.num_codebooks;
    GVM_CHECK(codes->ndim == 3 && codes->shape[1] == K && codes->shape[0] == cond->shape[0],
              "gvmgen: codes must be [%lld, %lld, T]", (long long)cond->shape[0], (long long)K);
    gvm_tensor *c, *cm;
    gvm_nn_music_lm_cond_dropout(ctx, cond, frame_mask, cond_dropout, &c, &cm, NULL);
    gvm_tensor *inputs, *targets;  // [B, K, S], S = T + K - 1
    gvm_delay_pattern_lm_batch(ctx, codes, code_len, m->lm.card, GVM_NN_MUSIC_LM_IGNORE_INDEX, &inputs, &targets);
    gvm_tensor *lg[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    gvm_tensor **out = logits ? logits : lg;
    gvm_nn_music_lm_forward(ctx, &m->lm, inputs, c, cm, NULL, out);  // K x [B, S, card]
    return gvm_nn_music_lm_loss(ctx, out, K, targets, GVM_NN_MUSIC_LM_IGNORE_INDEX);
}

gvm_tensor *gvm_nn_gvmgen_forward_loss(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames,
                                       gvm_tensor *frame_mask, gvm_tensor *codes, const int64_t *code_len,
                                       float cond_dropout, gvm_tensor **logits) {
    GVM_CHECK(codes->ndim == 3 && frames->ndim == 5 && codes->shape[0] == frames->shape[0],
              "gvmgen: codes must be [%lld, %lld, T]", (long long)frames->shape[0],
              (long long)m->lm.num_codebooks);
    gvm_tensor *cond = gvm_nn_gvmgen_forward_condition(ctx, m, frames, frame_mask);  // [B, T_v, D]
    return gvm_nn_gvmgen_loss_from_condition(ctx, m, cond, frame_mask, codes, code_len, cond_dropout, logits);
}

gvm_nn_gvmgen_summary gvm_nn_gvmgen_count(const gvm_nn_gvmgen *m) {
    gvm_nn_gvmgen_summary s;
    memset(&s, 0, sizeof s);
    for (int p = 0; p < GVM_NN_GVMGEN_PARTS; p++) {
        for (int i = 0; i < m->count[p]; i++) {
            const gvm_tensor *t = m->ps->params[m->first[p] + i];
            s.total[p] += t->numel;
            if (t->requires_grad) s.trainable[p] += t->numel;
        }
        s.all_total += s.total[p];
        s.all_trainable += s.trainable[p];
    }
    return s;
}

void gvm_nn_gvmgen_print_summary(const gvm_nn_gvmgen *m, FILE *f) {
    const gvm_nn_gvmgen_summary s = gvm_nn_gvmgen_count(m);
    for (int p = 0; p < GVM_NN_GVMGEN_PARTS; p++)
        fprintf(f, "%-16s %12lld parameters, %12lld trainable%s\n", k_part_names[p], (long long)s.total[p],
                (long long)s.trainable[p], s.trainable[p] == 0 ? " (frozen)" : "");
    fprintf(f, "%-16s %12lld parameters, %12lld trainable, %lld frozen\n", "total", (long long)s.all_total,
            (long long)s.all_trainable, (long long)(s.all_total - s.all_trainable));
}
