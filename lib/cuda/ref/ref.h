/* ref.h - CPU references of the libptqrt kernels: what each kernel of
 * lib/cuda/ptqrt_kernels.h computes, written plainly in double precision on
 * the host.  Not part of libptqrt: the GPU checks (tests/gpu/) and the
 * benchmarks compare the kernels against these.  One file per kernel file:
 *
 *   lib/cuda/gemv_int.cu, gemm_int.cu  ->  int_ref.c    (packed integer linears)
 *   lib/cuda/dense.cu                  ->  dense_ref.c  (fp16 linears)
 *   lib/cuda/aqlm.cu                   ->  aqlm_ref.c   (AQLM linears)
 *   lib/cuda/layers.cu                 ->  layers_ref.c (embedding, norms, RoPE, attention ...)
 *   lib/cuda/e8p.cu                    ->  e8p_ref.c    (QuIP# E8P linears)
 *
 * The tensors are the kernels' own structs (ptqk_int_w, ptqk_f16_w) holding
 * host pointers.  Linears return, next to each output y, the magnitude
 * A = sum_k |w_k x_k| that the checks scale their tolerances by.
 */
#ifndef PTQC_CUDA_REF_H
#define PTQC_CUDA_REF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/cuda/e8p_kernels.h"
#include "lib/cuda/ptqrt_kernels.h"

/* ---- int_ref.c: the "int" format (lib/qfmt/pack.h) */

/* Weight W[r][k] = ptq_dequant of its code, scale and zero (g_idx or k /
 * group); round16: rounded to fp16 as the tensor-core GEMM feeds it. */
double ptqr_int_weight(const ptqk_int_w *w, int r, int k, int round16);

/* y[t * w->rows + r] = sum_k W[r][k] x[t * ldx + k] (x fp16) for t < n, and
 * a[...] = sum_k |W[r][k] x[t * ldx + k]|.  round16 as above. */
void ptqr_linear_int(const ptqk_int_w *w, int round16, const uint16_t *x, int ldx, int n, double *y,
                     double *a);

/* ---- aqlm_ref.c: the "aqlm" format (lib/qfmt/aqlm_decode.h) */

/* The 8 weights of group g of row r (the shared decode); round16: rounded
 * to fp16 as the prefill decode (ptqk_decode_aqlm) stores them and the
 * fused prefill GEMM (ptqk_gemm_aqlm) tiles them. */
void ptqr_aqlm_group(const ptqk_aqlm_w *w, int r, int g, int round16, float *out);
/* y, a as ptqr_linear_int for an AQLM linear. */
void ptqr_linear_aqlm(const ptqk_aqlm_w *w, int round16, const uint16_t *x, int ldx, int n, double *y,
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

/* ---- e8p_ref.c: the "e8p" format (lib/qfmt/qf_e8p.c), through lib/qfmt */
struct ptq_qtensor;

/* The core product of the GEMV/GEMM: z[t * w->rows + r] = sum_s scale_s
 * sum_k book_s(code)[k] t[t * ldt + k] in double, each codeword decoded by
 * lib/qfmt/e8p.h (ptq_e8p_decode, ptq_e81b_decode); a[...] = the same sum
 * of |terms|.  w holds host pointers (ptqk_e8p_view). */
void ptqr_e8p_rotated(const ptqk_e8p_w *w, const float *t, int ldt, int n, double *z, double *a);

/* The whole linear: y[t * rows + r] = sum_k W[r][k] x[t * ldx + k] (x fp16)
 * in double with W = U^T W' V decoded by the format's own decode
 * (ptq_qtensor_dequant, lib/qfmt/qf_e8p.c); returns ||W||_F (the scale of
 * the norm-wise tolerances), or -1 when the decode fails. */
double ptqr_linear_e8p(const struct ptq_qtensor *q, const uint16_t *x, int ldx, int n, double *y);

#endif
