/* check_cuda_decode.c - the CPU side of libptqrt, always run: the decode
 * arithmetic that the CUDA kernels share with the CPU (lib/cuda/ptqrt_kernels.h on
 * top of lib/qfmt/pack.h) against an independent bit-by-bit reader and against
 * ptq_dequant, bit-exact; the GEMV block dot against a double-precision sum
 * with a stated bound.  The GPU tests are tests/check_cuda.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"
#include "lib/cuda/ptqrt_kernels.h"

static uint64_t st = 88172645463325252ull;
static uint32_t rnd32(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (uint32_t)(st >> 16);
}

/* Independent reader: bit i of the block's stream is bit i%32 of word i/32. */
static uint32_t bit_reader(const uint32_t *blk, int j, int bits)
{
    uint32_t q = 0;
    for (int b = 0; b < bits; b++) {
        int i = j * bits + b;
        q |= ((blk[i / 32] >> (i % 32)) & 1u) << b;
    }
    return q;
}

START_TEST(block_codes_match_bit_reader)
{
    for (int bits = 2; bits <= 8; bits++) {
        for (int rep = 0; rep < 50; rep++) {
            uint32_t row[3 * 8] = {0}, want[96];
            for (int k = 0; k < 96; k++) {
                want[k] = rnd32() & ((1u << bits) - 1u);
                ptq_pack_set(row, k, bits, want[k]);
            }
            for (int blk = 0; blk < 3; blk++) {
                uint32_t q[32];
                ptq_pack_block_codes(row + blk * bits, bits, q);
                for (int j = 0; j < 32; j++) {
                    int k = blk * 32 + j;
                    ck_assert_uint_eq(q[j], want[k]);
                    ck_assert_uint_eq(ptq_pack_get(row, k, bits), want[k]);
                    ck_assert_uint_eq(ptq_pack_get(row + blk * bits, j, bits), want[k]);
                    ck_assert_uint_eq(bit_reader(row + blk * bits, j, bits), want[k]);
                }
            }
        }
    }
}
END_TEST

START_TEST(code_minus_zero_is_exact)
{
    for (uint32_t z = 0; z < 256; z++)
        for (uint32_t q = 0; q < 256; q++)
            ck_assert_float_eq(ptqk_int_qz(q, ptqk_int_zf(z)), (float)((int)q - (int)z));
}
END_TEST

START_TEST(weight_equals_dequant_bitwise)
{
    /* every fp16 scale bit pattern that is finite, with a spread of codes */
    for (uint32_t s = 0; s < 0x10000u; s++) {
        if ((s & 0x7c00u) == 0x7c00u) continue;
        uint32_t q = rnd32() & 255u, z = rnd32() & 255u;
        float a = ptqk_int_weight(q, ptq_f16_to_f32((uint16_t)s), ptqk_int_zf(z));
        float b = ptq_dequant((uint16_t)s, z, q);
        ck_assert_uint_eq(ptq_f32_to_bits(a), ptq_f32_to_bits(b));
    }
}
END_TEST

START_TEST(block_dot_within_bound)
{
    /* sum of 32 fma'd terms from 0: |error| <= 32 u sum|terms| (u = 2^-24) */
    for (int bits = 2; bits <= 8; bits++)
        for (int rep = 0; rep < 200; rep++) {
            uint32_t blk[8] = {0};
            float x[32];
            uint32_t z = rnd32() & ((1u << bits) - 1u);
            for (int j = 0; j < 32; j++) {
                ptq_pack_set(blk, j, bits, rnd32() & ((1u << bits) - 1u));
                x[j] = ptq_f16_to_f32(ptq_f32_to_f16(((float)(rnd32() % 20001u) - 10000.0f) / 997.0f));
            }
            double ref = 0, mag = 0;
            for (int j = 0; j < 32; j++) {
                double t = ((double)bit_reader(blk, j, bits) - (double)z) * x[j];
                ref += t;
                mag += fabs(t);
            }
            float got = ptqk_int_block_dot(blk, bits, ptqk_int_zf(z), x);
            ck_assert_msg(fabs(got - ref) <= 32.0 * ldexp(1.0, -24) * mag,
                          "bits %d: block dot %.9g vs %.9g", bits, (double)got, ref);
        }
}
END_TEST

START_TEST(group_helpers)
{
    int32_t g[4] = {3, 0, 2, 1};
    ck_assert_int_eq(ptqk_int_group(g, 128, 2), 2);
    ck_assert_int_eq(ptqk_int_group(NULL, 128, 300), 2);
    ck_assert_int_eq(ptqk_int_group(NULL, 0, 300), 0);
    ck_assert_int_eq(ptqk_int_block_uniform(NULL, 128), 1);
    ck_assert_int_eq(ptqk_int_block_uniform(NULL, 0), 1);
    ck_assert_int_eq(ptqk_int_block_uniform(NULL, 48), 0);
    ck_assert_int_eq(ptqk_int_block_uniform(g, 128), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda-decode");
    TCase *tc = tcase_create("shared decode (CPU)");
    tcase_add_test(tc, block_codes_match_bit_reader);
    tcase_add_test(tc, code_minus_zero_is_exact);
    tcase_add_test(tc, weight_equals_dequant_bitwise);
    tcase_add_test(tc, block_dot_within_bound);
    tcase_add_test(tc, group_helpers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
