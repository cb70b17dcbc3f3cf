/* hadamard.c - weight and Hessian transforms of the randomized Hadamard
 * incoherence (lib/quant/hadamard.h). */
#include <stdlib.h>
#include <string.h>

#include "lib/base/par.h"
#include "lib/base/sample.h"
#include "lib/quant/hadamard.h"

void ptq_incoh_signs(uint64_t seed, int8_t *s, int n)
{
    ptq_rng r;
    ptq_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) s[i] = (ptq_rng_next(&r) & 1) ? -1 : 1;
}

void ptq_incoh_free(ptq_incoh *c)
{
    ptq_had_free(&c->hm);
    ptq_had_free(&c->hn);
    free(c->sm);
    free(c->sn);
    memset(c, 0, sizeof *c);
}

int ptq_incoh_init(ptq_incoh *c, int m, int n, uint64_t seed, ptq_err *e)
{
    memset(c, 0, sizeof *c);
    c->m = m, c->n = n, c->seed = seed, c->threads = 1;
    int rc = ptq_had_plan(&c->hm, m, e);
    if (!rc) rc = ptq_had_plan(&c->hn, n, e);
    if (rc) {
        ptq_incoh_free(c);
        return rc;
    }
    c->sm = malloc((size_t)m);
    c->sn = malloc((size_t)n);
    if (!c->sm || !c->sn) {
        ptq_incoh_free(c);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for sign vectors of a %d x %d linear", m,
                        n);
    }
    ptq_incoh_signs(seed, c->sm, m);
    ptq_incoh_signs(seed + 1, c->sn, n);
    return 0;
}

typedef struct tf_job {
    const ptq_had *h;
    const int8_t *s;
    float *A, *tmp;
    int r0, r1, inv;
} tf_job;

static void tf_rows(void *arg)
{
    const tf_job *j = arg;
    float *v = j->A + (size_t)j->r0 * j->h->n;
    if (j->inv) ptq_had_inv(j->h, j->s, v, j->r1 - j->r0, j->tmp);
    else ptq_had_fwd(j->h, j->s, v, j->r1 - j->r0, j->tmp);
}

/* The map (plan h, signs s) on each of the count rows of A, over up to nt
 * workers (tmp: nt * h->n floats). */
static void rows_par(const ptq_had *h, const int8_t *s, float *A, int count, int inv, int nt,
                     float *tmp)
{
    tf_job jobs[PTQ_PAR_MAX];
    if (nt > count / 16) nt = count / 16 > 0 ? count / 16 : 1; /* at least 16 rows a worker */
    for (int t = 0; t < nt; t++) {
        tf_job j = {h, s, A, tmp + (size_t)t * h->n, (int)((long)count * t / nt),
                    (int)((long)count * (t + 1) / nt), inv};
        jobs[t] = j;
    }
    if (nt == 1) tf_rows(&jobs[0]);
    else ptq_par_run(nt, tf_rows, jobs, sizeof *jobs);
}

/* Rows of A[r][c] through the map on c (plan hc), then its columns through
 * the map on r (plan hr); inv: the inverse maps; rows over nt workers. */
static int both_sides(const ptq_had *hr, const int8_t *sr, const ptq_had *hc, const int8_t *sc,
                      float *A, int inv, int nt, ptq_err *e)
{
    int r = hr->n, c = hc->n;
    size_t big = (size_t)r * c;
    nt = nt < 1 ? 1 : nt > PTQ_PAR_MAX ? PTQ_PAR_MAX : nt;
    float *T = malloc(big * sizeof *T);
    float *tmp = malloc((size_t)nt * (r > c ? r : c) * sizeof *tmp);
    if (!T || !tmp) {
        free(T);
        free(tmp);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory transforming a %d x %d matrix", r, c);
    }
    rows_par(hc, sc, A, r, inv, nt, tmp);
    ptq_had_transpose(A, r, c, T);
    rows_par(hr, sr, T, c, inv, nt, tmp);
    ptq_had_transpose(T, c, r, A);
    free(T);
    free(tmp);
    return 0;
}

int ptq_incoh_weights(const ptq_incoh *c, float *W, ptq_err *e)
{
    return both_sides(&c->hm, c->sm, &c->hn, c->sn, W, 0, c->threads, e);
}

int ptq_incoh_weights_inv(const ptq_incoh *c, float *W, ptq_err *e)
{
    return both_sides(&c->hm, c->sm, &c->hn, c->sn, W, 1, c->threads, e);
}

int ptq_incoh_hessian(const ptq_incoh *c, float *H, ptq_err *e)
{
    return both_sides(&c->hn, c->sn, &c->hn, c->sn, H, 0, c->threads, e);
}
