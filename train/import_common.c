// import_common.c: the parts of gvm import every format shares (train/import_common.h): opening a
// repository (config.json, single or sharded safetensors), the plan (expected tensors -> repository
// tensors, shape checks, unexpected tensors), and the streamed f32 write.
#define _DEFAULT_SOURCE  // madvise
#include "train/import_common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"

typedef struct repo_tensor {
    const gvm_st_entry *e;  // into one of the mapped files
    int file;
} repo_tensor;

struct gvm_import_repo {
    char *dir;
    cJSON *config;
    gvm_safetensors **files;
    int n_files;
    repo_tensor *t;  // [n], sorted by name
    int n;
};

static char *read_text(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    if (len_out) *len_out = buf ? (size_t)len : 0;
    return buf;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static gvm_status parse_json_file(const char *path, const char *what, cJSON **out) {
    *out = NULL;
    char *text = read_text(path, NULL);
    if (!text) return gvm_error_set(GVM_ERR_IO, "%s: cannot read %s: %s", path, what, strerror(errno));
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: %s is not a JSON object", path, what);
    }
    *out = j;
    return GVM_OK;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const repo_tensor *)a)->e->name, ((const repo_tensor *)b)->e->name);
}

static gvm_status add_file(gvm_import_repo *r, const char *name) {
    for (int i = 0; i < r->n_files; i++)
        if (strcmp(strrchr(gvm_safetensors_path(r->files[i]), '/') + 1, name) == 0) return GVM_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    gvm_safetensors *st = NULL;
    gvm_status s = gvm_safetensors_open(path, &st);
    if (s != GVM_OK) return s;
    r->files = realloc(r->files, (size_t)(r->n_files + 1) * sizeof *r->files);
    GVM_CHECK(r->files, "out of memory");
    r->files[r->n_files++] = st;
    return GVM_OK;
}

static const repo_tensor *repo_find(const gvm_import_repo *r, const char *name) {
    gvm_st_entry key_e = {.name = name};
    repo_tensor key = {.e = &key_e};
    return bsearch(&key, r->t, (size_t)r->n, sizeof *r->t, cmp_tensor);
}

gvm_status gvm_import_repo_open(const char *dir, gvm_import_repo **out) {
    *out = NULL;
    gvm_import_repo *r = GVM_CALLOC(1, sizeof *r);
    r->dir = strdup(dir);
    size_t len = strlen(r->dir);
    while (len > 1 && r->dir[len - 1] == '/') r->dir[--len] = '\0';
    char path[4096];
    gvm_status s = GVM_OK;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        s = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: not a directory (give the folder of a downloaded Hugging Face "
                          "repository)", dir);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    if (!file_exists(path)) {
        s = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no config.json: a Hugging Face model repository has one beside "
                          "its weights (download the whole repository)", r->dir);
        goto fail;
    }
    if ((s = parse_json_file(path, "config.json", &r->config)) != GVM_OK) goto fail;

    snprintf(path, sizeof path, "%s/model.safetensors.index.json", r->dir);
    if (file_exists(path)) {
        cJSON *index = NULL;
        if ((s = parse_json_file(path, "the shard index", &index)) != GVM_OK) goto fail;
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
        if (!cJSON_IsObject(map)) {
            cJSON_Delete(index);
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: no \"weight_map\" object", path);
            goto fail;
        }
        for (const cJSON *it = map->child; it && s == GVM_OK; it = it->next) {
            if (!cJSON_IsString(it) || strchr(it->valuestring, '/'))
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name", path,
                                  it->string);
            else
                s = add_file(r, it->valuestring);
        }
        // Every tensor the index lists must be in the shard it names (a partial download shows here).
        for (const cJSON *it = map->child; it && s == GVM_OK; it = it->next) {
            bool found = false;
            for (int i = 0; i < r->n_files && !found; i++)
                if (strcmp(strrchr(gvm_safetensors_path(r->files[i]), '/') + 1, it->valuestring) == 0)
                    found = gvm_safetensors_find(r->files[i], it->string) != NULL;
            if (!found)
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: the index puts tensor '%s' in %s, which lacks it", r->dir,
                                  it->string, it->valuestring);
        }
        cJSON_Delete(index);
        if (s != GVM_OK) goto fail;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", r->dir);
        if (!file_exists(path)) {
            s = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no model.safetensors and no model.safetensors.index.json "
                              "(gvm import reads safetensors weights only, not pytorch_model.bin)", r->dir);
            goto fail;
        }
        if ((s = add_file(r, "model.safetensors")) != GVM_OK) goto fail;
    }
    for (int i = 0; i < r->n_files; i++) r->n += gvm_safetensors_count(r->files[i]);
    r->t = GVM_CALLOC((size_t)(r->n > 0 ? r->n : 1), sizeof *r->t);
    r->n = 0;
    for (int i = 0; i < r->n_files; i++)
        for (int j = 0; j < gvm_safetensors_count(r->files[i]); j++)
            r->t[r->n++] = (repo_tensor){gvm_safetensors_entry(r->files[i], j), i};
    qsort(r->t, (size_t)r->n, sizeof *r->t, cmp_tensor);
    for (int i = 1; i < r->n; i++)
        if (strcmp(r->t[i].e->name, r->t[i - 1].e->name) == 0) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' is in two weight files (%s and %s)", r->dir,
                              r->t[i].e->name, gvm_safetensors_path(r->files[r->t[i - 1].file]),
                              gvm_safetensors_path(r->files[r->t[i].file]));
            goto fail;
        }
    *out = r;
    return GVM_OK;
fail:
    gvm_import_repo_close(r);
    return s;
}

void gvm_import_repo_close(gvm_import_repo *r) {
    if (!r) return;
    for (int i = 0; i < r->n_files; i++) gvm_safetensors_close(r->files[i]);
    free(r->files);
    free(r->t);
    cJSON_Delete(r->config);
    free(r->dir);
    free(r);
}

const char *gvm_import_repo_dir(const gvm_import_repo *r) { return r->dir; }
bool gvm_import_repo_has(const gvm_import_repo *r, const char *name) { return repo_find(r, name) != NULL; }
const void *gvm_import_repo_config(const gvm_import_repo *r) { return r->config; }

// ---- config reads ----------------------------------------------------------------------------------------

static const cJSON *cfg_item(const void *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)obj, key);
    return cJSON_IsNull(v) ? NULL : v;  // HF writes null for "unset"
}

gvm_status gvm_import_cfg_int(const void *obj, const char *where, const char *key, int64_t def, int64_t *out) {
    const cJSON *v = cfg_item(obj, key);
    if (!v) {
        *out = def;
        return GVM_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: %s must be a whole number", where, key);
    *out = (int64_t)v->valuedouble;
    return GVM_OK;
}

gvm_status gvm_import_cfg_float(const void *obj, const char *where, const char *key, double def, double *out) {
    const cJSON *v = cfg_item(obj, key);
    if (!v) {
        *out = def;
        return GVM_OK;
    }
    if (!cJSON_IsNumber(v)) return gvm_error_set(GVM_ERR_FORMAT, "%s: %s must be a number", where, key);
    *out = v->valuedouble;
    return GVM_OK;
}

gvm_status gvm_import_cfg_bool(const void *obj, const char *where, const char *key, bool def, bool *out) {
    const cJSON *v = cfg_item(obj, key);
    if (!v) {
        *out = def;
        return GVM_OK;
    }
    if (!cJSON_IsBool(v)) return gvm_error_set(GVM_ERR_FORMAT, "%s: %s must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return GVM_OK;
}

gvm_status gvm_import_cfg_str(const void *obj, const char *where, const char *key, const char *def,
                              const char **out) {
    const cJSON *v = cfg_item(obj, key);
    if (!v) {
        *out = def;
        return GVM_OK;
    }
    if (!cJSON_IsString(v)) return gvm_error_set(GVM_ERR_FORMAT, "%s: %s must be a string", where, key);
    *out = v->valuestring;
    return GVM_OK;
}

double gvm_import_float_json(float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    return strtod(buf, NULL);
}

// ---- the plan --------------------------------------------------------------------------------------------

typedef struct plan_item {
    char *name;              // ours
    const repo_tensor *src;  // NULL when missing
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
} plan_item;

// A list of names for one kind of problem: the first few spelled out, the rest counted.
#define LIST_SHOWN 6
typedef struct name_list {
    char text[1400];
    int count;
} name_list;

struct gvm_import_plan {
    gvm_import_repo *r;
    plan_item *items;
    int n, cap;
    bool *used;  // [r->n]: read by some item
    char **ignore;
    int n_ignore;
    char **meta;  // key, value pairs
    int n_meta;
    name_list missing, misshaped, unexpected;
};

static void list_add(name_list *l, const char *fmt, const char *a, const char *b, const char *c) {
    if (l->count++ >= LIST_SHOWN) return;
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, l->count > 1 ? ", " : "");
    len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, fmt, a, b, c);
}

gvm_import_plan *gvm_import_plan_new(gvm_import_repo *r) {
    gvm_import_plan *p = GVM_CALLOC(1, sizeof *p);
    p->r = r;
    p->used = GVM_CALLOC((size_t)(r->n > 0 ? r->n : 1), sizeof *p->used);
    return p;
}

void gvm_import_plan_free(gvm_import_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->items[i].name);
    for (int i = 0; i < p->n_ignore; i++) free(p->ignore[i]);
    for (int i = 0; i < 2 * p->n_meta; i++) free(p->meta[i]);
    free(p->items);
    free(p->used);
    free(p->ignore);
    free(p->meta);
    free(p);
}

static const char *const k_wn_new[2] = {".parametrizations.weight.original0", ".parametrizations.weight.original1"};
static const char *const k_wn_old[2] = {".weight_g", ".weight_v"};

static const repo_tensor *find_src(const gvm_import_repo *r, const char *src_prefix, const char *name,
                                   char *src_name, size_t cap) {
    snprintf(src_name, cap, "%s%s", src_prefix, name);
    const repo_tensor *t = repo_find(r, src_name);
    if (t) return t;
    const size_t len = strlen(src_name);
    for (int k = 0; k < 2; k++) {
        const size_t sl = strlen(k_wn_new[k]);
        if (len > sl && strcmp(src_name + len - sl, k_wn_new[k]) == 0) {
            char alt[GVM_NN_NAME_MAX + 128];
            snprintf(alt, sizeof alt, "%.*s%s", (int)(len - sl), src_name, k_wn_old[k]);
            if ((t = repo_find(r, alt))) return t;
        }
    }
    return NULL;
}

void gvm_import_plan_expect_store(gvm_import_plan *p, const gvm_param_store *ps, const char *drop,
                                  const char *src_prefix) {
    for (int i = 0; i < ps->n_params; i++) {
        const gvm_tensor *t = ps->params[i];
        const char *base = t->name;
        if (drop && strncmp(base, drop, strlen(drop)) == 0) base += strlen(drop);
        char src_name[GVM_NN_NAME_MAX + 128];
        const repo_tensor *src = find_src(p->r, src_prefix, base, src_name, sizeof src_name);
        if (!src) {
            list_add(&p->missing, "%s%s", src_name, "", "");
        } else {
            p->used[src - p->r->t] = true;
            bool same = src->e->ndim == t->ndim;
            for (int d = 0; same && d < t->ndim; d++) same = src->e->shape[d] == t->shape[d];
            char a[128], b[128];
            if (!same)
                list_add(&p->misshaped, "%s is %s, expected %s", src->e->name,
                         gvm_shape_str(src->e->ndim, src->e->shape, a, sizeof a),
                         gvm_shape_str(t->ndim, t->shape, b, sizeof b));
            else if (!gvm_dtype_is_float(src->e->dtype))
                list_add(&p->misshaped, "%s is %s, expected a float tensor%s", src->e->name,
                         gvm_dtype_name(src->e->dtype), "");
        }
        if (p->n == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 256;
            p->items = realloc(p->items, (size_t)p->cap * sizeof *p->items);
            GVM_CHECK(p->items, "out of memory");
        }
        plan_item *it = &p->items[p->n++];
        it->name = strdup(t->name);
        it->src = src;
        it->ndim = t->ndim;
        memcpy(it->shape, t->shape, sizeof it->shape);
    }
}

void gvm_import_plan_ignore(gvm_import_plan *p, const char *const *prefixes) {
    for (int i = 0; prefixes && prefixes[i]; i++) {
        p->ignore = realloc(p->ignore, (size_t)(p->n_ignore + 1) * sizeof *p->ignore);
        GVM_CHECK(p->ignore, "out of memory");
        p->ignore[p->n_ignore++] = strdup(prefixes[i]);
    }
}

void gvm_import_plan_metadata(gvm_import_plan *p, const char *key, const char *value) {
    p->meta = realloc(p->meta, (size_t)(2 * p->n_meta + 2) * sizeof *p->meta);
    GVM_CHECK(p->meta, "out of memory");
    p->meta[2 * p->n_meta] = strdup(key);
    p->meta[2 * p->n_meta + 1] = strdup(value);
    p->n_meta++;
}

int64_t gvm_import_plan_bytes(const gvm_import_plan *p) {
    int64_t total = 0;
    for (int i = 0; i < p->n; i++) total += gvm_shape_numel(p->items[i].ndim, p->items[i].shape) * 4;
    return total;
}

// Convert one repository tensor to f32 into the writer's scratch buffer, then drop its input pages: they
// were read once and are not needed again, and dropping them keeps the import's resident memory near one
// tensor (mapped file pages that were read count as resident until the kernel reclaims them).
static gvm_status fill_item(void *user, void *dst, size_t nbytes) {
    const plan_item *it = user;
    const gvm_st_entry *e = it->src->e;
    const size_t n = nbytes / 4;
    float *out = dst;
    if (e->dtype == GVM_F32) {
        memcpy(out, e->data, nbytes);
    } else if (e->dtype == GVM_F16 || e->dtype == GVM_BF16) {
        const unsigned char *b = e->data;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);  // files from other writers need not be 2-byte aligned
            out[i] = e->dtype == GVM_F16 ? gvm_f16_to_f32(h) : gvm_bf16_to_f32(h);
        }
    } else {
        return gvm_error_set(GVM_ERR_FORMAT, "tensor %s: dtype %s cannot become f32", e->name, gvm_dtype_name(e->dtype));
    }
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t begin = ((uintptr_t)e->data + page - 1) / page * page;
    const uintptr_t end = ((uintptr_t)e->data + e->nbytes) / page * page;
    // Only whole pages inside the tensor; the mapping is read-only and private, so they are re-read from
    // the file if ever touched again.
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
    return GVM_OK;
}

static bool ignored(const gvm_import_plan *p, const char *name) {
    for (int i = 0; i < p->n_ignore; i++)
        if (strncmp(name, p->ignore[i], strlen(p->ignore[i])) == 0) return true;
    return false;
}

gvm_status gvm_import_plan_write(gvm_import_plan *p, const char *path) {
    const gvm_import_repo *r = p->r;
    for (int i = 0; i < r->n; i++)
        if (!p->used[i] && !ignored(p, r->t[i].e->name)) list_add(&p->unexpected, "%s%s%s", r->t[i].e->name, "", "");
    if (p->missing.count + p->misshaped.count + p->unexpected.count > 0) {
        char msg[1900] = "";
        const name_list *lists[3] = {&p->missing, &p->misshaped, &p->unexpected};
        const char *what[3] = {"missing", "with the wrong shape or dtype", "unexpected (not in the architecture "
                               "config.json describes)"};
        for (int k = 0; k < 3; k++) {
            if (!lists[k]->count) continue;
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof msg - len, "%s%d tensor%s %s: %s%s", len ? "; " : "", lists[k]->count,
                     lists[k]->count > 1 ? "s" : "", what[k], lists[k]->text,
                     lists[k]->count > LIST_SHOWN ? ", ..." : "");
        }
        return gvm_error_set(GVM_ERR_FORMAT, "%s: %s", r->dir, msg);
    }
    gvm_st_writer *w = gvm_st_writer_new();
    for (int i = 0; i < p->n; i++)
        gvm_st_writer_add_stream(w, p->items[i].name, GVM_F32, p->items[i].ndim, p->items[i].shape, fill_item,
                                 &p->items[i]);
    for (int i = 0; i < p->n_meta; i++) gvm_st_writer_add_metadata(w, p->meta[2 * i], p->meta[2 * i + 1]);
    gvm_status s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    return s;
}
