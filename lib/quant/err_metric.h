/* err_metric.h - the output error of a quantized linear through the Gram
 * matrix of its inputs, the one measure the report and every method use.
 *
 * For a linear W [rows, cols] with inputs X (tokens as rows), the squared
 * output error of a candidate Wq is ||X (W - Wq)^T||^2 = tr(dW H dW^T) with
 * H = X^T X and dW = W - Wq; the report's relative error is
 * tr(dW H dW^T) / tr(W H W^T) (the factor of H cancels).  Computed in row
 * blocks of PTQ_ERR_ROWS, one sgemm each, the dot products summed in double
 * in row order.  H must be full (both triangles).
 */
#ifndef PTQC_ERR_METRIC_H
#define PTQC_ERR_METRIC_H

#define PTQ_ERR_ROWS 64

/* sum over rows of (A - B) H (A - B)^T; B NULL: A H A^T.  buf: scratch of
 * 2 * PTQ_ERR_ROWS * cols floats.  blas_seconds (may be NULL) gets the time
 * spent in sgemm added. */
double ptq_quad_err(const float *A, const float *B, int rows, int cols, const float *H,
                    float *buf, double *blas_seconds);

/* tr((W - Wq) H (W - Wq)^T) / den, den = ptq_quad_err(W, NULL, ...) > 0; 0 when
 * den is not positive (a linear whose inputs are all zero). */
double ptq_rel_err(const float *W, const float *Wq, int rows, int cols, const float *H,
                   double den, float *buf);

#endif
