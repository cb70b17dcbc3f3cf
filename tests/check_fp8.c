/* check_fp8.c - E4M3 encode/decode (lib/base/fp8.h) against the format definition.
 *
 * The expected value of every code is computed here from the definition
 * (sign x 2^(e-7) x (1 + m/8), subnormals 2^-6 x m/8, S.1111.111 NaN) in
 * double with ldexp, independently of the code under test.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/base/fp8.h"
#include "tests/testutil.h"

static double defined_value(int c)
{
    int s = (c >> 7) & 1, e = (c >> 3) & 15, m = c & 7;
    if (e == 15 && m == 7) return NAN;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

START_TEST(decode_all_codes)
{
    int nan = 0;
    for (int c = 0; c < 256; c++) {
        double want = defined_value(c);
        float got = ptq_e4m3_to_f32((uint8_t)c);
        if (isnan(want)) {
            ck_assert_msg(isnan(got), "code 0x%02x should be NaN, got %g", c, (double)got);
            nan++;
            continue;
        }
        ck_assert_msg((double)got == want, "code 0x%02x: got %.9g, want %.9g", c, (double)got,
                      want);
        ck_assert_int_eq(signbit(got) != 0, (c & 0x80) != 0);
    }
    ck_assert_int_eq(nan, 2);
    ck_assert(ptq_e4m3_to_f32(0x7e) == 448.0f);
    ck_assert(ptq_e4m3_to_f32(0x01) == 0.001953125f);
    ck_assert(ptq_e4m3_to_f32(0x08) == 0.015625f);
}
END_TEST

START_TEST(round_trip_all_codes)
{
    for (int c = 0; c < 256; c++) {
        float v = ptq_e4m3_to_f32((uint8_t)c);
        uint8_t back = ptq_f32_to_e4m3(v);
        if (isnan(v)) ck_assert_msg((back & 0x7f) == 0x7f, "NaN code 0x%02x -> 0x%02x", c, back);
        else ck_assert_msg(back == c, "0x%02x -> %g -> 0x%02x", c, (double)v, back);
    }
    ck_assert_int_eq(ptq_f32_to_e4m3(NAN), 0x7f);
    ck_assert_int_eq(ptq_f32_to_e4m3(-NAN) & 0x7f, 0x7f);
}
END_TEST

/* Between two neighbouring codes: the midpoint goes to the even code, a hair
 * either side to the nearer one. */
START_TEST(midpoints_round_to_even)
{
    for (int c = 0; c < 0x7e; c++) {
        for (int s = 0; s < 2; s++) {
            int lo = c | (s << 7), hi = (c + 1) | (s << 7);
            double a = defined_value(lo), b = defined_value(hi);
            double mid = (a + b) / 2; /* exact in double, and in float (5 bits) */
            float fm = (float)mid;
            ck_assert((double)fm == mid);
            int even = (c & 1) ? hi : lo;
            ck_assert_msg(ptq_f32_to_e4m3(fm) == even, "mid of 0x%02x/0x%02x -> 0x%02x", lo, hi,
                          ptq_f32_to_e4m3(fm));
            float below = nextafterf(fm, (float)a), above = nextafterf(fm, (float)b);
            ck_assert_int_eq(ptq_f32_to_e4m3(below), lo);
            ck_assert_int_eq(ptq_f32_to_e4m3(above), hi);
        }
    }
}
END_TEST

START_TEST(saturation_and_tiny)
{
    ck_assert_int_eq(ptq_f32_to_e4m3(448.0f), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(449.0f), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(463.99f), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(464.0f), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(1e30f), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(INFINITY), 0x7e);
    ck_assert_int_eq(ptq_f32_to_e4m3(-INFINITY), 0xfe);
    ck_assert_int_eq(ptq_f32_to_e4m3(-1000.0f), 0xfe);
    /* half the smallest subnormal (2^-10) ties to 0; above it goes to 2^-9 */
    ck_assert_int_eq(ptq_f32_to_e4m3(0x1p-10f), 0x00);
    ck_assert_int_eq(ptq_f32_to_e4m3(nextafterf(0x1p-10f, 1.0f)), 0x01);
    ck_assert_int_eq(ptq_f32_to_e4m3(-0x1p-11f), 0x80);
    ck_assert_int_eq(ptq_f32_to_e4m3(0x1p-140f), 0x00); /* float subnormal */
    ck_assert_int_eq(ptq_f32_to_e4m3(-0.0f), 0x80);
    /* random values: the code is the nearest of all finite codes (ties to even) */
    uint64_t st = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        uint64_t x = tu_rng_next(&st);
        float f = ldexpf((float)(x & 0xffffff) / 16777216.0f, (int)((x >> 24) % 24) - 12);
        if (x >> 63) f = -f;
        int best = -1;
        double bd = INFINITY;
        for (int c = 0; c < 256; c++) {
            double v = defined_value(c);
            if (isnan(v) || (signbit(v) != 0) != (signbit(f) != 0)) continue;
            double d = fabs(v - (double)f);
            if (d < bd || (d == bd && !(c & 1))) bd = d, best = c;
        }
        if (fabsf(f) > 448.0f) best = f > 0 ? 0x7e : 0xfe;
        ck_assert_msg(ptq_f32_to_e4m3(f) == best, "%a -> 0x%02x, nearest 0x%02x", (double)f,
                      ptq_f32_to_e4m3(f), best);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fp8");
    TCase *tc = tcase_create("e4m3");
    tcase_add_test(tc, decode_all_codes);
    tcase_add_test(tc, round_trip_all_codes);
    tcase_add_test(tc, midpoints_round_to_even);
    tcase_add_test(tc, saturation_and_tiny);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
