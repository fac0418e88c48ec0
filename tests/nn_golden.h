// nn_golden.h: reading the PyTorch-twin goldens of nn/ (tests/golden/gen_nn*.py): parameters by name,
// inputs and expected tensors, and comparing at 1e-5 (the twins run in float64, so this bounds gvm's f32
// error alone).
#ifndef GVM_TEST_NN_GOLDEN_H
#define GVM_TEST_NN_GOLDEN_H

#include <stdbool.h>

#include "core/gvm.h"

#define NN_GOLDEN_TOL 1e-5

// Golden tensor `key` as a heap tensor; aborts when the file lacks it (the generator and test disagree).
gvm_tensor *nn_golden_load(gvm_safetensors *st, const char *key);
// Compare `got` (f32) with golden tensor `key` at NN_GOLDEN_TOL; the check is named `label` (NULL: key).
void nn_golden_compare(gvm_safetensors *st, const char *label, const char *key, const gvm_tensor *got);
// Finalize nothing: `ps` must be finalized. Load every parameter from "param.<name>". The file must hold
// exactly the store's parameters (count, names, sizes), so a wrong, missing or extra name fails the check
// named `label`. Returns whether all was well.
bool nn_golden_load_params(gvm_safetensors *st, gvm_param_store *ps, const char *label);

#endif
