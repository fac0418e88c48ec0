// safetensors.h: reading (mmap) and writing safetensors files, the format of checkpoints and imported
// weights. Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data buffer. Files we write are readable by Python's `safetensors`.
#ifndef GVM_SAFETENSORS_H
#define GVM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_st_entry {
    const char *name;
    gvm_dtype dtype;
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
    const void *data;  // into the mapping; valid until close
    size_t nbytes;
} gvm_st_entry;

typedef struct gvm_safetensors gvm_safetensors;

// Map and validate a file: header JSON, dtypes, shapes, offsets inside the file and consistent with
// shape x dtype size. Errors name the file and the tensor.
gvm_status gvm_safetensors_open(const char *path, gvm_safetensors **out);
void gvm_safetensors_close(gvm_safetensors *st);
int gvm_safetensors_count(const gvm_safetensors *st);
const gvm_st_entry *gvm_safetensors_entry(const gvm_safetensors *st, int i);
const gvm_st_entry *gvm_safetensors_find(const gvm_safetensors *st, const char *name);
const char *gvm_safetensors_path(const gvm_safetensors *st);
// Value of a "__metadata__" key, or NULL.
const char *gvm_safetensors_metadata(const gvm_safetensors *st, const char *key);
// Copy tensor `name` into `dst` (its shape must match), converting float dtypes (f16/bf16 -> f32...).
gvm_status gvm_safetensors_read_into(const gvm_safetensors *st, const char *name, gvm_tensor *dst);
// A new heap tensor holding a copy of tensor `name` in its stored dtype.
gvm_status gvm_safetensors_load(const gvm_safetensors *st, const char *name, gvm_tensor **out);

// ---- writer --------------------------------------------------------------------------------------------
typedef struct gvm_st_writer gvm_st_writer;
gvm_st_writer *gvm_st_writer_new(void);
// The writer keeps the pointer, not a copy: `data` must stay valid until gvm_st_writer_write.
void gvm_st_writer_add(gvm_st_writer *w, const char *name, gvm_dtype dtype, int ndim, const int64_t *shape,
                       const void *data);
// Streaming mode, for files larger than memory (gvm import): `fill(user, dst, nbytes)` is called during
// gvm_st_writer_write to produce the tensor's bytes into a scratch buffer that the writer reuses for every
// streamed tensor (one allocation, the size of the largest), so only one converted tensor exists at a time.
// A fill error aborts the write (nothing is left at `path`) and is returned.
typedef gvm_status (*gvm_st_fill_fn)(void *user, void *dst, size_t nbytes);
void gvm_st_writer_add_stream(gvm_st_writer *w, const char *name, gvm_dtype dtype, int ndim, const int64_t *shape,
                              gvm_st_fill_fn fill, void *user);
void gvm_st_writer_add_metadata(gvm_st_writer *w, const char *key, const char *value);
// Write to `path` atomically: a temporary file beside it, fsync, rename. An existing file at `path`
// stays intact when anything fails.
gvm_status gvm_st_writer_write(gvm_st_writer *w, const char *path);
void gvm_st_writer_free(gvm_st_writer *w);

#ifdef __cplusplus
}
#endif

#endif
