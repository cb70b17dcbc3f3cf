/* check_quip.c - the numerical core of QuIP#: the Hadamard plans and the
 * incoherence transforms (lib/qfmt/had.c, lib/quant/hadamard.c), the E8P
 * codebook (lib/qfmt/e8p.c) and BlockLDLQ (lib/quant/ldlq.c).
 *
 * Golden facts used: a Hadamard matrix has H H^T = K I in integers; an
 * orthogonal map preserves norms and its transpose inverts it; the Sylvester
 * matrix entry (i, j) is (-1)^popcount(i & j); tr(dW H dW^T) is invariant
 * under W -> U W V^T, H -> V H V^T; E8 = {x: all x_i in Z or all in Z + 1/2,
 * sum x_i even}; the paper's E8P has 227 + 29 = 256 sources and 2^16 points
 * of E8 + 1/4 with norm^2 <= 12 before the shift; the nearest codeword is
 * the minimum over all 65536 (brute force here, in double); with H = c I
 * BlockLDLQ's feedback is zero; with blocks of 1 and a scalar grid it is
 * GPTQ (QuIP theorem 6). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/qfmt/e8p.h"
#include "lib/qfmt/had.h"
#include "lib/quant/gptq.h"
#include "lib/quant/hadamard.h"
#include "lib/quant/ldlq.h"
#include "tests/testutil.h"

static const int sizes[] = {576,  896,  1536,  2048,  3584,  4096,  4864,
                            5632, 8192, 11008, 14336, 18944, 28672};

START_TEST(hadamard_matrices)
{
    static const int Ks[] = {12, 20, 28, 36, 52, 60, 108, 116, 124, 140, 156, 172,
                             44, 76, 148, 344, 2, 4, 8, 24};
    int8_t *H = malloc(1024 * 1024);
    for (size_t t = 0; t < sizeof Ks / sizeof *Ks; t++) {
        int K = Ks[t];
        int rc = ptq_had_matrix(K, H);
        ck_assert_msg(rc == 0, "K=%d not built", K);
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                int d = 0;
                for (int l = 0; l < K; l++) d += H[i * K + l] * H[j * K + l];
                ck_assert_msg(d == (i == j ? K : 0), "K=%d: H H^T[%d][%d] = %d", K, i, j, d);
            }
    }
    free(H);
}
END_TEST

/* Norms kept, the transpose inverts, fwd/inv with signs invert. */
static void check_orthogonal(int n, int count, uint64_t seed)
{
    ptq_err e = {0};
    ptq_had h;
    ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
    size_t len = (size_t)count * n;
    float *x = malloc(len * sizeof *x), *y = malloc(len * sizeof *y), *tmp = malloc(n * 4);
    int8_t *s = malloc(n);
    uint64_t r = seed;
    for (size_t i = 0; i < len; i++) x[i] = tu_rng_normal(&r);
    ptq_incoh_signs(seed, s, n);
    for (int pass = 0; pass < 2; pass++) {
        memcpy(y, x, len * sizeof *y);
        if (pass) ptq_had_fwd(&h, s, y, count, tmp);
        else ptq_had_apply(&h, y, count, tmp);
        double maxrel = 0, maxback = 0;
        for (int c = 0; c < count; c++) {
            double nx = 0, ny = 0;
            for (int j = 0; j < n; j++) {
                nx += (double)x[(size_t)c * n + j] * x[(size_t)c * n + j];
                ny += (double)y[(size_t)c * n + j] * y[(size_t)c * n + j];
            }
            maxrel = fmax(maxrel, fabs(sqrt(ny / nx) - 1));
        }
        if (pass) ptq_had_inv(&h, s, y, count, tmp);
        else ptq_had_apply_t(&h, y, count, tmp);
        for (size_t i = 0; i < len; i++) maxback = fmax(maxback, fabs(y[i] - x[i]));
        ck_assert_msg(maxrel < 2e-6 && maxback < 2e-5, "n=%d: norm %g, inverse %g", n, maxrel,
                      maxback);
        if (!pass)
            printf("hadamard n=%-6d kind %s K=%-4d P=%-5d norm err %.2g inverse err %.2g\n", n,
                   h.kind == PTQ_HAD_DCT ? "dct" : h.kind == PTQ_HAD_PURE ? "pure" : "had", h.K,
                   h.P, maxrel, maxback);
    }
    ptq_had_free(&h);
    free(x), free(y), free(tmp), free(s);
}

START_TEST(orthogonal_every_size)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t];
        check_orthogonal(n, n <= 4096 ? 8 : 1, 100 + t);
        ptq_err e = {0};
        ptq_had h;
        ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
        ck_assert_msg(h.kind != PTQ_HAD_DCT, "n=%d fell back to the DCT", n);
        ptq_had_free(&h);
    }
    /* small sizes (6, 3, 7: no K = m 2^j, j >= 2, divides them: the DCT) */
    static const int odd[] = {172, 116, 156, 6, 3, 1, 2, 7};
    for (size_t t = 0; t < sizeof odd / sizeof *odd; t++) check_orthogonal(odd[t], 4, 7 + t);
    ptq_err e = {0};
    ptq_had h;
    /* the Williamson K: 11008 = 172 x 64 (Llama-7B's intermediate size),
     * 7424 = 116 x 64, 9984 = 156 x 64 */
    static const int wk[][2] = {{11008, 172}, {7424, 116}, {9984, 156}, {172, 172}};
    for (size_t t = 0; t < sizeof wk / sizeof *wk; t++) {
        ck_assert_int_eq(ptq_had_plan(&h, wk[t][0], &e), 0);
        ck_assert_int_eq(h.kind, PTQ_HAD_HADAMARD);
        ck_assert_int_eq(h.K, wk[t][1]);
        ptq_had_free(&h);
    }
    check_orthogonal(7424, 1, 3);
    check_orthogonal(9984, 1, 4);
    ck_assert_int_eq(ptq_had_plan(&h, 6, &e), 0);
    ck_assert_int_eq(h.kind, PTQ_HAD_DCT);
    ptq_had_free(&h);
    ck_assert_int_eq(ptq_had_plan(&h, 2 * 1031, &e), PTQ_EUSAGE); /* 1031 prime, K = 4124 */
    ck_assert_int_eq(ptq_had_plan(&h, 0, &e), PTQ_EUSAGE);
}
END_TEST

/* Q Q^T = I and the fast transform equals the dense Kronecker product
 * (Sylvester part from its closed form), for every size <= 5632. */
START_TEST(fast_equals_dense)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t];
        if (n > 1536) continue;
        ptq_err e = {0};
        ptq_had h;
        ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
        float *Q = calloc((size_t)n * n, sizeof *Q), *tmp = malloc(n * 4);
        for (int i = 0; i < n; i++) Q[(size_t)i * n + i] = 1.0f;
        ptq_had_apply(&h, Q, n, tmp); /* row i = Q e_i = column i of Q */
        double maxd = 0, maxo = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int ki = i / h.P, pi = i % h.P, kj = j / h.P, pj = j % h.P;
                double dense = h.mk[ki * h.K + kj] * (__builtin_popcount(pi & pj) & 1 ? -1.0 : 1.0) *
                               h.scale;
                maxd = fmax(maxd, fabs(Q[(size_t)j * n + i] - dense));
            }
        for (int i = 0; i < n; i += 7)
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int l = 0; l < n; l++) d += (double)Q[(size_t)i * n + l] * Q[(size_t)j * n + l];
                maxo = fmax(maxo, fabs(d - (i == j)));
            }
        printf("dense n=%d: |fast - dense| %.2g, |Q Q^T - I| %.2g\n", n, maxd, maxo);
        ck_assert(maxd < 1e-6 && maxo < 1e-5);
        ptq_had_free(&h);
        free(Q), free(tmp);
    }
}
END_TEST

static double trace_loss(const float *D, const float *H, int m, int n)
{
    double s = 0;
    for (int r = 0; r < m; r++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                s += (double)D[(size_t)r * n + i] * H[(size_t)i * n + j] * D[(size_t)r * n + j];
    return s;
}

START_TEST(hessian_transform_matches)
{
    static const int shapes[][2] = {{24, 40}, {64, 48}, {12, 172}, {576, 896}};
    for (int t = 0; t < 4; t++) {
        int m = shapes[t][0], n = shapes[t][1], N = 2 * n;
        ptq_err e = {0};
        ptq_incoh c;
        ck_assert_int_eq(ptq_incoh_init(&c, m, n, 42 + t, &e), 0);
        uint64_t r = 9 + t;
        float *D = malloc((size_t)m * n * 4), *D0 = malloc((size_t)m * n * 4);
        float *H = calloc((size_t)n * n, 4), *X = malloc((size_t)N * n * 4);
        for (size_t i = 0; i < (size_t)m * n; i++) D[i] = D0[i] = tu_rng_normal(&r);
        for (size_t i = 0; i < (size_t)N * n; i++) X[i] = tu_rng_normal(&r) * (1 + (i % n) % 5);
        for (int a = 0; a < N; a++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) H[(size_t)i * n + j] += X[(size_t)a * n + i] * X[(size_t)a * n + j] / N;
        double before = trace_loss(D, H, m, n);
        /* W x before = U^T (W' (V x)) after */
        float *x = malloc(n * 4), *y = calloc(m, 4), *y2 = calloc(m, 4), *tmp = malloc((m > n ? m : n) * 4);
        memcpy(x, X, n * 4);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) y[i] += D[(size_t)i * n + j] * x[j];
        ck_assert_int_eq(ptq_incoh_weights(&c, D, &e), 0);
        ck_assert_int_eq(ptq_incoh_hessian(&c, H, &e), 0);
        double after = trace_loss(D, H, m, n);
        ptq_had_fwd(&c.hn, c.sn, x, 1, tmp);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) y2[i] += D[(size_t)i * n + j] * x[j];
        ptq_had_inv(&c.hm, c.sm, y2, 1, tmp);
        double dy = 0, ny = 0, back = 0;
        for (int i = 0; i < m; i++) dy = fmax(dy, fabs(y2[i] - y[i])), ny = fmax(ny, fabs(y[i]));
        ck_assert_int_eq(ptq_incoh_weights_inv(&c, D, &e), 0);
        for (size_t i = 0; i < (size_t)m * n; i++) back = fmax(back, fabs(D[i] - D0[i]));
        printf("incoherence %dx%d: tr before %.8g after %.8g; Wx rel %.2g; W back %.2g\n", m, n,
               before, after, dy / ny, back);
        ck_assert(fabs(after - before) <= 1e-5 * before);
        ck_assert(dy <= 1e-5 * ny && back < 1e-5);
        ptq_incoh_free(&c);
        free(D), free(D0), free(H), free(X), free(x), free(y), free(y2), free(tmp);
    }
}
END_TEST

/* ---- E8P ---- */

static int cmp8(const void *a, const void *b) { return memcmp(a, b, 8 * sizeof(int32_t)); }

START_TEST(e8p_codebook)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    ck_assert_int_eq(sizeof b.tab / sizeof *b.tab, 256);
    /* the paper's 227: positive half-integer vectors with norm^2 <= 10 */
    int small = 0, big = 0;
    for (int k = 0; k < 256; k++) {
        double n2 = 0;
        for (int i = 0; i < 8; i++) n2 += b.abs[i][k] * b.abs[i][k];
        small += n2 <= 10, big += n2 == 12;
    }
    ck_assert_int_eq(small, 227);
    ck_assert_int_eq(big, 29);
    int32_t (*pts)[8] = malloc(65536 * sizeof *pts);
    for (int c = 0; c < 65536; c++) {
        float x[8];
        ptq_e8p_decode(b.tab, (uint16_t)c, x);
        int p = __builtin_popcount(c & 255) & 1;
        double shift = p ? -0.25 : 0.25, n2 = 0;
        long twice_sum = 0;
        int nint = 0;
        for (int i = 0; i < 8; i++) {
            double y = x[i] - 0.25; /* E8 + 1/4 membership */
            double y2 = 2 * y;
            ck_assert_msg(y2 == floor(y2), "code %d: %g not in Z/2", c, y);
            nint += y == floor(y);
            twice_sum += (long)y2;
            n2 += (x[i] - shift) * (x[i] - shift);
            pts[c][i] = (int32_t)(4 * x[i]);
        }
        ck_assert_msg(nint == 0 || nint == 8, "code %d: mixed integer/half-integer", c);
        ck_assert_msg(twice_sum % 4 == 0, "code %d: odd coordinate sum", c);
        ck_assert_msg(n2 <= 12 + 1e-9, "code %d: norm^2 %g before the shift", c, n2);
    }
    qsort(pts, 65536, sizeof *pts, cmp8);
    for (int c = 1; c < 65536; c++) ck_assert_msg(memcmp(pts[c - 1], pts[c], 32), "duplicate point");
    free(pts);
    /* encode(decode(c)) = c */
    for (int c = 0; c < 65536; c++) {
        float x[8];
        ptq_e8p_decode(b.tab, (uint16_t)c, x);
        ck_assert_int_eq(ptq_e8p_nearest(&b, x, NULL), c);
    }
}
END_TEST

static float grid[65536][8];

static void brute(const float *x, double *best, double *second, int *code)
{
    *best = *second = 1e300, *code = -1;
    for (int c = 0; c < 65536; c++) {
        double d = 0;
        for (int i = 0; i < 8; i++) d += ((double)x[i] - grid[c][i]) * ((double)x[i] - grid[c][i]);
        if (d < *best) *second = *best, *best = d, *code = c;
        else if (d < *second) *second = d;
    }
}

START_TEST(e8p_nearest_is_brute_force)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    for (int c = 0; c < 65536; c++) ptq_e8p_decode(b.tab, (uint16_t)c, grid[c]);
    uint64_t r = 5;
    int n = 0, ties = 0;
    for (int t = 0; t < 1200; t++) {
        float x[8], q[8];
        int kind = t % 6;
        for (int i = 0; i < 8; i++) {
            float g = tu_rng_normal(&r);
            if (kind == 0) x[i] = g;                          /* typical */
            else if (kind == 1) x[i] = 4 * g;                 /* far outside */
            else if (kind == 2) x[i] = 0.25f * (float)(int)(8 * g); /* on the quarter grid */
            else if (kind == 3) x[i] = 0.0f;
            else x[i] = 0.01f * g;
        }
        if (kind >= 4) { /* midpoint of two codewords, and near a codeword */
            int c1 = (int)(tu_rng_next(&r) & 65535), c2 = (int)(tu_rng_next(&r) & 65535);
            for (int i = 0; i < 8; i++)
                x[i] = kind == 4 ? 0.5f * (grid[c1][i] + grid[c2][i]) : grid[c1][i] + x[i];
        }
        double best, second, d = 0;
        int code;
        brute(x, &best, &second, &code);
        uint16_t f = ptq_e8p_nearest(&b, x, q);
        for (int i = 0; i < 8; i++) d += ((double)x[i] - q[i]) * ((double)x[i] - q[i]);
        ck_assert_msg(fabs(d - best) <= 1e-9 * (1 + best), "point %d: fast %g brute %g", t, d, best);
        if (second > best + 1e-9) ck_assert_int_eq(f, code);
        else ties++;
        n++;
    }
    printf("e8p nearest: %d points equal brute force (%d exact ties, distance equal)\n", n, ties);
}
END_TEST

/* ---- the 1-bit E8 codebook of 3 bits (E81B) ---- */

/* Its 256 points from the definition (quip-sharp E8P12RVQ3B, e8p.h),
 * independently: every x in (Z^8 u (Z + 1/2)^8) with coordinates in [-4, 4),
 * even sum and norm^2 <= 2 in ascending lexicographic order (integers
 * first), then 2 e_0..2 e_7, -2 e_0..-2 e_6.  Twice-values into t. */
static int e81b_definition(int t[256][8])
{
    int k = 0;
    for (int half = 0; half < 2; half++)
        for (long c = 0; c < (1l << 24); c++) { /* 8 digits of 3 bits: -4..3 */
            int v[8], n2 = 0, sum = 0;
            for (int i = 0; i < 8; i++) {
                v[i] = 2 * ((int)((c >> (3 * (7 - i))) & 7) - 4) + half;
                n2 += v[i] * v[i], sum += v[i];
            }
            if (n2 <= 8 && sum % 4 == 0) {
                if (k < 256) memcpy(t[k], v, sizeof v);
                k++;
            }
        }
    for (int i = 0; i < 15; i++, k++) {
        memset(t[k], 0, sizeof t[k]);
        t[k][i % 8] = i < 8 ? 4 : -4;
    }
    return k;
}

START_TEST(e81b_codebook)
{
    static ptq_e8p_book b;
    static int t[256][8];
    ptq_e8p_init(&b);
    ck_assert_int_eq(e81b_definition(t), 256);
    ck_assert(!memcmp(b.tab1, ptq_e81b_tab, sizeof b.tab1));
    int roots = 0;
    for (int c = 0; c < 256; c++) {
        float x[8];
        ptq_e81b_decode(ptq_e81b_tab, (uint8_t)c, x);
        double n2 = 0;
        long twice_sum = 0;
        int nint = 0;
        for (int i = 0; i < 8; i++) {
            ck_assert_msg(2 * x[i] == t[c][i], "code %d coordinate %d: %g, not %d / 2", c, i,
                          (double)x[i], t[c][i]);
            nint += x[i] == floorf(x[i]);
            twice_sum += (long)(2 * x[i]);
            n2 += (double)x[i] * x[i];
        }
        ck_assert_msg(nint == 0 || nint == 8, "code %d: mixed integer/half-integer", c);
        ck_assert_msg(twice_sum % 4 == 0, "code %d: odd coordinate sum (not in E8)", c);
        ck_assert_msg(n2 <= 4, "code %d: norm^2 %g", c, n2);
        roots += n2 == 2;
        for (int d = 0; d < c; d++) ck_assert_msg(memcmp(t[c], t[d], sizeof t[c]), "duplicate");
        /* encode(decode(c)) = c */
        float q[8];
        ck_assert_int_eq(ptq_e81b_nearest(&b, x, q), c);
        ck_assert(!memcmp(q, x, sizeof q));
    }
    ck_assert_int_eq(roots, 240); /* E8's 240 roots, the origin and 15 of norm^2 4 */
}
END_TEST

START_TEST(e81b_nearest_is_brute_force)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    static int t[256][8];
    e81b_definition(t);
    uint64_t r = 11;
    int ties = 0;
    for (int n = 0; n < 20000; n++) {
        float x[8], q[8];
        int kind = n % 4, c1 = (int)(tu_rng_next(&r) & 255), c2 = (int)(tu_rng_next(&r) & 255);
        for (int i = 0; i < 8; i++) {
            float g = tu_rng_normal(&r);
            x[i] = kind == 0 ? g : kind == 1 ? 3 * g
                 : kind == 2 ? 0.25f * (t[c1][i] + t[c2][i]) /* midpoints */
                             : 0.5f * t[c1][i] + 0.05f * g;
        }
        double best = 1e300, second = 1e300;
        int code = -1;
        for (int c = 0; c < 256; c++) {
            double d = 0;
            for (int i = 0; i < 8; i++)
                d += ((double)x[i] - 0.5 * t[c][i]) * ((double)x[i] - 0.5 * t[c][i]);
            if (d < best) second = best, best = d, code = c;
            else if (d < second) second = d;
        }
        int f = ptq_e81b_nearest(&b, x, q);
        double d = 0;
        for (int i = 0; i < 8; i++) d += ((double)x[i] - q[i]) * ((double)x[i] - q[i]);
        ck_assert_msg(fabs(d - best) <= 1e-9 * (1 + best), "point %d: %g brute %g", n, d, best);
        if (second > best + 1e-9) ck_assert_int_eq(f, code);
        else ties++;
    }
    printf("e81b nearest: 20000 points equal brute force (%d exact ties)\n", ties);
}
END_TEST

/* ---- BlockLDLQ ---- */

static void rand_hessian(float *H, int n, uint64_t seed, int N)
{
    uint64_t r = seed;
    float *X = malloc((size_t)N * n * 4);
    for (int a = 0; a < N; a++) {
        float common = tu_rng_normal(&r);
        for (int i = 0; i < n; i++)
            X[(size_t)a * n + i] = (tu_rng_normal(&r) + 0.8f * common) * (1.0f + (i % 7) * 0.3f);
    }
    memset(H, 0, (size_t)n * n * 4);
    for (int a = 0; a < N; a++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                H[(size_t)i * n + j] += 2.0f * X[(size_t)a * n + i] * X[(size_t)a * n + j] / N;
    free(X);
}

START_TEST(ldlq_identity_is_nearest)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    int rows = 16, cols = 64;
    float *W = malloc(rows * cols * 4), *H = calloc(cols * cols, 4), *Wq = malloc(rows * cols * 4);
    uint64_t r = 3;
    for (int i = 0; i < rows * cols; i++) W[i] = tu_rng_normal(&r) * 0.7f;
    for (int i = 0; i < cols; i++) H[i * cols + i] = 3.0f;
    ptq_err e = {0};
    ptq_ldlq_e8p s;
    ck_assert_int_eq(ptq_ldlq_e8p_init(&s, &b, 0.6f, rows, cols, &e), 0);
    ptq_ldlq_rounder rd = ptq_ldlq_e8p_rounder(&s);
    ptq_ldlq_opts o = {8, 0.01f, 1, 0};
    ptq_ldlq_report rep;
    ck_assert_int_eq(ptq_ldlq(W, H, rows, cols, &o, &rd, Wq, &rep, &e), 0);
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols / 8; k++) {
            float x[8], q[8];
            for (int j = 0; j < 8; j++) x[j] = W[i * cols + 8 * k + j] / 0.6f;
            uint16_t c = ptq_e8p_nearest(&b, x, q);
            ck_assert_int_eq(s.codes[i * (cols / 8) + k], c);
            for (int j = 0; j < 8; j++) ck_assert(Wq[i * cols + 8 * k + j] == q[j] * 0.6f);
        }
    /* and the scalar grid with blocks of 8 on H = I is RTN */
    ptq_quant_opts qo = {3, 0, 0};
    ptq_ldlq_scalar sc;
    ck_assert_int_eq(ptq_ldlq_scalar_init(&sc, W, rows, cols, &qo, &e), 0);
    rd = ptq_ldlq_scalar_rounder(&sc);
    ck_assert_int_eq(ptq_ldlq(W, H, rows, cols, &o, &rd, Wq, &rep, &e), 0);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            const ptq_qgrid *g = &sc.grid[i];
            ck_assert(Wq[i * cols + j] == ptq_quant_value(g, ptq_quant_code(g, W[i * cols + j])));
        }
    ptq_ldlq_scalar_free(&sc);
    ptq_ldlq_e8p_free(&s);
    free(W), free(H), free(Wq);
}
END_TEST

START_TEST(ldlq_block1_is_gptq)
{
    int rows = 48, cols = 96;
    float *W = malloc(rows * cols * 4), *H = malloc(cols * cols * 4), *Hc = malloc(cols * cols * 4);
    float *Wq = malloc(rows * cols * 4), *Wg = malloc(rows * cols * 4);
    uint64_t r = 11;
    for (int i = 0; i < rows * cols; i++) W[i] = tu_rng_normal(&r);
    rand_hessian(H, cols, 12, 3 * cols);
    ptq_err e = {0};
    ptq_gptq_opts go;
    memset(&go, 0, sizeof go);
    go.q.bits = 3, go.q.sym = 0, go.group = 0, go.act_order = 0, go.damp = 0.01f, go.block = 128, go.threads = 1;
    ptq_qtensor qt;
    memset(&qt, 0, sizeof qt);
    ptq_gptq_report grep_;
    memcpy(Hc, H, cols * cols * 4);
    ck_assert_int_eq(ptq_gptq(W, Hc, rows, cols, &go, &qt, &grep_, &e), 0);
    ck_assert_int_eq(ptq_qtensor_dequant(&qt, Wg, &e), 0);
    ptq_ldlq_scalar sc;
    ck_assert_int_eq(ptq_ldlq_scalar_init(&sc, W, rows, cols, &go.q, &e), 0);
    ptq_ldlq_rounder rd = ptq_ldlq_scalar_rounder(&sc);
    ptq_ldlq_opts o = {1, 0.01f, 1, 0};
    ptq_ldlq_report rep;
    for (int ref = 0; ref < 2; ref++) {
        ck_assert_int_eq((ref ? ptq_ldlq_reference : ptq_ldlq)(W, H, rows, cols, &o, &rd, Wq, &rep, &e), 0);
        int diff = 0;
        for (int i = 0; i < rows * cols; i++) diff += Wq[i] != Wg[i];
        printf("ldlq block 1 (%s) vs gptq: %d of %d weights differ\n", ref ? "reference" : "fast",
               diff, rows * cols);
        ck_assert_int_le(diff, rows * cols / 1000);
    }
    ptq_qtensor_free(&qt);
    ptq_ldlq_scalar_free(&sc);
    free(W), free(H), free(Hc), free(Wq), free(Wg);
}
END_TEST

START_TEST(ldlq_fast_matches_reference_and_helps)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    int rows = 32, cols = 128;
    float *W = malloc(rows * cols * 4), *H = malloc(cols * cols * 4);
    float *Wa = malloc(rows * cols * 4), *Wb = malloc(rows * cols * 4), *D = malloc(rows * cols * 4);
    uint64_t r = 21;
    for (int i = 0; i < rows * cols; i++) W[i] = tu_rng_normal(&r);
    rand_hessian(H, cols, 22, 2 * cols);
    ptq_err e = {0};
    ptq_ldlq_e8p s;
    ck_assert_int_eq(ptq_ldlq_e8p_init(&s, &b, 1.0f, rows, cols, &e), 0);
    ptq_ldlq_rounder rd = ptq_ldlq_e8p_rounder(&s);
    ptq_ldlq_opts o = {8, 0.01f, 1, 0};
    ptq_ldlq_report ra, rb;
    ck_assert_int_eq(ptq_ldlq(W, H, rows, cols, &o, &rd, Wa, &ra, &e), 0);
    ck_assert_int_eq(ptq_ldlq_reference(W, H, rows, cols, &o, &rd, Wb, &rb, &e), 0);
    int diff = 0;
    for (int i = 0; i < rows * cols; i++) diff += Wa[i] != Wb[i];
    /* plain nearest rounding's loss */
    for (int i = 0; i < rows * cols; i += 8) {
        float q[8];
        ptq_e8p_nearest(&b, W + i, q);
        for (int j = 0; j < 8; j++) D[i + j] = W[i + j] - q[j];
    }
    double near = trace_loss(D, H, rows, cols);
    printf("blockldlq e8p: fast loss %.6g, reference %.6g (%d weights differ); nearest %.6g\n",
           ra.loss, rb.loss, diff, near);
    ck_assert(fabs(ra.loss - rb.loss) <= 1e-3 * rb.loss);
    ck_assert_int_le(diff, rows * cols / 100);
    ck_assert(ra.loss < 0.9 * near);
    /* any worker count: the same bits */
    uint16_t *c1 = malloc(rows * cols / 8 * 2);
    ck_assert_int_eq(ptq_ldlq(W, H, rows, cols, &o, &rd, Wa, &ra, &e), 0);
    memcpy(c1, s.codes, rows * cols / 8 * 2);
    o.threads = 3;
    ck_assert_int_eq(ptq_ldlq(W, H, rows, cols, &o, &rd, Wb, &rb, &e), 0);
    ck_assert(!memcmp(Wa, Wb, rows * cols * 4) && !memcmp(c1, s.codes, rows * cols / 8 * 2));
    free(c1);
    ptq_ldlq_e8p_free(&s);
    free(W), free(H), free(Wa), free(Wb), free(D);
}
END_TEST

START_TEST(ldlq_bad_input)
{
    float W[4 * 6], H[36], Wq[24];
    for (int i = 0; i < 24; i++) W[i] = (float)i / 10;
    memset(H, 0, sizeof H);
    for (int i = 0; i < 6; i++) H[i * 6 + i] = 1;
    ptq_quant_opts qo = {4, 0, 0};
    ptq_err e = {0};
    ptq_ldlq_scalar sc;
    ck_assert_int_eq(ptq_ldlq_scalar_init(&sc, W, 4, 6, &qo, &e), 0);
    ptq_ldlq_rounder rd = ptq_ldlq_scalar_rounder(&sc);
    ptq_ldlq_report rep;
    ptq_ldlq_opts o8 = {8, 0.01f, 1, 0}, o1 = {1, 0.0f, 1, 0};
    ck_assert_int_eq(ptq_ldlq(W, H, 4, 6, &o8, &rd, Wq, &rep, &e), PTQ_EUSAGE);
    printf("bad block: %s\n", e.msg);
    /* indefinite with a positive diagonal: fails in float32 and float64 */
    H[1] = H[6] = 2.0f;
    ck_assert_int_eq(ptq_ldlq(W, H, 4, 6, &o1, &rd, Wq, &rep, &e), PTQ_EDATA);
    printf("indefinite: %s\n", e.msg);
    ck_assert_int_eq(rep.f64, 1);
    H[1] = H[6] = 0.0f;
    W[5] = NAN;
    ck_assert_int_eq(ptq_ldlq(W, H, 4, 6, &o1, &rd, Wq, &rep, &e), PTQ_EDATA);
    printf("nan: %s\n", e.msg);
    W[5] = 0.5f;
    H[2 * 6 + 2] = 0.0f; /* a dead column */
    ck_assert_int_eq(ptq_ldlq(W, H, 4, 6, &o1, &rd, Wq, &rep, &e), 0);
    ck_assert_int_eq(rep.dead_columns, 1);
    /* singular in float32 after damping, not in float64: the fallback */
    float W8[4 * 8], H8[64], Wq8[32];
    for (int i = 0; i < 32; i++) W8[i] = (float)(i % 5) / 4;
    for (int i = 0; i < 64; i++) H8[i] = 1.0f;
    ptq_ldlq_scalar s8;
    ck_assert_int_eq(ptq_ldlq_scalar_init(&s8, W8, 4, 8, &qo, &e), 0);
    rd = ptq_ldlq_scalar_rounder(&s8);
    ptq_ldlq_opts tiny = {8, 1e-9f, 1, 0};
    ck_assert_int_eq(ptq_ldlq(W8, H8, 4, 8, &tiny, &rd, Wq8, &rep, &e), 0);
    ck_assert_int_eq(rep.f64, 1);
    ptq_ldlq_scalar_free(&s8);
    ptq_ldlq_scalar_free(&sc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quip");
    TCase *t = tcase_create("quip");
    tcase_set_timeout(t, 600);
    tcase_add_test(t, hadamard_matrices);
    tcase_add_test(t, orthogonal_every_size);
    tcase_add_test(t, fast_equals_dense);
    tcase_add_test(t, hessian_transform_matches);
    tcase_add_test(t, e8p_codebook);
    tcase_add_test(t, e8p_nearest_is_brute_force);
    tcase_add_test(t, e81b_codebook);
    tcase_add_test(t, e81b_nearest_is_brute_force);
    tcase_add_test(t, ldlq_identity_is_nearest);
    tcase_add_test(t, ldlq_block1_is_gptq);
    tcase_add_test(t, ldlq_fast_matches_reference_and_helps);
    tcase_add_test(t, ldlq_bad_input);
    suite_add_tcase(s, t);
    return tu_run(s);
}
