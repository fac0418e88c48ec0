// ops/unary_internal.h: the one tape wrapper every elementwise unary op (ops/unary.c, ops/activation.c)
// goes through. Not public API.
#ifndef GVM_OPS_UNARY_INTERNAL_H
#define GVM_OPS_UNARY_INTERNAL_H

#include "core/cpu/elementwise.h"
#include "core/ops.h"

// a [...] f32 -> out [...] = op(a; param), recording a node whose backward uses the input and the output.
gvm_tensor *gvm_op_unary(gvm_ctx *ctx, gvm_tensor *a, gvm_unary_op op, float param, const char *name);

#endif
