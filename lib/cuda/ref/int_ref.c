/* int_ref.c - CPU reference of the packed integer linears (lib/cuda/gemv_int.cu,
 * lib/cuda/gemm_int.cu): dequantize each weight with ptq_dequant and sum in
 * double.  See ref.h. */
#include "lib/cuda/ref/ref.h"

#include <math.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"

double ptqr_int_weight(const ptqk_int_w *w, int r, int k, int round16)
{
    size_t rw = (size_t)ptq_pack_row_words(w->cols, w->bits);
    size_t gi = (size_t)r * w->ngroups + ptqk_int_group(w->g_idx, w->group, k);
    float v = ptq_dequant(w->scales[gi], w->zeros[gi], ptq_pack_get(w->qweight + r * rw, k, w->bits));
    return round16 ? ptq_f16_to_f32(ptq_f32_to_f16(v)) : v;
}

void ptqr_linear_int(const ptqk_int_w *w, int round16, const uint16_t *x, int ldx, int n, double *y,
                     double *a)
{
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++) {
            double s = 0.0, m = 0.0;
            for (int k = 0; k < w->cols; k++) {
                double p = ptqr_int_weight(w, r, k, round16) * ptq_f16_to_f32(x[(size_t)t * ldx + k]);
                s += p;
                m += fabs(p);
            }
            y[(size_t)t * w->rows + r] = s;
            a[(size_t)t * w->rows + r] = m;
        }
}
