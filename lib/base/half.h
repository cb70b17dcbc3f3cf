/* half.h - IEEE binary16 and bfloat16 <-> float32, exact and branch-light.
 *
 * Header-only and usable from CUDA (__host__ __device__) so the CPU reference
 * runtime and the GPU kernels decode the same bits the same way.
 * f32 -> f16/bf16 rounds to nearest even; NaN stays NaN; overflow gives Inf.
 */
#ifndef PTQC_HALF_H
#define PTQC_HALF_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define PTQ_HD __host__ __device__ __forceinline__
#else
#define PTQ_HD static inline
#endif

PTQ_HD float ptq_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
PTQ_HD uint32_t ptq_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

PTQ_HD float ptq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float f = (float)man * 5.9604644775390625e-8f;
            u = ptq_f32_to_bits(f) | sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    return ptq_bits_to_f32(u);
}

PTQ_HD uint16_t ptq_f32_to_f16(float f)
{
    uint32_t u = ptq_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) { /* below the smallest normal 2^-14: subnormal or zero */
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to zero */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* round to nearest even on bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

PTQ_HD float ptq_bf16_to_f32(uint16_t h) { return ptq_bits_to_f32((uint32_t)h << 16); }

PTQ_HD uint16_t ptq_f32_to_bf16(float f)
{
    uint32_t u = ptq_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
