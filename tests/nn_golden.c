// nn_golden.c: see nn_golden.h.
#include "tests/nn_golden.h"

#include <stdio.h>
#include <string.h>

#include "tests/test_util.h"

gvm_tensor *nn_golden_load(gvm_safetensors *st, const char *key) {
    gvm_tensor *t = NULL;
    GVM_CHECK(gvm_safetensors_load(st, key, &t) == GVM_OK, "%s", gvm_error_message());
    return t;
}

void nn_golden_compare(gvm_safetensors *st, const char *label, const char *key, const gvm_tensor *got) {
    if (!label) label = key;
    gvm_tensor *e = NULL;
    if (gvm_safetensors_load(st, key, &e) != GVM_OK) {
        test_check(false, label, "missing in golden");
        return;
    }
    if (!got || got->numel != e->numel)
        test_check(false, label, "size %lld, expected %lld", (long long)(got ? got->numel : -1), (long long)e->numel);
    else
        test_allclose(label, gvm_tensor_f32(got), gvm_tensor_f32(e), e->numel, NN_GOLDEN_TOL, NN_GOLDEN_TOL);
    gvm_tensor_free(e);
}

bool nn_golden_load_params(gvm_safetensors *st, gvm_param_store *ps, const char *label) {
    int in_file = 0;
    for (int i = 0; i < gvm_safetensors_count(st); i++)
        if (strncmp(gvm_safetensors_entry(st, i)->name, "param.", 6) == 0) in_file++;
    bool ok = test_check(in_file == ps->n_params, label, "golden has %d parameters, the module registered %d",
                         in_file, ps->n_params);
    for (int i = 0; i < ps->n_params; i++) {
        char key[512];
        snprintf(key, sizeof key, "param.%s", ps->params[i]->name);
        const gvm_st_entry *e = gvm_safetensors_find(st, key);
        if (!e || (int64_t)(e->nbytes / 4) != ps->params[i]->numel) {
            ok = test_check(false, label, "parameter %s missing from the golden or of another size (names must "
                            "match the twin)", ps->params[i]->name);
            continue;
        }
        GVM_CHECK(gvm_safetensors_read_into(st, key, ps->params[i]) == GVM_OK, "%s", gvm_error_message());
    }
    return ok;
}
