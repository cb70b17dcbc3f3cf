/* e8p.h - the E8P codebook of QuIP# (Tseng et al. 2024, section 4.1):
 * 2^16 points of the shifted lattice E8 + 1/4, 8 weights per 16-bit code.
 *
 * Source vectors (256): the 227 vectors |x| for x in D8^ = D8 + 1/2 (all
 * coordinates in Z + 1/2, even sum) with ||x||^2 <= 10, in lexicographic
 * order, then 29 vectors of norm^2 12 (five 3/2 and three 1/2) listed by the
 * paper's code; the last coordinate of a source is negated when its sum is
 * odd, so every source is itself in D8^.
 * Code c: source tab[c >> 8]; byte b = c & 255 with parity p = popcount(b)
 * mod 2; sign bits b ^ p (an even number of them) flip coordinate i when bit
 * i is set; then + 1/4 when p = 0, - 1/4 when p = 1.  An even number of flips
 * keeps the point in D8^, so every codeword is in D8^ +- 1/4 = E8 + 1/4.
 * (quip-sharp stores the same codebook with a different bit/nibble layout:
 * its sign bits are permuted and its nibbles shuffled for its kernels.)
 *
 * Table entry: nibble i (bits 4i..4i+3) holds 2 s_i + 8 for source
 * coordinate s_i in [-7/2, 7/2].  The decode below is plain C on stdint only,
 * usable from host and device code (nvcc: __host__ __device__). */
#ifndef PTQC_QFMT_E8P_H
#define PTQC_QFMT_E8P_H

#include <stdint.h>

#ifdef __CUDACC__
#define PTQ_E8P_FN static inline __host__ __device__
#else
#define PTQ_E8P_FN static inline
#endif

enum { PTQ_E8P_NSRC = 256, PTQ_E8P_NCODE = 65536, PTQ_E8P_DIM = 8 };

/* Parity of the low 8 bits. */
PTQ_E8P_FN unsigned ptq_e8p_parity(unsigned b)
{
    b &= 255u;
    b ^= b >> 4;
    b ^= b >> 2;
    b ^= b >> 1;
    return b & 1u;
}

/* The 8 values of code c (exact: multiples of 1/4). */
PTQ_E8P_FN void ptq_e8p_decode(const uint32_t *tab, uint16_t c, float out[8])
{
    uint32_t a = tab[c >> 8];
    unsigned b = c & 255u, p = ptq_e8p_parity(b);
    unsigned s = b ^ p;
    float shift = p ? -0.25f : 0.25f;
    for (int i = 0; i < 8; i++) {
        float v = (float)((int)((a >> (4 * i)) & 15u) - 8) * 0.5f;
        out[i] = ((s >> i) & 1u ? -v : v) + shift;
    }
}

/* The 1-bit E8 codebook of QuIP#'s 3-bit residual stage (quip-sharp
 * E8P12RVQ3B's "E81B" grid): 256 points of E8 itself (no shift), code k:
 *   0..240    the 241 points of E8 with norm^2 <= 2: the origin and the 112
 *             integer roots +-e_i +-e_j, then the 128 roots (+-1/2)^8 with
 *             an even number of minus signs; each of the two groups (integer,
 *             half-integer) in ascending lexicographic order of
 *             (v_0, ..., v_7), v_0 most significant;
 *   241..248  2 e_0 .. 2 e_7; 249..255  -2 e_0 .. -2 e_6 (norm^2 4; -2 e_7
 *             is left out, which makes 256).
 * Entry: nibble i holds 2 v_i + 8 (v_i in [-2, 2]), as in the E8P table.
 * One uint8 code covers 8 weights: 1 bit per weight. */
enum { PTQ_E81B_NCODE = 256 };

extern const uint32_t ptq_e81b_tab[PTQ_E81B_NCODE];

/* The 8 values of 1-bit code c (exact: multiples of 1/2). */
PTQ_E8P_FN void ptq_e81b_decode(const uint32_t *tab, uint8_t c, float out[8])
{
    uint32_t a = tab[c];
    for (int i = 0; i < 8; i++) out[i] = (float)((int)((a >> (4 * i)) & 15u) - 8) * 0.5f;
}

/* The 256-entry table, and per source its |s_i| and sign mask, for the
 * nearest-codeword search; the 1-bit codebook's values by coordinate. */
typedef struct ptq_e8p_book {
    uint32_t tab[PTQ_E8P_NSRC];
    double abs[8][PTQ_E8P_NSRC]; /* |s_i| of source k at [i][k] */
    double n2[PTQ_E8P_NSRC];     /* ||s||^2 */
    float absf[8][PTQ_E8P_NSRC]; /* the same in float, for the screening pass */
    float n2f[PTQ_E8P_NSRC];
    uint8_t neg[PTQ_E8P_NSRC];   /* bit i: s_i < 0 */
    int16_t src_of[1 << 16]; /* |s| keyed by the 2-bit digits (2|s_i| - 1) / 2: its
                                source k, or -1 (the lattice decoder's lookup) */
    uint32_t tab1[PTQ_E81B_NCODE];        /* = ptq_e81b_tab */
    double v1[8][PTQ_E81B_NCODE];         /* v_i of 1-bit code k at [i][k] */
    double n21[PTQ_E81B_NCODE];           /* ||v||^2 */
    float v1f[8][PTQ_E81B_NCODE];         /* the same in float, for the screening */
    float n21f[PTQ_E81B_NCODE];
    uint32_t key1[PTQ_E81B_NCODE];        /* tab1 sorted ascending, */
    uint8_t code1[PTQ_E81B_NCODE];        /* and the code of each */
} ptq_e8p_book;

/* The 256-entry source table as a constant (equal to ptq_e8p_init's tab):
 * what the decoders read. */
extern const uint32_t ptq_e8p_tab[PTQ_E8P_NSRC];

/* Build the tables (deterministic; no allocation). */
void ptq_e8p_init(ptq_e8p_book *b);

/* The exact nearest codeword to x (squared Euclidean distance, computed in
 * double).  First the lattice's own decoder (Conway & Sloane, SPLAG ch. 20):
 * the nearest point of E8 + 1/4 is the better of the nearest points of
 * D8 + 1/4 and D8 + 3/4 (round every coordinate, and when the sum is odd
 * round the farthest coordinate the other way); when that point is a
 * codeword (its |s| is a source, src_of) it is the nearest codeword.  Else
 * (the nearest lattice point lies outside the codebook's ball) the search:
 * for each shift t and each source s the best signs are those of
 * y = x - t, giving ||y||^2 - 2 |y|.|s| + ||s||^2, and when their count of
 * flips is odd the cheapest single flip (+ min_i 4 |y_i| |s_i|) is undone
 * (2 x 256 x 8 work, vectorized over sources, instead of 65536 x 8).  A
 * float pass screens the 512 (shift, source) pairs; those within 1e-5
 * (||y||^2 + 13) of its best, far above its rounding error, are evaluated
 * again in double, in the same order, so the result is the double one.  Ties go to the first
 * found.  Returns the code; q (may be NULL) gets its values. */
uint16_t ptq_e8p_nearest(const ptq_e8p_book *b, const float x[8], float q[8]);

/* The exact nearest 1-bit codeword to x: the nearest point of E8 (the
 * decoder above, without the shift) when it is one of the 256 (key1);
 * else brute force over the 256 (||x||^2 - 2 x.v + ||v||^2), screened in
 * float and decided in double (ties go to the lowest code).  q (may be NULL) gets its values. */
uint8_t ptq_e81b_nearest(const ptq_e8p_book *b, const float x[8], float q[8]);

#endif
