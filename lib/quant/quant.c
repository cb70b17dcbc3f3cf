/* quant.c - the uniform grid of lib/quant/quant.h (GPTQ's reference quantizer).
 *
 * Everything is float32 like the reference, with two additions the bundle
 * needs: the scale is rounded to fp16 before the zero point and the codes are
 * computed from it, and that fp16 scale is kept > 0 and finite:
 *   - a scale below the smallest positive normal fp16 (2^-14, also the case
 *     of a group of tiny weights) is raised to 2^-14, so no group decodes
 *     through a subnormal or zero scale;
 *   - a scale that does not fit fp16 (range > 65504 * maxq) is stored as
 *     +Inf (0x7c00); ptq_quant_grid_ok() is false and the quantizers reject
 *     the weights with PTQ_EDATA.
 */
#include "lib/quant/quant.h"

#include <math.h>
#include <string.h>

#include "lib/base/half.h"

#define PTQ_F16_MIN_NORMAL 0x0400u /* 2^-14 */
#define PTQ_F16_INF 0x7c00u

#define MSE_GRID 100
#define MSE_MAXSHRINK 0.8f
#define MSE_NORM 2.4f
#define GRID_BATCH 4 /* candidates judged together, against the best before them */

/* The grid of the range [xmin, xmax] (xmin <= 0 <= xmax, not both 0). */
static void grid_of(float xmin, float xmax, int maxq, int sym, ptq_qgrid *g)
{
    float scale = (xmax - xmin) / (float)maxq;
    uint16_t h = ptq_f32_to_f16(scale);
    if (!(scale < INFINITY) || h >= PTQ_F16_INF) h = PTQ_F16_INF;
    else if (h < PTQ_F16_MIN_NORMAL) h = PTQ_F16_MIN_NORMAL;
    g->scale_f16 = h;
    g->scale = ptq_f16_to_f32(h);
    g->maxq = maxq;
    if (sym) {
        g->zero = (uint8_t)((maxq + 1) / 2);
    } else {
        float z = __builtin_nearbyintf(-xmin / g->scale);
        if (!(z >= 0.0f)) z = 0.0f; /* also an Inf scale: -xmin/Inf = 0 */
        if (z > (float)maxq) z = (float)maxq;
        g->zero = (uint8_t)z;
    }
}

/* The search's objective, sum |w' - w|^2.4 over the group, without libm's
 * powf (which took 60 % of a SmolLM2 GPTQ compile): |d|^2.4 as
 * 2^(2.4 log2 |d|) in float32 (2.4 e = 12 k + 2.4 j for the exponent
 * e = 5 k + j, so only |2.4 (j + log2 m)| < 11 is rounded), log2 of the mantissa in [sqrt(1/2), sqrt(2))
 * by the atanh series to t^9 (|t| <= 0.172), 2^f for |f| <= 1/2 by Taylor to
 * f^7; relative error about 2e-6 against powf, far below what separates two
 * clipping candidates.  The AVX2 loop computes each element with the same
 * float operations in the same order (no FMA: fp-contract off in both), the
 * sum runs over the elements in order in float64, so the search picks the
 * same grid on every x86-64 CPU, with or without AVX2. */
#define POW_SQRT2 1.41421356f
#define POW_C1 2.88539008f  /* 2 / ln 2 ... 2 / (9 ln 2): log2 m = t (C1 + t^2 (C3 + ...)) */
#define POW_C3 0.961796694f
#define POW_C5 0.577078016f
#define POW_C7 0.412198583f
#define POW_C9 0.320598898f
#define POW_A1 0.693147181f /* ln2^k / k! */
#define POW_A2 0.240226507f
#define POW_A3 0.0555041087f
#define POW_A4 0.00961812911f
#define POW_A5 0.00133335581f
#define POW_A6 0.000154035304f
#define POW_A7 1.52527339e-05f
#define POW_ROUND 12582912.0f /* 1.5 * 2^23: (y + R) - R rounds y to an integer, ties to even */

__attribute__((optimize("fp-contract=off"))) float ptq_pow24(float d)
{
    if (!(d >= 0x1p-126f)) return 0.0f; /* 0 (and subnormals: 2.4 log2 d < -302) */
    if (!(d < 1e15f)) return INFINITY;
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    uint32_t mu = (u & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &mu, sizeof m);
    float e = (float)((int)(u >> 23) - 127);
    if (m > POW_SQRT2) m = m * 0.5f, e = e + 1.0f;
    float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
    float l = t * (POW_C1 + t2 * (POW_C3 + t2 * (POW_C5 + t2 * (POW_C7 + t2 * POW_C9))));
    /* 2.4 e = 12 k + 2.4 j, e = 5 k + j, j in 0..4: the integer part kept
     * out of the float sum, so its rounding does not grow with |e| */
    float k = floorf(e * 0.2f), j = e - 5.0f * k; /* = floor(e / 5) for every integer e here */
    float y = 2.4f * (j + l);
    float r = (y + POW_ROUND) - POW_ROUND;
    float f = y - r;
    r = r + 12.0f * k;
    float p = 1.0f + f * (POW_A1 + f * (POW_A2 + f * (POW_A3 + f * (POW_A4 + f * (POW_A5 +
              f * (POW_A6 + f * POW_A7))))));
    int ri = (int)r;
    if (ri < -126) return 0.0f;
    uint32_t pu = (uint32_t)(ri + 127) << 23;
    float two;
    memcpy(&two, &pu, sizeof two);
    return p * two;
}

/* |w' - w| of one weight (the AVX2 loop below computes the same in float:
 * (float)(q - zero) is exact for these small integers) */
static inline float grid_d(const ptq_qgrid *g, float x)
{
    return fabsf(ptq_quant_value(g, ptq_quant_code(g, x)) - x);
}

/* A candidate's sum is compared with the limit every GRID_CHECK elements:
 * the terms are >= 0, so a partial sum that has reached the limit can only
 * end at or above it, and the search (which keeps a candidate only when it
 * is below the best so far) would not keep it. */
#define GRID_CHECK 32

__attribute__((optimize("fp-contract=off"))) static double grid_err_ref(const float *w, int n,
                                                                       int stride,
                                                                       const ptq_qgrid *g,
                                                                       double limit)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        if (i % GRID_CHECK == 0 && i > 0 && s >= limit) break;
        s += (double)ptq_pow24(grid_d(g, w[(long)i * stride]));
    }
    return s;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GRID_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off")))

GRID_AVX2 static __m256 pow24_avx2(__m256 d)
{
    const __m256i one_bits = _mm256_set1_epi32(0x3f800000);
    __m256 ok = _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0x1p-126f), _CMP_GE_OQ),
                              _mm256_cmp_ps(d, _mm256_set1_ps(1e15f), _CMP_LT_OQ));
    __m256 big = _mm256_cmp_ps(d, _mm256_set1_ps(1e15f), _CMP_GE_OQ);
    __m256i u = _mm256_castps_si256(d);
    __m256 m = _mm256_castsi256_ps(
        _mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)), one_bits));
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(127)));
    __m256 hi = _mm256_cmp_ps(m, _mm256_set1_ps(POW_SQRT2), _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), hi);
    e = _mm256_blendv_ps(e, _mm256_add_ps(e, _mm256_set1_ps(1.0f)), hi);
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
    __m256 t2 = _mm256_mul_ps(t, t);
    __m256 l = _mm256_add_ps(_mm256_set1_ps(POW_C7), _mm256_mul_ps(t2, _mm256_set1_ps(POW_C9)));
    l = _mm256_add_ps(_mm256_set1_ps(POW_C5), _mm256_mul_ps(t2, l));
    l = _mm256_add_ps(_mm256_set1_ps(POW_C3), _mm256_mul_ps(t2, l));
    l = _mm256_add_ps(_mm256_set1_ps(POW_C1), _mm256_mul_ps(t2, l));
    l = _mm256_mul_ps(t, l);
    __m256 k = _mm256_floor_ps(_mm256_mul_ps(e, _mm256_set1_ps(0.2f)));
    __m256 j = _mm256_sub_ps(e, _mm256_mul_ps(_mm256_set1_ps(5.0f), k));
    __m256 y = _mm256_mul_ps(_mm256_set1_ps(2.4f), _mm256_add_ps(j, l));
    __m256 R = _mm256_set1_ps(POW_ROUND);
    __m256 r = _mm256_sub_ps(_mm256_add_ps(y, R), R);
    __m256 f = _mm256_sub_ps(y, r);
    r = _mm256_add_ps(r, _mm256_mul_ps(_mm256_set1_ps(12.0f), k));
    __m256 p = _mm256_add_ps(_mm256_set1_ps(POW_A6), _mm256_mul_ps(f, _mm256_set1_ps(POW_A7)));
    p = _mm256_add_ps(_mm256_set1_ps(POW_A5), _mm256_mul_ps(f, p));
    p = _mm256_add_ps(_mm256_set1_ps(POW_A4), _mm256_mul_ps(f, p));
    p = _mm256_add_ps(_mm256_set1_ps(POW_A3), _mm256_mul_ps(f, p));
    p = _mm256_add_ps(_mm256_set1_ps(POW_A2), _mm256_mul_ps(f, p));
    p = _mm256_add_ps(_mm256_set1_ps(POW_A1), _mm256_mul_ps(f, p));
    p = _mm256_add_ps(one, _mm256_mul_ps(f, p));
    __m256i ri = _mm256_cvtps_epi32(r); /* r is an integer already */
    __m256 under = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(-126), ri));
    __m256 two = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ri, _mm256_set1_epi32(127)), 23));
    __m256 res = _mm256_andnot_ps(under, _mm256_mul_ps(p, two));
    res = _mm256_and_ps(ok, res);
    return _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), big);
}

/* |w' - w| of 8 weights on grid g (the float operations of grid_d) */
GRID_AVX2 static __m256 grid_d_avx2(__m256 x, const ptq_qgrid *g)
{
    const __m256 sc = _mm256_set1_ps(g->scale), zf = _mm256_set1_ps((float)g->zero);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 q = _mm256_round_ps(_mm256_div_ps(x, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_add_ps(q, zf);
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), _mm256_set1_ps((float)g->maxq));
    return _mm256_and_ps(_mm256_sub_ps(_mm256_mul_ps(sc, _mm256_sub_ps(q, zf)), x), absm);
}

/* grid_err_ref of four grids at once: lane c of S is grid c's float64 sum,
 * its terms added in element order (the 4 x 8 terms of a step transposed
 * so that each add serves the four grids); a grid whose sum has reached
 * the limit at a check adds zeros from then on, so every lane ends with
 * the bits of grid_err_ref. */
GRID_AVX2 static void grid_errs4_avx2(const float *w, int n, const ptq_qgrid *g, double limit,
                                      double *errs)
{
    const __m256d lim = _mm256_set1_pd(limit);
    __m256d S = _mm256_setzero_pd();
    __m256d act = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        if (i % GRID_CHECK == 0 && i > 0) {
            act = _mm256_and_pd(act, _mm256_cmp_pd(S, lim, _CMP_LT_OQ));
            if (!_mm256_movemask_pd(act)) break;
        }
        __m256 x = _mm256_loadu_ps(w + i);
        __m256 p0 = pow24_avx2(grid_d_avx2(x, &g[0])), p1 = pow24_avx2(grid_d_avx2(x, &g[1]));
        __m256 p2 = pow24_avx2(grid_d_avx2(x, &g[2])), p3 = pow24_avx2(grid_d_avx2(x, &g[3]));
        __m256 t0 = _mm256_unpacklo_ps(p0, p1), t1 = _mm256_unpackhi_ps(p0, p1);
        __m256 t2 = _mm256_unpacklo_ps(p2, p3), t3 = _mm256_unpackhi_ps(p2, p3);
        __m256 v[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)};
        for (int k = 0; k < 4; k++) /* elements i .. i+3: v[k]'s low half */
            S = _mm256_add_pd(S, _mm256_and_pd(act, _mm256_cvtps_pd(_mm256_castps256_ps128(v[k]))));
        for (int k = 0; k < 4; k++) /* elements i+4 .. i+7 */
            S = _mm256_add_pd(S, _mm256_and_pd(act, _mm256_cvtps_pd(_mm256_extractf128_ps(v[k], 1))));
    }
    double s[4], a[4];
    _mm256_storeu_pd(s, S);
    _mm256_storeu_pd(a, act);
    for (int c = 0; c < 4; c++) {
        if (a[c] == 0.0) { /* mask bits all zero: stopped at a check */
            errs[c] = s[c];
            continue;
        }
        for (int k = i; k < n; k++) {
            if (k % GRID_CHECK == 0 && k > 0 && s[c] >= limit) break;
            s[c] += (double)ptq_pow24(grid_d(&g[c], w[k]));
        }
        errs[c] = s[c];
    }
}
#endif

void ptq_quant_grid_errs(const float *w, int n, int stride, const ptq_qgrid *g, int nc,
                         double limit, double *errs, int simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd && stride == 1 && __builtin_cpu_supports("avx2")) {
        for (int c0 = 0; c0 < nc; c0 += 4) {
            ptq_qgrid g4[4];
            double e4[4];
            for (int c = 0; c < 4; c++) g4[c] = g[c0 + c < nc ? c0 + c : nc - 1];
            grid_errs4_avx2(w, n, g4, limit, e4);
            for (int c = 0; c < 4 && c0 + c < nc; c++) errs[c0 + c] = e4[c];
        }
        return;
    }
#else
    (void)simd;
#endif
    for (int c = 0; c < nc; c++) errs[c] = grid_err_ref(w, n, stride, &g[c], limit);
}

double ptq_quant_grid_err(const float *w, int n, int stride, const ptq_qgrid *g, int simd)
{
    double err;
    ptq_quant_grid_errs(w, n, stride, g, 1, INFINITY, &err, simd);
    return err;
}

int ptq_quant_grid_ok(const ptq_qgrid *g)
{
    return g->scale_f16 >= PTQ_F16_MIN_NORMAL && g->scale_f16 < PTQ_F16_INF;
}

void ptq_quant_grid(const float *w, int n, int stride, const ptq_quant_opts *o, ptq_qgrid *g)
{
    int maxq = (1 << o->bits) - 1;
    float xmin = 0.0f, xmax = 0.0f;
    for (int i = 0; i < n; i++) {
        float x = w[(long)i * stride];
        if (x < xmin) xmin = x;
        if (x > xmax) xmax = x;
    }
    if (o->sym) { /* [-max|w|, max|w|] also for a group with no negative weight */
        if (-xmin > xmax) xmax = -xmin;
        xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) xmin = -1.0f, xmax = 1.0f;
    grid_of(xmin, xmax, maxq, o->sym, g);
    if (!o->mse || !ptq_quant_grid_ok(g)) return;
    /* clipping search: p = 1 - i/grid for i < maxshrink*grid; p = 1 is the
     * plain grid above, so the result is never worse on this objective */
    double best = INFINITY;
    int steps = (int)(MSE_MAXSHRINK * MSE_GRID);
    for (int i0 = 0; i0 < steps; i0 += GRID_BATCH) {
        ptq_qgrid cand[GRID_BATCH];
        double err[GRID_BATCH];
        int nc = steps - i0 < GRID_BATCH ? steps - i0 : GRID_BATCH;
        for (int c = 0; c < nc; c++) {
            float p = 1.0f - (float)(i0 + c) / (float)MSE_GRID;
            grid_of(p * xmin, p * xmax, maxq, o->sym, &cand[c]);
        }
        /* a candidate stopped at the best so far cannot become the best */
        ptq_quant_grid_errs(w, n, stride, cand, nc, best, err, 1);
        for (int c = 0; c < nc; c++)
            if (err[c] < best) {
                best = err[c];
                *g = cand[c];
            }
    }
}
