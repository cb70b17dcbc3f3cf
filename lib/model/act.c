/* act.c - exp, softmax and silu(gate) * up of the forward pass (act.h):
 * the portable reference of each, then its AVX2 and AVX-512 twins, which
 * perform the same float operations in the same order (so the same bits; no
 * FMA: all are compiled with fp-contract off).
 *
 * exp(x) = 2^n e^r with n = rint(x / ln2) and r = (x - n C1) - n C2, where
 * C1 + C2 = ln2 and C1 = 355/512 has 9 significant bits, so n C1 is exact for
 * |n| <= 128 (Cody and Waite's split).  e^r on |r| <= ln2/2 is Cephes expf's
 * polynomial 1 + r + r^2 P(r), P of degree 5 (its coefficients are Cephes');
 * 2^n is built in the exponent field.  The softmax's scores are <= 0 after
 * the max is taken off, silu's exp(-g) is used only through 1 / (1 + .),
 * so the range [ln FLT_MIN, 88] with 0 below and +inf above costs nothing
 * in either (exp(88) = 1.65e38 is within 8% of FLT_MAX).
 */
#include "lib/model/act.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define EXP_LO -87.3365448f   /* ln FLT_MIN: below it exp(x) is subnormal */
#define EXP_HI 88.0f          /* n <= 127 */
#define EXP_LOG2E 1.44269504f /* 1 / ln2 */
#define EXP_C1 0.693359375f   /* 355 / 512 */
#define EXP_C2 -2.12194440e-4f /* ln2 - C1 */
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f
#define EXP_ROUND 12582912.0f /* 1.5 * 2^23: (y + R) - R rounds y to an integer, ties to even */

#define ACT_REF __attribute__((optimize("fp-contract=off")))

ACT_REF float ptq_exp(float x)
{
    if (x != x) return x;
    if (x < EXP_LO) return 0.0f;
    if (x > EXP_HI) return INFINITY;
    float n = (x * EXP_LOG2E + EXP_ROUND) - EXP_ROUND;
    float r = (x - n * EXP_C1) - n * EXP_C2;
    float p = EXP_P0 * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = (p * (r * r) + r) + 1.0f;
    uint32_t bits = (uint32_t)((int)n + 127) << 23;
    float two;
    memcpy(&two, &bits, sizeof two);
    return p * two;
}

ACT_REF static void softmax_ref(float *s, int n)
{
    float mx = s[0];
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float acc[8] = {0};
    for (int j = 0; j < n; j++) {
        s[j] = ptq_exp(s[j] - mx);
        acc[j % 8] += s[j];
    }
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv;
}

ACT_REF static void silu_mul_ref(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + ptq_exp(-g[i])) * u[i];
}

/* sum of x^2 in four float64 lanes (x[i] into lane i mod 4, each square
 * exact in float64), the lanes added as (0+1)+(2+3) */
ACT_REF static void rmsnorm_ref(float *o, const float *x, const float *w, int D, float eps)
{
    double acc[4] = {0};
    for (int i = 0; i < D; i++) acc[i % 4] += (double)x[i] * x[i];
    double ss = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    float s = 1.0f / sqrtf((float)(ss / D) + eps);
    for (int i = 0; i < D; i++) o[i] = x[i] * s * w[i];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ACT_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off")))
#define HAVE_ACT_AVX2 1

/* ptq_exp of 8 lanes */
ACT_AVX2 static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(EXP_LO), hi = _mm256_set1_ps(EXP_HI);
    const __m256 R = _mm256_set1_ps(EXP_ROUND);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi); /* NaN lanes: lo, replaced below */
    __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(EXP_LOG2E)), R), R);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(EXP_C1))),
                             _mm256_mul_ps(n, _mm256_set1_ps(EXP_C2)));
    __m256 p = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(EXP_P0), r), _mm256_set1_ps(EXP_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P5));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_andnot_ps(under, y);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
    return _mm256_blendv_ps(y, x, nan);
}

/* max of s[0, n): eight lanes over the whole vectors, then the rest (the
 * AVX-512 softmax takes its max here too) */
ACT_AVX2 static inline float softmax_max(const float *s, int n)
{
    int j = 0;
    float mx = s[0];
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(s);
        for (j = 8; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
        float mb[8];
        _mm256_storeu_ps(mb, m);
        for (int k = 0; k < 8; k++) mx = mb[k] > mx ? mb[k] : mx;
    }
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    return mx;
}

/* exp of s[j, n) into the lanes a[] as the reference does, then 1 / sum */
ACT_REF static float softmax_tail_inv(float *s, int j, int n, float mx, float a[8])
{
    for (; j < n; j++) {
        s[j] = ptq_exp(s[j] - mx);
        a[j % 8] += s[j];
    }
    float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    return 1.0f / sum;
}

ACT_AVX2 static void softmax_avx2(float *s, int n)
{
    float mx = softmax_max(s, n);
    __m256 mv = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    int j;
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
        _mm256_storeu_ps(s + j, v);
        acc = _mm256_add_ps(acc, v);
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    float inv = softmax_tail_inv(s, j, n, mx, a);
    __m256 iv = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), iv));
    for (; j < n; j++) s[j] *= inv;
}

ACT_AVX2 static void silu_mul_avx2(float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 d = _mm256_add_ps(one, exp8(_mm256_xor_ps(x, neg)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_loadu_ps(u + i)));
    }
    silu_mul_ref(g + i, u + i, n - i);
}

ACT_AVX2 static void rmsnorm_avx2(float *o, const float *x, const float *w, int D, float eps)
{
    __m256d acc = _mm256_setzero_pd();
    int i = 0;
    for (; i + 4 <= D; i += 4) {
        __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        acc = _mm256_add_pd(acc, _mm256_mul_pd(v, v));
    }
    double a[4];
    _mm256_storeu_pd(a, acc);
    for (; i < D; i++) a[i % 4] += (double)x[i] * x[i];
    double ss = (a[0] + a[1]) + (a[2] + a[3]);
    float s = 1.0f / sqrtf((float)(ss / D) + eps);
    __m256 sv = _mm256_set1_ps(s);
    for (i = 0; i + 8 <= D; i += 8)
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv),
                                              _mm256_loadu_ps(w + i)));
    for (; i < D; i++) o[i] = x[i] * s * w[i];
}

/* ---- AVX-512 twins: exp of 16 lanes with exp8's operations; the softmax
 * adds each 16-lane step into the same eight lanes as exp8's loop (its low
 * half, then its high half), so the sum, and everything, has the same bits. */
#define ACT_AVX512 __attribute__((target("avx512f"), optimize("fp-contract=off")))

ACT_AVX512 static inline __m512 exp16(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(EXP_LO), hi = _mm512_set1_ps(EXP_HI);
    const __m512 R = _mm512_set1_ps(EXP_ROUND);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(EXP_LOG2E)), R), R);
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(EXP_C1))),
                             _mm512_mul_ps(n, _mm512_set1_ps(EXP_C2)));
    __m512 p = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(EXP_P0), r), _mm512_set1_ps(EXP_P1));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_P2));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_P3));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_P4));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_P5));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    y = _mm512_maskz_mov_ps((__mmask16)~under, y);
    y = _mm512_mask_mov_ps(y, over, _mm512_set1_ps(INFINITY));
    return _mm512_mask_mov_ps(y, nan, x);
}

ACT_AVX512 static inline __m256 hi8(__m512 v)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

ACT_AVX512 static void softmax_avx512(float *s, int n)
{
    float mx = softmax_max(s, n);
    __m512 mv = _mm512_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    int j;
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
        _mm512_storeu_ps(s + j, v);
        acc = _mm256_add_ps(acc, _mm512_castps512_ps256(v));
        acc = _mm256_add_ps(acc, hi8(v));
    }
    if (j + 8 <= n) {
        __m256 v = _mm512_castps512_ps256(
            exp16(_mm512_sub_ps(_mm512_zextps256_ps512(_mm256_loadu_ps(s + j)), mv)));
        _mm256_storeu_ps(s + j, v);
        acc = _mm256_add_ps(acc, v);
        j += 8;
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    float inv = softmax_tail_inv(s, j, n, mx, a);
    __m512 iv = _mm512_set1_ps(inv);
    for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), iv));
    for (; j < n; j++) s[j] *= inv;
}

ACT_AVX512 static void silu_mul_avx512(float *g, const float *u, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512 nx = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), sign));
        __m512 d = _mm512_add_ps(one, exp16(nx));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, d), _mm512_loadu_ps(u + i)));
    }
    silu_mul_ref(g + i, u + i, n - i);
}

/* The twin a simd level runs on this CPU: 0 none (the reference). */
static int act_level(int simd)
{
    if (simd >= PTQ_ACT_BEST && __builtin_cpu_supports("avx512f")) return PTQ_ACT_BEST;
    if (simd >= PTQ_ACT_AVX2 && __builtin_cpu_supports("avx2")) return PTQ_ACT_AVX2;
    return PTQ_ACT_REF;
}
#else
#define HAVE_ACT_AVX2 0
#endif

void ptq_softmax(float *s, int n, int simd)
{
#if HAVE_ACT_AVX2
    int l = act_level(simd);
    if (l == PTQ_ACT_BEST) {
        softmax_avx512(s, n);
        return;
    }
    if (l == PTQ_ACT_AVX2) {
        softmax_avx2(s, n);
        return;
    }
#endif
    (void)simd;
    softmax_ref(s, n);
}

void ptq_rmsnorm_row(float *o, const float *x, const float *w, int D, float eps, int simd)
{
#if HAVE_ACT_AVX2
    if (act_level(simd) >= PTQ_ACT_AVX2) {
        rmsnorm_avx2(o, x, w, D, eps);
        return;
    }
#endif
    (void)simd;
    rmsnorm_ref(o, x, w, D, eps);
}

void ptq_silu_mul(float *g, const float *u, size_t n, int simd)
{
#if HAVE_ACT_AVX2
    int l = act_level(simd);
    if (l == PTQ_ACT_BEST) {
        silu_mul_avx512(g, u, n);
        return;
    }
    if (l == PTQ_ACT_AVX2) {
        silu_mul_avx2(g, u, n);
        return;
    }
#endif
    (void)simd;
    silu_mul_ref(g, u, n);
}
