// test_train_schedule.c: learning-rate schedules (train/schedule.h) against the formula written out
// independently in double, hand-checked points, and validation errors.
#include <math.h>
#include <string.h>

#include "tests/test_util.h"
#include "train/schedule.h"

// The documented formula, written differently (piecewise by phase, angle computed from the decay length).
static double reference(double L, int64_t W, int64_t T, double r, bool cosine, int64_t s) {
    if (W > 0 && s <= W) return s <= 0 ? 0.0 : L * s / W;  // warm-up ends at exactly L, even when T == W
    if (!cosine) return L;
    if (s >= T) return r * L;
    double angle = 3.14159265358979323846 * (double)(s - W) / (double)(T - W);
    return r * L + (1 - r) * L * (cos(angle) + 1) / 2;
}

static void test_against_reference(void) {
    struct { double lr; int64_t w, t; double r; gvm_lr_decay d; } cases[] = {
        {3e-4, 100, 1000, 0.1, GVM_LR_COSINE}, {1.0, 0, 50, 0.0, GVM_LR_COSINE}, {2e-3, 7, 8, 0.5, GVM_LR_COSINE},
        {1e-3, 10, 10, 0.2, GVM_LR_COSINE},    {5e-4, 25, 0, 0.0, GVM_LR_CONSTANT}, {1.0, 1, 3, 1.0, GVM_LR_COSINE},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gvm_lr_schedule s = {.lr = cases[c].lr, .warmup_steps = cases[c].w, .total_steps = cases[c].t,
                             .min_lr_ratio = cases[c].r, .decay = cases[c].d};
        TEST_CHECK(gvm_lr_schedule_validate(&s) == GVM_OK, "schedule valid", "case %zu: %s", c, gvm_error_message());
        double worst = 0;
        int64_t at = 0, end = (cases[c].t > cases[c].w ? cases[c].t : cases[c].w) + 20;
        for (int64_t k = 0; k <= end; k++) {
            double got = gvm_lr_at(&s, k);
            double want = reference(s.lr, s.warmup_steps, s.total_steps, s.min_lr_ratio, s.decay == GVM_LR_COSINE, k);
            double err = fabs(got - want) / (s.lr > 0 ? s.lr : 1);
            if (!(err <= worst)) { worst = err; at = k; }
        }
        TEST_CHECK(worst <= 1e-15, "schedule vs reference", "case %zu: rel err %g at step %lld", c, worst, (long long)at);
    }
}

static void test_points(void) {
    gvm_lr_schedule s = {.lr = 1e-3, .warmup_steps = 100, .total_steps = 1100, .min_lr_ratio = 0.1, .decay = GVM_LR_COSINE};
    TEST_CHECK(gvm_lr_at(&s, 0) == 0.0, "lr(0) = 0", "%g", gvm_lr_at(&s, 0));
    TEST_CHECK(fabs(gvm_lr_at(&s, 1) - 1e-5) < 1e-20, "lr(1) = L/W", "%.17g", gvm_lr_at(&s, 1));
    TEST_CHECK(fabs(gvm_lr_at(&s, 50) - 5e-4) < 1e-18, "lr mid warm-up", "%.17g", gvm_lr_at(&s, 50));
    TEST_CHECK(gvm_lr_at(&s, 100) == 1e-3, "lr(W) = L", "%.17g", gvm_lr_at(&s, 100));
    // halfway through the decay: exactly between L and L_min
    TEST_CHECK(fabs(gvm_lr_at(&s, 600) - 5.5e-4) < 1e-17, "lr halfway = (L + L_min)/2", "%.17g", gvm_lr_at(&s, 600));
    TEST_CHECK(gvm_lr_at(&s, 1100) == 1e-4, "lr(T) = L_min", "%.17g", gvm_lr_at(&s, 1100));
    TEST_CHECK(gvm_lr_at(&s, 5000) == 1e-4, "lr after T = L_min", "%.17g", gvm_lr_at(&s, 5000));
    bool mono = true;
    for (int64_t k = 101; k <= 1100; k++) mono &= gvm_lr_at(&s, k) <= gvm_lr_at(&s, k - 1);
    TEST_CHECK(mono, "cosine decay is non-increasing", "%s", "");
    // transformers' get_cosine_with_min_lr_schedule_with_warmup lambda at current_step = 350 (W 100, T 1100,
    // min_lr_rate 0.1): progress 0.25, factor 0.5 (1 + cos(pi/4)) = 0.85355339059327373; 0.1 + 0.9 * that.
    TEST_CHECK(fabs(gvm_lr_at(&s, 350) / 1e-3 - (0.1 + 0.9 * 0.85355339059327373)) < 1e-15, "HF lambda point", "%.17g",
               gvm_lr_at(&s, 350));
    gvm_lr_schedule c = {.lr = 2e-4, .warmup_steps = 0, .decay = GVM_LR_CONSTANT};
    TEST_CHECK(gvm_lr_at(&c, 1) == 2e-4 && gvm_lr_at(&c, 1000000) == 2e-4, "constant, no warm-up", "%g", gvm_lr_at(&c, 1));
}

static void test_validate(void) {
    struct { gvm_lr_schedule s; const char *word; } bad[] = {
        {{.lr = -1, .decay = GVM_LR_CONSTANT}, "learning rate"},
        {{.lr = NAN, .decay = GVM_LR_CONSTANT}, "learning rate"},
        {{.lr = 1, .warmup_steps = -1, .decay = GVM_LR_CONSTANT}, "warmup_steps"},
        {{.lr = 1, .warmup_steps = 10, .total_steps = 5, .decay = GVM_LR_COSINE}, "total_steps"},
        {{.lr = 1, .total_steps = 5, .min_lr_ratio = 1.5, .decay = GVM_LR_COSINE}, "min_lr_ratio"},
        {{.lr = 1, .decay = (gvm_lr_decay)7}, "decay"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gvm_status st = gvm_lr_schedule_validate(&bad[i].s);
        TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), bad[i].word), "invalid schedule rejected",
                   "case %zu: status %d, message '%s'", i, (int)st, gvm_error_message());
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_against_reference();
    test_points();
    test_validate();
    return test_finish();
}
