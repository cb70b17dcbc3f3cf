/* bench_awq.c - AWQ's searches on one Llama-7B-sized linear: time and the
 * share spent in BLAS.
 *
 *   bench/bench_awq [ROWS COLS TOKENS REPEATS]
 *
 * Default: the gate/up shape of Llama-7B (11008 out x 4096 in), 64 x 512
 * calibration tokens, W4 asymmetric groups of 128, n_grid 20.  Random
 * weights and activations whose channels differ in magnitude (as real
 * activations do).  Measured in one run: the scale search
 * (ptq_awq_search_linear: 20 candidates, each fake-quantized and judged by
 * its output error over the tokens through their Gram matrix, one ssymm per
 * 256 rows) and the clip search (ptq_awq_clip_search: 10 shrinks per group
 * on 512 subsampled tokens, one sgemm per group and shrink); for each the
 * wall time and the share inside BLAS calls, as lib/quant/awq.c times them.  The
 * Gram matrix (one ssyrk over the tokens) is timed apart: the compile
 * computes it once per layer for GPTQ anyway.  With REPEATS > 1 the medians.
 * OpenBLAS runs with its default thread count.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/quant/awq.h"

int main(int argc, char **argv)
{
    int rows = argc > 1 ? atoi(argv[1]) : 11008, cols = argc > 2 ? atoi(argv[2]) : 4096;
    int ntok = argc > 3 ? atoi(argv[3]) : 64 * 512, reps = argc > 4 ? atoi(argv[4]) : 1;
    if (rows < 1 || cols < 128 || cols % 128 || ntok < 1 || reps < 1 || reps > 99) {
        fprintf(stderr, "usage: bench_awq [ROWS COLS(multiple of 128) TOKENS REPEATS]\n");
        return 2;
    }
    size_t nw = (size_t)rows * cols, nx = (size_t)ntok * cols;
    float *W = malloc(nw * sizeof *W), *X = malloc(nx * sizeof *X);
    float *H = malloc((size_t)cols * cols * sizeof *H), *xm = calloc((size_t)cols, sizeof *xm);
    float *s = malloc((size_t)cols * sizeof *s);
    float *clip = malloc((size_t)rows * (cols / 128) * sizeof *clip);
    float *mag = malloc((size_t)cols * sizeof *mag);
    if (!W || !X || !H || !xm || !s || !clip || !mag) {
        fprintf(stderr, "bench_awq: out of memory\n");
        return 1;
    }
    ptq_rng rng;
    ptq_rng_seed(&rng, 88172645463325252ull);
    for (size_t i = 0; i < nw; i++) W[i] = 0.02f * bench_normal(&rng);
    /* log-normal channels */
    for (int j = 0; j < cols; j++) mag[j] = expf(1.5f * bench_normal(&rng));
    for (size_t i = 0; i < nx; i++) X[i] = bench_normal(&rng) * mag[i % (size_t)cols];
    for (size_t i = 0; i < nx; i++) xm[i % (size_t)cols] += fabsf(X[i]);
    for (int j = 0; j < cols; j++) xm[j] /= (float)ntok;

    double t0 = ptq_now();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, ntok, 1.0f, X, cols, 0.0f, H, cols);
    double t_gram = ptq_now() - t0;

    ptq_gptq_opts q;
    memset(&q, 0, sizeof q);
    q.q.bits = 4, q.q.sym = 0, q.group = 128;
    double st_[99], sb[99], ct[99], cb[99];
    ptq_awq_result res;
    ptq_err e;
    for (int r = 0; r < reps; r++) {
        ptq_awq_timing tm = {0, 0}, tc = {0, 0};
        if (ptq_awq_search_linear(W, rows, cols, H, xm, &q, 0, PTQ_AWQ_GRID, 0, s, &res, &tm, &e) ||
            ptq_awq_clip_search(W, rows, cols, &q, X, ntok, PTQ_AWQ_GRID, PTQ_AWQ_MAX_SHRINK, clip,
                                &tc, &e)) {
            fprintf(stderr, "bench_awq: %s\n", e.msg);
            return 1;
        }
        st_[r] = tm.total, sb[r] = tm.blas / tm.total;
        ct[r] = tc.total, cb[r] = tc.blas / tc.total;
    }
    double flops = 2.0 * rows * (double)cols * cols * PTQ_AWQ_GRID;
    double ts = bench_median(st_, reps), bs = bench_median(sb, reps);
    double tcl = bench_median(ct, reps), bc = bench_median(cb, reps);
    printf("AWQ on a %d x %d linear (out x in), %d calibration tokens, W4 asym g128, n_grid %d, "
           "OpenBLAS %d threads, %d run(s), medians\n",
           rows, cols, ntok, PTQ_AWQ_GRID, openblas_get_num_threads(), reps);
    printf("  Gram matrix (ssyrk, once)      %8.2f s\n", t_gram);
    printf("  scale search (20 candidates)   %8.2f s   BLAS share %5.1f %%   %.0f GFLOP/s in BLAS"
           "   (ratio %.2f, loss %.4g vs RTN %.4g)\n",
           ts, 100 * bs, flops / (ts * bs) * 1e-9, (double)res.ratio, res.loss, res.loss_rtn);
    printf("  clip search (10 shrinks/group) %8.2f s   BLAS share %5.1f %%\n", tcl, 100 * bc);
    printf("  total search                   %8.2f s   BLAS share %5.1f %%   (target: >= 50 %%)\n",
           ts + tcl, 100 * (ts * bs + tcl * bc) / (ts + tcl));
    free(W), free(X), free(H), free(xm), free(s), free(clip), free(mag);
    return 0;
}
