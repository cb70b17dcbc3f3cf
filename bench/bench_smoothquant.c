/* bench_smoothquant.c - SmoothQuant's statistics pass: time, and the share of
 * it spent in BLAS.
 *
 * The pass the compile engine runs per layer for smoothquant: the layer's
 * forward over the calibration tokens capturing the q/k/v input and the
 * gate/up input, each added to lib/quant/hessian.c (ssyrk + per-channel max |x|,
 * the statistic SmoothQuant needs), then the factors (lib/quant/smoothquant.c).
 * BLAS share: the same sgemm/ssyrk calls (7 linears, 2 attention products
 * per sequence and head, 2 ssyrk) timed alone on the same shapes, divided by
 * the pass time.  A synthetic layer of a 1B-class shape (hidden 2048,
 * intermediate 5632, 32 heads / 4 kv heads of 64: TinyLlama), 4 x 512
 * tokens, OpenBLAS on one thread as in the compile.  Medians of 5 runs.
 * Usage: bench_smoothquant [tokens_per_seq] [seqs]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/quant/hessian.h"
#include "lib/model/model.h"
#include "lib/quant/smoothquant.h"
#include "tests/synth.h"

void openblas_set_num_threads(int);

int main(int argc, char **argv)
{
    int T = argc > 1 ? atoi(argv[1]) : 512, B = argc > 2 ? atoi(argv[2]) : 4, N = B * T;
    openblas_set_num_threads(1);
    ptq_config c = synth_tiny_config();
    c.hidden = 2048, c.intermediate = 5632, c.n_heads = 32, c.n_kv_heads = 4, c.head_dim = 64;
    c.n_layers = 1, c.max_pos = T;
    synth_model m;
    ptq_err e;
    if (synth_init(&m, &c, 1)) return 1;
    ptq_fwd *f;
    if (ptq_fwd_create(&f, &c, N, T, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    int D = c.hidden, NI = c.intermediate, qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    float *x0 = malloc(sizeof(float) * N * D), *x = malloc(sizeof(float) * N * D);
    float *a1 = malloc(sizeof(float) * N * D), *a2 = malloc(sizeof(float) * N * D);
    float *s = malloc(sizeof(float) * D), *y = malloc(sizeof(float) * (size_t)N * NI);
    float *y2 = malloc(sizeof(float) * (size_t)N * NI), *S = malloc(sizeof(float) * T * T), *Hc = malloc(sizeof(float) * D * D);
    for (size_t i = 0; i < (size_t)N * D; i++) x0[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1;
    for (size_t i = 0; i < (size_t)N * NI; i++) y[i] = 0.01f;
    enum { R = 5 };
    double tp[R], tb[R];
    ptq_layer_w *w = &m.layers[0];
    for (int r = 0; r < R; r++) {
        memcpy(x, x0, sizeof(float) * N * D);
        double t0 = ptq_now();
        ptq_capture cap = {.attn_in = a1, .mlp_in = a2};
        ptq_hessian h1, h2;
        ptq_hessian_init(&h1, D, &e), ptq_hessian_init(&h2, D, &e);
        if (ptq_fwd_layer(f, w, x, B, T, &cap, &e) || ptq_hessian_add(&h1, a1, N, &e) ||
            ptq_hessian_add(&h2, a2, N, &e))
            return fprintf(stderr, "%s\n", e.msg), 1;
        const float *W3[3] = {w->w[PTQ_Q], w->w[PTQ_K], w->w[PTQ_V]};
        int rows3[3] = {qd, kvd, kvd};
        if (ptq_sq_scales(h1.absmax, W3, rows3, 3, D, 0.5f, s, &e)) return 1;
        const float *W2[2] = {w->w[PTQ_GATE], w->w[PTQ_UP]};
        int rows2[2] = {NI, NI};
        if (ptq_sq_scales(h2.absmax, W2, rows2, 2, D, 0.5f, s, &e)) return 1;
        tp[r] = ptq_now() - t0;
        ptq_hessian_free(&h1), ptq_hessian_free(&h2);
        /* the BLAS calls of that pass alone */
        t0 = ptq_now();
        int shapes[7][2] = {{qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {NI, D}, {NI, D}, {D, NI}};
        for (int k = 0; k < 7; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, shapes[k][0], shapes[k][1], 1.0f,
                        y, shapes[k][1], w->w[k], shapes[k][1], 0.0f, y2, shapes[k][0]);
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < c.n_heads; hh++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, 64, 1.0f, a1, qd, a2,
                            kvd, 0.0f, S, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, 64, T, 1.0f, S, T, a2,
                            kvd, 0.0f, a1, qd);
            }
        for (int k = 0; k < 2; k++)
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, N, 1.0f, x0, D, 0.0f, Hc, D);
        tb[r] = ptq_now() - t0;
    }
    double mp = bench_median(tp, R), mb = bench_median(tb, R); /* R odd: the middle one */
    printf("SmoothQuant statistics pass, 1 layer hidden %d / intermediate %d, %d tokens, 1 thread\n",
           D, NI, N);
    printf("pass %.3f s (median of %d), BLAS alone %.3f s, BLAS share %.1f %%, %.0f tokens/s\n",
           mp, R, mb, 100 * mb / mp, N / mp);
    synth_free(&m);
    ptq_fwd_free(f);
    free(x0), free(x), free(a1), free(a2), free(s), free(y), free(y2), free(S), free(Hc);
    return 0;
}
