/* layers_ref.c - CPU references of the layers around the linears
 * (lib/cuda/layers.cu), in double.  See ref.h. */
#include "lib/cuda/ref/ref.h"

#include <math.h>

void ptqr_embed_int(const ptqk_int_w *table, const int32_t *tok, int n, double *out)
{
    for (int t = 0; t < n; t++)
        for (int i = 0; i < table->cols; i++)
            out[(size_t)t * table->cols + i] = ptqr_int_weight(table, tok[t], i, 0);
}

void ptqr_rmsnorm(const float *x, const float *w, int dim, float eps, int n, double *out)
{
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        double inv = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) out[(size_t)t * dim + i] = xt[i] * inv * w[i];
    }
}

void ptqr_swiglu(const float *g, const float *u, size_t count, double *out)
{
    for (size_t i = 0; i < count; i++) out[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
}

void ptqr_rope(const float *x, int nheads, int hd, const float *inv_freq, int B, int T, int pos,
               double *out)
{
    for (int i = 0; i < B * T; i++) {
        int p = pos + i % T;
        for (int h = 0; h < nheads; h++)
            for (int j = 0; j < hd / 2; j++) {
                double ang = (double)((float)p * inv_freq[j]);
                size_t o0 = ((size_t)i * nheads + h) * hd + j, o1 = o0 + hd / 2;
                double a = x[o0], b = x[o1];
                out[o0] = a * cos(ang) - b * sin(ang);
                out[o1] = b * cos(ang) + a * sin(ang);
            }
    }
}

/* One query row against positions 0..L-1 of one sequence's cache. */
static void attend(const float *q, const float *kc, const float *vc, int kvd, int hd, int L,
                   double *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (int p = 0; p < L; p++) {
        double s = 0.0;
        for (int d = 0; d < hd; d++) s += (double)q[d] * kc[(size_t)p * kvd + d];
        mx = fmax(mx, s / sqrt((double)hd));
    }
    for (int d = 0; d < hd; d++) out[d] = 0.0;
    for (int p = 0; p < L; p++) {
        double s = 0.0;
        for (int d = 0; d < hd; d++) s += (double)q[d] * kc[(size_t)p * kvd + d];
        double e = exp(s / sqrt((double)hd) - mx);
        sum += e;
        for (int d = 0; d < hd; d++) out[d] += e * vc[(size_t)p * kvd + d];
    }
    for (int d = 0; d < hd; d++) out[d] /= sum;
}

void ptqr_attention(const float *q, const float *kc, const float *vc, int nh, int nkv, int hd, int B,
                    int T, int pos, int S, double *out)
{
    int kvd = nkv * hd;
    for (int i = 0; i < B * T; i++) {
        int b = i / T, L = pos + i % T + 1;
        for (int h = 0; h < nh; h++) {
            size_t c0 = (size_t)b * S * kvd + (size_t)(h / (nh / nkv)) * hd;
            size_t qo = ((size_t)i * nh + h) * hd;
            attend(q + qo, kc + c0, vc + c0, kvd, hd, L, out + qo);
        }
    }
}
