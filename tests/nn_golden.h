// nn_golden.h: reading the PyTorch-twin goldens of nn/ (tests/golden/gen_nn*.py): parameters by name,
// inputs and expected tensors, and comparing at 1e-5 (the twins run in float64, so this bounds gvm's f32
// error alone).
#ifndef GVM_TEST_NN_GOLDEN_H
#define GVM_TEST_NN_GOLDEN_H

#include <stdbool.h>

#include "core/gvm.h"
#include "tests/test_util.h"

#define NN_GOLDEN_TOL 1e-5

// Golden tensor `key` as a heap tensor; aborts when the file lacks it (the generator and test disagree).
gvm_tensor *nn_golden_load(gvm_safetensors *st, const char *key);
// Compare `got` (f32) with golden tensor `key` at NN_GOLDEN_TOL; the check is named `label` (NULL: key).
void nn_golden_compare(gvm_safetensors *st, const char *label, const char *key, const gvm_tensor *got);
// Finalize nothing: `ps` must be finalized. Load every parameter from "param.<name>". The file must hold
// exactly the store's parameters (count, names, sizes), so a wrong, missing or extra name fails the check
// named `label`. Returns whether all was well.
bool nn_golden_load_params(gvm_safetensors *st, gvm_param_store *ps, const char *label);

// ---- a golden case: one module or model, its parameters by name, inputs, outputs and gradients ----------------
// The file <golden dir>/<family>/<name>.safetensors holds metadata "params" (the module's sizes, key=value) and
// "prefix" (where it registers), the parameters "param.<name>", the inputs "in.<name>" and the expected outputs
// and gradients. Outputs are checked and seeded either as one "out" with upstream gradient "gout"
// (nn_golden_case_finish_out) or as several "out.<k>" whose loss is sum_k sum(out_k * gout.<k>)
// (nn_golden_case_output for each, then nn_golden_case_finish). Either way every parameter's gradient
// ("grad.param.<name>") and every f32 input's ("grad.in.<name>") is compared, and the case is freed.
#define NN_GOLDEN_MAX_INPUTS 6
#define NN_GOLDEN_MAX_OUTPUTS 4

typedef struct nn_golden_case {
    const char *name;
    gvm_safetensors *st;
    test_params p;                 // metadata "params"
    const char *prefix;            // metadata "prefix"
    gvm_param_store ps;            // the module registers here, then nn_golden_case_load_params
    gvm_tensor *in[NN_GOLDEN_MAX_INPUTS];
    const char *in_names[NN_GOLDEN_MAX_INPUTS];
    int n_in;
    gvm_ctx *ctx;
    gvm_tensor *loss;              // sum_k sum(out_k * gout_k), built by nn_golden_case_output
    gvm_tensor *gouts[NN_GOLDEN_MAX_OUTPUTS];
    int n_gouts;
} nn_golden_case;

// Open <family>/<name>; false (a failed check saying how to regenerate) when the file cannot be read.
bool nn_golden_case_open(nn_golden_case *c, const char *family, const char *name);
// Finalize the store and load every parameter by its full name (exactly the store's parameters).
bool nn_golden_case_load_params(nn_golden_case *c);
// Input "in.<name>" as a heap tensor owned by the case; f32 inputs require grad.
gvm_tensor *nn_golden_case_input(nn_golden_case *c, const char *name);
// Compare `got` with golden `key`; the check is named "<case> <key>".
void nn_golden_case_compare(nn_golden_case *c, const char *key, const gvm_tensor *got);
// Compare "out.<name>" and add sum(out * gout.<name>) to the case's loss.
void nn_golden_case_output(nn_golden_case *c, const char *name, gvm_tensor *out);
// Backward from the loss of the outputs, compare the gradients, free the case.
void nn_golden_case_finish(nn_golden_case *c);
// One output: compare "out", backward with "gout" as its gradient, compare the gradients, free the case.
void nn_golden_case_finish_out(nn_golden_case *c, gvm_tensor *out);

#endif
