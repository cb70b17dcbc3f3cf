/* bench_gptq.c - GPTQ and RTN speed, as a ratio to OpenBLAS/LAPACK doing the
 * same floating-point work in the same run.
 *
 * Two linears: W [4096][4096] and W [4096][11008] (out 4096, in 11008, so H is
 * 11008^2: Llama-7B's down_proj).  Synthetic weights; H from 2048 synthetic
 * tokens (per-channel log-normal scales plus a shared rank-16 component, so H
 * is far from diagonal; rank-deficient as in real calibration, the damping
 * makes it definite).  GPTQ: 4 bits, group 128, act-order, damp 0.01,
 * block 128.
 *
 * Baseline = the textbook cost of GPTQ's floating-point work on OpenBLAS:
 *   spotrf + spotri + spotrf on the damped H (the reference's chol of the
 *   inverse), plus one sgemm with the total flops of the lazy-batch updates,
 *   rows x cols x cols (M = rows, N = cols, K = cols / 2),
 * both with OpenBLAS's threads.  ratio = baseline time / GPTQ time (>= 0.5 is
 * the target).  Every figure is a median.
 *
 * Usage: bench_gptq [--reps N] [--big-reps N] [--threads N] [--no-big]
 *   --reps: repetitions of the 4096 case (default 3); --big-reps: of the
 *   11008 case (default 1; it needs ~2.5 GB and a minute per repetition);
 *   --threads: OpenBLAS threads for the baseline and GPTQ workers (default
 *   OpenBLAS's own count).
 */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/quant/gptq.h"
#include "lib/quant/hessian.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_gptq: out of memory (%zu MB)\n", n >> 20);
        exit(1);
    }
    return p;
}

/* H of `tokens` synthetic activation rows, through ptq_hessian */
static float *make_hessian(int cols, int tokens, ptq_rng *s)
{
    const int R = 16;
    float *X = xmalloc(sizeof(float) * (size_t)tokens * cols);
    float *F = xmalloc(sizeof(float) * (size_t)tokens * R), *B = xmalloc(sizeof(float) * (size_t)R * cols);
    float *c = xmalloc(sizeof(float) * (size_t)cols);
    for (int j = 0; j < cols; j++) c[j] = expf(0.7f * bench_normal(s));
    for (size_t i = 0; i < (size_t)tokens * R; i++) F[i] = bench_normal(s);
    for (size_t i = 0; i < (size_t)R * cols; i++) B[i] = bench_normal(s);
    for (int t = 0; t < tokens; t++)
        for (int j = 0; j < cols; j++) X[(size_t)t * cols + j] = c[j] * bench_normal(s);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tokens, cols, R, 1.0f, F, R, B, cols,
                1.0f, X, cols);
    float *H = xmalloc(sizeof(float) * (size_t)cols * cols);
    ptq_hessian h;
    ptq_err e;
    if (ptq_hessian_init(&h, cols, &e) || ptq_hessian_add(&h, X, tokens, &e) ||
        ptq_hessian_finalize(&h, H, &e)) {
        fprintf(stderr, "bench_gptq: %s\n", e.msg);
        exit(1);
    }
    ptq_hessian_free(&h);
    free(X), free(F), free(B), free(c);
    return H;
}

/* returns 1 when the target is met */
static int run_case(int rows, int cols, int reps, int threads, ptq_rng *s)
{
    size_t hn = (size_t)cols * cols;
    float *W = xmalloc(sizeof(float) * (size_t)rows * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) W[i] = 0.02f * bench_normal(s);
    double t0 = ptq_now();
    float *H = make_hessian(cols, 2048, s);
    double th = ptq_now() - t0;
    float *Hw = xmalloc(sizeof(float) * hn);
    ptq_gptq_opts o;
    memset(&o, 0, sizeof o);
    o.q.bits = 4, o.q.sym = 0, o.group = 128, o.act_order = 1;
    o.damp = 0.01f, o.block = 128, o.threads = threads;
    double mean = 0;
    for (int i = 0; i < cols; i++) mean += H[(size_t)i * cols + i];
    mean /= cols;
    /* baseline operands */
    int K = cols / 2;
    float *A = xmalloc(sizeof(float) * (size_t)rows * K), *Bm = xmalloc(sizeof(float) * (size_t)K * cols);
    float *C = xmalloc(sizeof(float) * (size_t)rows * cols);
    for (size_t i = 0; i < (size_t)rows * K; i++) A[i] = 1e-3f * bench_normal(s);
    for (size_t i = 0; i < (size_t)K * cols; i++) Bm[i] = 1e-3f * bench_normal(s);
    memset(C, 0, sizeof(float) * (size_t)rows * cols);
    double *tg = xmalloc(sizeof(double) * reps), *tr = xmalloc(sizeof(double) * reps);
    double *tc = xmalloc(sizeof(double) * reps), *tm = xmalloc(sizeof(double) * reps);
    int ok = 1;
    for (int r = 0; r < reps; r++) {
        ptq_qtensor q;
        ptq_gptq_report rep;
        ptq_err e;
        /* GPTQ */
        memcpy(Hw, H, sizeof(float) * hn);
        memset(&q, 0, sizeof q);
        t0 = ptq_now();
        if (ptq_gptq(W, Hw, rows, cols, &o, &q, &rep, &e)) {
            fprintf(stderr, "bench_gptq: %s\n", e.msg);
            exit(1);
        }
        tg[r] = ptq_now() - t0;
        ptq_qtensor_free(&q);
        /* RTN */
        t0 = ptq_now();
        if (ptq_rtn(W, rows, cols, &o, &q, &e)) {
            fprintf(stderr, "bench_gptq: %s\n", e.msg);
            exit(1);
        }
        tr[r] = ptq_now() - t0;
        ptq_qtensor_free(&q);
        /* baseline: chol(inverse(H + damp)) the reference's way, OpenBLAS threads */
        memcpy(Hw, H, sizeof(float) * hn);
        for (int i = 0; i < cols; i++) Hw[(size_t)i * cols + i] += (float)(0.01 * mean);
        t0 = ptq_now();
        int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', cols, Hw, cols);
        if (!info) info = LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', cols, Hw, cols);
        if (!info) info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', cols, Hw, cols);
        tc[r] = ptq_now() - t0;
        if (info) ok = 0;
        t0 = ptq_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, K, -1.0f, A, K, Bm, cols,
                    1.0f, C, cols);
        tm[r] = ptq_now() - t0;
        if (r == 0)
            printf("  (rep 1: damp used %g, loss %.4g, Hessian of 2048 tokens built in %.1f s)\n",
                   (double)rep.damp_used, rep.loss, th);
    }
    double g = bench_median(tg, reps), rt = bench_median(tr, reps);
    double c = bench_median(tc, reps), m = bench_median(tm, reps);
    double flops_c = 4.0 / 3.0 * (double)cols * cols * cols, flops_m = (double)rows * cols * cols;
    double ratio = (c + m) / g;
    printf("%5d x %-5d  %9.2f %9.2f %9.2f %9.2f %9.3f   %.3f  %s\n", rows, cols, g, c, m, c + m, rt,
           ratio, ratio >= 0.5 ? "ok (>= 0.5)" : "MISSED (< 0.5)");
    printf("               baseline GFLOP/s: chol(inv) %.1f, sgemm %.1f%s\n", flops_c / c / 1e9,
           flops_m / m / 1e9, ok ? "" : "  (baseline Cholesky FAILED)");
    free(W), free(H), free(Hw), free(A), free(Bm), free(C);
    free(tg), free(tr), free(tc), free(tm);
    return ratio >= 0.5 && ok;
}

int main(int argc, char **argv)
{
    int reps = 3, big_reps = 1, threads = 0, big = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--big-reps") && i + 1 < argc) big_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-big")) big = 0;
        else {
            fprintf(stderr, "usage: bench_gptq [--reps N] [--big-reps N] [--threads N] [--no-big]\n");
            return 1;
        }
    }
    if (reps < 1) reps = 1;
    if (big_reps < 1) big_reps = 1;
    if (threads > 0) openblas_set_num_threads(threads);
    threads = openblas_get_num_threads();
    printf("GPTQ 4 bits, group 128, act-order, damp 0.01, block 128; %d threads (OpenBLAS for the "
           "baseline, GPTQ's own workers); medians of %d (4096) and %d (11008) reps\n",
           threads, reps, big_reps);
    printf("rows x cols     GPTQ s  chol(inv) s  sgemm s  baseline s   RTN s   ratio\n");
    ptq_rng s;
    ptq_rng_seed(&s, 12345);
    int ok = run_case(4096, 4096, reps, threads, &s);
    if (big) ok &= run_case(4096, 11008, big_reps, threads, &s);
    return ok ? 0 : 2;
}
