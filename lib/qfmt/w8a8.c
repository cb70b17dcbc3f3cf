/* w8a8.c - W8A8 / FP8 weight quantizer and reference execution (w8a8.h). */
#include "lib/qfmt/w8a8.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/fp8.h"
#include "lib/base/half.h"
#include "lib/qfmt/pack.h"

static float qmax_of(int format) { return format == PTQ_QF_FP8 ? PTQ_E4M3_MAX : 127.0f; }

static double code_value(int format, uint8_t c)
{
    return format == PTQ_QF_FP8 ? (double)ptq_e4m3_to_f32(c) : (double)(int8_t)c;
}

static uint8_t encode(int format, float v)
{
    if (format == PTQ_QF_FP8) return ptq_f32_to_e4m3(v);
    float q = rintf(v);
    if (q > 127.0f) q = 127.0f;
    if (q < -127.0f) q = -127.0f;
    return (uint8_t)(int8_t)q;
}

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
    float qmax = qmax_of(format);
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
        for (int k = 0; k < cols; k++) c[k] = encode(format, w[k] / s);
    }
    return PTQ_OK;
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

float ptq_a8_quant_row(int format, const float *x, int n, float static_scale, double *v)
{
    float a = static_scale;
    if (!(a > 0)) {
        float mx = 0;
        for (int k = 0; k < n; k++) {
            float t = fabsf(x[k]);
            if (t > mx) mx = t;
        }
        a = mx > 0 ? mx / qmax_of(format) : 1.0f;
        if (!(a > 0)) a = 1.0f;
    }
    for (int k = 0; k < n; k++) v[k] = code_value(format, encode(format, x[k] / a));
    return a;
}

static int check_linear(const ptq_qtensor *q, ptq_err *e)
{
    if (q->format != PTQ_QF_W8A8 && q->format != PTQ_QF_FP8)
        return ptq_fail(e, PTQ_EINTERNAL, "activation-quantized linear of format %d", q->format);
    if (q->cols > PTQ_A8_MAX_COLS)
        return ptq_fail(e, PTQ_EFORMAT, "8-bit linear with %d columns (at most %d)", q->cols,
                        PTQ_A8_MAX_COLS);
    return ptq_qtensor_check(q, "8-bit linear", e);
}

int ptq_a8_linear_ref(const ptq_qtensor *q, const float *x, int N, float *y, ptq_err *e)
{
    int rc = check_linear(q, e);
    if (rc) return rc;
    int K = q->cols, R = q->rows;
    float st = q->act_scale ? q->act_scale[0] : 0;
    double *v = malloc(sizeof(double) * (size_t)K);
    if (!v) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    for (int n = 0; n < N; n++) {
        float a = ptq_a8_quant_row(q->format, x + (size_t)n * K, K, st, v);
        for (int r = 0; r < R; r++) {
            const uint8_t *c = q->codes + (size_t)r * K;
            double dot;
            if (q->format == PTQ_QF_W8A8) {
                int32_t acc = 0; /* what the int8 GEMM does */
                for (int k = 0; k < K; k++) acc += (int32_t)v[k] * (int32_t)(int8_t)c[k];
                dot = acc;
            } else {
                dot = 0; /* exact: see w8a8.h */
                for (int k = 0; k < K; k++) dot += v[k] * (double)ptq_e4m3_to_f32(c[k]);
            }
            y[(size_t)n * R + r] = (float)dot * (a * q->wscale[r]);
        }
    }
    free(v);
    return PTQ_OK;
}

#define A8_ROWS 256 /* activation rows per dgemm */

int ptq_a8_linear(const ptq_qtensor *q, const float *x, int N, float *y, ptq_err *e)
{
    int rc = check_linear(q, e);
    if (rc) return rc;
    int K = q->cols, R = q->rows, nb = N < A8_ROWS ? N : A8_ROWS;
    float st = q->act_scale ? q->act_scale[0] : 0;
    double *W = malloc(sizeof(double) * (size_t)R * K);
    double *X = malloc(sizeof(double) * (size_t)nb * K);
    double *D = malloc(sizeof(double) * (size_t)nb * R);
    float *a = malloc(sizeof(float) * (size_t)nb);
    if (!W || !X || !D || !a) {
        free(W), free(X), free(D), free(a);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for an 8-bit linear (%d x %d)", R, K);
    }
    double lut[256];
    for (int c = 0; c < 256; c++) lut[c] = code_value(q->format, (uint8_t)c);
    for (size_t i = 0; i < (size_t)R * K; i++) W[i] = lut[q->codes[i]];
    for (int n0 = 0; n0 < N; n0 += nb) {
        int m = N - n0 < nb ? N - n0 : nb;
        for (int i = 0; i < m; i++)
            a[i] = ptq_a8_quant_row(q->format, x + (size_t)(n0 + i) * K, K, st, X + (size_t)i * K);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, R, K, 1.0, X, K, W, K, 0.0, D, R);
        for (int i = 0; i < m; i++)
            for (int r = 0; r < R; r++)
                y[(size_t)(n0 + i) * R + r] = (float)D[(size_t)i * R + r] * (a[i] * q->wscale[r]);
    }
    free(W), free(X), free(D), free(a);
    return PTQ_OK;
}
