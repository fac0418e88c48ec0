// codec_file.c: codec files (train/codec_file.h).
#include "train/codec_file.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

static const char *const k_pad_names[] = {"reflect", "constant", "replicate"};

gvm_nn_encodec_cfg gvm_codec_cfg_from_config(const gvm_config *cfg) {
    const gvm_config_codec *c = &cfg->codec;
    gvm_nn_encodec_cfg e = gvm_nn_encodec_cfg_32khz();
    e.sampling_rate = c->sample_rate;
    e.audio_channels = 1;
    e.num_filters = c->filters;
    e.num_residual_layers = c->residual_layers;
    e.n_ratios = c->num_ratios;
    for (int i = 0; i < c->num_ratios; i++) e.upsampling_ratios[i] = c->ratios[i];
    e.use_causal_conv = c->causal;
    e.compress = c->compress;
    e.num_lstm_layers = c->lstm_layers;
    e.hidden_size = c->hidden;
    e.codebook_size = c->card;
    e.codebook_dim = c->hidden;
    e.num_quantizers = c->codebooks;
    return e;
}

char *gvm_codec_cfg_to_json(const gvm_nn_encodec_cfg *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sampling_rate", (double)c->sampling_rate);
    cJSON_AddNumberToObject(o, "audio_channels", (double)c->audio_channels);
    cJSON_AddNumberToObject(o, "num_filters", (double)c->num_filters);
    cJSON_AddNumberToObject(o, "num_residual_layers", (double)c->num_residual_layers);
    cJSON *r = cJSON_AddArrayToObject(o, "upsampling_ratios");
    for (int i = 0; i < c->n_ratios; i++) cJSON_AddItemToArray(r, cJSON_CreateNumber((double)c->upsampling_ratios[i]));
    cJSON_AddStringToObject(o, "norm_type", c->norm_type == GVM_NN_ENCODEC_NORM_WEIGHT ? "weight_norm" : "time_group_norm");
    cJSON_AddNumberToObject(o, "kernel_size", (double)c->kernel_size);
    cJSON_AddNumberToObject(o, "last_kernel_size", (double)c->last_kernel_size);
    cJSON_AddNumberToObject(o, "residual_kernel_size", (double)c->residual_kernel_size);
    cJSON_AddNumberToObject(o, "dilation_growth_rate", (double)c->dilation_growth_rate);
    cJSON_AddBoolToObject(o, "use_causal_conv", c->use_causal_conv);
    cJSON_AddStringToObject(o, "pad_mode", k_pad_names[c->pad_mode]);
    cJSON_AddNumberToObject(o, "compress", (double)c->compress);
    cJSON_AddNumberToObject(o, "num_lstm_layers", (double)c->num_lstm_layers);
    cJSON_AddNumberToObject(o, "trim_right_ratio", (double)c->trim_right_ratio);
    cJSON_AddBoolToObject(o, "use_conv_shortcut", c->use_conv_shortcut);
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(o, "codebook_size", (double)c->codebook_size);
    cJSON_AddNumberToObject(o, "codebook_dim", (double)(c->codebook_dim ? c->codebook_dim : c->hidden_size));
    cJSON_AddNumberToObject(o, "num_quantizers", (double)c->num_quantizers);
    cJSON_AddBoolToObject(o, "normalize", c->normalize);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    GVM_CHECK(s, "out of memory");
    return s;
}

static gvm_status get_int(const cJSON *o, const char *key, const char *where, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.%s is %s, want a whole number", where, key,
                             v ? "not a whole number" : "missing");
    *out = (int64_t)v->valuedouble;
    return GVM_OK;
}

static gvm_status get_bool(const cJSON *o, const char *key, const char *where, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(v))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.%s is %s, want true or false", where, key,
                             v ? "not a boolean" : "missing");
    *out = cJSON_IsTrue(v);
    return GVM_OK;
}

gvm_status gvm_codec_cfg_from_json(const char *json, const char *where, gvm_nn_encodec_cfg *out) {
    memset(out, 0, sizeof *out);
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config is not a JSON object", where);
    }
    gvm_status st = GVM_OK;
    struct { const char *key; int64_t *dst; } ints[] = {
        {"sampling_rate", &out->sampling_rate}, {"audio_channels", &out->audio_channels},
        {"num_filters", &out->num_filters}, {"num_residual_layers", &out->num_residual_layers},
        {"kernel_size", &out->kernel_size}, {"last_kernel_size", &out->last_kernel_size},
        {"residual_kernel_size", &out->residual_kernel_size}, {"dilation_growth_rate", &out->dilation_growth_rate},
        {"compress", &out->compress}, {"num_lstm_layers", &out->num_lstm_layers}, {"hidden_size", &out->hidden_size},
        {"codebook_size", &out->codebook_size}, {"codebook_dim", &out->codebook_dim},
        {"num_quantizers", &out->num_quantizers}};
    for (size_t i = 0; st == GVM_OK && i < sizeof ints / sizeof ints[0]; i++)
        st = get_int(o, ints[i].key, where, ints[i].dst);
    if (st == GVM_OK) st = get_bool(o, "use_causal_conv", where, &out->use_causal_conv);
    if (st == GVM_OK) st = get_bool(o, "use_conv_shortcut", where, &out->use_conv_shortcut);
    if (st == GVM_OK) st = get_bool(o, "normalize", where, &out->normalize);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "upsampling_ratios");
    if (st == GVM_OK) {
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 1 || cJSON_GetArraySize(r) > GVM_NN_ENCODEC_MAX_RATIOS)
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.upsampling_ratios must be a list of 1 to %d numbers",
                               where, GVM_NN_ENCODEC_MAX_RATIOS);
        else {
            out->n_ratios = cJSON_GetArraySize(r);
            for (int i = 0; i < out->n_ratios; i++) out->upsampling_ratios[i] = (int64_t)cJSON_GetArrayItem(r, i)->valuedouble;
        }
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trim_right_ratio");
    if (st == GVM_OK && !cJSON_IsNumber(tr))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.trim_right_ratio is missing or not a number", where);
    if (st == GVM_OK) out->trim_right_ratio = (float)tr->valuedouble;
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(o, "norm_type"), *pm = cJSON_GetObjectItemCaseSensitive(o, "pad_mode");
    if (st == GVM_OK) {
        if (!cJSON_IsString(nt) || (strcmp(nt->valuestring, "weight_norm") != 0 && strcmp(nt->valuestring, "time_group_norm") != 0))
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.norm_type must be \"weight_norm\" or \"time_group_norm\"", where);
        else
            out->norm_type = strcmp(nt->valuestring, "weight_norm") == 0 ? GVM_NN_ENCODEC_NORM_WEIGHT : GVM_NN_ENCODEC_NORM_TIME_GROUP;
    }
    if (st == GVM_OK) {
        int found = -1;
        for (int i = 0; i < 3 && cJSON_IsString(pm); i++)
            if (strcmp(pm->valuestring, k_pad_names[i]) == 0) found = i;
        if (found < 0)
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: encodec_config.pad_mode must be \"reflect\", \"constant\" or \"replicate\"", where);
        else
            out->pad_mode = (gvm_nn_encodec_pad)found;
    }
    cJSON_Delete(o);
    if (st == GVM_OK) {
        st = gvm_nn_encodec_cfg_check(out);
        if (st != GVM_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", gvm_error_message());
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: %s", where, why);
        }
    }
    return st;
}

gvm_status gvm_codec_save(const char *path, const gvm_nn_encodec *m, const gvm_param_store *ps, const char *name) {
    char *json = gvm_codec_cfg_to_json(&m->cfg);
    const char *meta[] = {"format", GVM_CODEC_FORMAT, "codec_name", name, "encodec_config", json, NULL};
    gvm_status st = gvm_param_store_save(ps, path, meta);
    free(json);
    return st;
}

gvm_status gvm_codec_load(const char *path, gvm_codec *out) {
    memset(out, 0, sizeof *out);
    gvm_safetensors *st = NULL;
    gvm_status s = gvm_safetensors_open(path, &st);
    if (s != GVM_OK) return s;
    const char *format = gvm_safetensors_metadata(st, "format");
    const char *name = gvm_safetensors_metadata(st, "codec_name");
    const char *json = gvm_safetensors_metadata(st, "encodec_config");
    gvm_nn_encodec_cfg cfg;
    if (!format || strcmp(format, GVM_CODEC_FORMAT) != 0 || !json || !name)
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: not a codec file (its metadata format is '%s', want '%s'): give the "
                          "codec.safetensors that gvm train-codec or gvm import wrote", path, format ? format : "none",
                          GVM_CODEC_FORMAT);
    else
        s = gvm_codec_cfg_from_json(json, path, &cfg);
    if (s == GVM_OK) snprintf(out->name, sizeof out->name, "%s", name);
    gvm_safetensors_close(st);
    if (s != GVM_OK) return s;
    gvm_param_store_init(&out->ps);
    if ((s = gvm_nn_encodec_init(&out->model, &out->ps, &cfg)) != GVM_OK) {
        gvm_param_store_free(&out->ps);
        return s;
    }
    gvm_param_store_finalize(&out->ps);
    if ((s = gvm_param_store_load(&out->ps, path, false)) != GVM_OK) {
        gvm_codec_free(out);
        return s;
    }
    return GVM_OK;
}

void gvm_codec_free(gvm_codec *c) {
    gvm_nn_encodec_free(&c->model);
    gvm_param_store_free(&c->ps);
    memset(c, 0, sizeof *c);
}
