/* hessian.c - H = 2/N sum x x^T (lib/quant/hessian.h).
 *
 * A chunk of n rows is cut into pieces of at most PTQ_HESS_PIECE rows; each
 * piece's X^T X is one float32 ssyrk (upper triangle, row-major) added into
 * the float64 accumulator, so float32 sums run over at most PTQ_HESS_PIECE
 * tokens.  The result depends on the chunking and on OpenBLAS's thread count
 * (its threaded ssyrk rounds differently); the compile driver keeps both
 * fixed. */
#include "lib/quant/hessian.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PTQ_HESS_PIECE 2048

int ptq_hessian_init(ptq_hessian *h, int cols, ptq_err *e)
{
    memset(h, 0, sizeof *h);
    if (cols <= 0 || (size_t)cols > SIZE_MAX / sizeof(double) / (size_t)cols)
        return ptq_fail(e, PTQ_EINTERNAL, "Hessian of %d columns", cols);
    size_t nn = (size_t)cols * (size_t)cols;
    h->cols = cols;
    h->acc = calloc(nn, sizeof *h->acc);
    h->chunk = malloc(nn * sizeof *h->chunk);
    h->absmean = calloc((size_t)cols, sizeof *h->absmean);
    h->absmax = calloc((size_t)cols, sizeof *h->absmax);
    if (!h->acc || !h->chunk || !h->absmean || !h->absmax) {
        ptq_hessian_free(h);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a Hessian of %d columns (%zu MB)", cols,
                        nn * (sizeof(double) + sizeof(float)) >> 20);
    }
    return PTQ_OK;
}

int ptq_hessian_add(ptq_hessian *h, const float *X, int n, ptq_err *e)
{
    const int cols = h->cols;
    if (n < 0) return ptq_fail(e, PTQ_EINTERNAL, "%d activation rows", n);
    for (int t = 0; t < n; t++) {
        const float *x = X + (size_t)t * cols;
        for (int i = 0; i < cols; i++)
            if (!isfinite(x[i]))
                return ptq_fail(e, PTQ_EDATA, "activation [%ld][%d] is %g", h->ntokens + t, i,
                                (double)x[i]);
    }
    for (int t = 0; t < n; t++) {
        const float *x = X + (size_t)t * cols;
        for (int i = 0; i < cols; i++) {
            float a = fabsf(x[i]);
            h->absmean[i] += a;
            if (a > h->absmax[i]) h->absmax[i] = a;
        }
    }
    for (int t0 = 0; t0 < n; t0 += PTQ_HESS_PIECE) {
        int k = n - t0 < PTQ_HESS_PIECE ? n - t0 : PTQ_HESS_PIECE;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, k, 1.0f, X + (size_t)t0 * cols,
                    cols, 0.0f, h->chunk, cols);
        for (int i = 0; i < cols; i++) {
            double *a = h->acc + (size_t)i * cols;
            const float *c = h->chunk + (size_t)i * cols;
            for (int j = i; j < cols; j++) a[j] += c[j];
        }
    }
    h->ntokens += n;
    return PTQ_OK;
}

int ptq_hessian_finalize(ptq_hessian *h, float *H, ptq_err *e)
{
    const int cols = h->cols;
    if (h->ntokens <= 0) return ptq_fail(e, PTQ_EDATA, "Hessian of no tokens");
    double f = 2.0 / (double)h->ntokens;
    for (int i = 0; i < cols; i++)
        for (int j = i; j < cols; j++) {
            float v = (float)(f * h->acc[(size_t)i * cols + j]);
            if (!isfinite(v))
                return ptq_fail(e, PTQ_EDATA,
                                "Hessian [%d][%d] overflows float32 (activations too large)", i, j);
            H[(size_t)i * cols + j] = v;
            H[(size_t)j * cols + i] = v;
        }
    for (int i = 0; i < cols; i++) h->absmean[i] /= (double)h->ntokens;
    return PTQ_OK;
}

void ptq_hessian_free(ptq_hessian *h)
{
    if (!h) return;
    free(h->acc);
    free(h->chunk);
    free(h->absmean);
    free(h->absmax);
    memset(h, 0, sizeof *h);
}
