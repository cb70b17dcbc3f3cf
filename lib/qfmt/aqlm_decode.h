/* aqlm_decode.h - the decode arithmetic of the "aqlm" format (qf_aqlm.c),
 * shared by the CPU decode (ptq_qf_aqlm_decode), the CUDA kernels
 * (lib/cuda/aqlm.cu) and their CPU reference (lib/cuda/ref/aqlm_ref.c).
 * Header-only: static inline in C, __host__ __device__ under nvcc (PTQ_HD,
 * lib/base/half.h), so one set of float operations decides every bit.
 *
 * One group of 8 weights of row r, group g (M codebooks of 2^B codewords):
 *     y[i] = ((0 + v_0[i]) + v_1[i]) + ... + v_{M-1}[i]   (float32, m ascending)
 *     w[i] = scale[r] * y[i]                               (one float multiply)
 * with v_m = codebook[m][code(r, g, m)] widened from fp16 (exact), code(r,g,m)
 * = codes[(r * cols/8 + g) * M + m], uint8 when B <= 8 else uint16.  The
 * codebook can be given as stored (fp16) or already widened to float32: the
 * widening is exact, so both give the same bits (tests/check_aqlm_decode.c).
 * The GEMV kernels use y (the unscaled sum) and multiply the row's dot
 * product by the scale once, as qf_aqlm.c's gemv does.
 */
#ifndef PTQC_AQLM_DECODE_H
#define PTQC_AQLM_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/half.h"
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#define PTQ_AQ_D 8 /* inputs per group */

/* fp16 bits -> float, exact (the hardware conversion on the device). */
PTQ_HD float ptq_aq_widen(uint16_t h)
{
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    return ptq_f16_to_f32(h);
#endif
}

/* Code m of group i0 / M (i0 = (r * G + g) * M): uint8 when b <= 8, else uint16. */
PTQ_HD unsigned ptq_aq_code(const void *codes, int b, size_t i)
{
    return b > 8 ? ((const uint16_t *)codes)[i] : ((const uint8_t *)codes)[i];
}

/* y[i] += v[i] for one fp16 codeword v[8]. */
PTQ_HD void ptq_aq_add_f16(float *y, const uint16_t *v)
{
    for (int i = 0; i < PTQ_AQ_D; i++) y[i] += ptq_aq_widen(v[i]);
}

/* y[i] += v[i] for one codeword already widened to float32. */
PTQ_HD void ptq_aq_add_f32(float *y, const float *v)
{
    for (int i = 0; i < PTQ_AQ_D; i++) y[i] += v[i];
}

/* y = the unscaled sum of the M codewords of the group whose first code is
 * codes[i0]; cb = fp16 codebooks [M][2^b][8]. */
PTQ_HD void ptq_aq_group_sum_f16(const uint16_t *cb, int b, int M, const void *codes, size_t i0,
                                 float *y)
{
    for (int i = 0; i < PTQ_AQ_D; i++) y[i] = 0.0f;
    for (int m = 0; m < M; m++)
        ptq_aq_add_f16(y, cb + ((((size_t)m << b) + ptq_aq_code(codes, b, i0 + m)) * PTQ_AQ_D));
}

/* The same with the codebooks widened to float32 [M][2^b][8]. */
PTQ_HD void ptq_aq_group_sum_f32(const float *cb, int b, int M, const void *codes, size_t i0,
                                 float *y)
{
    for (int i = 0; i < PTQ_AQ_D; i++) y[i] = 0.0f;
    for (int m = 0; m < M; m++)
        ptq_aq_add_f32(y, cb + ((((size_t)m << b) + ptq_aq_code(codes, b, i0 + m)) * PTQ_AQ_D));
}

/* w[i] = s * y[i]: the group's 8 weights. */
PTQ_HD void ptq_aq_scale(float s, const float *y, float *w)
{
    for (int i = 0; i < PTQ_AQ_D; i++) w[i] = s * y[i];
}

/* The 8 weights of group g of row r straight from the stored arrays
 * (fp16 codebooks and scales), G = cols / 8. */
PTQ_HD void ptq_aq_group_f16(const uint16_t *cb, const uint16_t *scales, int b, int M,
                             const void *codes, int G, int r, int g, float *w)
{
    float y[PTQ_AQ_D];
    ptq_aq_group_sum_f16(cb, b, M, codes, ((size_t)r * G + g) * M, y);
    ptq_aq_scale(ptq_aq_widen(scales[r]), y, w);
}

#endif
