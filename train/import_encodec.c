// import_encodec.c: gvm import --format hf-encodec (train/import_common.h), and the codec part of a
// composite MusicGen repository: an EncodecModel -> a codec file (train/codec_file.h) that gvm_codec_load
// reads back (gvm encode, gvm generate, codec.init).
//
// EncodecModel's state_dict names are ours (nn/encodec.h), with one spelling difference: the Hub's files
// (and transformers < 5) name the weight-norm pair "<conv>.weight_g"/"weight_v" where transformers 5
// writes "<conv>.parametrizations.weight.original0/1"; both are read (same shapes, same meaning).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/codec_file.h"
#include "train/import_common.h"

gvm_status gvm_import_encodec_cfg(const void *obj, const char *where, gvm_nn_encodec_cfg *c) {
    memset(c, 0, sizeof *c);
    gvm_status s;
    bool causal, shortcut, normalize;
    double trim;
    const char *norm, *pad;
    // Defaults are EncodecConfig's (transformers 5.24), for keys a config.json leaves out.
    if ((s = gvm_import_cfg_int(obj, where, "sampling_rate", 24000, &c->sampling_rate)) ||
        (s = gvm_import_cfg_int(obj, where, "audio_channels", 1, &c->audio_channels)) ||
        (s = gvm_import_cfg_int(obj, where, "num_filters", 32, &c->num_filters)) ||
        (s = gvm_import_cfg_int(obj, where, "num_residual_layers", 1, &c->num_residual_layers)) ||
        (s = gvm_import_cfg_int(obj, where, "kernel_size", 7, &c->kernel_size)) ||
        (s = gvm_import_cfg_int(obj, where, "last_kernel_size", 7, &c->last_kernel_size)) ||
        (s = gvm_import_cfg_int(obj, where, "residual_kernel_size", 3, &c->residual_kernel_size)) ||
        (s = gvm_import_cfg_int(obj, where, "dilation_growth_rate", 2, &c->dilation_growth_rate)) ||
        (s = gvm_import_cfg_int(obj, where, "compress", 2, &c->compress)) ||
        (s = gvm_import_cfg_int(obj, where, "num_lstm_layers", 2, &c->num_lstm_layers)) ||
        (s = gvm_import_cfg_int(obj, where, "hidden_size", 128, &c->hidden_size)) ||
        (s = gvm_import_cfg_int(obj, where, "codebook_size", 1024, &c->codebook_size)) ||
        (s = gvm_import_cfg_int(obj, where, "codebook_dim", c->hidden_size, &c->codebook_dim)) ||
        (s = gvm_import_cfg_bool(obj, where, "use_causal_conv", true, &causal)) ||
        (s = gvm_import_cfg_bool(obj, where, "use_conv_shortcut", true, &shortcut)) ||
        (s = gvm_import_cfg_bool(obj, where, "normalize", false, &normalize)) ||
        (s = gvm_import_cfg_float(obj, where, "trim_right_ratio", 1.0, &trim)) ||
        (s = gvm_import_cfg_str(obj, where, "norm_type", "weight_norm", &norm)) ||
        (s = gvm_import_cfg_str(obj, where, "pad_mode", "reflect", &pad)))
        return s;
    c->use_causal_conv = causal;
    c->use_conv_shortcut = shortcut;
    c->normalize = normalize;
    c->trim_right_ratio = (float)trim;
    if (strcmp(norm, "weight_norm") == 0) c->norm_type = GVM_NN_ENCODEC_NORM_WEIGHT;
    else if (strcmp(norm, "time_group_norm") == 0) c->norm_type = GVM_NN_ENCODEC_NORM_TIME_GROUP;
    else return gvm_error_set(GVM_ERR_INVALID, "%s: norm_type '%s' is unknown", where, norm);
    if (strcmp(pad, "reflect") == 0) c->pad_mode = GVM_NN_ENCODEC_PAD_REFLECT;
    else if (strcmp(pad, "constant") == 0) c->pad_mode = GVM_NN_ENCODEC_PAD_CONSTANT;
    else if (strcmp(pad, "replicate") == 0) c->pad_mode = GVM_NN_ENCODEC_PAD_REPLICATE;
    else return gvm_error_set(GVM_ERR_INVALID, "%s: pad_mode '%s' is unknown", where, pad);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive((const cJSON *)obj, "upsampling_ratios");
    if (!r) {
        static const int64_t def[] = {8, 5, 4, 2};
        c->n_ratios = 4;
        memcpy(c->upsampling_ratios, def, sizeof def);
    } else if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 1 || cJSON_GetArraySize(r) > GVM_NN_ENCODEC_MAX_RATIOS) {
        return gvm_error_set(GVM_ERR_FORMAT, "%s: upsampling_ratios must be a list of 1 to %d whole numbers", where,
                             GVM_NN_ENCODEC_MAX_RATIOS);
    } else {
        c->n_ratios = cJSON_GetArraySize(r);
        for (int i = 0; i < c->n_ratios; i++) {
            const cJSON *v = cJSON_GetArrayItem(r, i);
            if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != (double)(int64_t)v->valuedouble)
                return gvm_error_set(GVM_ERR_FORMAT, "%s: upsampling_ratios[%d] is not a whole number >= 1", where, i);
            c->upsampling_ratios[i] = (int64_t)v->valuedouble;
        }
    }
    // num_quantizers as EncodecConfig derives it: int(1000 * target_bandwidths[-1] // (frame_rate * nbits)),
    // frame_rate = ceil(sampling_rate / hop), nbits = ceil(log2(codebook_size)). 32 kHz: 2200 // (50 * 11) = 4.
    const cJSON *bw = cJSON_GetObjectItemCaseSensitive((const cJSON *)obj, "target_bandwidths");
    double last_bw = 24.0;  // EncodecConfig's default list ends at 24 kbps
    if (bw) {
        const cJSON *lv = cJSON_IsArray(bw) ? cJSON_GetArrayItem(bw, cJSON_GetArraySize(bw) - 1) : NULL;
        if (!cJSON_IsNumber(lv) || lv->valuedouble <= 0)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: target_bandwidths must be a non-empty list of positive numbers", where);
        last_bw = lv->valuedouble;
    }
    int64_t hop = 1;
    for (int i = 0; i < c->n_ratios; i++) hop *= c->upsampling_ratios[i];
    const double frame_rate = ceil((double)c->sampling_rate / (double)hop);
    const double nbits = c->codebook_size > 0 ? ceil(log2((double)c->codebook_size)) : 1.0;
    c->num_quantizers = (int64_t)floor(1000.0 * last_bw / (frame_rate * nbits));
    s = gvm_nn_encodec_cfg_check(c);
    if (s != GVM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", gvm_error_message());
        return gvm_error_set(s, "%s: %s", where, why);
    }
    return GVM_OK;
}

gvm_status gvm_import_write_codec(gvm_import_repo *r, const void *cfg_obj, const char *src_prefix,
                                  const char *const *ignore, const char *path, const char *name, FILE *log) {
    char where[4200];
    snprintf(where, sizeof where, "%s/config.json%s", gvm_import_repo_dir(r), src_prefix[0] ? " audio_encoder" : "");
    gvm_nn_encodec_cfg cfg;
    gvm_status s = gvm_import_encodec_cfg(cfg_obj, where, &cfg);
    if (s != GVM_OK) return s;
    char auto_name[64];
    if (!name) {
        if (cfg.sampling_rate % 1000 == 0)
            snprintf(auto_name, sizeof auto_name, "encodec_%lldkhz", (long long)(cfg.sampling_rate / 1000));
        else
            snprintf(auto_name, sizeof auto_name, "encodec_%lldhz", (long long)cfg.sampling_rate);
        name = auto_name;
    }
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_encodec m;
    if ((s = gvm_nn_encodec_init(&m, &ps, &cfg)) != GVM_OK) {
        gvm_param_store_free(&ps);
        return s;
    }
    gvm_import_plan *p = gvm_import_plan_new(r);
    gvm_import_plan_expect_store(p, &ps, NULL, src_prefix);
    gvm_import_plan_ignore(p, ignore);
    char *json = gvm_codec_cfg_to_json(&m.cfg);
    // The metadata gvm_codec_save writes, so gvm_codec_load takes the file as its own.
    gvm_import_plan_metadata(p, "format", GVM_CODEC_FORMAT);
    gvm_import_plan_metadata(p, "codec_name", name);
    gvm_import_plan_metadata(p, "encodec_config", json);
    free(json);
    s = gvm_import_plan_write(p, path);
    if (s == GVM_OK && log)
        fprintf(log, "gvm import: wrote %s: codec '%s', %lld Hz, %lld codebooks of %lld, %.1f MB\n", path, name,
                (long long)cfg.sampling_rate, (long long)cfg.num_quantizers, (long long)cfg.codebook_size,
                (double)gvm_import_plan_bytes(p) / 1e6);
    gvm_import_plan_free(p);
    gvm_nn_encodec_free(&m);
    gvm_param_store_free(&ps);
    return s;
}

gvm_status gvm_import_encodec(const char *src_dir, const gvm_import_opts *opts) {
    gvm_import_repo *r = NULL;
    gvm_status s = gvm_import_repo_open(src_dir, &r);
    if (s != GVM_OK) return s;
    const char *model_type = NULL;
    const void *root = gvm_import_repo_config(r);
    s = gvm_import_cfg_str(root, src_dir, "model_type", "", &model_type);
    if (s == GVM_OK && strcmp(model_type, "encodec") != 0)
        s = gvm_error_set(GVM_ERR_FORMAT, "%s/config.json: model_type '%s' is not an EnCodec model (want encodec; for "
                          "a MusicGen repository use --format hf-musicgen --codec-out)", gvm_import_repo_dir(r), model_type);
    if (s == GVM_OK) s = gvm_import_write_codec(r, root, "", NULL, opts->out, opts->codec_name, opts->log);
    gvm_import_repo_close(r);
    return s;
}
