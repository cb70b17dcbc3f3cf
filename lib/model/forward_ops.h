/* forward_ops.h - internal: the pieces of the forward pass (lib/model/forward.c)
 * that the KV-cached decoder (lib/model/generate.c) runs too, so that both compute
 * every format the same way.  Not installed.
 */
#ifndef PTQC_FORWARD_OPS_H
#define PTQC_FORWARD_OPS_H

#include "lib/model/model.h"

/* Query rows per attention block of the batched forward (forward.c):
 * 128 rows make the sgemms' work the causal lower triangle plus 1/16 of the
 * full square at T = 2048, and the scores one 128 x T buffer (1 MiB at
 * T = 2048) instead of T x T.  bench/bench_compile_bound times the same
 * blocks. */
#define PTQ_ATT_ROWS 128

/* out[n, D] = rmsnorm(x[n, D]) * w, row by row with act.h's
 * ptq_rmsnorm_row (sum of squares in double, the rest in float). */
void ptq_rmsnorm(float *out, const float *x, const float *w, int n, int D, float eps);

/* Linear i of layer w on x [N, cols] -> y [N, rows]: the float32 sgemm over
 * w->w[i], or lib/qfmt/w8a8.h's 8-bit product when w->aq[i] is set, or
 * the format's fused GEMV (lib/qfmt/qfmt.h gemv; one per row of x, over w->threads
 * workers) when the provider set w->q[i]; plus the bias when w->bias[i]. */
int ptq_layer_linear(const ptq_layer_w *w, int i, float *y, const float *x, int N, int rows,
                     int cols, ptq_err *e);

/* RoPE tables for positions [0, n_pos): cos_t, sin_t [n_pos, head_dim / 2],
 * the angles pos * inv_freq[i] in double (rope_scaling applied), then float. */
void ptq_rope_tables(const ptq_config *c, int n_pos, float *cos_t, float *sin_t);

/* Rotate the nh heads of one row [nh * hd] by the table row (cs, sn) of its
 * position (rotate_half pairs (i, i + hd/2)). */
void ptq_rope_row(float *row, int nh, int hd, const float *cs, const float *sn);

/* int8 KV cache: round x [N, kv_dim] in place to the int8 codes of its
 * column's scale s [kv_dim] (one scale per kv head and head-dim channel):
 * clamp(rint(x / s), -127, 127) * s, what an int8 cache holds (lib/qfmt/kvq.h's
 * ptq_kv_code, which the KV-cached decoder and the CUDA kernels store). */
void ptq_kv_int8(float *x, const float *s, int N, int kv_dim);

#endif
