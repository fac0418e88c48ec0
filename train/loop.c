// loop.c: gvm_train_run (train/loop.h): build the model and the loader from a config, run the optimiser
// steps, log metrics and write checkpoints, resume from the latest one. loop.h describes a step and the
// determinism contract; this file keeps every piece of run state that a resume needs in the checkpoint.
#define _POSIX_C_SOURCE 200809L
#include "train/loop.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/device.h"
#include "core/optim.h"
#include "core/param_store.h"
#include "data/loader.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/feature_cache.h"
#include "train/init_weights.h"
#include "train/run_files.h"
#include "train/schedule.h"
#include "train/trainable.h"

enum { SLOT_M = 0, SLOT_V = 1, SLOT_EMA = 2 };

typedef struct trainer {
    const gvm_config *cfg;
    const char *run_dir;
    FILE *log;
    gvm_device dev;
    gvm_param_store ps;
    bool ps_ready;
    gvm_nn_gvmgen model;
    bool model_ready;
    gvm_ctx *ctx;
    gvm_loader *loader;
    gvm_param_range *ranges;  // [n_ranges]: what AdamW updates
    int n_ranges;
    char *config_text;   // the resolved config as YAML (checkpoint metadata)
    gvm_train_device_batch dev_batch;  // device copies of a batch (unused on the CPU)
    char feature_source[GVM_FEATURE_SOURCE_MAX];  // model.vision.cache_features: the ViT's cache key
    const char *features;  // feature_source when training from cached tokens, else NULL (frames)
    bool eval_off;         // the eval split has no shards: evaluation skipped (said once)
    int64_t step, optim_step;
    gvm_loss_scaler scaler;
    bool use_scaler;     // f16: dynamic loss scaling
    bool use_ema;
    gvm_checkpoint_opts copts;
    int64_t last_saved;  // step of the newest checkpoint written or loaded (-1: none)
} trainer;

static gvm_status save_checkpoint(trainer *t) {
    gvm_checkpoint_state s = {.step = t->step, .optim_step = t->optim_step, .config = t->config_text,
                              .rng = t->ctx->rng, .data = gvm_loader_get_position(t->loader),
                              .scaler = t->scaler};
    gvm_status st = gvm_checkpoint_save(t->run_dir, &t->ps, &s, &t->copts);
    if (st == GVM_OK) t->last_saved = t->step;
    return st;
}

static float host_scalar(const gvm_tensor *x) {
    float v;
    gvm_device_copy(&v, GVM_DEVICE_CPU, x->data, x->device, sizeof v);
    return v;
}

// model.vision.init / model.lm.init: pretrained weights over the random init (train/init_weights.h). The
// store is on the device by now; the files are read through host copies.
static gvm_status load_pretrained(trainer *t) {
    const gvm_config_model *m = &t->cfg->model;
    static const char *const vision[] = {"vision_model.", NULL};
    static const char *const lm[] = {"model.decoder.", "lm_heads.", NULL};
    static const char *const lm_optional[] = {"enc_to_dec_proj.weight", "enc_to_dec_proj.bias", NULL};
    const struct { const char *path, *what; const char *const *required, *const *optional; } parts[] = {
        {m->vision.init, "model.vision.init", vision, NULL}, {m->lm.init, "model.lm.init", lm, lm_optional}};
    for (int i = 0; i < 2; i++) {
        if (!parts[i].path[0]) continue;
        gvm_param_store host;
        const bool on_host = t->dev == GVM_DEVICE_CPU;
        gvm_param_store *ps = &t->ps;
        if (!on_host) {  // a host mirror of the store's layout, copied over after the load
            ps = &host;
            gvm_param_store_init(ps);
            for (int p = 0; p < t->ps.n_params; p++)
                gvm_param_store_add(ps, t->ps.params[p]->name, t->ps.params[p]->ndim, t->ps.params[p]->shape);
            gvm_param_store_finalize(ps);
            gvm_device_copy(ps->data, GVM_DEVICE_CPU, t->ps.data, t->dev, t->ps.total * sizeof(float));
        }
        int n = 0;
        gvm_status st = gvm_init_weights_load(ps, parts[i].path, parts[i].what, parts[i].required, parts[i].optional,
                                              t->log, &n);
        if (!on_host) {
            if (st == GVM_OK) gvm_device_copy(t->ps.data, t->dev, ps->data, GVM_DEVICE_CPU, t->ps.total * sizeof(float));
            gvm_param_store_free(ps);
        }
        if (st != GVM_OK) return st;
        fprintf(t->log, "gvm train: %s: %d tensors from %s\n", parts[i].what, n, parts[i].path);
    }
    return GVM_OK;
}

// The model, its store and the optimiser/EMA slots on the configured device; initial weights from the seed.
static gvm_status build_model(trainer *t) {
    gvm_nn_gvmgen_cfg mc;
    gvm_status st = gvm_train_model_cfg(t->cfg, &mc);
    if (st != GVM_OK) return st;
    gvm_param_store_init(&t->ps);
    t->ps_ready = true;
    gvm_nn_gvmgen_init(&t->model, &t->ps, &mc);
    t->model_ready = true;
    if (t->dev == GVM_DEVICE_CPU)
        gvm_param_store_finalize(&t->ps);
    else
        gvm_param_store_finalize_on(&t->ps, t->dev);
    gvm_rng init_rng;
    gvm_rng_init(&init_rng, (uint64_t)t->cfg->train.seed);
    gvm_nn_gvmgen_reset_parameters(&t->model, &init_rng);
    if ((st = load_pretrained(t)) != GVM_OK) return st;
    gvm_param_store_state(&t->ps, SLOT_M);
    gvm_param_store_state(&t->ps, SLOT_V);
    if (t->use_ema) {
        float *ema = gvm_param_store_state(&t->ps, SLOT_EMA);
        gvm_device_copy(ema, t->dev, t->ps.data, t->dev, t->ps.total * sizeof(float));
    }
    t->ranges = gvm_trainable_ranges(&t->ps, &t->n_ranges);
    return GVM_OK;
}

static gvm_status open_loader(trainer *t, gvm_loader_position start) {
    const gvm_config *c = t->cfg;
    gvm_loader_config lc = gvm_train_loader_config(c, &t->model, c->data.train_split, true, t->features);
    lc.start = start;
    if (lc.frames < 1 || lc.code_steps < 1)
        return gvm_error_set(GVM_ERR_INVALID, "config: data.clip_seconds %g gives %lld frames and %lld codec steps; "
                             "both must be >= 1", c->data.clip_seconds, (long long)lc.frames, (long long)lc.code_steps);
    gvm_status st = gvm_loader_open(&lc, &t->loader);
    if (st != GVM_OK) return st;
    if (gvm_loader_batches_per_epoch(t->loader) < 1)
        return gvm_error_set(GVM_ERR_INVALID, "%s: split '%s' has %lld clips, fewer than data.batch_size %d: no "
                             "full batch to train on", c->data.dir, c->data.train_split,
                             (long long)gvm_loader_clip_count(t->loader), c->data.batch_size);
    const gvm_shard_info *info = gvm_loader_info(t->loader);
    if (info->frame_height != c->model.vision.image_size || info->frame_width != c->model.vision.image_size)
        return gvm_error_set(GVM_ERR_INVALID, "%s: the shards' frames are %dx%d but model.vision.image_size is %d; "
                             "set it (and data.image_size) to the shards' size or re-run gvm prep with --size %d",
                             c->data.dir, info->frame_width, info->frame_height, c->model.vision.image_size,
                             c->model.vision.image_size);
    return GVM_OK;
}

// Resume: weights, EMA, AdamW state, step, RNG, loss scaler; returns the data position to start from.
static gvm_status resume_from(trainer *t, gvm_loader_position *pos) {
    gvm_checkpoint_loaded l;
    memset(&l, 0, sizeof l);
    gvm_status st = gvm_checkpoint_load_latest(t->run_dir, &t->ps, &t->copts, &l);
    if (st == GVM_ERR_NOT_FOUND) {
        fprintf(t->log, "gvm train: %s has no checkpoint yet: starting from step 0\n", t->run_dir);
        return GVM_OK;
    }
    if (st != GVM_OK) return st;
    if (l.skipped) fprintf(t->log, "gvm train: skipped damaged checkpoints:\n%s", l.skipped);
    t->step = l.state.step;
    t->optim_step = l.state.optim_step;
    t->ctx->rng = l.state.rng;
    t->scaler = l.state.scaler;
    *pos = l.state.data;
    t->last_saved = t->step;
    if (!l.has_optim) fprintf(t->log, "gvm train: warning: %s has no optimiser state; AdamW restarts\n", l.path);
    if (t->use_ema && !l.has_ema) {
        fprintf(t->log, "gvm train: warning: %s has no EMA weights; the EMA restarts from the weights\n", l.path);
        gvm_device_copy(gvm_param_store_state(&t->ps, SLOT_EMA), t->dev, t->ps.data, t->dev,
                        t->ps.total * sizeof(float));
    }
    if (l.state.config && strcmp(l.state.config, t->config_text) != 0)
        fprintf(t->log, "gvm train: note: the config differs from the one the checkpoint was written with\n");
    fprintf(t->log, "gvm train: resumed from %s (step %lld, data epoch %lld batch %lld)\n", l.path,
            (long long)t->step, (long long)pos->epoch, (long long)pos->batch);
    gvm_checkpoint_loaded_free(&l);
    return GVM_OK;
}

// model.vision.cache_features: the frozen ViT's tokens of every train (and eval) clip, computed once
// before the first step and then read instead of the frames (train/feature_cache.h).
static gvm_status prepare_feature_cache(trainer *t) {
    const gvm_config *c = t->cfg;
    if (!c->model.vision.cache_features) return GVM_OK;
    gvm_feature_source(&t->model, t->feature_source);
    t->features = t->feature_source;
    const char *splits[2] = {c->data.train_split, c->data.eval_split};
    const int n = c->train.eval_every > 0 && strcmp(splits[0], splits[1]) != 0 ? 2 : 1;
    for (int i = 0; i < n; i++) {
        gvm_feature_cache_stats s;
        gvm_status st = gvm_feature_cache_fill(t->ctx, &t->model, c->data.dir, splits[i], t->features, 0, t->log, &s);
        if (st != GVM_OK) return st;
        if (s.computed > 0)
            fprintf(t->log, "gvm train: vision cache (%s): %lld of %lld clips computed, %lld frames in %.1f s\n",
                    splits[i], (long long)s.computed, (long long)s.clips, (long long)s.frames, s.seconds);
        else if (s.clips > 0)
            fprintf(t->log, "gvm train: vision cache (%s): all %lld clips up to date\n", splits[i], (long long)s.clips);
    }
    return GVM_OK;
}

// The evaluation loss on the eval split (train/evaluate.h) with the weights and, when the EMA is kept, with
// the EMA weights (swapped in and back), as a metrics line {"step", "eval_loss", "eval_loss_ema", ...}.
// A split without shards or a failing evaluation turns evaluation off with a message: training goes on.
static void evaluate_now(trainer *t, FILE *mf) {
    if (t->eval_off) return;
    gvm_eval_result r, re = {.loss = NAN};
    gvm_status st = gvm_train_evaluate(t->ctx, &t->model, t->cfg, t->features, t->cfg->train.eval_batches, &r);
    if (st == GVM_OK && t->use_ema) {
        const size_t bytes = t->ps.total * sizeof(float);
        float *saved = gvm_device_alloc(t->dev, bytes);
        gvm_device_copy(saved, t->dev, t->ps.data, t->dev, bytes);
        gvm_device_copy(t->ps.data, t->dev, gvm_param_store_state(&t->ps, SLOT_EMA), t->dev, bytes);
        st = gvm_train_evaluate(t->ctx, &t->model, t->cfg, t->features, t->cfg->train.eval_batches, &re);
        gvm_device_copy(t->ps.data, t->dev, saved, t->dev, bytes);
        gvm_device_free(t->dev, saved);
    }
    if (st != GVM_OK) {
        fprintf(t->log, "gvm train: %s%s; evaluation is off for the rest of this run\n",
                st == GVM_ERR_NOT_FOUND ? "" : "evaluation failed: ", gvm_error_message());
        t->eval_off = true;
        return;
    }
    fprintf(mf, "{\"step\":%lld,\"eval_loss\":%.17g", (long long)t->step, r.loss);
    if (t->use_ema) fprintf(mf, ",\"eval_loss_ema\":%.17g", re.loss);
    fprintf(mf, ",\"eval_steps\":%lld,\"eval_clips\":%lld}\n", (long long)r.steps, (long long)r.clips);
    fflush(mf);
    fprintf(t->log, "eval at step %lld: loss %.4f", (long long)t->step, r.loss);
    if (t->use_ema) fprintf(t->log, ", EMA weights %.4f", re.loss);
    fprintf(t->log, " (%lld clips, %lld codec steps)\n", (long long)r.clips, (long long)r.steps);
    fflush(t->log);
}

static void write_metrics(FILE *mf, int64_t step, double loss, double lr, double norm, double tok_s, double elapsed,
                          gvm_loader_position pos) {
    fprintf(mf, "{\"step\":%lld,\"loss\":%.17g,\"lr\":%.17g,\"grad_norm\":", (long long)step, loss, lr);
    if (isfinite(norm))
        fprintf(mf, "%.9g", norm);
    else
        fputs("null", mf);  // a step the loss scaler skipped
    fprintf(mf, ",\"tokens_per_s\":%.6g,\"elapsed_s\":%.3f,\"epoch\":%lld,\"batch\":%lld}\n", tok_s, elapsed,
            (long long)pos.epoch, (long long)pos.batch);
    fflush(mf);
}

// One optimiser step over grad_accum micro-batches. *loss_out: the mean loss; *norm_out: the gradient norm
// before clipping (inf/NaN when the loss scaler skipped the step); *tokens: codec frames trained on.
static gvm_status train_step(trainer *t, const gvm_lr_schedule *sched, double *loss_out, double *lr_out,
                             double *norm_out, int64_t *tokens) {
    const gvm_config *c = t->cfg;
    const int accum = c->train.grad_accum;
    const int64_t step = t->step + 1;
    gvm_param_store_zero_grad(&t->ps);
    const float scale = t->use_scaler ? gvm_loss_scaler_scale(&t->scaler) : 1.0f;
    float *seed = NULL;
    if (t->use_scaler) {
        seed = gvm_device_alloc(t->dev, sizeof(float));
        gvm_device_copy(seed, t->dev, &scale, GVM_DEVICE_CPU, sizeof(float));
    }
    double loss_sum = 0;
    gvm_status st = GVM_OK;
    for (int i = 0; i < accum; i++) {
        gvm_loader_batch b;
        st = gvm_loader_next(t->loader, &b);
        if (st != GVM_OK) goto done;
        for (int64_t r = 0; r < b.size; r++) *tokens += b.code_len[r];
        gvm_tensor *loss = gvm_train_batch_loss(t->ctx, &t->model, &t->dev_batch, &b, (float)c->model.lm.cond_dropout);
        const float lv = host_scalar(loss);
        if (!isfinite(lv)) {
            gvm_ctx_reset(t->ctx);
            gvm_loader_release(t->loader);
            st = gvm_error_set(GVM_ERR_INVALID,
                               "step %lld: the loss is %s (micro-batch %d, data epoch %lld batch %lld); stopping "
                               "before the update. The last good checkpoint (step %lld; -1: none) is kept: lower train.lr, "
                               "raise train.warmup_steps or check the data, then resume",
                               (long long)step, isnan(lv) ? "NaN" : "infinite", i, (long long)b.position.epoch,
                               (long long)b.position.batch, (long long)t->last_saved);
            goto done;
        }
        loss_sum += lv;
        if (t->use_scaler)
            gvm_backward_with_grad(t->ctx, loss, seed);
        else
            gvm_backward(t->ctx, loss);
        gvm_ctx_reset(t->ctx);
    }
    gvm_loader_release(t->loader);
    *loss_out = loss_sum / accum;

    // Gradients hold sum_i d(scale * loss_i); the step wants d(mean_i loss_i).
    const double inv = 1.0 / ((double)accum * (double)scale);
    const double ss = gvm_grad_sumsq(t->dev, t->ps.grad, (int64_t)t->ps.total);
    const bool finite = isfinite(ss);
    const double norm = sqrt(ss) * inv;
    *norm_out = norm;
    const double lr = gvm_lr_at(sched, step);
    *lr_out = lr;
    bool apply = true;
    if (t->use_scaler) {
        apply = gvm_loss_scaler_update(&t->scaler, finite);
    } else if (!finite) {
        st = gvm_error_set(GVM_ERR_INVALID,
                           "step %lld: the gradients are not finite (loss %g); stopping before the update. The "
                           "last good checkpoint (step %lld; -1: none) is kept: lower train.lr or raise "
                           "train.warmup_steps, then resume",
                           (long long)step, *loss_out, (long long)t->last_saved);
        goto done;
    }
    if (apply) {
        const double clip = c->train.grad_clip > 0 && norm > c->train.grad_clip ? c->train.grad_clip / norm : 1.0;
        const gvm_adamw_hparams h = {.lr = (float)lr, .beta1 = (float)c->train.betas[0],
                                     .beta2 = (float)c->train.betas[1], .eps = (float)c->train.eps,
                                     .weight_decay = (float)c->train.weight_decay, .grad_scale = (float)(inv * clip)};
        t->optim_step++;
        float *m = gvm_param_store_state(&t->ps, SLOT_M), *v = gvm_param_store_state(&t->ps, SLOT_V);
        for (int r = 0; r < t->n_ranges; r++) {
            const size_t o = t->ranges[r].begin, n = t->ranges[r].end - t->ranges[r].begin;
            gvm_adamw_step(t->dev, t->ps.data + o, t->ps.grad + o, m + o, v + o, (int64_t)n, &h, t->optim_step);
        }
        if (t->use_ema)
            gvm_ema_update(t->dev, gvm_param_store_state(&t->ps, SLOT_EMA), t->ps.data, (int64_t)t->ps.total,
                           (float)c->train.ema_decay);
    }
    t->step = step;
done:
    gvm_device_free(t->dev, seed);
    return st;
}

static void trainer_free(trainer *t) {
    gvm_loader_close(t->loader);
    gvm_train_device_batch_free(&t->dev_batch);
    if (t->ctx) gvm_ctx_free(t->ctx);
    if (t->model_ready) gvm_nn_gvmgen_free(&t->model);
    if (t->ps_ready) gvm_param_store_free(&t->ps);
    free(t->ranges);
    free(t->config_text);
}

gvm_status gvm_train_run(const gvm_config *cfg, const char *run_dir, bool resume, const gvm_train_opts *opts,
                         gvm_train_result *result) {
    const gvm_train_opts no_opts = {0};
    if (!opts) opts = &no_opts;
    if (result) *result = (gvm_train_result){.last_loss = NAN};
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.run_dir = run_dir;
    t.log = opts->log ? opts->log : stderr;
    t.dev = cfg->train.device;
    t.last_saved = -1;
    t.use_ema = cfg->train.ema_decay > 0;
    t.use_scaler = cfg->train.precision == GVM_F16;
    gvm_loss_scaler_init(&t.scaler);
    if (!t.use_scaler) t.scaler.scale = 1.0f;  // recorded in checkpoints; unused without f16
    t.copts = gvm_checkpoint_opts_default();
    t.copts.keep_last = cfg->train.keep_checkpoints;
    t.copts.slot_m = SLOT_M;
    t.copts.slot_v = SLOT_V;
    t.copts.slot_ema = t.use_ema ? SLOT_EMA : -1;

    gvm_status st = gvm_config_validate(cfg);
    if (st != GVM_OK) return st;
    const gvm_lr_schedule sched = {.lr = cfg->train.lr, .warmup_steps = cfg->train.warmup_steps,
                                   .total_steps = cfg->train.steps, .min_lr_ratio = 0,
                                   .decay = cfg->train.schedule == GVM_SCHEDULE_CONSTANT ? GVM_LR_CONSTANT
                                                                                         : GVM_LR_COSINE};
    if ((st = gvm_lr_schedule_validate(&sched)) != GVM_OK) return st;
    if ((st = gvm_run_make_dir(run_dir)) != GVM_OK) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/latest", run_dir);
    if (!resume && gvm_run_file_exists(path))
        return gvm_error_set(GVM_ERR_INVALID, "%s already has checkpoints: resume it (gvm train --resume %s) or "
                             "choose another run folder", run_dir, run_dir);
    if (t.dev != GVM_DEVICE_CPU && (st = gvm_device_init(t.dev)) != GVM_OK) return st;

    t.config_text = gvm_run_config_text(cfg);
    if (!t.config_text) return gvm_error_set(GVM_ERR_MEMORY, "cannot format the config");
    t.ctx = gvm_ctx_new((uint64_t)cfg->train.seed ^ 0x9e3779b97f4a7c15ull);  // dropout: apart from init's stream
    if (t.dev != GVM_DEVICE_CPU && (st = gvm_ctx_set_device(t.ctx, t.dev)) != GVM_OK) goto out;
    t.ctx->training = true;
    t.ctx->autocast = cfg->train.precision;
    if ((st = build_model(&t)) != GVM_OK) goto out;

    gvm_loader_position pos = {0, 0};
    if (resume && (st = resume_from(&t, &pos)) != GVM_OK) goto out;
    if ((st = prepare_feature_cache(&t)) != GVM_OK) goto out;
    if ((st = open_loader(&t, pos)) != GVM_OK) goto out;
    if (result) result->start_step = result->steps_done = t.step;

    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (resume && (st = gvm_run_trim_metrics(path, t.step)) != GVM_OK) goto out;
    FILE *mf = fopen(path, resume ? "a" : "w");
    if (!mf) {
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot open the metrics file: %s", path, strerror(errno));
        goto out;
    }
    if (!opts->quiet) {
        gvm_nn_gvmgen_print_summary(&t.model, t.log);
        fprintf(t.log, "gvm train: %lld steps on %s, batch %d x %d accumulated, run folder %s\n",
                (long long)cfg->train.steps, gvm_device_name(t.dev), cfg->data.batch_size, cfg->train.grad_accum,
                run_dir);
    }

    const double t0 = gvm_run_now();
    double t_log = t0;
    int64_t tokens_since_log = 0, first_step = t.step;
    while (t.step < cfg->train.steps) {
        double loss = NAN, lr = 0, norm = NAN;
        st = train_step(&t, &sched, &loss, &lr, &norm, &tokens_since_log);
        if (st != GVM_OK) break;  // the caller prints gvm_error_message()
        if (result) {
            result->steps_done = t.step;
            result->last_loss = loss;
        }
        if (opts->on_step) opts->on_step(opts->user, t.step, loss);
        const bool last = t.step == cfg->train.steps;
        const bool stop = opts->stop && *opts->stop;
        if (t.step % cfg->train.log_every == 0 || last || stop) {
            const double now = gvm_run_now();
            const double tok_s = now > t_log ? (double)tokens_since_log / (now - t_log) : 0;
            const double per_step = (now - t0) / (double)(t.step - first_step);
            write_metrics(mf, t.step, loss, lr, norm, tok_s, now - t0, gvm_loader_get_position(t.loader));
            if (!opts->quiet) {
                char eta[32];
                gvm_run_format_eta(eta, sizeof eta, per_step * (double)(cfg->train.steps - t.step));
                fprintf(t.log, "step %lld/%d  loss %.4f  lr %.3e  grad_norm %.3g  tok/s %.0f  eta %s\n",
                        (long long)t.step, cfg->train.steps, loss, lr, norm, tok_s, eta);
                fflush(t.log);
            }
            t_log = now;
            tokens_since_log = 0;
        }
        if (cfg->train.eval_every > 0 && (t.step % cfg->train.eval_every == 0 || last)) evaluate_now(&t, mf);
        const bool periodic = cfg->train.checkpoint_every > 0 && t.step % cfg->train.checkpoint_every == 0;
        if (periodic || last || stop) {
            if ((st = save_checkpoint(&t)) != GVM_OK) break;
        }
        if (stop && !last) {
            fprintf(t.log, "gvm train: stopped at step %lld; checkpoint written (resume with --resume %s)\n",
                    (long long)t.step, run_dir);
            if (result) result->stopped = true;
            break;
        }
    }
    // A run resumed at (or past) its last step still leaves a checkpoint of where it stands.
    if (st == GVM_OK && t.last_saved != t.step) st = save_checkpoint(&t);
    fclose(mf);
out:
    trainer_free(&t);
    return st;
}
