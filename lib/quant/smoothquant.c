/* smoothquant.c - SmoothQuant smoothing factors and folding (smoothquant.h). */
#include "lib/quant/smoothquant.h"

#include <math.h>
#include <stddef.h>

int ptq_sq_scales(const float *absmax, const float *const *W, const int *rows, int nw, int cols,
                  float alpha, float *s, ptq_err *e)
{
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return ptq_fail(e, PTQ_EUSAGE, "--alpha %g: outside [0, 1]", (double)alpha);
    for (int j = 0; j < cols; j++)
        if (!isfinite(absmax[j]) || absmax[j] < 0)
            return ptq_fail(e, PTQ_EDATA, "calibration activations: channel %d has max |x| = %g",
                            j, (double)absmax[j]);
    for (int j = 0; j < cols; j++) s[j] = 1e-5f; /* the reference's clamp of max |W_j| */
    for (int i = 0; i < nw; i++)
        for (int r = 0; r < rows[i]; r++) {
            const float *w = W[i] + (size_t)r * cols;
            for (int j = 0; j < cols; j++) {
                if (!isfinite(w[j]))
                    return ptq_fail(e, PTQ_EDATA, "weight [%d][%d] is %g", r, j, (double)w[j]);
                float a = fabsf(w[j]);
                if (a > s[j]) s[j] = a;
            }
        }
    for (int j = 0; j < cols; j++) {
        double v = pow((double)absmax[j], alpha) / pow((double)s[j], 1.0 - alpha);
        s[j] = v > 1e-5 ? (float)v : 1e-5f;
        if (!isfinite(s[j]))
            return ptq_fail(e, PTQ_EDATA, "smoothing factor of channel %d is not finite "
                            "(max |x| %g)", j, (double)absmax[j]);
    }
    return PTQ_OK;
}

void ptq_sq_fold(float *norm, float *const *W, const int *rows, int nw, int cols, const float *s)
{
    for (int j = 0; j < cols; j++) norm[j] /= s[j];
    for (int i = 0; i < nw; i++)
        for (int r = 0; r < rows[i]; r++) {
            float *w = W[i] + (size_t)r * cols;
            for (int j = 0; j < cols; j++) w[j] *= s[j];
        }
}

void ptq_sq_scale_stats(float *H, float *absmax, int cols, const float *s)
{
    if (H)
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++) H[(size_t)i * cols + j] /= s[i] * s[j];
    if (absmax)
        for (int j = 0; j < cols; j++) absmax[j] /= s[j];
}
