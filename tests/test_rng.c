// test_rng.c: Philox4x32-10 and the streams built on it (core/rng.c).
//
// Known answers: Random123's kat_vectors (restated below) and further blocks from randomgen's Philox, an
// independent implementation (tests/golden/data/infra/philox.safetensors). Then the stream contract of
// rng.h: reserve/offset arithmetic, value i of a draw = word i%4 of block base + i/4, independence
// from the thread count, and the distributions (moments within 5 sigma, chi-square for rng_below).
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

// Our mapping: key = (lo32(seed), hi32(seed)), counter = (lo32(ctr), hi32(ctr), lo32(sub), hi32(sub)).
static void philox_words(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    gvm_philox4x32((uint64_t)key[0] | (uint64_t)key[1] << 32, (uint64_t)ctr[0] | (uint64_t)ctr[1] << 32,
                   (uint64_t)ctr[2] | (uint64_t)ctr[3] << 32, out);
}

static void test_known_answers(void) {
    // Random123 kat_vectors, "philox4x32 10" lines: counter, key, expected.
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        philox_words(kat[i], kat[i] + 4, out);
        TEST_CHECK(memcmp(out, kat[i] + 6, sizeof out) == 0, "philox Random123 KAT",
                   "vector %d: got %08x %08x %08x %08x", i, out[0], out[1], out[2], out[3]);
    }

    char path[1024];
    snprintf(path, sizeof path, "%s/infra/philox.safetensors", test_golden_dir());
    gvm_safetensors *st = NULL;
    if (!TEST_CHECK(gvm_safetensors_open(path, &st) == GVM_OK, "philox golden", "%s", gvm_error_message())) return;
    gvm_tensor *c = NULL, *k = NULL, *o = NULL;
    bool ok = gvm_safetensors_load(st, "ctr", &c) == GVM_OK && gvm_safetensors_load(st, "key", &k) == GVM_OK &&
              gvm_safetensors_load(st, "out", &o) == GVM_OK;
    // 3 Random123 rows + 32 randomgen rows; fewer means the generator ran without randomgen.
    ok = ok && c->dtype == GVM_I64 && c->ndim == 2 && c->shape[1] == 4 && k->shape[0] == c->shape[0] &&
         k->shape[1] == 2 && o->shape[0] == c->shape[0] && o->shape[1] == 4 && c->shape[0] >= 35;
    if (TEST_CHECK(ok, "philox golden layout", "ctr [M,4], key [M,2], out [M,4] with M >= 35 expected")) {
        int bad = 0;
        for (int64_t r = 0; r < c->shape[0]; r++) {
            uint32_t ctr[4], key[2], want[4], got[4];
            for (int j = 0; j < 4; j++) ctr[j] = (uint32_t)gvm_tensor_i64(c)[r * 4 + j];
            for (int j = 0; j < 2; j++) key[j] = (uint32_t)gvm_tensor_i64(k)[r * 2 + j];
            for (int j = 0; j < 4; j++) want[j] = (uint32_t)gvm_tensor_i64(o)[r * 4 + j];
            philox_words(ctr, key, got);
            if (memcmp(got, want, sizeof got) != 0 && bad++ < 3)
                printf("  row %lld: got %08x %08x %08x %08x want %08x %08x %08x %08x\n", (long long)r, got[0], got[1],
                       got[2], got[3], want[0], want[1], want[2], want[3]);
        }
        TEST_CHECK(bad == 0, "philox equals randomgen", "%d of %lld blocks differ", bad, (long long)c->shape[0]);
    }
    gvm_tensor_free(c);
    gvm_tensor_free(k);
    gvm_tensor_free(o);
    gvm_safetensors_close(st);
}

// The documented float of a word: its top 24 bits times 2^-24.
static float unit(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

static void test_stream_layout(void) {
    const uint64_t seed = 0x0123456789abcdefull;
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    TEST_CHECK(rng.seed == seed && rng.offset == 0, "rng init", "seed/offset not set");

    // Reserve advances by whole blocks: ceil(n / 4).
    gvm_rng r2 = rng;
    uint64_t b0 = gvm_rng_reserve(&r2, 10), b1 = gvm_rng_reserve(&r2, 6), b2 = gvm_rng_reserve(&r2, 0);
    uint64_t b3 = gvm_rng_reserve(&r2, 1), b4 = gvm_rng_reserve(&r2, 4), b5 = gvm_rng_reserve(&r2, 5);
    TEST_CHECK(b0 == 0 && b1 == 3 && b2 == 5 && b3 == 5 && b4 == 6 && b5 == 7 && r2.offset == 9, "rng reserve",
               "bases %llu %llu %llu %llu %llu %llu, offset %llu", (unsigned long long)b0, (unsigned long long)b1,
               (unsigned long long)b2, (unsigned long long)b3, (unsigned long long)b4, (unsigned long long)b5,
               (unsigned long long)r2.offset);

    // Drawing 10 then 6: blocks 0,1,2 (words 2,3 of block 2 are skipped), then blocks 3,4.
    float a[10], b[6];
    gvm_rng_uniform(&rng, a, 10, 0.0f, 1.0f);
    gvm_rng_uniform(&rng, b, 6, 0.0f, 1.0f);
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t w[4];
        uint64_t blk = i < 10 ? (uint64_t)i / 4 : 3 + (uint64_t)(i - 10) / 4;
        int word = i < 10 ? i % 4 : (i - 10) % 4;
        gvm_philox4x32(seed, blk, 0, w);
        float got = i < 10 ? a[i] : b[i - 10];
        bad += got != unit(w[word]);
        bad += got != gvm_rng_uniform_at(seed, i < 10 ? 0 : 3, (uint64_t)(i < 10 ? i : i - 10));
    }
    TEST_CHECK(bad == 0 && rng.offset == 5, "uniform 10 then 6 = blocks 0-2 then 3-4", "%d values differ, offset %llu",
               bad, (unsigned long long)rng.offset);

    // low/high only scale: the same words land in [low, high).
    gvm_rng_init(&rng, seed);
    float c[10];
    gvm_rng_uniform(&rng, c, 10, -2.0f, 3.0f);
    bad = 0;
    for (int i = 0; i < 10; i++) bad += fabsf(c[i] - (-2.0f + 5.0f * a[i])) > 1e-6f || c[i] < -2.0f || c[i] >= 3.0f;
    TEST_CHECK(bad == 0, "uniform low/high", "%d values wrong", bad);

    // Same seed, same stream whatever the chunking (at block boundaries); another seed, another stream.
    gvm_rng x, y, z;
    gvm_rng_init(&x, 7);
    gvm_rng_init(&y, 7);
    gvm_rng_init(&z, 8);
    float vx[64], vy[64], vz[64];
    gvm_rng_uniform(&x, vx, 64, 0, 1);
    for (int i = 0; i < 64; i += 16) gvm_rng_uniform(&y, vy + i, 16, 0, 1);
    gvm_rng_uniform(&z, vz, 64, 0, 1);
    int same_z = 0;
    for (int i = 0; i < 64; i++) same_z += vx[i] == vz[i];
    TEST_CHECK(memcmp(vx, vy, sizeof vx) == 0, "same seed same stream", "chunked draws differ");
    TEST_CHECK(same_z < 3, "other seed other stream", "%d of 64 values equal", same_z);

    // The upper half of the seed matters (key word 1).
    gvm_rng_init(&z, 7 | (1ull << 32));
    gvm_rng_uniform(&z, vz, 64, 0, 1);
    same_z = 0;
    for (int i = 0; i < 64; i++) same_z += vx[i] == vz[i];
    TEST_CHECK(same_z < 3, "seed high word used", "%d of 64 values equal", same_z);

    // u32: word 0 of the next block, one block consumed.
    gvm_rng_init(&rng, seed);
    gvm_rng_uniform(&rng, a, 5, 0, 1);  // offset 2
    uint32_t w[4];
    gvm_philox4x32(seed, 2, 0, w);
    uint32_t u = gvm_rng_u32(&rng);
    TEST_CHECK(u == w[0] && rng.offset == 3, "rng u32", "got %08x want %08x, offset %llu", u, w[0],
               (unsigned long long)rng.offset);

    // Normal: Box-Muller on word pairs (0,1) and (2,3) of each block, as documented.
    gvm_rng_init(&rng, seed);
    float nv[6];
    gvm_rng_normal(&rng, nv, 6, 1.5f, 2.0f);
    bad = 0;
    for (int i = 0; i < 6; i++) {
        gvm_philox4x32(seed, (uint64_t)i / 4, 0, w);
        int pair = (i % 4) / 2;
        double u1 = ((double)(w[2 * pair] >> 8) + 1.0) / 16777216.0, u2 = (double)(w[2 * pair + 1] >> 8) / 16777216.0;
        double r = sqrt(-2.0 * log(u1)), t = 2.0 * M_PI * u2;
        double z0 = (i % 2 == 0) ? r * cos(t) : r * sin(t);
        bad += fabs(nv[i] - (1.5 + 2.0 * z0)) > 1e-6 * (1 + fabs(1.5 + 2.0 * z0));
    }
    TEST_CHECK(bad == 0 && rng.offset == 2, "normal = Box-Muller on block words", "%d values differ, offset %llu", bad,
               (unsigned long long)rng.offset);
}

// Large draws run the OpenMP loops: 1 and 2 threads must give the same bits.
static void test_threads(void) {
    const size_t n = (1u << 20) + 3;  // > 65536 (parallel) and not a multiple of 4
    float *u1 = malloc(n * sizeof(float)), *u2 = malloc(n * sizeof(float));
    float *n1 = malloc(n * sizeof(float)), *n2 = malloc(n * sizeof(float));
    int saved = omp_get_max_threads();
    gvm_rng r;
    omp_set_num_threads(1);
    gvm_rng_init(&r, 99);
    gvm_rng_uniform(&r, u1, n, 0, 1);
    gvm_rng_normal(&r, n1, n, 0, 1);
    uint64_t off1 = r.offset;
    omp_set_num_threads(2);
    gvm_rng_init(&r, 99);
    gvm_rng_uniform(&r, u2, n, 0, 1);
    gvm_rng_normal(&r, n2, n, 0, 1);
    omp_set_num_threads(saved);
    TEST_CHECK(memcmp(u1, u2, n * sizeof(float)) == 0 && memcmp(n1, n2, n * sizeof(float)) == 0 && off1 == r.offset,
               "1 vs 2 threads identical", "streams differ");
    int bad = 0;
    for (size_t i = 0; i < n; i += 4099) bad += u1[i] != gvm_rng_uniform_at(99, 0, i);
    bad += u1[n - 1] != gvm_rng_uniform_at(99, 0, n - 1);
    TEST_CHECK(bad == 0, "uniform_at equals the parallel draw", "%d differ", bad);
    free(u1);
    free(u2);
    free(n1);
    free(n2);
}

static void moments(const float *x, size_t n, double *mean, double *var) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *var = s2 / (double)(n - 1);
}

static void test_distributions(void) {
    const size_t n = 1000000;
    float *x = malloc(n * sizeof(float));
    gvm_rng r;
    gvm_rng_init(&r, 2024);
    gvm_rng_uniform(&r, x, n, 0, 1);
    double mean, var;
    moments(x, n, &mean, &var);
    int out_of_range = 0, not_24bit = 0;
    for (size_t i = 0; i < n; i++) {
        out_of_range += !(x[i] >= 0.0f && x[i] < 1.0f);
        double scaled = (double)x[i] * 16777216.0;
        not_24bit += scaled != floor(scaled);
    }
    // Var of the sample variance of U(0,1): (mu4 - sigma^4) / n = (1/80 - 1/144) / n.
    TEST_CHECK(out_of_range == 0 && not_24bit == 0, "uniform in [0,1) on a 2^-24 grid", "%d out of range, %d off grid",
               out_of_range, not_24bit);
    TEST_CHECK(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean", "%.6f", mean);
    TEST_CHECK(fabs(var - 1.0 / 12) < 5 * sqrt((1.0 / 80 - 1.0 / 144) / n), "uniform variance", "%.6f", var);
    // Adjacent values must not be correlated (a wrong word order or reused block would show here).
    double cov = 0;
    for (size_t i = 0; i + 1 < n; i++) cov += (x[i] - 0.5) * (x[i + 1] - 0.5);
    cov /= (double)(n - 1);
    TEST_CHECK(fabs(cov) < 5 * (1.0 / 12) / sqrt((double)n), "uniform lag-1 covariance", "%.3g", cov);

    gvm_rng_normal(&r, x, n, 0.0f, 1.0f);
    moments(x, n, &mean, &var);
    TEST_CHECK(fabs(mean) < 5 / sqrt((double)n), "normal mean", "%.6f", mean);
    TEST_CHECK(fabs(var - 1) < 5 * sqrt(2.0 / n), "normal variance", "%.6f", var);
    size_t tail = 0;
    for (size_t i = 0; i < n; i++) tail += fabsf(x[i]) > 2.0f;
    double p = 0.0455002638963584, frac = (double)tail / (double)n;  // P(|Z| > 2)
    TEST_CHECK(fabs(frac - p) < 5 * sqrt(p * (1 - p) / n), "normal tail P(|z|>2)", "%.5f", frac);

    gvm_rng_normal(&r, x, n, 3.0f, 0.5f);
    moments(x, n, &mean, &var);
    TEST_CHECK(fabs(mean - 3) < 5 * 0.5 / sqrt((double)n) && fabs(var - 0.25) < 5 * 0.25 * sqrt(2.0 / n),
               "normal mean/std scaling", "mean %.6f var %.6f", mean, var);
    free(x);

    // An odd count writes exactly n values (ASan catches a write past the end).
    float *odd = malloc(7 * sizeof(float));
    gvm_rng_normal(&r, odd, 7, 0, 1);
    gvm_rng_uniform(&r, odd, 7, 0, 1);
    free(odd);
}

static void test_below(void) {
    gvm_rng r;
    gvm_rng_init(&r, 5);
    // Chi-square over 1000 bins: mean 999, sd sqrt(2 * 999) ~ 44.7; 6 sd above is far past chance.
    enum { BINS = 1000, DRAWS = 500000 };
    static int64_t counts[BINS];
    int out = 0;
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = gvm_rng_below(&r, BINS);
        if (v >= BINS)
            out++;
        else
            counts[v]++;
    }
    double chi2 = 0, e = (double)DRAWS / BINS;
    for (int b = 0; b < BINS; b++) chi2 += (counts[b] - e) * (counts[b] - e) / e;
    TEST_CHECK(out == 0, "rng_below in range", "%d values >= n", out);
    TEST_CHECK(chi2 < 999 + 6 * 44.7 && chi2 > 999 - 6 * 44.7, "rng_below chi-square (1000 bins)", "chi2 %.1f", chi2);

    // Small n: 7 bins, chi2 with 6 dof; 40 is beyond p = 1e-6.
    int64_t c7[7] = {0};
    for (int i = 0; i < 70000; i++) c7[gvm_rng_below(&r, 7) % 7]++;
    chi2 = 0;
    for (int b = 0; b < 7; b++) chi2 += (c7[b] - 10000.0) * (c7[b] - 10000.0) / 10000.0;
    TEST_CHECK(chi2 < 40, "rng_below chi-square (7 bins)", "chi2 %.1f", chi2);

    // n = 3 * 2^62: without rejection, x % n would put half the mass below 2^62 instead of a third.
    const uint64_t big = 3ull << 62;
    int low = 0, bad = 0;
    for (int i = 0; i < 30000; i++) {
        uint64_t v = gvm_rng_below(&r, big);
        bad += v >= big;
        low += v < (1ull << 62);
    }
    double frac = low / 30000.0;
    TEST_CHECK(bad == 0 && fabs(frac - 1.0 / 3) < 5 * sqrt(2.0 / 9 / 30000), "rng_below unbiased for huge n",
               "P(v < 2^62) = %.4f (want 1/3), %d out of range", frac, bad);

    // 64-bit range is used: with n = 2^40, values above 2^39 show up about half the time.
    int high = 0;
    for (int i = 0; i < 1000; i++) high += gvm_rng_below(&r, 1ull << 40) >= (1ull << 39);
    TEST_CHECK(high > 400 && high < 600, "rng_below uses 64 bits", "%d of 1000 above 2^39", high);

    bool ones = true;
    for (int i = 0; i < 100; i++) ones &= gvm_rng_below(&r, 1) == 0;
    uint64_t before = r.offset;
    gvm_rng_below(&r, 10);
    TEST_CHECK(ones && r.offset > before, "rng_below n=1 and stream advance", "wrong");
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_known_answers();
    test_stream_layout();
    test_threads();
    test_distributions();
    test_below();
    return test_finish();
}
