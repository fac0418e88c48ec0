// gvm.h: the whole public API of the core library in one include.
#ifndef GVM_H
#define GVM_H

#include "core/arena.h"
#include "core/autograd.h"
#include "core/context.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/param_store.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
