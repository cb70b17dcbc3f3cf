/* hadamard.h - randomized Hadamard incoherence of QuIP# for one linear.
 *
 * W is [m = out][n = in] row-major float32, H its [n][n] input Hessian proxy.
 * With U = Q_m S_m and V = Q_n S_n (lib/qfmt/had.h: Q fast orthogonal, S
 * seeded random +1/-1 diagonals):
 *   weights  W <- U W V^T          Hessian  H <- V H V^T
 * so that for inputs x' = V x the product W' x' = U (W x) and every proxy
 * loss tr(dW H dW^T) is unchanged.  At run time the linear computes
 * y = U^T (W'_q (V x)): ptq_had_fwd(&hn, sn, x) before, ptq_had_inv(&hm, sm,
 * y) after (both in lib/qfmt, callable by either runtime). */
#ifndef PTQC_QUANT_HADAMARD_H
#define PTQC_QUANT_HADAMARD_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/qfmt/had.h"

typedef struct ptq_incoh {
    int m, n;
    uint64_t seed; /* S_m from ptq_rng_seed(seed), S_n from seed + 1 */
    ptq_had hm, hn;
    int8_t *sm, *sn;
    int threads; /* workers for the transforms' rows (ptq_incoh_init: 1); the
                    results are the same bits for any count */
} ptq_incoh;

/* Plans and sign vectors for an m x n linear. */
int ptq_incoh_init(ptq_incoh *c, int m, int n, uint64_t seed, ptq_err *e);
void ptq_incoh_free(ptq_incoh *c);

/* Seeded +1/-1 signs: bit 0 of successive ptq_rng_next draws (1 -> -1). */
void ptq_incoh_signs(uint64_t seed, int8_t *s, int n);

/* W <- U W V^T, and its inverse W <- U^T W V. */
int ptq_incoh_weights(const ptq_incoh *c, float *W, ptq_err *e);
int ptq_incoh_weights_inv(const ptq_incoh *c, float *W, ptq_err *e);
/* H[n][n] <- V H V^T. */
int ptq_incoh_hessian(const ptq_incoh *c, float *H, ptq_err *e);

#endif
