// dataset_update.c: filling the optional slots (codec codes, cached vision features) of clips in an
// existing shard, in place: `gvm encode` adds codes after `gvm prep`, and the trainer may cache features.
// The frames, audio, metadata and index are never touched.
#include "data/dataset_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gvm_shard_updater {
    char *path;
    hid_t file;
    gvm_shard_info info;
    char *created_by;
    int64_t count;
    gvm_status failed;      // an HDF5 failure mid-update: the file may be damaged, so stop writing
    char failed_msg[2048];
};

gvm_status gvm_shard_update_open(const char *path, gvm_shard_updater **out) {
    *out = NULL;
    gvm_shard_updater *u = calloc(1, sizeof *u);
    if (!u || !(u->path = strdup(path))) {
        free(u);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    }
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    gvm_status st = gvm_ds_open_file(path, true, &u->file, &u->info, &u->created_by, &u->count);
    gvm_h5_leave(&g);
    if (st != GVM_OK) {
        free(u->path);
        free(u);
        return st;
    }
    *out = u;
    return GVM_OK;
}

// Replace a string / number attribute of `obj` (delete, then write anew).
static herr_t replace_str_attr(hid_t obj, const char *name, const char *value) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
    return gvm_h5_write_str_attr(obj, name, value);
}
static herr_t replace_f64_attr(hid_t obj, const char *name, double value) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
    return gvm_h5_write_f64_attr(obj, name, value);
}

// When `reuse` and the group holds dataset `name` of exactly this file type and shape, open it (so the
// caller can overwrite it where it lies) and return 1; otherwise unlink any dataset of that name and
// return 0 (HDF5 1.10 does not reuse the space of an unlinked dataset until the file is repacked, so
// overwriting in place is what keeps repeated `gvm encode` runs from growing the shard). < 0 on failure.
static int reuse_or_unlink(hid_t grp, const char *name, bool reuse, hid_t ftype, int rank, const hsize_t *dims,
                           hid_t *d) {
    *d = -1;
    htri_t exists = H5Lexists(grp, name, H5P_DEFAULT);
    if (exists < 0) return -1;
    if (exists == 0) return 0;
    if (!reuse) return H5Ldelete(grp, name, H5P_DEFAULT) < 0 ? -1 : 0;
    hid_t ds = H5Dopen2(grp, name, H5P_DEFAULT);
    if (ds < 0) return H5Ldelete(grp, name, H5P_DEFAULT) < 0 ? -1 : 0;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    hsize_t got[8];
    bool same = t >= 0 && sp >= 0 && H5Tequal(t, ftype) > 0 && H5Sget_simple_extent_ndims(sp) == rank &&
                H5Sget_simple_extent_dims(sp, got, NULL) == rank;
    for (int i = 0; same && i < rank; i++) same = got[i] == dims[i];
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (same) {
        *d = ds;
        return 1;
    }
    H5Dclose(ds);
    return H5Ldelete(grp, name, H5P_DEFAULT) < 0 ? -1 : 0;
}

// Open clip `index`'s group; builds the message prefix ("file: clip 3 (id)") into where.
static gvm_status open_clip(gvm_shard_updater *u, int64_t index, char *where, size_t where_size, hid_t *grp) {
    *grp = -1;
    snprintf(where, where_size, "%s: clip %lld", u->path, (long long)index);
    if (u->failed != GVM_OK)
        return gvm_error_set(u->failed, "%s (an earlier failure: no more updates to this shard)", u->failed_msg);
    if (index < 0 || index >= u->count)
        return gvm_error_set(GVM_ERR_INVALID, "%s: clip index out of range (the shard has %lld clips)", where,
                             (long long)u->count);
    char name[64], why[600];
    gvm_ds_clip_group_name(index, name, sizeof name);
    *grp = H5Lexists(u->file, name, H5P_DEFAULT) > 0 ? H5Gopen2(u->file, name, H5P_DEFAULT) : -1;
    if (*grp < 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: the group /%s is missing or unreadable (%s): rebuild the shard with "
                             "`gvm prep`", where, name, gvm_h5_error(why, sizeof why));
    char *id = NULL;
    if (gvm_h5_read_str_attr(*grp, "clip_id", where, &id) == GVM_OK) {
        size_t n = strlen(where);
        snprintf(where + n, where_size - n, " (%s)", id);
    }
    free(id);
    return GVM_OK;
}

static gvm_status update_failed(gvm_shard_updater *u, const char *where, const char *what) {
    char why[600];
    gvm_status st = gvm_error_set(GVM_ERR_IO, "%s: cannot write the %s (%s): the shard may be damaged; rebuild it "
                                  "with `gvm prep` if it no longer opens", where, what, gvm_h5_error(why, sizeof why));
    u->failed = st;
    snprintf(u->failed_msg, sizeof u->failed_msg, "%s", gvm_error_message());
    return st;
}

gvm_status gvm_shard_update_codes(gvm_shard_updater *u, int64_t index, const gvm_codes *codes) {
    char where[1400];
    bool set = codes && codes->data;
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    hid_t grp, d = -1;
    gvm_status st = open_clip(u, index, where, sizeof where, &grp);
    if (st == GVM_OK && set) st = gvm_ds_codes_check(codes, where);
    if (st == GVM_OK) {
        hsize_t dims[2] = {set ? (hsize_t)codes->k : 0, set ? (hsize_t)codes->t : 0};
        int reuse = reuse_or_unlink(grp, "codes", set, H5T_STD_I16LE, 2, dims, &d);
        herr_t rc = reuse < 0 ? -1 : 0;
        if (reuse == 1)
            rc = H5Dwrite(d, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes->data) < 0 ||
                         replace_str_attr(d, "codec", codes->codec) < 0 ||
                         replace_f64_attr(d, "frame_rate", codes->frame_rate) < 0
                     ? -1
                     : 0;
        else if (reuse == 0 && set)
            rc = gvm_h5_write_codes(grp, codes);
        if (d >= 0 && H5Dclose(d) < 0) rc = -1;  // closing flushes the overwritten chunks
        d = -1;
        if (rc < 0) st = update_failed(u, where, "codes");
    }
    if (d >= 0) H5Dclose(d);
    if (grp >= 0) H5Gclose(grp);
    gvm_h5_leave(&g);
    return st;
}

gvm_status gvm_shard_update_features(gvm_shard_updater *u, int64_t index, const gvm_features *f) {
    char where[1400], why[600];
    bool set = f && f->data;
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    hid_t grp, d = -1, ft = -1;
    gvm_status st = open_clip(u, index, where, sizeof where, &grp);
    if (st == GVM_OK && set) {
        // One row per frame: the clip's T_v comes from its frames dataset.
        hsize_t fdims[4];
        hid_t fr;
        st = gvm_h5_open_dataset(grp, "frames", where, H5T_INTEGER, 4, fdims, &fr);
        if (st == GVM_ERR_NOT_FOUND) st = GVM_ERR_FORMAT;
        if (st == GVM_OK) {
            H5Dclose(fr);
            st = gvm_ds_features_check(f, (int64_t)fdims[0], where);
        }
    }
    if (st == GVM_OK && (ft = gvm_h5_f16_type(H5T_IEEE_F32LE)) < 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot make the f16 type: %s", where, gvm_h5_error(why, sizeof why));
    if (st == GVM_OK) {
        hsize_t dims[3] = {set ? (hsize_t)f->t : 0, set ? (hsize_t)f->tokens : 0, set ? (hsize_t)f->dim : 0};
        int reuse = reuse_or_unlink(grp, "features", set, ft, 3, dims, &d);
        herr_t rc = reuse < 0 ? -1 : 0;
        if (reuse == 1) {
            hid_t mt = gvm_h5_f16_type(H5T_NATIVE_FLOAT);
            rc = mt < 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, f->data) < 0 ||
                         replace_str_attr(d, "source", f->source) < 0
                     ? -1
                     : 0;
            if (mt >= 0) H5Tclose(mt);
        } else if (reuse == 0 && set) {
            rc = gvm_h5_write_features(grp, f);
        }
        if (d >= 0 && H5Dclose(d) < 0) rc = -1;
        d = -1;
        if (rc < 0) st = update_failed(u, where, "features");
    }
    if (ft >= 0) H5Tclose(ft);
    if (d >= 0) H5Dclose(d);
    if (grp >= 0) H5Gclose(grp);
    gvm_h5_leave(&g);
    return st;
}

gvm_status gvm_shard_update_close(gvm_shard_updater *u) {
    if (!u) return GVM_OK;
    char why[600];
    gvm_status st = u->failed;
    if (st != GVM_OK) gvm_error_set(st, "%s", u->failed_msg);
    gvm_h5_guard g;
    gvm_h5_enter(&g);
    if (H5Fclose(u->file) < 0 && st == GVM_OK)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot finish the update (%s): the shard may be damaged", u->path,
                           gvm_h5_error(why, sizeof why));
    gvm_h5_leave(&g);
    if (st == GVM_OK) st = gvm_ds_fsync_file(u->path);
    free(u->created_by);
    free(u->path);
    free(u);
    return st;
}

gvm_status gvm_shard_write_codes(const char *path, int64_t index, const gvm_codes *codes) {
    gvm_shard_updater *u;
    gvm_status st = gvm_shard_update_open(path, &u);
    if (st != GVM_OK) return st;
    st = gvm_shard_update_codes(u, index, codes);
    if (st != GVM_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", gvm_error_message());
        gvm_shard_update_close(u);  // keeps the first error's message below
        return gvm_error_set(st, "%s", msg);
    }
    return gvm_shard_update_close(u);
}
