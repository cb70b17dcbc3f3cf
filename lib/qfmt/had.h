/* had.h - fast orthogonal transforms for QuIP#-style incoherence: the plan
 * and its apply, which the compiler (lib/quant/hadamard.h) and both runtimes
 * call (it lives in lib/qfmt because lib/runtime and lib/cuda may not
 * include lib/quant, lib/layers.txt).
 *
 * For a length n = 2^a * m (m odd) the plan is Q = (M_K (x) H_P) / norm with
 * H_P the Sylvester Hadamard matrix of order P = n / K (a fast Walsh-Hadamard
 * transform) and M_K a K x K matrix applied densely:
 *   m == 1          K = 1, Q = H_n / sqrt(n)                      (kind PURE)
 *   else            the smallest K = m 2^j (j >= 2, K | n, K <= 1024) for
 *                   which a Hadamard matrix is built here: Paley I (K - 1 a
 *                   prime power = 3 mod 4), Paley II (K/2 - 1 a prime power
 *                   = 1 mod 4), a Williamson array (K = 116, 156, 172) or
 *                   Sylvester doubling of a constructible K/2;
 *                   prime powers p^k with k <= 3            (kind HADAMARD)
 *   none            K = m, M_K the orthonormal DCT-II of order m (kind DCT):
 *                   orthogonal and fast for small m; its entries reach
 *                   sqrt(2/m) instead of 1/sqrt(m), so the incoherence bound
 *                   max |Q_ij| is up to sqrt(2) worse than a Hadamard's.
 * Cost per vector: n log2(P) + n K flops.  x is indexed i P + j (i < K,
 * j < P): Q x = vec(M_K X H_P) / norm for X = x viewed as K rows of P.
 *
 * With sign vectors s (+1/-1, length n): the incoherence map is
 * V = Q diag(s); ptq_had_fwd computes x <- V x, ptq_had_inv x <- V^T x.
 */
#ifndef PTQC_QFMT_HAD_H
#define PTQC_QFMT_HAD_H

#include <stdint.h>

#include "lib/base/err.h"

enum { PTQ_HAD_PURE = 0, PTQ_HAD_HADAMARD = 1, PTQ_HAD_DCT = 2 };

typedef struct ptq_had {
    int n, K, P, kind;
    float *mk;   /* [K][K]: +1/-1 (HADAMARD, PURE: [1]) or the orthonormal DCT */
    float scale; /* 1/sqrt(n) (PURE, HADAMARD) or 1/sqrt(P) (DCT) */
} ptq_had;

/* The plan for length n >= 1.  Fails with PTQ_EUSAGE for n < 1 or an odd
 * factor m over 1024 with no Hadamard K (the dense DCT would be too big),
 * and with PTQ_ENOMEM. */
int ptq_had_plan(ptq_had *h, int n, ptq_err *e);
void ptq_had_free(ptq_had *h);

/* The K x K Hadamard matrix (entries +1/-1, H H^T = K I) built by Paley I,
 * Paley II, the Williamson array (116, 156, 172) or Sylvester doubling
 * into out[K*K]; 0 when built, -1 when this file has no construction for K
 * (every K of QuIP#'s list 12, 20, ..., 172 is built). */
int ptq_had_matrix(int K, int8_t *out);

/* x[count][n] <- Q x (each vector), or Q^T x.  tmp: n floats of scratch. */
void ptq_had_apply(const ptq_had *h, float *x, int count, float *tmp);
void ptq_had_apply_t(const ptq_had *h, float *x, int count, float *tmp);

/* The incoherence map with signs s[n] (each +1 or -1):
 * fwd x <- Q (s . x), inv x <- s . (Q^T x) (= V^T x, the inverse). */
void ptq_had_fwd(const ptq_had *h, const int8_t *s, float *x, int count, float *tmp);
void ptq_had_inv(const ptq_had *h, const int8_t *s, float *x, int count, float *tmp);

/* t[c][r] = a[r][c] (a blocked transpose, for the column passes). */
void ptq_had_transpose(const float *a, int r, int c, float *t);

#endif
