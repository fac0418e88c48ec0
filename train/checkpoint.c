// checkpoint.c: crash-safe checkpoints of a training run (layout, protocol and keys: checkpoint.h).
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/device.h"
#include "core/safetensors.h"

#define NAME_FMT "ckpt-%012" PRId64

gvm_checkpoint_opts gvm_checkpoint_opts_default(void) {
    return (gvm_checkpoint_opts){.keep_last = 0, .slot_m = 0, .slot_v = 1, .slot_ema = 2, .weights_only = false};
}

uint64_t gvm_checkpoint_hash(uint64_t h, const void *data, size_t nbytes) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);  // little-endian hosts only (as the safetensors code)
        h = (h ^ w) * 0x100000001b3ull;
    }
    if (i < nbytes) {
        uint64_t w = 0;
        memcpy(&w, p + i, nbytes - i);
        h = (h ^ w) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

// ---- small file-system helpers -----------------------------------------------------------------------------
static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = GVM_MALLOC(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static gvm_status fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gvm_error_set(GVM_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL)  // some file systems cannot sync a folder; nothing more to do there
        return gvm_error_set(GVM_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return GVM_OK;
}

static gvm_status make_dirs(const char *path) {
    char *p = strdup(path);
    gvm_status st = GVM_OK;
    for (char *s = p + 1; st == GVM_OK; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                st = gvm_error_set(GVM_ERR_IO, "%s: cannot create the folder: %s", p, strerror(errno));
            if (end) break;
            *s = '/';
        }
    }
    free(p);
    return st;
}

// Delete a folder and what is in it (checkpoint folders hold plain files; nested folders are followed too).
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = path_join(path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// Step of a complete checkpoint folder name "ckpt-<digits>" (nothing after), else -1.
static int64_t parse_ckpt_name(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0 || !name[5]) return -1;
    int64_t v = 0;
    for (const char *s = name + 5; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// Steps of the complete checkpoints in run_dir, highest first (*n of them; caller frees).
static int64_t *list_checkpoints(const char *run_dir, int *n) {
    *n = 0;
    DIR *d = opendir(run_dir);
    if (!d) return NULL;
    int cap = 16;
    int64_t *steps = GVM_MALLOC(cap * sizeof *steps);
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = parse_ckpt_name(e->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap *= 2;
            steps = realloc(steps, cap * sizeof *steps);
            GVM_CHECK(steps, "out of memory");
        }
        steps[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++)  // insertion sort, descending: a run keeps a handful
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            int64_t t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return steps;
}

// Metadata covered by the checksum, in the order they are hashed (after the tensors); "config" and the
// run's position must not change silently any more than the weights.
static const char *const k_model_keys[] = {"format", "gvm_version", "step", "optim_step", "config", "rng_seed",
                                           "rng_offset", "data_epoch", "data_batch", "loss_scale",
                                           "loss_scale_growth_factor", "loss_scale_backoff_factor",
                                           "loss_scale_growth_interval", "loss_scale_growth_tracker", "files", NULL};
static const char *const k_part_keys[] = {"format", "step", NULL};

static uint64_t hash_str(uint64_t h, const char *key, const char *value) {
    h = gvm_checkpoint_hash(h, key, strlen(key) + 1);  // the terminators separate key from value
    return gvm_checkpoint_hash(h, value, strlen(value) + 1);
}

// ---- save ----------------------------------------------------------------------------------------------------
typedef struct block_ref {
    const float *data;  // [ps->total] on ps->device
    const char *prefix; // tensor names are prefix + parameter name
} block_ref;

// One safetensors file of n_blocks blocks (all parameters of each), plus metadata pairs and the checksum.
static gvm_status write_blocks(const char *path, const gvm_param_store *ps, const block_ref *blocks, int n_blocks,
                               const char *const *metadata) {
    float *host[2] = {NULL, NULL};
    gvm_st_writer *w = gvm_st_writer_new();
    uint64_t h = GVM_CHECKPOINT_HASH_SEED;
    char name[1024];
    for (int b = 0; b < n_blocks; b++) {
        const float *src = blocks[b].data;
        if (ps->device != GVM_DEVICE_CPU) {  // one host copy per block, alive until the write
            host[b] = GVM_MALLOC((ps->total ? ps->total : 1) * sizeof(float));
            gvm_device_copy(host[b], GVM_DEVICE_CPU, src, ps->device, ps->total * sizeof(float));
            src = host[b];
        }
        for (int i = 0; i < ps->n_params; i++) {
            const gvm_tensor *t = ps->params[i];
            snprintf(name, sizeof name, "%s%s", blocks[b].prefix, t->name);
            gvm_st_writer_add(w, name, GVM_F32, t->ndim, t->shape, src + ps->offsets[i]);
            h = gvm_checkpoint_hash(h, src + ps->offsets[i], (size_t)t->numel * sizeof(float));
        }
    }
    for (int i = 0; metadata[i]; i += 2) {
        gvm_st_writer_add_metadata(w, metadata[i], metadata[i + 1]);
        h = hash_str(h, metadata[i], metadata[i + 1]);
    }
    char sum[32];
    snprintf(sum, sizeof sum, "%016" PRIx64, h);
    gvm_st_writer_add_metadata(w, "checksum", sum);
    gvm_status st = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    free(host[0]);
    free(host[1]);
    return st;
}

// Replace run_dir/latest with "name\n" atomically.
static gvm_status write_latest(const char *run_dir, const char *name) {
    char *final = path_join(run_dir, "latest");
    size_t n = strlen(final) + 32;
    char *tmp = GVM_MALLOC(n);
    snprintf(tmp, n, "%s.tmp.%ld", final, (long)getpid());
    gvm_status st = GVM_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        char line[256];
        int len = snprintf(line, sizeof line, "%s\n", name);
        if (write(fd, line, (size_t)len) != len) st = gvm_error_set(GVM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        if (st == GVM_OK && fsync(fd) != 0) st = gvm_error_set(GVM_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        if (close(fd) != 0 && st == GVM_OK) st = gvm_error_set(GVM_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        if (st == GVM_OK && rename(tmp, final) != 0)
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        if (st != GVM_OK) unlink(tmp);
    }
    if (st == GVM_OK) st = fsync_path(run_dir);
    free(tmp);
    free(final);
    return st;
}

// After a successful save: delete leftovers of crashed saves (temp and replaced folders) and the complete
// checkpoints beyond keep_last, never the one just written.
static void prune(const char *run_dir, int64_t saved_step, int keep_last) {
    DIR *d = opendir(run_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "ckpt-", 5) != 0 || parse_ckpt_name(e->d_name) >= 0) continue;
            if (!strstr(e->d_name, ".tmp.") && !strstr(e->d_name, ".old.")) continue;
            char *p = path_join(run_dir, e->d_name);
            remove_tree(p);
            free(p);
        }
        closedir(d);
    }
    if (keep_last <= 0) return;
    int n;
    int64_t *steps = list_checkpoints(run_dir, &n);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (steps[i] == saved_step || kept < keep_last - 1) {
            kept += steps[i] != saved_step;
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, NAME_FMT, steps[i]);
        char *p = path_join(run_dir, name);
        remove_tree(p);
        free(p);
    }
    free(steps);
}

gvm_status gvm_checkpoint_save(const char *run_dir, const gvm_param_store *ps, const gvm_checkpoint_state *state,
                               const gvm_checkpoint_opts *opts) {
    GVM_CHECK(ps->finalized, "checkpoint of a parameter store before finalize");
    gvm_checkpoint_opts o = opts ? *opts : gvm_checkpoint_opts_default();
    if (state->step < 0) return gvm_error_set(GVM_ERR_INVALID, "checkpoint step %" PRId64 ": must be >= 0", state->step);
    bool has_optim = o.slot_m >= 0 && o.slot_v >= 0 && o.slot_m < GVM_PARAM_MAX_STATES &&
                     o.slot_v < GVM_PARAM_MAX_STATES && ps->state[o.slot_m] && ps->state[o.slot_v];
    bool has_ema = o.slot_ema >= 0 && o.slot_ema < GVM_PARAM_MAX_STATES && ps->state[o.slot_ema];
    gvm_status st = make_dirs(run_dir);
    if (st != GVM_OK) return st;

    char name[64], tmp_name[128];
    snprintf(name, sizeof name, NAME_FMT, state->step);
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp.%ld", name, (long)getpid());
    char *tmp = path_join(run_dir, tmp_name), *final = path_join(run_dir, name);
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot create the folder: %s", tmp, strerror(errno));
        goto done;
    }

    char v_step[32], v_ostep[32], v_seed[32], v_off[32], v_ep[32], v_b[32], v_sc[32], v_gf[32], v_bf[32], v_gi[32],
        v_gt[32], files[32];
    snprintf(v_step, sizeof v_step, "%" PRId64, state->step);
    snprintf(v_ostep, sizeof v_ostep, "%" PRId64, state->optim_step);
    snprintf(v_seed, sizeof v_seed, "%" PRIu64, state->rng.seed);
    snprintf(v_off, sizeof v_off, "%" PRIu64, state->rng.offset);
    snprintf(v_ep, sizeof v_ep, "%" PRId64, state->data.epoch);
    snprintf(v_b, sizeof v_b, "%" PRId64, state->data.batch);
    snprintf(v_sc, sizeof v_sc, "%.9g", (double)state->scaler.scale);
    snprintf(v_gf, sizeof v_gf, "%.9g", (double)state->scaler.growth_factor);
    snprintf(v_bf, sizeof v_bf, "%.9g", (double)state->scaler.backoff_factor);
    snprintf(v_gi, sizeof v_gi, "%d", state->scaler.growth_interval);
    snprintf(v_gt, sizeof v_gt, "%d", state->scaler.growth_tracker);
    snprintf(files, sizeof files, "model%s%s", has_ema ? ",ema" : "", has_optim ? ",optim" : "");
    const char *model_meta[] = {"format", GVM_CHECKPOINT_FORMAT, "gvm_version", GVM_VERSION, "step", v_step,
                                "optim_step", v_ostep, "config", state->config ? state->config : "",
                                "rng_seed", v_seed, "rng_offset", v_off, "data_epoch", v_ep, "data_batch", v_b,
                                "loss_scale", v_sc, "loss_scale_growth_factor", v_gf,
                                "loss_scale_backoff_factor", v_bf, "loss_scale_growth_interval", v_gi,
                                "loss_scale_growth_tracker", v_gt, "files", files, NULL};
    const char *part_meta[] = {"format", GVM_CHECKPOINT_FORMAT, "step", v_step, NULL};

    char *p = path_join(tmp, "model.safetensors");
    st = write_blocks(p, ps, (block_ref[]){{ps->data, ""}}, 1, model_meta);
    free(p);
    if (st == GVM_OK && has_ema) {
        p = path_join(tmp, "ema.safetensors");
        st = write_blocks(p, ps, (block_ref[]){{ps->state[o.slot_ema], ""}}, 1, part_meta);
        free(p);
    }
    if (st == GVM_OK && has_optim) {
        p = path_join(tmp, "optim.safetensors");
        st = write_blocks(p, ps, (block_ref[]){{ps->state[o.slot_m], "m."}, {ps->state[o.slot_v], "v."}}, 2, part_meta);
        free(p);
    }
    if (st == GVM_OK) st = fsync_path(tmp);
    // A checkpoint of this step already there (a resumed run saving the same step again) moves aside first:
    // rename() cannot replace a non-empty folder.
    char *old = NULL;
    if (st == GVM_OK && exists(final)) {
        size_t n = strlen(final) + 32;
        old = GVM_MALLOC(n);
        snprintf(old, n, "%s.old.%ld", final, (long)getpid());
        remove_tree(old);
        if (rename(final, old) != 0)
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot move aside to %s: %s", final, old, strerror(errno));
    }
    if (st == GVM_OK && rename(tmp, final) != 0)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    if (st == GVM_OK) st = fsync_path(run_dir);
    if (st == GVM_OK) st = write_latest(run_dir, name);
    if (old) {
        if (st == GVM_OK) remove_tree(old);
        else rename(old, final);  // put the previous one back where it was (best effort)
        free(old);
    }
    if (st == GVM_OK) prune(run_dir, state->step, o.keep_last);
done:
    if (st != GVM_OK) remove_tree(tmp);
    free(tmp);
    free(final);
    return st;
}

// ---- load ----------------------------------------------------------------------------------------------------
typedef struct part {
    const char *file;   // "model.safetensors", ...
    gvm_safetensors *st;
    int slots[2];       // where the blocks go: -1 = ps->data, else a state slot
    const char *prefix[2];
    int n_blocks;
    const char *const *keys;  // metadata in the checksum
} part;

static gvm_status meta_i64(const gvm_safetensors *st, const char *key, int64_t *out) {
    const char *v = gvm_safetensors_metadata(st, key);
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: metadata '%s' is %s%s%s, expected an integer",
                             gvm_safetensors_path(st), key, v ? "'" : "missing", v ? v : "", v ? "'" : "");
    *out = x;
    return GVM_OK;
}

static gvm_status meta_u64(const gvm_safetensors *st, const char *key, uint64_t *out) {
    const char *v = gvm_safetensors_metadata(st, key);
    char *end = NULL;
    errno = 0;
    unsigned long long x = v && *v != '-' ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *v == '-' || *end || errno)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: metadata '%s' is %s%s%s, expected an unsigned integer",
                             gvm_safetensors_path(st), key, v ? "'" : "missing", v ? v : "", v ? "'" : "");
    *out = x;
    return GVM_OK;
}

static gvm_status meta_f32(const gvm_safetensors *st, const char *key, float *out) {
    const char *v = gvm_safetensors_metadata(st, key);
    char *end = NULL;
    float x = v ? strtof(v, &end) : 0;
    if (!v || !*v || *end)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: metadata '%s' is %s%s%s, expected a number",
                             gvm_safetensors_path(st), key, v ? "'" : "missing", v ? v : "", v ? "'" : "");
    *out = x;
    return GVM_OK;
}

static gvm_status meta_i32(const gvm_safetensors *st, const char *key, int *out) {
    int64_t x = 0;
    gvm_status s = meta_i64(st, key, &x);
    if (s == GVM_OK && (x < INT32_MIN || x > INT32_MAX))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: metadata '%s' = %" PRId64 " is out of range",
                             gvm_safetensors_path(st), key, x);
    if (s == GVM_OK) *out = (int)x;
    return s;
}

static gvm_status check_format(const gvm_safetensors *st) {
    const char *fmt = gvm_safetensors_metadata(st, "format");
    if (!fmt || strcmp(fmt, GVM_CHECKPOINT_FORMAT) != 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: not a gvm checkpoint file (metadata format is %s%s%s, expected '%s')",
                             gvm_safetensors_path(st), fmt ? "'" : "missing", fmt ? fmt : "", fmt ? "'" : "",
                             GVM_CHECKPOINT_FORMAT);
    return GVM_OK;
}

// Format, step, the tensors of every block (present, f32, shaped as the store's, nothing else) and the checksum.
static gvm_status validate_part(const part *pt, const gvm_param_store *ps, int64_t step) {
    const gvm_safetensors *st = pt->st;
    const char *path = gvm_safetensors_path(st);
    int64_t s;
    gvm_status status = check_format(st);
    if (status == GVM_OK) status = meta_i64(st, "step", &s);
    if (status != GVM_OK) return status;
    if (s != step)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: holds step %" PRId64 " but its checkpoint is step %" PRId64
                             " (files of different checkpoints mixed?)", path, s, step);
    uint64_t h = GVM_CHECKPOINT_HASH_SEED;
    char name[1024];
    for (int b = 0; b < pt->n_blocks; b++) {
        for (int i = 0; i < ps->n_params; i++) {
            const gvm_tensor *t = ps->params[i];
            snprintf(name, sizeof name, "%s%s", pt->prefix[b], t->name);
            const gvm_st_entry *e = gvm_safetensors_find(st, name);
            if (!e) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: tensor '%s' is missing (a checkpoint of another model "
                                         "or config?)", path, name);
            bool same = e->ndim == t->ndim;
            for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == t->shape[d];
            if (!same) {
                char a[128], c[128];
                return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", path, name,
                                     gvm_shape_str(e->ndim, e->shape, a, sizeof a),
                                     gvm_shape_str(t->ndim, t->shape, c, sizeof c));
            }
            if (e->dtype != GVM_F32)
                return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' is %s, expected %s", path, name,
                                     gvm_dtype_name(e->dtype), gvm_dtype_name(GVM_F32));
            h = gvm_checkpoint_hash(h, e->data, e->nbytes);
        }
    }
    if (gvm_safetensors_count(st) != pt->n_blocks * ps->n_params) {
        for (int i = 0; i < gvm_safetensors_count(st); i++) {
            const char *n = gvm_safetensors_entry(st, i)->name;
            bool known = false;
            for (int b = 0; b < pt->n_blocks && !known; b++) {
                size_t lp = strlen(pt->prefix[b]);
                known = strncmp(n, pt->prefix[b], lp) == 0 && gvm_param_store_find(ps, n + lp);
            }
            if (!known)
                return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' is not a parameter of this model (was the "
                                     "checkpoint written for another model or config?)", path, n);
        }
        return gvm_error_set(GVM_ERR_FORMAT, "%s: %d tensors, expected %d", path, gvm_safetensors_count(st),
                             pt->n_blocks * ps->n_params);
    }
    for (const char *const *k = pt->keys; *k; k++) {
        const char *v = gvm_safetensors_metadata(st, *k);
        if (!v) return gvm_error_set(GVM_ERR_FORMAT, "%s: metadata '%s' is missing", path, *k);
        h = hash_str(h, *k, v);
    }
    const char *sum = gvm_safetensors_metadata(st, "checksum");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, h);
    if (!sum || strcmp(sum, want) != 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: checksum %s does not match the data (%s): the file is damaged",
                             path, sum ? sum : "missing", want);
    return GVM_OK;
}

static gvm_status read_state(const gvm_safetensors *st, gvm_checkpoint_state *s) {
    gvm_status r = meta_i64(st, "optim_step", &s->optim_step);
    if (r == GVM_OK) r = meta_u64(st, "rng_seed", &s->rng.seed);
    if (r == GVM_OK) r = meta_u64(st, "rng_offset", &s->rng.offset);
    if (r == GVM_OK) r = meta_i64(st, "data_epoch", &s->data.epoch);
    if (r == GVM_OK) r = meta_i64(st, "data_batch", &s->data.batch);
    if (r == GVM_OK) r = meta_f32(st, "loss_scale", &s->scaler.scale);
    if (r == GVM_OK) r = meta_f32(st, "loss_scale_growth_factor", &s->scaler.growth_factor);
    if (r == GVM_OK) r = meta_f32(st, "loss_scale_backoff_factor", &s->scaler.backoff_factor);
    if (r == GVM_OK) r = meta_i32(st, "loss_scale_growth_interval", &s->scaler.growth_interval);
    if (r == GVM_OK) r = meta_i32(st, "loss_scale_growth_tracker", &s->scaler.growth_tracker);
    if (r == GVM_OK && !gvm_safetensors_metadata(st, "config"))
        r = gvm_error_set(GVM_ERR_FORMAT, "%s: metadata 'config' is missing", gvm_safetensors_path(st));
    return r;
}

static bool has_file(const char *files, const char *name) {
    size_t n = strlen(name);
    for (const char *s = files; (s = strstr(s, name)); s += n)
        if ((s == files || s[-1] == ',') && (s[n] == ',' || s[n] == '\0')) return true;
    return false;
}

void gvm_checkpoint_loaded_free(gvm_checkpoint_loaded *l) {
    if (!l) return;
    free((char *)l->state.config);
    free(l->path);
    free(l->version);
    free(l->skipped);
    memset(l, 0, sizeof *l);
}

gvm_status gvm_checkpoint_load(const char *ckpt_dir, gvm_param_store *ps, const gvm_checkpoint_opts *opts,
                               gvm_checkpoint_loaded *out) {
    GVM_CHECK(ps->finalized, "checkpoint load into a parameter store before finalize");
    gvm_checkpoint_opts o = opts ? *opts : gvm_checkpoint_opts_default();
    memset(out, 0, sizeof *out);
    part parts[3] = {{.file = "model.safetensors", .slots = {-1, -1}, .prefix = {"", ""}, .n_blocks = 1, .keys = k_model_keys},
                     {.file = "ema.safetensors", .slots = {o.slot_ema, -1}, .prefix = {"", ""}, .n_blocks = 1,
                      .keys = k_part_keys},
                     {.file = "optim.safetensors", .slots = {o.slot_m, o.slot_v}, .prefix = {"m.", "v."}, .n_blocks = 2,
                      .keys = k_part_keys}};
    bool use[3] = {true, false, false};
    gvm_checkpoint_state s = {0};
    char *p = path_join(ckpt_dir, parts[0].file);
    gvm_status status = gvm_safetensors_open(p, &parts[0].st);
    free(p);
    if (status != GVM_OK) goto fail;
    const gvm_safetensors *model = parts[0].st;
    status = check_format(model);
    if (status == GVM_OK) status = meta_i64(model, "step", &s.step);
    int64_t named = parse_ckpt_name(base_name(ckpt_dir));
    if (status == GVM_OK && named >= 0 && named != s.step)
        status = gvm_error_set(GVM_ERR_FORMAT, "%s: holds step %" PRId64 " but the folder is named for step %" PRId64,
                               gvm_safetensors_path(model), s.step, named);
    if (status == GVM_OK) status = validate_part(&parts[0], ps, s.step);
    if (status == GVM_OK) status = read_state(model, &s);
    const char *files = gvm_safetensors_metadata(model, "files");
    if (status == GVM_OK && !files)
        status = gvm_error_set(GVM_ERR_FORMAT, "%s: metadata 'files' is missing", gvm_safetensors_path(model));
    if (status == GVM_OK && !o.weights_only) {
        use[1] = has_file(files, "ema") && o.slot_ema >= 0;
        use[2] = has_file(files, "optim") && o.slot_m >= 0 && o.slot_v >= 0;
    }
    for (int i = 1; i < 3 && status == GVM_OK; i++) {
        if (!use[i]) continue;
        for (int b = 0; b < parts[i].n_blocks; b++)
            GVM_CHECK(parts[i].slots[b] < GVM_PARAM_MAX_STATES, "state slot %d out of range", parts[i].slots[b]);
        p = path_join(ckpt_dir, parts[i].file);
        if (!exists(p)) status = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: missing (the checkpoint lists it)", p);
        else status = gvm_safetensors_open(p, &parts[i].st);
        free(p);
        if (status == GVM_OK) status = validate_part(&parts[i], ps, s.step);
    }
    if (status != GVM_OK) goto fail;

    // Everything checked: now copy (the store changes only from here on).
    for (int i = 0; i < 3; i++) {
        if (!use[i]) continue;
        char name[1024];
        for (int b = 0; b < parts[i].n_blocks; b++) {
            float *block = parts[i].slots[b] < 0 ? ps->data : gvm_param_store_state(ps, parts[i].slots[b]);
            for (int k = 0; k < ps->n_params; k++) {
                const gvm_tensor *t = ps->params[k];
                snprintf(name, sizeof name, "%s%s", parts[i].prefix[b], t->name);
                const gvm_st_entry *e = gvm_safetensors_find(parts[i].st, name);
                gvm_device_copy(block + ps->offsets[k], ps->device, e->data, GVM_DEVICE_CPU, e->nbytes);
            }
        }
    }
    out->state = s;
    out->state.config = strdup(gvm_safetensors_metadata(model, "config"));
    const char *ver = gvm_safetensors_metadata(model, "gvm_version");
    out->version = strdup(ver ? ver : "unknown");
    out->path = strdup(ckpt_dir);
    out->has_ema = use[1];
    out->has_optim = use[2];
fail:
    for (int i = 0; i < 3; i++) gvm_safetensors_close(parts[i].st);
    return status;
}

// ---- load_latest -----------------------------------------------------------------------------------------------
static void appendf(char **buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(char **buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + (size_t)n + 1);
    GVM_CHECK(*buf, "out of memory");
    va_start(ap, fmt);
    vsnprintf(*buf + old, (size_t)n + 1, fmt, ap);
    va_end(ap);
}

// The step the "latest" pointer names, -1 when there is none or it is unusable (a note goes to *notes).
static int64_t read_latest(const char *run_dir, char **notes) {
    char *p = path_join(run_dir, "latest");
    FILE *f = fopen(p, "rb");
    int64_t step = -1;
    if (!f) {
        appendf(notes, "%s: missing (a save was interrupted?); using the newest checkpoint that loads\n", p);
    } else {
        char line[256] = {0};
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = '\0';
        step = strlen(line) == n ? parse_ckpt_name(line) : -1;
        if (step < 0) appendf(notes, "%s: does not name a checkpoint folder ('%s'); ignored\n", p, line);
    }
    free(p);
    return step;
}

gvm_status gvm_checkpoint_load_latest(const char *run_dir, gvm_param_store *ps, const gvm_checkpoint_opts *opts,
                                      gvm_checkpoint_loaded *out) {
    memset(out, 0, sizeof *out);
    int n;
    errno = 0;
    int64_t *steps = list_checkpoints(run_dir, &n);
    if (!steps && errno != ENOENT)  // unreadable is not "a fresh run": that would restart training from scratch
        return gvm_error_set(GVM_ERR_IO, "%s: cannot list the run folder: %s", run_dir, strerror(errno));
    if (n == 0) {
        free(steps);
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no checkpoint (no ckpt-<step> folder)", run_dir);
    }
    char *notes = NULL;
    int64_t latest = read_latest(run_dir, &notes);
    bool latest_listed = false;
    for (int i = 0; i < n; i++) latest_listed |= steps[i] == latest;
    if (latest >= 0 && !latest_listed) {
        appendf(&notes, "%s/latest: names " NAME_FMT ", which does not exist\n", run_dir, latest);
        latest = -1;
    }
    // The pointer's checkpoint first, then the others from the newest down.
    gvm_status first_err = GVM_OK;
    for (int i = -1; i < n; i++) {
        int64_t step = i < 0 ? latest : steps[i];
        if (step < 0 || (i >= 0 && step == latest)) continue;
        char name[64];
        snprintf(name, sizeof name, NAME_FMT, step);
        char *dir = path_join(run_dir, name);
        gvm_status st = gvm_checkpoint_load(dir, ps, opts, out);
        free(dir);
        if (st == GVM_OK) {
            out->skipped = notes;
            free(steps);
            return GVM_OK;
        }
        appendf(&notes, "skipped %s/%s: %s\n", run_dir, name, gvm_error_message());
        if (first_err == GVM_OK) first_err = st;
    }
    free(steps);
    size_t len = strlen(notes);
    if (len && notes[len - 1] == '\n') notes[len - 1] = '\0';
    gvm_error_set(first_err, "%s: no checkpoint loads:\n%s", run_dir, notes);
    free(notes);
    return first_err;
}
