/* bench_aqlm.c - the AQLM batch-1 product (lib/qfmt/qf_aqlm.c): the 2x8
 * lookup-table GEMV against FP32 dequantize + sgemv of the same layer, on
 * the Llama-7B shapes, in one run (bench/RESULTS-aqlm.md).
 *
 *   bench_aqlm [reps] [threads]      (default 21 reps, 1 thread)
 *
 * Per shape, the median of reps of: (a) the LUT gemv from the payloads;
 * (b) dequantize the payloads to FP32 (the format's decode) then
 * cblas_sgemv; (c) cblas_sgemv alone on the already dense FP32 weights (the
 * bandwidth floor of an unquantized layer, 4 bytes per weight).  The codes,
 * codebooks and scales are random: the kernels' time does not depend on the
 * values.  BLAS runs single-threaded unless threads > 1. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/qfmt/qfmt.h"

static void rand_aqlm(ptq_qtensor *q, int rows, int cols, int M, int B, ptq_rng *r)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_AQLM, q->rows = rows, q->cols = cols, q->aq_m = M, q->aq_b = B;
    size_t nc = (size_t)rows * (cols / 8) * M, nb = ((size_t)M << B) * 8;
    uint8_t *c = malloc(nc);
    for (size_t i = 0; i < nc; i++) c[i] = (uint8_t)(ptq_rng_next(r) & 255);
    q->aq_codes = c;
    q->aq_codebooks = malloc(nb * 2);
    for (size_t i = 0; i < nb; i++) q->aq_codebooks[i] = ptq_f32_to_f16(bench_normal(r) * 0.01f);
    q->aq_scales = malloc((size_t)rows * 2);
    for (int i = 0; i < rows; i++) q->aq_scales[i] = ptq_f32_to_f16(1.0f);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 21, threads = argc > 2 ? atoi(argv[2]) : 1;
    static const int shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    if (reps < 1) reps = 1;
    int nb = threads > 1 ? threads : 1;
    if (threads <= 1) nb = ptq_blas_single();
    ptq_rng r;
    ptq_rng_seed(&r, 1);
    printf("AQLM 2x8 batch-1 GEMV, %d reps (median), %d thread(s)\n", reps, threads);
    printf("%-13s %10s %14s %10s %9s %9s\n", "rows x cols", "lut ms", "deq+sgemv ms",
           "sgemv ms", "deq/lut", "sgemv/lut");
    double *t = malloc((size_t)reps * sizeof *t);
    for (int s = 0; s < 3; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        ptq_qtensor q;
        rand_aqlm(&q, R, C, 2, 8, &r);
        float *x = malloc((size_t)C * 4), *y = malloc((size_t)R * 4), *w = malloc((size_t)R * C * 4);
        bench_fill(x, (size_t)C, 1, 0, &r);
        const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_AQLM);
        ptq_err e;
        double med[3];
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < reps; i++) {
                double t0 = ptq_now();
                if (k == 0) f->gemv(&q, x, y, threads, &e);
                if (k == 1) f->decode(&q, 0, R, w);
                if (k >= 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, R, C, 1.0f, w, C, x, 1, 0.0f, y, 1);
                t[i] = ptq_now() - t0;
            }
            med[k] = bench_median(t, reps) * 1e3;
        }
        printf("%5d x %-5d %10.3f %14.3f %10.3f %8.2fx %8.2fx\n", R, C, med[0], med[1], med[2],
               med[1] / med[0], med[2] / med[0]);
        free(x), free(y), free(w);
        ptq_qtensor_free(&q);
    }
    if (threads <= 1) ptq_blas_restore(nb);
    free(t);
    return 0;
}
