/* qtensor.c - freeing, checking and the reference decode of ptq_qtensor. */
#include "lib/qfmt/qtensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/dtype.h"
#include "lib/base/fp8.h"
#include "lib/base/half.h"
#include "lib/qfmt/pack.h"

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
    }
    memset(q, 0, sizeof *q);
}

/* W8A8 / FP8: arrays present, scales finite and positive, no NaN codes in
 * rows [row0, row0 + n). */
static int check_a8(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    if (!q->codes || !q->wscale)
        return ptq_fail(e, PTQ_EFORMAT, "%s: 8-bit tensor without codes or scales", what);
    if (q->act_scale && !(isfinite(q->act_scale[0]) && q->act_scale[0] > 0))
        return ptq_fail(e, PTQ_EFORMAT, "%s: activation scale %g is not finite and positive",
                        what, (double)q->act_scale[0]);
    for (int r = row0; r < row0 + n; r++)
        if (!(isfinite(q->wscale[r]) && q->wscale[r] > 0))
            return ptq_fail(e, PTQ_EFORMAT, "%s: weight scale of row %d (%g) is not finite and "
                            "positive", what, r, (double)q->wscale[r]);
    if (q->format == PTQ_QF_FP8) {
        const uint8_t *c = q->codes + (size_t)row0 * (size_t)q->cols;
        for (size_t i = 0; i < (size_t)n * (size_t)q->cols; i++)
            if ((c[i] & 0x7f) == 0x7f)
                return ptq_fail(e, PTQ_EFORMAT, "%s: E4M3 NaN code in row %zu", what,
                                row0 + i / (size_t)q->cols);
    }
    return PTQ_OK;
}

/* Everything but the zero points; those of rows [row0, row0 + n) too. */
static int check_rows(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    if (q->rows <= 0 || q->cols <= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: shape %d x %d is not positive", what, q->rows,
                        q->cols);
    if (q->format == PTQ_QF_DENSE) {
        if (q->dtype != PTQ_DT_F16 && q->dtype != PTQ_DT_BF16 && q->dtype != PTQ_DT_F32)
            return ptq_fail(e, PTQ_EFORMAT, "%s: dense dtype %s is not F16, BF16 or F32", what,
                            ptq_dtype_name((ptq_dtype)q->dtype));
        if (!q->data) return ptq_fail(e, PTQ_EFORMAT, "%s: dense tensor without data", what);
        return PTQ_OK;
    }
    if (q->format == PTQ_QF_W8A8 || q->format == PTQ_QF_FP8) return check_a8(q, what, row0, n, e);
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EFORMAT, "%s: unknown tensor format %d", what, q->format);
    if (q->bits < 2 || q->bits > 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: bits %d outside 2..8", what, q->bits);
    if (q->group < 0 || (q->group > 0 && q->cols % q->group != 0))
        return ptq_fail(e, PTQ_EFORMAT, "%s: group %d does not divide %d columns", what,
                        q->group, q->cols);
    int ng = q->group ? q->cols / q->group : 1;
    if (q->ngroups != ng)
        return ptq_fail(e, PTQ_EFORMAT, "%s: ngroups %d, expected %d", what, q->ngroups, ng);
    if (!q->qweight || !q->scales || !q->zeros)
        return ptq_fail(e, PTQ_EFORMAT, "%s: int tensor without qweight, scales or zeros", what);
    unsigned maxq = (1u << q->bits) - 1u;
    for (size_t i = (size_t)row0 * (size_t)ng; i < (size_t)(row0 + n) * (size_t)ng; i++)
        if (q->zeros[i] > maxq)
            return ptq_fail(e, PTQ_EFORMAT, "%s: zero point %u of group %zu exceeds %u", what,
                            q->zeros[i], i, maxq);
    if (q->g_idx)
        for (int k = 0; k < q->cols; k++)
            if (q->g_idx[k] < 0 || q->g_idx[k] >= ng)
                return ptq_fail(e, PTQ_EFORMAT, "%s: g_idx[%d] = %d outside 0..%d", what, k,
                                (int)q->g_idx[k], ng - 1);
    return PTQ_OK;
}

int ptq_qtensor_check(const ptq_qtensor *q, const char *what, ptq_err *e)
{
    return check_rows(q, what, 0, q->rows > 0 ? q->rows : 0, e);
}

static int decode_rows(const ptq_qtensor *q, int row0, int n, float *w)
{
    size_t cols = (size_t)q->cols;
    if (q->format == PTQ_QF_DENSE) {
        size_t first = (size_t)row0 * cols, count = (size_t)n * cols;
        if (q->dtype == PTQ_DT_F32) {
            memcpy(w, (const float *)q->data + first, count * sizeof(float));
        } else if (q->dtype == PTQ_DT_F16) {
            const uint16_t *s = (const uint16_t *)q->data + first;
            for (size_t i = 0; i < count; i++) w[i] = ptq_f16_to_f32(s[i]);
        } else {
            const uint16_t *s = (const uint16_t *)q->data + first;
            for (size_t i = 0; i < count; i++) w[i] = ptq_bf16_to_f32(s[i]);
        }
        return PTQ_OK;
    }
    if (q->format == PTQ_QF_W8A8 || q->format == PTQ_QF_FP8) {
        for (int r = row0; r < row0 + n; r++) {
            const uint8_t *c = q->codes + (size_t)r * cols;
            float s = q->wscale[r], *out = w + (size_t)(r - row0) * cols;
            if (q->format == PTQ_QF_W8A8)
                for (size_t k = 0; k < cols; k++) out[k] = (float)(int8_t)c[k] * s;
            else
                for (size_t k = 0; k < cols; k++) out[k] = ptq_e4m3_to_f32(c[k]) * s;
        }
        return PTQ_OK;
    }
    int ng = q->ngroups, words = ptq_pack_row_words(q->cols, q->bits);
    for (int r = row0; r < row0 + n; r++) {
        const uint32_t *row = q->qweight + (size_t)r * (size_t)words;
        const uint16_t *sc = q->scales + (size_t)r * (size_t)ng;
        const uint8_t *zr = q->zeros + (size_t)r * (size_t)ng;
        float *out = w + (size_t)(r - row0) * cols;
        for (int k = 0; k < q->cols; k++) {
            int g = q->g_idx ? q->g_idx[k] : (q->group ? k / q->group : 0);
            out[k] = ptq_dequant(sc[g], zr[g], ptq_pack_get(row, k, q->bits));
        }
    }
    return PTQ_OK;
}

int ptq_qtensor_dequant_rows(const ptq_qtensor *q, int row0, int n, float *w, ptq_err *e)
{
    if (row0 < 0 || n < 0 || row0 > q->rows - n)
        return ptq_fail(e, PTQ_EINTERNAL, "rows %d..%d outside a tensor of %d rows", row0,
                        row0 + n, q->rows);
    int rc = check_rows(q, "tensor", row0, n, e);
    if (rc) return rc;
    return decode_rows(q, row0, n, w);
}

int ptq_qtensor_dequant(const ptq_qtensor *q, float *w, ptq_err *e)
{
    return ptq_qtensor_dequant_rows(q, 0, q->rows, w, e);
}
