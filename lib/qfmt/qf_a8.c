/* qf_a8.c - the "w8a8" and "fp8" rows of the format table (qfmt.h), and the
 * int8 KV-cache row's code: 8-bit codes [rows][cols] (int8 two's complement
 * or E4M3, lib/base/fp8.h) times fp32 per-row scales, with an optional
 * static per-tensor activation scale.  The reference encoder (ptq_a8_quantize,
 * w8a8.h) is here; the 8-bit product execution is lib/qfmt/w8a8.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/fp8.h"
#include "lib/base/half.h"
#include "lib/qfmt/kvq.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"
#include "lib/qfmt/w8a8.h"

float ptq_qf_int8_value(uint8_t c) { return (float)(int8_t)c; }

uint8_t ptq_qf_int8_code(float v)
{
    float q = rintf(v);
    if (q > 127.0f) q = 127.0f;
    if (q < -127.0f) q = -127.0f;
    return (uint8_t)(int8_t)q;
}

float ptq_qf_e4m3_value(uint8_t c) { return ptq_e4m3_to_f32(c); }
uint8_t ptq_qf_e4m3_code(float v) { return ptq_f32_to_e4m3(v); }
float ptq_qf_kv_value(uint8_t c) { return ptq_kv_value((int8_t)c, 1.0f); }
uint8_t ptq_qf_kv_code(float v) { return (uint8_t)ptq_kv_code(v, 1.0f); }

uint64_t ptq_qf_a8_bytes(const ptq_qtensor *q, int i)
{
    uint64_t r = (uint64_t)q->rows, c = (uint64_t)q->cols;
    return i == 0 ? r * c : i == 1 ? r * 4 : 4; /* codes, wscale, act_scale */
}

/* Arrays present, scales finite and positive, no NaN codes in rows
 * [row0, row0 + n). */
int ptq_qf_a8_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
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

void ptq_qf_a8_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    float (*value)(uint8_t) = ptq_qfmt_get(q->format)->code_value, lut[256];
    for (int c = 0; c < 256; c++) lut[c] = value((uint8_t)c);
    size_t cols = (size_t)q->cols;
    for (int r = row0; r < row0 + n; r++) {
        const uint8_t *c = q->codes + (size_t)r * cols;
        float s = q->wscale[r], *out = w + (size_t)(r - row0) * cols;
        for (size_t k = 0; k < cols; k++) out[k] = lut[c[k]] * s;
    }
}

/* ---------------------------------------------------------------- encoder */

static int alloc_a8(ptq_qtensor *q, int rows, int cols, int format, float act_scale, ptq_err *e)
{
    memset(q, 0, sizeof *q);
    q->format = format;
    q->rows = rows;
    q->cols = cols;
    q->bits = 8;
    q->sym = 1;
    q->codes = malloc((size_t)rows * (size_t)cols);
    q->wscale = malloc(sizeof(float) * (size_t)rows);
    if (act_scale > 0) {
        q->act_scale = malloc(sizeof(float));
        if (q->act_scale) q->act_scale[0] = act_scale;
    }
    if (!q->codes || !q->wscale || (act_scale > 0 && !q->act_scale)) {
        ptq_qtensor_free(q);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a %d x %d 8-bit tensor", rows, cols);
    }
    return PTQ_OK;
}

static int check_args(int rows, int cols, int format, float act_scale, ptq_err *e)
{
    if (format != PTQ_QF_W8A8 && format != PTQ_QF_FP8)
        return ptq_fail(e, PTQ_EINTERNAL, "8-bit quantizer: format %d is not W8A8 or FP8", format);
    if (rows < 1 || cols < 1 || cols > PTQ_A8_MAX_COLS)
        return ptq_fail(e, PTQ_EFORMAT, "8-bit quantizer: shape %d x %d (at most %d columns)",
                        rows, cols, PTQ_A8_MAX_COLS);
    if (!isfinite(act_scale) || act_scale < 0)
        return ptq_fail(e, PTQ_EDATA, "activation scale %g is not finite", (double)act_scale);
    return PTQ_OK;
}

int ptq_a8_quantize(const float *W, int rows, int cols, int format, float act_scale,
                    ptq_qtensor *out, ptq_err *e)
{
    int rc = check_args(rows, cols, format, act_scale, e);
    if (rc) return rc;
    if ((rc = alloc_a8(out, rows, cols, format, act_scale, e))) return rc;
    const ptq_qfmt *f = ptq_qfmt_get(format);
    float qmax = f->qmax;
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * cols;
        float mx = 0;
        for (int k = 0; k < cols; k++) {
            if (!isfinite(w[k])) {
                ptq_qtensor_free(out);
                return ptq_fail(e, PTQ_EDATA, "weight [%d][%d] is %g", r, k, (double)w[k]);
            }
            float a = fabsf(w[k]);
            if (a > mx) mx = a;
        }
        float s = mx > 0 ? mx / qmax : 1.0f;
        if (!(s > 0)) s = 1.0f; /* max|w| below qmax * FLT_TRUE_MIN */
        out->wscale[r] = s;
        uint8_t *c = out->codes + (size_t)r * cols;
        for (int k = 0; k < cols; k++) c[k] = f->value_code(w[k] / s);
    }
    return PTQ_OK;
}

int ptq_qf_w8a8_encode(const float *W, int rows, int cols, const ptq_qfmt_enc *o,
                       ptq_qtensor *out, ptq_err *e)
{
    return ptq_a8_quantize(W, rows, cols, PTQ_QF_W8A8, o ? o->act_scale : 0, out, e);
}

int ptq_qf_fp8_encode(const float *W, int rows, int cols, const ptq_qfmt_enc *o,
                      ptq_qtensor *out, ptq_err *e)
{
    return ptq_a8_quantize(W, rows, cols, PTQ_QF_FP8, o ? o->act_scale : 0, out, e);
}

int ptq_a8_from_int(const ptq_qtensor *in, float act_scale, ptq_qtensor *out, ptq_err *e)
{
    if (in->format != PTQ_QF_INT || in->bits != 8 || in->ngroups != 1 || in->g_idx)
        return ptq_fail(e, PTQ_EINTERNAL, "W8A8 from int: need 8-bit codes, one group per row, "
                                          "no g_idx");
    int rc = check_args(in->rows, in->cols, PTQ_QF_W8A8, act_scale, e);
    if (!rc) rc = ptq_qtensor_check(in, "W8A8 from int", e);
    if (!rc) rc = alloc_a8(out, in->rows, in->cols, PTQ_QF_W8A8, act_scale, e);
    if (rc) return rc;
    int words = ptq_pack_row_words(in->cols, 8);
    for (int r = 0; r < in->rows; r++) {
        out->wscale[r] = ptq_f16_to_f32(in->scales[r]);
        const uint32_t *row = in->qweight + (size_t)r * (size_t)words;
        for (int k = 0; k < in->cols && !rc; k++) { /* value = s * (q - zero) */
            int c = (int)ptq_pack_get(row, k, 8) - (int)in->zeros[r];
            if (c < -128 || c > 127)
                rc = ptq_fail(e, PTQ_EINTERNAL, "W8A8 from int: code %d of row %d is not int8",
                              c, r);
            out->codes[(size_t)r * in->cols + k] = (uint8_t)(int8_t)c;
        }
    }
    if (rc) {
        ptq_qtensor_free(out);
        return rc;
    }
    if (!(rc = ptq_qtensor_check(out, "W8A8 from int", e))) return PTQ_OK;
    ptq_qtensor_free(out);
    return rc;
}
