/* fp8.h - FP8 E4M3 (OCP 8-bit floating point "E4M3", NVIDIA's E4M3FN)
 * <-> float32, exact, header-only and usable from CUDA (PTQ_HD).
 *
 * Code bits S.EEEE.MMM, exponent bias 7, no infinities:
 *   E = 0:            (-1)^S * 2^-6 * M/8          (subnormals, 0 and -0)
 *   E = 1..15:        (-1)^S * 2^(E-7) * (1 + M/8)
 *   S.1111.111:       NaN (0x7f, 0xff); the largest finite magnitude is
 *                     S.1111.110 = 448.
 * float32 -> E4M3 rounds to nearest, ties to even, and saturates: every
 * magnitude above 448 (Inf too) becomes +-448, as the SATFINITE conversion of
 * CUDA's __nv_cvt_float_to_fp8 does; NaN becomes NaN (0x7f with the sign).
 * Every E4M3 value is exact in float32 (and a product of two is exact too).
 */
#ifndef PTQC_FP8_H
#define PTQC_FP8_H

#include <math.h>
#include <stdint.h>

#include "lib/base/half.h"

#define PTQ_E4M3_MAX 448.0f

PTQ_HD float ptq_e4m3_to_f32(uint8_t c)
{
    uint32_t e = (c >> 3) & 15u, m = c & 7u;
    float v;
    if (e == 15u && m == 7u) return ptq_bits_to_f32(0x7fc00000u | ((uint32_t)(c & 0x80u) << 24));
    if (e == 0u) v = (float)m * 0.001953125f; /* m * 2^-9 */
    else v = (float)(8u + m) * ptq_bits_to_f32((e - 10u + 127u) << 23); /* (8+m) 2^(e-10) */
    return (c & 0x80u) ? -v : v;
}

PTQ_HD uint8_t ptq_f32_to_e4m3(float f)
{
    uint32_t u = ptq_f32_to_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t au = u & 0x7fffffffu;
    if (au > 0x7f800000u) return (uint8_t)(sign | 0x7fu); /* NaN */
    float a = ptq_bits_to_f32(au);
    if (a >= PTQ_E4M3_MAX) return (uint8_t)(sign | 0x7eu); /* saturate (Inf too) */
    if (a < 0.015625f) {                                  /* below 2^-6: subnormal grid 2^-9 */
        float q = rintf(a * 512.0f);                      /* exact scaling; ties to even */
        return (uint8_t)(sign | (uint8_t)q);              /* q = 8 is the smallest normal */
    }
    int E = (int)(au >> 23) - 127; /* -6..8 */
    /* a * 2^(3-E) lies in [8, 16): its rounding is 8 + mantissa */
    float q = rintf(a * ptq_bits_to_f32((uint32_t)(127 + 3 - E) << 23));
    uint32_t code = ((uint32_t)(E + 7) << 3) + ((uint32_t)q - 8u); /* q = 16 carries into E */
    if (code > 0x7eu) code = 0x7eu; /* 448 < a < 464 rounds down anyway; kept for safety */
    return (uint8_t)(sign | code);
}

#endif
