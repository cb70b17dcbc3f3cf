/* bench_hessian.c - the Hessian accumulation of a compile (lib/quant/hessian.h)
 * one chunk at a time on the caller's thread (ptq_hessian_add, what the
 * compile did before) against its chunks on the workers
 * (ptq_hessian_add_chunks, rounds of --threads chunks as lib/compile/pass.c
 * hands them); built by `make bench`, never run by make check.
 *
 *   bench/bench_hessian [--cols C] [--tokens N] [--chunk K] [--threads T] [--reps R]
 *
 * defaults: SmolLM2's widths 576 and 1536 (C = 0), N = 8192 (16 x 512),
 * chunks of K = 512 rows, T = 2, R = 5.  The two are timed alternately in
 * one process (median of R each), OpenBLAS single-threaded as in a compile;
 * GFLOP/s counts N cols^2 (the upper triangle's multiply-adds x 2), and the
 * two H must be bit-identical.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/base/par.h"
#include "lib/quant/hessian.h"

static int one(int cols, int N, int K, int T, int R)
{
    float *X = malloc(sizeof(float) * (size_t)N * cols);
    float *H1 = malloc(sizeof(float) * (size_t)cols * cols), *H2 = malloc(sizeof(float) * (size_t)cols * cols);
    if (!X || !H1 || !H2) return 1;
    ptq_rng rng;
    ptq_rng_seed(&rng, 11);
    bench_fill(X, (size_t)N * cols, 1.0f, 0.0f, &rng);
    const float *xs[PTQ_PAR_MAX];
    int ns[PTQ_PAR_MAX];
    double ts[16], tp[16];
    ptq_err e;
    int rc = 0;
    for (int r = 0; r < R && !rc; r++) {
        ptq_hessian h;
        double t0 = ptq_now();
        rc |= ptq_hessian_init(&h, cols, &e);
        for (int t = 0; t < N && !rc; t += K) rc |= ptq_hessian_add(&h, X + (size_t)t * cols, N - t < K ? N - t : K, &e);
        rc |= ptq_hessian_finalize(&h, H1, &e);
        ptq_hessian_free(&h);
        ts[r] = ptq_now() - t0;
        t0 = ptq_now();
        rc |= ptq_hessian_init(&h, cols, &e);
        for (int t = 0; t < N && !rc;) {
            int nc = 0;
            for (; nc < T && t < N; nc++, t += K) xs[nc] = X + (size_t)t * cols, ns[nc] = N - t < K ? N - t : K;
            rc |= ptq_hessian_add_chunks(&h, xs, ns, nc, T, &e);
        }
        rc |= ptq_hessian_finalize(&h, H2, &e);
        ptq_hessian_free(&h);
        tp[r] = ptq_now() - t0;
    }
    if (rc) {
        fprintf(stderr, "bench_hessian: %s\n", e.msg);
        return 1;
    }
    double a = bench_median(ts, R), b = bench_median(tp, R), f = (double)N * cols * cols;
    printf("cols %d, %d tokens in chunks of %d: one at a time %.3f s (%.1f GFLOP/s); on %d workers "
           "%.3f s (%.1f GFLOP/s); speedup %.2f; H bit-identical: %s\n", cols, N, K, a, f / a / 1e9,
           T, b, f / b / 1e9, a / b, memcmp(H1, H2, sizeof(float) * (size_t)cols * cols) ? "NO" : "yes");
    free(X); free(H1); free(H2);
    return 0;
}

int main(int argc, char **argv)
{
    int cols = 0, N = 8192, K = 512, T = 2, R = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cols")) cols = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) R = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_hessian [--cols C] [--tokens N] [--chunk K] [--threads T] [--reps R]\n");
            return 2;
        }
    }
    if (R < 1 || R > 16) R = 5;
    if (T < 1 || T > PTQ_PAR_MAX || K < 1 || N < 1) return 2;
    int blas = ptq_blas_single();
    printf("load average at start: ");
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[64] = "?";
    if (f && fgets(buf, sizeof buf, f)) fputs(buf, stdout);
    else printf("?\n");
    if (f) fclose(f);
    int rc = 0;
    if (cols > 0) rc = one(cols, N, K, T, R);
    else rc = one(576, N, K, T, R) || one(1536, N, K, T, R);
    ptq_blas_restore(blas);
    return rc;
}
