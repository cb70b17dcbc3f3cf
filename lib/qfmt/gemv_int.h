/* gemv_int.h - y = W x for one activation row straight from the packed
 * integer layout of lib/qfmt/pack.h (PTQ_QF_INT): the batch-1 decode step's
 * linear, with no float copy of W.
 *
 * Reference (ptq_gemv_int_ref): each row dequantized exactly as
 * ptq_qtensor_dequant does (w = scale * (q - zero) in float32), then
 * y[r] = sum_k w[r][k] * x[k] in float, k ascending.
 *
 * Fast (ptq_gemv_int): the codes of a row are decoded to float (exact: q <
 * 2^8), and for each group g (contiguous columns; no g_idx)
 *     y[r] = sum_g s[r][g] * (sum_{k in g} q[r][k] x[k] - z[r][g] * X[g]),
 * X[g] = sum_{k in g} x[k] computed once per call.  Two loops compute it:
 *  - the lane path (bits 2, 4, 8; G a multiple of 32 or 0; no g_idx: every
 *    common layout): x is permuted once per call into the packed word order,
 *    so that code s of word w of a block meets its x in lane s * bits + w; the
 *    codes of one shift are decoded by one shift + mask over `bits` lanes (gcc
 *    -O2 vectorizes it, -fopt-info-vec), each group's lanes summed over its
 *    blocks, scaled by s[g] into 32 row lanes added pairwise at the end, and
 *    sum_g s[g] (z[g] X[g]) subtracted.  On x86-64 (checked at run time, no
 *    -march needed) 4 and 8 bits run the same lanes with fused multiply-adds
 *    and two blocks in flight: 16 wide with AVX-512F, else 8 wide with
 *    AVX2 + FMA (PTQ_GEMV_* below; bench/bench_decode --kernel times each).
 *    An FMA rounds once where the portable loop rounds twice and the lanes
 *    are reduced in another order, so the three loops give different bits,
 *    each within the bound below; one CPU always takes the same loop.
 *    With AVX-512F the other widths (2, 3, 5, 6, 7 bits, G a multiple of 32
 *    or 0) take x in column order instead: each of 16 lanes gathers the
 *    words holding its code (permutexvar), shifts and masks, then the same
 *    per-group sums.
 *  - otherwise the codes of a row are decoded to float first and each group
 *    summed in 8 float lanes added pairwise.
 * With act-order g_idx the groups are
 * not contiguous and the row is summed column by column as (s * (q - z)) * x,
 * k ascending: the reference's arithmetic, so that case is bit-identical.
 * Only the summation order differs from the reference (every product term
 * passes at most n + 2 roundings in either), so (standard floating-point
 * error bound, u = 2^-24, n = cols)
 *     |fast - ref| <= 2 (n + 2) u  sum_k |s_g| (|q_k| + |z_g|) |x_k|
 * (each of the two is within (n + 2) u of that sum of magnitudes of the exact
 * value; tests/check_generate.c checks this bound, tests/check_cpu_kernels.c
 * for every loop this CPU runs, asymmetric and short last groups included).
 *
 * Determinism: each row's sum is computed by one worker in a fixed order, so
 * ptq_gemv_int gives the same bits for any thread count (on one CPU: see the
 * loops above).
 */
#ifndef PTQC_GEMV_INT_H
#define PTQC_GEMV_INT_H

#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"

/* y [q->rows] = W x, x [q->cols], over `threads` workers (rows split in
 * contiguous ranges).  PTQ_EFORMAT when q is not a valid PTQ_QF_INT tensor. */
int ptq_gemv_int(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);
/* The loops of the lane path: PTQ_GEMV_ANY = the best the CPU runs (what
 * ptq_gemv_int uses); the others force a loop for tests and benchmarks
 * (one the CPU lacks falls back to the next below it). */
enum { PTQ_GEMV_ANY = 0, PTQ_GEMV_PORTABLE = 1, PTQ_GEMV_AVX2 = 2, PTQ_GEMV_AVX512 = 3 };
int ptq_gemv_int_path(const ptq_qtensor *q, const float *x, float *y, int threads, int path,
                      ptq_err *e);
/* The reference above (one thread). */
int ptq_gemv_int_ref(const ptq_qtensor *q, const float *x, float *y, ptq_err *e);

#endif
