// init_weights.c: pretrained weights into part of a model (train/init_weights.h).
#include "train/init_weights.h"

#include <stdbool.h>
#include <string.h>

#include "core/safetensors.h"

static bool has_prefix(const char *name, const char *const *prefixes) {
    for (int i = 0; prefixes && prefixes[i]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return true;
    return false;
}

static bool listed(const char *name, const char *const *names) {
    for (int i = 0; names && names[i]; i++)
        if (strcmp(name, names[i]) == 0) return true;
    return false;
}

static bool same_shape(const gvm_st_entry *e, const gvm_tensor *t) {
    if (e->ndim != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (e->shape[d] != t->shape[d]) return false;
    return true;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++) o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

gvm_status gvm_init_weights_load(gvm_param_store *ps, const char *path, const char *what,
                                 const char *const *required, const char *const *optional, FILE *log, int *loaded) {
    *loaded = 0;
    gvm_safetensors *st = NULL;
    gvm_status s = gvm_safetensors_open(path, &st);
    if (s != GVM_OK) return s;
    const int n = gvm_safetensors_count(st);
    // Every check first, so a bad file changes nothing.
    for (int i = 0; i < n && s == GVM_OK; i++) {
        const gvm_st_entry *e = gvm_safetensors_entry(st, i);
        const gvm_tensor *t = gvm_param_store_find(ps, e->name);
        if (!t && !listed(e->name, optional))
            s = gvm_error_set(GVM_ERR_FORMAT, "%s (%s): tensor '%s' is not a parameter of the model: give a file that "
                              "gvm import wrote for this part", path, what, e->name);
        else if (t && !same_shape(e, t) && !listed(e->name, optional)) {
            char a[96], b[96];
            shape_text(a, sizeof a, e->ndim, e->shape);
            shape_text(b, sizeof b, t->ndim, t->shape);
            s = gvm_error_set(GVM_ERR_FORMAT, "%s (%s): tensor '%s' is %s but the model's is %s: the config's sizes "
                              "differ from the pretrained model's", path, what, e->name, a, b);
        }
    }
    for (int i = 0; i < ps->n_params && s == GVM_OK; i++) {
        const char *name = ps->params[i]->name;
        if (name && has_prefix(name, required) && !gvm_safetensors_find(st, name))
            s = gvm_error_set(GVM_ERR_FORMAT, "%s (%s): the file has no tensor '%s', which the model needs", path, what,
                              name);
    }
    for (int i = 0; i < n && s == GVM_OK; i++) {
        const gvm_st_entry *e = gvm_safetensors_entry(st, i);
        gvm_tensor *t = gvm_param_store_find(ps, e->name);
        if (!t || !same_shape(e, t)) {
            if (log) fprintf(log, "gvm train: %s: '%s' does not fit the model (kept at its initialisation)\n", what, e->name);
            continue;
        }
        if ((s = gvm_safetensors_read_into(st, e->name, t)) == GVM_OK) (*loaded)++;
    }
    gvm_safetensors_close(st);
    return s;
}
