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

// ---- golden cases ----------------------------------------------------------------------------------------------
bool nn_golden_case_open(nn_golden_case *c, const char *family, const char *name) {
    memset(c, 0, sizeof *c);
    c->name = name;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s.safetensors", test_golden_dir(), family, name);
    if (gvm_safetensors_open(path, &c->st) != GVM_OK)
        return test_check(false, name, "cannot read golden: %s (regenerate: cd tests/golden && python3 "
                          "generate.py --only %s)", gvm_error_message(), family);
    const char *params = gvm_safetensors_metadata(c->st, "params");
    c->p = test_params_parse(params ? params : "");
    c->prefix = gvm_safetensors_metadata(c->st, "prefix");
    gvm_param_store_init(&c->ps);
    c->ctx = gvm_ctx_new(7);
    return true;
}

bool nn_golden_case_load_params(nn_golden_case *c) {
    gvm_param_store_finalize(&c->ps);
    return nn_golden_load_params(c->st, &c->ps, c->name);
}

gvm_tensor *nn_golden_case_input(nn_golden_case *c, const char *name) {
    GVM_CHECK(c->n_in < NN_GOLDEN_MAX_INPUTS, "%s: more than %d inputs", c->name, NN_GOLDEN_MAX_INPUTS);
    char key[128];
    snprintf(key, sizeof key, "in.%s", name);
    gvm_tensor *t = nn_golden_load(c->st, key);
    t->requires_grad = t->dtype == GVM_F32;
    c->in_names[c->n_in] = name;
    c->in[c->n_in++] = t;
    return t;
}

void nn_golden_case_compare(nn_golden_case *c, const char *key, const gvm_tensor *got) {
    char label[1024];
    snprintf(label, sizeof label, "%s %s", c->name, key);
    nn_golden_compare(c->st, label, key, got);
}

void nn_golden_case_output(nn_golden_case *c, const char *name, gvm_tensor *out) {
    GVM_CHECK(c->n_gouts < NN_GOLDEN_MAX_OUTPUTS, "%s: more than %d outputs", c->name, NN_GOLDEN_MAX_OUTPUTS);
    char key[128];
    snprintf(key, sizeof key, "out.%s", name);
    nn_golden_case_compare(c, key, out);
    snprintf(key, sizeof key, "gout.%s", name);
    gvm_tensor *g = nn_golden_load(c->st, key);
    GVM_CHECK(g->numel == out->numel, "%s: %s has %lld values, the output %lld", c->name, key, (long long)g->numel,
              (long long)out->numel);
    c->gouts[c->n_gouts++] = g;
    gvm_tensor *term = gvm_sum(c->ctx, gvm_mul(c->ctx, out, g), GVM_AXIS_ALL, false);
    c->loss = c->loss ? gvm_add(c->ctx, c->loss, term) : term;
}

// Compare every parameter's and f32 input's gradient, then free the case.
static void finish_gradients(nn_golden_case *c) {
    char key[512];
    for (int i = 0; i < c->ps.n_params; i++) {
        snprintf(key, sizeof key, "grad.param.%s", c->ps.params[i]->name);
        nn_golden_case_compare(c, key, c->ps.params[i]->grad);
    }
    for (int i = 0; i < c->n_in; i++) {
        if (c->in[i]->dtype == GVM_F32) {
            snprintf(key, sizeof key, "grad.in.%s", c->in_names[i]);
            nn_golden_case_compare(c, key, c->in[i]->grad);
        }
        gvm_tensor_free(c->in[i]);
    }
    for (int i = 0; i < c->n_gouts; i++) gvm_tensor_free(c->gouts[i]);
    gvm_ctx_free(c->ctx);
    gvm_param_store_free(&c->ps);
    gvm_safetensors_close(c->st);
}

void nn_golden_case_finish(nn_golden_case *c) {
    gvm_backward(c->ctx, c->loss);
    finish_gradients(c);
}

void nn_golden_case_finish_out(nn_golden_case *c, gvm_tensor *out) {
    nn_golden_case_compare(c, "out", out);
    const gvm_st_entry *gout = gvm_safetensors_find(c->st, "gout");
    GVM_CHECK(gout && (int64_t)(gout->nbytes / 4) == out->numel, "%s: bad gout", c->name);
    gvm_backward_with_grad(c->ctx, out, gout->data);
    finish_gradients(c);
}
