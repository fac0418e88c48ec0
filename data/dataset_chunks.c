// dataset_chunks.c: reading a shard's compressed datasets without inflating them under the HDF5 lock.
//
// H5Dread inflates every chunk inside HDF5, so under the process-wide lock (dataset.h, Threads), and that is
// ~90% of a clip's read time: extra loader threads only queue. Here the lock is held just to copy the stored
// (compressed) chunks out with H5Dread_chunk (gvm_ds_raw_read); the caller releases it and inflates and
// unshuffles them into the output (gvm_ds_raw_decode), so several threads decode at once. This covers the
// storage our writer makes (docs/dataset-format.md: chunked; deflate, shuffle first for multi-byte types)
// with any chunk shape; anything else (contiguous, other filters, other byte orders, missing chunks, partial
// edge chunks left unfiltered) is left to H5Dread, so no file depends on this decoder being complete.
#include "data/dataset_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_CHUNKS ((int64_t)1 << 16)  // more chunks than this are tiny ones: H5Dread handles them as well

static atomic_bool g_enabled = true;
static atomic_llong g_fast, g_fallback;

void gvm_ds_raw_enable(bool on) { atomic_store(&g_enabled, on); }

void gvm_ds_raw_counts(int64_t *fast, int64_t *fallback) {
    *fast = (int64_t)atomic_load(&g_fast);
    *fallback = (int64_t)atomic_load(&g_fallback);
}

void gvm_ds_raw_free(gvm_ds_raw *raw) {
    free(raw->stored);
    free(raw->start);
    free(raw->mask);
    memset(raw, 0, sizeof *raw);
}

// Chunk i's first element in dataset coordinates (the chunk grid in row-major order).
static void chunk_origin(const gvm_ds_raw *raw, int64_t i, hsize_t *off) {
    for (int k = raw->rank - 1; k >= 0; k--) {
        hsize_t n = (raw->dims[k] + raw->chunk[k] - 1) / raw->chunk[k];
        off[k] = ((hsize_t)i % n) * raw->chunk[k];
        i /= (int64_t)n;
    }
}

// Whether the dataset's storage is one we decode: chunked, deflate alone or shuffle (of elements of the
// file type's size) then deflate, every edge chunk filtered, and the file type's bytes equal to mtype's.
static bool known_storage(hid_t d, hid_t mtype, gvm_ds_raw *raw) {
    hid_t dcpl = H5Dget_create_plist(d), ftype = H5Dget_type(d), space = H5Dget_space(d);
    bool ok = dcpl >= 0 && ftype >= 0 && space >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
              H5Tequal(ftype, mtype) > 0;
    if (ok) {
        raw->elem = H5Tget_size(ftype);
        raw->rank = H5Sget_simple_extent_ndims(space);
        ok = raw->elem > 0 && raw->rank >= 1 && raw->rank <= GVM_DS_RAW_MAX_RANK &&
             H5Sget_simple_extent_dims(space, raw->dims, NULL) == raw->rank &&
             H5Pget_chunk(dcpl, GVM_DS_RAW_MAX_RANK, raw->chunk) == raw->rank;
    }
    unsigned opts = 0;
    if (ok) ok = H5Pget_chunk_opts(dcpl, &opts) >= 0 && !(opts & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS);
    int n = ok ? H5Pget_nfilters(dcpl) : -1;
    ok = ok && (n == 1 || n == 2);
    for (int f = 0; ok && f < n; f++) {
        unsigned flags = 0, cd[8] = {0}, config = 0;
        size_t ncd = 8;
        char fname[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)f, &flags, &ncd, cd, sizeof fname, fname, &config);
        if (f == n - 1) ok = id == H5Z_FILTER_DEFLATE;
        else ok = id == H5Z_FILTER_SHUFFLE && ncd >= 1 && cd[0] == raw->elem;  // cd[0]: the element size
    }
    raw->nfilters = n;
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (!ok) return false;
    // The chunk grid and a chunk's size: an absurd one goes to H5Dread, which has its own limits.
    int64_t count = 1;
    size_t bytes = raw->elem;
    for (int k = 0; k < raw->rank; k++) {
        if (raw->dims[k] == 0 || raw->chunk[k] == 0) return false;
        count *= (int64_t)((raw->dims[k] + raw->chunk[k] - 1) / raw->chunk[k]);
        if (count > MAX_CHUNKS || __builtin_mul_overflow(bytes, (size_t)raw->chunk[k], &bytes)) return false;
    }
    if (bytes > 0xffffffffu) return false;  // zlib counts in 32 bits (HDF5 limits chunks to 4 GiB too)
    raw->nchunks = count;
    raw->chunk_bytes = bytes;
    return true;
}

gvm_status gvm_ds_raw_read(hid_t d, hid_t mtype, const char *where, const char *name, gvm_ds_raw *raw, bool *fast) {
    memset(raw, 0, sizeof *raw);
    *fast = false;
    if (!atomic_load(&g_enabled) || !known_storage(d, mtype, raw)) {
        memset(raw, 0, sizeof *raw);
        atomic_fetch_add(&g_fallback, 1);
        return GVM_OK;
    }
    char why[600];
    int64_t n = raw->nchunks;
    raw->start = malloc((size_t)(n + 1) * sizeof *raw->start);
    raw->mask = malloc((size_t)n * sizeof *raw->mask);
    if (!raw->start || !raw->mask) {
        gvm_ds_raw_free(raw);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: '%s': out of memory for its chunks", where, name);
    }
    // Sizes first, so one buffer holds them all. A chunk never written (HDF5 reads it as the fill value)
    // or larger than deflate ever makes goes to H5Dread.
    hsize_t off[GVM_DS_RAW_MAX_RANK];
    size_t total = 0, most = (size_t)compressBound((uLong)raw->chunk_bytes);
    raw->start[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        hsize_t size = 0;
        chunk_origin(raw, i, off);
        if (H5Dget_chunk_storage_size(d, off, &size) < 0 || size == 0 || size > most) {
            gvm_h5_error(why, sizeof why);  // not an error of the file: forget it
            gvm_ds_raw_free(raw);
            atomic_fetch_add(&g_fallback, 1);
            return GVM_OK;
        }
        total += (size_t)size;
        raw->start[i + 1] = total;
    }
    raw->stored = malloc(total ? total : 1);
    if (!raw->stored) {
        gvm_ds_raw_free(raw);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: '%s': out of memory for its chunks (%zu bytes)", where, name, total);
    }
    for (int64_t i = 0; i < n; i++) {
        chunk_origin(raw, i, off);
        if (H5Dread_chunk(d, H5P_DEFAULT, off, &raw->mask[i], raw->stored + raw->start[i]) < 0) {
            gvm_ds_raw_free(raw);
            return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot read chunk %lld of '%s' (%s): the shard is damaged; "
                                 "copy it again or rebuild it with `gvm prep`", where, (long long)i, name,
                                 gvm_h5_error(why, sizeof why));
        }
    }
    atomic_fetch_add(&g_fast, 1);
    *fast = true;
    return GVM_OK;
}

// ---- decoding (no HDF5 calls: runs without the lock) ---------------------------------------------------------------
// HDF5's shuffle filter stores byte b of element i at b * n + i; trailing bytes (nbytes not a multiple of
// the element size) stay at the end, as H5Z_filter_shuffle leaves them.
static void unshuffle(const uint8_t *src, uint8_t *dst, size_t nbytes, size_t elem) {
    size_t n = nbytes / elem;
    if (elem == 2) {
        for (size_t i = 0; i < n; i++) {
            dst[2 * i] = src[i];
            dst[2 * i + 1] = src[n + i];
        }
    } else if (elem == 4) {
        for (size_t i = 0; i < n; i++) {
            dst[4 * i] = src[i];
            dst[4 * i + 1] = src[n + i];
            dst[4 * i + 2] = src[2 * n + i];
            dst[4 * i + 3] = src[3 * n + i];
        }
    } else {
        for (size_t b = 0; b < elem; b++)
            for (size_t i = 0; i < n; i++) dst[i * elem + b] = src[b * n + i];
    }
    memcpy(dst + n * elem, src + n * elem, nbytes - n * elem);
}

// Inflate one zlib stream of exactly `want` bytes. Bytes after the stream's end are ignored, as HDF5's
// deflate filter ignores them. Returns NULL on success, else what went wrong.
static const char *inflate_chunk(z_stream *z, const uint8_t *src, size_t n, uint8_t *dst, size_t want, char *buf,
                                 size_t size) {
    if (inflateReset(z) != Z_OK) return "zlib cannot reset its stream";
    z->next_in = (Bytef *)(uintptr_t)src;  // zlib's API is not const-correct; it does not write the input
    z->avail_in = (uInt)n;
    z->next_out = dst;
    z->avail_out = (uInt)want;
    int rc = inflate(z, Z_FINISH);
    if (rc == Z_STREAM_END) {
        if (z->total_out == want) return NULL;
        snprintf(buf, size, "it inflates to %lu bytes, want %zu", (unsigned long)z->total_out, want);
    } else if (rc == Z_BUF_ERROR && z->avail_out == 0) {
        snprintf(buf, size, "it inflates to more than its %zu bytes", want);
    } else if (rc == Z_BUF_ERROR) {
        snprintf(buf, size, "its deflate stream ends early (after %lu of %zu bytes)", (unsigned long)z->total_out,
                 want);
    } else {
        snprintf(buf, size, "zlib: %s", z->msg ? z->msg : zError(rc));
    }
    return buf;
}

gvm_status gvm_ds_raw_decode(const gvm_ds_raw *raw, void *out, const char *where, const char *name) {
    // Work in rank 4, leading dimensions of 1 added, so one loop copies any chunk.
    int pad = GVM_DS_RAW_MAX_RANK - raw->rank;
    size_t dims[4], chunk[4];
    for (int k = 0; k < 4; k++) {
        dims[k] = k < pad ? 1 : (size_t)raw->dims[k - pad];
        chunk[k] = k < pad ? 1 : (size_t)raw->chunk[k - pad];
    }
    // A whole chunk lands in one run of the output when it is 1 long up to some dimension and spans the
    // dataset after it (frames [1, H, W, 3], audio, codes [K, T]); it can then be decoded in place.
    int first = 0;
    while (first < 3 && chunk[first] == 1) first++;
    bool spans = true;
    for (int k = first + 1; k < 4; k++) spans = spans && chunk[k] == dims[k];

    const size_t elem = raw->elem, bytes = raw->chunk_bytes;
    uint8_t *dst = out, *tmp = NULL, *tmp2 = NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return gvm_error_set(GVM_ERR_MEMORY, "%s: '%s': zlib cannot start (out of memory?)", where, name);
    gvm_status st = GVM_OK;
    char why[200];
    const char *bad = NULL;
    int64_t i = 0;
    for (; i < raw->nchunks; i++) {
        hsize_t origin[GVM_DS_RAW_MAX_RANK];
        chunk_origin(raw, i, origin);
        size_t off[4], ext[4];
        bool whole = true;
        for (int k = 0; k < 4; k++) {
            off[k] = k < pad ? 0 : (size_t)origin[k - pad];
            ext[k] = dims[k] - off[k] < chunk[k] ? dims[k] - off[k] : chunk[k];  // the edge chunks are cut
            whole = whole && ext[k] == chunk[k];
        }
        size_t at = ((off[0] * dims[1] + off[1]) * dims[2] + off[2]) * dims[3] + off[3];
        uint8_t *run = whole && spans ? dst + at * elem : NULL;  // where the chunk goes in one piece, if it does
        // Filter f was skipped for this chunk when bit f of its mask is set (an optional filter that failed).
        bool shuffled = raw->nfilters == 2 && !(raw->mask[i] & 1u);
        bool deflated = !(raw->mask[i] & (1u << (raw->nfilters - 1)));
        const uint8_t *src = raw->stored + raw->start[i];
        size_t n = raw->start[i + 1] - raw->start[i];
        if (!tmp && (!run || shuffled)) {
            tmp = malloc(bytes);
            tmp2 = malloc(bytes);
            if (!tmp || !tmp2) {
                st = gvm_error_set(GVM_ERR_MEMORY, "%s: '%s': out of memory for a chunk (%zu bytes)", where, name,
                                   bytes);
                break;
            }
        }
        // Stage 1: the shuffled (or plain) bytes, in place when nothing else follows.
        uint8_t *plain = run && !shuffled ? run : tmp;
        if (deflated) {
            bad = inflate_chunk(&z, src, n, plain, bytes, why, sizeof why);
        } else if (n != bytes) {
            snprintf(why, sizeof why, "stored uncompressed in %zu bytes, want %zu", n, bytes);
            bad = why;
        } else {
            memcpy(plain, src, bytes);
        }
        if (bad) break;
        // Stage 2: unshuffle, into place or beside.
        if (shuffled) {
            uint8_t *to = run ? run : tmp2;
            unshuffle(plain, to, bytes, elem);
            plain = to;
        }
        if (run) continue;
        // Stage 3: copy the part of the chunk inside the dataset, one innermost row at a time.
        for (size_t a = 0; a < ext[0]; a++)
            for (size_t b = 0; b < ext[1]; b++)
                for (size_t c = 0; c < ext[2]; c++) {
                    size_t s = ((a * chunk[1] + b) * chunk[2] + c) * chunk[3];
                    size_t o = (((off[0] + a) * dims[1] + off[1] + b) * dims[2] + off[2] + c) * dims[3] + off[3];
                    memcpy(dst + o * elem, plain + s * elem, ext[3] * elem);
                }
    }
    if (bad) {
        hsize_t origin[GVM_DS_RAW_MAX_RANK];
        chunk_origin(raw, i, origin);
        char pos[160] = "";
        size_t len = 0;
        for (int k = 0; k < raw->rank && len < sizeof pos; k++)
            len += (size_t)snprintf(pos + len, sizeof pos - len, "%s%llu", k ? ", " : "",
                                    (unsigned long long)origin[k]);
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: dataset '%s', chunk %lld of %lld (at [%s]) is damaged: %s; copy the "
                           "shard again or rebuild it with `gvm prep`", where, name, (long long)i,
                           (long long)raw->nchunks, pos, bad);
    }
    inflateEnd(&z);
    free(tmp);
    free(tmp2);
    return st;
}
