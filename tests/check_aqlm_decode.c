/* check_aqlm_decode.c - the CPU side of the AQLM CUDA kernels, always run:
 * the decode arithmetic shared with lib/cuda/aqlm.cu (lib/qfmt/aqlm_decode.h)
 * equals the CPU decode (ptq_qf_aqlm_decode through ptq_qtensor_dequant) and
 * the format's formula written out here bit for bit, for 2x8, 1x16, 1x8, 3x8
 * and 4x8; and the kernels' CPU reference (lib/cuda/ref/aqlm_ref.c) equals a
 * double-precision product of the dequantized weights.  The GPU side is
 * tests/gpu/aqlm.c (tests/check_cuda, tests/gpu/run.sh).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/aqlm_decode.h"
#include "lib/qfmt/qtensor.h"
#include "tests/testutil.h"

static const int cfgs[][2] = {{2, 8}, {1, 16}, {1, 8}, {3, 8}, {4, 8}};
#define NCFG (int)(sizeof cfgs / sizeof cfgs[0])

/* Random AQLM tensor: codewords N(0, 1) in fp16, some exact zeros and tiny
 * (subnormal) values, codes uniform, scales in [2^-10, 2^-4] with signs. */
static void random_aqlm(ptq_qtensor *q, int rows, int cols, int M, int B, uint64_t *rng)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_AQLM;
    q->rows = rows, q->cols = cols, q->aq_m = M, q->aq_b = B;
    size_t nc = (size_t)rows * (cols / 8) * M, nb = ((size_t)M << B) * 8;
    q->aq_codes = malloc(nc * (B > 8 ? 2 : 1));
    q->aq_codebooks = malloc(nb * 2);
    q->aq_scales = malloc((size_t)rows * 2);
    ck_assert(q->aq_codes && q->aq_codebooks && q->aq_scales);
    for (size_t i = 0; i < nc; i++) {
        unsigned c = (unsigned)(tu_rng_next(rng) >> 20) & ((1u << B) - 1);
        if (B > 8) ((uint16_t *)q->aq_codes)[i] = (uint16_t)c;
        else ((uint8_t *)q->aq_codes)[i] = (uint8_t)c;
    }
    for (size_t i = 0; i < nb; i++) {
        unsigned k = (unsigned)(tu_rng_next(rng) >> 60);
        float v = k == 0 ? 0.0f : k == 1 ? tu_rng_normal(rng) * 1e-6f : tu_rng_normal(rng);
        q->aq_codebooks[i] = ptq_f32_to_f16(v);
    }
    for (int r = 0; r < rows; r++) {
        double s = ldexp(1.0 + tu_rng_unif(rng), -10 + (int)(tu_rng_next(rng) % 6));
        q->aq_scales[r] = ptq_f32_to_f16((float)(r % 3 == 2 ? -s : s));
    }
}

/* The format's formula, written out: s * (((0 + v_0) + v_1) + ...). */
static float formula(const ptq_qtensor *q, int r, int k)
{
    int G = q->cols / 8, g = k / 8, i = k % 8;
    size_t K = (size_t)1 << q->aq_b;
    float y = 0.0f;
    for (int m = 0; m < q->aq_m; m++) {
        size_t ci = ((size_t)r * G + g) * q->aq_m + m;
        unsigned c = q->aq_b > 8 ? ((uint16_t *)q->aq_codes)[ci] : ((uint8_t *)q->aq_codes)[ci];
        y += ptq_f16_to_f32(q->aq_codebooks[((size_t)m * K + c) * 8 + i]);
    }
    return ptq_f16_to_f32(q->aq_scales[r]) * y;
}

static ptqk_aqlm_w as_kernel_w(const ptq_qtensor *q)
{
    return (ptqk_aqlm_w){q->rows, q->cols, q->aq_m, q->aq_b, q->aq_codes, q->aq_codebooks, q->aq_scales};
}

START_TEST(header_equals_decode)
{
    uint64_t rng = 12345;
    for (int c = 0; c < NCFG; c++) {
        int M = cfgs[c][0], B = cfgs[c][1], R = 37, C = 96, G = C / 8;
        ptq_qtensor q;
        random_aqlm(&q, R, C, M, B, &rng);
        ptq_err e;
        ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
        float *w = malloc(sizeof *w * (size_t)R * C);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        ptqk_aqlm_w kw = as_kernel_w(&q);
        for (int r = 0; r < R; r++)
            for (int g = 0; g < G; g++) {
                float h[8], rf[8];
                ptq_aq_group_f16(q.aq_codebooks, q.aq_scales, B, M, q.aq_codes, G, r, g, h);
                ptqr_aqlm_group(&kw, r, g, 0, rf);
                for (int i = 0; i < 8; i++) {
                    float d = w[(size_t)r * C + g * 8 + i], f = formula(&q, r, g * 8 + i);
                    ck_assert_msg(ptq_f32_to_bits(h[i]) == ptq_f32_to_bits(d) &&
                                      ptq_f32_to_bits(f) == ptq_f32_to_bits(d) &&
                                      ptq_f32_to_bits(rf[i]) == ptq_f32_to_bits(d),
                                  "%dx%d [%d][%d]: header %a, decode %a, formula %a", M, B, r,
                                  g * 8 + i, (double)h[i], (double)d, (double)f);
                }
            }
        printf("aqlm %dx%d: header = decode = formula on %d x %d, bit for bit\n", M, B, R, C);
        free(w);
        ptq_qtensor_free(&q);
    }
}
END_TEST

/* The reference linear = a double product of ptq_qtensor_dequant's weights
 * (fp16-rounded for round16), exactly (the same sums in the same order). */
START_TEST(reference_is_dequant_product)
{
    uint64_t rng = 777;
    for (int c = 0; c < NCFG; c++) {
        int M = cfgs[c][0], B = cfgs[c][1], R = 19, C = 64, n = 3;
        ptq_qtensor q;
        random_aqlm(&q, R, C, M, B, &rng);
        ptq_err e;
        float *w = malloc(sizeof *w * (size_t)R * C);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        uint16_t x[3 * 64];
        for (int i = 0; i < n * C; i++) x[i] = ptq_f32_to_f16(tu_rng_normal(&rng));
        double y[3 * 19], a[3 * 19];
        ptqk_aqlm_w kw = as_kernel_w(&q);
        for (int round16 = 0; round16 < 2; round16++) {
            ptqr_linear_aqlm(&kw, round16, x, C, n, y, a);
            for (int t = 0; t < n; t++)
                for (int r = 0; r < R; r++) {
                    double s = 0, m = 0;
                    for (int k = 0; k < C; k++) {
                        float wv = w[(size_t)r * C + k];
                        if (round16) wv = ptq_f16_to_f32(ptq_f32_to_f16(wv));
                        double p = (double)wv * ptq_f16_to_f32(x[t * C + k]);
                        s += p, m += fabs(p);
                    }
                    ck_assert_msg(y[t * R + r] == s && a[t * R + r] == m, "%dx%d t %d r %d", M, B, t, r);
                }
        }
        free(w);
        ptq_qtensor_free(&q);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("aqlm-decode");
    TCase *tc = tcase_create("shared decode");
    tcase_add_test(tc, header_equals_decode);
    tcase_add_test(tc, reference_is_dequant_product);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
