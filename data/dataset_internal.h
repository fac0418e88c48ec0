// dataset_internal.h: what the dataset writer, reader and updater (data/dataset_*.c) share and nothing
// outside them uses (tests/test_data_dataset_chunks.c excepted: it calls the raw-chunk test hooks): the names
// in the file, the HDF5 lock guard, the error-stack translation, helpers for attributes and datasets, and
// the raw-chunk reader. The layout itself is documented in docs/dataset-format.md.
#ifndef GVM_DATA_DATASET_INTERNAL_H
#define GVM_DATA_DATASET_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>

#include "data/dataset.h"

// ---- names in the file (docs/dataset-format.md) -----------------------------------------------------------------
#define GVM_DS_CLIPS "clips"            // group of clip groups, named by zero-padded index
#define GVM_DS_INDEX "index"            // group of 1-D index datasets, one row per clip
#define GVM_DS_DEFLATE_LEVEL 4          // gzip level: most of level 9's ratio at a fraction of its time
#define GVM_DS_AUDIO_CHUNK 65536        // samples per audio chunk: 256 KiB of f32, ~2 s at 32 kHz
#define GVM_DS_MAX_DIM ((int64_t)1 << 40)  // a sanity bound on any stored length (rejects absurd headers)

// Group name of clip `index` inside the file: "clips/00000042". Names come from the index, not from the
// clip id, so a clip id may hold any character ('/' and '.' included) without escaping.
void gvm_ds_clip_group_name(int64_t index, char *buf, size_t size);

// ---- the lock ---------------------------------------------------------------------------------------------------
// gvm_h5_enter takes the process-wide lock and swaps HDF5's automatic error handler (which prints to
// stderr) for one that records the failure for gvm_h5_error; gvm_h5_leave restores the caller's handler
// and unlocks.
typedef struct gvm_h5_guard {
    H5E_auto2_t func;
    void *data;
} gvm_h5_guard;
void gvm_h5_enter(gvm_h5_guard *g);
void gvm_h5_leave(gvm_h5_guard *g);

// The last failed HDF5 call since gvm_h5_enter or the previous gvm_h5_error, as one line: the innermost
// cause, then the failed API call ("truncated file: eof = ... [unable to open file]"). Returns buf.
const char *gvm_h5_error(char *buf, size_t size);

// File access properties for every file we open: close everything with the file (no leaked objects on
// an error path), and file locking that is skipped, not fatal, on file systems without locks (Lustre,
// NFS). Close with H5Pclose. Returns < 0 on failure.
hid_t gvm_h5_fapl(void);

// IEEE binary16 as an HDF5 type (HDF5 1.10 has no predefined one; h5py reads this as numpy float16), in
// the byte order of `base`: H5T_IEEE_F32LE for the file, H5T_NATIVE_FLOAT for memory. Close with H5Tclose.
hid_t gvm_h5_f16_type(hid_t base);

// ---- validation -------------------------------------------------------------------------------------------------
bool gvm_ds_utf8_valid(const char *s);
// Check the optional slots of a clip (data != NULL). `where` prefixes the message ("a.h5: clip 3 (id)").
gvm_status gvm_ds_codes_check(const gvm_codes *c, const char *where);
gvm_status gvm_ds_features_check(const gvm_features *f, int64_t num_frames, const char *where);

// ---- writing (return < 0 on an HDF5 failure; the stack says why) ------------------------------------------------
herr_t gvm_h5_write_str_attr(hid_t obj, const char *name, const char *value);
herr_t gvm_h5_write_i32_attr(hid_t obj, const char *name, int32_t value);
herr_t gvm_h5_write_f64_attr(hid_t obj, const char *name, double value);
herr_t gvm_h5_write_i32_array_attr(hid_t obj, const char *name, const int32_t *values, int n);
// A chunked, deflate-compressed dataset (shuffle first when asked) holding `data` of memory type mtype.
herr_t gvm_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                            const hsize_t *chunk, bool shuffle, const void *data);
// The optional slots inside a clip group (already checked).
herr_t gvm_h5_write_codes(hid_t group, const gvm_codes *c);
herr_t gvm_h5_write_features(hid_t group, const gvm_features *f);

// ---- reading (messages are prefixed with `where`) -------------------------------------------------------------
// A missing attribute gives GVM_ERR_NOT_FOUND (callers that require it turn it into FORMAT); one of the
// wrong kind gives GVM_ERR_FORMAT. Integers of any width and floats convert; strings may be variable- or
// fixed-length (h5py writes both), the result is malloc'd.
gvm_status gvm_h5_read_str_attr(hid_t obj, const char *name, const char *where, char **out);
gvm_status gvm_h5_read_int_attr(hid_t obj, const char *name, const char *where, int64_t *out);
gvm_status gvm_h5_read_f64_attr(hid_t obj, const char *name, const char *where, double *out);
gvm_status gvm_h5_read_int_array_attr(hid_t obj, const char *name, const char *where, int64_t *out, int n);
// Open dataset `name` in loc and check its type class and rank; fills dims[rank]. GVM_ERR_NOT_FOUND when
// it does not exist, GVM_ERR_FORMAT when it is of another kind. On success the caller closes *dset.
gvm_status gvm_h5_open_dataset(hid_t loc, const char *name, const char *where, H5T_class_t cls, int rank,
                               hsize_t *dims, hid_t *dset);
// A 1-D string dataset of n rows into malloc'd strings (*out is an array of n malloc'd strings).
gvm_status gvm_h5_read_str_column(hid_t loc, const char *name, const char *where, int64_t n, char ***out);
// A 1-D integer dataset of n rows.
gvm_status gvm_h5_read_i64_column(hid_t loc, const char *name, const char *where, int64_t n, int64_t *out);

// ---- the file header, shared by the reader and the updater -------------------------------------------------------
// Open `path` (read-only or for update) and validate format_version, the file attributes and the
// length of the index. On success *file is open; info->created_by points into *created_by (malloc'd).
gvm_status gvm_ds_open_file(const char *path, bool writable, hid_t *file, gvm_shard_info *info, char **created_by,
                            int64_t *count);

// ---- raw chunks (dataset_chunks.c): inflating outside the lock --------------------------------------------------
// H5Dread inflates under the lock (~90% of a clip's read time). For storage our writer makes (chunked; deflate,
// shuffle first or not; a file type whose bytes are the memory type's), the reader copies the stored chunks
// under the lock and decodes them after releasing it; any other storage is read with H5Dread.
#define GVM_DS_RAW_MAX_RANK 4
typedef struct gvm_ds_raw {
    int rank;
    hsize_t dims[GVM_DS_RAW_MAX_RANK];   // the dataset's shape
    hsize_t chunk[GVM_DS_RAW_MAX_RANK];  // a chunk's shape (edge chunks are stored whole, their tail unused)
    size_t elem;                         // bytes per element
    size_t chunk_bytes;                  // bytes of one decoded chunk
    int nfilters;                        // 1: deflate; 2: shuffle, then deflate
    int64_t nchunks;                     // chunks of the grid, row-major
    uint8_t *stored;                     // every chunk's stored bytes, back to back
    size_t *start;                       // [nchunks + 1]: chunk i is stored[start[i] .. start[i + 1])
    uint32_t *mask;                      // [nchunks]: bit f set when HDF5 skipped filter f for chunk i
} gvm_ds_raw;

// Under the lock: when dataset d's storage is one gvm_ds_raw_decode knows and mtype's bytes are the file
// type's, read its stored chunks into *raw and set *fast; otherwise *fast = false, *raw is empty, and the
// caller reads with H5Dread. Errors (memory, a chunk HDF5 cannot read) are prefixed with where and name.
gvm_status gvm_ds_raw_read(hid_t d, hid_t mtype, const char *where, const char *name, gvm_ds_raw *raw, bool *fast);
// Without the lock (no HDF5 call): decode every chunk into out (the dataset's elements, row-major). A chunk
// that does not decode to its size is GVM_ERR_FORMAT naming where, name, the chunk and its position.
gvm_status gvm_ds_raw_decode(const gvm_ds_raw *raw, void *out, const char *where, const char *name);
void gvm_ds_raw_free(gvm_ds_raw *raw);
// For tests (tests/test_data_dataset_chunks.c): turn the raw path off (every dataset through H5Dread) or
// on (the default), and count the datasets read each way since the program started.
void gvm_ds_raw_enable(bool on);
void gvm_ds_raw_counts(int64_t *fast, int64_t *fallback);

// fsync a file by name, and the folder holding it (so a rename is durable).
gvm_status gvm_ds_fsync_file(const char *path);
void gvm_ds_fsync_parent(const char *path);

#endif
