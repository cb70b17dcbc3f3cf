/* par.c - fork/join over a fixed number of workers, and one background
 * job (see par.h); the BLAS
 * thread policy is lib/base/blas_threads.c (it needs OpenBLAS, which
 * libptqc-core does not link). */
#include "lib/base/par.h"

#include <pthread.h>

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

static void *task_thread(void *p)
{
    ptq_task *t = p;
    t->fn(t->arg);
    return NULL;
}

void ptq_task_start(ptq_task *t, void (*fn)(void *arg), void *arg)
{
    t->fn = fn, t->arg = arg;
    t->started = !pthread_create(&t->tid, NULL, task_thread, t);
    if (!t->started) fn(arg);
}

void ptq_task_join(ptq_task *t)
{
    if (t->started) pthread_join(t->tid, NULL);
    t->started = 0;
}
