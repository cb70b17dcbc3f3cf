/* half_rows.c - arrays of binary16 <-> float32 (half_rows.h). */
#include "lib/base/half_rows.h"

#include "lib/base/half.h"

static void widen_ref(const uint16_t *h, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = ptq_f16_to_f32(h[i]);
}

static void narrow_ref(const float *x, uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) h[i] = ptq_f32_to_f16(x[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HALF_F16C __attribute__((target("avx,f16c")))

HALF_F16C static void widen_f16c(const uint16_t *h, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    widen_ref(h + i, x + i, n - i);
}

HALF_F16C static void narrow_f16c(const float *x, uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    narrow_ref(x + i, h + i, n - i);
}

static int have_f16c(void)
{
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
#endif

void ptq_f16_to_f32_n(const uint16_t *h, float *x, size_t n, int simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd && have_f16c()) {
        widen_f16c(h, x, n);
        return;
    }
#endif
    (void)simd;
    widen_ref(h, x, n);
}

void ptq_f32_to_f16_n(const float *x, uint16_t *h, size_t n, int simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd && have_f16c()) {
        narrow_f16c(x, h, n);
        return;
    }
#endif
    (void)simd;
    narrow_ref(x, h, n);
}
