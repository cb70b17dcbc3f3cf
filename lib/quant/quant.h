/* quant.h - the uniform (integer grid) quantizer shared by RTN and GPTQ.
 *
 * For a group of weights w[0..n): codes q in [0, maxq], maxq = 2^bits - 1,
 *   q = clamp(round(w / scale) + zero, 0, maxq),  w' = scale * (q - zero)
 * as GPTQ's reference quantizer defines it:
 *   asymmetric: xmin = min(min w, 0), xmax = max(max w, 0),
 *               scale = (xmax - xmin) / maxq, zero = round(-xmin / scale)
 *   symmetric:  xmax = max(|xmin|, xmax), xmin = -xmax,
 *               scale = (xmax - xmin) / maxq, zero = (maxq + 1) / 2
 *               (GPTQ's reference keeps xmin = 0 for a group with no negative
 *               weight, so its grid reaches only (2^(b-1) - 1) / maxq of xmax;
 *               compressed-tensors, llm-compressor's quantizer, takes
 *               max|w| / (maxq / 2) for every group, and so does ptqc)
 *   all-zero group: xmin = -1, xmax = +1.
 * The scale is rounded to fp16 (what the bundle stores) before any code is
 * computed, so quantization error terms see the values the runtime decodes.
 * Optional MSE clipping search (GPTQ reference: grid 100, maxshrink 0.8,
 * norm 2.4): shrink [xmin, xmax] by p = 1 - i/grid and keep the lowest
 * sum |w' - w|^norm.
 */
#ifndef PTQC_QUANT_H
#define PTQC_QUANT_H

#include <stdint.h>

typedef struct ptq_quant_opts {
    int bits;  /* 2..8 */
    int sym;   /* 1 symmetric, 0 asymmetric */
    int mse;   /* 1: clipping search */
} ptq_quant_opts;

typedef struct ptq_qgrid {
    uint16_t scale_f16; /* the stored scale */
    float scale;        /* its float32 value */
    uint8_t zero;
    int maxq;
} ptq_qgrid;

/* Grid for one group of n weights (strided by stride floats).  The fp16
 * scale is kept a positive normal: a smaller scale (tiny weights) is raised
 * to 2^-14; a scale past the fp16 range is stored as +Inf, which
 * ptq_quant_grid_ok reports so the quantizer fails with PTQ_EDATA. */
void ptq_quant_grid(const float *w, int n, int stride, const ptq_quant_opts *o, ptq_qgrid *g);
/* The clipping search's objective sum |w' - w|^2.4 over the group on grid
 * g, in float64 over the elements in order; |d|^2.4 is ptq_pow24 (within
 * about 2e-6 relative of powf).  simd 1: an AVX2 loop when the CPU has it
 * and stride is 1, the same bits as simd 0 (the portable reference). */
double ptq_quant_grid_err(const float *w, int n, int stride, const ptq_qgrid *g, int simd);
/* The same sums for the nc grids g[0..nc), except that a grid's sum stops
 * at the first check (every 32 elements) where it has reached limit: then
 * errs[c] >= limit (the terms are >= 0); a sum below limit is exact.  simd
 * 1: an AVX2 loop over four grids at a time, the same bits as simd 0. */
void ptq_quant_grid_errs(const float *w, int n, int stride, const ptq_qgrid *g, int nc,
                         double limit, double *errs, int simd);
float ptq_pow24(float d);
/* 1 when the stored scale is a finite positive fp16 (always, unless the
 * group's range exceeds 65504 * maxq). */
int ptq_quant_grid_ok(const ptq_qgrid *g);
/* Code of one weight and its dequantized value. */
static inline int ptq_quant_code(const ptq_qgrid *g, float w)
{
    float q = __builtin_nearbyintf(w / g->scale) + (float)g->zero; /* ties to even */
    if (q < 0.0f) q = 0.0f;
    if (q > (float)g->maxq) q = (float)g->maxq;
    return (int)q;
}
static inline float ptq_quant_value(const ptq_qgrid *g, int q) { return g->scale * (float)(q - (int)g->zero); }

#endif
