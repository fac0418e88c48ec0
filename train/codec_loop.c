// codec_loop.c: gvm_codec_train_run (train/codec_loop.h): the codec's steps, evaluation, checkpoints and
// resume. Kept apart from train/loop.c because the codec's step differs in every part (audio crops, three
// losses, codebook EMA instead of a weight EMA); the run-folder plumbing is shared (train/run_files.h).
#define _POSIX_C_SOURCE 200809L
#include "train/codec_loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/optim.h"
#include "core/param_store.h"
#include "core/rng.h"
#include "data/loader.h"
#include "nn/audio_loss.h"
#include "nn/encodec.h"
#include "train/checkpoint.h"
#include "train/codec_file.h"
#include "train/run_files.h"
#include "train/schedule.h"
#include "train/trainable.h"

enum { SLOT_M = 0, SLOT_V = 1 };

typedef struct codec_trainer {
    const gvm_config *cfg;
    const char *run_dir;
    FILE *log;
    gvm_param_store ps;
    bool ps_ready;
    gvm_nn_encodec model;
    bool model_ready;
    gvm_nn_msmel_loss mel;
    bool mel_ready;
    gvm_ctx *ctx;
    gvm_loader *loader;
    gvm_param_range *ranges;
    int n_ranges;
    char *config_text;
    int64_t segment;  // samples per crop
    int64_t step, last_saved;
    gvm_checkpoint_opts copts;
    bool eval_off;
} codec_trainer;

typedef struct step_stats {
    double loss, l1, mel, commit, lr, norm;
    int64_t restarts;
} step_stats;

static double scalar(const gvm_tensor *t) { return (double)gvm_tensor_f32((gvm_tensor *)t)[0]; }

static gvm_status check_config(const gvm_config *cfg) {
    const gvm_config_codec *c = &cfg->codec;
    int64_t hop = 1;
    for (int i = 0; i < c->num_ratios; i++) hop *= c->ratios[i];
    if (hop * c->frame_rate != c->sample_rate)
        return gvm_error_set(GVM_ERR_INVALID, "config: the product of codec.ratios (%lld) times codec.frame_rate (%d) "
                             "must equal codec.sample_rate (%d)", (long long)hop, c->frame_rate, c->sample_rate);
    const double seg = cfg->codec_train.segment_seconds * c->sample_rate;
    if (seg < 2.0 * (double)hop || seg > cfg->data.clip_seconds * c->sample_rate)
        return gvm_error_set(GVM_ERR_INVALID, "config: codec_train.segment_seconds (%g) must hold at least two codec "
                             "frames and fit in data.clip_seconds (%g)", cfg->codec_train.segment_seconds,
                             cfg->data.clip_seconds);
    if (cfg->codec_train.warmup_steps > cfg->codec_train.steps)
        return gvm_error_set(GVM_ERR_INVALID, "config: codec_train.warmup_steps (%d) exceeds codec_train.steps (%d)",
                             cfg->codec_train.warmup_steps, cfg->codec_train.steps);
    if (!cfg->codec.name[0])
        return gvm_error_set(GVM_ERR_INVALID, "config: codec.name is empty: name the codec (it is written beside "
                             "the codes it makes)");
    return GVM_OK;
}

static gvm_status build_model(codec_trainer *t) {
    const gvm_nn_encodec_cfg ec = gvm_codec_cfg_from_config(t->cfg);
    gvm_param_store_init(&t->ps);
    t->ps_ready = true;
    gvm_status st = gvm_nn_encodec_init(&t->model, &t->ps, &ec);
    if (st != GVM_OK) return st;
    t->model_ready = true;
    gvm_param_store_finalize(&t->ps);
    gvm_rng init;
    gvm_rng_init(&init, (uint64_t)t->cfg->train.seed);
    gvm_nn_encodec_reset_parameters(&t->model, &init);
    gvm_param_store_state(&t->ps, SLOT_M);
    gvm_param_store_state(&t->ps, SLOT_V);
    t->ranges = gvm_trainable_ranges(&t->ps, &t->n_ranges);
    const gvm_nn_msmel_cfg mc = gvm_nn_msmel_default_cfg((float)t->cfg->codec.sample_rate);
    if ((st = gvm_nn_msmel_loss_init(&t->mel, &mc)) != GVM_OK) return st;
    t->mel_ready = true;
    return GVM_OK;
}

// The audio loader of `split`: the first data.clip_seconds (training) or `seconds` (evaluation) of each clip.
static gvm_status open_audio_loader(const gvm_config *cfg, const char *split, bool training, double seconds,
                                    int64_t batch, gvm_loader_position start, gvm_loader **out) {
    gvm_loader_config lc = gvm_loader_config_default();
    lc.folder = cfg->data.dir;
    lc.split = split;
    lc.batch_size = batch;
    lc.parts = GVM_CLIP_AUDIO;
    lc.audio_samples = (int64_t)llround(seconds * cfg->codec.sample_rate);
    lc.seed = (uint64_t)cfg->train.seed;
    lc.shuffle = training;
    lc.drop_last = training;
    lc.prefetch = cfg->data.prefetch;
    lc.workers = cfg->data.workers;
    lc.start = start;
    gvm_status st = gvm_loader_open(&lc, out);
    if (st != GVM_OK) return st;
    const gvm_shard_info *info = gvm_loader_info(*out);
    if (info->sample_rate != cfg->codec.sample_rate) {
        st = gvm_error_set(GVM_ERR_INVALID, "%s: the shards' audio is at %d Hz but codec.sample_rate is %d: set it to "
                           "the shards' rate or re-run gvm prep with --rate %d", cfg->data.dir, info->sample_rate,
                           cfg->codec.sample_rate, cfg->codec.sample_rate);
        gvm_loader_close(*out);
        *out = NULL;
        return st;
    }
    if (training && gvm_loader_batches_per_epoch(*out) < 1) {
        st = gvm_error_set(GVM_ERR_INVALID, "%s: split '%s' has %lld clips, fewer than codec_train.batch_size %lld",
                           cfg->data.dir, split, (long long)gvm_loader_clip_count(*out), (long long)batch);
        gvm_loader_close(*out);
        *out = NULL;
    }
    return st;
}

// Crops of the batch: wave [B, 1, segment]; row r starts at a Philox draw in [0, len_r - segment] (0 when the
// clip is shorter, its tail then zeros as the loader padded it).
static gvm_tensor *crop_batch(codec_trainer *t, const gvm_loader_batch *b, int64_t step) {
    const int64_t B = b->size, seg = t->segment, T = b->audio->shape[1];
    gvm_tensor *wave = gvm_tensor_empty(t->ctx, GVM_F32, 3, (int64_t[]){B, 1, seg});
    const float *in = gvm_tensor_f32(b->audio);
    float *out = gvm_tensor_f32(wave);
    for (int64_t r = 0; r < B; r++) {
        const int64_t len = b->audio_len[r] < T ? b->audio_len[r] : T;
        int64_t off = 0;
        if (len > seg) {
            uint32_t w[4];
            gvm_philox4x32((uint64_t)t->cfg->train.seed ^ 0xc0dec0dec0dec0deull, (uint64_t)step, (uint64_t)r, w);
            off = (int64_t)((((uint64_t)w[0] << 32) | w[1]) % (uint64_t)(len - seg + 1));
        }
        memcpy(out + r * seg, in + r * T + off, (size_t)seg * sizeof(float));
    }
    return wave;
}

static gvm_status train_step(codec_trainer *t, const gvm_lr_schedule *sched, step_stats *s) {
    const gvm_config_codec_train *ct = &t->cfg->codec_train;
    const int64_t step = t->step + 1;
    gvm_loader_batch b;
    gvm_status st = gvm_loader_next(t->loader, &b);
    if (st != GVM_OK) return st;
    gvm_param_store_zero_grad(&t->ps);
    gvm_tensor *wave = crop_batch(t, &b, step);  // [B, 1, seg]
    gvm_loader_release(t->loader);
    gvm_nn_encodec_train_out o;
    gvm_nn_encodec_forward_train(t->ctx, &t->model, wave, (int)t->model.cfg.num_quantizers, &o);
    const int64_t B = wave->shape[0];
    gvm_tensor *pred = gvm_reshape(t->ctx, o.recon, 2, (int64_t[]){B, t->segment});  // [B, seg]
    gvm_tensor *ref = gvm_reshape(t->ctx, wave, 2, (int64_t[]){B, t->segment});
    gvm_tensor *l1 = gvm_l1_loss(t->ctx, pred, ref);
    gvm_tensor *mel = gvm_nn_msmel_loss_forward(t->ctx, &t->mel, pred, ref);
    gvm_tensor *loss = gvm_add(t->ctx, gvm_mul_scalar(t->ctx, l1, (float)ct->l1_weight),
                               gvm_mul_scalar(t->ctx, mel, (float)ct->mel_weight));
    loss = gvm_add(t->ctx, loss, gvm_mul_scalar(t->ctx, o.commit, (float)ct->commit_weight));
    s->loss = scalar(loss);
    s->l1 = scalar(l1);
    s->mel = scalar(mel);
    s->commit = scalar(o.commit);
    if (!isfinite(s->loss)) {
        gvm_ctx_reset(t->ctx);
        return gvm_error_set(GVM_ERR_INVALID, "step %lld: the loss is %s; stopping before the update. The last good "
                             "checkpoint (step %lld; -1: none) is kept: lower codec_train.lr, then resume",
                             (long long)step, isnan(s->loss) ? "NaN" : "infinite", (long long)t->last_saved);
    }
    gvm_backward(t->ctx, loss);
    const double ss = gvm_grad_sumsq(GVM_DEVICE_CPU, t->ps.grad, (int64_t)t->ps.total);
    s->norm = sqrt(ss);
    if (!isfinite(ss)) {
        gvm_ctx_reset(t->ctx);
        return gvm_error_set(GVM_ERR_INVALID, "step %lld: the gradients are not finite (loss %g); stopping before the "
                             "update. The last good checkpoint (step %lld; -1: none) is kept",
                             (long long)step, s->loss, (long long)t->last_saved);
    }
    s->lr = gvm_lr_at(sched, step);
    const double clip = ct->grad_clip > 0 && s->norm > ct->grad_clip ? ct->grad_clip / s->norm : 1.0;
    const gvm_adamw_hparams h = {.lr = (float)s->lr, .beta1 = (float)ct->betas[0], .beta2 = (float)ct->betas[1],
                                 .eps = 1e-8f, .weight_decay = 0.0f, .grad_scale = (float)clip};
    float *m = gvm_param_store_state(&t->ps, SLOT_M), *v = gvm_param_store_state(&t->ps, SLOT_V);
    for (int r = 0; r < t->n_ranges; r++) {
        const size_t off = t->ranges[r].begin, n = t->ranges[r].end - t->ranges[r].begin;
        gvm_adamw_step(GVM_DEVICE_CPU, t->ps.data + off, t->ps.grad + off, m + off, v + off, (int64_t)n, &h, step);
    }
    // The codebooks follow the batch's assignments (made with the codebooks before this step, as in the forward).
    const gvm_nn_encodec_ema_opts eo = {.decay = (float)ct->codebook_decay, .eps = 1e-5f,
                                        .threshold = ct->dead_code_threshold > 0 ? (float)ct->dead_code_threshold : -1.0f,
                                        .restart_usage = 2.0f * (float)ct->dead_code_threshold};
    s->restarts = gvm_nn_encodec_rvq_ema_update(&t->model, o.latent, o.codes, &eo, &t->ctx->rng, NULL);
    gvm_ctx_reset(t->ctx);
    t->step = step;
    return GVM_OK;
}

// Reconstruction quality on the eval split: encode -> codes -> decode, as gvm encode / gvm generate do.
static void evaluate_now(codec_trainer *t, FILE *mf) {
    if (t->eval_off) return;
    const gvm_config_codec_train *ct = &t->cfg->codec_train;
    gvm_loader *l = NULL;
    gvm_status st = open_audio_loader(t->cfg, t->cfg->data.eval_split, false, ct->eval_seconds, 1,
                                      (gvm_loader_position){0, 0}, &l);
    if (st != GVM_OK) {
        fprintf(t->log, "gvm train-codec: %s; evaluation is off for the rest of this run\n", gvm_error_message());
        t->eval_off = true;
        return;
    }
    const gvm_nn_mel_distance_cfg mdc = gvm_nn_mel_distance_default_cfg((float)t->cfg->codec.sample_rate);
    const bool was_training = t->ctx->training;
    t->ctx->training = false;
    gvm_no_grad_begin(t->ctx);
    double snr = 0, mel = 0;
    int64_t clips = 0, mel_clips = 0;
    const int64_t n = gvm_loader_batches_per_epoch(l) < ct->eval_clips ? gvm_loader_batches_per_epoch(l) : ct->eval_clips;
    for (int64_t i = 0; i < n && st == GVM_OK; i++) {
        gvm_loader_batch b;
        if ((st = gvm_loader_next(l, &b)) != GVM_OK) break;
        const int64_t len = b.audio_len[0];
        if (len < 2 * gvm_nn_encodec_hop_length(&t->model.cfg)) continue;
        gvm_tensor *wave = gvm_tensor_empty(t->ctx, GVM_F32, 3, (int64_t[]){1, 1, len});
        memcpy(gvm_tensor_f32(wave), gvm_tensor_f32(b.audio), (size_t)len * sizeof(float));
        gvm_tensor *codes = gvm_nn_encodec_encode(t->ctx, &t->model, wave, (int)t->model.cfg.num_quantizers);
        gvm_tensor *rec = gvm_nn_encodec_decode(t->ctx, &t->model, codes, len);  // [1, 1, len]
        snr += gvm_nn_si_snr(gvm_tensor_f32(rec), gvm_tensor_f32(wave), len);
        clips++;
        double md;
        if (gvm_nn_mel_distance(gvm_tensor_f32(rec), gvm_tensor_f32(wave), 1, len, &mdc, &md) == GVM_OK) {
            mel += md;
            mel_clips++;
        }
        gvm_ctx_reset(t->ctx);
    }
    gvm_no_grad_end(t->ctx);
    t->ctx->training = was_training;
    gvm_loader_close(l);
    if (st != GVM_OK || clips == 0) {
        fprintf(t->log, "gvm train-codec: evaluation %s; evaluation is off for the rest of this run\n",
                st != GVM_OK ? gvm_error_message() : "found no eval clip of two codec frames or more");
        t->eval_off = true;
        return;
    }
    snr /= (double)clips;
    mel = mel_clips ? mel / (double)mel_clips : NAN;
    fprintf(mf, "{\"step\":%lld,\"eval_si_snr\":%.9g,\"eval_mel_distance\":%.9g,\"eval_clips\":%lld}\n",
            (long long)t->step, snr, mel, (long long)clips);
    fflush(mf);
    fprintf(t->log, "eval at step %lld: SI-SNR %.2f dB, mel distance %.4f (%lld clips x %g s)\n", (long long)t->step,
            snr, mel, (long long)clips, ct->eval_seconds);
    fflush(t->log);
}

static gvm_status save_checkpoint(codec_trainer *t) {
    gvm_checkpoint_state s = {.step = t->step, .optim_step = t->step, .config = t->config_text, .rng = t->ctx->rng,
                              .data = gvm_loader_get_position(t->loader)};
    gvm_loss_scaler_init(&s.scaler);
    s.scaler.scale = 1.0f;
    gvm_status st = gvm_checkpoint_save(t->run_dir, &t->ps, &s, &t->copts);
    if (st == GVM_OK) t->last_saved = t->step;
    return st;
}

static gvm_status resume_from(codec_trainer *t, gvm_loader_position *pos) {
    gvm_checkpoint_loaded l;
    memset(&l, 0, sizeof l);
    gvm_status st = gvm_checkpoint_load_latest(t->run_dir, &t->ps, &t->copts, &l);
    if (st == GVM_ERR_NOT_FOUND) {
        fprintf(t->log, "gvm train-codec: %s has no checkpoint yet: starting from step 0\n", t->run_dir);
        return GVM_OK;
    }
    if (st != GVM_OK) return st;
    if (l.skipped) fprintf(t->log, "gvm train-codec: skipped damaged checkpoints:\n%s", l.skipped);
    t->step = t->last_saved = l.state.step;
    t->ctx->rng = l.state.rng;
    *pos = l.state.data;
    if (!l.has_optim) fprintf(t->log, "gvm train-codec: warning: %s has no optimiser state; Adam restarts\n", l.path);
    fprintf(t->log, "gvm train-codec: resumed from %s (step %lld)\n", l.path, (long long)t->step);
    gvm_checkpoint_loaded_free(&l);
    return GVM_OK;
}

static void write_step_metrics(FILE *mf, int64_t step, const step_stats *s, double elapsed) {
    fprintf(mf,
            "{\"step\":%lld,\"loss\":%.17g,\"l1\":%.9g,\"mel\":%.9g,\"commit\":%.9g,\"restarts\":%lld,\"lr\":%.9g,"
            "\"grad_norm\":%.9g,\"elapsed_s\":%.3f}\n",
            (long long)step, s->loss, s->l1, s->mel, s->commit, (long long)s->restarts, s->lr, s->norm, elapsed);
    fflush(mf);
}

static void trainer_free(codec_trainer *t) {
    gvm_loader_close(t->loader);
    if (t->ctx) gvm_ctx_free(t->ctx);
    if (t->mel_ready) gvm_nn_msmel_loss_free(&t->mel);
    if (t->model_ready) gvm_nn_encodec_free(&t->model);
    if (t->ps_ready) gvm_param_store_free(&t->ps);
    free(t->ranges);
    free(t->config_text);
}

gvm_status gvm_codec_train_run(const gvm_config *cfg, const char *run_dir, bool resume, const gvm_train_opts *opts,
                               gvm_train_result *result) {
    const gvm_train_opts no_opts = {0};
    if (!opts) opts = &no_opts;
    if (result) *result = (gvm_train_result){.last_loss = NAN};
    codec_trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.run_dir = run_dir;
    t.log = opts->log ? opts->log : stderr;
    t.last_saved = -1;
    t.segment = (int64_t)llround(cfg->codec_train.segment_seconds * cfg->codec.sample_rate);
    t.copts = gvm_checkpoint_opts_default();
    t.copts.keep_last = cfg->train.keep_checkpoints;
    t.copts.slot_m = SLOT_M;
    t.copts.slot_v = SLOT_V;
    t.copts.slot_ema = -1;

    gvm_status st = check_config(cfg);
    if (st != GVM_OK) return st;
    const gvm_lr_schedule sched = {.lr = cfg->codec_train.lr, .warmup_steps = cfg->codec_train.warmup_steps,
                                   .total_steps = cfg->codec_train.steps, .decay = GVM_LR_CONSTANT};
    if ((st = gvm_lr_schedule_validate(&sched)) != GVM_OK) return st;
    if ((st = gvm_run_make_dir(run_dir)) != GVM_OK) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/latest", run_dir);
    if (!resume && gvm_run_file_exists(path))
        return gvm_error_set(GVM_ERR_INVALID, "%s already has checkpoints: resume it (gvm train-codec --resume %s) or "
                             "choose another run folder", run_dir, run_dir);
    t.config_text = gvm_run_config_text(cfg);
    if (!t.config_text) return gvm_error_set(GVM_ERR_MEMORY, "cannot format the config");
    t.ctx = gvm_ctx_new((uint64_t)cfg->train.seed ^ 0x5eed0f0c0dec5eedull);
    t.ctx->training = true;
    if ((st = build_model(&t)) != GVM_OK) goto out;
    gvm_loader_position pos = {0, 0};
    if (resume && (st = resume_from(&t, &pos)) != GVM_OK) goto out;
    if ((st = open_audio_loader(cfg, cfg->data.train_split, true, cfg->data.clip_seconds, cfg->codec_train.batch_size,
                                pos, &t.loader)) != GVM_OK)
        goto out;
    if (result) result->start_step = result->steps_done = t.step;

    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (resume && (st = gvm_run_trim_metrics(path, t.step)) != GVM_OK) goto out;
    FILE *mf = fopen(path, resume ? "a" : "w");
    if (!mf) {
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot open the metrics file", path);
        goto out;
    }
    if (!opts->quiet) {
        int64_t params = 0;
        for (int i = 0; i < t.n_ranges; i++) params += (int64_t)(t.ranges[i].end - t.ranges[i].begin);
        fprintf(t.log, "gvm train-codec: codec '%s', %d Hz, %.0f codec frames/s, %lld x %lld codebooks, ~%lld "
                "trainable parameters; %d steps of %d x %g s segments, run folder %s\n", cfg->codec.name,
                cfg->codec.sample_rate, gvm_nn_encodec_frame_rate(&t.model.cfg), (long long)t.model.cfg.num_quantizers,
                (long long)t.model.cfg.codebook_size, (long long)params, cfg->codec_train.steps,
                cfg->codec_train.batch_size, cfg->codec_train.segment_seconds, run_dir);
    }
    const double t0 = gvm_run_now();
    const int64_t first = t.step;
    const gvm_config_codec_train *ct = &cfg->codec_train;
    while (t.step < ct->steps) {
        step_stats s = {0};
        if ((st = train_step(&t, &sched, &s)) != GVM_OK) break;
        if (result) {
            result->steps_done = t.step;
            result->last_loss = s.loss;
        }
        if (opts->on_step) opts->on_step(opts->user, t.step, s.loss);
        const bool last = t.step == ct->steps, stop = opts->stop && *opts->stop;
        const double now = gvm_run_now();
        if (t.step % ct->log_every == 0 || last || stop) {
            write_step_metrics(mf, t.step, &s, now - t0);
            if (!opts->quiet) {
                char eta[32];
                gvm_run_format_eta(eta, sizeof eta, (now - t0) / (double)(t.step - first) * (double)(ct->steps - t.step));
                fprintf(t.log, "step %lld/%d  loss %.4f (l1 %.4f mel %.4f commit %.4f)  restarts %lld  lr %.2e  eta %s\n",
                        (long long)t.step, ct->steps, s.loss, s.l1, s.mel, s.commit, (long long)s.restarts, s.lr, eta);
                fflush(t.log);
            }
        }
        if ((ct->eval_every > 0 && t.step % ct->eval_every == 0) || last) evaluate_now(&t, mf);
        if ((ct->checkpoint_every > 0 && t.step % ct->checkpoint_every == 0) || last || stop)
            if ((st = save_checkpoint(&t)) != GVM_OK) break;
        if (stop && !last) {
            fprintf(t.log, "gvm train-codec: stopped at step %lld; checkpoint written (resume with --resume %s)\n",
                    (long long)t.step, run_dir);
            if (result) result->stopped = true;
            break;
        }
    }
    if (st == GVM_OK && t.last_saved != t.step) st = save_checkpoint(&t);
    if (st == GVM_OK && t.step == ct->steps) {
        snprintf(path, sizeof path, "%s/codec.safetensors", run_dir);
        st = gvm_codec_save(path, &t.model, &t.ps, cfg->codec.name);
        if (st == GVM_OK && !opts->quiet)
            fprintf(t.log, "gvm train-codec: wrote %s (set codec.init to it for gvm encode and gvm generate)\n", path);
    }
    fclose(mf);
out:
    trainer_free(&t);
    return st;
}
