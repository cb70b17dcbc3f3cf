/* dense_ref.c - CPU reference of the fp16 linears (lib/cuda/dense.cu). */
#include "lib/cuda/ref/ref.h"

#include <math.h>

#include "lib/base/half.h"

void ptqr_linear_f16(const ptqk_f16_w *w, const uint16_t *x, int ldx, int n, double *y, double *a)
{
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++) {
            double s = 0.0, m = 0.0;
            for (int k = 0; k < w->cols; k++) {
                double p = (double)ptq_f16_to_f32(w->w[(size_t)r * w->cols + k]) *
                           ptq_f16_to_f32(x[(size_t)t * ldx + k]);
                s += p;
                m += fabs(p);
            }
            y[(size_t)t * w->rows + r] = s;
            a[(size_t)t * w->rows + r] = m;
        }
}
