/* check_cuda_decode.c - the CPU side of libptqrt, always run: the decode
 * arithmetic that the CUDA kernels share with the CPU (lib/cuda/ptqrt_kernels.h on
 * top of lib/qfmt/pack.h) against an independent bit-by-bit reader and against
 * ptq_dequant, bit-exact; the GEMV block dot against a double-precision sum
 * with a stated bound; and the CPU references of the kernels
 * (lib/cuda/ref/) against independent computations (ptq_qtensor_dequant,
 * hand-derived values).  The GPU tests are tests/check_cuda.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/qtensor.h"

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

/* The int reference equals the library's reference decode (ptq_qtensor_dequant)
 * summed in double, with g_idx and without. */
START_TEST(ref_int_linear_matches_qtensor_dequant)
{
    enum { R = 5, C = 96, N = 2, G = 32 };
    for (int gi = 0; gi < 2; gi++) {
        static uint32_t qw[R * 3 * 4];
        static uint16_t sc[R * 3];
        static uint8_t zr[R * 3];
        static int32_t gidx[C];
        for (int r = 0; r < R; r++)
            for (int k = 0; k < C; k++) ptq_pack_set(qw + r * 3 * 4, k, 4, rnd32() & 15u);
        for (int i = 0; i < R * 3; i++) sc[i] = ptq_f32_to_f16((float)(rnd32() % 100 + 1) / 1024.0f), zr[i] = rnd32() & 15u;
        for (int k = 0; k < C; k++) gidx[k] = (int32_t)(rnd32() % 3u);
        ptq_qtensor q = {.format = PTQ_QF_INT, .rows = R, .cols = C, .bits = 4, .group = G, .ngroups = 3,
                         .qweight = qw, .scales = sc, .zeros = zr, .g_idx = gi ? gidx : NULL, .mapped = 1};
        float w[R * C];
        ptq_err e;
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        uint16_t x[N * C];
        for (int i = 0; i < N * C; i++) x[i] = ptq_f32_to_f16(((float)(rnd32() % 2001u) - 1000.0f) / 500.0f);
        ptqk_int_w iw = {R, C, 4, G, 3, qw, sc, zr, gi ? gidx : NULL};
        double y[N * R], a[N * R];
        ptqr_linear_int(&iw, 0, x, C, N, y, a);
        for (int t = 0; t < N; t++)
            for (int r = 0; r < R; r++) {
                double s = 0, m = 0;
                for (int k = 0; k < C; k++) {
                    double p = (double)w[r * C + k] * ptq_f16_to_f32(x[t * C + k]);
                    s += p, m += fabs(p);
                }
                ck_assert_double_eq_tol(y[t * R + r], s, 1e-12 * m + 1e-300);
                ck_assert_double_eq_tol(a[t * R + r], m, 1e-12 * m + 1e-300);
            }
    }
}
END_TEST

/* Values derived by hand: rmsnorm of (3, 4) with eps 0 is (3, 4) / sqrt(12.5);
 * swiglu(0) = 0 and silu(g) * 1 -> g / (1 + e^-g); RoPE at position 0 is the
 * identity and at angle pi/2 maps (a, b) to (-b, a); attention over one
 * position returns its value, over two equal keys the mean of the values. */
START_TEST(ref_layers_golden)
{
    float x[2] = {3.0f, 4.0f}, w[2] = {1.0f, 2.0f};
    double o[4];
    ptqr_rmsnorm(x, w, 2, 0.0f, 1, o);
    ck_assert_double_eq_tol(o[0], 3.0 / sqrt(12.5), 1e-15);
    ck_assert_double_eq_tol(o[1], 8.0 / sqrt(12.5), 1e-15);
    float g[2] = {0.0f, 2.0f}, u[2] = {5.0f, 1.0f};
    ptqr_swiglu(g, u, 2, o);
    ck_assert_double_eq_tol(o[0], 0.0, 1e-300);
    ck_assert_double_eq_tol(o[1], 2.0 / (1.0 + exp(-2.0)), 1e-15);
    float r[4] = {1.0f, 2.0f, 3.0f, 4.0f}, inv[2] = {1.0f, (float)(M_PI / 2)};
    ptqr_rope(r, 1, 4, inv, 1, 1, 0, o); /* position 0 */
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(o[i], r[i], 1e-15);
    float r2[8] = {1.0f, 2.0f, 3.0f, 4.0f, 1.0f, 2.0f, 3.0f, 4.0f};
    double o2[8];
    ptqr_rope(r2, 1, 4, inv, 1, 2, 0, o2); /* token 1: pair (2, 4) turned by the float angle pi/2 */
    double ang = (double)(float)(M_PI / 2);
    ck_assert_double_eq_tol(o2[5], 2.0 * cos(ang) - 4.0 * sin(ang), 1e-15);
    ck_assert_double_eq_tol(o2[7], 4.0 * cos(ang) + 2.0 * sin(ang), 1e-15);
    ck_assert_double_eq_tol(o2[7], 2.0, 1e-6);
    /* attention: B 1, T 2, 1 head of 2, S 2; equal keys -> token 1 averages v */
    float q[4] = {1.0f, 0.5f, 1.0f, 0.5f}, kc[4] = {0.3f, 0.7f, 0.3f, 0.7f}, vc[4] = {1.0f, 2.0f, 3.0f, 6.0f};
    ptqr_attention(q, kc, vc, 1, 1, 2, 1, 2, 0, 2, o);
    ck_assert_double_eq_tol(o[0], 1.0, 1e-15);
    ck_assert_double_eq_tol(o[1], 2.0, 1e-15);
    ck_assert_double_eq_tol(o[2], 2.0, 1e-15);
    ck_assert_double_eq_tol(o[3], 4.0, 1e-15);
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
    tcase_add_test(tc, ref_int_linear_matches_qtensor_dequant);
    tcase_add_test(tc, ref_layers_golden);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
