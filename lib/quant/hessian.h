/* hessian.h - H = 2/N * sum over tokens of x x^T for one linear's inputs,
 * plus per-input-channel statistics (mean |x|, max |x|) for AWQ/SmoothQuant.
 *
 * Rows of activations arrive in chunks (ptq_hessian_add); each chunk's X^T X
 * is one BLAS ssyrk into a float32 chunk buffer and is added into a float64
 * accumulator, so the sum over many tokens does not lose precision in float32
 * while the O(N cols^2) work stays in single-precision BLAS.
 */
#ifndef PTQC_HESSIAN_H
#define PTQC_HESSIAN_H

#include <stddef.h>

#include "lib/base/err.h"

typedef struct ptq_hessian {
    int cols;
    long ntokens;
    double *acc;      /* [cols, cols] upper triangle valid until finalize */
    float *chunk;     /* [cols, cols] scratch */
    double *absmean;  /* [cols] sum |x| (mean after finalize) */
    float *absmax;    /* [cols] */
} ptq_hessian;

int ptq_hessian_init(ptq_hessian *h, int cols, ptq_err *e);
/* X [n, cols] row-major float32. Rejects NaN/Inf with PTQ_EDATA. */
int ptq_hessian_add(ptq_hessian *h, const float *X, int n, ptq_err *e);
/* H out [cols, cols] full symmetric float32 = 2/N * sum x x^T. */
int ptq_hessian_finalize(ptq_hessian *h, float *H, ptq_err *e);
void ptq_hessian_free(ptq_hessian *h);

#endif
