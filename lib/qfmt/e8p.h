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

/* The 256-entry table, and per source its |s_i| and sign mask, for the
 * nearest-codeword search. */
typedef struct ptq_e8p_book {
    uint32_t tab[PTQ_E8P_NSRC];
    double abs[8][PTQ_E8P_NSRC]; /* |s_i| of source k at [i][k] */
    double n2[PTQ_E8P_NSRC];     /* ||s||^2 */
    float absf[8][PTQ_E8P_NSRC]; /* the same in float, for the screening pass */
    float n2f[PTQ_E8P_NSRC];
    uint8_t neg[PTQ_E8P_NSRC];   /* bit i: s_i < 0 */
} ptq_e8p_book;

/* The 256-entry source table as a constant (equal to ptq_e8p_init's tab):
 * what the decoders read. */
extern const uint32_t ptq_e8p_tab[PTQ_E8P_NSRC];

/* Build the table (deterministic; no allocation). */
void ptq_e8p_init(ptq_e8p_book *b);

/* The exact nearest codeword to x (squared Euclidean distance, computed in
 * double): for each shift t and each source s the best signs are those of
 * y = x - t, giving ||y||^2 - 2 |y|.|s| + ||s||^2, and when their count of
 * flips is odd the cheapest single flip (+ min_i 4 |y_i| |s_i|) is undone
 * (2 x 256 x 8 work, vectorized over sources, instead of 65536 x 8).  A
 * float pass screens the 512 (shift, source) pairs; those within 1e-5
 * (||y||^2 + 13) of its best, far above its rounding error, are evaluated
 * again in double, in the same order, so the result is the double one.  Ties go to the first
 * found.  Returns the code; q (may be NULL) gets its values. */
uint16_t ptq_e8p_nearest(const ptq_e8p_book *b, const float x[8], float q[8]);

#endif
