/* ggml.c - decode ggml block types to float32 (see ggml.h).
 *
 * Each decoder evaluates the published formula in the same float32 order as
 * ggml's reference dequantize_row_* (scale products first, then times the
 * integer code, then minus the min), so the results are bit-identical.
 */
#include "lib/qfmt/ggml.h"

#include "lib/base/half.h"

#include <math.h>
#include <string.h>

#define QK 32
#define QK_K 256

static const char *const type_names[PTQ_GGML_NTYPES] = {
    [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",    [6] = "Q5_0",
    [7] = "Q5_1",     [8] = "Q8_0",     [9] = "Q8_1",    [10] = "Q2_K",   [11] = "Q3_K",
    [12] = "Q4_K",    [13] = "Q5_K",    [14] = "Q6_K",   [15] = "Q8_K",   [16] = "IQ2_XXS",
    [17] = "IQ2_XS",  [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
    [22] = "IQ2_S",   [23] = "IQ4_XS",  [24] = "I8",     [25] = "I16",    [26] = "I32",
    [27] = "I64",     [28] = "F64",     [29] = "IQ1_M", [30] = "BF16",   [34] = "TQ1_0",
    [35] = "TQ2_0",   [39] = "MXFP4",
};

const char *ptq_ggml_type_name(uint32_t type)
{
    return type < PTQ_GGML_NTYPES ? type_names[type] : NULL;
}

int ptq_ggml_block(uint32_t type, int *values, int *bytes)
{
    int v, b;
    switch (type) {
    case PTQ_GGML_F32: v = 1, b = 4; break;
    case PTQ_GGML_F16: v = 1, b = 2; break;
    case PTQ_GGML_BF16: v = 1, b = 2; break;
    case PTQ_GGML_Q4_0: v = QK, b = 2 + QK / 2; break;
    case PTQ_GGML_Q4_1: v = QK, b = 4 + QK / 2; break;
    case PTQ_GGML_Q5_0: v = QK, b = 2 + 4 + QK / 2; break;
    case PTQ_GGML_Q5_1: v = QK, b = 4 + 4 + QK / 2; break;
    case PTQ_GGML_Q8_0: v = QK, b = 2 + QK; break;
    case PTQ_GGML_Q2_K: v = QK_K, b = QK_K / 16 + QK_K / 4 + 4; break;           /* 84 */
    case PTQ_GGML_Q3_K: v = QK_K, b = QK_K / 8 + QK_K / 4 + 12 + 2; break;       /* 110 */
    case PTQ_GGML_Q4_K: v = QK_K, b = 4 + 12 + QK_K / 2; break;                  /* 144 */
    case PTQ_GGML_Q5_K: v = QK_K, b = 4 + 12 + QK_K / 8 + QK_K / 2; break;       /* 176 */
    case PTQ_GGML_Q6_K: v = QK_K, b = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2; break; /* 210 */
    default: return 0;
    }
    *values = v;
    *bytes = b;
    return 1;
}

static float rd_half(const uint8_t *p) { return ptq_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q4_0, Q4_1, Q5_0, Q5_1: d [m] [qh] qs */
static void dec_q4q5(uint32_t type, const uint8_t *b, float *y)
{
    int has_m = type == PTQ_GGML_Q4_1 || type == PTQ_GGML_Q5_1;
    int five = type == PTQ_GGML_Q5_0 || type == PTQ_GGML_Q5_1;
    float d = rd_half(b), m = has_m ? rd_half(b + 2) : 0.0f;
    const uint8_t *p = b + (has_m ? 4 : 2);
    uint32_t qh = five ? rd_u32(p) : 0;
    const uint8_t *qs = p + (five ? 4 : 0);
    int off = five ? 16 : 8;
    for (int j = 0; j < QK / 2; j++) {
        int x0 = (qs[j] & 0x0f) | (int)(((qh >> j) << 4) & 0x10);
        int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
        if (has_m) {
            y[j] = (float)x0 * d + m;
            y[j + QK / 2] = (float)x1 * d + m;
        } else {
            y[j] = (float)(x0 - off) * d;
            y[j + QK / 2] = (float)(x1 - off) * d;
        }
    }
}

static void dec_q8_0(const uint8_t *b, float *y)
{
    float d = rd_half(b);
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin */
static void dec_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *q = b + 16;
    float d = rd_half(b + 80), dmin = rd_half(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                uint8_t s = sc[is++];
                float dl = d * (float)(s & 0x0f), ml = dmin * (float)(s >> 4);
                const uint8_t *qq = q + 16 * half;
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((qq[l] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

/* The 16 signed 6-bit scales of Q3_K from its 12 packed bytes: scale i has
 * its low 4 bits in byte i (i < 8, low nibble) or byte i - 8 (high nibble),
 * and its top 2 bits in byte 8 + i % 4 at bit position 2 * (i / 4). */
static void q3_k_scales(const uint8_t *p, int *out)
{
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? p[i] & 0x0f : p[i - 8] >> 4;
        int hi = (p[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (lo | hi << 4) - 32;
    }
}

/* Q3_K: hmask[32], qs[64], scales[12], d */
static void dec_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *q = b + 32;
    float d = rd_half(b + 108);
    int sc[16], is = 0;
    q3_k_scales(b + 96, sc);
    unsigned m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (int half = 0; half < 2; half++) {
                float dl = d * (float)sc[is++];
                const uint8_t *qq = q + 16 * half, *hh = hm + 16 * half;
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)(((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4));
            }
        }
        q += 32;
    }
}

/* The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K. */
static void k4_scale_min(int j, const uint8_t *q, int *d, int *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: d, dmin, scales[12], qs[128]; Q5_K: d, dmin, scales[12], qh[32], qs[128] */
static void dec_q45_k(int five, const uint8_t *b, float *y)
{
    float d = rd_half(b), dmin = rd_half(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 16 + (five ? 32 : 0);
    unsigned u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, u1 <<= 2, u2 <<= 2) {
        int s, mn;
        k4_scale_min(is, scales, &s, &mn);
        float d1 = d * (float)s, m1 = dmin * (float)mn;
        k4_scale_min(is + 1, scales, &s, &mn);
        float d2 = d * (float)s, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((ql[l] & 0x0f) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
    }
}

/* Q6_K: ql[128], qh[64], int8 scales[16], d */
static void dec_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_half(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void ptq_ggml_decode(uint32_t type, const void *src, size_t nblocks, float *dst)
{
    int nv, nb;
    if (!ptq_ggml_block(type, &nv, &nb)) return;
    const uint8_t *b = src;
    for (size_t i = 0; i < nblocks; i++, b += nb, dst += nv) {
        switch (type) {
        case PTQ_GGML_F32: memcpy(dst, b, 4); break;
        case PTQ_GGML_F16: *dst = rd_half(b); break;
        case PTQ_GGML_BF16: *dst = ptq_bf16_to_f32((uint16_t)(b[0] | b[1] << 8)); break;
        case PTQ_GGML_Q8_0: dec_q8_0(b, dst); break;
        case PTQ_GGML_Q2_K: dec_q2_k(b, dst); break;
        case PTQ_GGML_Q3_K: dec_q3_k(b, dst); break;
        case PTQ_GGML_Q4_K: dec_q45_k(0, b, dst); break;
        case PTQ_GGML_Q5_K: dec_q45_k(1, b, dst); break;
        case PTQ_GGML_Q6_K: dec_q6_k(b, dst); break;
        default: dec_q4q5(type, b, dst); break;
        }
    }
}

/* ---------------------------------------------------------------- encoding */

static void wr_half(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

void ptq_ggml_pack_block(uint32_t type, uint16_t d, uint16_t m, const int *v, uint8_t *dst)
{
    wr_half(dst, d);
    if (type == PTQ_GGML_Q8_0) {
        for (int j = 0; j < QK; j++) dst[2 + j] = (uint8_t)(int8_t)v[j];
        return;
    }
    int has_m = type == PTQ_GGML_Q4_1 || type == PTQ_GGML_Q5_1;
    int five = type == PTQ_GGML_Q5_0 || type == PTQ_GGML_Q5_1;
    if (has_m) wr_half(dst + 2, m);
    uint8_t *p = dst + (has_m ? 4 : 2);
    uint32_t qh = 0;
    for (int j = 0; j < QK; j++) qh |= (uint32_t)((v[j] >> 4) & 1) << j;
    if (five)
        for (int i = 0; i < 4; i++) *p++ = (uint8_t)(qh >> (8 * i));
    for (int j = 0; j < QK / 2; j++) p[j] = (uint8_t)((v[j] & 0x0f) | (v[j + QK / 2] & 0x0f) << 4);
}

/* ggml's quantize_row_q4_0_ref / q4_1_ref / q8_0_ref on one block. */
static void quant_block(uint32_t type, const float *x, uint8_t *dst)
{
    int v[QK];
    float amax = 0.0f, max = 0.0f, mn = x[0], mx = x[0];
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
    }
    float d, id;
    uint16_t m = 0;
    if (type == PTQ_GGML_Q4_0) {
        d = max / -8.0f;
        id = d ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK; j++) {
            int q = (int)(x[j] * id + 8.5f);
            v[j] = q > 15 ? 15 : q;
        }
    } else if (type == PTQ_GGML_Q4_1) {
        d = (mx - mn) / 15.0f;
        id = d ? 1.0f / d : 0.0f;
        m = ptq_f32_to_f16(mn);
        for (int j = 0; j < QK; j++) {
            int q = (int)((x[j] - mn) * id + 0.5f);
            v[j] = q > 15 ? 15 : q;
        }
    } else {
        d = amax / 127.0f;
        id = d ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK; j++) v[j] = (int)roundf(x[j] * id);
    }
    ptq_ggml_pack_block(type, ptq_f32_to_f16(d), m, v, dst);
}

int ptq_ggml_quantize(uint32_t type, const float *x, size_t n, void *dst)
{
    uint8_t *o = dst;
    int nv, nb;
    switch (type) {
    case PTQ_GGML_F32: memcpy(dst, x, n * 4); return 1;
    case PTQ_GGML_F16:
        for (size_t i = 0; i < n; i++) wr_half(o + 2 * i, ptq_f32_to_f16(x[i]));
        return 1;
    case PTQ_GGML_Q4_0: case PTQ_GGML_Q4_1: case PTQ_GGML_Q8_0:
        ptq_ggml_block(type, &nv, &nb);
        for (size_t i = 0; i < n / QK; i++) quant_block(type, x + i * QK, o + i * (size_t)nb);
        return 1;
    default: return 0;
    }
}
