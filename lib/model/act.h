/* act.h - internal: the pointwise functions of the forward pass (exp, the
 * softmax of one row of attention scores, silu(gate) * up), which the
 * batched forward (lib/model/forward.c) and the KV-cached decoder
 * (lib/model/generate.c) share.  Not installed.
 *
 * Each has a portable reference (simd PTQ_ACT_REF), an AVX2 twin
 * (PTQ_ACT_AVX2, used when the CPU has AVX2) and an AVX-512 twin
 * (PTQ_ACT_BEST: AVX-512F when the CPU has it, else AVX2, else the
 * reference), all computing the same bits: the same float operations in the
 * same order, nothing contracted into an FMA.  tests/check_forward.c tests
 * each twin == reference bit for bit and the reference exp against libm.
 */
#ifndef PTQC_ACT_H
#define PTQC_ACT_H

#include <stddef.h>

enum { PTQ_ACT_REF = 0, PTQ_ACT_AVX2 = 1, PTQ_ACT_BEST = 2 };

/* exp(x) in float: Cody-Waite reduction x = n ln2 + r (|r| <= ln2 / 2),
 * Cephes expf's polynomial for e^r (degree 7), times 2^n.  Within 1 ulp of
 * exp for x in [ln FLT_MIN, 88] (0.990 ulp at worst over every float of that
 * range, against libm's double exp); 0 below ln FLT_MIN (-87.34: where exp
 * is subnormal), +inf above 88, NaN for NaN. */
float ptq_exp(float x);

/* s[0, n) = softmax(s[0, n)) in place, n >= 1: m = max s; e_j = exp(s_j - m);
 * the e_j summed in 8 lanes (e_j into lane j mod 8, the lanes added as
 * ((0+1)+(2+3))+((4+5)+(6+7))); s_j = e_j * (1 / sum). */
void ptq_softmax(float *s, int n, int simd);

/* o[0, D) = x * (1 / sqrt(mean(x^2) + eps)) * w: the squares summed in
 * float64 in 4 lanes (x_i^2 into lane i mod 4, the lanes added as
 * (0+1)+(2+3)); o may be x.  The AVX2 twin serves PTQ_ACT_BEST too. */
void ptq_rmsnorm_row(float *o, const float *x, const float *w, int D, float eps, int simd);

/* g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u for i in [0, n). */
void ptq_silu_mul(float *g, const float *u, size_t n, int simd);

#endif
