/* check_e8p_decode.c - the CPU side of the CUDA QuIP# linears, always run:
 * the E8P decode arithmetic the kernels share with the host
 * (lib/qfmt/e8p_decode.h) against lib/qfmt/e8p.h's ptq_e8p_decode and
 * ptq_e81b_decode bit for bit on every code; the view of a tensor as the
 * kernels' struct (lib/cuda/e8p_view.h) and the CPU references
 * (lib/cuda/ref/e8p_ref.c) against the format's own fused product
 * (ptq_qf_e8p_gemv) and a composition of the plans (had.h) with the core
 * product, which is the GPU's three-step y = U^T (W' (V x)).  The GPU runs
 * are tests/gpu/e8p.c (tests/check_cuda). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/e8p_view.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/e8p_decode.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/qfmt.h"
#include "lib/qfmt/qtensor.h"
#include "tests/testutil.h"

START_TEST(decode_all_codes_bitwise)
{
    for (int c = 0; c < 65536; c++) {
        float want[8], got[8], tabled[8];
        ptq_e8p_decode(ptq_e8p_tab, (uint16_t)c, want);
        ptq_e8pd_decode(ptq_e8p_tab, (uint16_t)c, got);
        ck_assert_msg(!memcmp(want, got, sizeof want), "code %d", c);
        /* the kernel's path: the two 256-entry tables built once, then
         * looked up by c >> 8 and c & 255 */
        static float src[256][8];
        static uint32_t mask[256][8];
        if (c == 0)
            for (int k = 0; k < 256; k++) ptq_e8pd_src(ptq_e8p_tab[k], src[k]), ptq_e8pd_mask((unsigned)k, mask[k]);
        for (int i = 0; i < 8; i++)
            tabled[i] = ptq_e8pd_value(src[c >> 8][i], mask[c & 255][i], ptq_e8pd_shift((unsigned)c & 255u));
        ck_assert_msg(!memcmp(want, tabled, sizeof want), "code %d (tables)", c);
    }
}
END_TEST

START_TEST(decode_parts)
{
    /* independent facts: the masks flip an even number of coordinates, the
     * shift is + 1/4 exactly for even bytes, and the 1-bit book is src */
    for (unsigned b = 0; b < 256; b++) {
        uint32_t m[8];
        ptq_e8pd_mask(b, m);
        int flips = 0, same = 1;
        for (int i = 0; i < 8; i++) {
            ck_assert(m[i] == 0 || m[i] == 0x80000000u);
            flips += m[i] != 0;
            if (i > 0) same &= (m[i] != 0) == (((b >> i) & 1u) != 0);
        }
        ck_assert_int_eq(flips % 2, 0);
        ck_assert(same); /* only bit 0 is changed, by the parity */
        ck_assert(ptq_e8pd_shift(b) == (__builtin_popcount(b) % 2 ? -0.25f : 0.25f));
    }
    for (int c = 0; c < 256; c++) {
        float want[8], got[8];
        ptq_e81b_decode(ptq_e81b_tab, (uint8_t)c, want);
        ptq_e8pd_src(ptq_e81b_tab[c], got);
        ck_assert_msg(!memcmp(want, got, sizeof want), "1-bit code %d", c);
    }
}
END_TEST

/* A random e8p tensor rows x cols of 2, 3 or 4 bits (the qf_e8p.c layout). */
static void random_e8p(ptq_qtensor *q, int rows, int cols, int bits, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_E8P, q->rows = rows, q->cols = cols, q->bits = bits;
    size_t nb = (size_t)ptq_qf_e8p_bytes(q, 0);
    q->e8_codes = malloc(nb + 2);
    for (size_t i = 0; i < nb / 2 + 1; i++) q->e8_codes[i] = (uint16_t)tu_rng_next(&seed);
    q->e8_scale = malloc(8);
    q->e8_scale[0] = 0.037f, q->e8_scale[1] = 0.037f / 3.45f;
    q->e8_su = malloc((size_t)cols);
    q->e8_sv = malloc((size_t)rows);
    for (int i = 0; i < cols; i++) q->e8_su[i] = tu_rng_next(&seed) & 1 ? -1 : 1;
    for (int i = 0; i < rows; i++) q->e8_sv[i] = tu_rng_next(&seed) & 1 ? -1 : 1;
}

/* For 2/3/4 bits: (1) ref linear vs the format's fused CPU product within
 * qf_e8p.c's bound; (2) V x by had.h, the core reference, U^T by had.h
 * (the GPU's three steps) vs the ref linear within the same bound. */
START_TEST(references_agree)
{
    static const int shapes[][2] = {{48, 96}, {96, 40}, {24, 64}};
    for (int s = 0; s < 3; s++)
        for (int bits = 2; bits <= 4; bits++) {
            int m = shapes[s][0], n = shapes[s][1];
            ptq_qtensor q;
            random_e8p(&q, m, n, bits, 77 + 13 * s + bits);
            ptq_err e;
            ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
            ptq_had hm, hn;
            ck_assert_int_eq(ptq_had_plan(&hm, m, &e), 0);
            ck_assert_int_eq(ptq_had_plan(&hn, n, &e), 0);
            ptqk_e8p_w w;
            ck_assert_int_eq(ptqk_e8p_view(&q, &hn, &hm, &w), 0);
            ck_assert_int_eq(w.nstages, bits == 2 ? 1 : 2);
            uint64_t seed = 5;
            uint16_t *x16 = malloc(2 * (size_t)n);
            float *xf = malloc(4 * (size_t)n), *t = malloc(4 * (size_t)n), *tmp = malloc(8 * (size_t)(m + n));
            float *yg = malloc(4 * (size_t)m), *z = malloc(4 * (size_t)m);
            double *yr = malloc(8 * (size_t)m), *zr = malloc(8 * (size_t)m), *a = malloc(8 * (size_t)m);
            for (int k = 0; k < n; k++) x16[k] = ptq_f32_to_f16((float)tu_rng_normal(&seed)), xf[k] = ptq_f16_to_f32(x16[k]);
            double wf = ptqr_linear_e8p(&q, x16, n, 1, yr);
            ck_assert(wf > 0);
            double xn = 0;
            for (int k = 0; k < n; k++) xn += (double)xf[k] * xf[k];
            xn = sqrt(xn);
            /* the bound of qf_e8p.c, u = 2^-24, a_n = log2 P + K + 2 */
            double an = log2(hn.P) + hn.K + 2, am = log2(hm.P) + hm.K + 2;
            double bound = 2 * (am + an + n + 4) * ldexp(1, -24) * wf * xn;
            ck_assert_int_eq(ptq_qf_e8p_gemv(&q, xf, yg, 1, &e), 0);
            double d2 = 0;
            for (int r = 0; r < m; r++) d2 += (yg[r] - yr[r]) * (yg[r] - yr[r]);
            ck_assert_msg(sqrt(d2) <= bound, "gemv vs ref %g > %g", sqrt(d2), bound);
            memcpy(t, xf, 4 * (size_t)n);
            ptq_had_fwd(&hn, q.e8_su, t, 1, tmp);
            ptqr_e8p_rotated(&w, t, n, 1, zr, a);
            for (int r = 0; r < m; r++) z[r] = (float)zr[r];
            ptq_had_inv(&hm, q.e8_sv, z, 1, tmp);
            d2 = 0;
            for (int r = 0; r < m; r++) d2 += (z[r] - yr[r]) * (z[r] - yr[r]);
            ck_assert_msg(sqrt(d2) <= bound, "steps vs ref %g > %g (%d x %d, %d bits)", sqrt(d2), bound, m, n, bits);
            free(x16), free(xf), free(t), free(tmp), free(yg), free(z), free(yr), free(zr), free(a);
            ptq_had_free(&hm), ptq_had_free(&hn);
            ptq_qtensor_free(&q);
        }
}
END_TEST

START_TEST(view_refuses)
{
    ptq_qtensor q;
    ptqk_e8p_w w;
    random_e8p(&q, 8, 16, 2, 1);
    q.bits = 5;
    ck_assert_int_eq(ptqk_e8p_view(&q, NULL, NULL, &w), -1);
    q.bits = 2, q.format = PTQ_QF_INT;
    ck_assert_int_eq(ptqk_e8p_view(&q, NULL, NULL, &w), -1);
    q.format = PTQ_QF_E8P;
    ck_assert_int_eq(ptqk_e8p_view(&q, NULL, NULL, &w), 0);
    ptq_qtensor_free(&q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("e8p-decode");
    TCase *tc = tcase_create("shared decode and references");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, decode_all_codes_bitwise);
    tcase_add_test(tc, decode_parts);
    tcase_add_test(tc, references_agree);
    tcase_add_test(tc, view_refuses);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
