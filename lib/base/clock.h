/* clock.h - the one monotonic clock of ptqc: seconds since an arbitrary
 * origin, for timings and progress (never for anything that reaches a file
 * or a result).  Inline so the CUDA host code and the benches share it. */
#ifndef PTQC_CLOCK_H
#define PTQC_CLOCK_H

#include <time.h>

static inline double ptq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
