/* check_quant.c - the uniform grid (lib/quant/quant.c), the packed layout
 * (lib/qfmt/pack.h) and RTN (lib/quant/rtn.c).
 *
 * Expected grids are worked out by hand in the comments from the formulas of
 * lib/quant/quant.h (GPTQ's reference quantizer); fp16 values are exact binary
 * fractions written out. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/quant/gptq.h"
#include "lib/base/half.h"
#include "lib/qfmt/pack.h"
#include "lib/quant/quant.h"
#include "tests/testutil.h"

static ptq_quant_opts qo(int bits, int sym, int mse)
{
    ptq_quant_opts o = {bits, sym, mse};
    return o;
}

/* w = {-1, 0.5, 2}, 2 bits (maxq = 3). */
START_TEST(grid_by_hand_2bit)
{
    const float w[3] = {-1.0f, 0.5f, 2.0f};
    ptq_quant_opts o = qo(2, 0, 0);
    ptq_qgrid g;
    /* asymmetric: xmin = -1, xmax = 2, scale = 3/3 = 1 (fp16 0x3c00),
     * zero = round(1/1) = 1; codes: round(-1)+1 = 0, round(0.5)+1 = 0+1 = 1
     * (0.5 rounds to even 0), round(2)+1 = 3; values -1, 0, 2. */
    ptq_quant_grid(w, 3, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x3c00);
    ck_assert(g.scale == 1.0f);
    ck_assert_int_eq(g.zero, 1);
    ck_assert_int_eq(g.maxq, 3);
    ck_assert_int_eq(ptq_quant_code(&g, w[0]), 0);
    ck_assert_int_eq(ptq_quant_code(&g, w[1]), 1);
    ck_assert_int_eq(ptq_quant_code(&g, w[2]), 3);
    ck_assert(ptq_quant_value(&g, 0) == -1.0f && ptq_quant_value(&g, 3) == 2.0f);
    /* symmetric: xmax = max(|-1|, 2) = 2, xmin = -2, scale = 4/3 = 1.0101010..b
     * -> fp16 1 + 341/1024 = 1.3330078125 (0x3d55), zero = (3+1)/2 = 2;
     * codes: -1/1.333 = -0.750 -> -1 + 2 = 1; 0.5/1.333 = 0.375 -> 0 + 2 = 2;
     * 2/1.333 = 1.5004 -> 2 + 2 = 4, clamped to 3. */
    o.sym = 1;
    ptq_quant_grid(w, 3, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x3d55);
    ck_assert(g.scale == 1.3330078125f);
    ck_assert_int_eq(g.zero, 2);
    ck_assert_int_eq(ptq_quant_code(&g, w[0]), 1);
    ck_assert_int_eq(ptq_quant_code(&g, w[1]), 2);
    ck_assert_int_eq(ptq_quant_code(&g, w[2]), 3);
    ck_assert(ptq_quant_value(&g, 1) == -1.3330078125f);
    /* strided: the same three weights every 4th float */
    float ws[12] = {0};
    for (int i = 0; i < 3; i++) ws[4 * i] = w[i], ws[4 * i + 1] = 100.0f;
    ptq_quant_grid(ws, 3, 4, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x3d55);
}
END_TEST

START_TEST(grid_special_cases)
{
    ptq_qgrid g;
    ptq_quant_opts o = qo(2, 0, 0);
    /* all-zero group: xmin = -1, xmax = 1, scale = 2/3 -> fp16 0.5 * (1 + 341/1024)
     * = 0.66650390625 (0x3955), zero = round(1/0.6665) = round(1.5004) = 2;
     * 0 codes to 2 and decodes to exactly 0 */
    const float z[4] = {0, 0, 0, 0};
    ptq_quant_grid(z, 4, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x3955);
    ck_assert_int_eq(g.zero, 2);
    ck_assert_int_eq(ptq_quant_code(&g, 0.0f), 2);
    ck_assert(ptq_quant_value(&g, 2) == 0.0f);
    o.sym = 1; /* symmetric: same range, zero (3+1)/2 = 2 */
    ptq_quant_grid(z, 4, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x3955);
    ck_assert_int_eq(g.zero, 2);
    /* symmetric, no negative weight: the range is [-3, 3] as for any other
     * group (compressed-tensors: scale = max|w| / (maxq / 2)), so {0.5, 1, 3}:
     * scale = 6/3 = 2, zero = 2, codes round(0.25) + 2 = 2, round(0.5) + 2 = 2
     * (ties to even), round(1.5) + 2 = 4 -> 3, which decodes to 2.  (GPTQ's
     * reference keeps xmin = 0 there: scale 1, and 3 decodes to 1.) */
    const float pos[3] = {0.5f, 1.0f, 3.0f};
    ptq_quant_grid(pos, 3, 1, &o, &g);
    ck_assert(g.scale == 2.0f);
    ck_assert_int_eq(g.zero, 2);
    ck_assert_int_eq(ptq_quant_code(&g, 0.5f), 2);
    ck_assert_int_eq(ptq_quant_code(&g, 1.0f), 2);
    ck_assert_int_eq(ptq_quant_code(&g, 3.0f), 3);
    ck_assert(ptq_quant_value(&g, 3) == 2.0f);
    /* tiny weights: scale 2e-7/3 is below the smallest normal fp16 and is
     * raised to 2^-14 (0x0400); zero = round(1e-7 / 2^-14) = 0 */
    o.sym = 0;
    const float tiny[2] = {1e-7f, -1e-7f};
    ptq_quant_grid(tiny, 2, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x0400);
    ck_assert(g.scale == 6.103515625e-05f);
    ck_assert(ptq_quant_grid_ok(&g));
    ck_assert_int_eq(g.zero, 0);
    ck_assert_int_eq(ptq_quant_code(&g, 1e-7f), 0);
    /* an absurd range: scale 2e6/3 does not fit fp16 */
    const float huge[2] = {-1e6f, 1e6f};
    ptq_quant_grid(huge, 2, 1, &o, &g);
    ck_assert(!ptq_quant_grid_ok(&g));
    /* 8 bits, range up to 65504 * 255 still fits */
    o.bits = 8;
    const float big[2] = {0.0f, 65504.0f * 200.0f};
    ptq_quant_grid(big, 2, 1, &o, &g);
    ck_assert(ptq_quant_grid_ok(&g));
}
END_TEST

/* The codes are computed from the fp16 scale.  {0, 0.5, 1}, 4 bits asym:
 * scale = 1/15 = 1.000100010001..b x 2^-4 -> fp16 mantissa 0001000100b = 68:
 * 2^-4 (1 + 68/1024) = 0.066650390625 (0x2c44).  0.5 / 0.06665 = 7.5018 ->
 * code 8; with the float32 scale 0.0666667 it would be 7.49999 -> 7. */
START_TEST(grid_uses_fp16_scale)
{
    const float w[3] = {0.0f, 0.5f, 1.0f};
    ptq_quant_opts o = qo(4, 0, 0);
    ptq_qgrid g;
    ptq_quant_grid(w, 3, 1, &o, &g);
    ck_assert_uint_eq(g.scale_f16, 0x2c44);
    ck_assert(g.scale == 0.066650390625f);
    ck_assert_int_eq(g.zero, 0);
    ck_assert_int_eq(ptq_quant_code(&g, 0.5f), 8);
    ck_assert_int_eq((int)nearbyintf(0.5f / (1.0f / 15.0f)), 7);
    ck_assert_int_eq(ptq_quant_code(&g, 1.0f), 15);
    /* random groups: the float scale is always the stored fp16 value */
    uint64_t s = 7;
    float v[128];
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < 128; i++) v[i] = tu_rng_normal(&s) * (float)(t + 1) * 0.01f;
        o.bits = 2 + t % 7, o.sym = t % 2, o.mse = (t % 5) == 0;
        ptq_quant_grid(v, 128, 1, &o, &g);
        ck_assert(g.scale == ptq_f16_to_f32(g.scale_f16));
        ck_assert(g.scale > 0.0f && isfinite(g.scale));
        ck_assert_int_le(g.zero, g.maxq);
    }
}
END_TEST

/* sum |w' - w|^2.4 in double (the search's objective) */
static double objective(const float *w, int n, const ptq_qgrid *g)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += pow(fabs((double)ptq_quant_value(g, ptq_quant_code(g, w[i])) - w[i]), 2.4);
    return s;
}

START_TEST(mse_never_worse)
{
    uint64_t s = 11;
    float w[128];
    int better = 0;
    for (int t = 0; t < 280; t++) {
        int n = t % 2 ? 128 : 37;
        for (int i = 0; i < n; i++) {
            w[i] = tu_rng_normal(&s);
            if (tu_rng_unif(&s) < 0.03) w[i] *= 8.0f; /* outliers make clipping pay */
        }
        ptq_quant_opts o = qo(2 + t % 7, (t / 7) % 2, 0);
        ptq_qgrid plain, mse;
        ptq_quant_grid(w, n, 1, &o, &plain);
        o.mse = 1;
        ptq_quant_grid(w, n, 1, &o, &mse);
        double ep = objective(w, n, &plain), em = objective(w, n, &mse);
        /* the search sums float powf terms in double, this test pow in
         * double: the two objectives agree to ~1e-7 relative */
        ck_assert_msg(em <= ep * (1 + 1e-6), "case %d: mse %g > plain %g", t, em, ep);
        if (em < ep * (1 - 1e-3)) better++;
    }
    /* and it finds something better most of the time at these bit widths */
    ck_assert_int_gt(better, 140);
}
END_TEST

/* The packed stream computed bit by bit, independently of ptq_pack_set. */
START_TEST(pack_round_trip)
{
    static const int colsv[] = {1, 7, 31, 32, 33, 100, 257};
    uint64_t s = 3;
    for (int bits = 2; bits <= 8; bits++)
        for (size_t c = 0; c < sizeof colsv / sizeof colsv[0]; c++) {
            int cols = colsv[c], words = ptq_pack_row_words(cols, bits);
            ck_assert_int_eq(words, (cols + 31) / 32 * bits);
            uint32_t *row = calloc((size_t)words, 4), *ref = calloc((size_t)words, 4);
            uint32_t *q = malloc((size_t)cols * 4);
            for (int k = 0; k < cols; k++) {
                q[k] = (uint32_t)(tu_rng_next(&s) % (1u << bits));
                ptq_pack_set(row, k, bits, q[k]);
                /* bit t of column k is bit (k%32)*bits + t of block k/32's stream */
                for (int t = 0; t < bits; t++)
                    if (q[k] >> t & 1) {
                        int bit = (k % 32) * bits + t;
                        ref[(k / 32) * bits + bit / 32] |= 1u << (bit % 32);
                    }
            }
            ck_assert_msg(!memcmp(row, ref, (size_t)words * 4), "bits %d cols %d", bits, cols);
            for (int k = 0; k < cols; k++) ck_assert_uint_eq(ptq_pack_get(row, k, bits), q[k]);
            for (int k = cols; k < (cols + 31) / 32 * 32; k++)
                ck_assert_uint_eq(ptq_pack_get(row, k, bits), 0); /* padding stays 0 */
            uint32_t blk[32];
            for (int b = 0; b < ptq_pack_kblocks(cols); b++) {
                ptq_pack_block_codes(row + b * bits, bits, blk);
                for (int j = 0; j < 32 && b * 32 + j < cols; j++) ck_assert_uint_eq(blk[j], q[b * 32 + j]);
            }
            free(row), free(ref), free(q);
        }
    /* 4 bits: word w of a block holds columns 8w..8w+7, low nibble first */
    uint32_t r4[4] = {0};
    for (int k = 0; k < 32; k++) ptq_pack_set(r4, k, 4, (uint32_t)(k & 15));
    ck_assert_uint_eq(r4[0], 0x76543210u);
    ck_assert_uint_eq(r4[1], 0xfedcba98u);
    /* 8 bits: bytes in order */
    uint32_t r8[8] = {0};
    for (int k = 0; k < 32; k++) ptq_pack_set(r8, k, 8, (uint32_t)k);
    ck_assert_uint_eq(r8[0], 0x03020100u);
    ck_assert_uint_eq(r8[7], 0x1f1e1d1cu);
}
END_TEST

static ptq_gptq_opts gopts(int bits, int sym, int group)
{
    ptq_gptq_opts o;
    memset(&o, 0, sizeof o);
    o.q.bits = bits, o.q.sym = sym, o.group = group;
    o.damp = 0.01f, o.block = 128;
    return o;
}

/* W = [[-1, 0.5, 2, 0], [0, 0, 0.5, 1]], 2 bits asym, group 2:
 *  r0 g0 {-1, 0.5}: scale 1.5/3 = 0.5 (0x3800), zero round(1/0.5) = 2, codes 0, 3
 *  r0 g1 {2, 0}:    scale 2/3 -> 0.66650390625 (0x3955), zero 0,
 *                   codes round(3.0007) = 3, 0
 *  r1 g0 {0, 0}:    all zero: scale 0x3955, zero round(1.5004) = 2, codes 2, 2
 *  r1 g1 {0.5, 1}:  scale 1/3 -> 0.25 (1 + 341/1024) = 0.333251953125 (0x3555),
 *                   zero 0, codes round(1.5004) = 2, round(3.0007) = 3 */
START_TEST(rtn_by_hand)
{
    const float W[8] = {-1, 0.5f, 2, 0, 0, 0, 0.5f, 1};
    ptq_gptq_opts o = gopts(2, 0, 2);
    ptq_qtensor q;
    ptq_err e;
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(ptq_rtn(W, 2, 4, &o, &q, &e), PTQ_OK);
    ck_assert_int_eq(q.format, PTQ_QF_INT);
    ck_assert_int_eq(q.ngroups, 2);
    ck_assert_ptr_null(q.g_idx);
    const uint16_t sc[4] = {0x3800, 0x3955, 0x3955, 0x3555};
    const uint8_t zr[4] = {2, 0, 2, 0};
    const uint32_t codes[8] = {0, 3, 3, 0, 2, 2, 2, 3};
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(q.scales[i], sc[i]);
        ck_assert_uint_eq(q.zeros[i], zr[i]);
    }
    int words = ptq_pack_row_words(4, 2);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 4; k++)
            ck_assert_uint_eq(ptq_pack_get(q.qweight + r * words, k, 2), codes[r * 4 + k]);
    float d[8];
    ck_assert_int_eq(ptq_qtensor_dequant(&q, d, &e), PTQ_OK);
    ck_assert(d[0] == -1.0f && d[1] == 0.5f && d[3] == 0.0f && d[4] == 0.0f);
    ck_assert(d[2] == 3 * 0.66650390625f && d[7] == 3 * 0.333251953125f);
    ptq_qtensor_free(&q);
}
END_TEST

/* A group (2) that does not divide the columns (5): ceil(5/2) = 3 groups,
 * the last of one column, its grid from that column alone.  2 bits asym:
 *   row 0: {-1, 0.5}: scale 1.5/3 = 0.5 (0x3800), zero 2, codes 0, 3
 *          {2, 0}:    scale 2/3 -> fp16 0.66650390625 (0x3955), zero 0,
 *                     codes round(3.0007) = 3, 0
 *          {1}:       scale 1/3 -> 0.333251953125 (0x3555), zero 0, code 3
 *   row 1: {0, 0}:    all zero: range [-1, 1], scale 0x3955, zero
 *                     round(1 / 0.6665) = 2, codes 2, 2
 *          {0.5, 1}:  scale 0x3555, zero 0, codes round(1.5004) = 2, 3
 *          {-2}:      range [-2, 0], scale 0x3955, zero round(3.0007) = 3,
 *                     code round(-3.0007) + 3 = 0 -> -3 * 0.6665 */
START_TEST(rtn_partial_group_by_hand)
{
    const float W[10] = {-1, 0.5f, 2, 0, 1, 0, 0, 0.5f, 1, -2};
    ptq_gptq_opts o = gopts(2, 0, 2);
    ptq_qtensor q;
    ptq_err e;
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(ptq_rtn(W, 2, 5, &o, &q, &e), PTQ_OK);
    ck_assert_int_eq(q.group, 2);
    ck_assert_int_eq(q.ngroups, 3);
    const uint16_t sc[6] = {0x3800, 0x3955, 0x3555, 0x3955, 0x3555, 0x3955};
    const uint8_t zr[6] = {2, 0, 0, 2, 0, 3};
    const uint32_t codes[10] = {0, 3, 3, 0, 3, 2, 2, 2, 3, 0};
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq(q.scales[i], sc[i]);
        ck_assert_uint_eq(q.zeros[i], zr[i]);
    }
    int words = ptq_pack_row_words(5, 2);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 5; k++)
            ck_assert_uint_eq(ptq_pack_get(q.qweight + r * words, k, 2), codes[r * 5 + k]);
    float d[10];
    ck_assert_int_eq(ptq_qtensor_dequant(&q, d, &e), PTQ_OK);
    ck_assert(d[4] == 3 * 0.333251953125f && d[9] == -3 * 0.66650390625f);
    ck_assert(ptq_pack_ngroups(5, 2) == 3 && ptq_pack_group_len(5, 2, 2) == 1);
    ck_assert(ptq_pack_ngroups(172, 256) == 1 && ptq_pack_group_len(172, 256, 0) == 172);
    ck_assert(ptq_pack_ngroups(576, 128) == 5 && ptq_pack_group_len(576, 128, 4) == 64);
    ptq_qtensor_free(&q);
}
END_TEST

/* Every weight inside its group's grid range decodes within half a step
 * (plus what the fp16 rounding of the scale can move the top of the grid). */
START_TEST(rtn_error_bound)
{
    const int rows = 16, cols = 256;
    float *W = malloc(sizeof(float) * rows * cols), *D = malloc(sizeof(float) * rows * cols);
    uint64_t s = 5;
    for (int i = 0; i < rows * cols; i++) W[i] = tu_rng_normal(&s) * 0.02f;
    static const int groups[] = {0, 32, 128, 48, 100, 300}; /* the last three leave a
                                                               shorter last group */
    for (int bits = 2; bits <= 8; bits++)
        for (int gi = 0; gi < 6; gi++) {
            ptq_gptq_opts o = gopts(bits, 0, groups[gi]);
            ptq_qtensor q;
            ptq_err e;
            memset(&q, 0, sizeof q);
            ck_assert_int_eq(ptq_rtn(W, rows, cols, &o, &q, &e), PTQ_OK);
            ck_assert_int_eq(ptq_qtensor_dequant(&q, D, &e), PTQ_OK);
            int G = groups[gi] ? groups[gi] : cols;
            for (int r = 0; r < rows; r++)
                for (int k = 0; k < cols; k++) {
                    float sc = ptq_f16_to_f32(q.scales[r * q.ngroups + k / G]);
                    float tol = 0.5f * sc + (float)((1 << bits) - 1) * sc / 1024.0f;
                    ck_assert_msg(fabsf(D[r * cols + k] - W[r * cols + k]) <= tol,
                                  "bits %d group %d [%d][%d]", bits, groups[gi], r, k);
                }
            ptq_qtensor_free(&q);
        }
    free(W), free(D);
}
END_TEST

START_TEST(rtn_rejects)
{
    float W[2 * 256];
    for (int i = 0; i < 512; i++) W[i] = (float)(i % 7) - 3.0f;
    ptq_qtensor q;
    ptq_err e;
    memset(&q, 0, sizeof q);
    ptq_gptq_opts o = gopts(1, 0, 0);
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e.msg, "--bits 1"));
    o = gopts(9, 0, 0);
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EUSAGE);
    o = gopts(4, 0, -1);
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EUSAGE);
    ck_assert_msg(strstr(e.msg, "--group -1"), "%s", e.msg);
    o = gopts(4, 0, 128);
    W[300] = NAN;
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EDATA);
    W[300] = INFINITY;
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EDATA);
    W[300] = 3e38f, W[301] = -3e38f; /* finite, but no fp16 scale spans it */
    ck_assert_int_eq(ptq_rtn(W, 2, 256, &o, &q, &e), PTQ_EDATA);
    ck_assert_ptr_nonnull(strstr(e.msg, "fp16"));
    ck_assert_ptr_null(q.qweight); /* nothing left allocated */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *t = tcase_create("quant");
    tcase_add_test(t, grid_by_hand_2bit);
    tcase_add_test(t, grid_special_cases);
    tcase_add_test(t, grid_uses_fp16_scale);
    tcase_add_test(t, mse_never_worse);
    tcase_add_test(t, pack_round_trip);
    tcase_add_test(t, rtn_by_hand);
    tcase_add_test(t, rtn_partial_group_by_hand);
    tcase_add_test(t, rtn_error_bound);
    tcase_add_test(t, rtn_rejects);
    suite_add_tcase(s, t);
    return tu_run(s);
}
