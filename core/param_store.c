// param_store.c: one block per parameter group (see param_store.h).
#include "core/param_store.h"

#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/safetensors.h"

#define ALIGN_FLOATS 64  // 256 bytes: what CUDA's vector loads and cuBLAS like

static float *block_alloc(gvm_device device, size_t n) {
    float *mem = gvm_device_alloc(device, (n ? n : 1) * sizeof(float));
    gvm_device_memset0(device, mem, n * sizeof(float));
    return mem;
}

void gvm_param_store_init(gvm_param_store *ps) { memset(ps, 0, sizeof *ps); }

void gvm_param_store_free(gvm_param_store *ps) {
    for (int i = 0; i < ps->n_params; i++) {
        gvm_tensor *t = ps->params[i];
        free((char *)t->name);
        if (t->grad) free(t->grad);  // wrap struct only: its data is in the grad block
        free(t);
    }
    free(ps->params);
    free(ps->offsets);
    gvm_device_free(ps->device, ps->data);
    gvm_device_free(ps->device, ps->grad);
    for (int s = 0; s < GVM_PARAM_MAX_STATES; s++) gvm_device_free(ps->device, ps->state[s]);
    memset(ps, 0, sizeof *ps);
}

gvm_tensor *gvm_param_store_add(gvm_param_store *ps, const char *name, int ndim, const int64_t *shape) {
    GVM_CHECK(!ps->finalized, "parameter %s added after finalize", name);
    GVM_CHECK(gvm_param_store_find(ps, name) == NULL, "parameter %s registered twice", name);
    if (ps->n_params == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->params = realloc(ps->params, (size_t)ps->cap * sizeof *ps->params);
        ps->offsets = realloc(ps->offsets, (size_t)ps->cap * sizeof *ps->offsets);
        GVM_CHECK(ps->params && ps->offsets, "out of memory");
    }
    gvm_tensor *t = gvm_tensor_wrap(GVM_F32, ndim, shape, NULL);
    t->name = strdup(name);
    t->requires_grad = true;
    ps->offsets[ps->n_params] = ps->total;
    ps->total += ((size_t)t->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    ps->params[ps->n_params++] = t;
    return t;
}

void gvm_param_store_finalize_on(gvm_param_store *ps, gvm_device device) {
    GVM_CHECK(!ps->finalized, "gvm_param_store_finalize called twice");
    ps->device = device;
    ps->data = block_alloc(device, ps->total);
    ps->grad = block_alloc(device, ps->total);
    for (int i = 0; i < ps->n_params; i++) {
        gvm_tensor *t = ps->params[i];
        t->device = device;
        t->data = ps->data + ps->offsets[i];
        t->grad = gvm_tensor_wrap_on(device, GVM_F32, t->ndim, t->shape, ps->grad + ps->offsets[i]);
    }
    ps->finalized = true;
}

void gvm_param_store_finalize(gvm_param_store *ps) { gvm_param_store_finalize_on(ps, GVM_DEVICE_CPU); }

float *gvm_param_store_state(gvm_param_store *ps, int slot) {
    GVM_CHECK(ps->finalized, "optimiser state before finalize");
    GVM_CHECK(slot >= 0 && slot < GVM_PARAM_MAX_STATES, "state slot %d out of range", slot);
    if (!ps->state[slot]) ps->state[slot] = block_alloc(ps->device, ps->total);
    return ps->state[slot];
}

void gvm_param_store_zero_grad(gvm_param_store *ps) {
    if (ps->grad) gvm_device_memset0(ps->device, ps->grad, ps->total * sizeof(float));
}

gvm_tensor *gvm_param_store_find(const gvm_param_store *ps, const char *name) {
    for (int i = 0; i < ps->n_params; i++)
        if (strcmp(ps->params[i]->name, name) == 0) return ps->params[i];
    return NULL;
}

int64_t gvm_param_store_numel(const gvm_param_store *ps) {
    int64_t n = 0;
    for (int i = 0; i < ps->n_params; i++) n += ps->params[i]->numel;
    return n;
}

gvm_status gvm_param_store_save(const gvm_param_store *ps, const char *path, const char *const *metadata) {
    GVM_CHECK(ps->finalized, "save before finalize");
    // Parameters on a device are written from one host copy of the block.
    float *host = ps->data;
    if (ps->device != GVM_DEVICE_CPU) {
        host = GVM_MALLOC((ps->total ? ps->total : 1) * sizeof(float));
        gvm_device_copy(host, GVM_DEVICE_CPU, ps->data, ps->device, ps->total * sizeof(float));
    }
    gvm_st_writer *w = gvm_st_writer_new();
    for (int i = 0; i < ps->n_params; i++) {
        const gvm_tensor *t = ps->params[i];
        gvm_st_writer_add(w, t->name, GVM_F32, t->ndim, t->shape, host + ps->offsets[i]);
    }
    for (int i = 0; metadata && metadata[i]; i += 2) gvm_st_writer_add_metadata(w, metadata[i], metadata[i + 1]);
    gvm_status st = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    if (host != ps->data) free(host);
    return st;
}

static gvm_status check_entry(const gvm_safetensors *st, const char *path, const gvm_tensor *t) {
    const gvm_st_entry *e = gvm_safetensors_find(st, t->name);
    if (!e) return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: tensor '%s' is missing", path, t->name);
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same) {
        char a[128], b[128];
        return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", path, t->name,
                             gvm_shape_str(e->ndim, e->shape, a, sizeof a), gvm_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    if (!gvm_dtype_is_float(e->dtype))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: tensor '%s' is %s, expected a float tensor", path, t->name,
                             gvm_dtype_name(e->dtype));
    return GVM_OK;
}

gvm_status gvm_param_store_load(gvm_param_store *ps, const char *path, bool allow_extra) {
    GVM_CHECK(ps->finalized, "load before finalize");
    gvm_safetensors *st = NULL;
    gvm_status status = gvm_safetensors_open(path, &st);
    if (status != GVM_OK) return status;
    // Validate every parameter before copying any, so a bad file leaves the model as it was.
    for (int i = 0; i < ps->n_params && status == GVM_OK; i++)
        status = check_entry(st, path, ps->params[i]);
    if (status == GVM_OK && !allow_extra) {
        for (int i = 0; i < gvm_safetensors_count(st); i++) {
            const char *name = gvm_safetensors_entry(st, i)->name;
            if (!gvm_param_store_find(ps, name)) {
                status = gvm_error_set(GVM_ERR_FORMAT,
                                       "%s: tensor '%s' is not a parameter of this model "
                                       "(was the file written for another model or config?)",
                                       path, name);
                break;
            }
        }
    }
    for (int i = 0; i < ps->n_params && status == GVM_OK; i++) {
        gvm_tensor *t = ps->params[i];
        if (ps->device == GVM_DEVICE_CPU) {
            status = gvm_safetensors_read_into(st, t->name, t);
        } else {  // through a host tensor, one parameter at a time
            gvm_tensor *host = gvm_tensor_new(GVM_F32, t->ndim, t->shape);
            status = gvm_safetensors_read_into(st, t->name, host);
            if (status == GVM_OK) gvm_device_copy(t->data, ps->device, host->data, GVM_DEVICE_CPU, gvm_tensor_nbytes(t));
            gvm_tensor_free(host);
        }
    }
    gvm_safetensors_close(st);
    return status;
}
