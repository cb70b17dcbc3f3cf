/* par.h - fork/join over a fixed number of workers, one background job,
 * and the BLAS thread policy that goes with them.
 *
 * ptq_par_run(n, fn, jobs, size) calls fn(job i) for i in [0, n): jobs
 * 1..n-1 on threads of their own, job 0 on the caller's thread, and returns
 * when every call has returned.  A thread that cannot be started runs its
 * job on the caller's thread after the others, so the work is always done.
 * The jobs are the caller's array of n structs of `size` bytes; which job
 * runs where never changes what it computes, so a caller that reduces the
 * jobs' results in index order gets the same bits for any worker count.
 *
 * BLAS: a worker that calls BLAS while other workers run must call it
 * single-threaded: n = ptq_blas_single() before the fork, and
 * ptq_blas_restore(n) after it gives back the caller's thread count.
 */
#ifndef PTQC_PAR_H
#define PTQC_PAR_H

#include <pthread.h>
#include <stddef.h>

/* The most workers any step starts. */
#define PTQ_PAR_MAX 256

void ptq_par_run(int n, void (*fn)(void *job), void *jobs, size_t size);

/* One job in the background: ptq_task_start runs fn(arg) on a thread of
 * its own (or, if none can be started, on the caller's thread before it
 * returns); ptq_task_join returns when fn has returned. */
typedef struct ptq_task {
    pthread_t tid;
    int started;
    void (*fn)(void *arg);
    void *arg;
} ptq_task;

void ptq_task_start(ptq_task *t, void (*fn)(void *arg), void *arg);
void ptq_task_join(ptq_task *t);

/* Make OpenBLAS single-threaded; returns the count it had. */
int ptq_blas_single(void);
/* Give OpenBLAS back the count ptq_blas_single returned. */
void ptq_blas_restore(int nthreads);

#endif
