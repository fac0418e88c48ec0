// test_matmul.c: matmul and linear: gradient checks over shapes (batched, transposed, shared weight,
// size-1 dims) and PyTorch goldens.
#include "tests/test_util.h"

static gvm_tensor *fwd_matmul(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_matmul(ctx, in[0], in[1], test_param_i(p, "trans_a", 0), test_param_i(p, "trans_b", 0));
}

static gvm_tensor *fwd_linear(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_linear(ctx, in[0], in[1], in[2]);
}

static void gradcheck_matmul(const char *name, int na, const int64_t *sa, int nb, const int64_t *sb, int ta, int tb) {
    gvm_tensor *in[2] = {test_randn(1, na, sa, 1.0f, true), test_randn(2, nb, sb, 1.0f, true)};
    char spec[64];
    snprintf(spec, sizeof spec, "trans_a=%d,trans_b=%d", ta, tb);
    test_params p = test_params_parse(spec);
    test_gradcheck(name, fwd_matmul, in, 2, &p, NULL);
    gvm_tensor_free(in[0]);
    gvm_tensor_free(in[1]);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    gradcheck_matmul("matmul 2d", 2, (int64_t[]){3, 4}, 2, (int64_t[]){4, 5}, 0, 0);
    gradcheck_matmul("matmul ta tb", 2, (int64_t[]){4, 3}, 2, (int64_t[]){5, 4}, 1, 1);
    gradcheck_matmul("matmul batched tb", 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 5, 4}, 0, 1);
    gradcheck_matmul("matmul batched ta", 4, (int64_t[]){2, 1, 4, 3}, 4, (int64_t[]){2, 1, 4, 5}, 1, 0);
    gradcheck_matmul("matmul shared b", 3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){4, 1}, 0, 0);
    gradcheck_matmul("matmul shared b ta", 3, (int64_t[]){2, 4, 3}, 2, (int64_t[]){5, 4}, 1, 1);

    gvm_tensor *lin[3] = {test_randn(3, 3, (int64_t[]){2, 3, 5}, 1.0f, true),
                          test_randn(4, 2, (int64_t[]){4, 5}, 1.0f, true), test_randn(5, 1, (int64_t[]){4}, 1.0f, true)};
    test_gradcheck("linear", fwd_linear, lin, 3, NULL, NULL);
    for (int i = 0; i < 3; i++) gvm_tensor_free(lin[i]);

    const char *mm[] = {"mm_2d", "mm_ta", "mm_tb", "mm_tatb", "bmm", "bmm_tb", "bmm_ta", "shared_b", "shared_b_tb",
                        "shared_b_ta", "size1"};
    char path[128];
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        snprintf(path, sizeof path, "matmul/%s.safetensors", mm[i]);
        test_golden_op(path, fwd_matmul, 1e-5, 1e-5);
    }
    const char *lin_cases[] = {"linear", "linear_nobias", "linear_4d"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "matmul/%s.safetensors", lin_cases[i]);
        test_golden_op(path, fwd_linear, 1e-5, 1e-5);
    }
    return test_finish();
}
