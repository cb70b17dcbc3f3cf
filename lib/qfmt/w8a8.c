/* w8a8.c - the reference execution of W8A8 / FP8 linears (w8a8.h); their
 * weight quantizer is the formats' reference encoder in lib/qfmt/qf_a8.c. */
#include "lib/qfmt/w8a8.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/fp8.h"
#include "lib/qfmt/qfmt.h"

float ptq_a8_quant_row(int format, const float *x, int n, float static_scale, double *v)
{
    const ptq_qfmt *f = ptq_qfmt_get(format); /* code range and code <-> value */
    float a = static_scale;
    if (!(a > 0)) {
        float mx = 0;
        for (int k = 0; k < n; k++) {
            float t = fabsf(x[k]);
            if (t > mx) mx = t;
        }
        a = mx > 0 ? mx / f->qmax : 1.0f;
        if (!(a > 0)) a = 1.0f;
    }
    for (int k = 0; k < n; k++) v[k] = (double)f->code_value(f->value_code(x[k] / a));
    return a;
}

static int check_linear(const ptq_qtensor *q, ptq_err *e)
{
    const ptq_qfmt *f = ptq_qfmt_get(q->format);
    if (!f || !(f->flags & PTQ_QFMT_ACT))
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
    for (int c = 0; c < 256; c++) lut[c] = (double)ptq_qfmt_get(q->format)->code_value((uint8_t)c);
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
