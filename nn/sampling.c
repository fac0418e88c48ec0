// sampling.c: logits processing and drawing codes (see sampling.h).
#include "nn/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gvm_nn_sampling_opts gvm_nn_sampling_opts_default(void) {
    return (gvm_nn_sampling_opts){.temperature = 1.0f, .top_k = 250, .top_p = 0.0f, .seed = 0};
}

gvm_status gvm_nn_sampling_check(const gvm_nn_sampling_opts *o) {
    if (!isfinite(o->temperature) || o->temperature < 0.0f)
        return gvm_error_set(GVM_ERR_INVALID, "sampling: temperature %g must be >= 0 (0 = greedy)",
                             (double)o->temperature);
    if (o->top_k < 0)
        return gvm_error_set(GVM_ERR_INVALID, "sampling: top_k %lld must be >= 0 (0 = off, 1 = greedy)",
                             (long long)o->top_k);
    if (!isfinite(o->top_p) || o->top_p < 0.0f)
        return gvm_error_set(GVM_ERR_INVALID, "sampling: top_p %g must be in [0, 1] (0 = off)", (double)o->top_p);
    return GVM_OK;
}

bool gvm_nn_sampling_is_greedy(const gvm_nn_sampling_opts *o) {
    return o->temperature == 0.0f || o->top_k == 1;
}

void gvm_nn_sampling_cfg(const float *cond, const float *uncond, int64_t rows, int64_t card, float scale,
                         float *out) {
    // the twin's expression and order of f32 operations, so the result is bit-identical to it
    for (int64_t i = 0; i < rows * card; i++) out[i] = uncond[i] + (cond[i] - uncond[i]) * scale;
}

static void swap_f(float *a, float *b) {
    const float t = *a;
    *a = *b;
    *b = t;
}

// The k-th largest (k >= 1) of v[0..n), reordering v: Hoare quickselect, O(n) expected (a full sort of the
// 2048 logits per row was 40% of a demo-sized generation). Terminates on NaN (every comparison is false).
static float kth_largest(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    const int64_t target = k - 1;  // position in descending order
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] > v[lo]) swap_f(&v[mid], &v[lo]);  // median of three, descending: v[lo] >= v[mid] >= v[hi]
        if (v[hi] > v[lo]) swap_f(&v[hi], &v[lo]);
        if (v[hi] > v[mid]) swap_f(&v[hi], &v[mid]);
        const float pivot = v[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (i <= hi && v[i] > pivot) i++;
            while (j >= lo && v[j] < pivot) j--;
            if (i <= j) swap_f(&v[i++], &v[j--]);
        }
        // now v[lo..j] >= pivot, v[i..hi] <= pivot, and v[j+1..i-1] == pivot
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return v[target];
    }
    return v[lo];
}

// Ascending by value, ties by index: a fixed order, so equal scores are removed deterministically.
typedef struct scored {
    float v;
    int64_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

// TopKLogitsWarper: everything strictly below the k-th largest value goes to -inf.
static void top_k_row(float *row, int64_t card, int64_t k, float *scratch) {
    if (k >= card) return;
    memcpy(scratch, row, (size_t)card * sizeof *scratch);
    const float kth = kth_largest(scratch, card, k);
    for (int64_t j = 0; j < card; j++)
        if (row[j] < kth) row[j] = -INFINITY;
}

// TopPLogitsWarper with min_tokens_to_keep = 1. Entries already at -inf (top-k's) have probability 0: they
// stay removed and add nothing to the cumulative sums, so only the finite ones are sorted.
static void top_p_row(float *row, int64_t card, float top_p, scored *s) {
    int64_t n = 0;
    for (int64_t j = 0; j < card; j++)
        if (row[j] > -INFINITY) s[n++] = (scored){row[j], j};
    if (n <= 1) return;
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    const double mx = s[n - 1].v;
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) sum += exp((double)s[j].v - mx);
    const double limit = 1.0 - (double)top_p;
    double cum = 0.0;
    for (int64_t j = 0; j < n - 1; j++) {  // the last (largest) entry is always kept
        cum += exp((double)s[j].v - mx) / sum;
        if (cum <= limit) row[s[j].i] = -INFINITY;
        else break;  // cumulative sums only grow: nothing later is removed
    }
}

void gvm_nn_sampling_process(float *scores, int64_t rows, int64_t card, const gvm_nn_sampling_opts *o) {
    GVM_CHECK(card > 0 && rows >= 0, "sampling: bad sizes");
    if (gvm_nn_sampling_is_greedy(o)) return;
    const bool use_k = o->top_k > 0 && o->top_k < card, use_p = o->top_p > 0.0f && o->top_p < 1.0f;
    void *scratch = NULL;
    if (use_k || use_p) scratch = GVM_MALLOC((size_t)card * sizeof(scored));
    for (int64_t r = 0; r < rows; r++) {
        float *row = scores + r * card;
        if (o->temperature != 1.0f)
            for (int64_t j = 0; j < card; j++) row[j] = row[j] / o->temperature;
        if (use_k) top_k_row(row, card, o->top_k, scratch);
        if (use_p) top_p_row(row, card, o->top_p, scratch);
    }
    free(scratch);
}

int64_t gvm_nn_sampling_argmax(const float *row, int64_t card) {
    int64_t best = 0;
    for (int64_t j = 1; j < card; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

int64_t gvm_nn_sampling_draw(const float *row, int64_t card, double u) {
    const int64_t best = gvm_nn_sampling_argmax(row, card);
    const double mx = row[best];
    if (!isfinite(mx)) return best;  // all -inf, or a non-finite model output: nothing to weigh
    double sum = 0.0;
    for (int64_t j = 0; j < card; j++) sum += exp((double)row[j] - mx);  // exp(-inf) = 0
    const double target = u * sum;
    double acc = 0.0;
    int64_t last = best;
    for (int64_t j = 0; j < card; j++) {
        const double p = exp((double)row[j] - mx);
        if (p <= 0.0) continue;
        acc += p;
        last = j;
        if (acc > target) return j;
    }
    return last;  // rounding left acc a hair under target: the last entry that has any probability
}

double gvm_nn_sampling_uniform(uint64_t seed, int64_t sample, int64_t codebook, int64_t step,
                               int64_t num_codebooks) {
    uint32_t w[4];
    gvm_philox4x32(seed, (uint64_t)(step * num_codebooks + codebook), (uint64_t)sample, w);
    const uint64_t bits = ((uint64_t)(w[0] >> 5) << 26) | (uint64_t)(w[1] >> 6);  // 27 + 26 = 53 bits
    return (double)bits * (1.0 / 9007199254740992.0);                               // / 2^53
}

void gvm_nn_sampling_sample(float *scores, int64_t batch, int64_t num_codebooks, int64_t card,
                            const gvm_nn_sampling_opts *o, int64_t step, int64_t *codes) {
    const bool greedy = gvm_nn_sampling_is_greedy(o);
    if (!greedy) gvm_nn_sampling_process(scores, batch * num_codebooks, card, o);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t k = 0; k < num_codebooks; k++) {
            const float *row = scores + (b * num_codebooks + k) * card;
            codes[b * num_codebooks + k] =
                greedy ? gvm_nn_sampling_argmax(row, card)
                       : gvm_nn_sampling_draw(row, card, gvm_nn_sampling_uniform(o->seed, b, k, step, num_codebooks));
        }
}
