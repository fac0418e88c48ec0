// generate_video.c: from a video to music (train/generate_video.h).
#define _POSIX_C_SOURCE 200809L
#include "train/generate_video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/safetensors.h"
#include "data/loader.h"
#include "data/media.h"
#include "nn/generate.h"
#include "nn/windows.h"
#include "train/checkpoint.h"
#include "train/codec_file.h"
#include "train/config.h"
#include "train/loop.h"
#include "train/run_files.h"

gvm_generate_request gvm_generate_request_default(void) {
    return (gvm_generate_request){.seed = 0, .cfg_scale = 3.0f, .top_k = 250, .top_p = 0.0f, .temperature = 1.0f,
                                  .duration = 0, .overlap = -1};
}

// The checkpoint folder of `path`: a run folder's latest (its "latest" file), or the folder itself.
static gvm_status resolve_checkpoint(const char *path, char *out, size_t n) {
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/latest", path);
    FILE *f = fopen(latest, "r");
    if (f) {
        char name[256] = "";
        const bool ok = fgets(name, sizeof name, f) != NULL;
        fclose(f);
        name[strcspn(name, "\r\n")] = 0;
        if (!ok || !name[0])
            return gvm_error_set(GVM_ERR_FORMAT, "%s is empty: give a checkpoint folder (%s/ckpt-<step>)", latest, path);
        snprintf(out, n, "%s/%s", path, name);
        return GVM_OK;
    }
    snprintf(out, n, "%s", path);
    char model[4200];
    snprintf(model, sizeof model, "%s/model.safetensors", out);
    if (!gvm_run_file_exists(model))
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: neither a run folder (no 'latest') nor a checkpoint folder (no "
                             "model.safetensors): give the run folder of gvm train or one of its ckpt-<step> folders",
                             path);
    return GVM_OK;
}

// The config a checkpoint was trained with (model.safetensors' "config" metadata).
static gvm_status checkpoint_config(const char *ckpt, gvm_config *cfg) {
    char model[4200];
    snprintf(model, sizeof model, "%s/model.safetensors", ckpt);
    gvm_safetensors *st = NULL;
    gvm_status s = gvm_safetensors_open(model, &st);
    if (s != GVM_OK) return s;
    const char *format = gvm_safetensors_metadata(st, "format"), *text = gvm_safetensors_metadata(st, "config");
    gvm_config_default(cfg);
    if (!format || strncmp(format, "gvm-checkpoint", 14) != 0 || !text || !text[0])
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: not a gvm train checkpoint (no config in its metadata): give the run "
                          "folder of gvm train", model);
    else if ((s = gvm_config_apply_string(cfg, text, strlen(text), model)) == GVM_OK)
        s = gvm_config_validate(cfg);
    gvm_safetensors_close(st);
    return s;
}

typedef struct generator {
    const gvm_generate_request *req;
    gvm_generate_report *rep;
    gvm_config cfg;
    gvm_param_store ps;
    bool ps_ready;
    gvm_nn_gvmgen model;
    bool model_ready;
    gvm_codec codec;
    bool codec_ready;
    gvm_ctx *ctx;
    int64_t steps_before;  // LM steps of the windows already generated (progress)
    int64_t steps_total;
    int window, windows;
} generator;

static gvm_status load_model(generator *g) {
    gvm_status st = resolve_checkpoint(g->req->checkpoint, g->rep->checkpoint, sizeof g->rep->checkpoint);
    if (st != GVM_OK || (st = checkpoint_config(g->rep->checkpoint, &g->cfg)) != GVM_OK) return st;
    gvm_nn_gvmgen_cfg mc;
    if ((st = gvm_train_model_cfg(&g->cfg, &mc)) != GVM_OK) return st;
    gvm_param_store_init(&g->ps);
    g->ps_ready = true;
    gvm_nn_gvmgen_init(&g->model, &g->ps, &mc);
    g->model_ready = true;
    gvm_param_store_finalize(&g->ps);
    gvm_checkpoint_opts o = gvm_checkpoint_opts_default();
    o.weights_only = true;
    gvm_checkpoint_loaded l;
    memset(&l, 0, sizeof l);
    if ((st = gvm_checkpoint_load(g->rep->checkpoint, &g->ps, &o, &l)) != GVM_OK) return st;
    g->rep->step = l.state.step;
    gvm_checkpoint_loaded_free(&l);
    char ema[4200];
    snprintf(ema, sizeof ema, "%s/ema.safetensors", g->rep->checkpoint);
    if (!g->req->no_ema && gvm_run_file_exists(ema)) {
        if ((st = gvm_param_store_load(&g->ps, ema, false)) != GVM_OK) return st;
        g->rep->used_ema = true;
    }
    return GVM_OK;
}

static gvm_status load_codec(generator *g) {
    const char *path = g->req->codec && g->req->codec[0] ? g->req->codec : g->cfg.codec.init;
    if (!path[0])
        return gvm_error_set(GVM_ERR_INVALID, "no codec: the checkpoint's config has no codec.init; pass --codec FILE "
                             "(gvm train-codec's codec.safetensors, or gvm import's)");
    gvm_status st = gvm_codec_load(path, &g->codec);
    if (st != GVM_OK) return st;
    g->codec_ready = true;
    const gvm_nn_encodec_cfg *c = &g->codec.model.cfg;
    if (strcmp(g->codec.name, g->cfg.codec.name) != 0 || c->num_quantizers < g->model.lm.num_codebooks ||
        c->codebook_size != g->model.lm.card)
        return gvm_error_set(GVM_ERR_INVALID, "%s: codec '%s' (%lld codebooks of %lld) is not the one the model was "
                             "trained on ('%s', %lld codebooks of %lld): pass the codec of its training data",
                             path, g->codec.name, (long long)c->num_quantizers, (long long)c->codebook_size,
                             g->cfg.codec.name, (long long)g->model.lm.num_codebooks, (long long)g->model.lm.card);
    if (fabs(gvm_nn_encodec_frame_rate(c) - g->cfg.codec.frame_rate) > 1e-9)
        return gvm_error_set(GVM_ERR_INVALID, "%s: the codec makes %g frames/s, the model was trained on %d", path,
                             gvm_nn_encodec_frame_rate(c), g->cfg.codec.frame_rate);
    return GVM_OK;
}

static void on_lm_step(void *user, int64_t step, int64_t total) {
    generator *g = user;
    (void)total;
    if (g->req->progress)
        g->req->progress(g->req->progress_user, g->steps_before + step, g->steps_total, g->window, g->windows);
}

// The default continuation: a third of the clip, in whole video frames.
static double default_overlap(const gvm_config *c) {
    return floor(c->data.clip_seconds / 3.0 * c->data.fps) / c->data.fps;
}

// One window: its frames -> condition -> codes [K, T] (host).
static gvm_status generate_window(generator *g, const gvm_nn_window_plan *plan, int w, const uint8_t *frames,
                                  const int64_t *stitched, int64_t *codes) {
    const gvm_nn_window *win = &plan->windows[w];
    const int64_t S = g->cfg.data.image_size, K = g->model.lm.num_codebooks, T = win->code_end - win->code_start;
    gvm_tensor *x = gvm_tensor_empty(g->ctx, GVM_F32, 5, (int64_t[]){1, win->frame_count, 3, S, S});
    gvm_loader_normalise_frames(frames + win->frame_first * S * S * 3, win->frame_count, S * S, gvm_tensor_f32(x));
    gvm_no_grad_begin(g->ctx);
    gvm_tensor *cond = gvm_nn_gvmgen_forward_condition(g->ctx, &g->model, x, NULL);  // [1, F, D]
    gvm_no_grad_end(g->ctx);
    int64_t *prompt = NULL;
    if (win->context > 0) {
        prompt = malloc((size_t)(K * win->context) * sizeof *prompt);
        GVM_CHECK(prompt, "out of memory");
        gvm_nn_windows_prompt(plan, w, stitched, K, prompt);
    }
    gvm_nn_generate_opts o = gvm_nn_generate_opts_default();
    o.cfg_scale = g->req->cfg_scale;
    o.sample = (gvm_nn_sampling_opts){.temperature = g->req->temperature, .top_k = g->req->top_k > 0 ? g->req->top_k : 0,
                                      .top_p = g->req->top_p, .seed = g->req->seed + (uint64_t)w};
    o.progress = on_lm_step;
    o.progress_user = g;
    gvm_status st = gvm_nn_generate(g->ctx, &g->model, cond, NULL, T, prompt, K, win->context, &o, codes);
    free(prompt);
    gvm_ctx_reset(g->ctx);
    return st;
}

// codes [K, N] -> wave [n_samples] (heap), cut to the duration.
static gvm_status decode(generator *g, const int64_t *codes, int64_t N, int64_t n_samples, float **wave) {
    const int64_t K = g->model.lm.num_codebooks;
    gvm_ctx *ctx = gvm_ctx_new(0);
    gvm_no_grad_begin(ctx);
    gvm_tensor *c = gvm_tensor_empty(ctx, GVM_I64, 3, (int64_t[]){1, K, N});
    memcpy(gvm_tensor_i64(c), codes, (size_t)(K * N) * sizeof *codes);
    gvm_tensor *y = gvm_nn_encodec_decode(ctx, &g->codec.model, c, n_samples);  // [1, 1, n_samples]
    gvm_status st = GVM_OK;
    *wave = malloc((size_t)n_samples * sizeof **wave);
    if (!*wave)
        st = gvm_error_set(GVM_ERR_MEMORY, "out of memory for %lld samples", (long long)n_samples);
    else
        memcpy(*wave, gvm_tensor_f32(y), (size_t)n_samples * sizeof **wave);
    gvm_no_grad_end(ctx);
    gvm_ctx_free(ctx);
    return st;
}

static gvm_status run(generator *g) {
    const gvm_generate_request *r = g->req;
    gvm_generate_report *rep = g->rep;
    if (!r->out_wav || !r->out_wav[0]) return gvm_error_set(GVM_ERR_INVALID, "no output WAV path given");
    if (!isfinite(r->duration)) return gvm_error_set(GVM_ERR_INVALID, "--duration %g is not a number of seconds", r->duration);
    const gvm_nn_sampling_opts so = {.temperature = r->temperature, .top_k = r->top_k > 0 ? r->top_k : 0,
                                     .top_p = r->top_p, .seed = r->seed};
    gvm_status st = gvm_nn_sampling_check(&so);
    if (st != GVM_OK) return st;
    if (!(r->cfg_scale >= 0) || !isfinite(r->cfg_scale))
        return gvm_error_set(GVM_ERR_INVALID, "--cfg %g: the guidance scale must be >= 0", (double)r->cfg_scale);
    if ((st = load_model(g)) != GVM_OK || (st = load_codec(g)) != GVM_OK) return st;
    const gvm_config *c = &g->cfg;

    // The video, sampled as gvm prep does.
    gvm_media_info info;
    if ((st = gvm_media_probe(r->video, &info)) != GVM_OK) return st;
    if (!info.has_video)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no video stream to make music for", r->video);
    uint8_t *frames = NULL;
    int64_t n_frames = 0;
    // Every frame whose time falls inside the duration: ceil(duration * fps) of them (the reader takes floor).
    const double read_s = r->duration > 0 ? ceil(r->duration * c->data.fps - 1e-9) / c->data.fps : 0;
    if ((st = gvm_video_read_frames(r->video, c->data.fps, c->data.image_size, 0, read_s, &frames, &n_frames)) !=
        GVM_OK)
        return st;
    if (n_frames < 1) {
        free(frames);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: no video frame could be read: give a video with pictures", r->video);
    }
    // The music lasts the requested duration, or as long as the frames sampled from the video.
    const double video_s = (double)n_frames / c->data.fps;
    double duration = r->duration > 0 ? r->duration : (info.duration_s > 0 ? fmin(info.duration_s, video_s) : video_s);
    const double length = info.duration_s > 0 ? info.duration_s : video_s;  // the container's, when it says
    if (r->duration > 0 && r->duration > length + 1e-3) {
        free(frames);
        return gvm_error_set(GVM_ERR_INVALID, "--duration %g s is longer than the video %s (%.2f s)", r->duration,
                             r->video, length);
    }
    gvm_nn_window_plan plan;
    const double overlap = r->overlap >= 0 ? r->overlap : default_overlap(c);
    if ((st = gvm_nn_windows_plan(duration, c->data.clip_seconds, overlap, c->data.fps, c->codec.frame_rate, &plan)) !=
        GVM_OK) {
        free(frames);
        return st;
    }
    if (plan.total_frames > n_frames) {  // the last sample at the very end of the stream: repeat the last frame
        const int64_t S = c->data.image_size, fb = S * S * 3;
        uint8_t *more = realloc(frames, (size_t)(plan.total_frames * fb));
        GVM_CHECK(more, "out of memory");
        frames = more;
        for (int64_t f = n_frames; f < plan.total_frames; f++) memcpy(frames + f * fb, frames + (n_frames - 1) * fb, (size_t)fb);
    }
    const int64_t K = g->model.lm.num_codebooks, N = plan.total_codes;
    int64_t *stitched = calloc((size_t)(K * N), sizeof *stitched);
    int64_t *win_codes = malloc((size_t)(K * (int64_t)llround(c->data.clip_seconds * c->codec.frame_rate + 1)) *
                                sizeof *win_codes);
    GVM_CHECK(stitched && win_codes, "out of memory");
    g->windows = plan.count;
    for (int w = 0; w < plan.count; w++) g->steps_total += plan.windows[w].code_end - plan.windows[w].code_start + K - 1;
    const double t_lm = gvm_run_now();
    for (int w = 0; w < plan.count && st == GVM_OK; w++) {
        g->window = w;
        st = generate_window(g, &plan, w, frames, stitched, win_codes);
        if (st == GVM_OK) gvm_nn_windows_stitch(&plan, w, win_codes, K, stitched);
        g->steps_before += plan.windows[w].code_end - plan.windows[w].code_start + K - 1;
    }
    rep->lm_seconds = gvm_run_now() - t_lm;
    free(frames);
    free(win_codes);
    rep->windows = plan.count;
    rep->codec_frames = N;
    gvm_nn_windows_free(&plan);
    float *wave = NULL;
    const int rate = (int)g->codec.model.cfg.sampling_rate;
    const int64_t n_samples = (int64_t)llround(duration * rate);
    if (st == GVM_OK) st = decode(g, stitched, N, n_samples, &wave);
    free(stitched);
    if (st == GVM_OK && !r->no_normalize)
        st = gvm_loudness_normalize(wave, n_samples, rate, GVM_LOUDNESS_TARGET_LUFS, GVM_LOUDNESS_PEAK_LIMIT_DB,
                                    &rep->loudness);
    if (st == GVM_OK) st = gvm_wav_write(r->out_wav, wave, n_samples, rate);
    free(wave);
    if (st == GVM_OK && r->mux && r->mux[0]) st = gvm_media_mux_audio(r->video, r->out_wav, r->mux);
    rep->duration = duration;
    rep->sample_rate = rate;
    return st;
}

gvm_status gvm_generate_video(const gvm_generate_request *req, gvm_generate_report *report) {
    const double t0 = gvm_run_now();
    generator g;
    memset(&g, 0, sizeof g);
    memset(report, 0, sizeof *report);
    g.req = req;
    g.rep = report;
    g.ctx = gvm_ctx_new(req->seed);
    gvm_status st = run(&g);
    gvm_ctx_free(g.ctx);
    if (g.codec_ready) gvm_codec_free(&g.codec);
    if (g.model_ready) gvm_nn_gvmgen_free(&g.model);
    if (g.ps_ready) gvm_param_store_free(&g.ps);
    report->total_seconds = gvm_run_now() - t0;
    return st;
}
