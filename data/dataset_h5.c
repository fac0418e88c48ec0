// dataset_h5.c: the HDF5 plumbing under the dataset writer, reader and updater: the process-wide lock,
// HDF5's error stack turned into one line for our messages, typed attribute and dataset helpers that
// check what they read, and the checks shared by the writer and the updater.
#include "data/dataset_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// One lock for the process: a serial HDF5 library shares state between all its files (dataset.h, Threads).
static pthread_mutex_t g_h5_mutex = PTHREAD_MUTEX_INITIALIZER;

void gvm_hdf5_lock(void) { pthread_mutex_lock(&g_h5_mutex); }
void gvm_hdf5_unlock(void) { pthread_mutex_unlock(&g_h5_mutex); }

typedef struct h5_walk {
    char inner[256];  // the first entry walking upward: where the error was first detected
    char outer[256];  // the last: the API call that failed
} h5_walk;

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    h5_walk *w = data;
    const char *desc = e->desc && e->desc[0] ? e->desc : (e->func_name ? e->func_name : "?");
    if (n == 0) snprintf(w->inner, sizeof w->inner, "%s", desc);
    snprintf(w->outer, sizeof w->outer, "%s", desc);
    return 0;
}

static void h5_describe(hid_t estack, char *buf, size_t size) {
    h5_walk w = {{0}, {0}};
    H5Ewalk2(estack, H5E_WALK_UPWARD, h5_walk_cb, &w);
    if (!w.inner[0])
        buf[0] = '\0';
    else if (strcmp(w.inner, w.outer) == 0)
        snprintf(buf, size, "%s", w.inner);
    else
        snprintf(buf, size, "%s [%s]", w.inner, w.outer);
    // Some descriptions hold a ctime() stamp with its newline: keep our message on one line.
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
}

// The description of the last failed HDF5 call (guarded by g_h5_mutex). HDF5 clears its error stack at
// the start of every API call, so by the time we build a message, cleanup calls (H5Pclose, H5Dclose)
// have emptied it; the automatic error handler runs as the failing call returns, which is the moment to
// keep the description.
static char g_h5_last[600];

static herr_t h5_capture(hid_t estack, void *data) {
    (void)data;
    h5_describe(estack, g_h5_last, sizeof g_h5_last);
    return 0;
}

void gvm_h5_enter(gvm_h5_guard *g) {
    pthread_mutex_lock(&g_h5_mutex);
    // Save and restore instead of replacing the handler for good: another HDF5 user in this process
    // keeps its own setting (by default, printing to stderr).
    if (H5Eget_auto2(H5E_DEFAULT, &g->func, &g->data) < 0) {
        g->func = NULL;
        g->data = NULL;
    }
    g_h5_last[0] = '\0';
    H5Eset_auto2(H5E_DEFAULT, h5_capture, NULL);
}

void gvm_h5_leave(gvm_h5_guard *g) {
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, g->func, g->data);
    pthread_mutex_unlock(&g_h5_mutex);
}

const char *gvm_h5_error(char *buf, size_t size) {
    if (g_h5_last[0]) snprintf(buf, size, "%s", g_h5_last);
    else h5_describe(H5E_DEFAULT, buf, size);
    if (!buf[0]) snprintf(buf, size, "HDF5 reported no cause");
    g_h5_last[0] = '\0';
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

hid_t gvm_h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#if H5_VERSION_GE(1, 10, 7)
    // Lock (so a writer and a reader in two processes do not meet), but carry on where the file system
    // has no locks, as cluster file systems often do. HDF5_USE_FILE_LOCKING=FALSE still turns it off.
    if (H5Pset_file_locking(fapl, 1, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#endif
    return fapl;
}

hid_t gvm_h5_f16_type(hid_t base) {
    // The recipe h5py uses for numpy float16: an IEEE float narrowed to sign 15, exponent 10..14 (bias
    // 15), mantissa 0..9.
    hid_t t = H5Tcopy(base);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

void gvm_ds_clip_group_name(int64_t index, char *buf, size_t size) {
    snprintf(buf, size, GVM_DS_CLIPS "/%08lld", (long long)index);
}

// ---- validation ---------------------------------------------------------------------------------------------------
bool gvm_ds_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n;
        unsigned cp;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return false;  // a continuation byte first, an overlong 2-byte lead, or beyond U+10FFFF
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) return false;  // overlong
        if (cp >= 0xd800 && cp <= 0xdfff) return false;  // UTF-16 surrogates are not characters
        p += n + 1;
    }
    return true;
}

gvm_status gvm_ds_codes_check(const gvm_codes *c, const char *where) {
    if (c->k < 1 || c->k > 1024)
        return gvm_error_set(GVM_ERR_INVALID, "%s: codes: %d codebooks (want 1..1024)", where, (int)c->k);
    if (c->t < 1 || c->t > GVM_DS_MAX_DIM)
        return gvm_error_set(GVM_ERR_INVALID, "%s: codes: %lld frames (want >= 1)", where, (long long)c->t);
    if (!(c->frame_rate > 0) || !isfinite(c->frame_rate))
        return gvm_error_set(GVM_ERR_INVALID, "%s: codes: frame rate %g (want > 0)", where, c->frame_rate);
    if (!c->codec || !c->codec[0] || !gvm_ds_utf8_valid(c->codec))
        return gvm_error_set(GVM_ERR_INVALID, "%s: codes: the codec name is missing or not UTF-8 (name the codec, "
                             "e.g. \"encodec_32khz\", so readers can check it)", where);
    return GVM_OK;
}

gvm_status gvm_ds_features_check(const gvm_features *f, int64_t num_frames, const char *where) {
    if (f->t != num_frames)
        return gvm_error_set(GVM_ERR_INVALID, "%s: features: %lld rows but the clip has %lld frames (one row per "
                             "frame)", where, (long long)f->t, (long long)num_frames);
    if (f->tokens < 1 || f->tokens > 1000000 || f->dim < 1 || f->dim > 1000000)
        return gvm_error_set(GVM_ERR_INVALID, "%s: features: [tokens %lld, dim %lld] out of range (want >= 1)", where,
                             (long long)f->tokens, (long long)f->dim);
    if (!f->source || !f->source[0] || !gvm_ds_utf8_valid(f->source))
        return gvm_error_set(GVM_ERR_INVALID, "%s: features: the source is missing or not UTF-8 (name the model and "
                             "layer, so a stale cache can be detected)", where);
    return GVM_OK;
}

// ---- writing ------------------------------------------------------------------------------------------------------
static void close_all(hid_t a, hid_t sp, hid_t t) {
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
}

static hid_t vlen_utf8_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

herr_t gvm_h5_write_str_attr(hid_t obj, const char *name, const char *value) {
    hid_t t = vlen_utf8_type(), sp = H5Screate(H5S_SCALAR), a = -1;
    herr_t rc = -1;
    if (t >= 0 && sp >= 0) a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) rc = H5Awrite(a, t, &value);
    close_all(a, sp, t);
    return rc;
}

static herr_t write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n, const void *value) {
    hsize_t d = (hsize_t)n;
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL), a = -1;
    herr_t rc = -1;
    if (sp >= 0) a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) rc = H5Awrite(a, mtype, value);
    close_all(a, sp, -1);
    return rc;
}

herr_t gvm_h5_write_i32_attr(hid_t obj, const char *name, int32_t value) {
    return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &value);
}
herr_t gvm_h5_write_f64_attr(hid_t obj, const char *name, double value) {
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &value);
}
herr_t gvm_h5_write_i32_array_attr(hid_t obj, const char *name, const int32_t *values, int n) {
    return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, n, values);
}

herr_t gvm_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                            const hsize_t *chunk, bool shuffle, const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    herr_t rc = -1;
    // Shuffle groups the bytes of each element (all high bytes, then all low ones) so deflate sees runs:
    // it helps multi-byte samples and codes, and does nothing for uint8 frames.
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 && (!shuffle || H5Pset_shuffle(dcpl) >= 0) &&
        H5Pset_deflate(dcpl, GVM_DS_DEFLATE_LEVEL) >= 0)
        ds = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds >= 0) rc = H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    // Closing flushes the dataset's chunk cache: a full disk often shows up here, not in H5Dwrite.
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

herr_t gvm_h5_write_codes(hid_t group, const gvm_codes *c) {
    hsize_t dims[2] = {(hsize_t)c->k, (hsize_t)c->t};
    // One chunk for a whole clip's codes (12 KB for 30 s) up to 64 Ki codec frames (~22 min at 50 Hz).
    hsize_t chunk[2] = {(hsize_t)c->k, (hsize_t)(c->t < 65536 ? c->t : 65536)};
    if (gvm_h5_write_dataset(group, "codes", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, dims, chunk, true, c->data) < 0)
        return -1;
    hid_t d = H5Dopen2(group, "codes", H5P_DEFAULT);
    if (d < 0) return -1;
    herr_t rc = gvm_h5_write_str_attr(d, "codec", c->codec);
    if (rc >= 0) rc = gvm_h5_write_f64_attr(d, "frame_rate", c->frame_rate);
    H5Dclose(d);
    return rc;
}

herr_t gvm_h5_write_features(hid_t group, const gvm_features *f) {
    hsize_t dims[3] = {(hsize_t)f->t, (hsize_t)f->tokens, (hsize_t)f->dim};
    hsize_t chunk[3] = {1, (hsize_t)f->tokens, (hsize_t)f->dim};  // one frame per chunk, like the frames
    hid_t ft = gvm_h5_f16_type(H5T_IEEE_F32LE), mt = gvm_h5_f16_type(H5T_NATIVE_FLOAT);
    herr_t rc = -1;
    if (ft >= 0 && mt >= 0) rc = gvm_h5_write_dataset(group, "features", ft, mt, 3, dims, chunk, true, f->data);
    if (ft >= 0) H5Tclose(ft);
    if (mt >= 0) H5Tclose(mt);
    if (rc < 0) return rc;
    hid_t d = H5Dopen2(group, "features", H5P_DEFAULT);
    if (d < 0) return -1;
    rc = gvm_h5_write_str_attr(d, "source", f->source);
    H5Dclose(d);
    return rc;
}

// ---- reading ------------------------------------------------------------------------------------------------------
// Open attribute `name` and check its class and element count; on success the caller closes *a, *t, *sp.
static gvm_status open_attr(hid_t obj, const char *name, const char *where, H5T_class_t c1, H5T_class_t c2,
                            hssize_t count, hid_t *a, hid_t *t, hid_t *sp) {
    *a = *t = *sp = -1;
    char why[600];
    htri_t exists = H5Aexists(obj, name);
    if (exists < 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot look up attribute '%s': %s", where, name,
                             gvm_h5_error(why, sizeof why));
    if (exists == 0) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: attribute '%s' is missing", where, name);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a >= 0) *t = H5Aget_type(*a);
    if (*t >= 0) *sp = H5Aget_space(*a);
    if (*sp < 0) {
        close_all(*a, -1, *t);
        *a = *t = -1;
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read attribute '%s': %s", where, name,
                             gvm_h5_error(why, sizeof why));
    }
    H5T_class_t cls = H5Tget_class(*t);
    hssize_t n = H5Sget_simple_extent_npoints(*sp);
    if ((cls != c1 && cls != c2) || n != count) {
        close_all(*a, *sp, *t);
        *a = *t = *sp = -1;
        static const char *kinds[] = {"integer", "float", "time", "string", "bitfield", "opaque", "compound",
                                      "reference", "enum", "variable-length", "array"};
        return gvm_error_set(GVM_ERR_FORMAT, "%s: attribute '%s' is %lld value(s) of class %s, want %lld %s", where,
                             name, (long long)n, cls >= 0 && cls < 11 ? kinds[cls] : "unknown", (long long)count,
                             c1 == H5T_STRING                          ? "string"
                             : c1 == H5T_INTEGER && c2 == H5T_INTEGER ? "integer"
                                                                      : "number");
    }
    return GVM_OK;
}

// Read `n` strings of type ft from attribute or dataset `obj` (is_attr says which) into malloc'd copies.
static gvm_status read_strings(hid_t obj, bool is_attr, hid_t ft, hid_t sp, int64_t n, const char *where,
                               const char *name, char **out) {
    char why[600];
    H5T_cset_t cset = H5Tget_cset(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    htri_t is_vlen = H5Tis_variable_str(ft);
    gvm_status st = GVM_OK;
    if (mt < 0 || is_vlen < 0 || H5Tset_cset(mt, cset) < 0) goto h5_failed;
    if (is_vlen) {
        char **ptrs = calloc((size_t)(n ? n : 1), sizeof *ptrs);
        if (!ptrs) {
            H5Tclose(mt);
            return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory reading '%s'", where, name);
        }
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            (is_attr ? H5Aread(obj, mt, ptrs) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs)) < 0) {
            free(ptrs);
            goto h5_failed;
        }
        for (int64_t i = 0; i < n; i++) out[i] = strdup(ptrs[i] ? ptrs[i] : "");
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mt, sp, H5P_DEFAULT, ptrs);  // H5Dvlen_reclaim's name from 1.12 on
#else
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, ptrs);
#endif
        free(ptrs);
    } else {
        // Fixed-length: read into one byte more than stored, null-terminated, so no character is lost.
        size_t len = H5Tget_size(ft);
        char *buf = len > 0 && len < (1u << 20) ? calloc((size_t)(n ? n : 1), len + 1) : NULL;
        if (!buf) {
            H5Tclose(mt);
            return gvm_error_set(GVM_ERR_FORMAT, "%s: '%s': bad string size %zu", where, name, len);
        }
        if (H5Tset_size(mt, len + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            (is_attr ? H5Aread(obj, mt, buf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)) < 0) {
            free(buf);
            goto h5_failed;
        }
        // HDF5's conversion drops the padding of space- and null-padded strings.
        for (int64_t i = 0; i < n; i++) {
            char *s = buf + (size_t)i * (len + 1);
            s[len] = '\0';
            out[i] = strdup(s);
        }
        free(buf);
    }
    H5Tclose(mt);
    for (int64_t i = 0; i < n; i++) {
        if (!out[i]) st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory reading '%s'", where, name);
        else if (!gvm_ds_utf8_valid(out[i]))
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: '%s' holds a string that is not valid UTF-8", where, name);
    }
    if (st != GVM_OK)
        for (int64_t i = 0; i < n; i++) { free(out[i]); out[i] = NULL; }
    return st;
h5_failed:
    if (mt >= 0) H5Tclose(mt);
    return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read strings of '%s': %s", where, name,
                         gvm_h5_error(why, sizeof why));
}

gvm_status gvm_h5_read_str_attr(hid_t obj, const char *name, const char *where, char **out) {
    *out = NULL;
    hid_t a, t, sp;
    gvm_status st = open_attr(obj, name, where, H5T_STRING, H5T_STRING, 1, &a, &t, &sp);
    if (st != GVM_OK) return st;
    st = read_strings(a, true, t, sp, 1, where, name, out);
    close_all(a, sp, t);
    return st;
}

static gvm_status read_number_attr(hid_t obj, const char *name, const char *where, bool integer, int n, void *out) {
    hid_t a, t, sp;
    gvm_status st = open_attr(obj, name, where, H5T_INTEGER, integer ? H5T_INTEGER : H5T_FLOAT, n, &a, &t, &sp);
    if (st != GVM_OK) return st;
    char why[600];
    if (H5Aread(a, integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, out) < 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read attribute '%s': %s", where, name,
                           gvm_h5_error(why, sizeof why));
    close_all(a, sp, t);
    return st;
}

gvm_status gvm_h5_read_int_attr(hid_t obj, const char *name, const char *where, int64_t *out) {
    return read_number_attr(obj, name, where, true, 1, out);
}
gvm_status gvm_h5_read_f64_attr(hid_t obj, const char *name, const char *where, double *out) {
    gvm_status st = read_number_attr(obj, name, where, false, 1, out);
    if (st == GVM_OK && !isfinite(*out))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: attribute '%s' is %g (want a finite number)", where, name, *out);
    return st;
}
gvm_status gvm_h5_read_int_array_attr(hid_t obj, const char *name, const char *where, int64_t *out, int n) {
    return read_number_attr(obj, name, where, true, n, out);
}

gvm_status gvm_h5_open_dataset(hid_t loc, const char *name, const char *where, H5T_class_t cls, int rank,
                               hsize_t *dims, hid_t *dset) {
    *dset = -1;
    char why[600];
    htri_t exists = H5Lexists(loc, name, H5P_DEFAULT);
    if (exists == 0) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: dataset '%s' is missing", where, name);
    hid_t d = exists > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : -1;
    if (d < 0)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: '%s' is not a readable dataset: %s", where, name,
                             gvm_h5_error(why, sizeof why));
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int got_rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    H5T_class_t got_cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    bool ok = got_cls == cls && got_rank == rank && H5Sget_simple_extent_dims(sp, dims, NULL) == rank;
    for (int i = 0; ok && i < rank; i++) ok = dims[i] <= (hsize_t)GVM_DS_MAX_DIM;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        H5Dclose(d);
        static const char *kinds[] = {"integer", "float", "time", "string", "bitfield", "opaque", "compound",
                                      "reference", "enum", "variable-length", "array"};
        return gvm_error_set(GVM_ERR_FORMAT, "%s: dataset '%s' is rank %d of class %s, want rank %d of class %s", where,
                             name, got_rank, got_cls >= 0 && got_cls < 11 ? kinds[got_cls] : "unknown", rank,
                             cls >= 0 && cls < 11 ? kinds[cls] : "unknown");
    }
    *dset = d;
    return GVM_OK;
}

gvm_status gvm_h5_read_str_column(hid_t loc, const char *name, const char *where, int64_t n, char ***out) {
    *out = NULL;
    hsize_t dims[1];
    hid_t d;
    gvm_status st = gvm_h5_open_dataset(loc, name, where, H5T_STRING, 1, dims, &d);
    if (st != GVM_OK) return st;
    if ((int64_t)dims[0] != n) {
        H5Dclose(d);
        return gvm_error_set(GVM_ERR_FORMAT, "%s: index column '%s' has %llu rows, the index has %lld", where, name,
                             (unsigned long long)dims[0], (long long)n);
    }
    char **v = calloc((size_t)(n ? n : 1), sizeof *v);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    if (!v) st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory reading '%s'", where, name);
    else if (t < 0 || sp < 0) st = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read '%s'", where, name);
    else if (n > 0) st = read_strings(d, false, t, sp, n, where, name, v);
    close_all(-1, sp, t);
    H5Dclose(d);
    if (st != GVM_OK) { free(v); return st; }
    *out = v;
    return GVM_OK;
}

gvm_status gvm_h5_read_i64_column(hid_t loc, const char *name, const char *where, int64_t n, int64_t *out) {
    hsize_t dims[1];
    hid_t d;
    gvm_status st = gvm_h5_open_dataset(loc, name, where, H5T_INTEGER, 1, dims, &d);
    if (st != GVM_OK) return st;
    char why[600];
    if ((int64_t)dims[0] != n)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: index column '%s' has %llu rows, the index has %lld", where, name,
                           (unsigned long long)dims[0], (long long)n);
    else if (n > 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read '%s': %s", where, name, gvm_h5_error(why, sizeof why));
    H5Dclose(d);
    return st;
}

// ---- durability ---------------------------------------------------------------------------------------------------
gvm_status gvm_ds_fsync_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gvm_error_set(GVM_ERR_IO, "%s: cannot open to fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return gvm_error_set(GVM_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return GVM_OK;
}

void gvm_ds_fsync_parent(const char *path) {
    // Best effort: some file systems refuse fsync on a folder, and the data itself is already synced.
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}
