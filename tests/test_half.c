// test_half.c: f32 <-> f16 / bf16 conversions (core/half.c).
//
// Exhaustive where the space allows it: all 65536 f16 and bf16 bit patterns decode to the value their
// IEEE fields say and round-trip bit-identically, and every tie between two neighbouring finite values
// rounds to the even one (with one f32 ulp either side rounding to the nearer). Then numpy's
// astype(np.float16) and torch's .to(torch.bfloat16) on tricky and random values
// (tests/golden/data/infra/half.safetensors, written by tests/golden/gen_infra.py).
#include <float.h>
#include <math.h>
#include <string.h>

#include "tests/test_util.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
static bool bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

// The value an f16 bit pattern stands for, straight from the IEEE 754 binary16 definition.
static double f16_reference(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0x1f)
        v = mant ? NAN : INFINITY;
    else if (exp == 0)
        v = ldexp(mant, -24);
    else
        v = ldexp(mant + 1024, exp - 25);
    return sign ? -v : v;
}

static void test_f16_exhaustive(void) {
    int bad_decode = 0, bad_round = 0, bad_nan = 0, bad_array = 0;
    uint16_t first_bad = 0;
    static uint16_t all[65536], back[65536];
    static float dec[65536];
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        all[i] = h;
        float f = gvm_f16_to_f32(h);
        double ref = f16_reference(h);
        if (f16_is_nan(h)) {
            // NaN stays NaN with its sign; the conversion back may only set the quiet bit.
            uint16_t r = gvm_f32_to_f16(f);
            if (!isnan(f) || (f32_bits(f) >> 31) != (uint32_t)(h >> 15) || r != (h | 0x200u)) {
                if (!bad_nan++) first_bad = h;
            }
            continue;
        }
        // Compare bit patterns, not values, so -0.0 must come out as -0.0.
        if (f32_bits(f) != f32_bits((float)ref)) {
            if (!bad_decode++) first_bad = h;
        }
        if (gvm_f32_to_f16(f) != h) {
            if (!bad_round++) first_bad = h;
        }
    }
    TEST_CHECK(bad_decode == 0, "f16 -> f32 decodes all patterns", "%d wrong (first 0x%04x)", bad_decode, first_bad);
    TEST_CHECK(bad_round == 0, "f16 -> f32 -> f16 identical", "%d differ (first 0x%04x)", bad_round, first_bad);
    TEST_CHECK(bad_nan == 0, "f16 NaNs stay NaN", "%d wrong (first 0x%04x)", bad_nan, first_bad);

    gvm_f16_to_f32_array(all, dec, 65536);
    gvm_f32_to_f16_array(dec, back, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t want = f32_bits(gvm_f16_to_f32((uint16_t)i));
        if (f32_bits(dec[i]) != want || back[i] != gvm_f32_to_f16(dec[i])) bad_array++;
    }
    TEST_CHECK(bad_array == 0, "f16 array conversions equal scalar ones", "%d differ", bad_array);
}

// Every midpoint between neighbouring finite f16 values a < b (both signs, subnormals included, and
// 65504 with the "next" value 2^16 that overflows) must round to the one with an even mantissa;
// one f32 ulp below/above it must round to a / b.
static void test_f16_ties(void) {
    int bad = 0;
    uint16_t first = 0;
    for (uint32_t h = 0; h < 0x7bffu + 1; h++) {
        double a = f16_reference((uint16_t)h);
        double b = h == 0x7bffu ? 65536.0 : f16_reference((uint16_t)(h + 1));
        uint16_t hb = (uint16_t)(h + 1);  // 0x7c00 (inf) after 65504
        float mid = (float)((a + b) / 2);
        if ((double)mid != (a + b) / 2) {  // midpoints need 12 significant bits: always exact in f32
            bad++;
            continue;
        }
        uint16_t even = (h & 1u) ? hb : (uint16_t)h;
        for (int s = 0; s < 2; s++) {
            uint16_t sign = s ? 0x8000u : 0;
            float m = s ? -mid : mid;
            float below = s ? -nextafterf(mid, 0.0f) : nextafterf(mid, 0.0f);
            float above = s ? -nextafterf(mid, INFINITY) : nextafterf(mid, INFINITY);
            if (gvm_f32_to_f16(m) != (even | sign) || gvm_f32_to_f16(below) != (h | sign) ||
                gvm_f32_to_f16(above) != (hb | sign)) {
                if (!bad++) first = (uint16_t)h;
            }
        }
    }
    TEST_CHECK(bad == 0, "f16 ties to even at every midpoint", "%d wrong (first between 0x%04x and the next)", bad,
               first);
    // Beyond the largest tie everything overflows; below half the smallest subnormal everything is 0.
    TEST_CHECK(gvm_f32_to_f16(1e30f) == 0x7c00u && gvm_f32_to_f16(-FLT_MAX) == 0xfc00u &&
                   gvm_f32_to_f16(bits_f32(0x00000001u)) == 0 && gvm_f32_to_f16(-1e-30f) == 0x8000u,
               "f16 overflow and underflow", "wrong");
}

static void test_bf16_exhaustive(void) {
    int bad_decode = 0, bad_round = 0, bad_nan = 0, bad_tie = 0, bad_array = 0;
    uint16_t first = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = gvm_bf16_to_f32(h);
        if (f32_bits(f) != (i << 16)) {  // bf16 is the top half of an f32, by definition
            if (!bad_decode++) first = h;
        }
        uint16_t r = gvm_f32_to_bf16(f);
        if (bf16_is_nan(h)) {
            if (!bf16_is_nan(r) || (r >> 15) != (h >> 15)) bad_nan++;
        } else if (r != h) {
            if (!bad_round++) first = h;
        }
    }
    // Midpoint of h and h + 1 is the f32 pattern (h << 16) | 0x8000, also across a binade edge and at
    // the largest finite value (the tie with inf rounds to inf, whose mantissa is even).
    for (uint32_t h = 0; h < 0x7f80u; h++) {
        for (uint32_t s = 0; s < 2; s++) {
            uint32_t sign = s << 31;
            uint32_t mid = sign | (h << 16) | 0x8000u;
            uint16_t lo = (uint16_t)((sign >> 16) | h), hi = (uint16_t)((sign >> 16) | (h + 1));
            uint16_t even = (h & 1u) ? hi : lo;
            if (gvm_f32_to_bf16(bits_f32(mid)) != even || gvm_f32_to_bf16(bits_f32(mid - 1)) != lo ||
                gvm_f32_to_bf16(bits_f32(mid + 1)) != hi) {
                if (!bad_tie++) first = (uint16_t)h;
            }
        }
    }
    static float src[65536];
    static uint16_t out[65536];
    static float dec[65536];
    for (uint32_t i = 0; i < 65536; i++) src[i] = bits_f32((i << 16) | (i * 2654435761u >> 16));
    gvm_f32_to_bf16_array(src, out, 65536);
    for (uint32_t i = 0; i < 65536; i++) bad_array += out[i] != gvm_f32_to_bf16(src[i]);
    gvm_bf16_to_f32_array(out, dec, 65536);
    for (uint32_t i = 0; i < 65536; i++) bad_array += f32_bits(dec[i]) != f32_bits(gvm_bf16_to_f32(out[i]));
    TEST_CHECK(bad_decode == 0, "bf16 -> f32 decodes all patterns", "%d wrong (first 0x%04x)", bad_decode, first);
    TEST_CHECK(bad_round == 0, "bf16 -> f32 -> bf16 identical", "%d differ (first 0x%04x)", bad_round, first);
    TEST_CHECK(bad_nan == 0, "bf16 NaNs stay NaN", "%d wrong", bad_nan);
    TEST_CHECK(bad_tie == 0, "bf16 ties to even at every midpoint", "%d wrong (first 0x%04x)", bad_tie, first);
    TEST_CHECK(bad_array == 0, "bf16 array conversions equal scalar ones", "%d differ", bad_array);
}

// numpy (f16) and torch (bf16) on the golden set. NaN only has to stay NaN: payloads differ by design
// (torch returns its canonical 0x7fc0).
static void test_golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/infra/half.safetensors", test_golden_dir());
    gvm_safetensors *st = NULL;
    if (!TEST_CHECK(gvm_safetensors_open(path, &st) == GVM_OK, "half golden", "cannot read: %s (run "
                    "tests/golden/generate.py --only infra)", gvm_error_message()))
        return;
    gvm_tensor *x = NULL, *h = NULL, *b = NULL;
    bool ok = gvm_safetensors_load(st, "f32", &x) == GVM_OK && gvm_safetensors_load(st, "f16", &h) == GVM_OK &&
              gvm_safetensors_load(st, "bf16", &b) == GVM_OK;
    ok = ok && x->dtype == GVM_F32 && h->dtype == GVM_F16 && b->dtype == GVM_BF16 && x->numel == h->numel &&
         x->numel == b->numel && x->numel > 800;
    if (TEST_CHECK(ok, "half golden layout", "tensors f32/f16/bf16 missing or mismatched: %s", gvm_error_message())) {
        const float *xv = x->data;
        const uint16_t *hv = h->data, *bv = b->data;
        int bad16 = 0, badbf = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            uint16_t g16 = gvm_f32_to_f16(xv[i]), gbf = gvm_f32_to_bf16(xv[i]);
            bool ok16 = isnan(xv[i]) ? f16_is_nan(g16) && f16_is_nan(hv[i]) : g16 == hv[i];
            bool okbf = isnan(xv[i]) ? bf16_is_nan(gbf) && bf16_is_nan(bv[i]) : gbf == bv[i];
            if (!ok16 && bad16++ < 5)
                printf("  f16 of %.9g (0x%08x): got 0x%04x numpy 0x%04x\n", xv[i], f32_bits(xv[i]), g16, hv[i]);
            if (!okbf && badbf++ < 5)
                printf("  bf16 of %.9g (0x%08x): got 0x%04x torch 0x%04x\n", xv[i], f32_bits(xv[i]), gbf, bv[i]);
        }
        TEST_CHECK(bad16 == 0, "f32 -> f16 equals numpy", "%d of %lld differ", bad16, (long long)x->numel);
        TEST_CHECK(badbf == 0, "f32 -> bf16 equals torch", "%d of %lld differ", badbf, (long long)x->numel);
    }
    gvm_tensor_free(x);
    gvm_tensor_free(h);
    gvm_tensor_free(b);
    gvm_safetensors_close(st);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_f16_exhaustive();
    test_f16_ties();
    test_bf16_exhaustive();
    test_golden();
    return test_finish();
}
