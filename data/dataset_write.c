// dataset_write.c: writing a new dataset shard (format v1, docs/dataset-format.md). Clips go to
// "<path>.tmp" one group at a time; the index is written at close, and only a committed close renames the
// file to <path>, so a reader never sees a half-written shard.
#include "data/dataset_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gvm_shard_writer {
    char *path, *tmp;
    hid_t file, clips;      // the open temporary file and its /clips group
    gvm_shard_info info;    // info.created_by points to created_by
    char *created_by;
    int64_t count, cap;     // clips written; capacity of the index arrays
    char **ids, **splits, **styles;
    int64_t *num_frames, *num_samples;
    gvm_status failed;      // GVM_OK, or the HDF5 failure after which the file cannot be trusted
    char failed_msg[2048];  // its message, repeated by later calls (the per-thread message may be gone)
};

static char *dup_or(const char *s, const char *fallback) { return strdup(s ? s : fallback); }

static void writer_free(gvm_shard_writer *w) {
    for (int64_t i = 0; i < w->count; i++) {
        free(w->ids[i]);
        free(w->splits[i]);
        free(w->styles[i]);
    }
    free(w->ids);
    free(w->splits);
    free(w->styles);
    free(w->num_frames);
    free(w->num_samples);
    free(w->created_by);
    free(w->path);
    free(w->tmp);
    free(w);
}

static gvm_status writer_fail(gvm_shard_writer *w, gvm_status st) {
    w->failed = st;
    snprintf(w->failed_msg, sizeof w->failed_msg, "%s", gvm_error_message());
    return st;
}

gvm_status gvm_shard_create(const char *path, const gvm_shard_info *info, gvm_shard_writer **out) {
    *out = NULL;
    if (info->frame_height < 1 || info->frame_height > 65535 || info->frame_width < 1 || info->frame_width > 65535)
        return gvm_error_set(GVM_ERR_INVALID, "%s: frame size %dx%d out of range", path, (int)info->frame_height,
                             (int)info->frame_width);
    if (!(info->fps > 0) || !isfinite(info->fps))
        return gvm_error_set(GVM_ERR_INVALID, "%s: fps %g (want > 0)", path, info->fps);
    if (info->sample_rate < 1 || info->sample_rate > 10000000)
        return gvm_error_set(GVM_ERR_INVALID, "%s: sample rate %d out of range", path, (int)info->sample_rate);
    if (info->created_by && !gvm_ds_utf8_valid(info->created_by))
        return gvm_error_set(GVM_ERR_INVALID, "%s: created_by is not valid UTF-8", path);

    gvm_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    w->file = w->clips = -1;
    size_t n = strlen(path) + 5;
    w->path = strdup(path);
    w->tmp = malloc(n);
    w->created_by = dup_or(info->created_by, "gvm");
    if (!w->path || !w->tmp || !w->created_by) {
        writer_free(w);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp", path);
    w->info = *info;
    w->info.created_by = w->created_by;

    char why[600];
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    gvm_status st = GVM_OK;
    hid_t fapl = gvm_h5_fapl();
    w->file = fapl >= 0 ? H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (w->file < 0) {
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot create (%s): check that the folder exists and is writable, and "
                           "that no other process writes this shard", w->tmp, gvm_h5_error(why, sizeof why));
    } else {
        int32_t frame_size[2] = {info->frame_height, info->frame_width};
        if (gvm_h5_write_i32_attr(w->file, "format_version", GVM_DATASET_FORMAT_VERSION) < 0 ||
            gvm_h5_write_i32_array_attr(w->file, "frame_size", frame_size, 2) < 0 ||
            gvm_h5_write_f64_attr(w->file, "fps", info->fps) < 0 ||
            gvm_h5_write_i32_attr(w->file, "sample_rate", info->sample_rate) < 0 ||
            gvm_h5_write_str_attr(w->file, "created_by", w->created_by) < 0 ||
            (w->clips = H5Gcreate2(w->file, GVM_DS_CLIPS, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot write the file header: %s", w->tmp,
                               gvm_h5_error(why, sizeof why));
    }
    if (st != GVM_OK) {
        if (w->file >= 0) {
            H5Fclose(w->file);
            unlink(w->tmp);
        }
        writer_free(w);
    }
    gvm_h5_leave(&g);
    if (st == GVM_OK) *out = w;
    return st;
}

int64_t gvm_shard_writer_count(const gvm_shard_writer *w) { return w->count; }

// Everything that can be wrong with a clip, checked before the file is touched.
static gvm_status check_clip(const gvm_shard_writer *w, const gvm_clip *c, const char *where) {
    if (!c->clip_id || !c->clip_id[0])
        return gvm_error_set(GVM_ERR_INVALID, "%s: a clip without an id (clip ids must be non-empty)", where);
    const char *strings[4] = {c->clip_id, c->source_file, c->style, c->split};
    const char *names[4] = {"clip id", "source file", "style tag", "split"};
    for (int i = 0; i < 4; i++)
        if (strings[i] && !gvm_ds_utf8_valid(strings[i]))
            return gvm_error_set(GVM_ERR_INVALID, "%s: the %s is not valid UTF-8", where, names[i]);
    for (int64_t i = 0; i < w->count; i++)
        if (strcmp(w->ids[i], c->clip_id) == 0)
            return gvm_error_set(GVM_ERR_INVALID, "%s: the id is already used by clip %lld of this shard", where,
                                 (long long)i);
    if (!(c->start_time >= 0) || !isfinite(c->start_time) || !(c->duration > 0) || !isfinite(c->duration))
        return gvm_error_set(GVM_ERR_INVALID, "%s: start time %g and duration %g (want >= 0 and > 0)", where,
                             c->start_time, c->duration);
    if (c->fps != w->info.fps || c->sample_rate != w->info.sample_rate)
        return gvm_error_set(GVM_ERR_INVALID, "%s: fps %g and sample rate %d differ from the shard's (%g, %d): "
                             "resample the clip, or write it to a shard made for its rates", where, c->fps,
                             (int)c->sample_rate, w->info.fps, (int)w->info.sample_rate);
    if (!c->frames || c->num_frames < 1 || c->num_frames > GVM_DS_MAX_DIM)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %lld frames%s (want >= 1)", where, (long long)c->num_frames,
                             c->frames ? "" : " and no frame data");
    if (c->height != w->info.frame_height || c->width != w->info.frame_width)
        return gvm_error_set(GVM_ERR_INVALID, "%s: frames are %dx%d but the shard's frame size is %dx%d", where,
                             (int)c->height, (int)c->width, (int)w->info.frame_height, (int)w->info.frame_width);
    if (!c->audio || c->num_samples < 1 || c->num_samples > GVM_DS_MAX_DIM)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %lld audio samples%s (want >= 1)", where, (long long)c->num_samples,
                             c->audio ? "" : " and no audio data");
    for (int64_t i = 0; i < c->num_samples; i++)
        if (!isfinite(c->audio[i]))
            return gvm_error_set(GVM_ERR_INVALID, "%s: audio sample %lld is %g (want finite values)", where,
                                 (long long)i, (double)c->audio[i]);
    gvm_status st = GVM_OK;
    if (c->codes.data) st = gvm_ds_codes_check(&c->codes, where);
    if (st == GVM_OK && c->features.data) st = gvm_ds_features_check(&c->features, c->num_frames, where);
    return st;
}

// Write the clip's group; returns < 0 on an HDF5 failure.
static herr_t write_clip(hid_t grp, const gvm_clip *c) {
    if (gvm_h5_write_str_attr(grp, "clip_id", c->clip_id) < 0 ||
        gvm_h5_write_str_attr(grp, "source_file", c->source_file ? c->source_file : "") < 0 ||
        gvm_h5_write_str_attr(grp, "style", c->style ? c->style : "") < 0 ||
        gvm_h5_write_str_attr(grp, "split", c->split ? c->split : "train") < 0 ||
        gvm_h5_write_f64_attr(grp, "start_time", c->start_time) < 0 ||
        gvm_h5_write_f64_attr(grp, "duration", c->duration) < 0 || gvm_h5_write_f64_attr(grp, "fps", c->fps) < 0 ||
        gvm_h5_write_i32_attr(grp, "sample_rate", c->sample_rate) < 0)
        return -1;
    // One frame per chunk: a reader of some frames touches only theirs, and 336x336x3 = 331 KiB fits the
    // default 1 MiB chunk cache.
    hsize_t fdims[4] = {(hsize_t)c->num_frames, (hsize_t)c->height, (hsize_t)c->width, 3};
    hsize_t fchunk[4] = {1, (hsize_t)c->height, (hsize_t)c->width, 3};
    if (gvm_h5_write_dataset(grp, "frames", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, fdims, fchunk, false, c->frames) < 0)
        return -1;
    hsize_t adims[1] = {(hsize_t)c->num_samples};
    hsize_t achunk[1] = {(hsize_t)(c->num_samples < GVM_DS_AUDIO_CHUNK ? c->num_samples : GVM_DS_AUDIO_CHUNK)};
    if (gvm_h5_write_dataset(grp, "audio", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, adims, achunk, true, c->audio) < 0)
        return -1;
    if (c->codes.data && gvm_h5_write_codes(grp, &c->codes) < 0) return -1;
    if (c->features.data && gvm_h5_write_features(grp, &c->features) < 0) return -1;
    return 0;
}

static bool grow(gvm_shard_writer *w) {
    if (w->count < w->cap) return true;
    int64_t cap = w->cap ? 2 * w->cap : 64;
    char **ids = realloc(w->ids, (size_t)cap * sizeof *ids);
    if (ids) w->ids = ids;
    char **splits = realloc(w->splits, (size_t)cap * sizeof *splits);
    if (splits) w->splits = splits;
    char **styles = realloc(w->styles, (size_t)cap * sizeof *styles);
    if (styles) w->styles = styles;
    int64_t *nf = realloc(w->num_frames, (size_t)cap * sizeof *nf);
    if (nf) w->num_frames = nf;
    int64_t *ns = realloc(w->num_samples, (size_t)cap * sizeof *ns);
    if (ns) w->num_samples = ns;
    if (!ids || !splits || !styles || !nf || !ns) return false;
    w->cap = cap;
    return true;
}

gvm_status gvm_shard_add_clip(gvm_shard_writer *w, const gvm_clip *c) {
    if (w->failed != GVM_OK)
        return gvm_error_set(w->failed, "%s (an earlier failure: this shard cannot be completed)", w->failed_msg);
    char where[1400], name[64], why[600];
    snprintf(where, sizeof where, "%s: clip %lld (%s)", w->path, (long long)w->count, c->clip_id ? c->clip_id : "");
    gvm_status st = check_clip(w, c, where);
    if (st != GVM_OK) return st;
    if (!grow(w)) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", where);
    char *id = strdup(c->clip_id), *split = dup_or(c->split, "train"), *style = dup_or(c->style, "");
    if (!id || !split || !style) {
        free(id);
        free(split);
        free(style);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", where);
    }
    gvm_ds_clip_group_name(w->count, name, sizeof name);
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    hid_t grp = H5Gcreate2(w->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = grp >= 0 ? write_clip(grp, c) : -1;
    if (grp >= 0) H5Gclose(grp);
    if (rc < 0) {
        st = writer_fail(w, gvm_error_set(GVM_ERR_IO, "%s: cannot write the clip to %s (%s): is the disk full?", where,
                                          w->tmp, gvm_h5_error(why, sizeof why)));
    }
    gvm_h5_leave(&g);
    if (st != GVM_OK) {
        free(id);
        free(split);
        free(style);
        return st;
    }
    w->ids[w->count] = id;
    w->splits[w->count] = split;
    w->styles[w->count] = style;
    w->num_frames[w->count] = c->num_frames;
    w->num_samples[w->count] = c->num_samples;
    w->count++;
    return GVM_OK;
}

static herr_t write_str_column(hid_t loc, const char *name, char **values, int64_t n) {
    hsize_t d = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate_simple(1, &d, NULL), ds = -1;
    herr_t rc = -1;
    if (t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
        ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) rc = n > 0 ? H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) : 0;
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

static herr_t write_i64_column(hid_t loc, const char *name, const int64_t *values, int64_t n) {
    hsize_t d = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &d, NULL), ds = -1;
    herr_t rc = -1;
    if (sp >= 0) ds = H5Dcreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) rc = n > 0 ? H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) : 0;
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

// The index: one row per clip, in clip order, so a reader counts and addresses clips without walking groups.
static herr_t write_index(gvm_shard_writer *w) {
    hid_t idx = H5Gcreate2(w->file, GVM_DS_INDEX, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (idx < 0) return -1;
    herr_t rc = write_str_column(idx, "clip_id", w->ids, w->count);
    if (rc >= 0) rc = write_str_column(idx, "split", w->splits, w->count);
    if (rc >= 0) rc = write_str_column(idx, "style", w->styles, w->count);
    if (rc >= 0) rc = write_i64_column(idx, "num_frames", w->num_frames, w->count);
    if (rc >= 0) rc = write_i64_column(idx, "num_samples", w->num_samples, w->count);
    H5Gclose(idx);
    return rc;
}

gvm_status gvm_shard_writer_close(gvm_shard_writer *w, bool commit) {
    if (!w) return GVM_OK;
    char why[600];
    gvm_status st = GVM_OK;
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    if (commit && w->failed != GVM_OK)
        st = gvm_error_set(w->failed, "%s (so the shard was not written; %s removed)", w->failed_msg, w->tmp);
    if (commit && st == GVM_OK && write_index(w) < 0)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot write the index (%s): is the disk full?", w->tmp,
                           gvm_h5_error(why, sizeof why));
    if (w->clips >= 0) H5Gclose(w->clips);
    // H5Fclose flushes every buffered chunk and the metadata: its failure is a failed write.
    if (H5Fclose(w->file) < 0 && commit && st == GVM_OK)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot finish the file (%s): is the disk full?", w->tmp,
                           gvm_h5_error(why, sizeof why));
    gvm_h5_leave(&g);
    if (commit && st == GVM_OK) st = gvm_ds_fsync_file(w->tmp);
    if (commit && st == GVM_OK && rename(w->tmp, w->path) != 0)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
    if (commit && st == GVM_OK) gvm_ds_fsync_parent(w->path);
    if (!commit || st != GVM_OK) {
        if (unlink(w->tmp) != 0 && errno != ENOENT && st == GVM_OK)
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot remove the temporary file: %s", w->tmp, strerror(errno));
    }
    writer_free(w);
    return st;
}
