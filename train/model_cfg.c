// model_cfg.c: the mapping from the experiment config (train/config.h: model.*) to the model's own config
// (nn/gvmgen.h), in one place so training, evaluation and generation build the same model from a config.
// The fixed choices of GVMGen that the config does not expose (CLIP's quick-GELU ViT with a 4x MLP, the
// Q-Former's LayerNorm after the projection, the LM's 4x FFN default) are set here.
#include <stdio.h>

#include "train/loop.h"

gvm_status gvm_train_model_cfg(const gvm_config *cfg, gvm_nn_gvmgen_cfg *out) {
    const gvm_config_model *m = &cfg->model;
    // The LM interleaves codebooks with MusicGen's delay pattern 0, 1, ..., K-1 (nn/delay_pattern.h) only.
    for (int k = 0; k < m->lm.num_delays; k++)
        if (m->lm.delays[k] != k)
            return gvm_error_set(GVM_ERR_INVALID,
                                 "config: model.lm.delays[%d] is %d but the music LM implements only the delay "
                                 "pattern [0, 1, ..., K-1]; set model.lm.delays to that",
                                 k, m->lm.delays[k]);
    if (m->vision.image_size % m->vision.patch != 0)
        return gvm_error_set(GVM_ERR_INVALID, "config: model.vision.patch %d does not divide model.vision.image_size %d",
                             m->vision.patch, m->vision.image_size);

    gvm_nn_gvmgen_cfg c = {0};
    c.vision = (gvm_nn_vit_cfg){.image_size = m->vision.image_size, .patch_size = m->vision.patch, .channels = 3,
                                .width = m->vision.width, .layers = m->vision.layers, .heads = m->vision.heads,
                                .mlp_dim = 4 * (int64_t)m->vision.width, .act = GVM_NN_ACT_QUICK_GELU,
                                .ln_eps = 1e-5f};
    c.qformer = (gvm_nn_qformer_cfg){.width = m->qformer.width, .layers = m->qformer.layers,
                                     .heads = m->qformer.heads, .num_queries = m->qformer.queries,
                                     .encoder_width = m->vision.width, .intermediate = m->qformer.ffn,
                                     .cross_attention_frequency = m->qformer.cross_every, .out_dim = m->cond_dim,
                                     .dropout = (float)m->qformer.dropout, .ln_eps = (float)m->qformer.ln_eps,
                                     .ln_post_eps = 1e-5f};
    c.lm = (gvm_nn_music_lm_cfg){.num_codebooks = m->lm.codebooks, .card = m->lm.card ? m->lm.card : cfg->codec.card, .d_model = m->lm.width,
                                 .num_heads = m->lm.heads, .num_layers = m->lm.layers, .ffn_dim = m->lm.ffn,
                                 .dropout = (float)m->lm.dropout, .ln_eps = 1e-5f};
    c.freeze_vision = m->vision.freeze;
    *out = c;
    return GVM_OK;
}
