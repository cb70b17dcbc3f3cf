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
    float *wchunk;    /* [nwchunk][cols, cols] the workers' scratch (ptq_hessian_add_chunks) */
    int nwchunk;
} ptq_hessian;

int ptq_hessian_init(ptq_hessian *h, int cols, ptq_err *e);
/* X [n, cols] row-major float32. Rejects NaN/Inf with PTQ_EDATA. */
int ptq_hessian_add(ptq_hessian *h, const float *X, int n, ptq_err *e);
/* The chunks X[0..count) [n[i], cols], in that order, on up to `threads`
 * workers (lib/base/par.h): the same bits as ptq_hessian_add of each chunk
 * in turn with single-threaded BLAS, for any thread count.  Each piece's
 * ssyrk runs on one worker (OpenBLAS single-threaded meanwhile) into a
 * float32 cols^2 buffer of its own (kept in h, so threads - 1 more of them),
 * then the workers add the pieces into the float64 accumulator row range by
 * row range, every element in piece order. */
int ptq_hessian_add_chunks(ptq_hessian *h, const float *const *X, const int *n, int count,
                           int threads, ptq_err *e);
/* H out [cols, cols] full symmetric float32 = 2/N * sum x x^T. */
int ptq_hessian_finalize(ptq_hessian *h, float *H, ptq_err *e);
void ptq_hessian_free(ptq_hessian *h);

#endif
