/* check_cpu_kernels.c - the CPU fast paths against their references:
 * every loop of the packed GEMV (lib/qfmt/gemv_int.h: portable, AVX2+FMA,
 * AVX-512, whichever this CPU runs) within the header's bound of the
 * reference and bit-identical for any thread count; and the Hessian's
 * chunks on the workers (lib/quant/hessian.h, ptq_hessian_add_chunks)
 * bit-identical to ptq_hessian_add of each chunk in turn for any thread
 * count, and to float64 X^T X within float32 rounding; the clipping
 * search's objective (lib/quant/quant.h, ptq_quant_grid_err): its AVX2 loop
 * bit-identical to the portable one, both within 3e-6 of libm's powf. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/base/half_rows.h"
#include "lib/qfmt/gemv_int.h"
#include "lib/qfmt/pack.h"
#include "lib/quant/hessian.h"
#include "lib/quant/quant.h"
#include "tests/testutil.h"

/* A random PTQ_QF_INT tensor, codes and zeros uniform (asymmetric) or zeros
 * 2^(b-1), scales +-[0.01, 0.1) in fp16. */
static void rand_int(ptq_qtensor *q, int rows, int cols, int bits, int G, int sym, uint64_t *rs)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_INT;
    q->rows = rows, q->cols = cols, q->bits = bits, q->group = G, q->sym = sym;
    q->ngroups = ptq_pack_ngroups(cols, G);
    size_t rw = (size_t)ptq_pack_row_words(cols, bits), ng = (size_t)q->ngroups;
    q->qweight = calloc((size_t)rows * rw, sizeof(uint32_t));
    q->scales = malloc(sizeof(uint16_t) * rows * ng);
    q->zeros = malloc((size_t)rows * ng);
    ck_assert(q->qweight && q->scales && q->zeros);
    uint32_t top = 1u << bits;
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < cols; k++)
            ptq_pack_set(q->qweight + r * rw, k, bits, (uint32_t)(tu_rng_next(rs) % top));
        for (size_t g = 0; g < ng; g++) {
            float s = (float)(0.01 + 0.09 * tu_rng_unif(rs));
            q->scales[r * ng + g] = ptq_f32_to_f16(tu_rng_next(rs) & 1 ? s : -s);
            q->zeros[r * ng + g] = (uint8_t)(sym ? top / 2 : tu_rng_next(rs) % top);
        }
    }
}

/* gemv_int.h's bound: 2 (n + 2) u sum_k |s| (|q| + |z|) |x|, u = 2^-24. */
static double bound(const ptq_qtensor *q, int r, const float *x)
{
    size_t rw = (size_t)ptq_pack_row_words(q->cols, q->bits);
    double m = 0;
    for (int k = 0; k < q->cols; k++) {
        int g = q->group ? k / q->group : 0;
        double s = fabs(ptq_f16_to_f32(q->scales[(size_t)r * q->ngroups + g]));
        m += s * (ptq_pack_get(q->qweight + r * rw, k, q->bits) +
                  (double)q->zeros[(size_t)r * q->ngroups + g]) * fabs(x[k]);
    }
    return 2.0 * (q->cols + 2) * ldexp(1.0, -24) * m;
}

START_TEST(gemv_paths_within_bound)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {0, 32, 64, 128, 96};
    /* 401 x 1000: above gemv_int.c's work per worker, so 3 threads split it */
    static const int shapes[][2] = {{37, 300}, {64, 576}, {5, 32}, {3, 1000}, {401, 1000}};
    static const int paths[] = {PTQ_GEMV_PORTABLE, PTQ_GEMV_AVX2, PTQ_GEMV_AVX512};
    uint64_t rs = 77;
    ptq_err e;
    for (int si = 0; si < 5; si++) {
        int rows = shapes[si][0], cols = shapes[si][1];
        float *x = malloc(sizeof(float) * cols), *ref = malloc(sizeof(float) * rows),
              *y1 = malloc(sizeof(float) * rows), *y3 = malloc(sizeof(float) * rows);
        ck_assert(x && ref && y1 && y3);
        for (int bi = 0; bi < 4; bi++)
            for (int gi = 0; gi < 5; gi++)
                for (int sym = 0; sym < 2; sym++) {
                    ptq_qtensor q;
                    rand_int(&q, rows, cols, bits[bi], groups[gi], sym, &rs);
                    for (int k = 0; k < cols; k++) x[k] = tu_rng_normal(&rs);
                    ck_assert_msg(ptq_gemv_int_ref(&q, x, ref, &e) == 0, "%s", e.msg);
                    for (int pi = 0; pi < 3; pi++) {
                        ck_assert(ptq_gemv_int_path(&q, x, y1, 1, paths[pi], &e) == 0);
                        ck_assert(ptq_gemv_int_path(&q, x, y3, 3, paths[pi], &e) == 0);
                        ck_assert_mem_eq(y1, y3, sizeof(float) * rows);
                        for (int r = 0; r < rows; r++) {
                            double d = fabs((double)y1[r] - ref[r]), b = bound(&q, r, x);
                            ck_assert_msg(d <= b, "%dx%d b%d g%d sym%d path %d row %d: "
                                          "|fast - ref| = %g > %g", rows, cols, bits[bi],
                                          groups[gi], sym, paths[pi], r, d, b);
                        }
                    }
                    ptq_gemv_int(&q, x, y3, 2, &e); /* the default is one of them */
                    int same = 0;
                    for (int pi = 0; pi < 3 && !same; pi++) {
                        ptq_gemv_int_path(&q, x, y1, 1, paths[pi], &e);
                        same = !memcmp(y1, y3, sizeof(float) * rows);
                    }
                    ck_assert(same);
                    ptq_qtensor_free(&q);
                }
        free(x); free(ref); free(y1); free(y3);
    }
}
END_TEST

/* Chunks of n[i] rows (one longer than a 2048-row piece) through
 * ptq_hessian_add one by one and through ptq_hessian_add_chunks on 1..5
 * workers: the same bits; and H against float64 2/N X^T X. */
START_TEST(hessian_chunks_on_workers)
{
    const int cols = 40, n[] = {700, 2500, 33, 512, 1};
    const int nc = 5;
    int N = 0;
    for (int i = 0; i < nc; i++) N += n[i];
    uint64_t rs = 9;
    float *X = malloc(sizeof(float) * (size_t)N * cols);
    float *H1 = malloc(sizeof(float) * cols * cols), *H2 = malloc(sizeof(float) * cols * cols);
    ck_assert(X && H1 && H2);
    for (size_t i = 0; i < (size_t)N * cols; i++) X[i] = tu_rng_normal(&rs) * (1 + (i % cols) % 3);
    const float *xs[5];
    for (int i = 0, o = 0; i < nc; o += n[i], i++) xs[i] = X + (size_t)o * cols;
    ptq_err e;
    ptq_hessian h;
    ck_assert_int_eq(ptq_hessian_init(&h, cols, &e), PTQ_OK);
    for (int i = 0; i < nc; i++) ck_assert_int_eq(ptq_hessian_add(&h, xs[i], n[i], &e), PTQ_OK);
    ck_assert_int_eq(ptq_hessian_finalize(&h, H1, &e), PTQ_OK);
    float am1[40];
    double mean1[40];
    memcpy(am1, h.absmax, sizeof am1);
    memcpy(mean1, h.absmean, sizeof mean1);
    ptq_hessian_free(&h);
    for (int t = 1; t <= 5; t++) {
        ck_assert_int_eq(ptq_hessian_init(&h, cols, &e), PTQ_OK);
        ck_assert_int_eq(ptq_hessian_add_chunks(&h, xs, n, 2, t, &e), PTQ_OK); /* two calls */
        ck_assert_int_eq(ptq_hessian_add_chunks(&h, xs + 2, n + 2, nc - 2, t, &e), PTQ_OK);
        ck_assert_int_eq(h.ntokens, N);
        ck_assert_int_eq(ptq_hessian_finalize(&h, H2, &e), PTQ_OK);
        ck_assert_mem_eq(H1, H2, sizeof(float) * cols * cols);
        ck_assert_mem_eq(h.absmax, am1, sizeof am1); /* every column, by column ranges */
        ck_assert_mem_eq(h.absmean, mean1, sizeof mean1);
        ptq_hessian_free(&h);
    }
    for (int i = 0; i < cols; i++) /* float32 pieces of <= 2048 rows, float64 sums */
        for (int j = 0; j < cols; j++) {
            double s = 0, m = 0;
            for (int t = 0; t < N; t++) {
                double p = (double)X[(size_t)t * cols + i] * X[(size_t)t * cols + j];
                s += p, m += fabs(p);
            }
            double d = fabs(H1[i * cols + j] - 2.0 * s / N), b = 2.0 * m / N * 2049 * ldexp(1.0, -24);
            ck_assert_msg(d <= b + fabs(2.0 * s / N) * ldexp(1.0, -24), "H[%d][%d] off by %g > %g",
                          i, j, d, b);
        }
    /* a NaN names its token, counted across chunks */
    X[(size_t)(700 + 5) * cols + 2] = NAN;
    ck_assert_int_eq(ptq_hessian_init(&h, cols, &e), PTQ_OK);
    ck_assert_int_eq(ptq_hessian_add_chunks(&h, xs, n, nc, 2, &e), PTQ_EDATA);
    ck_assert_msg(strstr(e.msg, "[705][2]") != NULL, "%s", e.msg);
    ptq_hessian_free(&h);
    /* the first in token order, also when another worker's columns hold it */
    X[(size_t)(700 + 3) * cols + 30] = INFINITY;
    for (int t = 1; t <= 3; t++) {
        ck_assert_int_eq(ptq_hessian_init(&h, cols, &e), PTQ_OK);
        ck_assert_int_eq(ptq_hessian_add_chunks(&h, xs, n, nc, t, &e), PTQ_EDATA);
        ck_assert_msg(strstr(e.msg, "[703][30] is inf") != NULL, "%s", e.msg);
        ptq_hessian_free(&h);
    }
    free(X); free(H1); free(H2);
}
END_TEST

START_TEST(mse_objective_paths)
{
    /* |d|^2.4 against pow over the 25 decades where it is a normal float
     * (d >= 2^(-126 / 2.4) ~ 1.6e-16; below that powf underflows too) */
    ck_assert(ptq_pow24(0.0f) == 0.0f);
    ck_assert(ptq_pow24(1.0f) == 1.0f);
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float d = powf(10.0f, -15.0f + 25.0f * (float)i / 200000.0f);
        double a = ptq_pow24(d), b = pow((double)d, 2.4);
        double r = fabs(a - b) / b;
        if (r > worst) worst = r;
    }
    printf("pow24: max relative error %.3g against pow\n", worst);
    ck_assert_msg(worst < 3e-6, "pow24 relative error %g", worst);
    ck_assert(ptq_pow24(1e-17f) <= 1e-37f && ptq_pow24(1e-17f) >= 0.0f);
    /* the group objective: both paths the same bits, near powf's sum */
    uint64_t rs = 7;
    float w[300];
    static const int lens[] = {1, 7, 8, 9, 64, 128, 131, 300};
    for (int t = 0; t < 400; t++) {
        int n = lens[t % 8], bits = 2 + t % 7, sym = t & 1;
        float amp = powf(10.0f, -3.0f + (float)(t % 5));
        for (int i = 0; i < n; i++) w[i] = amp * (float)(2.0 * tu_rng_unif(&rs) - 1.0);
        if (t % 11 == 0) w[0] = 0.0f;
        ptq_quant_opts o = {bits, sym, 0};
        ptq_qgrid g;
        ptq_quant_grid(w, n, 1, &o, &g);
        if (t % 3 == 0) { /* a clipped grid: weights beyond the range */
            g.scale *= 0.5f;
        }
        double a = ptq_quant_grid_err(w, n, 1, &g, 1), b = ptq_quant_grid_err(w, n, 1, &g, 0);
        ck_assert_msg(a == b, "case %d: simd %.17g, reference %.17g", t, a, b);
        double p = 0;
        for (int i = 0; i < n; i++) {
            float d = fabsf(ptq_quant_value(&g, ptq_quant_code(&g, w[i])) - w[i]);
            if (d > 0) p += pow((double)d, 2.4);
        }
        ck_assert_msg(fabs(a - p) <= 3e-6 * p + 1e-300, "case %d: %.9g vs pow %.9g", t, a, p);
        /* several grids against a limit: each sum below the limit is the
         * full sum, each other one is >= the limit, both paths the same bits */
        ptq_qgrid gs[7];
        double full[7], es[7], er[7];
        int nc = 1 + t % 7;
        for (int c = 0; c < nc; c++) {
            gs[c] = g;
            gs[c].scale = g.scale * (1.0f - 0.1f * (float)c);
            full[c] = ptq_quant_grid_err(w, n, 1, &gs[c], 0);
        }
        double limit = t % 4 == 0 ? INFINITY : full[t % nc] * (0.25 + 0.25 * (t % 4));
        ptq_quant_grid_errs(w, n, 1, gs, nc, limit, es, 1);
        ptq_quant_grid_errs(w, n, 1, gs, nc, limit, er, 0);
        for (int c = 0; c < nc; c++) {
            ck_assert_msg(es[c] == er[c], "case %d grid %d: simd %.17g, reference %.17g", t, c,
                          es[c], er[c]);
            if (full[c] < limit) ck_assert(es[c] == full[c]);
            else ck_assert(es[c] >= limit);
        }
    }
    /* pow24's 2^(12 k) split takes k = floor(e * 0.2f) for floor(e / 5) */
    for (int e = -127; e <= 128; e++)
        ck_assert_int_eq((int)floorf((float)e * 0.2f), (int)floor(e / 5.0));
}
END_TEST

/* half_rows.h: the F16C twin converts as half.h does, every binary16 and
 * one float bit pattern in 61 (all exponents, signs, NaN payloads, the
 * subnormal and overflow edges), at lengths with and without a tail */
START_TEST(half_rows_twin)
{
    enum { N = 4099 };
    static uint16_t h[N], ha[N], hb[N];
    static float x[N], xa[N], xb[N];
    for (uint32_t v = 0; v < 65536; v += N) {
        int n = 0;
        for (; n < N && v + (uint32_t)n < 65536; n++) h[n] = (uint16_t)(v + (uint32_t)n);
        ptq_f16_to_f32_n(h, xa, (size_t)n, 0);
        ptq_f16_to_f32_n(h, xb, (size_t)n, 1);
        for (int i = 0; i < n; i++) { /* a signaling NaN comes out quiet from F16C */
            uint32_t a, b;
            memcpy(&a, &xa[i], sizeof a);
            memcpy(&b, &xb[i], sizeof b);
            int snan = (h[i] & 0x7c00u) == 0x7c00u && (h[i] & 0x3ffu) && !(h[i] & 0x200u);
            ck_assert_msg(a == (snan ? b & ~0x00400000u : b), "f16 %04x: %08x vs %08x", h[i], a, b);
        }
    }
    const uint32_t edges[] = {0x477fefffu, 0x477ff000u, 0x33000000u, 0x33000001u, 0x387fc000u,
                              0x387fe000u, 0x7f800000u, 0x7f800001u, 0x7fc00000u, 0xffffffffu};
    uint64_t u = 0;
    while (u < 0x100000000ull) {
        int n = 0;
        for (; n < N - 10 && u < 0x100000000ull; n++, u += 61) {
            uint32_t b = (uint32_t)u;
            memcpy(&x[n], &b, sizeof b);
        }
        for (int k = 0; k < 10; k++, n++) memcpy(&x[n], &edges[k], sizeof edges[k]);
        ptq_f32_to_f16_n(x, ha, (size_t)n, 0);
        ptq_f32_to_f16_n(x, hb, (size_t)n, 1);
        ck_assert_mem_eq(ha, hb, sizeof(uint16_t) * (size_t)n);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cpu_kernels");
    TCase *tc = tcase_create("cpu_kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gemv_paths_within_bound);
    tcase_add_test(tc, hessian_chunks_on_workers);
    tcase_add_test(tc, mse_objective_paths);
    tcase_add_test(tc, half_rows_twin);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
