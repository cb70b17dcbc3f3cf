/* ref.h - CPU references of the libptqrt kernels: what each kernel of
 * lib/cuda/ptqrt_kernels.h computes, written plainly in double precision on
 * the host.  Not part of libptqrt: the GPU checks (tests/gpu/) and the
 * benchmarks compare the kernels against these.  One file per kernel file:
 *
 *   lib/cuda/gemv_int.cu, gemm_int.cu  ->  int_ref.c    (packed integer linears)
 *   lib/cuda/dense.cu                  ->  dense_ref.c  (fp16 linears)
 *   lib/cuda/layers.cu                 ->  layers_ref.c (embedding, norms, RoPE, attention ...)
 *
 * The tensors are the kernels' own structs (ptqk_int_w, ptqk_f16_w) holding
 * host pointers.  Linears return, next to each output y, the magnitude
 * A = sum_k |w_k x_k| that the checks scale their tolerances by.
 */
#ifndef PTQC_CUDA_REF_H
#define PTQC_CUDA_REF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/cuda/ptqrt_kernels.h"

/* ---- int_ref.c: the "int" format (lib/qfmt/pack.h) */

/* Weight W[r][k] = ptq_dequant of its code, scale and zero (g_idx or k /
 * group); round16: rounded to fp16 as the tensor-core GEMM feeds it. */
double ptqr_int_weight(const ptqk_int_w *w, int r, int k, int round16);

/* y[t * w->rows + r] = sum_k W[r][k] x[t * ldx + k] (x fp16) for t < n, and
 * a[...] = sum_k |W[r][k] x[t * ldx + k]|.  round16 as above. */
void ptqr_linear_int(const ptqk_int_w *w, int round16, const uint16_t *x, int ldx, int n, double *y,
                     double *a);

/* ---- dense_ref.c */

/* The same for an fp16 matrix. */
void ptqr_linear_f16(const ptqk_f16_w *w, const uint16_t *x, int ldx, int n, double *y, double *a);

/* ---- layers_ref.c (the same arguments as the kernels; outputs double) */

/* out[t][i] = row tok[t] of the packed int table (exact in float). */
void ptqr_embed_int(const ptqk_int_w *table, const int32_t *tok, int n, double *out);
/* out[t][i] = x[t][i] / sqrt(mean_i x[t]^2 + eps) * w[i] */
void ptqr_rmsnorm(const float *x, const float *w, int dim, float eps, int n, double *out);
/* out[i] = silu(g[i]) * u[i] */
void ptqr_swiglu(const float *g, const float *u, size_t count, double *out);
/* RoPE (HF rotate_half) of x [B*T][nheads*hd] into out, token b*T + t at
 * position pos + t, angle = the float product (float)position * inv_freq[j]
 * as the kernel forms it, then cos/sin in double. */
void ptqr_rope(const float *x, int nheads, int hd, const float *inv_freq, int B, int T, int pos,
               double *out);
/* Causal grouped-query attention of q [B*T][nh*hd] against float caches
 * kc, vc [B][S][nkv*hd] that already hold positions 0..pos+T-1 (as the
 * kernel reads them: fp16- or int8-decoded values); softmax(q.k / sqrt(hd))
 * over positions 0..pos+t, in double; out [B*T][nh*hd]. */
void ptqr_attention(const float *q, const float *kc, const float *vc, int nh, int nkv, int hd, int B,
                    int T, int pos, int S, double *out);

#endif
