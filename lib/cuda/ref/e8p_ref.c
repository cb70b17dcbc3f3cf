/* e8p_ref.c - CPU references of the QuIP# (E8P) linears (lib/cuda/e8p.cu):
 * the core product over the codes, and the whole linear through the
 * format's own decode.  Both decode with lib/qfmt (e8p.h, qf_e8p.c): no
 * copy of the arithmetic.  See ref.h. */
#include "lib/cuda/ref/ref.h"

#include <math.h>
#include <stdlib.h>

#include "lib/base/half.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/qtensor.h"

void ptqr_e8p_rotated(const ptqk_e8p_w *w, const float *t, int ldt, int n, double *z, double *a)
{
    int per = w->cols / 8;
    for (int tk = 0; tk < n; tk++)
        for (int r = 0; r < w->rows; r++) {
            double s = 0.0, m = 0.0;
            for (int st = 0; st < w->nstages; st++) {
                const ptqk_e8p_stage *g = &w->st[st];
                double ss = 0.0, sm = 0.0;
                for (int j = 0; j < per; j++) {
                    size_t i = (size_t)r * per + j;
                    float v[8];
                    if (g->kind == PTQK_E8P_STAGE)
                        ptq_e8p_decode(ptq_e8p_tab, ((const uint16_t *)g->codes)[i], v);
                    else
                        ptq_e81b_decode(ptq_e81b_tab, ((const uint8_t *)g->codes)[i], v);
                    for (int q = 0; q < 8; q++) {
                        double p = (double)v[q] * t[(size_t)tk * ldt + 8 * j + q];
                        ss += p, sm += fabs(p);
                    }
                }
                s += (double)g->scale * ss, m += (double)g->scale * sm;
            }
            z[(size_t)tk * w->rows + r] = s;
            a[(size_t)tk * w->rows + r] = m;
        }
}

double ptqr_linear_e8p(const ptq_qtensor *q, const uint16_t *x, int ldx, int n, double *y)
{
    size_t rows = (size_t)q->rows, cols = (size_t)q->cols;
    float *w = malloc(sizeof *w * rows * cols);
    ptq_err e;
    if (!w || ptq_qtensor_dequant(q, w, &e)) {
        free(w);
        return -1.0;
    }
    double f2 = 0.0;
    for (size_t i = 0; i < rows * cols; i++) f2 += (double)w[i] * w[i];
    for (int tk = 0; tk < n; tk++)
        for (size_t r = 0; r < rows; r++) {
            double s = 0.0;
            for (size_t k = 0; k < cols; k++)
                s += (double)w[r * cols + k] * ptq_f16_to_f32(x[(size_t)tk * ldx + k]);
            y[(size_t)tk * rows + r] = s;
        }
    free(w);
    return sqrt(f2);
}
