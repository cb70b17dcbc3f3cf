/* ggml.h - ggml's tensor element types (the numbering of GGUF files) and
 * their decode to float32, exactly as ggml's dequantize_row_* computes it.
 *
 * Block layouts (all little endian; "half" is IEEE binary16):
 *   Q4_0  32 values: half d, 16 bytes of nibbles          x = (q - 8) d
 *   Q4_1  32: half d, half m, 16 bytes                    x = q d + m
 *   Q5_0  32: half d, 4 bytes high bits, 16 bytes         x = (q - 16) d
 *   Q5_1  32: half d, half m, 4 bytes high bits, 16 bytes x = q d + m
 *   Q8_0  32: half d, 32 int8                             x = q d
 *   (value j < 16 of a 32-block is the low nibble of byte j, value j + 16 the
 *   high nibble; the fifth bit of value i is bit i of the 32-bit high word)
 *   Q2_K..Q6_K: super-blocks of 256 with 16 or 8 sub-block scales (6-bit
 *   packed for Q3_K/Q4_K/Q5_K, 4-bit for Q2_K, int8 for Q6_K), see ggml.c.
 * Self-contained: depends on lib/base/half.h only.
 */
#ifndef PTQC_GGML_H
#define PTQC_GGML_H

#include <stddef.h>
#include <stdint.h>

enum ptq_ggml_type {
    PTQ_GGML_F32 = 0,
    PTQ_GGML_F16 = 1,
    PTQ_GGML_Q4_0 = 2,
    PTQ_GGML_Q4_1 = 3,
    PTQ_GGML_Q5_0 = 6,
    PTQ_GGML_Q5_1 = 7,
    PTQ_GGML_Q8_0 = 8,
    PTQ_GGML_Q8_1 = 9,
    PTQ_GGML_Q2_K = 10,
    PTQ_GGML_Q3_K = 11,
    PTQ_GGML_Q4_K = 12,
    PTQ_GGML_Q5_K = 13,
    PTQ_GGML_Q6_K = 14,
    PTQ_GGML_Q8_K = 15,
    PTQ_GGML_BF16 = 30,
    PTQ_GGML_NTYPES = 40 /* type ids at or above this are unknown */
};

/* Name of a ggml type id ("Q4_K", "IQ2_XXS", ...); NULL for an id ggml does
 * not define (or no longer defines). */
const char *ptq_ggml_type_name(uint32_t type);

/* For a type ptqc decodes: values per block and bytes per block, returns 1;
 * 0 for any other type (known to ggml or not). */
int ptq_ggml_block(uint32_t type, int *values, int *bytes);

/* Decode nblocks whole blocks of type (one ptq_ggml_block accepts) from src
 * into nblocks * values floats at dst. */
void ptq_ggml_decode(uint32_t type, const void *src, size_t nblocks, float *dst);

/* ---- encoding (formats/export_gguf.c) ---- */

/* Pack one block of 32 integer values v (Q4_0: 0..15 for x = (v - 8) d;
 * Q4_1: 0..15 for x = v d + m; Q5_0: 0..31 for x = (v - 16) d; Q5_1:
 * 0..31 for x = v d + m; Q8_0: -128..127 for x = v d) with the fp16 bit
 * patterns d and m (m unused without a min) into dst (ptq_ggml_block
 * bytes).  Values are taken modulo the grid; the caller checks the range. */
void ptq_ggml_pack_block(uint32_t type, uint16_t d, uint16_t m, const int *v, uint8_t *dst);

/* Quantize n floats (n a multiple of 32; F16 and F32: any n) into dst as
 * ggml's reference quantize_row_*_ref does: Q4_0 (d = the signed value of
 * largest magnitude / -8), Q4_1 (d = (max - min) / 15, m = min), Q8_0
 * (d = max |x| / 127, round half away from zero), F16 (round to nearest
 * even), F32 (a copy).  Other types: nothing is written, returns 0; else 1. */
int ptq_ggml_quantize(uint32_t type, const float *x, size_t n, void *dst);

#endif
