/* pack.h - the packed layout of uniform integer weights ("int" format), and
 * its decode arithmetic, shared by the CPU reference runtime and the CUDA
 * kernels (__host__ __device__ under nvcc).
 *
 * A linear W [rows = out, cols = in] quantized to b bits (2..8) in groups of
 * G input columns (G = 0: one group per row) is stored as:
 *
 *   qweight  uint32 [rows][kblocks * b]     kblocks = ceil(cols / 32)
 *            Each row is cut into blocks of 32 consecutive input columns.
 *            A block is b little-endian uint32 words = a 32*b-bit stream;
 *            column j of the block (0..31) is the unsigned code in bits
 *            [j*b, j*b + b) of that stream.  Columns past cols are 0.
 *            (b = 4: word w of a block holds columns 8w..8w+7, nibble by
 *            nibble from the least significant; b = 8: bytes in order.)
 *   scales   fp16 [rows][ngroups]            ngroups = G ? ceil(cols / G) : 1
 *   zeros    uint8 [rows][ngroups]           integer zero point in [0, 2^b - 1]
 *   g_idx    int32 [cols], optional           group of each column (act-order
 *            without static groups); absent: group(k) = G ? k / G : 0
 *
 *   G need not divide cols: group g holds columns [g*G, min((g+1)*G, cols)),
 *   the last one shorter; group(k) = k / G either way, so a decoder needs
 *   nothing but ngroups for the scale row stride.  (Bundles with such a
 *   group are version 3, ptqc-bundle(5).)
 *
 *   w[r][k] = scale[r][g] * (q[r][k] - zero[r][g]),  g = group(k),
 *   computed in float32 from the fp16 scale.  Symmetric quantization stores
 *   zero = 2^(b-1) explicitly, so decoding never depends on how it was made.
 *
 * Why this layout: a GPU thread of a GEMV reads one block (b words: 16 bytes at
 * 4 bits, one vector load) and neighbouring threads read neighbouring blocks,
 * so a warp's loads of a row are coalesced; the same block of 32 is the
 * k-tile unit of the tensor-core GEMM.  The stream format works for every b
 * without special cases (3 bits straddle words; the 64-bit read handles it).
 */
#ifndef PTQC_PACK_H
#define PTQC_PACK_H

#include <stdint.h>

#include "lib/base/half.h"

#define PTQ_PACK_BLOCK 32
/* the largest group a tensor may name (--group's bound) */
#define PTQ_PACK_MAX_GROUP (1 << 20)

PTQ_HD int ptq_pack_kblocks(int cols) { return (cols + PTQ_PACK_BLOCK - 1) / PTQ_PACK_BLOCK; }
/* uint32 words per packed row */
PTQ_HD int ptq_pack_row_words(int cols, int bits) { return ptq_pack_kblocks(cols) * bits; }

/* Groups per row of a tensor of cols columns in groups of G (0: one). */
PTQ_HD int ptq_pack_ngroups(int cols, int G) { return G ? (cols + G - 1) / G : 1; }
/* Columns of group g: G, except a shorter last group; cols when G is 0. */
PTQ_HD int ptq_pack_group_len(int cols, int G, int g)
{
    if (!G) return cols;
    int end = (g + 1) * G < cols ? (g + 1) * G : cols;
    return end - g * G;
}

/* Code of column k in one packed row. */
PTQ_HD uint32_t ptq_pack_get(const uint32_t *row, int k, int bits)
{
    const uint32_t *blk = row + (k / PTQ_PACK_BLOCK) * bits;
    int bit = (k % PTQ_PACK_BLOCK) * bits;
    int w = bit >> 5, s = bit & 31;
    uint64_t v = blk[w];
    if (s + bits > 32) v |= (uint64_t)blk[w + 1] << 32;
    return (uint32_t)(v >> s) & ((1u << bits) - 1u);
}

/* Store code q (< 2^bits) at column k of a packed row (zero-initialised). */
static inline void ptq_pack_set(uint32_t *row, int k, int bits, uint32_t q)
{
    uint32_t *blk = row + (k / PTQ_PACK_BLOCK) * bits;
    int bit = (k % PTQ_PACK_BLOCK) * bits;
    int w = bit >> 5, s = bit & 31;
    uint64_t v = (uint64_t)(q & ((1u << bits) - 1u)) << s;
    blk[w] |= (uint32_t)v;
    if (s + bits > 32) blk[w + 1] |= (uint32_t)(v >> 32);
}

/* Decode all 32 codes of one block into q[32] (the kernels' inner step). */
PTQ_HD void ptq_pack_block_codes(const uint32_t *blk, int bits, uint32_t q[PTQ_PACK_BLOCK])
{
    uint32_t mask = (1u << bits) - 1u;
    for (int j = 0; j < PTQ_PACK_BLOCK; j++) {
        int bit = j * bits, w = bit >> 5, s = bit & 31;
        uint64_t v = blk[w];
        if (s + bits > 32) v |= (uint64_t)blk[w + 1] << 32;
        q[j] = (uint32_t)(v >> s) & mask;
    }
}

/* The dequantized weight: float32 arithmetic on the fp16 scale. */
PTQ_HD float ptq_dequant(uint16_t scale_f16, uint32_t zero, uint32_t q)
{
    return ptq_f16_to_f32(scale_f16) * (float)((int)q - (int)zero);
}

#endif
