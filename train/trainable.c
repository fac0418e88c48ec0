// trainable.c: the optimiser's element ranges of a parameter store (train/trainable.h).
#include "train/trainable.h"

#include <stdlib.h>

gvm_param_range *gvm_trainable_ranges(const gvm_param_store *ps, int *n) {
    gvm_param_range *r = calloc((size_t)ps->n_params + 1, sizeof *r);
    GVM_CHECK(r, "out of memory");
    *n = 0;
    for (int i = 0; i < ps->n_params; i++) {
        if (!ps->params[i]->requires_grad) continue;
        size_t b = ps->offsets[i], e = ps->offsets[i] + (size_t)ps->params[i]->numel;
        // Parameters are laid out in registration order: a trainable neighbour's range extends over the
        // alignment padding between them (its grads stay 0, so AdamW leaves it 0).
        if (*n > 0 && ps->params[i - 1]->requires_grad)
            r[*n - 1].end = e;
        else
            r[(*n)++] = (gvm_param_range){b, e};
    }
    return r;
}
