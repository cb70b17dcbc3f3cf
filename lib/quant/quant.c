/* quant.c - the uniform grid of lib/quant/quant.h (GPTQ's reference quantizer).
 *
 * Everything is float32 like the reference, with two additions the bundle
 * needs: the scale is rounded to fp16 before the zero point and the codes are
 * computed from it, and that fp16 scale is kept > 0 and finite:
 *   - a scale below the smallest positive normal fp16 (2^-14, also the case
 *     of a group of tiny weights) is raised to 2^-14, so no group decodes
 *     through a subnormal or zero scale;
 *   - a scale that does not fit fp16 (range > 65504 * maxq) is stored as
 *     +Inf (0x7c00); ptq_quant_grid_ok() is false and the quantizers reject
 *     the weights with PTQ_EDATA.
 */
#include "lib/quant/quant.h"

#include <math.h>

#include "lib/base/half.h"

#define PTQ_F16_MIN_NORMAL 0x0400u /* 2^-14 */
#define PTQ_F16_INF 0x7c00u

#define MSE_GRID 100
#define MSE_MAXSHRINK 0.8f
#define MSE_NORM 2.4f

/* The grid of the range [xmin, xmax] (xmin <= 0 <= xmax, not both 0). */
static void grid_of(float xmin, float xmax, int maxq, int sym, ptq_qgrid *g)
{
    float scale = (xmax - xmin) / (float)maxq;
    uint16_t h = ptq_f32_to_f16(scale);
    if (!(scale < INFINITY) || h >= PTQ_F16_INF) h = PTQ_F16_INF;
    else if (h < PTQ_F16_MIN_NORMAL) h = PTQ_F16_MIN_NORMAL;
    g->scale_f16 = h;
    g->scale = ptq_f16_to_f32(h);
    g->maxq = maxq;
    if (sym) {
        g->zero = (uint8_t)((maxq + 1) / 2);
    } else {
        float z = __builtin_nearbyintf(-xmin / g->scale);
        if (!(z >= 0.0f)) z = 0.0f; /* also an Inf scale: -xmin/Inf = 0 */
        if (z > (float)maxq) z = (float)maxq;
        g->zero = (uint8_t)z;
    }
}

/* sum |w' - w|^2.4 over the group (the search's objective) */
static double grid_err(const float *w, int n, int stride, const ptq_qgrid *g)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        float x = w[(long)i * stride];
        float d = fabsf(ptq_quant_value(g, ptq_quant_code(g, x)) - x);
        if (d > 0.0f) s += (double)powf(d, MSE_NORM);
    }
    return s;
}

int ptq_quant_grid_ok(const ptq_qgrid *g)
{
    return g->scale_f16 >= PTQ_F16_MIN_NORMAL && g->scale_f16 < PTQ_F16_INF;
}

void ptq_quant_grid(const float *w, int n, int stride, const ptq_quant_opts *o, ptq_qgrid *g)
{
    int maxq = (1 << o->bits) - 1;
    float xmin = 0.0f, xmax = 0.0f;
    for (int i = 0; i < n; i++) {
        float x = w[(long)i * stride];
        if (x < xmin) xmin = x;
        if (x > xmax) xmax = x;
    }
    if (o->sym) { /* [-max|w|, max|w|] also for a group with no negative weight */
        if (-xmin > xmax) xmax = -xmin;
        xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) xmin = -1.0f, xmax = 1.0f;
    grid_of(xmin, xmax, maxq, o->sym, g);
    if (!o->mse || !ptq_quant_grid_ok(g)) return;
    /* clipping search: p = 1 - i/grid for i < maxshrink*grid; p = 1 is the
     * plain grid above, so the result is never worse on this objective */
    double best = INFINITY;
    ptq_qgrid cand;
    int steps = (int)(MSE_MAXSHRINK * MSE_GRID);
    for (int i = 0; i < steps; i++) {
        float p = 1.0f - (float)i / (float)MSE_GRID;
        grid_of(p * xmin, p * xmax, maxq, o->sym, &cand);
        double err = grid_err(w, n, stride, &cand);
        if (err < best) {
            best = err;
            *g = cand;
        }
    }
}
