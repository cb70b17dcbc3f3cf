/* bench.h - what every benchmark in bench/ shares: the clock (ptq_now,
 * lib/base/clock.h), the median of repeated timings, and random data from
 * the library's one RNG (ptq_rng, lib/base/sample.h).  Header-only: each
 * benchmark is one file. */
#ifndef PTQC_BENCH_H
#define PTQC_BENCH_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "lib/base/clock.h"
#include "lib/base/sample.h"

static inline int bench_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0 .. n) (sorts v in place; n >= 1). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Uniform in (0, 1): never 0, so log() is safe. */
static inline double bench_unif(ptq_rng *r)
{
    return ((double)(ptq_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal (Box-Muller). */
static inline float bench_normal(ptq_rng *r)
{
    double u = bench_unif(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * bench_unif(r)));
}

/* p[i] uniform in [c - a, c + a). */
static inline void bench_fill(float *p, size_t n, float a, float c, ptq_rng *r)
{
    for (size_t i = 0; i < n; i++) p[i] = c + (float)((2.0 * ptq_rng_uniform(r) - 1.0) * a);
}

#endif
