/* e8p_decode.h - the E8P decode arithmetic of the CUDA kernels
 * (lib/cuda/e8p.cu), shared with the CPU so that tests/check_e8p_decode
 * holds it bit for bit equal to ptq_e8p_decode (lib/qfmt/e8p.h) on all
 * 65536 codes.  Plain C on stdint, static inline; __host__ __device__ under
 * nvcc.
 *
 * ptq_e8p_decode computes, for code c with source a = tab[c >> 8] and byte
 * b = c & 255 (parity p):  out_i = (sign bit i of b ^ p ? -v_i : v_i) +- 1/4
 * with v_i = (nibble_i(a) - 8) / 2.  The kernels split that into two
 * 256-entry tables built once per thread block in shared memory,
 *     src[k][i]  = v_i of source k                      (float)
 *     mask[b][i] = 0x80000000 when coordinate i flips   (the float sign bit)
 * and per code: out_i = bits(src[c >> 8][i]) ^ mask[c & 255][i], then + shift
 * (+1/4 for even b, -1/4 for odd).  Flipping the sign bit is exact negation
 * and the sum is the same float addition as ptq_e8p_decode's, so the values
 * are the same bits (all are multiples of 1/4 below 4 in magnitude: exact).
 *
 * The 1-bit residual book of 3-bit QuIP# (e8p.h: ptq_e81b_tab, nibble i
 * holds 2 v_i + 8, no signs or shift) decodes with ptq_e8pd_src alone.
 */
#ifndef PTQC_QFMT_E8P_DECODE_H
#define PTQC_QFMT_E8P_DECODE_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define PTQ_E8PD_FN static inline __host__ __device__
#else
#define PTQ_E8PD_FN static inline
#endif

/* Parity of the low 8 bits of b. */
PTQ_E8PD_FN unsigned ptq_e8pd_parity(unsigned b)
{
    b &= 255u;
    b ^= b >> 4;
    b ^= b >> 2;
    b ^= b >> 1;
    return b & 1u;
}

/* The 8 values v_i = (nibble_i(a) - 8) / 2 of a table entry (the E8P
 * source, or a 1-bit codeword): src[k] of the shared-memory table. */
PTQ_E8PD_FN void ptq_e8pd_src(uint32_t a, float v[8])
{
    for (int i = 0; i < 8; i++) v[i] = (float)((int)((a >> (4 * i)) & 15u) - 8) * 0.5f;
}

/* The sign words of byte b: m[i] = 0x80000000 when coordinate i flips (bit
 * i of b ^ parity(b)), else 0: mask[b] of the shared-memory table. */
PTQ_E8PD_FN void ptq_e8pd_mask(unsigned b, uint32_t m[8])
{
    unsigned s = (b ^ ptq_e8pd_parity(b)) & 255u;
    for (int i = 0; i < 8; i++) m[i] = ((s >> i) & 1u) << 31;
}

/* The shift of byte b: +1/4 (even parity) or -1/4 (odd). */
PTQ_E8PD_FN float ptq_e8pd_shift(unsigned b) { return ptq_e8pd_parity(b) ? -0.25f : 0.25f; }

/* One value from the table entries: bits(v) ^ m, then + shift. */
PTQ_E8PD_FN float ptq_e8pd_value(float v, uint32_t m, float shift)
{
    uint32_t u;
    float f;
    memcpy(&u, &v, 4);
    u ^= m;
    memcpy(&f, &u, 4);
    return f + shift;
}

/* Code c's 8 values through the split tables, built from the 256-entry
 * source table tab (ptq_e8p_tab) on the fly: what the kernel computes. */
PTQ_E8PD_FN void ptq_e8pd_decode(const uint32_t *tab, uint16_t c, float out[8])
{
    float v[8];
    uint32_t m[8];
    unsigned b = c & 255u;
    ptq_e8pd_src(tab[c >> 8], v);
    ptq_e8pd_mask(b, m);
    float sh = ptq_e8pd_shift(b);
    for (int i = 0; i < 8; i++) out[i] = ptq_e8pd_value(v[i], m[i], sh);
}

#endif
