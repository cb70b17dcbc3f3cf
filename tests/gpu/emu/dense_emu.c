/* dense_emu.c - ptqk_linear_f16 (lib/cuda/dense.cu, cuBLAS) as a plain loop
 * for the CPU emulation (tests/gpu/emu/run.sh aqlm): y[t][r] = sum_k
 * W[r][k] x[t][k], fp16 inputs, float fmaf in column order. */
#include <math.h>

#include "lib/base/half.h"
#include "lib/cuda/ptqrt_kernels.h"

int ptqk_linear_f16(void *cublas, const ptqk_f16_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n)
{
    (void)cublas;
    if (n < 1 || w->rows < 1 || w->cols < 1 || ldx < w->cols || ldy < w->rows) return 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++) {
            float acc = 0.0f;
            for (int k = 0; k < w->cols; k++)
                acc = fmaf(ptq_f16_to_f32(w->w[(size_t)r * w->cols + k]), ptq_f16_to_f32(x[(size_t)t * ldx + k]), acc);
            y[(size_t)t * ldy + r] = acc;
        }
    return 0;
}
