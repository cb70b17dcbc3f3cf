/* gptq.h - RTN and GPTQ (Frantar et al. 2022) for one linear.
 *
 * W is [rows = out, cols = in] row-major float32; H is the [cols, cols]
 * Hessian proxy 2/N * sum x x^T of the linear's inputs (lib/quant/hessian.h).
 * Both produce a PTQ_QF_INT ptq_qtensor (lib/qfmt/qtensor.h, layout lib/qfmt/pack.h).
 */
#ifndef PTQC_GPTQ_H
#define PTQC_GPTQ_H

#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"
#include "lib/quant/quant.h"

typedef struct ptq_gptq_opts {
    ptq_quant_opts q;   /* bits, sym, mse */
    int group;          /* 0 = per output channel, else 32/64/128/...: ceil(cols / group)
                           groups a row, the last one shorter when group does
                           not divide cols */
    int act_order;      /* quantize columns in order of decreasing H diagonal */
    int static_groups;  /* with act_order: groups fixed in original order before
                           the permutation (no g_idx); else g_idx is stored */
    float damp;         /* fraction of mean diag(H) added to the diagonal (0.01) */
    int block;          /* lazy-batch block size (128) */
    int threads;        /* ptq_gptq workers over chunks of rows; 0: as many as
                           OpenBLAS was set to use.  The result is the same for
                           any value (see ptq_gptq). */
    /* --method aqlm (lib/compile/round_aqlm.c, lib/quant/aqlm.h): --codebooks
     * MxB and --beam N; 0: not given (2x8, beam 8) */
    int aqlm_m, aqlm_b, aqlm_beam;
    /* --rotate hadamard (lib/compile/rotate.c): 1 rounds W' = U W V^T with
     * H' = V H V^T into the int-had format; 0 (none) as before */
    int rotate;
} ptq_gptq_opts;

typedef struct ptq_gptq_report {
    float damp_used;    /* damp that let the Cholesky succeed */
    int damp_raises;    /* how many times it was raised */
    int dead_columns;   /* columns with H[i][i] == 0 (weights zeroed, diag set 1) */
    double loss;        /* GPTQ's objective sum (w - q)^2 / d^2 / 2 */
} ptq_gptq_report;

/* Round-to-nearest with the same quantizer and grouping (act_order ignored),
 * rows on o->threads workers (the same bits for any count). */
int ptq_rtn(const float *W, int rows, int cols, const ptq_gptq_opts *o, ptq_qtensor *out,
            ptq_err *e);

/* GPTQ.  H is overwritten (damped, factorized).  Fails with PTQ_EDATA when H
 * stays singular after raising the damping (0.01 -> 0.1 -> 1 -> 10 times the
 * mean diagonal), or when W or H hold NaN/Inf.
 *
 * Determinism: OpenBLAS's multithreaded sgemm/potrf round differently with
 * the thread count, so for its duration ptq_gptq sets OpenBLAS to one thread
 * (restoring the previous count before returning; do not call BLAS from other
 * threads meanwhile) and runs o->threads workers of its own over fixed
 * chunks of 128 rows, which GPTQ treats independently.  The output is
 * bit-identical for any thread count.
 *
 * Grids of groups (not static) are computed when the group's first column is
 * reached, on the weights updated by every column before it (also those of
 * the same lazy batch: blocks are cut so a group that starts inside a block
 * ends in it).  IST-DASLab/gptq reads the not yet batch-updated copy there
 * when group < block; the two agree when group is a multiple of block. */
int ptq_gptq(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
             ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);

/* The straightforward column-at-a-time reference (no lazy batches), which the
 * blocked ptq_gptq is tested against. */
int ptq_gptq_reference(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                       ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);

#endif
