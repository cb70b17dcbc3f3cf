/* w8a8.h - 8-bit weights times 8-bit activations (SmoothQuant's W8A8 in
 * int8, and FP8 E4M3): the weight quantizer and the CPU reference execution.
 *
 * Weights (per output channel r):
 *   int8: s_r = max_k |W[r][k]| / 127, code = clamp(rint(W / s_r), -127, 127)
 *   E4M3: s_r = max_k |W[r][k]| / 448, code = e4m3(W / s_r)  (lib/base/fp8.h)
 *   (an all-zero row gets s_r = 1).
 * Activations (the linear's input x, one row per token), with scale a:
 *   static  (per tensor): a = the calibrated act_scale of the tensor
 *   dynamic (per token):  a = max_k |x[k]| / 127 (int8) or / 448 (E4M3),
 *                         computed in float; a row of zeros gets a = 1
 *   int8 code = clamp(rint(x / a), -127, 127); E4M3 code = e4m3(x / a), which
 *   saturates at +-448.
 * Output: y[r] = (float)dot * (a * s_r) (the product a * s_r in float), with
 *   dot = sum_k code_x[k] * code_w[r][k] computed EXACTLY:
 *   int8: the int32 sum a GPU's int8 tensor-core GEMM produces (|dot| <=
 *         128 * 127 * cols < 2^31 for cols <= 2^17);
 *   E4M3: every product of two E4M3 values is a multiple of 2^-18 below 2^18
 *         in magnitude, so for cols <= 2^17 the sum is exact in double; a
 *         GPU's FP8 GEMM accumulates in fp32 and may differ from it by fp32
 *         rounding of the partial sums (this runtime is the exact reference).
 * The fast path forms the codes' values as doubles and calls dgemm: every
 * partial sum is an integer (int8) or a multiple of 2^-18 (E4M3) below 2^53
 * units, so any summation order gives the same exact result, and
 * ptq_a8_linear is bit-identical to the plain-loop ptq_a8_linear_ref.
 */
#ifndef PTQC_W8A8_H
#define PTQC_W8A8_H

#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"

#define PTQ_A8_MAX_COLS 131072 /* 2^17: the exactness bound above */

/* Quantize W [rows, cols] to format PTQ_QF_W8A8 or PTQ_QF_FP8.  act_scale > 0:
 * static activation scale stored with the tensor; 0: dynamic per token.
 * PTQ_EDATA on NaN/Inf weights or a non-finite activation scale. */
int ptq_a8_quantize(const float *W, int rows, int cols, int format, float act_scale,
                    ptq_qtensor *out, ptq_err *e);

/* The same storage from an 8-bit symmetric PTQ_QF_INT tensor with one group
 * per row (GPTQ's output): int8 code = q - zero, s_r = the fp16 scale. */
int ptq_a8_from_int(const ptq_qtensor *in, float act_scale, ptq_qtensor *out, ptq_err *e);

/* Quantize one activation row x [n] for format: v[k] = the exact value of
 * code k (int8 integer or E4M3 value) as a double; returns the scale a used
 * (static_scale when > 0, else dynamic). */
float ptq_a8_quant_row(int format, const float *x, int n, float static_scale, double *v);

/* y [N, q->rows] = the activation-quantized linear of x [N, q->cols]. */
int ptq_a8_linear(const ptq_qtensor *q, const float *x, int N, float *y, ptq_err *e);
/* The plain-loop reference (int32 accumulator for int8). */
int ptq_a8_linear_ref(const ptq_qtensor *q, const float *x, int N, float *y, ptq_err *e);

#endif
