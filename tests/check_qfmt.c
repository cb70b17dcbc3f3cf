/* check_qfmt.c - the table of packed formats (lib/qfmt/qfmt.h): every row
 * complete and consistent, payload sizes as ptqc-bundle(5) defines them, and
 * the decode through the table against values computed here from the
 * definitions (an int row packed by this file's own bit writer; 8-bit codes
 * from their two's complement / E4M3 definition). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/qfmt/qfmt.h"
#include "tests/testutil.h"

START_TEST(rows_complete)
{
    int seen_names = 0;
    for (int i = 0; i < PTQ_QF_COUNT; i++) {
        const ptq_qfmt *f = ptq_qfmt_row(i);
        if (!f) continue; /* an id reserved for a row not yet written */
        ck_assert_int_eq(f->id, i);
        ck_assert_ptr_nonnull(f->name);
        ck_assert_int_ge(f->version, 1);
        if (f->flags & PTQ_QFMT_CACHE) {
            ck_assert_ptr_null(ptq_qfmt_by_name(f->name)); /* no tensor storage */
            ck_assert_ptr_nonnull(f->code_value);
            continue;
        }
        ck_assert_ptr_eq(ptq_qfmt_by_name(f->name), f);
        ck_assert(f->check && f->decode && f->payload_bytes && f->payloads[0].name);
        if (f->flags & PTQ_QFMT_ACT) ck_assert(f->encode && f->code_value && f->value_code);
        for (int p = 0; p < PTQ_QFMT_MAX_PAYLOADS && f->payloads[p].name; p++)
            ck_assert_int_eq(ptq_qfmt_payload_index(f, f->payloads[p].name), p);
        seen_names++;
    }
    ck_assert_int_ge(seen_names, 5); /* dense, int, w8a8, fp8, e8p (+ rows added since) */
    ck_assert_ptr_null(ptq_qfmt_get(PTQ_QF_COUNT));
    ck_assert_ptr_null(ptq_qfmt_get(-1));
    ck_assert_ptr_eq(ptq_qfmt_by_name("e8p"), ptq_qfmt_get(PTQ_QF_E8P));
}
END_TEST

/* ptqc-bundle(5): qweight uint32 [rows][ceil(cols/32) * bits], scales fp16
 * [rows][ngroups], zeros uint8 [rows][ngroups], g_idx int32 [cols]; codes
 * uint8 [rows][cols], wscale f32 [rows], act_scale f32 [1]. */
START_TEST(payload_sizes)
{
    ptq_qtensor q = {.format = PTQ_QF_INT, .rows = 5, .cols = 96, .bits = 3, .group = 32};
    const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_INT);
    const char *names[] = {"qweight", "scales", "zeros", "g_idx"};
    uint64_t want[] = {5 * 3 * 3 * 4, 5 * 3 * 2, 5 * 3, 96 * 4};
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(f->payload_bytes(&q, ptq_qfmt_payload_index(f, names[i])), want[i]);
    q.cols = 33; /* two blocks, the second mostly padding */
    q.group = 0;
    ck_assert_uint_eq(f->payload_bytes(&q, 0), 5 * 2 * 3 * 4);
    ptq_qtensor a = {.format = PTQ_QF_FP8, .rows = 7, .cols = 10};
    f = ptq_qfmt_get(PTQ_QF_FP8);
    ck_assert_uint_eq(f->payload_bytes(&a, ptq_qfmt_payload_index(f, "codes")), 70);
    ck_assert_uint_eq(f->payload_bytes(&a, ptq_qfmt_payload_index(f, "wscale")), 28);
    ck_assert_uint_eq(f->payload_bytes(&a, ptq_qfmt_payload_index(f, "act_scale")), 4);
}
END_TEST

/* Column k of a row is bits [k*b, k*b + b) of the row's blocks' bit stream. */
static void put_code(uint32_t *row, int k, int b, unsigned q)
{
    int blk = k / 32, j = k % 32;
    for (int t = 0; t < b; t++) {
        int bit = j * b + t;
        if (q >> t & 1) row[blk * b + bit / 32] |= 1u << (bit % 32);
    }
}

START_TEST(int_decode_through_table)
{
    enum { R = 3, C = 40, B = 3, G = 8, NG = C / G };
    int words = ((C + 31) / 32) * B;
    uint32_t *qw = calloc(R * (size_t)words, 4);
    uint16_t sc[R * NG];
    uint8_t zr[R * NG], code[R][C];
    for (int i = 0; i < R * NG; i++) {
        sc[i] = ptq_f32_to_f16(0.25f * (float)(i + 1)); /* exact in fp16 */
        zr[i] = (uint8_t)(i % 8);
    }
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            code[r][k] = (uint8_t)((r * 7 + k * 3) % 8);
            put_code(qw + r * words, k, B, code[r][k]);
        }
    ptq_qtensor q = {.format = PTQ_QF_INT, .rows = R, .cols = C, .bits = B, .group = G,
                     .ngroups = NG, .qweight = qw, .scales = sc, .zeros = zr, .mapped = 1};
    float w[R * C];
    ptq_err e;
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            int g = r * NG + k / G;
            double want = 0.25 * (g + 1) * ((int)code[r][k] - (int)(g % 8));
            ck_assert_msg(w[r * C + k] == (float)want, "[%d][%d] %g != %g", r, k,
                          (double)w[r * C + k], want);
        }
    zr[4] = 8; /* outside 0..2^3-1 */
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    ck_assert(strstr(e.msg, "zero point"));
    free(qw);
}
END_TEST

/* A group (16) that does not divide the columns (45): ceil(45/16) = 3 groups
 * a row, the last of 13 columns; column k uses group k / 16.  Written by
 * formula from the codes, scales and zeros put here. */
START_TEST(int_decode_partial_group)
{
    enum { R = 4, C = 45, B = 4, G = 16, NG = 3 };
    int words = ((C + 31) / 32) * B;
    uint32_t *qw = calloc(R * (size_t)words, 4);
    uint16_t sc[R * NG];
    uint8_t zr[R * NG], code[R][C];
    for (int i = 0; i < R * NG; i++) {
        sc[i] = ptq_f32_to_f16(0.125f * (float)(i + 1)); /* exact in fp16 */
        zr[i] = (uint8_t)((5 * i) % 16);
    }
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            code[r][k] = (uint8_t)((r * 5 + k * 7) % 16);
            put_code(qw + r * words, k, B, code[r][k]);
        }
    ptq_qtensor q = {.format = PTQ_QF_INT, .rows = R, .cols = C, .bits = B, .group = G,
                     .ngroups = NG, .qweight = qw, .scales = sc, .zeros = zr, .mapped = 1};
    const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_INT);
    ck_assert_uint_eq(f->payload_bytes(&q, 0), (uint64_t)R * words * 4);
    ck_assert_uint_eq(f->payload_bytes(&q, 1), R * NG * 2);
    ck_assert_uint_eq(f->payload_bytes(&q, 2), R * NG);
    float w[R * C], w2[2 * C];
    ptq_err e;
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    ck_assert_int_eq(ptq_qtensor_dequant_rows(&q, 2, 2, w2, &e), 0);
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            int g = r * NG + k / G;
            double want = 0.125 * (g + 1) * ((int)code[r][k] - (5 * g) % 16);
            ck_assert_msg(w[r * C + k] == (float)want, "[%d][%d] %g != %g", r, k,
                          (double)w[r * C + k], want);
            if (r >= 2) ck_assert(w2[(r - 2) * C + k] == w[r * C + k]);
        }
    q.ngroups = 2; /* cols / group rounded down: refused */
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    ck_assert(strstr(e.msg, "ngroups 2, expected 3"));
    q.ngroups = 1, q.group = 64; /* a group past the columns: one group */
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_OK);
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    for (int k = 0; k < C; k++)
        ck_assert(w[k] == (float)(0.125 * ((int)code[0][k] - 0)));
    free(qw);
}
END_TEST

START_TEST(a8_decode_through_table)
{
    uint8_t codes[4] = {0x00, 0x7f, 0x81, 0x38}; /* int8 0, 127, -127, 56 */
    float ws[1] = {0.5f};
    ptq_qtensor q = {.format = PTQ_QF_W8A8, .rows = 1, .cols = 4, .bits = 8, .codes = codes,
                     .wscale = ws, .mapped = 1};
    float w[4];
    ptq_err e;
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    ck_assert(w[0] == 0 && w[1] == 63.5f && w[2] == -63.5f && w[3] == 28.0f);
    q.format = PTQ_QF_FP8; /* E4M3: 0, NaN (refused), -2^-6 * 1/8, 2^(7-7) * 1 */
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), PTQ_EFORMAT);
    codes[1] = 0x7e; /* 2^(15-7) * 1.75 = 448 */
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    ck_assert(w[0] == 0 && w[1] == 224.0f && w[2] == (float)(-ldexp(1.0 / 8, -6) * 0.5) &&
              w[3] == 0.5f);
    const ptq_qfmt *kv = ptq_qfmt_get(PTQ_QF_KV_INT8);
    ck_assert(kv->value_code(200.0f) == 127 && kv->value_code(-2.5f) == (uint8_t)-2 &&
              kv->code_value(0x81) == -127.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qfmt");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, rows_complete);
    tcase_add_test(tc, payload_sizes);
    tcase_add_test(tc, int_decode_through_table);
    tcase_add_test(tc, int_decode_partial_group);
    tcase_add_test(tc, a8_decode_through_table);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
