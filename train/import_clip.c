// import_clip.c: gvm import --format hf-clip-vision (train/import_common.h): a CLIPVisionModel or CLIPModel
// repository -> vision_model.* under nn/vit.h's names.
//
// CLIP's vision tower and nn/vit register the same names with the same layouts (the patch conv weight
// [W, C, p, p], class_embedding [W], position_embedding [N+1, W], Linear weights [out, in]), so the import
// is a rename-free, layout-free copy of vision_model.*; a full CLIPModel's text tower, projections and
// logit_scale are left out.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "train/import_common.h"

static const char *const k_acts[] = {"gelu", "gelu_pytorch_tanh", "quick_gelu", "relu"};  // gvm_nn_activation order

// CLIPVisionConfig (the object itself: config.json's root for a CLIPVisionModel, its "vision_config" for a
// CLIPModel) -> our config; missing keys take CLIPVisionConfig's defaults, as transformers does.
static gvm_status vit_cfg_from_hf(const void *obj, const char *where, gvm_nn_vit_cfg *c) {
    memset(c, 0, sizeof *c);
    gvm_status s;
    double eps;
    const char *act;
    if ((s = gvm_import_cfg_int(obj, where, "image_size", 224, &c->image_size)) ||
        (s = gvm_import_cfg_int(obj, where, "patch_size", 32, &c->patch_size)) ||
        (s = gvm_import_cfg_int(obj, where, "num_channels", 3, &c->channels)) ||
        (s = gvm_import_cfg_int(obj, where, "hidden_size", 768, &c->width)) ||
        (s = gvm_import_cfg_int(obj, where, "num_hidden_layers", 12, &c->layers)) ||
        (s = gvm_import_cfg_int(obj, where, "num_attention_heads", 12, &c->heads)) ||
        (s = gvm_import_cfg_int(obj, where, "intermediate_size", 3072, &c->mlp_dim)) ||
        (s = gvm_import_cfg_float(obj, where, "layer_norm_eps", 1e-5, &eps)) ||
        (s = gvm_import_cfg_str(obj, where, "hidden_act", "quick_gelu", &act)))
        return s;
    c->ln_eps = (float)eps;
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(act, k_acts[i]) == 0) found = i;
    if (strcmp(act, "gelu_new") == 0) found = GVM_NN_ACT_GELU_TANH;
    if (found < 0)
        return gvm_error_set(GVM_ERR_INVALID, "%s: hidden_act '%s' is not supported (quick_gelu, gelu, "
                             "gelu_pytorch_tanh, gelu_new, relu)", where, act);
    c->act = (gvm_nn_activation)found;
    if (c->patch_size <= 0 || c->image_size < c->patch_size || c->width <= 0 || c->layers <= 0 || c->heads <= 0 ||
        c->width % c->heads != 0 || c->mlp_dim <= 0 || c->channels <= 0)
        return gvm_error_set(GVM_ERR_INVALID, "%s: image_size %lld, patch_size %lld, hidden_size %lld, "
                             "num_attention_heads %lld, intermediate_size %lld do not make a ViT", where,
                             (long long)c->image_size, (long long)c->patch_size, (long long)c->width,
                             (long long)c->heads, (long long)c->mlp_dim);
    return GVM_OK;
}

char *gvm_import_json_vit_cfg(const gvm_nn_vit_cfg *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "image_size", (double)c->image_size);
    cJSON_AddNumberToObject(o, "patch_size", (double)c->patch_size);
    cJSON_AddNumberToObject(o, "num_channels", (double)(c->channels ? c->channels : 3));
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->width);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->heads);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)(c->mlp_dim ? c->mlp_dim : 4 * c->width));
    cJSON_AddStringToObject(o, "hidden_act", k_acts[c->act]);
    cJSON_AddNumberToObject(o, "layer_norm_eps", gvm_import_float_json(c->ln_eps > 0 ? c->ln_eps : 1e-5f));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    GVM_CHECK(s, "out of memory");
    return s;
}

gvm_status gvm_import_read_config(const char *path, const char *kind, cJSON **out) {
    *out = NULL;
    gvm_safetensors *st = NULL;
    gvm_status s = gvm_safetensors_open(path, &st);
    if (s != GVM_OK) return s;
    const char *format = gvm_safetensors_metadata(st, "format"), *k = gvm_safetensors_metadata(st, "kind");
    const char *json = gvm_safetensors_metadata(st, "config");
    if (!format || strcmp(format, GVM_WEIGHTS_FORMAT) != 0 || !k || strcmp(k, kind) != 0 || !json)
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: not a gvm import of kind '%s' (its metadata: format '%s', kind '%s'): "
                          "write one with gvm import", path, kind, format ? format : "none", k ? k : "none");
    else if (!cJSON_IsObject(*out = cJSON_Parse(json)))
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: its \"config\" metadata is not a JSON object", path);
    gvm_safetensors_close(st);
    if (s != GVM_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return s;
}

gvm_status gvm_import_read_vit_cfg(const char *path, gvm_nn_vit_cfg *out) {
    cJSON *cfg = NULL;
    gvm_status s = gvm_import_read_config(path, GVM_IMPORT_KIND_CLIP, &cfg);
    if (s == GVM_OK) s = vit_cfg_from_hf(cfg, path, out);
    cJSON_Delete(cfg);
    return s;
}

gvm_status gvm_import_clip_vision(const char *src_dir, const gvm_import_opts *opts) {
    gvm_import_repo *r = NULL;
    gvm_status s = gvm_import_repo_open(src_dir, &r);
    if (s != GVM_OK) return s;
    const cJSON *root = gvm_import_repo_config(r);
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const char *model_type = NULL;
    gvm_import_cfg_str(root, src_dir, "model_type", "", &model_type);
    char where[4200];
    snprintf(where, sizeof where, "%s/config.json%s", gvm_import_repo_dir(r), cJSON_IsObject(vc) ? " vision_config" : "");
    if (!cJSON_IsObject(vc)) {
        vc = root;
        if (strcmp(model_type, "clip_vision_model") != 0 && strcmp(model_type, "clip") != 0) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: model_type '%s' is not a CLIP model (want clip or "
                              "clip_vision_model)", where, model_type);
            goto out;
        }
    }
    gvm_nn_vit_cfg cfg;
    if ((s = vit_cfg_from_hf(vc, where, &cfg)) != GVM_OK) goto out;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_vit vit;
    gvm_nn_vit_init(&vit, &ps, "vision_model", &cfg);  // registers names and shapes; never finalised
    gvm_import_plan *p = gvm_import_plan_new(r);
    // CLIPModel files and CLIPVisionModel files of transformers < 5 name the tower vision_model.*; a
    // CLIPVisionModel saved by transformers 5 drops that prefix.
    const bool bare = !gvm_import_repo_has(r, "vision_model.embeddings.class_embedding") &&
                      gvm_import_repo_has(r, "embeddings.class_embedding");
    gvm_import_plan_expect_store(p, &ps, bare ? "vision_model." : NULL, "");
    // A CLIPModel's other parts, and position_ids, a buffer that files from transformers < 4.31 still hold.
    static const char *const ignore[] = {"text_model.", "text_projection.", "visual_projection.", "logit_scale",
                                         "vision_model.embeddings.position_ids", "embeddings.position_ids", NULL};
    gvm_import_plan_ignore(p, ignore);
    char *json = gvm_import_json_vit_cfg(&cfg);
    gvm_import_plan_metadata(p, "format", GVM_WEIGHTS_FORMAT);
    gvm_import_plan_metadata(p, "kind", GVM_IMPORT_KIND_CLIP);
    gvm_import_plan_metadata(p, "config", json);
    gvm_import_plan_metadata(p, "source", cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "vision_config"))
                                              ? "CLIPModel (vision tower)" : "CLIPVisionModel");
    free(json);
    s = gvm_import_plan_write(p, opts->out);
    if (s == GVM_OK && opts->log)
        fprintf(opts->log, "gvm import: wrote %s: CLIP vision, %d tensors, %.1f MB (f32)\n", opts->out, ps.n_params,
                (double)gvm_import_plan_bytes(p) / 1e6);
    gvm_import_plan_free(p);
    gvm_nn_vit_free(&vit);
    gvm_param_store_free(&ps);
out:
    gvm_import_repo_close(r);
    return s;
}
