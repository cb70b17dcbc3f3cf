/* rtn.c - round-to-nearest (lib/quant/gptq.h), and the checks and allocation
 * every integer-grid quantizer shares (lib/quant/gptq_impl.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/base/par.h"
#include "lib/quant/gptq_impl.h"
#include "lib/qfmt/pack.h"

int ptq_int_validate(const float *W, int rows, int cols, const ptq_gptq_opts *o, ptq_err *e)
{
    if (rows <= 0 || cols <= 0)
        return ptq_fail(e, PTQ_EINTERNAL, "weights of shape %d x %d", rows, cols);
    if (o->q.bits < 2 || o->q.bits > 8)
        return ptq_fail(e, PTQ_EUSAGE, "--bits %d: out of range 2..8", o->q.bits);
    if (o->group < 0 || o->group > PTQ_PACK_MAX_GROUP)
        return ptq_fail(e, PTQ_EUSAGE, "--group %d: out of range 0..%d", o->group,
                        PTQ_PACK_MAX_GROUP);
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(W[i]))
            return ptq_fail(e, PTQ_EDATA, "weight [%zu][%zu] is %g", i / (size_t)cols,
                            i % (size_t)cols, (double)W[i]);
    return PTQ_OK;
}

int ptq_int_alloc(ptq_qtensor *q, int rows, int cols, const ptq_gptq_opts *o, int with_gidx,
                  ptq_err *e)
{
    q->format = PTQ_QF_INT;
    q->rows = rows, q->cols = cols;
    q->bits = o->q.bits;
    q->group = o->group;
    q->ngroups = ptq_pack_ngroups(cols, o->group); /* the last group may be shorter */
    q->sym = o->q.sym;
    q->mapped = 0;
    size_t words = (size_t)rows * (size_t)ptq_pack_row_words(cols, o->q.bits);
    size_t ng = (size_t)rows * (size_t)q->ngroups;
    q->qweight = calloc(words, sizeof *q->qweight);
    q->scales = malloc(ng * sizeof *q->scales);
    q->zeros = malloc(ng * sizeof *q->zeros);
    q->g_idx = with_gidx ? malloc((size_t)cols * sizeof *q->g_idx) : NULL;
    if (!q->qweight || !q->scales || !q->zeros || (with_gidx && !q->g_idx)) {
        ptq_qtensor_free(q);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a %d x %d quantized tensor", rows, cols);
    }
    return PTQ_OK;
}

int ptq_int_grid_check(const ptq_qgrid *g, int row, int col, ptq_err *e)
{
    if (ptq_quant_grid_ok(g)) return PTQ_OK;
    return ptq_fail(e, PTQ_EDATA,
                    "weights of row %d from column %d span a range too large for an fp16 scale",
                    row, col);
}

/* Rows [r0, r1) of ptq_rtn on one worker; the error is its first failing
 * group in row order. */
typedef struct rtn_job {
    const float *W;
    int cols, r0, r1, rc;
    const ptq_gptq_opts *o;
    ptq_qtensor *out;
    ptq_err e;
} rtn_job;

static void rtn_rows(void *arg)
{
    rtn_job *j = arg;
    const ptq_gptq_opts *o = j->o;
    ptq_qtensor *out = j->out;
    int cols = j->cols, G = o->group ? o->group : cols, ng = out->ngroups;
    int words = ptq_pack_row_words(cols, o->q.bits);
    j->rc = PTQ_OK;
    for (int r = j->r0; r < j->r1; r++) {
        const float *w = j->W + (size_t)r * cols;
        uint32_t *packed = out->qweight + (size_t)r * words;
        for (int g = 0; g < ng; g++) {
            ptq_qgrid grid;
            int len = ptq_pack_group_len(cols, G, g);
            ptq_quant_grid(w + (size_t)g * G, len, 1, &o->q, &grid);
            if ((j->rc = ptq_int_grid_check(&grid, r, g * G, &j->e))) return;
            out->scales[(size_t)r * ng + g] = grid.scale_f16;
            out->zeros[(size_t)r * ng + g] = grid.zero;
            for (int k = g * G; k < g * G + len; k++)
                ptq_pack_set(packed, k, o->q.bits, (uint32_t)ptq_quant_code(&grid, w[k]));
        }
    }
}

int ptq_rtn(const float *W, int rows, int cols, const ptq_gptq_opts *o, ptq_qtensor *out,
            ptq_err *e)
{
    int rc = ptq_int_validate(W, rows, cols, o, e);
    if (!rc) rc = ptq_int_alloc(out, rows, cols, o, 0, e);
    if (rc) return rc;
    /* rows on the workers: each row's grids and codes depend on that row only */
    int nw = o->threads > 1 ? o->threads : 1;
    if (nw > PTQ_PAR_MAX) nw = PTQ_PAR_MAX;
    if (nw > rows) nw = rows;
    rtn_job *jobs = calloc((size_t)nw, sizeof *jobs);
    if (!jobs) {
        ptq_qtensor_free(out);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    for (int w = 0; w < nw; w++)
        jobs[w] = (rtn_job){W, cols, (int)((long)rows * w / nw), (int)((long)rows * (w + 1) / nw),
                            PTQ_OK, o, out, {0}};
    if (nw == 1) rtn_rows(&jobs[0]);
    else ptq_par_run(nw, rtn_rows, jobs, sizeof jobs[0]);
    rc = PTQ_OK;
    for (int w = 0; w < nw && !rc; w++)
        if (jobs[w].rc) rc = jobs[w].rc, *e = jobs[w].e;
    free(jobs);
    if (rc) ptq_qtensor_free(out);
    return rc;
}
