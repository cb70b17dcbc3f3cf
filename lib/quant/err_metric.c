/* err_metric.c - see err_metric.h */
#include "lib/quant/err_metric.h"

#include <cblas.h>
#include <string.h>

#include "lib/base/clock.h"

double ptq_quad_err(const float *A, const float *B, int rows, int cols, const float *H,
                    float *buf, double *blas_seconds)
{
    float *dbuf = buf, *pbuf = buf + (size_t)PTQ_ERR_ROWS * cols;
    double sum = 0;
    for (int r0 = 0; r0 < rows; r0 += PTQ_ERR_ROWS) {
        int nr = rows - r0 < PTQ_ERR_ROWS ? rows - r0 : PTQ_ERR_ROWS;
        size_t n = (size_t)nr * (size_t)cols;
        const float *a = A + (size_t)r0 * cols;
        if (B) {
            const float *b = B + (size_t)r0 * cols;
            for (size_t i = 0; i < n; i++) dbuf[i] = a[i] - b[i];
        } else {
            memcpy(dbuf, a, n * sizeof *dbuf);
        }
        double t0 = blas_seconds ? ptq_now() : 0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, cols, cols, 1.0f, dbuf, cols, H,
                    cols, 0.0f, pbuf, cols);
        if (blas_seconds) *blas_seconds += ptq_now() - t0;
        for (size_t i = 0; i < n; i++) sum += (double)dbuf[i] * (double)pbuf[i];
    }
    return sum;
}

double ptq_rel_err(const float *W, const float *Wq, int rows, int cols, const float *H,
                   double den, float *buf)
{
    return den > 0 ? ptq_quad_err(W, Wq, rows, cols, H, buf, NULL) / den : 0;
}
