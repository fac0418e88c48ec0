// cpu/attention.c: fused scaled dot-product attention, forward and backward (see attention.h).
//
// Work is split into blocks of query rows of one (batch, head). For a block the scores against every key
// it may see are one GEMM into a [rows, n] scratch matrix (n = Tk, or fewer under the causal mask), the
// row softmax runs in place, and a second GEMM multiplies by V. Only the log-sum-exp of each row is kept.
// The backward pass recomputes the block's probabilities from it and runs five GEMMs per block. GEMMs
// inside the OpenMP regions run single-threaded in OpenBLAS; parallelism comes from the blocks.
//
// The exponentials are most of what is not GEMM (Tq x Tk of them in each direction), so the two row
// kernels use a polynomial exp that vectorises and are GVM_VEC_CLONES (AVX-512 here runs them ~3x faster
// than SSE2, which took the whole op from 0.39 s to 0.31 s at B=2, T=1500, H=8, D=64 on one core).
#include "core/cpu/attention.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/cpu/gemm.h"
#include "core/cpu/simd.h"
#include "core/cpu/vmath.h"

// ---- row kernels ------------------------------------------------------------------------------------------------


// Row sums run in float over blocks of SUM_BLOCK elements (one partial sum per vector lane) and in double
// across blocks: as accurate as a double sum for long rows, at float speed.
#define SUM_BLOCK 256

// One score row s [n] (already scaled) -> unnormalised probabilities exp(s + bias - max) for j < lim, 0 for
// lim <= j < n. Writes the row's log-sum-exp and returns 1 / sum (0 for a row that sees no key, whose lse
// is +inf so that the backward pass recomputes zero probabilities for it).
GVM_VEC_CLONES static float row_softmax(float *s, int64_t lim, int64_t n, const float *bias, float *lse) {
    if (bias)
        for (int64_t j = 0; j < lim; j++) s[j] += bias[j];
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < lim; j++) m = s[j] > m ? s[j] : m;
    if (!(m > -INFINITY)) {  // no visible key (or lim == 0)
        memset(s, 0, (size_t)n * sizeof(float));
        *lse = INFINITY;
        return 0.0f;
    }
    double sum = 0.0;  // >= 1 (the max contributes exp(0))
    for (int64_t j0 = 0; j0 < lim; j0 += SUM_BLOCK) {
        int64_t j1 = j0 + SUM_BLOCK < lim ? j0 + SUM_BLOCK : lim;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int64_t j = j0; j < j1; j++) {
            float e = gvm_exp_nonpos(s[j] - m);
            s[j] = e;
            part += e;
        }
        sum += part;
    }
    if (lim < n) memset(s + lim, 0, (size_t)(n - lim) * sizeof(float));
    *lse = m + (float)log(sum);
    return (float)(1.0 / sum);
}

// Recompute one row's probabilities p = exp(s + bias - lse) into s (zero past lim) and, when dp is given,
// turn it into dS = p * (dp - delta) (delta = rowsum(dO * O), the softmax's Jacobian term).
GVM_VEC_CLONES static void row_grad(float *s, float *dp, int64_t lim, int64_t n, const float *bias, float lse,
                                    float delta) {
    if (!(lse < INFINITY)) lim = 0;  // a row that saw no key: zero probabilities and gradients
    if (bias)
        for (int64_t j = 0; j < lim; j++) s[j] += bias[j];
    if (dp) {
        for (int64_t j = 0; j < lim; j++) {
            float p = gvm_exp_nonpos(s[j] - lse);
            s[j] = p;
            dp[j] = p * (dp[j] - delta);
        }
    } else {
        for (int64_t j = 0; j < lim; j++) s[j] = gvm_exp_nonpos(s[j] - lse);
    }
    if (lim < n) {
        memset(s + lim, 0, (size_t)(n - lim) * sizeof(float));
        if (dp) memset(dp + lim, 0, (size_t)(n - lim) * sizeof(float));
    }
}

// ---- blocking and scratch -------------------------------------------------------------------------------------

// Below this many multiply-adds a team of threads costs more than it saves (gradient checks, tiny heads,
// and the one-query decode steps of generation: at 2e5 a demo-sized step over a 400-step cache forked a
// team for ~30 us of work, and on a busy 2-core machine each fork waited a scheduler slice for the second
// thread, making a 500-frame generation 15x slower than on one thread). 2e6 is ~0.3 ms on one core.
static bool worth_threads(const gvm_attention_dims *d) {
    return (double)d->B * (double)d->H * (double)d->Tq * (double)d->Tk * (double)(d->D + d->Dv) > 2e6;
}

static int team_size(const gvm_attention_dims *d) { return worth_threads(d) ? omp_get_max_threads() : 1; }

// Query rows per block. Bigger blocks run the GEMMs faster (the shared K and V panels are packed once per
// block) until a [rows, Tk] score matrix (two in the backward pass) outgrows a core's L2; 1 MB each was
// best here, with little change from 96 to 256 rows at Tk = 1500. Enough blocks are kept to feed every thread.
static int64_t block_rows(const gvm_attention_dims *d) {
    int64_t rows = (int64_t)(1 << 18) / (d->Tk > 0 ? d->Tk : 1);
    rows = rows < 32 ? 32 : rows > 192 ? 192 : rows;
    int64_t per_thread = (d->B * d->H * d->Tq + 4 * team_size(d) - 1) / (4 * team_size(d));
    if (rows > per_thread) rows = per_thread < 16 ? 16 : per_thread;
    return rows > d->Tq ? (d->Tq > 0 ? d->Tq : 1) : rows;
}

// Floats rounded up to a whole number of cache lines, so per-thread buffers never share one.
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

// Last key (exclusive) that query row i may see: i + 1 + Tk - Tq under the causal mask, clamped to [0, n].
static int64_t visible_keys(const gvm_attention_dims *d, int64_t i, int64_t n) {
    if (!d->causal) return n;
    int64_t lim = i + 1 + d->Tk - d->Tq;
    return lim < 0 ? 0 : lim > n ? n : lim;
}

// Additive key bias [B, Tk]: 0 where the mask attends, -inf where it does not (exp turns it into 0).
static float *build_bias(const gvm_attention_dims *d, const uint8_t *key_mask, float *bias) {
    if (!key_mask) return NULL;
    for (int64_t i = 0; i < d->B * d->Tk; i++) bias[i] = key_mask[i] ? 0.0f : -INFINITY;
    return bias;
}

size_t gvm_cpu_attention_fwd_scratch(const gvm_attention_dims *d) {
    size_t rows = (size_t)block_rows(d);
    size_t per_thread = pad16(rows * (size_t)d->Tk) + pad16(rows);
    return (pad16((size_t)(d->B * d->Tk)) + (size_t)team_size(d) * per_thread) * sizeof(float);
}

size_t gvm_cpu_attention_bwd_scratch(const gvm_attention_dims *d) {
    size_t rows = (size_t)block_rows(d);
    size_t per_thread = 2 * pad16(rows * (size_t)d->Tk) + pad16(rows) + pad16((size_t)(d->Tk * (d->D + d->Dv)));
    return (pad16((size_t)(d->B * d->Tk)) + (size_t)team_size(d) * per_thread) * sizeof(float);
}

// ---- forward ----------------------------------------------------------------------------------------------------

// Query rows [i0, i0 + rows) of head h of batch b.
static void fwd_block(const gvm_attention_dims *d, int64_t b, int64_t h, int64_t i0, int64_t rows, const float *q,
                      const float *k, const float *v, const float *bias, float *out, float *lse, float *S,
                      float *inv) {
    int64_t H = d->H, D = d->D, Dv = d->Dv, Tq = d->Tq, Tk = d->Tk;
    int64_t ldq = H * D, ldv = H * Dv;
    int64_t n = visible_keys(d, i0 + rows - 1, Tk);  // the block's last row sees the most keys
    const float *qb = q + ((b * Tq + i0) * H + h) * D;  // [rows, D], row stride H*D
    const int64_t Sk = d->kv_stride ? d->kv_stride : Tk;  // k and v rows may hold more steps than Tk
    const float *kb = k + (b * Sk * H + h) * D;         // [n, D]
    const float *vb = v + (b * Sk * H + h) * Dv;        // [n, Dv]
    float *ob = out + ((b * Tq + i0) * H + h) * Dv;     // [rows, Dv]
    float *lb = lse + (b * H + h) * Tq + i0;            // [rows]
    const float *bb = bias ? bias + b * Tk : NULL;
    // S [rows, n] = scale * Q K^T
    gvm_cpu_sgemm(false, true, rows, n, D, d->scale, qb, ldq, kb, ldq, 0.0f, S, n);
    for (int64_t r = 0; r < rows; r++) inv[r] = row_softmax(S + r * n, visible_keys(d, i0 + r, n), n, bb, &lb[r]);
    // O [rows, Dv] = P V, normalised afterwards (Dv multiplies per row instead of n).
    gvm_cpu_sgemm(false, false, rows, Dv, n, 1.0f, S, n, vb, ldv, 0.0f, ob, ldv);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < Dv; c++) ob[r * ldv + c] *= inv[r];
}

void gvm_cpu_attention_fwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                           const uint8_t *key_mask, float *out, float *lse, void *scratch) {
    int64_t rows = block_rows(d);
    int64_t n_blocks = (d->Tq + rows - 1) / rows;
    int64_t n_items = d->B * d->H * n_blocks;
    int team = team_size(d);
    float *bias = build_bias(d, key_mask, scratch);
    float *thread_base = (float *)scratch + pad16((size_t)(d->B * d->Tk));
    size_t per_thread = pad16((size_t)(rows * d->Tk)) + pad16((size_t)rows);
    // Dynamic: under the causal mask early blocks see few keys and late ones many.
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (team > 1)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t blk = it % n_blocks, bh = it / n_blocks;
        int64_t i0 = blk * rows, nr = d->Tq - i0 < rows ? d->Tq - i0 : rows;
        float *S = thread_base + (size_t)omp_get_thread_num() * per_thread;
        float *inv = S + pad16((size_t)(rows * d->Tk));
        fwd_block(d, bh / d->H, bh % d->H, i0, nr, q, k, v, bias, out, lse, S, inv);
    }
}

// ---- backward ---------------------------------------------------------------------------------------------------

typedef struct bwd_args {
    const gvm_attention_dims *d;
    const float *q, *k, *v, *bias, *out, *lse, *dout;
    float *dq;
} bwd_args;

// Query rows [i0, i0 + rows) of head h of batch b. dk/dv point at this head's key row 0 with row strides
// ld_dk/ld_dv (the gradient itself, or a thread's private partial sum); NULL when not wanted.
static void bwd_block(const bwd_args *a, int64_t b, int64_t h, int64_t i0, int64_t rows, float *dk, int64_t ld_dk,
                      float *dv, int64_t ld_dv, float *S, float *dP, float *delta) {
    const gvm_attention_dims *d = a->d;
    int64_t H = d->H, D = d->D, Dv = d->Dv, Tq = d->Tq, Tk = d->Tk;
    int64_t ldq = H * D, ldv = H * Dv;
    int64_t n = visible_keys(d, i0 + rows - 1, Tk);
    if (n == 0) return;  // no row of the block sees a key: nothing flows
    const float *qb = a->q + ((b * Tq + i0) * H + h) * D;      // [rows, D]
    const float *kb = a->k + (b * Tk * H + h) * D;             // [n, D]
    const float *vb = a->v + (b * Tk * H + h) * Dv;            // [n, Dv]
    const float *ob = a->out + ((b * Tq + i0) * H + h) * Dv;   // [rows, Dv]
    const float *gb = a->dout + ((b * Tq + i0) * H + h) * Dv;  // [rows, Dv]
    const float *lb = a->lse + (b * H + h) * Tq + i0;          // [rows]
    const float *bb = a->bias ? a->bias + b * Tk : NULL;
    bool want_ds = a->dq || dk;
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (int64_t c = 0; c < Dv; c++) acc += (double)gb[r * ldv + c] * (double)ob[r * ldv + c];
        delta[r] = (float)acc;
    }
    gvm_cpu_sgemm(false, true, rows, n, D, d->scale, qb, ldq, kb, ldq, 0.0f, S, n);  // S = scale Q K^T
    if (want_ds) gvm_cpu_sgemm(false, true, rows, n, Dv, 1.0f, gb, ldv, vb, ldv, 0.0f, dP, n);  // dP = dO V^T
    for (int64_t r = 0; r < rows; r++)
        row_grad(S + r * n, want_ds ? dP + r * n : NULL, visible_keys(d, i0 + r, n), n, bb, lb[r], delta[r]);
    if (dv) gvm_cpu_sgemm(true, false, n, Dv, rows, 1.0f, S, n, gb, ldv, 1.0f, dv, ld_dv);  // dV += P^T dO
    if (a->dq) {  // dQ += scale dS K
        float *dqb = a->dq + ((b * Tq + i0) * H + h) * D;
        gvm_cpu_sgemm(false, false, rows, D, n, d->scale, dP, n, kb, ldq, 1.0f, dqb, ldq);
    }
    if (dk) gvm_cpu_sgemm(true, false, n, D, rows, d->scale, dP, n, qb, ldq, 1.0f, dk, ld_dk);  // dK += scale dS^T Q
}

void gvm_cpu_attention_bwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                           const uint8_t *key_mask, const float *out, const float *lse, const float *dout, float *dq,
                           float *dk, float *dv, void *scratch) {
    if (!dq && !dk && !dv) return;
    int64_t H = d->H, D = d->D, Dv = d->Dv, Tk = d->Tk;
    int64_t rows = block_rows(d);
    int64_t n_blocks = (d->Tq + rows - 1) / rows;
    int64_t n_pairs = d->B * H;
    int team = team_size(d);
    bwd_args a = {d, q, k, v, build_bias(d, key_mask, scratch), out, lse, dout, dq};
    float *thread_base = (float *)scratch + pad16((size_t)(d->B * Tk));
    size_t score_floats = pad16((size_t)(rows * Tk));
    size_t per_thread = 2 * score_floats + pad16((size_t)rows) + pad16((size_t)(Tk * (D + Dv)));

    // dK and dV of one (batch, head) sum over all its query blocks. With enough pairs to keep every thread
    // busy (and evenly), each thread owns whole pairs and adds straight into the gradients.
    if (team == 1 || n_pairs % team == 0 || n_pairs >= 4 * team) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (team > 1)
        for (int64_t p = 0; p < n_pairs; p++) {
            float *S = thread_base + (size_t)omp_get_thread_num() * per_thread;
            int64_t b = p / H, h = p % H;
            float *dkb = dk ? dk + (b * Tk * H + h) * D : NULL;
            float *dvb = dv ? dv + (b * Tk * H + h) * Dv : NULL;
            for (int64_t blk = 0; blk < n_blocks; blk++) {
                int64_t i0 = blk * rows, nr = d->Tq - i0 < rows ? d->Tq - i0 : rows;
                bwd_block(&a, b, h, i0, nr, dkb, H * D, dvb, H * Dv, S, S + score_floats, S + 2 * score_floats);
            }
        }
        return;
    }
    // Few pairs: the blocks of each pair are shared out, every thread summing dK, dV into a private
    // [Tk, D + Dv] buffer that is then added to the gradients.
    for (int64_t p = 0; p < n_pairs; p++) {
        int64_t b = p / H, h = p % H;
#pragma omp parallel num_threads(team)
        {
            int tid = omp_get_thread_num(), nth = omp_get_num_threads();
            float *S = thread_base + (size_t)tid * per_thread;
            float *part = S + 2 * score_floats + pad16((size_t)rows);  // dK [Tk, D] then dV [Tk, Dv]
            memset(part, 0, (size_t)(Tk * (D + Dv)) * sizeof(float));
#pragma omp for schedule(static, 1)  // round robin: balanced under causal, and the sums reproducible
            for (int64_t blk = 0; blk < n_blocks; blk++) {
                int64_t i0 = blk * rows, nr = d->Tq - i0 < rows ? d->Tq - i0 : rows;
                bwd_block(&a, b, h, i0, nr, dk ? part : NULL, D, dv ? part + Tk * D : NULL, Dv, S, S + score_floats,
                          S + 2 * score_floats);
            }
            // (implicit barrier) every partial is complete; now each thread adds a share of the key rows.
#pragma omp for schedule(static)
            for (int64_t j = 0; j < Tk; j++) {
                for (int t = 0; t < nth; t++) {
                    const float *pt = thread_base + (size_t)t * per_thread + 2 * score_floats + pad16((size_t)rows);
                    if (dk)
                        for (int64_t c = 0; c < D; c++) dk[((b * Tk + j) * H + h) * D + c] += pt[j * D + c];
                    if (dv)
                        for (int64_t c = 0; c < Dv; c++)
                            dv[((b * Tk + j) * H + h) * Dv + c] += pt[Tk * D + j * Dv + c];
                }
            }
        }
    }
}
