// safetensors.c: the safetensors reader (mmap + cJSON) and atomic writer (see safetensors.h).
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// A header larger than this is not a real checkpoint (the Python library uses the same limit).
#define MAX_HEADER_BYTES ((uint64_t)100 << 20)

struct gvm_safetensors {
    char *path;
    void *map;
    size_t map_size;
    cJSON *header;
    int n;
    gvm_st_entry *entries;
    cJSON *metadata;  // borrowed from header
};

static gvm_status fail_format(gvm_safetensors *st, const char *fmt_prefix, const char *detail) {
    gvm_status s = gvm_error_set(GVM_ERR_FORMAT, "%s: not a valid safetensors file: %s%s", st->path,
                                 fmt_prefix, detail ? detail : "");
    return s;
}

static gvm_status parse_entry(gvm_safetensors *st, const cJSON *item, size_t data_size, gvm_st_entry *e) {
    char msg[512];
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    e->name = item->string;
    if (!cJSON_IsObject(item) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2) {
        snprintf(msg, sizeof msg, "tensor '%s' lacks dtype, shape or data_offsets", item->string);
        return fail_format(st, msg, NULL);
    }
    if (!gvm_dtype_from_safetensors_name(dtype->valuestring, &e->dtype)) {
        snprintf(msg, sizeof msg, "tensor '%s' has dtype %s, which gvm does not read (F32 F16 BF16 I64 I32 I16 U8 BOOL)",
                 item->string, dtype->valuestring);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: %s", st->path, msg);
    }
    e->ndim = cJSON_GetArraySize(shape);
    if (e->ndim > GVM_MAX_DIMS) {
        snprintf(msg, sizeof msg, "tensor '%s' has %d dimensions (at most %d)", item->string, e->ndim, GVM_MAX_DIMS);
        return fail_format(st, msg, NULL);
    }
    // Bytes the shape needs, with overflow checks: a product that wraps could match the offsets.
    uint64_t need = gvm_dtype_size(e->dtype);
    bool overflow = false;
    for (int d = 0; d < e->ndim; d++) {
        const cJSON *dim = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(dim) || dim->valuedouble < 0 || dim->valuedouble > 9e15 ||
            dim->valuedouble != (double)(int64_t)dim->valuedouble) {
            snprintf(msg, sizeof msg, "tensor '%s' has a bad shape entry", item->string);
            return fail_format(st, msg, NULL);
        }
        e->shape[d] = (int64_t)dim->valuedouble;
        overflow |= __builtin_mul_overflow(need, (uint64_t)e->shape[d], &need);
    }
    if (overflow || need > (uint64_t)INT64_MAX) {
        snprintf(msg, sizeof msg, "tensor '%s' has a shape too large to address", item->string);
        return fail_format(st, msg, NULL);
    }
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *en = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(en) || b->valuedouble < 0 || en->valuedouble < b->valuedouble ||
        en->valuedouble > (double)data_size || b->valuedouble != (double)(size_t)b->valuedouble ||
        en->valuedouble != (double)(size_t)en->valuedouble) {
        snprintf(msg, sizeof msg, "tensor '%s' has data_offsets outside the file's %zu data bytes (truncated file?)",
                 item->string, data_size);
        return fail_format(st, msg, NULL);
    }
    size_t begin = (size_t)b->valuedouble, end = (size_t)en->valuedouble;
    e->nbytes = end - begin;
    if (need != e->nbytes) {
        snprintf(msg, sizeof msg, "tensor '%s': shape and dtype need %llu bytes, data_offsets give %zu",
                 item->string, (unsigned long long)need, e->nbytes);
        return fail_format(st, msg, NULL);
    }
    return GVM_OK;
}

gvm_status gvm_safetensors_open(const char *path, gvm_safetensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    gvm_safetensors *st = GVM_CALLOC(1, sizeof *st);
    st->path = strdup(path);
    st->map_size = (size_t)sb.st_size;
    gvm_status status = GVM_OK;
    if (st->map_size < 8) {
        close(fd);
        status = fail_format(st, "shorter than its 8-byte header length", NULL);
        goto fail;
    }
    st->map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        status = gvm_error_set(GVM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t header_len = 0;
    memcpy(&header_len, st->map, 8);  // little-endian hosts only (x86-64, aarch64)
    if (header_len > MAX_HEADER_BYTES || header_len > st->map_size - 8) {
        status = fail_format(st, "header length field is larger than the file", NULL);
        goto fail;
    }
    st->header = cJSON_ParseWithLength((const char *)st->map + 8, (size_t)header_len);
    if (!st->header || !cJSON_IsObject(st->header)) {
        status = fail_format(st, "header is not a JSON object", NULL);
        goto fail;
    }
    size_t data_start = 8 + (size_t)header_len;
    size_t data_size = st->map_size - data_start;
    int count = 0;
    for (cJSON *it = st->header->child; it; it = it->next) count += strcmp(it->string, "__metadata__") != 0;
    st->entries = GVM_CALLOC((size_t)count, sizeof *st->entries);
    for (cJSON *it = st->header->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            st->metadata = it;
            continue;
        }
        gvm_st_entry *e = &st->entries[st->n];
        status = parse_entry(st, it, data_size, e);
        if (status != GVM_OK) goto fail;
        e->data = (const char *)st->map + data_start +
                  (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(it, "data_offsets"), 0)->valuedouble;
        st->n++;
    }
    *out = st;
    return GVM_OK;
fail:
    gvm_safetensors_close(st);
    return status;
}

void gvm_safetensors_close(gvm_safetensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    cJSON_Delete(st->header);
    free(st->entries);
    free(st->path);
    free(st);
}

int gvm_safetensors_count(const gvm_safetensors *st) { return st->n; }
const gvm_st_entry *gvm_safetensors_entry(const gvm_safetensors *st, int i) { return &st->entries[i]; }
const char *gvm_safetensors_path(const gvm_safetensors *st) { return st->path; }

const gvm_st_entry *gvm_safetensors_find(const gvm_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

const char *gvm_safetensors_metadata(const gvm_safetensors *st, const char *key) {
    if (!st->metadata) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->metadata, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

gvm_status gvm_safetensors_read_into(const gvm_safetensors *st, const char *name, gvm_tensor *dst) {
    const gvm_st_entry *e = gvm_safetensors_find(st, name);
    if (!e) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: tensor '%s' is missing", st->path, name);
    bool same = e->ndim == dst->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == dst->shape[d];
    if (!same) {
        char a[128], b[128];
        return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", st->path, name,
                             gvm_shape_str(e->ndim, e->shape, a, sizeof a),
                             gvm_shape_str(dst->ndim, dst->shape, b, sizeof b));
    }
    if (gvm_dtype_is_float(e->dtype) != gvm_dtype_is_float(dst->dtype))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' is %s, expected a %s tensor", st->path, name,
                             gvm_dtype_name(e->dtype), gvm_dtype_is_float(dst->dtype) ? "float" : "integer");
    gvm_tensor src = {0};
    src.dtype = e->dtype;
    src.ndim = e->ndim;
    memcpy(src.shape, e->shape, sizeof e->shape);
    src.numel = dst->numel;
    src.data = (void *)e->data;
    // Files from other writers may place a tensor at an offset that is not a multiple of its element
    // size; the conversions load whole elements, so give them an aligned copy.
    void *aligned = NULL;
    if ((uintptr_t)e->data % gvm_dtype_size(e->dtype) != 0) {
        aligned = GVM_MALLOC(e->nbytes);
        memcpy(aligned, e->data, e->nbytes);
        src.data = aligned;
    }
    gvm_tensor_copy(dst, &src);
    free(aligned);
    return GVM_OK;
}

gvm_status gvm_safetensors_load(const gvm_safetensors *st, const char *name, gvm_tensor **out) {
    const gvm_st_entry *e = gvm_safetensors_find(st, name);
    *out = NULL;
    if (!e) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: tensor '%s' is missing", st->path, name);
    gvm_tensor *t = gvm_tensor_new(e->dtype, e->ndim, e->shape);
    memcpy(t->data, e->data, e->nbytes);
    *out = t;
    return GVM_OK;
}

// ---- writer ------------------------------------------------------------------------------------------

typedef struct {
    char *name;
    gvm_dtype dtype;
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
    const void *data;
    size_t nbytes;
    gvm_st_fill_fn fill;  // streamed: data is NULL and fill produces the bytes at write time
    void *user;
} writer_entry;

struct gvm_st_writer {
    writer_entry *entries;
    int n, cap;
    cJSON *metadata;
};

gvm_st_writer *gvm_st_writer_new(void) {
    gvm_st_writer *w = GVM_CALLOC(1, sizeof *w);
    w->metadata = cJSON_CreateObject();
    return w;
}

void gvm_st_writer_add(gvm_st_writer *w, const char *name, gvm_dtype dtype, int ndim, const int64_t *shape,
                       const void *data) {
    GVM_CHECK(ndim <= GVM_MAX_DIMS, "tensor %s rank %d", name, ndim);
    for (int i = 0; i < w->n; i++) GVM_CHECK(strcmp(w->entries[i].name, name) != 0, "tensor %s added twice", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->entries = realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
        GVM_CHECK(w->entries, "out of memory");
    }
    writer_entry *e = &w->entries[w->n++];
    e->name = strdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = (size_t)gvm_shape_numel(ndim, shape) * gvm_dtype_size(dtype);
    e->fill = NULL;
    e->user = NULL;
}

void gvm_st_writer_add_stream(gvm_st_writer *w, const char *name, gvm_dtype dtype, int ndim, const int64_t *shape,
                              gvm_st_fill_fn fill, void *user) {
    GVM_CHECK(fill, "tensor %s: streamed without a fill function", name);
    gvm_st_writer_add(w, name, dtype, ndim, shape, NULL);
    w->entries[w->n - 1].fill = fill;
    w->entries[w->n - 1].user = user;
}

void gvm_st_writer_add_metadata(gvm_st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->metadata, key);
    cJSON_AddStringToObject(w->metadata, key, value);
}

void gvm_st_writer_free(gvm_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    free(w->entries);
    cJSON_Delete(w->metadata);
    free(w);
}

static gvm_status write_all(int fd, const void *buf, size_t n, const char *path) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return gvm_error_set(GVM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return GVM_OK;
}

// Stable: tensors of one element size keep the order they were added in.
static void sort_by_element_size(gvm_st_writer *w) {
    for (int i = 1; i < w->n; i++) {
        writer_entry e = w->entries[i];
        int j = i;
        for (; j > 0 && gvm_dtype_size(w->entries[j - 1].dtype) < gvm_dtype_size(e.dtype); j--)
            w->entries[j] = w->entries[j - 1];
        w->entries[j] = e;
    }
}

gvm_status gvm_st_writer_write(gvm_st_writer *w, const char *path) {
    cJSON *header = cJSON_CreateObject();
    if (cJSON_GetArraySize(w->metadata) > 0)
        cJSON_AddItemToObject(header, "__metadata__", cJSON_Duplicate(w->metadata, 1));
    // Lay tensors out by decreasing element size (as Python's writer does), so that every tensor's data
    // starts at a multiple of its element size and readers can use it in place.
    sort_by_element_size(w);
    size_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        writer_entry *e = &w->entries[i];
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "dtype", gvm_dtype_safetensors_name(e->dtype));
        cJSON *shape = cJSON_AddArrayToObject(item, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(item, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + e->nbytes)));
        offset += e->nbytes;
        cJSON_AddItemToObject(header, e->name, item);
    }
    char *json = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    GVM_CHECK(json, "out of memory printing a safetensors header");
    // Pad the header with spaces to a multiple of 8 so the data buffer is aligned (as the Python
    // writer does).
    size_t json_len = strlen(json);
    size_t padded = (json_len + 7) / 8 * 8;
    char *hdr = GVM_MALLOC(padded);
    memcpy(hdr, json, json_len);
    memset(hdr + json_len, ' ', padded - json_len);
    free(json);

    size_t tmp_len = strlen(path) + 32;
    char *tmp = GVM_MALLOC(tmp_len);
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    gvm_status status = GVM_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        status = gvm_error_set(GVM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    uint64_t n = padded;
    status = write_all(fd, &n, 8, tmp);
    if (status == GVM_OK) status = write_all(fd, hdr, padded, tmp);
    size_t scratch_bytes = 0;
    for (int i = 0; i < w->n; i++)
        if (w->entries[i].fill && w->entries[i].nbytes > scratch_bytes) scratch_bytes = w->entries[i].nbytes;
    void *scratch = scratch_bytes ? GVM_MALLOC(scratch_bytes) : NULL;
    for (int i = 0; i < w->n && status == GVM_OK; i++) {
        const writer_entry *e = &w->entries[i];
        if (e->fill) {
            status = e->fill(e->user, scratch, e->nbytes);
            if (status == GVM_OK) status = write_all(fd, scratch, e->nbytes, tmp);
        } else {
            status = write_all(fd, e->data, e->nbytes, tmp);
        }
    }
    free(scratch);
    if (status == GVM_OK && fsync(fd) != 0)
        status = gvm_error_set(GVM_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && status == GVM_OK)
        status = gvm_error_set(GVM_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (status == GVM_OK && rename(tmp, path) != 0)
        status = gvm_error_set(GVM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (status != GVM_OK) {
        unlink(tmp);
    } else {
        // Make the rename itself durable.
        char *dir_copy = strdup(path);
        int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir_copy);
    }
done:
    free(tmp);
    free(hdr);
    return status;
}
