// dispatch.h: picking an op's kernel for a device.
//
// Each op keeps a small table of kernels indexed by gvm_device, beside its forward and backward code:
//   static const softmax_kernel softmax_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_softmax_fwd};
//   GVM_DISPATCH(softmax_fwd, x->device, "softmax")(...);
// The CUDA backend fills the GVM_DEVICE_CUDA slots (under GVM_HAVE_CUDA). Reaching a missing slot is
// an internal error: device availability is checked once, when a tensor is moved to the device.
#ifndef GVM_DISPATCH_H
#define GVM_DISPATCH_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Fills a table's CUDA slot in builds with the CUDA backend, and nothing otherwise:
//   static const softmax_kernel softmax_fwd[GVM_DEVICE_COUNT] = {
//       [GVM_DEVICE_CPU] = gvm_cpu_softmax_fwd, GVM_CUDA_KERNEL(gvm_cuda_softmax_fwd)};
#ifdef GVM_HAVE_CUDA
#define GVM_CUDA_KERNEL(fn) [GVM_DEVICE_CUDA] = (fn)
#else
#define GVM_CUDA_KERNEL(fn) [GVM_DEVICE_CUDA] = NULL  // fn is not referenced: it does not exist here
#endif

#define GVM_DISPATCH(table, device, op_name)                                                     \
    ((table)[(device)] ? (table)[(device)]                                                        \
                       : (gvm_fatal(__FILE__, __LINE__, "op %s has no kernel for device %s",     \
                                    (op_name), gvm_device_name(device)),                          \
                          (table)[0]))

#ifdef __cplusplus
}
#endif

#endif
