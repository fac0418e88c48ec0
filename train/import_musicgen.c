// import_musicgen.c: gvm import --format hf-musicgen (train/import_common.h).
//
//   MusicgenForConditionalGeneration (facebook/musicgen-small, -medium): config.json has "text_encoder"
//     (T5, not imported), "audio_encoder" (EncodecConfig) and "decoder" (MusicgenDecoderConfig); tensors
//     text_encoder.*, audio_encoder.*, decoder.model.decoder.*, decoder.lm_heads.*, enc_to_dec_proj.*
//   MusicgenForCausalLM: config.json is a MusicgenDecoderConfig; tensors model.decoder.*, lm_heads.*
// Output: the LM under nn/music_lm.h's names (the composite's "decoder." prefix dropped), enc_to_dec_proj.*
// unchanged (nn/gvmgen.h uses the same name and layout, [D, E] + [D]), and from a composite repository the
// EnCodec as a codec file. MusicGen's sinusoidal position table is a non-persistent buffer (computed by
// nn/music_lm), so no position tensor is imported.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "nn/linear.h"
#include "train/import_common.h"

// MusicgenDecoderConfig (transformers 5.24 defaults for missing keys) -> our LM config. The condition
// reaches the LM at its own width (cross_dim = d_model), after enc_to_dec_proj.
static gvm_status lm_cfg_from_hf(const void *obj, const char *where, gvm_nn_music_lm_cfg *c) {
    memset(c, 0, sizeof *c);
    gvm_status s;
    int64_t channels, cross;
    bool scale_embedding;
    const char *act;
    double eps;
    if ((s = gvm_import_cfg_int(obj, where, "num_codebooks", 4, &c->num_codebooks)) ||
        (s = gvm_import_cfg_int(obj, where, "vocab_size", 2048, &c->card)) ||
        (s = gvm_import_cfg_int(obj, where, "hidden_size", 1024, &c->d_model)) ||
        (s = gvm_import_cfg_int(obj, where, "num_attention_heads", 16, &c->num_heads)) ||
        (s = gvm_import_cfg_int(obj, where, "num_hidden_layers", 24, &c->num_layers)) ||
        (s = gvm_import_cfg_int(obj, where, "ffn_dim", 4096, &c->ffn_dim)) ||
        (s = gvm_import_cfg_int(obj, where, "audio_channels", 1, &channels)) ||
        (s = gvm_import_cfg_int(obj, where, "cross_attention_hidden_size", 0, &cross)) ||
        (s = gvm_import_cfg_bool(obj, where, "scale_embedding", false, &scale_embedding)) ||
        (s = gvm_import_cfg_str(obj, where, "activation_function", "gelu", &act)) ||
        (s = gvm_import_cfg_float(obj, where, "layer_norm_eps", 1e-5, &eps)))
        return s;
    c->ln_eps = (float)eps;
    c->cross_dim = c->d_model;
    if (channels != 1)
        return gvm_error_set(GVM_ERR_INVALID, "%s: audio_channels %lld (a stereo MusicGen, codebooks interleaved per "
                             "channel) is not supported: import a mono model", where, (long long)channels);
    if (scale_embedding)
        return gvm_error_set(GVM_ERR_INVALID, "%s: scale_embedding true is not supported (nn/music_lm does not scale "
                             "its embeddings; every released MusicGen has false)", where);
    if (strcmp(act, "gelu") != 0)
        return gvm_error_set(GVM_ERR_INVALID, "%s: activation_function '%s' is not supported (nn/music_lm uses gelu)",
                             where, act);
    if (cross != 0 && cross != c->d_model)
        return gvm_error_set(GVM_ERR_INVALID, "%s: cross_attention_hidden_size %lld differs from hidden_size %lld: not "
                             "supported", where, (long long)cross, (long long)c->d_model);
    if (c->num_codebooks < 1 || c->num_codebooks > GVM_NN_MUSIC_LM_MAX_CODEBOOKS || c->card < 1 || c->d_model < 1 ||
        c->num_heads < 1 || c->d_model % c->num_heads != 0 || c->num_layers < 1 || c->ffn_dim < 1)
        return gvm_error_set(GVM_ERR_INVALID, "%s: num_codebooks %lld (1..%d), vocab_size %lld, hidden_size %lld, "
                             "num_attention_heads %lld, num_hidden_layers %lld, ffn_dim %lld do not make a MusicGen "
                             "decoder", where, (long long)c->num_codebooks, GVM_NN_MUSIC_LM_MAX_CODEBOOKS,
                             (long long)c->card, (long long)c->d_model, (long long)c->num_heads,
                             (long long)c->num_layers, (long long)c->ffn_dim);
    return GVM_OK;
}

char *gvm_import_json_lm_cfg(const gvm_nn_music_lm_cfg *c, int64_t encoder_hidden) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "num_codebooks", (double)c->num_codebooks);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->card);
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->d_model);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->num_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->num_heads);
    cJSON_AddNumberToObject(o, "ffn_dim", (double)(c->ffn_dim ? c->ffn_dim : 4 * c->d_model));
    cJSON_AddStringToObject(o, "activation_function", "gelu");
    cJSON_AddNumberToObject(o, "layer_norm_eps", gvm_import_float_json(c->ln_eps > 0 ? c->ln_eps : 1e-5f));
    cJSON_AddNumberToObject(o, "encoder_hidden_size", (double)encoder_hidden);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    GVM_CHECK(s, "out of memory");
    return s;
}

gvm_status gvm_import_read_lm_cfg(const char *path, gvm_nn_music_lm_cfg *out, int64_t *encoder_hidden) {
    cJSON *cfg = NULL;
    gvm_status s = gvm_import_read_config(path, GVM_IMPORT_KIND_MUSICGEN, &cfg);
    int64_t enc = 0;
    if (s == GVM_OK) s = lm_cfg_from_hf(cfg, path, out);
    if (s == GVM_OK) s = gvm_import_cfg_int(cfg, path, "encoder_hidden_size", 0, &enc);
    if (encoder_hidden) *encoder_hidden = enc;
    cJSON_Delete(cfg);
    return s;
}

gvm_status gvm_import_musicgen(const char *src_dir, const gvm_import_opts *opts) {
    gvm_import_repo *r = NULL;
    gvm_status s = gvm_import_repo_open(src_dir, &r);
    if (s != GVM_OK) return s;
    const cJSON *root = gvm_import_repo_config(r);
    const char *dir = gvm_import_repo_dir(r);
    const char *model_type = "";
    gvm_import_cfg_str(root, dir, "model_type", "", &model_type);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(root, "audio_encoder");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_encoder");
    const bool composite = cJSON_IsObject(dec);
    char where[4200];
    snprintf(where, sizeof where, "%s/config.json%s", dir, composite ? " decoder" : "");
    gvm_nn_music_lm_cfg cfg;
    int64_t enc_hidden = 0;
    gvm_param_store ps, ps_proj;
    gvm_param_store_init(&ps);
    gvm_param_store_init(&ps_proj);
    gvm_nn_music_lm lm = {0};
    gvm_nn_linear proj;
    gvm_import_plan *p = NULL;
    if (!composite && strcmp(model_type, "musicgen_decoder") != 0) {
        s = gvm_error_set(GVM_ERR_FORMAT, "%s/config.json: model_type '%s' is neither musicgen (with decoder, "
                          "audio_encoder and text_encoder configs) nor musicgen_decoder", dir, model_type);
        goto out;
    }
    if (composite && (!cJSON_IsObject(audio) || !cJSON_IsObject(text))) {
        s = gvm_error_set(GVM_ERR_FORMAT, "%s/config.json: a MusicGen composite config needs \"audio_encoder\" and "
                          "\"text_encoder\" objects beside \"decoder\"", dir);
        goto out;
    }
    if (!composite && opts->codec_out) {
        s = gvm_error_set(GVM_ERR_INVALID, "%s: a MusicgenForCausalLM repository holds no EnCodec, so --codec-out "
                          "has nothing to write (import facebook/encodec_32khz with --format hf-encodec)", dir);
        goto out;
    }
    if ((s = lm_cfg_from_hf(composite ? (const void *)dec : (const void *)root, where, &cfg)) != GVM_OK) goto out;
    if (composite) {
        int64_t text_hidden = 0, cross = 0;
        char tw[4200];
        snprintf(tw, sizeof tw, "%s/config.json text_encoder", dir);
        if ((s = gvm_import_cfg_int(text, tw, "d_model", 0, &text_hidden)) != GVM_OK) goto out;
        if (!text_hidden && (s = gvm_import_cfg_int(text, tw, "hidden_size", 0, &text_hidden)) != GVM_OK) goto out;
        if ((s = gvm_import_cfg_int(dec, where, "cross_attention_hidden_size", 0, &cross)) != GVM_OK) goto out;
        if (text_hidden <= 0) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: no d_model (or hidden_size): the projection's input width is "
                              "unknown", tw);
            goto out;
        }
        // MusicgenForConditionalGeneration makes enc_to_dec_proj only when the widths differ.
        if (text_hidden != cfg.d_model && cross == 0) enc_hidden = text_hidden;
        gvm_nn_encodec_cfg ecfg;
        char aw[4200];
        snprintf(aw, sizeof aw, "%s/config.json audio_encoder", dir);
        if ((s = gvm_import_encodec_cfg(audio, aw, &ecfg)) != GVM_OK) goto out;
        if (ecfg.num_quantizers < cfg.num_codebooks || ecfg.codebook_size != cfg.card) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s/config.json: the decoder predicts %lld codebooks of %lld but its "
                              "EnCodec has %lld of %lld", dir, (long long)cfg.num_codebooks, (long long)cfg.card,
                              (long long)ecfg.num_quantizers, (long long)ecfg.codebook_size);
            goto out;
        }
    }
    gvm_nn_music_lm_init(&lm, &ps, &cfg);  // names and shapes only: the store is never finalised
    if (enc_hidden)
        gvm_nn_linear_init(&proj, &ps_proj, "enc_to_dec_proj",
                           &(gvm_nn_linear_cfg){.in = enc_hidden, .out = cfg.d_model, .bias = true});
    p = gvm_import_plan_new(r);
    gvm_import_plan_expect_store(p, &ps, NULL, composite ? "decoder." : "");
    gvm_import_plan_expect_store(p, &ps_proj, NULL, "");
    static const char *const ignore_composite[] = {"text_encoder.", "audio_encoder.",
                                                   "decoder.model.decoder.embed_positions.", NULL};
    static const char *const ignore_causal[] = {"model.decoder.embed_positions.", NULL};
    gvm_import_plan_ignore(p, composite ? ignore_composite : ignore_causal);
    char *json = gvm_import_json_lm_cfg(&cfg, enc_hidden);
    gvm_import_plan_metadata(p, "format", GVM_WEIGHTS_FORMAT);
    gvm_import_plan_metadata(p, "kind", GVM_IMPORT_KIND_MUSICGEN);
    gvm_import_plan_metadata(p, "config", json);
    gvm_import_plan_metadata(p, "source", composite ? "MusicgenForConditionalGeneration (decoder, enc_to_dec_proj)"
                                                    : "MusicgenForCausalLM");
    free(json);
    if ((s = gvm_import_plan_write(p, opts->out)) != GVM_OK) goto out;
    if (opts->log)
        fprintf(opts->log, "gvm import: wrote %s: MusicGen LM, %lld layers of width %lld, %lld codebooks of %lld, "
                "%s, %.1f MB (f32)\n", opts->out, (long long)cfg.num_layers, (long long)cfg.d_model,
                (long long)cfg.num_codebooks, (long long)cfg.card, enc_hidden ? "with enc_to_dec_proj" : "no projection",
                (double)gvm_import_plan_bytes(p) / 1e6);
    if (composite && opts->codec_out) {
        static const char *const ignore_codec[] = {"text_encoder.", "decoder.", "enc_to_dec_proj.", NULL};
        s = gvm_import_write_codec(r, audio, "audio_encoder.", ignore_codec, opts->codec_out, opts->codec_name,
                                   opts->log);
    } else if (composite && opts->log) {
        fprintf(opts->log, "gvm import: note: the repository's EnCodec was not written (give --codec-out FILE)\n");
    }
out:
    gvm_import_plan_free(p);
    gvm_nn_music_lm_free(&lm);
    gvm_param_store_free(&ps);
    gvm_param_store_free(&ps_proj);
    gvm_import_repo_close(r);
    return s;
}
