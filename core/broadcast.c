// broadcast.c: planning NumPy broadcasts and walking them in runs (see broadcast.h).
#include "core/broadcast.h"

#include <string.h>

#include "core/error.h"

bool gvm_broadcast_init(gvm_broadcast *bc, int n_in, const int *ndims, const int64_t *const *shapes) {
    GVM_CHECK(n_in >= 1 && n_in <= GVM_BROADCAST_MAX_INPUTS, "broadcast: %d inputs (1..%d)", n_in,
              GVM_BROADCAST_MAX_INPUTS);
    memset(bc, 0, sizeof *bc);
    bc->n_in = n_in;
    int nd = 0;
    for (int k = 0; k < n_in; k++) {
        GVM_CHECK(ndims[k] >= 0 && ndims[k] <= GVM_MAX_DIMS, "broadcast: rank %d", ndims[k]);
        if (ndims[k] > nd) nd = ndims[k];
    }
    bc->ndim = nd;
    // Inputs aligned at the right; a missing leading dim counts as size 1.
    int64_t full_stride[GVM_BROADCAST_MAX_INPUTS][GVM_MAX_DIMS];  // [k][output dim]
    for (int d = 0; d < nd; d++) bc->shape[d] = 1;
    for (int k = 0; k < n_in; k++) {
        int lead = nd - ndims[k];
        for (int d = 0; d < lead; d++) full_stride[k][d] = 0;
        int64_t s = 1;
        for (int d = nd - 1; d >= lead; d--) {
            int64_t size = shapes[k][d - lead];
            full_stride[k][d] = size == 1 ? 0 : s;
            s *= size;
            if (size == 1) continue;
            if (bc->shape[d] == 1)
                bc->shape[d] = size;
            else if (bc->shape[d] != size)
                return false;
        }
    }
    bc->numel = gvm_shape_numel(nd, bc->shape);

    // Coalesce from the innermost dim outwards: drop size-1 dims; merge dim d into the dim after it
    // when every input's stride satisfies stride[d] == stride[d+1] * size[d+1] (true for two
    // broadcast dims, 0 == 0, and for two contiguous dims).
    int cd = 0;  // dims collected so far, innermost first (reversed below)
    int64_t rshape[GVM_MAX_DIMS], rstride[GVM_BROADCAST_MAX_INPUTS][GVM_MAX_DIMS];
    for (int d = nd - 1; d >= 0; d--) {
        if (bc->shape[d] == 1) continue;
        bool merge = cd > 0;
        for (int k = 0; k < n_in && merge; k++)
            merge = full_stride[k][d] == rstride[k][cd - 1] * rshape[cd - 1];
        if (merge) {
            rshape[cd - 1] *= bc->shape[d];
            continue;
        }
        rshape[cd] = bc->shape[d];
        for (int k = 0; k < n_in; k++) rstride[k][cd] = full_stride[k][d];
        cd++;
    }
    if (cd == 0) {  // every dim is 1 (or a scalar): one element, read at offset 0 by every input
        rshape[0] = 1;
        for (int k = 0; k < n_in; k++) rstride[k][0] = 0;
        cd = 1;
    }
    bc->cdim = cd;
    for (int i = 0; i < cd; i++) {
        bc->cshape[i] = rshape[cd - 1 - i];
        for (int k = 0; k < n_in; k++) bc->cstride[k][i] = rstride[k][cd - 1 - i];
    }
    return true;
}

void gvm_broadcast_tensors(gvm_broadcast *bc, int n_in, const gvm_tensor *const *in, const char *op) {
    int ndims[GVM_BROADCAST_MAX_INPUTS];
    const int64_t *shapes[GVM_BROADCAST_MAX_INPUTS];
    GVM_CHECK(n_in >= 1 && n_in <= GVM_BROADCAST_MAX_INPUTS, "%s: %d inputs to broadcast", op, n_in);
    for (int k = 0; k < n_in; k++) {
        ndims[k] = in[k]->ndim;
        shapes[k] = in[k]->shape;
    }
    if (gvm_broadcast_init(bc, n_in, ndims, shapes)) return;
    char buf[3][96];
    for (int k = 0; k < n_in; k++) gvm_shape_str(in[k]->ndim, in[k]->shape, buf[k], sizeof buf[k]);
    gvm_fatal(__FILE__, __LINE__, "%s: shapes %s and %s%s%s do not broadcast", op, buf[0], n_in > 1 ? buf[1] : "",
              n_in > 2 ? " and " : "", n_in > 2 ? buf[2] : "");
}

bool gvm_broadcast_is_full(const gvm_broadcast *bc, int k) {
    for (int d = 0; d < bc->cdim; d++)
        if (bc->cstride[k][d] == 0 && bc->cshape[d] > 1) return false;
    return true;
}

void gvm_broadcast_iter_init(const gvm_broadcast *bc, gvm_broadcast_iter *it, int64_t lo, int64_t hi) {
    it->pos = lo;
    it->end = hi;
    for (int k = 0; k < bc->n_in; k++) it->off[k] = 0;
    int64_t rest = lo;
    for (int d = bc->cdim - 1; d >= 0; d--) {
        it->idx[d] = rest % bc->cshape[d];
        rest /= bc->cshape[d];
        for (int k = 0; k < bc->n_in; k++) it->off[k] += it->idx[d] * bc->cstride[k][d];
    }
}

bool gvm_broadcast_iter_next(const gvm_broadcast *bc, gvm_broadcast_iter *it, gvm_broadcast_run *run) {
    if (it->pos >= it->end) return false;
    int last = bc->cdim - 1;
    int64_t len = bc->cshape[last] - it->idx[last];
    if (len > it->end - it->pos) len = it->end - it->pos;
    run->pos = it->pos;
    run->len = len;
    for (int k = 0; k < bc->n_in; k++) run->off[k] = it->off[k];

    it->pos += len;
    it->idx[last] += len;
    for (int k = 0; k < bc->n_in; k++) it->off[k] += len * bc->cstride[k][last];
    // Carry into the outer dims (an odometer), so no division is needed per run.
    for (int d = last; d > 0 && it->idx[d] == bc->cshape[d]; d--) {
        for (int k = 0; k < bc->n_in; k++) it->off[k] += bc->cstride[k][d - 1] - bc->cshape[d] * bc->cstride[k][d];
        it->idx[d] = 0;
        it->idx[d - 1]++;
    }
    return true;
}
