/* par.c - fork/join over a fixed number of workers (see par.h). */
#include "lib/base/par.h"

#include <pthread.h>

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

typedef struct par_job {
    void (*fn)(void *job);
    void *job;
} par_job;

static void *par_thread(void *arg)
{
    par_job *j = arg;
    j->fn(j->job);
    return NULL;
}

void ptq_par_run(int n, void (*fn)(void *job), void *jobs, size_t size)
{
    if (n > PTQ_PAR_MAX) n = PTQ_PAR_MAX;
    pthread_t tid[PTQ_PAR_MAX];
    par_job pj[PTQ_PAR_MAX];
    int started[PTQ_PAR_MAX] = {0};
    char *base = jobs;
    for (int i = 0; i < n; i++) {
        pj[i].fn = fn;
        pj[i].job = base + (size_t)i * size;
    }
    for (int i = 1; i < n; i++) started[i] = !pthread_create(&tid[i], NULL, par_thread, &pj[i]);
    if (n > 0) fn(pj[0].job);
    for (int i = 1; i < n; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else fn(pj[i].job);
    }
}

int ptq_blas_single(void)
{
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void ptq_blas_restore(int nthreads)
{
    if (nthreads != 1 && nthreads > 0) openblas_set_num_threads(nthreads);
}
