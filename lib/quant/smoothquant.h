/* smoothquant.h - SmoothQuant (Xiao et al., ICML 2023) smoothing factors and
 * their folding into the preceding RMSNorm.
 *
 * For the linears W_1..W_n that read the same normalized input X (q/k/v after
 * input_layernorm, gate/up after post_attention_layernorm), per input
 * channel j:
 *   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
 * with max|W_j| over the column j of all n linears.  As the reference
 * implementation (mit-han-lab/smoothquant, smooth.py) does, max|W_j| is
 * clamped to at least 1e-5 and s_j too.  Folding: the norm weight g_j becomes
 * g_j / s_j and every W[:, j] becomes W[:, j] * s_j, so X' = X diag(1/s)
 * and X' W'^T = X W^T: the float model is unchanged up to rounding.  Biases
 * of the linears (Qwen2's q/k/v) are outputs, untouched by the folding.
 */
#ifndef PTQC_SMOOTHQUANT_H
#define PTQC_SMOOTHQUANT_H

#include "lib/base/err.h"

#define PTQ_SQ_ALPHA 0.5f /* the paper's and the reference's default */

/* s [cols] from absmax [cols] (max |X_j| over the calibration tokens) and
 * W[i] [rows[i], cols].  PTQ_EUSAGE for alpha outside [0, 1]; PTQ_EDATA for a
 * NaN/Inf or negative absmax or a non-finite weight. */
int ptq_sq_scales(const float *absmax, const float *const *W, const int *rows, int nw, int cols,
                  float alpha, float *s, ptq_err *e);

/* norm [cols] /= s; every W[i][:, j] *= s_j. */
void ptq_sq_fold(float *norm, float *const *W, const int *rows, int nw, int cols, const float *s);

/* The statistics of the smoothed input: H [cols, cols] = diag(1/s) H diag(1/s)
 * (H may be NULL) and absmax_j /= s_j (absmax may be NULL). */
void ptq_sq_scale_stats(float *H, float *absmax, int cols, const float *s);

#endif
