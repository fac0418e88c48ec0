// trainable.h: the runs of a parameter store's blocks that an optimiser updates. Frozen parameters (and
// buffers such as codebooks, registered with requires_grad = false) must not be touched: weight decay would
// shrink them. The trainable parameters are grouped into maximal contiguous element ranges, so one fused
// AdamW call covers each range.
#ifndef GVM_TRAIN_TRAINABLE_H
#define GVM_TRAIN_TRAINABLE_H

#include <stddef.h>

#include "core/param_store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_param_range {
    size_t begin, end;  // elements [begin, end) of the store's blocks
} gvm_param_range;

// The ranges of the finalized store `ps` (heap array, caller frees) and their count in *n.
gvm_param_range *gvm_trainable_ranges(const gvm_param_store *ps, int *n);

#ifdef __cplusplus
}
#endif

#endif
