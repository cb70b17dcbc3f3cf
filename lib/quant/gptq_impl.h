/* gptq_impl.h - the steps ptq_rtn, ptq_gptq and ptq_gptq_reference share
 * (private to lib/quant/rtn.c, lib/quant/gptq.c, lib/quant/gptq_ref.c and their tests).
 *
 * GPTQ is split in three:
 *   prepare  validate, copy W, dead columns, grids fixed in advance (group 0,
 *            static groups), act-order permutation, damping and the upper
 *            Cholesky factor U of H^-1 (in H, rows and columns permuted);
 *   the column loop, blocked (gptq.c) or one column at a time (gptq_ref.c),
 *            which fills codes and grids in permuted column order;
 *   finish   pack codes in the original column order, scales, zeros, g_idx.
 */
#ifndef PTQC_GPTQ_IMPL_H
#define PTQC_GPTQ_IMPL_H

#include <stdint.h>

#include "lib/base/par.h"
#include "lib/quant/gptq.h"

/* Options and shapes (PTQ_EUSAGE naming --bits / --group) and that W is
 * finite (PTQ_EDATA).  what: a name for the messages ("weights"). */
int ptq_int_validate(const float *W, int rows, int cols, const ptq_gptq_opts *o, ptq_err *e);
/* An empty PTQ_QF_INT tensor of that shape (qweight zeroed; g_idx when asked). */
int ptq_int_alloc(ptq_qtensor *q, int rows, int cols, const ptq_gptq_opts *o, int with_gidx,
                  ptq_err *e);
/* Check a freshly computed grid: PTQ_EDATA when the scale overflows fp16. */
int ptq_int_grid_check(const ptq_qgrid *g, int row, int col, ptq_err *e);

typedef struct ptq_gptq_state {
    int rows, cols, group, ngroups;
    int fixed;          /* grids fixed before the loop: group 0 or static groups */
    float *W;           /* [rows][cols] working weights, permuted columns */
    const float *U;     /* = H: upper triangle of chol(H^-1) (row-major, permuted) */
    int *perm;          /* [cols] original column of permuted column i */
    ptq_qgrid *grid;    /* [rows][ngroups]: fixed grids by original group (group 0:
                           one per row); else by permuted group i / group */
    uint8_t *Q;         /* [rows][cols] codes, permuted order */
} ptq_gptq_state;

/* ptq_blas_single / ptq_blas_restore (lib/base/par.h) force single-threaded
 * OpenBLAS for the duration: its multithreaded potrf/trtri/sgemm round
 * differently with the thread count. */

int ptq_gptq_prepare(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                     ptq_gptq_state *s, ptq_gptq_report *rep, ptq_err *e);
/* The grid that quantizes permuted column i of row r; for a group start
 * (not fixed) computes it first from W[r][i .. i+group) (up to cols: the
 * last group may be shorter). */
static inline ptq_qgrid *ptq_gptq_grid_at(ptq_gptq_state *s, int r, int i)
{
    if (s->group == 0) return &s->grid[(long)r * s->ngroups];
    if (s->fixed) return &s->grid[(long)r * s->ngroups + s->perm[i] / s->group];
    return &s->grid[(long)r * s->ngroups + i / s->group];
}
/* Code permuted column i of row r with grid g; w' its value.  Fails with
 * PTQ_EDATA on a non-finite weight (the updates diverged). */
static inline int ptq_gptq_code(const ptq_qgrid *g, float w, int r, int i, int *q, float *wq,
                                ptq_err *e)
{
    if (!(w - w == 0.0f))
        return ptq_fail(e, PTQ_EDATA,
                        "weight [%d][%d] became %g while GPTQ propagated rounding errors "
                        "(Hessian too ill-conditioned)",
                        r, i, (double)w);
    *q = ptq_quant_code(g, w);
    *wq = ptq_quant_value(g, *q);
    return PTQ_OK;
}
int ptq_gptq_finish(ptq_gptq_state *s, const ptq_gptq_opts *o, ptq_qtensor *out, ptq_err *e);
void ptq_gptq_state_free(ptq_gptq_state *s);

/* A column loop: fill s->Q and the grids, set *loss (rep->loss); nt is the
 * BLAS thread count the caller had (the default worker count). */
typedef int (*ptq_gptq_loop)(ptq_gptq_state *s, const ptq_gptq_opts *o, int nt, double *loss,
                             ptq_err *e);
/* prepare, loop, finish under single-threaded BLAS: ptq_gptq and
 * ptq_gptq_reference differ only in their loop. */
int ptq_gptq_run(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                 ptq_gptq_loop loop, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);

/* Lower-level pieces, exported for the tests: factor the (permuted) H in
 * place into U, upper with U^T U = (H + damp mean(diag) I)^-1, raising the
 * damping 0.1 -> 1 -> 10 as needed (rep). */
int ptq_gptq_hinv(float *H, int cols, float damp, ptq_gptq_report *rep, ptq_err *e);

#endif
