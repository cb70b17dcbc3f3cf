/* hadamard.c - weight and Hessian transforms of the randomized Hadamard
 * incoherence (lib/quant/hadamard.h). */
#include <stdlib.h>
#include <string.h>

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
    c->m = m, c->n = n, c->seed = seed;
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

static void transpose(const float *a, int r, int c, float *t)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) t[(size_t)j * r + i] = a[(size_t)i * c + j];
}

/* Rows of A[r][c] through the map on c (plan hc), then its columns through
 * the map on r (plan hr); inv: the inverse maps. */
static int both_sides(const ptq_had *hr, const int8_t *sr, const ptq_had *hc, const int8_t *sc,
                      float *A, int inv, ptq_err *e)
{
    int r = hr->n, c = hc->n;
    size_t big = (size_t)r * c;
    float *T = malloc(big * sizeof *T);
    float *tmp = malloc((size_t)(r > c ? r : c) * sizeof *tmp);
    if (!T || !tmp) {
        free(T);
        free(tmp);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory transforming a %d x %d matrix", r, c);
    }
    if (inv) ptq_had_inv(hc, sc, A, r, tmp);
    else ptq_had_fwd(hc, sc, A, r, tmp);
    transpose(A, r, c, T);
    if (inv) ptq_had_inv(hr, sr, T, c, tmp);
    else ptq_had_fwd(hr, sr, T, c, tmp);
    transpose(T, c, r, A);
    free(T);
    free(tmp);
    return 0;
}

int ptq_incoh_weights(const ptq_incoh *c, float *W, ptq_err *e)
{
    return both_sides(&c->hm, c->sm, &c->hn, c->sn, W, 0, e);
}

int ptq_incoh_weights_inv(const ptq_incoh *c, float *W, ptq_err *e)
{
    return both_sides(&c->hm, c->sm, &c->hn, c->sn, W, 1, e);
}

int ptq_incoh_hessian(const ptq_incoh *c, float *H, ptq_err *e)
{
    return both_sides(&c->hn, c->sn, &c->hn, c->sn, H, 0, e);
}
