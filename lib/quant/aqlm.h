/* aqlm.h - AQLM (Egiazarian et al. 2024, "Extreme Compression of Large
 * Language Models via Additive Quantization"): additive codebooks learned on
 * the Hessian of the linear's inputs.
 *
 * A linear W [rows][cols], cols % 8 == 0, is cut into groups of 8
 * consecutive inputs.  Group g of row r is approximated as
 *     what[r][8g..8g+8) = s[r] * sum_m V_m[c[r][g][m]],
 * M codebooks V_m of K = 2^B eight-dimensional codewords, one code per
 * codebook per group, one scale per output row.  The objective is
 *     L = sum_r (w_r - what_r) H (w_r - what_r)^T,   H = X^T X (cols x cols),
 * i.e. ||(W - What) X^T||^2 up to the constant factor of H.
 *
 * Initialisation: s[r] = rms(w_r); residual k-means on the groups of W / s:
 * codebook m is k-means (seeded: initial centroids are distinct random
 * groups) on what is left after codebooks 0..m-1.  Then, until the relative
 * improvement of L falls below tol (or max_iter rounds):
 *  (a) beam search over each group's M codes, the other groups fixed
 *      (Gauss-Seidel over groups g = 0..G-1 inside a row).  With u = H e,
 *      e = w - what, A = H_gg (8 x 8) and y = the group's reconstruction,
 *      the objective as a function of y is, up to a constant,
 *          f(y) = y^T A y - 2 y.b,    b = u_g + A y_cur,
 *      exact: the coupling inside the group is A, the coupling with every
 *      other group is in u.  Replacing codebook m's word in hypothesis y_h
 *      (z = y_h - s V_m[c_m]) by codeword k costs
 *          f(z + s v_k) = f(z) + v_k.(2 s (A z - b)) + s^2 v_k^T A v_k,
 *      with v_k^T A_g v_k precomputed per group and codebook (the codeword
 *      Gram terms); the dot product is summed as a pairwise tree over the
 *      8 coordinates, 4 codewords at once with AVX2 where the CPU has it
 *      (the same operations, no fused multiply-add: the same bits as the
 *      generic loop).  The beam (AQLM's): start from the current codes; for
 *      m = 0..M-1 every hypothesis tries every codeword of codebook m; keep
 *      the `beam` best (hypothesis, codeword) pairs (ties: lower hypothesis,
 *      then lower codeword); after the last codebook only the best is
 *      used, so that step keeps one (the least (f, hypothesis, codeword):
 *      the first of the list it would have kept).  Beam 1 is greedy coordinate descent over the
 *      codebooks; beam >= K^(M-1) enumerates every combination.  The current
 *      codes stay a candidate, so L never increases.  After a group: u -=
 *      H[:, g] (y_new - y_cur), lazily: on the columns of its block of 16
 *      groups at once, on the later columns once per block (one dgemm for
 *      the chunk's rows), so u_g is exact when group g is searched.
 *  (b) codebooks by least squares: the normal equations
 *          sum_r s_r^2 S_r^T H S_r  v = sum_r s_r S_r^T H (w_r - s_r P_r)
 *      (S_r places the codewords of row r's codes, P_r = the codebooks not
 *      being solved) in float64, a Cholesky solve (tiled over the threads,
 *      ptq_aqlm_cholesky, then LAPACKE_dpotrs) with a 1e-9 ridge towards the current codewords (unused codewords stay).
 *      Jointly over all codebooks when M K 8 <= PTQ_AQLM_LS_MAX, else one
 *      codebook at a time (block coordinate, exact per codebook) when
 *      K 8 <= PTQ_AQLM_LS_MAX, else (1x16) each codeword's 8 x 8 diagonal
 *      block (exact when H is block-diagonal), kept only when L decreases.
 *  (c) scales in closed form: s_r = (q_r^T H w_r) / (q_r^T H q_r),
 *      q_r = the unscaled reconstruction.
 * The rounds stop when a round improves L by less than tol L, when L falls
 * to PTQ_AQLM_REL_FLOOR tr(W H W^T) (a relative output error nothing
 * measurable follows from), or after max_iter rounds.
 * Finally the codebooks are rounded to fp16, the scales recomputed and
 * rounded to fp16 (the stored PTQ_QF_AQLM tensor).
 *
 * Threads: rows are cut in fixed chunks of PTQ_AQLM_CHUNK (independent of
 * the count), contiguous runs of chunks per worker; each chunk's products
 * with H (H e, H q, the beam's lazy u updates) are one dgemm, so H streams
 * once per chunk, not once per row.  k-means assigns fixed blocks of 128
 * groups, each group's nearest centroid by |c|^2 - 2 x.c scored as the
 * beam's candidates are.  The
 * normal equations are split by their own rows in fixed tiles of 4
 * codewords (each tile sums its rows over all data in one order: its
 * occurrences (r, g) by g, then codeword, then r; whole 8 x 8 blocks of H;
 * the upper triangle only, which is what the Cholesky reads).  The
 * Cholesky's tiles of 256 are one BLAS call each (dtrsm of the panel below
 * a diagonal tile, dsyrk / dgemm of each trailing tile), whoever runs
 * them.  Every sum has one fixed order: bit-identical for any count.
 */
#ifndef PTQC_AQLM_H
#define PTQC_AQLM_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"

#define PTQ_AQLM_GROUP 8
#define PTQ_AQLM_CHUNK 32
#define PTQ_AQLM_LS_MAX 2048
#define PTQ_AQLM_MAX_M 8
#define PTQ_AQLM_MAX_B 16
#define PTQ_AQLM_MAX_BEAM 256
/* the rounds also stop once L <= this times tr(W H W^T) */
#define PTQ_AQLM_REL_FLOOR 1e-5

typedef struct ptq_aqlm_opts {
    int M, B;         /* codebooks, bits per code (1..8, 1..16) */
    int beam;         /* hypotheses kept (>= 1) */
    int max_iter;     /* rounds of (a)(b)(c) */
    int kmeans_iter;  /* Lloyd iterations per codebook of the initialisation */
    double tol;       /* stop when (L_prev - L) / L_prev < tol */
    uint64_t seed;
    int threads;
} ptq_aqlm_opts;

/* The working state, float64. */
typedef struct ptq_aqlm {
    int rows, cols, M, B, K, G;
    int32_t *codes;   /* [rows][G][M] */
    double *cb;       /* [M][K][8] */
    double *scale;    /* [rows] */
} ptq_aqlm;

typedef struct ptq_aqlm_report {
    int iters;
    double obj_init, obj;   /* L after the initialisation, at the end (fp16) */
} ptq_aqlm_report;

/* Defaults (man/ptqc-compile.1 says where they come from). */
void ptq_aqlm_defaults(ptq_aqlm_opts *o);

int ptq_aqlm_alloc(ptq_aqlm *a, int rows, int cols, int M, int B, ptq_err *e);
void ptq_aqlm_free(ptq_aqlm *a);

/* The steps, for the tests.  H is [cols][cols] float64 symmetric. */
int ptq_aqlm_init(ptq_aqlm *a, const float *W, const ptq_aqlm_opts *o, ptq_err *e);
int ptq_aqlm_beam(ptq_aqlm *a, const float *W, const double *H, int beam, int threads,
                  ptq_err *e);
/* ptq_aqlm_beam with the candidates scored by the generic loop (simd 0) or
 * by AVX2 where the CPU has it (simd 1, what ptq_aqlm_beam does): the same
 * bits either way. */
int ptq_aqlm_beam_path(ptq_aqlm *a, const float *W, const double *H, int beam, int threads,
                       int simd, ptq_err *e);
/* (b): codebooks [m0, m1) by joint least squares, the others fixed. */
int ptq_aqlm_ls(ptq_aqlm *a, const float *W, const double *H, int m0, int m1, int threads,
                ptq_err *e);
/* (b) as the round does it (joint, per codebook, or diagonal blocks). */
int ptq_aqlm_codebooks(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e);
int ptq_aqlm_scales(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e);
/* The Cholesky factor L of A (n x n SPD, column-major, lower triangle read
 * and overwritten), tiled over the workers: the same bits for any threads.
 * 0, or dpotrf's info (> 0: not positive definite at that column), or -1
 * (out of memory, in e). */
int ptq_aqlm_cholesky(double *A, int n, int threads, ptq_err *e);
/* L (BLAS), and its plain-loop float64 reference. */
double ptq_aqlm_objective(const ptq_aqlm *a, const float *W, const double *H, int threads);
double ptq_aqlm_objective_ref(const ptq_aqlm *a, const float *W, const double *H);
/* Unscaled reconstruction of row r into q [cols]. */
void ptq_aqlm_row(const ptq_aqlm *a, int r, double *q);

/* The whole method: W [rows][cols] with H [cols][cols] float32 (the
 * compile's 2/N X^T X) into a PTQ_QF_AQLM tensor.  PTQ_EDATA on NaN/Inf in W
 * or H, PTQ_EUSAGE on cols % 8 or a bad M, B, beam. */
int ptq_aqlm_quantize(const float *W, const float *H, int rows, int cols,
                      const ptq_aqlm_opts *o, ptq_qtensor *out, ptq_aqlm_report *rep,
                      ptq_err *e);
/* The state with fp16 codebooks and scales as a PTQ_QF_AQLM tensor. */
int ptq_aqlm_pack(const ptq_aqlm *a, ptq_qtensor *out, ptq_err *e);

#endif
