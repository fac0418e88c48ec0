// module.c: parameter naming and initialisation shared by the nn/ modules (conventions in module.h).
#include "nn/module.h"

#include <stdio.h>
#include <stdlib.h>

const char *gvm_nn_name(char *buf, const char *prefix, const char *name) {
    int n = (prefix && prefix[0]) ? snprintf(buf, GVM_NN_NAME_MAX, "%s.%s", prefix, name)
                                  : snprintf(buf, GVM_NN_NAME_MAX, "%s", name);
    GVM_CHECK(n >= 0 && n < GVM_NN_NAME_MAX, "parameter name '%s.%s' longer than %d", prefix, name,
              GVM_NN_NAME_MAX - 1);
    return buf;
}

gvm_tensor *gvm_nn_param(gvm_param_store *ps, const char *prefix, const char *name, int ndim,
                         const int64_t *shape) {
    char full[GVM_NN_NAME_MAX];
    GVM_CHECK(!ps->finalized, "parameter %s registered after gvm_param_store_finalize",
              gvm_nn_name(full, prefix, name));
    return gvm_param_store_add(ps, gvm_nn_name(full, prefix, name), ndim, shape);
}

void gvm_nn_init_normal(gvm_tensor *t, gvm_rng *rng, float std) {
    if (!t) return;
    GVM_CHECK(t->dtype == GVM_F32 && t->data, "init of an unfinalised or non-f32 parameter");
    if (t->device == GVM_DEVICE_CPU) {
        gvm_rng_normal(rng, t->data, (size_t)t->numel, 0.0f, std);
        return;
    }
    // Draw on the host so every device gets the same values from one seed, then copy over.
    float *host = GVM_MALLOC((size_t)t->numel * sizeof(float));
    gvm_rng_normal(rng, host, (size_t)t->numel, 0.0f, std);
    gvm_device_copy(t->data, t->device, host, GVM_DEVICE_CPU, (size_t)t->numel * sizeof(float));
    free(host);
}

void gvm_nn_init_const(gvm_tensor *t, float value) {
    if (t) gvm_tensor_fill(t, value);
}
