// prep_run.c: the `gvm prep` pipeline (data/prep.h): sources -> worker threads decoding them -> one writer
// committing them to shards in source order -> the journal.
//
// Threads. Workers take sources in order and decode them whole (prep_decode.c). The writer (the calling
// thread) writes source i only after sources 0..i-1, from a reorder buffer of decoded sources, so the shards
// are the same for any thread count. The buffer is bounded: a worker may start source i only when i is the
// one the writer waits for, or when i is within 2 x threads of it and the decoded media held stays under
// --max-memory-mb (each source's size estimated from its probed length). The writer alone calls the shard
// writer (HDF5 runs under the process-wide lock of data/dataset.h anyway).
//
// Shards. One open shard per split; a source's clips all go to the shard of its split, and a shard is
// committed (renamed from its temporary name, then recorded in the journal) once it passes --shard-mb,
// always between two sources. So committed shards hold whole sources, and a resumed run (which skips the
// sources of committed shards) writes the same shards as an uninterrupted one.
//
// Splits. A source's split is the manifest's when it gives one, else the hash rule (prep_split.c). Resuming
// checks that every source of the committed shards still has the split of its shard: a manifest whose split
// column changed since would otherwise leave the folder with that source's old clips in one split and, after
// --force elsewhere, its new ones in the other; it is refused like changed options (--force starts over).
//
// Stopping. When *opts->stop becomes non-zero (a signal), the writer stops taking sources, discards the
// shards in progress (their temporary files are removed), keeps the committed ones, and waits for the
// workers to finish the file each is decoding.
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset_internal.h"
#include "data/prep_internal.h"
#include "data/progress.h"

void gvm_prep_options_default(gvm_prep_options *o) {
    memset(o, 0, sizeof *o);
    o->clip_seconds = 30;
    o->hop_seconds = 0;  // = clip_seconds
    o->fps = 1;
    o->size = 336;
    o->sample_rate = 32000;
    o->shard_mb = 1024;
    o->eval_fraction = 0.1;
    o->min_clip_seconds = 0;  // = clip_seconds / 2
    o->threads = 0;
    o->max_memory_mb = 2048;
    o->progress_interval = 5;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cpus_available(void) {
    cpu_set_t set;  // the CPUs this process may run on (a Slurm or cgroup allotment), not the machine's
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

typedef struct slot {
    prep_result res;
    int64_t est;  // bytes reserved for it in the reorder buffer
    bool ready;
} slot;

typedef struct run {
    const gvm_prep_options *o;
    prep_params par;
    const gvm_prep_source_list *sources;
    int64_t *pending;  // [n_pending] indices of the sources this run decodes, in source order
    int64_t n_pending;
    slot *slots;       // [n_pending]

    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_write;
    int64_t next_take, head;  // next pending index to start / to write
    int64_t mem_used, mem_budget, window;
    bool stop;

    prep_journal j;
    gvm_shard_writer *w[2];  // the shard in progress of each split (NULL: none)
    char shard_name[2][64];
    int64_t shard_bytes[2], shard_clips[2];
    char **shard_src[2];     // names of the sources in the shard in progress
    int64_t n_shard_src[2], cap_shard_src[2];
    double shard_limit;      // bytes

    gvm_prep_summary *sum;
    gvm_progress *prog;
    double total_work, done_work, t0;
} run;

// ---- workers ------------------------------------------------------------------------------------------------------
static void *worker_main(void *arg) {
    run *r = arg;
    sigset_t block;  // signals go to the writer's thread, which polls the stop flag
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->next_take < r->n_pending) {
        int64_t i = r->next_take++;
        pthread_mutex_unlock(&r->mu);
        const gvm_prep_source *src = &r->sources->items[r->pending[i]];
        gvm_media_info info;
        char *probe_error = NULL;
        if (prep_probe(src, &info) != GVM_OK) probe_error = strdup(gvm_error_message());
        int64_t est = probe_error ? 0 : prep_estimate_bytes(&r->par, info.duration_s);
        pthread_mutex_lock(&r->mu);
        while (!r->stop && !(i == r->head || (i < r->head + r->window && r->mem_used + est <= r->mem_budget)))
            pthread_cond_wait(&r->cv_work, &r->mu);
        if (r->stop) {
            free(probe_error);
            break;
        }
        r->mem_used += est;
        pthread_mutex_unlock(&r->mu);
        prep_result res;
        if (probe_error) {
            memset(&res, 0, sizeof res);
            res.error = probe_error;
        } else {
            prep_decode(src, &r->par, &info, &res);
        }
        pthread_mutex_lock(&r->mu);
        r->slots[i].res = res;
        r->slots[i].est = est;
        r->slots[i].ready = true;
        pthread_cond_broadcast(&r->cv_write);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

// ---- the writer ----------------------------------------------------------------------------------------------------
static bool stop_requested(const run *r) { return r->o->stop && *r->o->stop; }

static void add_failure(gvm_prep_summary *s, const char *source, const char *reason) {
    gvm_prep_failure *f = realloc(s->failures, (size_t)(s->n_failures + 1) * sizeof *f);
    if (!f) return;
    s->failures = f;
    f[s->n_failures].source = strdup(source);
    f[s->n_failures].reason = strdup(reason);
    if (f[s->n_failures].source && f[s->n_failures].reason) s->n_failures++;
    else free(f[s->n_failures].source), free(f[s->n_failures].reason);
}

static void status_text(const run *r, char *buf, size_t size) {
    const gvm_prep_summary *s = r->sum;
    double t = now_s() - r->t0;
    int64_t handled = s->sources_done + s->sources_short + s->sources_failed;
    snprintf(buf, size, "%lld/%lld sources, %.2f h of media, %.1fx realtime", (long long)handled,
             (long long)r->n_pending, s->media_seconds / 3600, t > 0 ? s->media_seconds / t : 0.0);
}

static void show_progress(run *r, bool force) {
    if (!r->prog) return;
    char status[256];
    status_text(r, status, sizeof status);
    gvm_progress_update(r->prog, r->done_work, status, force);
}

static gvm_status commit_shard(run *r, int s) {
    gvm_status st = gvm_shard_writer_close(r->w[s], true);
    r->w[s] = NULL;
    if (st == GVM_OK)
        st = prep_journal_commit(&r->j, s, r->shard_name[s], r->shard_clips[s], r->shard_src[s], r->n_shard_src[s]);
    if (st != GVM_OK) return st;
    r->j.next_shard[s]++;
    r->sum->shards[s]++;
    for (int64_t i = 0; i < r->n_shard_src[s]; i++) free(r->shard_src[s][i]);
    r->n_shard_src[s] = 0;
    r->shard_bytes[s] = r->shard_clips[s] = 0;
    return GVM_OK;
}

static gvm_status write_source(run *r, const gvm_prep_source *src, const prep_result *res) {
    gvm_prep_summary *sum = r->sum;
    if (res->error) {
        sum->sources_failed++;
        add_failure(sum, src->name, res->error);
        prep_journal_note(&r->j, "failed", src->name, res->error);
        if (!r->o->quiet) gvm_progress_print(r->prog, "gvm prep: skipped %s: %s", src->name, res->error);
        return GVM_OK;
    }
    sum->media_seconds += res->media_seconds;
    if (res->n_clips == 0) {
        sum->sources_short++;
        char why[200];
        snprintf(why, sizeof why, "%.2f s long, shorter than one clip (--min-clip-seconds %g)", res->media_seconds,
                 r->par.min_clip);
        prep_journal_note(&r->j, "no_clips", src->name, why);
        if (!r->o->quiet) gvm_progress_print(r->prog, "gvm prep: no clip from %s: %s", src->name, why);
        return GVM_OK;
    }
    int s = res->split;
    gvm_status st = GVM_OK;
    if (!r->w[s]) {
        prep_shard_name(s, r->j.next_shard[s], r->shard_name[s], sizeof r->shard_name[s]);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", r->o->out_dir, r->shard_name[s]);
        gvm_shard_info info = {.frame_height = r->par.size, .frame_width = r->par.size, .fps = r->par.fps,
                               .sample_rate = r->par.rate, .created_by = "gvm " GVM_VERSION " prep"};
        st = gvm_shard_create(path, &info, &r->w[s]);
        if (st != GVM_OK) return st;
    }
    for (int64_t i = 0; i < res->n_clips && st == GVM_OK; i++) st = gvm_shard_add_clip(r->w[s], &res->clips[i]);
    if (st != GVM_OK) return st;  // a clip we made does not fit, or the disk is full: the run cannot go on
    if (r->n_shard_src[s] == r->cap_shard_src[s]) {
        int64_t cap = r->cap_shard_src[s] ? 2 * r->cap_shard_src[s] : 64;
        char **v = realloc(r->shard_src[s], (size_t)cap * sizeof *v);
        if (!v) return gvm_error_set(GVM_ERR_MEMORY, "out of memory");
        r->shard_src[s] = v;
        r->cap_shard_src[s] = cap;
    }
    if (!(r->shard_src[s][r->n_shard_src[s]] = strdup(src->name))) return gvm_error_set(GVM_ERR_MEMORY, "out of memory");
    r->n_shard_src[s]++;
    r->shard_bytes[s] += res->bytes;
    r->shard_clips[s] += res->n_clips;
    sum->clips[s] += res->n_clips;
    sum->sources_done++;
    if ((double)r->shard_bytes[s] >= r->shard_limit) st = commit_shard(r, s);
    return st;
}

// Write every pending source in order. Returns an error that stops the run; sets sum->interrupted on a stop.
static gvm_status writer_loop(run *r) {
    gvm_status st = GVM_OK;
    while (r->head < r->n_pending) {
        pthread_mutex_lock(&r->mu);
        while (!r->slots[r->head].ready && !stop_requested(r)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000 * 1000;  // wake up to notice a signal and to keep the ETA moving
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&r->cv_write, &r->mu, &ts);
            show_progress(r, false);
        }
        pthread_mutex_unlock(&r->mu);
        if (stop_requested(r)) {
            r->sum->interrupted = (int)*r->o->stop;
            break;
        }
        const gvm_prep_source *src = &r->sources->items[r->pending[r->head]];
        slot *sl = &r->slots[r->head];
        st = write_source(r, src, &sl->res);
        prep_result_free(&sl->res);
        r->done_work += r->total_work > 0 ? (double)src->bytes : 1.0;  // bytes of input, or sources when unknown
        pthread_mutex_lock(&r->mu);
        r->mem_used -= sl->est;
        r->head++;
        pthread_cond_broadcast(&r->cv_work);
        pthread_mutex_unlock(&r->mu);
        show_progress(r, false);
        if (st != GVM_OK) break;
    }
    return st;
}

// ---- the run -------------------------------------------------------------------------------------------------------
static gvm_status check_options(const gvm_prep_options *o, prep_params *p) {
    if (!o->input || !o->input[0]) return gvm_error_set(GVM_ERR_INVALID, "no input: give --input FOLDER or MANIFEST");
    if (!o->out_dir || !o->out_dir[0]) return gvm_error_set(GVM_ERR_INVALID, "no output folder: give --out FOLDER");
#define RANGE(ok, what) \
    if (!(ok)) return gvm_error_set(GVM_ERR_INVALID, "%s", what)
    RANGE(o->clip_seconds > 0 && o->clip_seconds <= 86400, "--clip-seconds must be in (0, 86400]");
    RANGE(o->hop_seconds >= 0 && o->hop_seconds <= 86400, "--hop-seconds must be in (0, 86400]");
    RANGE(o->fps > 0 && o->fps <= 1000, "--fps must be in (0, 1000]");
    RANGE(o->size >= 1 && o->size <= 8192, "--size must be in [1, 8192]");
    RANGE(o->sample_rate >= 1000 && o->sample_rate <= 384000, "--sample-rate must be in [1000, 384000]");
    RANGE(o->shard_mb > 0 && o->shard_mb <= 1e7, "--shard-mb must be in (0, 10000000]");
    RANGE(o->eval_fraction >= 0 && o->eval_fraction <= 1, "--eval-fraction must be in [0, 1]");
    RANGE(o->min_clip_seconds <= o->clip_seconds, "--min-clip-seconds must not exceed --clip-seconds");
    RANGE(o->threads >= 0 && o->threads <= 1024, "--threads must be in [0, 1024] (0: one per CPU)");
    RANGE(o->max_memory_mb >= 0 && o->max_memory_mb <= 1e9, "--max-memory-mb must be positive");
#undef RANGE
    if (o->style && !gvm_ds_utf8_valid(o->style)) return gvm_error_set(GVM_ERR_INVALID, "--style is not valid UTF-8");
    p->clip = o->clip_seconds;
    p->hop = o->hop_seconds > 0 ? o->hop_seconds : o->clip_seconds;
    p->fps = o->fps;
    p->size = o->size;
    p->rate = o->sample_rate;
    p->min_clip = o->min_clip_seconds > 0 ? o->min_clip_seconds : o->clip_seconds / 2;
    p->eval_fraction = o->eval_fraction;
    p->style = o->style ? o->style : "";
    p->stop = o->stop;
    return GVM_OK;
}

// The settings that shape the shards, by their command-line names: a resumed run must use the same ones.
static cJSON *options_json(const gvm_prep_options *o, const prep_params *p) {
    char *real = realpath(o->input, NULL);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "input", real ? real : o->input);
    free(real);
    cJSON_AddNumberToObject(j, "clip-seconds", p->clip);
    cJSON_AddNumberToObject(j, "hop-seconds", p->hop);
    cJSON_AddNumberToObject(j, "fps", p->fps);
    cJSON_AddNumberToObject(j, "size", p->size);
    cJSON_AddNumberToObject(j, "sample-rate", p->rate);
    cJSON_AddNumberToObject(j, "shard-mb", o->shard_mb);
    cJSON_AddNumberToObject(j, "eval-fraction", p->eval_fraction);
    cJSON_AddNumberToObject(j, "min-clip-seconds", p->min_clip);
    cJSON_AddStringToObject(j, "style", p->style);
    return j;
}

// The sources the folder's committed shards hold in another split than this run would give them: an error
// naming the first one (manifest order) and how many there are; GVM_OK when there are none.
static gvm_status check_resumed_splits(const run *r) {
    const gvm_prep_source_list *l = r->sources;
    int64_t changed = 0, first = -1;
    int was = -1;
    for (int64_t i = 0; i < l->n; i++) {
        int old = prep_journal_split_of(&r->j, l->items[i].name);
        if (old < 0 || old == gvm_prep_source_split(&l->items[i], r->par.eval_fraction)) continue;
        if (changed++ == 0) first = i, was = old;
    }
    if (!changed) return GVM_OK;
    const gvm_prep_source *src = &l->items[first];
    char where[4200] = "", more[96] = "";
    if (src->line > 0) snprintf(where, sizeof where, "%s:%lld: ", r->o->input, (long long)src->line);
    if (changed > 1) snprintf(more, sizeof more, " (and %lld more sources changed split)", (long long)(changed - 1));
    return gvm_error_set(GVM_ERR_INVALID, "%s'%s' is now in %s (%s), but %s holds its clips in %s shards made by an "
                         "earlier run%s. Give it its split of that run, add --force to delete the folder's shards and "
                         "start over, or choose another --out folder", where, src->name,
                         prep_split_name(1 - was), src->split == GVM_PREP_SPLIT_HASH ? "by the hash rule" :
                         "as the manifest says", r->o->out_dir, prep_split_name(was), more);
}

static gvm_status run_pipeline(run *r) {
    const gvm_prep_options *o = r->o;
    int threads = o->threads > 0 ? o->threads : cpus_available();
    if (threads > r->n_pending) threads = (int)(r->n_pending > 0 ? r->n_pending : 1);
    r->sum->threads = threads;
    int cpus = cpus_available();
    r->sum->cores = threads < cpus ? threads : cpus;
    r->window = 2 * (int64_t)threads;
    r->mem_budget = (int64_t)((o->max_memory_mb > 0 ? o->max_memory_mb : 2048) * 1048576.0);
    r->shard_limit = o->shard_mb * 1048576.0;
    r->slots = calloc((size_t)r->n_pending, sizeof *r->slots);
    if (!r->slots) return gvm_error_set(GVM_ERR_MEMORY, "out of memory");
    for (int64_t i = 0; i < r->n_pending; i++) r->total_work += (double)r->sources->items[r->pending[i]].bytes;
    if (!(r->total_work > 0)) r->total_work = 0;
    gvm_progress_mode mode = o->quiet ? GVM_PROGRESS_OFF
                             : o->progress == 1 ? GVM_PROGRESS_BAR
                             : o->progress == 2 ? GVM_PROGRESS_LINES
                                                : GVM_PROGRESS_AUTO;
    r->prog = gvm_progress_start(stderr, mode, "gvm prep", r->total_work > 0 ? r->total_work : (double)r->n_pending,
                                 o->progress_interval);

    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv_work, NULL);
    pthread_cond_init(&r->cv_write, NULL);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    int started = 0;
    gvm_status st = tids ? GVM_OK : gvm_error_set(GVM_ERR_MEMORY, "out of memory");
    for (int t = 0; st == GVM_OK && t < threads; t++) {
        if (pthread_create(&tids[t], NULL, worker_main, r) != 0) {
            if (started == 0) st = gvm_error_set(GVM_ERR_MEMORY, "cannot start a decoding thread: %s", strerror(errno));
            break;
        }
        started++;
    }
    if (st == GVM_OK) st = writer_loop(r);
    char saved[2048] = "";
    if (st != GVM_OK) snprintf(saved, sizeof saved, "%s", gvm_error_message());

    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv_work);
    pthread_mutex_unlock(&r->mu);
    bool finished = st == GVM_OK && !r->sum->interrupted;
    for (int s = 0; s < 2; s++) {  // discard shards in progress first: the wait below may be long
        if (finished && r->w[s]) {
            gvm_status cst = commit_shard(r, s);
            if (cst != GVM_OK && st == GVM_OK) {
                st = cst;
                snprintf(saved, sizeof saved, "%s", gvm_error_message());
            }
        }
        if (r->w[s]) gvm_shard_writer_close(r->w[s], false);
        r->w[s] = NULL;
    }
    if (r->sum->interrupted && !o->quiet)
        gvm_progress_print(r->prog, "gvm prep: stopping: the shard in progress was discarded; waiting for the "
                           "decoding threads to finish their current file");
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    free(tids);
    if (st == GVM_OK && !r->sum->interrupted) {
        st = prep_journal_finish(&r->j, r->sum->sources_total, r->sum->sources_failed);
        if (st != GVM_OK) snprintf(saved, sizeof saved, "%s", gvm_error_message());
    }
    if (r->prog) {
        show_progress(r, false);  // gvm_progress_end draws the final state
        gvm_progress_end(r->prog);
        r->prog = NULL;
    }
    for (int64_t i = 0; i < r->n_pending; i++) prep_result_free(&r->slots[i].res);
    free(r->slots);
    pthread_cond_destroy(&r->cv_write);
    pthread_cond_destroy(&r->cv_work);
    pthread_mutex_destroy(&r->mu);
    return st == GVM_OK ? GVM_OK : gvm_error_set(st, "%s", saved);
}

gvm_status gvm_prep_run(const gvm_prep_options *o, gvm_prep_summary *sum) {
    memset(sum, 0, sizeof *sum);
    double t0 = now_s();
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.sum = sum;
    r.t0 = t0;
    r.j.fd = -1;
    gvm_status st = check_options(o, &r.par);
    gvm_prep_source_list sources = {0};
    if (st == GVM_OK) st = gvm_prep_sources_load(o->input, &sources);
    r.sources = &sources;
    sum->sources_total = sources.n;
    cJSON *opts_json = st == GVM_OK ? options_json(o, &r.par) : NULL;
    if (st == GVM_OK) st = prep_journal_open(&r.j, o->out_dir, opts_json, o->force);
    if (st == GVM_OK && r.j.resumed && check_resumed_splits(&r) != GVM_OK)
        st = o->force ? prep_journal_restart(&r.j, opts_json) : GVM_ERR_INVALID;  // the message is set
    cJSON_Delete(opts_json);
    if (st == GVM_OK) {
        sum->resumed = r.j.resumed;
        r.pending = malloc((size_t)(sources.n ? sources.n : 1) * sizeof *r.pending);
        if (!r.pending) st = gvm_error_set(GVM_ERR_MEMORY, "out of memory");
        for (int64_t i = 0; st == GVM_OK && i < sources.n; i++) {
            if (prep_keyset_has(&r.j.done, sources.items[i].name)) sum->sources_previous++;
            else r.pending[r.n_pending++] = i;
        }
    }
    if (st == GVM_OK && r.n_pending == 0) {
        sum->nothing_to_do = true;
    } else if (st == GVM_OK) {
        if (!o->quiet) {
            char removed[96] = "";
            if (r.j.removed) snprintf(removed, sizeof removed, "; removed %lld unfinished shard file%s",
                                      (long long)r.j.removed, r.j.removed == 1 ? "" : "s");
            if (r.j.resumed)
                fprintf(stderr, "gvm prep: resuming %s: %lld of %lld sources already in %lld shards%s\n", o->out_dir,
                        (long long)sum->sources_previous, (long long)sources.n,
                        (long long)(r.j.shards[0] + r.j.shards[1]), removed);
            else
                fprintf(stderr, "gvm prep: %lld sources from %s -> %s\n", (long long)sources.n, o->input, o->out_dir);
        }
        st = run_pipeline(&r);
    }
    char saved[2048] = "";
    if (st != GVM_OK) snprintf(saved, sizeof saved, "%s", gvm_error_message());
    for (int s = 0; s < 2; s++) {
        for (int64_t i = 0; i < r.n_shard_src[s]; i++) free(r.shard_src[s][i]);
        free(r.shard_src[s]);
    }
    if (r.j.path) prep_journal_close(&r.j);
    free(r.pending);
    gvm_prep_sources_free(&sources);
    sum->wall_seconds = now_s() - t0;
    if (sum->cores > 0 && sum->wall_seconds > 0)
        sum->realtime_per_core = sum->media_seconds / sum->wall_seconds / sum->cores;
    return st == GVM_OK ? GVM_OK : gvm_error_set(st, "%s", saved);
}

void gvm_prep_summary_free(gvm_prep_summary *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_failures; i++) {
        free(s->failures[i].source);
        free(s->failures[i].reason);
    }
    free(s->failures);
    memset(s, 0, sizeof *s);
}

void gvm_prep_summary_print(const gvm_prep_summary *s, const gvm_prep_options *o, FILE *out) {
    if (s->nothing_to_do) {
        fprintf(out, "gvm prep: nothing to do: all %lld sources of %s are already in the shards of %s\n",
                (long long)s->sources_total, o->input, o->out_dir);
        return;
    }
    char wall[32];
    if (s->wall_seconds < 60) snprintf(wall, sizeof wall, "%.1fs", s->wall_seconds);
    else gvm_progress_format_duration(s->wall_seconds, wall, sizeof wall);
    if (s->interrupted)
        fprintf(out, "gvm prep: interrupted by %s after %s (%s)\n",
                s->interrupted == SIGINT ? "SIGINT" : s->interrupted == SIGTERM ? "SIGTERM" : "a signal", wall,
                o->out_dir);
    else fprintf(out, "gvm prep: finished in %s (%s)\n", wall, o->out_dir);
    fprintf(out, "  sources: %lld written, %lld failed, %lld too short for a clip, %lld already in shards (of %lld)\n",
            (long long)s->sources_done, (long long)s->sources_failed, (long long)s->sources_short,
            (long long)s->sources_previous, (long long)s->sources_total);
    fprintf(out, "  clips:   train %lld in %lld shard%s, eval %lld in %lld shard%s (this run)\n", (long long)s->clips[0],
            (long long)s->shards[0], s->shards[0] == 1 ? "" : "s", (long long)s->clips[1], (long long)s->shards[1],
            s->shards[1] == 1 ? "" : "s");
    fprintf(out, "  media:   %.2f h decoded, %.1fx realtime per core (%d thread%s on %d core%s)\n",
            s->media_seconds / 3600, s->realtime_per_core, s->threads, s->threads == 1 ? "" : "s", s->cores,
            s->cores == 1 ? "" : "s");
    if (s->n_failures) {
        fprintf(out, "  failed sources (skipped; listed in %s/%s):\n", o->out_dir, GVM_PREP_STATE_FILE);
        for (int64_t i = 0; i < s->n_failures && i < 20; i++)
            fprintf(out, "    %s: %s\n", s->failures[i].source, s->failures[i].reason);
        if (s->n_failures > 20) fprintf(out, "    ... and %lld more\n", (long long)(s->n_failures - 20));
    }
}
