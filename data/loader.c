// loader.c: the batch loader (data/loader.h): the configuration, the run's shard list and clip index, the
// epoch order and rank sharding, the background thread filling the ring of batches, and the consumer side
// (next, release, position, stats). Batch assembly itself is in loader_batch.c.
#include "data/loader_internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/device.h"

struct gvm_loader {
    gvm_loader_config cfg;      // borrowed strings replaced by our copies below
    gvm_loader_shape shape;
    char *codec;
    char *feature_source;

    // The run's shards and clips, in shard order.
    int num_shards;
    char **paths;               // [num_shards]
    int64_t *shard_count;       // [num_shards] clips per shard (all of them, before clip_split)
    gvm_shard **open;           // [num_shards] open handles, NULL when closed; only the thread touches them after open
    uint64_t *last_use;         // [num_shards] for closing the least recently used
    int num_open, max_open;
    uint64_t tick;
    gvm_shard_info info;
    char *created_by;
    int64_t m;                  // clips in the run
    int32_t *clip_shard;        // [m]
    int64_t *clip_local;        // [m]
    int64_t batches_per_epoch;

    // The ring: prefetch + 1 slots (the consumer holds one while the thread fills the others).
    int num_slots;
    gvm_loader_slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cond_free, cond_ready;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;

    // The thread's state.
    int64_t *perm;              // [m] the permutation of perm_epoch
    int64_t perm_epoch;
    gvm_status err_status;      // the thread's error, under mu
    char err_msg[4096];

    // The batch in hand, whose rows the thread and its helpers (workers - 1 threads) fill together. The thread
    // resolves every row's clip and opens its shard first, so helpers only read clips and assemble rows.
    int num_helpers;
    pthread_t *helpers;
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv, done_cv;
    uint64_t job_gen;           // bumped for every batch, under job_mu
    int job_active;             // threads still on job_gen, under job_mu
    gvm_loader_slot *job_slot;
    atomic_llong job_next_row;  // rows are claimed in increasing order
    int64_t *row_clip;          // [B] the row's clip, -1: a padding row
    gvm_shard **row_handle;     // [B] its open shard
    int64_t job_err_row;        // the lowest failed row (INT64_MAX: none), under job_mu: the error reported
    gvm_status job_err;         // does not depend on how rows were spread over threads
    char job_msg[2048];
    atomic_bool job_stopped;

    // The consumer's state.
    uint64_t consumed;          // batches returned so far: the next one is slots[consumed % num_slots]
    gvm_loader_slot *held;
    gvm_loader_position next_pos;
    gvm_loader_stats stats;     // fill_seconds and clips_read are the thread's, under mu
};

gvm_loader_config gvm_loader_config_default(void) {
    return (gvm_loader_config){.shuffle = true, .world_size = 1, .prefetch = 2, .workers = 1, .max_open_shards = 64};
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static gvm_loader_position advance(gvm_loader_position p, int64_t per_epoch) {
    if (++p.batch >= per_epoch) {
        p.epoch++;
        p.batch = 0;
    }
    return p;
}

// ---- configuration ------------------------------------------------------------------------------------------------
static gvm_status check_config(const gvm_loader_config *c) {
    const unsigned known = GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES | GVM_CLIP_FEATURES;
    if (!c->shards && !c->folder)
        return gvm_error_set(GVM_ERR_INVALID, "loader: no shards: give a list of shard files or a folder and a split");
    if (c->shards && c->num_shards < 1)
        return gvm_error_set(GVM_ERR_INVALID, "loader: the shard list is empty (num_shards = %d)", c->num_shards);
    if (!c->shards && (!c->split || !*c->split || strchr(c->split, '/')))
        return gvm_error_set(GVM_ERR_INVALID, "loader: folder '%s' needs a split name such as \"train\" or \"eval\" "
                             "(the shards are <folder>/<split>-*.h5)", c->folder);
    if (c->batch_size < 1 || c->batch_size > (1 << 20))
        return gvm_error_set(GVM_ERR_INVALID, "loader: batch_size %lld (want 1 .. 1048576)", (long long)c->batch_size);
    if (c->parts == 0 || (c->parts & ~known))
        return gvm_error_set(GVM_ERR_INVALID, "loader: parts 0x%x: want a non-empty set of frames, audio, codes and features",
                             c->parts);
    if ((c->parts & GVM_CLIP_FEATURES) && (c->feature_tokens < 1 || c->feature_tokens > 100000 ||
                                           c->feature_dim < 1 || c->feature_dim > 100000))
        return gvm_error_set(GVM_ERR_INVALID, "loader: features of %lld tokens x %lld (want 1 .. 100000 each)",
                             (long long)c->feature_tokens, (long long)c->feature_dim);
    if ((c->parts & (GVM_CLIP_FRAMES | GVM_CLIP_FEATURES)) && (c->frames < 1 || c->frames > 100000))
        return gvm_error_set(GVM_ERR_INVALID, "loader: frames per clip %lld (want 1 .. 100000)", (long long)c->frames);
    if ((c->parts & GVM_CLIP_CODES) && (c->code_steps < 1 || c->code_steps > 10000000 || c->codebooks < 1 ||
                                        c->codebooks > 1024))
        return gvm_error_set(GVM_ERR_INVALID, "loader: codes of %d codebooks x %lld steps (want 1 .. 1024 codebooks, "
                             "1 .. 10^7 steps)", (int)c->codebooks, (long long)c->code_steps);
    if ((c->parts & GVM_CLIP_AUDIO) && (c->audio_samples < 1 || c->audio_samples > ((int64_t)1 << 32)))
        return gvm_error_set(GVM_ERR_INVALID, "loader: audio_samples %lld (want 1 .. 2^32)",
                             (long long)c->audio_samples);
    if (c->world_size < 1 || c->rank < 0 || c->rank >= c->world_size)
        return gvm_error_set(GVM_ERR_INVALID, "loader: rank %d of world size %d (want 0 <= rank < world size)",
                             c->rank, c->world_size);
    if (c->prefetch < 0 || c->prefetch > 64)
        return gvm_error_set(GVM_ERR_INVALID, "loader: prefetch %d (want 0 for the default, or 1 .. 64)", c->prefetch);
    if (c->workers < 0 || c->workers > 256)
        return gvm_error_set(GVM_ERR_INVALID, "loader: workers %d (want 1 .. 256, or 0 for 1)", c->workers);
    if (c->max_open_shards < 0)
        return gvm_error_set(GVM_ERR_INVALID, "loader: max_open_shards %d (want >= 1, or 0 for the default)",
                             c->max_open_shards);
    if (c->start.epoch < 0 || c->start.batch < 0)
        return gvm_error_set(GVM_ERR_INVALID, "loader: start position {epoch %lld, batch %lld} is negative",
                             (long long)c->start.epoch, (long long)c->start.batch);
    return GVM_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// "<folder>/<split>-*.h5", sorted by name (byte order: the same on every machine). "*.h5.tmp" (a shard being
// written) does not match.
static gvm_status list_folder(gvm_loader *l, const char *folder, const char *split) {
    DIR *d = opendir(folder);
    if (!d)
        return gvm_error_set(errno == ENOENT ? GVM_ERR_NOT_FOUND : GVM_ERR_IO, "%s: cannot open the dataset folder: "
                             "%s", folder, strerror(errno));
    size_t plen = strlen(split), cap = 0;
    gvm_status st = GVM_OK;
    struct dirent *e;
    while (st == GVM_OK && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < plen + 4 || strncmp(e->d_name, split, plen) != 0 || e->d_name[plen] != '-' ||
            strcmp(e->d_name + n - 3, ".h5") != 0)
            continue;
        if ((size_t)l->num_shards == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(l->paths, cap * sizeof *p);
            if (!p) {
                st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory listing shards", folder);
                break;
            }
            l->paths = p;
        }
        size_t len = strlen(folder) + 1 + n + 1;
        char *path = malloc(len);
        if (!path) {
            st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory listing shards", folder);
            break;
        }
        snprintf(path, len, "%s/%s", folder, e->d_name);
        l->paths[l->num_shards++] = path;
    }
    closedir(d);
    if (st != GVM_OK) return st;
    if (l->num_shards == 0)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no shard named %s-*.h5 in the folder (check the folder and the "
                             "split; `gvm prep` makes the shards)", folder, split);
    if (l->num_shards > INT32_MAX / 2)
        return gvm_error_set(GVM_ERR_INVALID, "%s: too many shards (%d)", folder, l->num_shards);
    qsort(l->paths, (size_t)l->num_shards, sizeof *l->paths, cmp_str);
    return GVM_OK;
}

static gvm_status list_shards(gvm_loader *l) {
    const gvm_loader_config *c = &l->cfg;
    if (!c->shards) return list_folder(l, c->folder, c->split);
    l->paths = calloc((size_t)c->num_shards, sizeof *l->paths);
    if (!l->paths) return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    for (int i = 0; i < c->num_shards; i++) {
        if (!c->shards[i]) return gvm_error_set(GVM_ERR_INVALID, "loader: shard %d of the list is NULL", i);
        if (!(l->paths[i] = strdup(c->shards[i]))) return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
        l->num_shards = i + 1;
    }
    return GVM_OK;
}

// ---- the shard handles ---------------------------------------------------------------------------------------------
// Shard i open, closing the least recently used one when max_open are open. The count must still be what the
// index was built from (a shard replaced under a running job would silently shift every clip).
static gvm_status shard_get(gvm_loader *l, int i, gvm_shard **out) {
    l->last_use[i] = ++l->tick;
    if (!l->open[i]) {
        if (l->num_open >= l->max_open) {
            int victim = -1;
            for (int k = 0; k < l->num_shards; k++)
                if (l->open[k] && (victim < 0 || l->last_use[k] < l->last_use[victim])) victim = k;
            gvm_shard_close(l->open[victim]);
            l->open[victim] = NULL;
            l->num_open--;
        }
        gvm_status st = gvm_shard_open(l->paths[i], &l->open[i]);
        if (st != GVM_OK) return st;
        l->num_open++;
        if (gvm_shard_clip_count(l->open[i]) != l->shard_count[i])
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the shard now has %lld clips, %lld when the loader opened it: it "
                                 "was replaced during the run; restart the run", l->paths[i],
                                 (long long)gvm_shard_clip_count(l->open[i]), (long long)l->shard_count[i]);
    }
    *out = l->open[i];
    return GVM_OK;
}

static bool same_info(const gvm_shard_info *a, const gvm_shard_info *b) {
    return a->frame_height == b->frame_height && a->frame_width == b->frame_width && a->fps == b->fps &&
           a->sample_rate == b->sample_rate;
}

// Open every shard once: count its clips, check it agrees with the first, and build the clip index.
static gvm_status build_index(gvm_loader *l) {
    int n = l->num_shards;
    l->shard_count = calloc((size_t)n, sizeof *l->shard_count);
    l->open = calloc((size_t)n, sizeof *l->open);
    l->last_use = calloc((size_t)n, sizeof *l->last_use);
    if (!l->shard_count || !l->open || !l->last_use) return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    int64_t cap = 0;
    for (int i = 0; i < n; i++) {
        gvm_shard *s = NULL;
        gvm_status st = gvm_shard_open(l->paths[i], &s);
        if (st != GVM_OK) return st;  // the reader's message names the file and what is wrong
        const gvm_shard_info *info = gvm_shard_get_info(s);
        if (i == 0) {
            l->info = *info;
            l->created_by = strdup(info->created_by ? info->created_by : "");
            l->info.created_by = l->created_by;
        } else if (!same_info(info, &l->info)) {
            gvm_status e = gvm_error_set(GVM_ERR_FORMAT, "%s: frames %dx%d at %g fps, audio at %d Hz, but %s has "
                                         "%dx%d at %g fps, %d Hz: one run's shards must agree (prepare them with one "
                                         "configuration)", l->paths[i], (int)info->frame_height, (int)info->frame_width,
                                         info->fps, (int)info->sample_rate, l->paths[0], (int)l->info.frame_height,
                                         (int)l->info.frame_width, l->info.fps, (int)l->info.sample_rate);
            gvm_shard_close(s);
            return e;
        }
        l->shard_count[i] = gvm_shard_clip_count(s);
        if (l->m + l->shard_count[i] > cap) {
            cap = 2 * (l->m + l->shard_count[i]) + 64;
            int32_t *cs = realloc(l->clip_shard, (size_t)cap * sizeof *cs);
            if (cs) l->clip_shard = cs;
            int64_t *cl = realloc(l->clip_local, (size_t)cap * sizeof *cl);
            if (cl) l->clip_local = cl;
            if (!cs || !cl) {
                gvm_shard_close(s);
                return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory indexing %s", l->paths[i]);
            }
        }
        for (int64_t k = 0; k < l->shard_count[i]; k++) {
            const char *split = gvm_shard_entry(s, k)->split;
            if (l->cfg.clip_split && strcmp(split, l->cfg.clip_split) != 0) continue;
            l->clip_shard[l->m] = i;
            l->clip_local[l->m] = k;
            l->m++;
        }
        if (l->num_open < l->max_open) {  // keep it for the thread
            l->open[i] = s;
            l->num_open++;
        } else {
            gvm_shard_close(s);
        }
    }
    if (l->m == 0)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s%s: no clips%s%s%s", l->paths[0], n > 1 ? " and the other shards" : "",
                             l->cfg.clip_split ? " with split '" : "", l->cfg.clip_split ? l->cfg.clip_split : "",
                             l->cfg.clip_split ? "'" : "");
    return GVM_OK;
}

// ---- the background thread ------------------------------------------------------------------------------------------
// Row `row` of the batch in hand: read its clip and assemble it, or pad.
static gvm_status fill_row(gvm_loader *l, gvm_loader_slot *slot, int64_t row) {
    const gvm_loader_shape *s = &l->shape;
    int64_t clip = l->row_clip[row];
    if (clip < 0) {  // past the end of the permutation (only without drop_last)
        gvm_loader_pad_row(slot, s, row);
        return GVM_OK;
    }
    int shard_i = l->clip_shard[clip];
    int64_t local = l->clip_local[clip];
    gvm_clip c;
    gvm_status st = gvm_shard_read_clip_parts(l->row_handle[row], local, s->parts, &c);
    if (st == GVM_OK) {
        char where[1400];
        snprintf(where, sizeof where, "%s: clip %lld (%s)", l->paths[shard_i], (long long)local, c.clip_id);
        st = gvm_loader_fill_row(slot, s, row, &c, where);
    }
    gvm_clip_free(&c);
    slot->clip[row] = clip;
    slot->shard[row] = shard_i;
    slot->shard_clip[row] = local;
    return st;
}

// Claim rows until none is left, on the loader's thread and on every helper.
static void run_rows(gvm_loader *l) {
    for (;;) {
        int64_t row = atomic_fetch_add(&l->job_next_row, 1);
        if (row >= l->shape.batch) return;
        if (atomic_load(&l->stop)) {
            atomic_store(&l->job_stopped, true);
            return;
        }
        pthread_mutex_lock(&l->job_mu);
        bool failed = l->job_err_row < row;  // rows are claimed in order: an earlier row's error wins anyway
        pthread_mutex_unlock(&l->job_mu);
        if (failed) return;
        gvm_status st = fill_row(l, l->job_slot, row);
        if (st != GVM_OK) {
            pthread_mutex_lock(&l->job_mu);
            if (row < l->job_err_row) {
                l->job_err_row = row;
                l->job_err = st;
                snprintf(l->job_msg, sizeof l->job_msg, "%s", gvm_error_message());
            }
            pthread_mutex_unlock(&l->job_mu);
        }
    }
}

static void *helper_main(void *arg) {
    gvm_loader *l = arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&l->job_mu);
        while (l->job_gen == seen && !atomic_load(&l->stop)) pthread_cond_wait(&l->job_cv, &l->job_mu);
        bool quit = l->job_gen == seen;  // stopped with no batch to help with (a started batch is joined first)
        seen = l->job_gen;
        pthread_mutex_unlock(&l->job_mu);
        if (quit) return NULL;
        run_rows(l);
        pthread_mutex_lock(&l->job_mu);
        if (--l->job_active == 0) pthread_cond_signal(&l->done_cv);
        pthread_mutex_unlock(&l->job_mu);
    }
}

// Fill `slot` with batch `pos` of this rank. Returns GVM_OK, an error, or GVM_OK with *stopped when close() asked.
static gvm_status fill_batch(gvm_loader *l, gvm_loader_slot *slot, gvm_loader_position pos, bool *stopped) {
    const gvm_loader_shape *s = &l->shape;
    int64_t n_ranks = l->cfg.world_size, rank = l->cfg.rank, count = 0;
    slot->position = pos;
    slot->count = 0;
    for (int64_t row = 0; row < s->batch; row++) {
        int64_t g = (pos.batch * s->batch + row) * n_ranks + rank;  // position in the epoch's permutation
        l->row_clip[row] = g < l->m ? l->perm[g] : -1;
        if (g >= l->m) continue;
        count++;  // valid rows come first: g grows with the row
        // max_open >= B, so opening this batch's shards never closes one of them again.
        gvm_status st = shard_get(l, l->clip_shard[l->row_clip[row]], &l->row_handle[row]);
        if (st != GVM_OK) return st;
    }
    pthread_mutex_lock(&l->job_mu);
    if (atomic_load(&l->stop)) {  // under job_mu: a helper that saw stop has quit and would never join this batch
        pthread_mutex_unlock(&l->job_mu);
        *stopped = true;
        return GVM_OK;
    }
    l->job_slot = slot;
    atomic_store(&l->job_next_row, 0);
    atomic_store(&l->job_stopped, false);
    l->job_err_row = INT64_MAX;
    l->job_active = l->num_helpers + 1;
    l->job_gen++;
    pthread_cond_broadcast(&l->job_cv);
    pthread_mutex_unlock(&l->job_mu);
    run_rows(l);
    pthread_mutex_lock(&l->job_mu);
    l->job_active--;
    while (l->job_active > 0) pthread_cond_wait(&l->done_cv, &l->job_mu);
    pthread_mutex_unlock(&l->job_mu);
    if (l->job_err_row != INT64_MAX) return gvm_error_set(l->job_err, "%s", l->job_msg);
    *stopped = atomic_load(&l->job_stopped);
    slot->count = count;
    return GVM_OK;
}

static void *thread_main(void *arg) {
    gvm_loader *l = arg;
    gvm_loader_position pos = l->next_pos;
    for (uint64_t seq = 0;; seq++) {
        gvm_loader_slot *slot = &l->slots[seq % (uint64_t)l->num_slots];
        pthread_mutex_lock(&l->mu);
        while (!atomic_load(&l->stop) && slot->state != GVM_SLOT_FREE) pthread_cond_wait(&l->cond_free, &l->mu);
        bool stop = atomic_load(&l->stop);
        if (!stop) slot->state = GVM_SLOT_FILLING;
        pthread_mutex_unlock(&l->mu);
        if (stop) break;

        double t0 = now_seconds();
        if (pos.epoch != l->perm_epoch) {
            gvm_loader_permutation(l->cfg.seed, pos.epoch, l->m, l->cfg.shuffle, l->perm);
            l->perm_epoch = pos.epoch;
        }
        bool stopped = false;
        gvm_status st = fill_batch(l, slot, pos, &stopped);
        double t1 = now_seconds();

        pthread_mutex_lock(&l->mu);
        l->stats.fill_seconds += t1 - t0;
        l->stats.clips_read += slot->count;
        if (st != GVM_OK) {
            l->err_status = st;
            snprintf(l->err_msg, sizeof l->err_msg, "loader (rank %d, epoch %lld, batch %lld): %s", l->cfg.rank,
                     (long long)pos.epoch, (long long)pos.batch, gvm_error_message());
            slot->state = GVM_SLOT_FAILED;
        } else {
            slot->state = stopped ? GVM_SLOT_FREE : GVM_SLOT_READY;
        }
        pthread_cond_broadcast(&l->cond_ready);
        pthread_mutex_unlock(&l->mu);
        if (st != GVM_OK || stopped) break;  // a failure is sticky: nothing after it is read
        pos = advance(pos, l->batches_per_epoch);
    }
    return NULL;
}

// ---- open and close -----------------------------------------------------------------------------------------------------
void gvm_loader_close(gvm_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, true);
    pthread_cond_broadcast(&l->cond_free);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&l->job_mu);
    pthread_cond_broadcast(&l->job_cv);
    pthread_mutex_unlock(&l->job_mu);
    if (l->thread_started) pthread_join(l->thread, NULL);
    for (int i = 0; i < l->num_helpers; i++) pthread_join(l->helpers[i], NULL);
    free(l->helpers);
    free(l->row_clip);
    free(l->row_handle);
    if (l->slots)
        for (int i = 0; i < l->num_slots; i++) gvm_loader_slot_free(&l->slots[i], &l->shape);
    free(l->slots);
    for (int i = 0; i < l->num_shards; i++) {
        if (l->open) gvm_shard_close(l->open[i]);
        free(l->paths[i]);
    }
    free(l->paths);
    free(l->open);
    free(l->last_use);
    free(l->shard_count);
    free(l->clip_shard);
    free(l->clip_local);
    free(l->perm);
    free(l->created_by);
    free(l->codec);
    free(l->feature_source);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond_free);
    pthread_cond_destroy(&l->cond_ready);
    pthread_mutex_destroy(&l->job_mu);
    pthread_cond_destroy(&l->job_cv);
    pthread_cond_destroy(&l->done_cv);
    free(l);
}

// An error when a setting makes a batch buffer absurd (an overflow, over 64 GiB).
static gvm_status check_sizes(const gvm_loader_shape *s) {
    int64_t frames = 0, codes = 0, audio = 0, features = 0, lim = (int64_t)64 << 30;
    bool over = false;
    if (s->parts & GVM_CLIP_FEATURES)
        over |= __builtin_mul_overflow(s->batch * s->frames * 4, s->feature_tokens * s->feature_dim, &features) ||
                features > lim;
    if (s->parts & GVM_CLIP_FRAMES)
        over |= __builtin_mul_overflow(s->batch * s->frames * 12, s->height * s->width, &frames) || frames > lim;
    if (s->parts & GVM_CLIP_CODES)
        over |= __builtin_mul_overflow(s->batch * 4, s->codebooks * s->code_steps, &codes) || codes > lim;
    if (s->parts & GVM_CLIP_AUDIO)
        over |= __builtin_mul_overflow(s->batch * 4, s->audio_samples, &audio) || audio > lim;
    if (over)
        return gvm_error_set(GVM_ERR_INVALID, "loader: a batch of %lld rows (%lld frames of %lldx%lld, %d x %lld codes, "
                             "%lld samples) needs a buffer over 64 GiB: lower batch_size or the lengths",
                             (long long)s->batch, (long long)s->frames, (long long)s->height, (long long)s->width,
                             (int)s->codebooks, (long long)s->code_steps, (long long)s->audio_samples);
    return GVM_OK;
}

gvm_status gvm_loader_open(const gvm_loader_config *config, gvm_loader **out) {
    *out = NULL;
    gvm_status st = check_config(config);
    if (st != GVM_OK) return st;
    gvm_loader *l = calloc(1, sizeof *l);
    if (!l) return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond_free, NULL);
    pthread_cond_init(&l->cond_ready, NULL);
    pthread_mutex_init(&l->job_mu, NULL);
    pthread_cond_init(&l->job_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    atomic_init(&l->stop, false);
    l->cfg = *config;  // its strings are the caller's: used while opening, copied where needed after
    l->max_open = config->max_open_shards ? config->max_open_shards : 64;
    if (l->max_open < config->batch_size) l->max_open = (int)config->batch_size;  // a batch's shards stay open
    l->num_slots = (config->prefetch ? config->prefetch : 2) + 1;
    l->perm_epoch = -1;

    // The run's shards and clips.
    st = list_shards(l);
    if (st == GVM_OK) st = build_index(l);
    l->cfg.shards = NULL;
    l->cfg.folder = l->cfg.split = l->cfg.clip_split = NULL;
    if (st == GVM_OK && config->codec && !(l->codec = strdup(config->codec)))
        st = gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    l->cfg.codec = l->codec;
    if (st == GVM_OK && config->feature_source && !(l->feature_source = strdup(config->feature_source)))
        st = gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    l->cfg.feature_source = l->feature_source;

    // The order: every rank the same number of batches per epoch.
    if (st == GVM_OK) {
        int64_t per_round = config->batch_size * config->world_size;
        l->batches_per_epoch = config->drop_last ? l->m / per_round : (l->m + per_round - 1) / per_round;
        if (l->batches_per_epoch == 0)
            st = gvm_error_set(GVM_ERR_INVALID, "loader: %lld clips are fewer than one batch of %lld on each of %d "
                               "ranks, and drop_last is set: add data, lower batch_size, or unset drop_last",
                               (long long)l->m, (long long)config->batch_size, config->world_size);
    }
    if (st == GVM_OK && config->start.batch > l->batches_per_epoch)
        st = gvm_error_set(GVM_ERR_INVALID, "loader: start position {epoch %lld, batch %lld}, but an epoch has %lld "
                           "batches: was the position saved by a run with other shards, batch size or rank count?",
                           (long long)config->start.epoch, (long long)config->start.batch,
                           (long long)l->batches_per_epoch);
    if (st == GVM_OK) {
        l->next_pos = config->start;
        if (l->next_pos.batch == l->batches_per_epoch) l->next_pos = (gvm_loader_position){l->next_pos.epoch + 1, 0};
        l->perm = malloc((size_t)l->m * sizeof *l->perm);
        if (!l->perm) st = gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory for %lld clips", (long long)l->m);
    }

    // The ring.
    l->shape = (gvm_loader_shape){.batch = config->batch_size, .parts = config->parts, .frames = config->frames,
                                  .height = l->info.frame_height, .width = l->info.frame_width,
                                  .code_steps = config->code_steps, .codebooks = config->codebooks,
                                  .code_pad = config->code_pad, .codec = l->codec,
                                  .audio_samples = config->audio_samples, .feature_tokens = config->feature_tokens,
                                  .feature_dim = config->feature_dim, .feature_source = l->feature_source,
                                  .pinned = false};
    if (st == GVM_OK) st = check_sizes(&l->shape);
    if (st == GVM_OK && config->pinned) {
        st = gvm_device_init(GVM_DEVICE_CUDA);
        if (st != GVM_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", gvm_error_message());
            st = gvm_error_set(st, "loader: pinned (page-locked) buffers need a usable CUDA device: %s; or open the "
                               "loader with pinned = false", why);
        }
        l->shape.pinned = st == GVM_OK;
    }
    if (st == GVM_OK) {
        l->slots = calloc((size_t)l->num_slots, sizeof *l->slots);
        if (!l->slots) st = gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    }
    for (int i = 0; st == GVM_OK && i < l->num_slots; i++) st = gvm_loader_slot_alloc(&l->slots[i], &l->shape);
    if (st == GVM_OK) {
        l->row_clip = calloc((size_t)config->batch_size, sizeof *l->row_clip);
        l->row_handle = calloc((size_t)config->batch_size, sizeof *l->row_handle);
        int helpers = (config->workers ? config->workers : 1) - 1;
        l->helpers = calloc((size_t)(helpers ? helpers : 1), sizeof *l->helpers);
        if (!l->row_clip || !l->row_handle || !l->helpers) st = gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory");
    }
    if (st == GVM_OK) {
        // The thread starts with every signal blocked, so SIGINT/SIGTERM reach the training loop's thread (its
        // handlers decide what to do) and never interrupt a read half-way.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = 0, helpers = (config->workers ? config->workers : 1) - 1;
        for (int i = 0; rc == 0 && i < helpers; i++)
            if ((rc = pthread_create(&l->helpers[i], NULL, helper_main, l)) == 0) l->num_helpers++;
        if (rc == 0) rc = pthread_create(&l->thread, NULL, thread_main, l);
        l->thread_started = rc == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) st = gvm_error_set(GVM_ERR_MEMORY, "loader: cannot start its threads: %s", strerror(rc));
    }
    if (st != GVM_OK) {
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", gvm_error_message());
        gvm_loader_close(l);
        return gvm_error_set(st, "%s", msg);
    }
    *out = l;
    return GVM_OK;
}

// ---- the consumer --------------------------------------------------------------------------------------------------------
void gvm_loader_release(gvm_loader *l) {
    if (!l->held) return;
    pthread_mutex_lock(&l->mu);
    l->held->state = GVM_SLOT_FREE;
    pthread_cond_signal(&l->cond_free);
    pthread_mutex_unlock(&l->mu);
    l->held = NULL;
}

gvm_status gvm_loader_next(gvm_loader *l, gvm_loader_batch *out) {
    memset(out, 0, sizeof *out);
    gvm_loader_release(l);
    gvm_loader_slot *slot = &l->slots[l->consumed % (uint64_t)l->num_slots];
    pthread_mutex_lock(&l->mu);
    if (slot->state != GVM_SLOT_READY && slot->state != GVM_SLOT_FAILED) {
        double t0 = now_seconds();
        while (slot->state != GVM_SLOT_READY && slot->state != GVM_SLOT_FAILED) pthread_cond_wait(&l->cond_ready, &l->mu);
        l->stats.wait_seconds += now_seconds() - t0;
    }
    if (slot->state == GVM_SLOT_FAILED) {
        gvm_status st = l->err_status;
        pthread_mutex_unlock(&l->mu);
        return gvm_error_set(st, "%s", l->err_msg);
    }
    pthread_mutex_unlock(&l->mu);
    GVM_CHECK(slot->position.epoch == l->next_pos.epoch && slot->position.batch == l->next_pos.batch,
              "loader: the ring is out of order");
    l->held = slot;
    l->consumed++;
    l->stats.batches++;
    l->next_pos = advance(l->next_pos, l->batches_per_epoch);
    *out = (gvm_loader_batch){.position = slot->position, .size = l->shape.batch, .count = slot->count,
                              .clip = slot->clip, .shard = slot->shard, .shard_clip = slot->shard_clip,
                              .frames = slot->frames, .features = slot->features, .frame_mask = slot->frame_mask, .frame_len = slot->frame_len,
                              .codes = slot->codes, .code_mask = slot->code_mask, .code_len = slot->code_len,
                              .audio = slot->audio, .audio_mask = slot->audio_mask, .audio_len = slot->audio_len};
    return GVM_OK;
}

gvm_loader_position gvm_loader_get_position(const gvm_loader *l) { return l->next_pos; }

gvm_loader_stats gvm_loader_get_stats(const gvm_loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    gvm_loader_stats s = l->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return s;
}

int64_t gvm_loader_clip_count(const gvm_loader *l) { return l->m; }
int64_t gvm_loader_batches_per_epoch(const gvm_loader *l) { return l->batches_per_epoch; }
int gvm_loader_shard_count(const gvm_loader *l) { return l->num_shards; }
const char *gvm_loader_shard_path(const gvm_loader *l, int shard) {
    return shard >= 0 && shard < l->num_shards ? l->paths[shard] : NULL;
}
const gvm_shard_info *gvm_loader_info(const gvm_loader *l) { return &l->info; }
