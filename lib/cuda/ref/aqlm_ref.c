/* aqlm_ref.c - CPU reference of the AQLM linear (lib/cuda/aqlm.cu): each
 * weight from the shared decode arithmetic of lib/qfmt/aqlm_decode.h (the
 * one the CPU runtime's ptq_qf_aqlm_decode uses, bit for bit), the products
 * summed in double.  See ref.h. */
#include "lib/cuda/ref/ref.h"

#include <math.h>
#include <stdlib.h>

#include "lib/base/half.h"
#include "lib/qfmt/aqlm_decode.h"

void ptqr_aqlm_group(const ptqk_aqlm_w *w, int r, int g, int round16, float *out)
{
    ptq_aq_group_f16(w->codebooks, w->scales, w->b, w->m, w->codes, w->cols / PTQ_AQ_D, r, g, out);
    for (int i = 0; round16 && i < PTQ_AQ_D; i++) out[i] = ptq_f16_to_f32(ptq_f32_to_f16(out[i]));
}

void ptqr_linear_aqlm(const ptqk_aqlm_w *w, int round16, const uint16_t *x, int ldx, int n, double *y,
                      double *a)
{
    int G = w->cols / PTQ_AQ_D;
    float *row = malloc(sizeof *row * (size_t)w->cols), *xf = malloc(sizeof *xf * (size_t)n * w->cols);
    if (!row || !xf) {
        for (size_t i = 0; i < (size_t)n * w->rows; i++) y[i] = a[i] = NAN;
        free(row), free(xf);
        return;
    }
    for (int t = 0; t < n; t++)
        for (int k = 0; k < w->cols; k++) xf[(size_t)t * w->cols + k] = ptq_f16_to_f32(x[(size_t)t * ldx + k]);
    for (int r = 0; r < w->rows; r++) {
        for (int g = 0; g < G; g++) ptqr_aqlm_group(w, r, g, round16, row + (size_t)g * PTQ_AQ_D);
        for (int t = 0; t < n; t++) {
            double s = 0.0, m = 0.0;
            for (int k = 0; k < w->cols; k++) {
                double p = (double)row[k] * xf[(size_t)t * w->cols + k];
                s += p;
                m += fabs(p);
            }
            y[(size_t)t * w->rows + r] = s;
            a[(size_t)t * w->rows + r] = m;
        }
    }
    free(row), free(xf);
}
