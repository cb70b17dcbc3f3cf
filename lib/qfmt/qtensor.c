/* qtensor.c - freeing, checking and the reference decode of ptq_qtensor,
 * through the format table (qfmt.h). */
#include "lib/qfmt/qtensor.h"

#include <stdlib.h>
#include <string.h>

#include "lib/qfmt/qfmt.h"

void ptq_qtensor_free(ptq_qtensor *q)
{
    if (!q) return;
    if (!q->mapped) {
        free(q->qweight);
        free(q->scales);
        free(q->zeros);
        free(q->g_idx);
        free(q->data);
        free(q->codes);
        free(q->wscale);
        free(q->act_scale);
        free(q->e8_codes);
        free(q->e8_scale);
        free(q->e8_su);
        free(q->e8_sv);
        free(q->aq_codes);
        free(q->aq_codebooks);
        free(q->aq_scales);
    }
    memset(q, 0, sizeof *q);
}

/* The shape, then the format's own checks (its row in qfmt.h), which cover
 * the data of rows [row0, row0 + n). */
static int check_rows(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    if (q->rows <= 0 || q->cols <= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: shape %d x %d is not positive", what, q->rows,
                        q->cols);
    const ptq_qfmt *f = ptq_qfmt_get(q->format);
    if (!f || !f->check)
        return ptq_fail(e, PTQ_EFORMAT, "%s: unknown tensor format %d", what, q->format);
    return f->check(q, what, row0, n, e);
}

int ptq_qtensor_check(const ptq_qtensor *q, const char *what, ptq_err *e)
{
    return check_rows(q, what, 0, q->rows > 0 ? q->rows : 0, e);
}

int ptq_qtensor_dequant_rows(const ptq_qtensor *q, int row0, int n, float *w, ptq_err *e)
{
    if (row0 < 0 || n < 0 || row0 > q->rows - n)
        return ptq_fail(e, PTQ_EINTERNAL, "rows %d..%d outside a tensor of %d rows", row0,
                        row0 + n, q->rows);
    int rc = check_rows(q, "tensor", row0, n, e);
    if (rc) return rc;
    ptq_qfmt_get(q->format)->decode(q, row0, n, w);
    return PTQ_OK;
}

int ptq_qtensor_dequant(const ptq_qtensor *q, float *w, ptq_err *e)
{
    return ptq_qtensor_dequant_rows(q, 0, q->rows, w, e);
}
