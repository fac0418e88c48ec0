// dataset_read.c: opening a dataset shard (format v1, docs/dataset-format.md) and reading its clips by
// index: the file header and index are validated once at open; each clip's group, attributes, shapes and
// dtypes are checked when it is read, so a damaged shard gives an error naming the file and the clip.
// Compressed parts are copied out raw under the HDF5 lock and inflated after it is released
// (dataset_chunks.c), so threads reading clips at once inflate in parallel.
#include "data/dataset_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gvm_shard {
    char *path;
    hid_t file;
    gvm_shard_info info;  // info.created_by points to created_by
    char *created_by;
    int64_t count;
    gvm_clip_entry *entries;  // [count]; strings point into ids/splits/styles
    char **ids, **splits, **styles;
};

// A required key that is missing is a format error of the file (the helpers say NOT_FOUND).
static gvm_status required(gvm_status st) {
    if (st != GVM_ERR_NOT_FOUND) return st;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", gvm_error_message());
    return gvm_error_set(GVM_ERR_FORMAT, "%s (see docs/dataset-format.md; rebuild the shard with `gvm prep`)", msg);
}

gvm_status gvm_ds_open_file(const char *path, bool writable, hid_t *file, gvm_shard_info *info, char **created_by,
                            int64_t *count) {
    *file = -1;
    *created_by = NULL;
    *count = 0;
    memset(info, 0, sizeof *info);
    char why[600];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no such dataset shard (check the path; `gvm prep` makes "
                                 "shards)", path);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot access: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) return gvm_error_set(GVM_ERR_IO, "%s: is a folder, not a dataset shard", path);
    if (sb.st_size == 0) return gvm_error_set(GVM_ERR_FORMAT, "%s: the file is empty, not a dataset shard", path);
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_h5 = H5Fis_accessible(path, H5P_DEFAULT);  // H5Fis_hdf5 is deprecated from 1.12 on
#else
    htri_t is_h5 = H5Fis_hdf5(path);
#endif
    if (is_h5 < 0)
        return gvm_error_set(GVM_ERR_IO, "%s: cannot read: %s", path, gvm_h5_error(why, sizeof why));
    if (is_h5 == 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature): dataset shards are HDF5 files "
                             "made by `gvm prep` (docs/dataset-format.md)", path);
    hid_t fapl = gvm_h5_fapl();
    hid_t f = fapl >= 0 ? H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        // HDF5's words decide the advice: a damaged file and a file in use need different actions.
        gvm_h5_error(why, sizeof why);
        if (strstr(why, "already open"))
            return gvm_error_set(GVM_ERR_IO, "%s: cannot open (%s): this process has the shard open already %s", path,
                                 why, writable ? "for reading; close its readers before updating it"
                                               : "for update; finish the update before reading it");
        if (strstr(why, "truncated file"))
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the shard is truncated (%s): an interrupted copy? copy it again "
                                 "or rebuild it with `gvm prep`", path, why);
        if (strstr(why, "unable to lock"))
            return gvm_error_set(GVM_ERR_IO, "%s: cannot open (%s): another process is using the shard (a writer, or "
                                 "readers during an update); wait for it, or set HDF5_USE_FILE_LOCKING=FALSE only if "
                                 "the file system's locks are broken", path, why);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot open as HDF5 (%s): the shard is damaged; copy it again or "
                             "rebuild it with `gvm prep`", path, why);
    }

    gvm_status st;
    int64_t version = 0, frame_size[2] = {0, 0}, sample_rate = 0;
    st = gvm_h5_read_int_attr(f, "format_version", path, &version);
    if (st == GVM_ERR_NOT_FOUND)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: no format_version attribute: not a gvm dataset shard (an HDF5 file "
                           "of another kind? see docs/dataset-format.md)", path);
    else if (st == GVM_OK && version != GVM_DATASET_FORMAT_VERSION)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: format_version %lld, but this gvm reads format_version %d: use a gvm "
                           "that reads version %lld, or rebuild the shard with this gvm's `gvm prep`",
                           path, (long long)version, GVM_DATASET_FORMAT_VERSION, (long long)version);
    if (st == GVM_OK) st = required(gvm_h5_read_int_array_attr(f, "frame_size", path, frame_size, 2));
    if (st == GVM_OK) st = required(gvm_h5_read_f64_attr(f, "fps", path, &info->fps));
    if (st == GVM_OK) st = required(gvm_h5_read_int_attr(f, "sample_rate", path, &sample_rate));
    if (st == GVM_OK && (frame_size[0] < 1 || frame_size[0] > 65535 || frame_size[1] < 1 || frame_size[1] > 65535))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: frame_size [%lld, %lld] out of range", path, (long long)frame_size[0],
                           (long long)frame_size[1]);
    if (st == GVM_OK && !(info->fps > 0))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: fps %g (want > 0)", path, info->fps);
    if (st == GVM_OK && (sample_rate < 1 || sample_rate > 10000000))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: sample_rate %lld out of range", path, (long long)sample_rate);
    if (st == GVM_OK) {
        // created_by is informational: a shard made by another tool may leave it out.
        st = gvm_h5_read_str_attr(f, "created_by", path, created_by);
        if (st == GVM_ERR_NOT_FOUND) {
            *created_by = strdup("");
            st = *created_by ? GVM_OK : gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
        }
    }
    if (st == GVM_OK && H5Lexists(f, GVM_DS_CLIPS, H5P_DEFAULT) <= 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: the group /" GVM_DS_CLIPS " is missing: not a complete gvm dataset "
                           "shard (docs/dataset-format.md)", path);
    if (st == GVM_OK && H5Lexists(f, GVM_DS_INDEX, H5P_DEFAULT) <= 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: the group /" GVM_DS_INDEX " is missing: not a complete gvm dataset "
                           "shard (docs/dataset-format.md)", path);
    if (st == GVM_OK) {
        hid_t idx = H5Gopen2(f, GVM_DS_INDEX, H5P_DEFAULT), d = -1;
        hsize_t n = 0;
        if (idx < 0)
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot open /" GVM_DS_INDEX ": %s", path,
                               gvm_h5_error(why, sizeof why));
        else
            st = required(gvm_h5_open_dataset(idx, "clip_id", path, H5T_STRING, 1, &n, &d));
        if (d >= 0) H5Dclose(d);
        if (idx >= 0) H5Gclose(idx);
        *count = (int64_t)n;
    }
    if (st != GVM_OK) {
        free(*created_by);
        *created_by = NULL;
        H5Fclose(f);
        return st;
    }
    info->frame_height = (int32_t)frame_size[0];
    info->frame_width = (int32_t)frame_size[1];
    info->sample_rate = (int32_t)sample_rate;
    info->created_by = *created_by;
    *file = f;
    return GVM_OK;
}

static void free_strings(char **v, int64_t n) {
    if (!v) return;
    for (int64_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void shard_free(gvm_shard *s) {
    if (s->file >= 0) H5Fclose(s->file);
    free_strings(s->ids, s->count);
    free_strings(s->splits, s->count);
    free_strings(s->styles, s->count);
    free(s->entries);
    free(s->created_by);
    free(s->path);
    free(s);
}

static gvm_status load_index(gvm_shard *s) {
    char why[600];
    hid_t idx = H5Gopen2(s->file, GVM_DS_INDEX, H5P_DEFAULT);
    if (idx < 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot open /" GVM_DS_INDEX ": %s", s->path,
                             gvm_h5_error(why, sizeof why));
    int64_t n = s->count;
    int64_t *frames = calloc((size_t)(n ? n : 1), sizeof *frames);
    int64_t *samples = calloc((size_t)(n ? n : 1), sizeof *samples);
    s->entries = calloc((size_t)(n ? n : 1), sizeof *s->entries);
    gvm_status st = GVM_OK;
    if (!frames || !samples || !s->entries) st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", s->path);
    if (st == GVM_OK) st = required(gvm_h5_read_str_column(idx, "clip_id", s->path, n, &s->ids));
    if (st == GVM_OK) st = required(gvm_h5_read_str_column(idx, "split", s->path, n, &s->splits));
    if (st == GVM_OK) st = required(gvm_h5_read_str_column(idx, "style", s->path, n, &s->styles));
    if (st == GVM_OK) st = required(gvm_h5_read_i64_column(idx, "num_frames", s->path, n, frames));
    if (st == GVM_OK) st = required(gvm_h5_read_i64_column(idx, "num_samples", s->path, n, samples));
    for (int64_t i = 0; st == GVM_OK && i < n; i++) {
        if (frames[i] < 1 || frames[i] > GVM_DS_MAX_DIM || samples[i] < 1 || samples[i] > GVM_DS_MAX_DIM)
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: clip %lld (%s): the index gives %lld frames and %lld samples "
                               "(want >= 1)", s->path, (long long)i, s->ids[i], (long long)frames[i],
                               (long long)samples[i]);
        else
            s->entries[i] = (gvm_clip_entry){s->ids[i], s->splits[i], s->styles[i], frames[i], samples[i]};
    }
    free(frames);
    free(samples);
    H5Gclose(idx);
    return st;
}

gvm_status gvm_shard_open(const char *path, gvm_shard **out) {
    *out = NULL;
    gvm_shard *s = calloc(1, sizeof *s);
    if (!s) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    s->file = -1;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    }
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    gvm_status st = gvm_ds_open_file(path, false, &s->file, &s->info, &s->created_by, &s->count);
    if (st == GVM_OK) st = load_index(s);
    if (st != GVM_OK) shard_free(s);
    gvm_h5_leave(&g);
    if (st == GVM_OK) *out = s;
    return st;
}

void gvm_shard_close(gvm_shard *s) {
    if (!s) return;
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    shard_free(s);
    gvm_h5_leave(&g);
}

int64_t gvm_shard_clip_count(const gvm_shard *s) { return s->count; }
const gvm_shard_info *gvm_shard_get_info(const gvm_shard *s) { return &s->info; }
const char *gvm_shard_path(const gvm_shard *s) { return s->path; }

const gvm_clip_entry *gvm_shard_entry(const gvm_shard *s, int64_t index) {
    return index >= 0 && index < s->count ? &s->entries[index] : NULL;
}

int64_t gvm_shard_find(const gvm_shard *s, const char *clip_id) {
    for (int64_t i = 0; i < s->count; i++)
        if (strcmp(s->ids[i], clip_id) == 0) return i;
    return -1;
}

void gvm_clip_free(gvm_clip *c) {
    if (!c) return;
    free((void *)c->clip_id);
    free((void *)c->source_file);
    free((void *)c->style);
    free((void *)c->split);
    free((void *)c->frames);
    free((void *)c->audio);
    free((void *)c->codes.data);
    free((void *)c->codes.codec);
    free((void *)c->features.data);
    free((void *)c->features.source);
    memset(c, 0, sizeof *c);
}

// ---- one clip ---------------------------------------------------------------------------------------------------
// Open dataset `name` of the clip and check its element type: class, size in bytes, and for integers
// whether signed. Missing: GVM_ERR_NOT_FOUND (the caller decides whether the part is optional).
static gvm_status open_part(hid_t group, const char *name, const char *where, H5T_class_t cls, size_t size,
                            H5T_sign_t sign, int rank, hsize_t *dims, hid_t *d) {
    gvm_status st = gvm_h5_open_dataset(group, name, where, cls, rank, dims, d);
    if (st != GVM_OK) return st;
    hid_t t = H5Dget_type(*d);
    bool ok = t >= 0 && H5Tget_size(t) == size && (cls != H5T_INTEGER || H5Tget_sign(t) == sign);
    if (t >= 0) H5Tclose(t);
    if (ok) return GVM_OK;
    H5Dclose(*d);
    *d = -1;
    const char *want = cls == H5T_FLOAT ? (size == 2 ? "float16" : "float32")
                       : sign == H5T_SGN_NONE ? "uint8"
                                              : "int16";
    return gvm_error_set(GVM_ERR_FORMAT, "%s: dataset '%s' has the wrong dtype (want %s)", where, name, want);
}

// malloc for an array of `dims` elements of `elem` bytes; NULL on overflow or failure.
static void *alloc_array(const hsize_t *dims, int rank, size_t elem) {
    size_t n = elem;
    for (int i = 0; i < rank; i++)
        if (__builtin_mul_overflow(n, (size_t)dims[i], &n)) return NULL;
    return malloc(n ? n : 1);
}

// Parts whose stored chunks were copied under the lock, to decode once it is released.
typedef struct pending {
    struct {
        gvm_ds_raw raw;
        void *dst;         // the part's buffer, already owned by the clip
        const char *name;  // "frames", "audio", ...
    } part[4];
    int n;
} pending;

// Read a part into a new buffer: its raw chunks (decoded later, see pending) where dataset_chunks.c knows the
// storage, else the whole part with H5Dread.
static gvm_status read_part(hid_t d, hid_t mtype, const hsize_t *dims, int rank, size_t elem, const char *where,
                            const char *name, pending *pd, void **out) {
    char why[600];
    void *buf = alloc_array(dims, rank, elem);
    if (!buf) return gvm_error_set(GVM_ERR_MEMORY, "%s: '%s': out of memory for its data", where, name);
    bool fast = false;
    gvm_status st = gvm_ds_raw_read(d, mtype, where, name, &pd->part[pd->n].raw, &fast);
    if (st != GVM_OK) {
        free(buf);
        return st;
    }
    if (fast) {
        pd->part[pd->n].dst = buf;
        pd->part[pd->n].name = name;
        pd->n++;
        *out = buf;
        return GVM_OK;
    }
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read '%s' (%s): the shard is damaged; copy it again or "
                             "rebuild it with `gvm prep`", where, name, gvm_h5_error(why, sizeof why));
    }
    *out = buf;
    return GVM_OK;
}

static gvm_status read_metadata(gvm_shard *s, hid_t grp, int64_t index, const char *where, gvm_clip *out) {
    const gvm_clip_entry *e = &s->entries[index];
    char *id = NULL, *src = NULL, *style = NULL, *split = NULL;
    int64_t rate = 0;
    gvm_status st = required(gvm_h5_read_str_attr(grp, "clip_id", where, &id));
    if (st == GVM_OK) st = required(gvm_h5_read_str_attr(grp, "source_file", where, &src));
    if (st == GVM_OK) st = required(gvm_h5_read_str_attr(grp, "style", where, &style));
    if (st == GVM_OK) st = required(gvm_h5_read_str_attr(grp, "split", where, &split));
    if (st == GVM_OK) st = required(gvm_h5_read_f64_attr(grp, "start_time", where, &out->start_time));
    if (st == GVM_OK) st = required(gvm_h5_read_f64_attr(grp, "duration", where, &out->duration));
    if (st == GVM_OK) st = required(gvm_h5_read_f64_attr(grp, "fps", where, &out->fps));
    if (st == GVM_OK) st = required(gvm_h5_read_int_attr(grp, "sample_rate", where, &rate));
    // The index and the group were written together; a difference means the file was edited or damaged.
    if (st == GVM_OK && (strcmp(id, e->clip_id) != 0 || strcmp(split, e->split) != 0 || strcmp(style, e->style) != 0))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: the clip group (id '%s', split '%s', style '%s') disagrees with the "
                           "index", where, id, split, style);
    if (st == GVM_OK && (out->fps != s->info.fps || rate != s->info.sample_rate))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: fps %g and sample_rate %lld differ from the shard's (%g, %d)", where,
                           out->fps, (long long)rate, s->info.fps, (int)s->info.sample_rate);
    out->clip_id = id;
    out->source_file = src;
    out->style = style;
    out->split = split;
    out->sample_rate = (int32_t)rate;
    return st;
}

static gvm_status read_clip_locked(gvm_shard *s, int64_t index, unsigned parts, const char *where, pending *pd,
                                   gvm_clip *out) {
    const gvm_clip_entry *e = &s->entries[index];
    char name[64], why[600];
    gvm_ds_clip_group_name(index, name, sizeof name);
    htri_t exists = H5Lexists(s->file, name, H5P_DEFAULT);
    hid_t grp = exists > 0 ? H5Gopen2(s->file, name, H5P_DEFAULT) : -1;
    if (grp < 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: the group /%s is missing or unreadable (%s): the shard is damaged; "
                             "rebuild it with `gvm prep`", where, name,
                             exists == 0 ? "no such group" : gvm_h5_error(why, sizeof why));
    gvm_status st = read_metadata(s, grp, index, where, out);
    hid_t d = -1;
    hsize_t dims[4];
    void *data = NULL;

    // frames uint8 [T_v, H, W, 3]: its length must agree with the index, its frame size with the shard.
    if (st == GVM_OK) st = required(open_part(grp, "frames", where, H5T_INTEGER, 1, H5T_SGN_NONE, 4, dims, &d));
    if (st == GVM_OK && ((int64_t)dims[0] != e->num_frames || (int64_t)dims[1] != s->info.frame_height ||
                         (int64_t)dims[2] != s->info.frame_width || dims[3] != 3))
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: frames are [%llu, %llu, %llu, %llu], want [%lld, %d, %d, 3]", where,
                           (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                           (unsigned long long)dims[3], (long long)e->num_frames, (int)s->info.frame_height,
                           (int)s->info.frame_width);
    if (st == GVM_OK) {
        out->num_frames = e->num_frames;
        out->height = s->info.frame_height;
        out->width = s->info.frame_width;
        if (parts & GVM_CLIP_FRAMES) st = read_part(d, H5T_NATIVE_UINT8, dims, 4, 1, where, "frames", pd, &data);
        out->frames = data;
        data = NULL;
    }
    if (d >= 0) { H5Dclose(d); d = -1; }

    // audio f32 [T_a]
    if (st == GVM_OK) st = required(open_part(grp, "audio", where, H5T_FLOAT, 4, H5T_SGN_ERROR, 1, dims, &d));
    if (st == GVM_OK && (int64_t)dims[0] != e->num_samples)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: audio has %llu samples, the index says %lld", where,
                           (unsigned long long)dims[0], (long long)e->num_samples);
    if (st == GVM_OK) {
        out->num_samples = e->num_samples;
        if (parts & GVM_CLIP_AUDIO) st = read_part(d, H5T_NATIVE_FLOAT, dims, 1, 4, where, "audio", pd, &data);
        out->audio = data;
        data = NULL;
    }
    if (d >= 0) { H5Dclose(d); d = -1; }

    // codes int16 [K, T_m], optional
    if (st == GVM_OK) {
        st = open_part(grp, "codes", where, H5T_INTEGER, 2, H5T_SGN_2, 2, dims, &d);
        if (st == GVM_ERR_NOT_FOUND) st = GVM_OK;  // not encoded yet
        else if (st == GVM_OK && (dims[0] < 1 || dims[0] > 1024 || dims[1] < 1))
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: codes are [%llu, %llu], want [K in 1..1024, T >= 1]", where,
                               (unsigned long long)dims[0], (unsigned long long)dims[1]);
        else if (st == GVM_OK) {
            char *codec = NULL;
            st = required(gvm_h5_read_str_attr(d, "codec", where, &codec));
            out->codes.codec = codec;
            if (st == GVM_OK) st = required(gvm_h5_read_f64_attr(d, "frame_rate", where, &out->codes.frame_rate));
            out->codes.k = (int32_t)dims[0];
            out->codes.t = (int64_t)dims[1];
            if (st == GVM_OK && (parts & GVM_CLIP_CODES))
                st = read_part(d, H5T_NATIVE_INT16, dims, 2, 2, where, "codes", pd, &data);
            out->codes.data = data;
            data = NULL;
        }
        if (d >= 0) { H5Dclose(d); d = -1; }
    }

    // features f16 [T_v, S, D], optional
    if (st == GVM_OK) {
        st = open_part(grp, "features", where, H5T_FLOAT, 2, H5T_SGN_ERROR, 3, dims, &d);
        if (st == GVM_ERR_NOT_FOUND) st = GVM_OK;
        else if (st == GVM_OK && ((int64_t)dims[0] != e->num_frames || dims[1] < 1 || dims[2] < 1))
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: features are [%llu, %llu, %llu], want [%lld, S >= 1, D >= 1]",
                               where, (unsigned long long)dims[0], (unsigned long long)dims[1],
                               (unsigned long long)dims[2], (long long)e->num_frames);
        else if (st == GVM_OK) {
            char *source = NULL;
            st = required(gvm_h5_read_str_attr(d, "source", where, &source));
            out->features.source = source;
            out->features.t = (int64_t)dims[0];
            out->features.tokens = (int64_t)dims[1];
            out->features.dim = (int64_t)dims[2];
            hid_t mt = gvm_h5_f16_type(H5T_NATIVE_FLOAT);
            if (st == GVM_OK && (parts & GVM_CLIP_FEATURES))
                st = mt < 0 ? gvm_error_set(GVM_ERR_FORMAT, "%s: cannot make the f16 type: %s", where,
                                            gvm_h5_error(why, sizeof why))
                            : read_part(d, mt, dims, 3, 2, where, "features", pd, &data);
            if (mt >= 0) H5Tclose(mt);
            out->features.data = data;
            data = NULL;
        }
        if (d >= 0) { H5Dclose(d); d = -1; }
    }
    H5Gclose(grp);
    return st;
}

gvm_status gvm_shard_read_clip_parts(gvm_shard *s, int64_t index, unsigned parts, gvm_clip *out) {
    memset(out, 0, sizeof *out);
    if (index < 0 || index >= s->count)
        return gvm_error_set(GVM_ERR_INVALID, "%s: clip index %lld out of range (the shard has %lld clips)", s->path,
                             (long long)index, (long long)s->count);
    char where[1400];
    snprintf(where, sizeof where, "%s: clip %lld (%s)", s->path, (long long)index, s->entries[index].clip_id);
    pending pd = {.n = 0};
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    gvm_status st = read_clip_locked(s, index, parts, where, &pd, out);
    gvm_h5_leave(&g);
    // The lock is free again: other threads read their clips while this one inflates.
    for (int i = 0; i < pd.n; i++) {
        if (st == GVM_OK) st = gvm_ds_raw_decode(&pd.part[i].raw, pd.part[i].dst, where, pd.part[i].name);
        gvm_ds_raw_free(&pd.part[i].raw);
    }
    if (st != GVM_OK) gvm_clip_free(out);
    return st;
}

gvm_status gvm_shard_read_clip(gvm_shard *s, int64_t index, gvm_clip *out) {
    return gvm_shard_read_clip_parts(s, index, GVM_CLIP_ALL, out);
}

gvm_status gvm_shard_clip_parts(gvm_shard *s, int64_t index, unsigned *present) {
    *present = 0;
    if (index < 0 || index >= s->count)
        return gvm_error_set(GVM_ERR_INVALID, "%s: clip index %lld out of range (the shard has %lld clips)", s->path,
                             (long long)index, (long long)s->count);
    char name[64], why[600];
    gvm_ds_clip_group_name(index, name, sizeof name);
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    gvm_status st = GVM_OK;
    hid_t grp = H5Lexists(s->file, name, H5P_DEFAULT) > 0 ? H5Gopen2(s->file, name, H5P_DEFAULT) : -1;
    if (grp < 0) {
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: clip %lld (%s): the group /%s is missing or unreadable (%s)", s->path,
                           (long long)index, s->ids[index], name, gvm_h5_error(why, sizeof why));
    } else {
        static const char *names[] = {"frames", "audio", "codes", "features"};
        for (unsigned i = 0; i < 4; i++)
            if (H5Lexists(grp, names[i], H5P_DEFAULT) > 0) *present |= 1u << i;
        H5Gclose(grp);
    }
    gvm_h5_leave(&g);
    return st;
}
