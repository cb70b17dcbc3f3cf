/* awq.c - AWQ scale search, folding and clipping search (lib/quant/awq.h). */
#include "lib/quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/clock.h"
#include "lib/base/par.h"
#include "lib/qfmt/pack.h"
#include "lib/quant/err_metric.h"
#include "lib/quant/quant.h"


void ptq_awq_scales(const float *xmean, int cols, float ratio, float *s)
{
    float mx = 0.0f, mn = INFINITY;
    for (int j = 0; j < cols; j++) {
        float v = powf(xmean[j], ratio);
        if (!(v >= 1e-4f)) v = 1e-4f;
        s[j] = v;
        if (v > mx) mx = v;
        if (v < mn) mn = v;
    }
    float norm = sqrtf(mx * mn);
    for (int j = 0; j < cols; j++) s[j] /= norm;
}

int ptq_awq_fake_quant(const float *W, int rows, int cols, const float *s, const float *clip,
                       const ptq_gptq_opts *q, float *out, ptq_err *e)
{
    if (q->q.mse) return ptq_fail(e, PTQ_EUSAGE, "AWQ: --mse does not apply (AWQ clips itself)");
    if (q->group < 0 || q->group > PTQ_PACK_MAX_GROUP)
        return ptq_fail(e, PTQ_EUSAGE, "--group %d: out of range", q->group);
    int G = q->group ? q->group : cols, ng = ptq_pack_ngroups(cols, q->group);
    float *tmp = malloc((size_t)(G < cols ? G : cols) * sizeof *tmp);
    if (!tmp) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < ng; g++) {
            const float *w = W + (size_t)r * cols + (size_t)g * G;
            const float *sg = s ? s + (size_t)g * G : NULL;
            float c = clip ? clip[(size_t)r * ng + g] : INFINITY;
            int len = ptq_pack_group_len(cols, G, g); /* the last may be shorter */
            for (int k = 0; k < len; k++) {
                float v = sg ? w[k] * sg[k] : w[k];
                if (!isfinite(v)) {
                    free(tmp);
                    return ptq_fail(e, PTQ_EDATA, "weight [%d][%d] is %g", r, g * G + k,
                                    (double)w[k]);
                }
                tmp[k] = v > c ? c : v < -c ? -c : v;
            }
            ptq_qgrid grid;
            ptq_quant_grid(tmp, len, 1, &q->q, &grid);
            if (!ptq_quant_grid_ok(&grid)) {
                free(tmp);
                return ptq_fail(e, PTQ_EDATA, "weights of row %d from column %d span a range too "
                                "large for an fp16 scale", r, g * G);
            }
            float *o = out + (size_t)r * cols + (size_t)g * G;
            for (int k = 0; k < len; k++) {
                float v = ptq_quant_value(&grid, ptq_quant_code(&grid, tmp[k]));
                o[k] = sg ? v / sg[k] : v;
            }
        }
    free(tmp);
    return PTQ_OK;
}

/* out = GPTQ(W diag(s), diag(1/s) H diag(1/s)) diag(1/s) */
static int gptq_round(const ptq_awq_lin *l, int cols, const float *s, float *out, ptq_err *e)
{
    size_t n = (size_t)l->rows * cols;
    float *Ws = malloc(n * sizeof *Ws), *Hs = malloc((size_t)cols * cols * sizeof *Hs);
    int rc = (!Ws || !Hs) ? ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ+GPTQ search") : 0;
    ptq_qtensor qt;
    memset(&qt, 0, sizeof qt);
    if (!rc) {
        memcpy(Ws, l->W, n * sizeof *Ws);
        ptq_awq_scale_cols(Ws, l->rows, cols, s);
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
                Hs[(size_t)i * cols + j] = l->H[(size_t)i * cols + j] / (s[i] * s[j]);
        ptq_gptq_report rep;
        rc = ptq_gptq(Ws, Hs, l->rows, cols, l->q, &qt, &rep, e);
    }
    if (!rc) rc = ptq_qtensor_dequant(&qt, out, e);
    if (!rc)
        for (int r = 0; r < l->rows; r++)
            for (int j = 0; j < cols; j++) out[(size_t)r * cols + j] /= s[j];
    ptq_qtensor_free(&qt);
    free(Ws), free(Hs);
    return rc;
}

/* One ratio's candidate of the scale search, quantized on one worker. */
typedef struct grid_job {
    const float *xmean;
    int cols, nw, n_grid, i;
    const ptq_awq_lin *lins;
    float *const *Wq;   /* this candidate's nw linears */
    float *s;           /* [cols] this ratio's scales */
    double loss;
    int rc;
    ptq_err e;
} grid_job;

static void grid_run(void *arg)
{
    grid_job *j = arg;
    const int cols = j->cols;
    ptq_awq_scales(j->xmean, cols, (float)j->i / (float)j->n_grid, j->s);
    j->rc = PTQ_OK;
    for (int k = 0; k < j->nw && !j->rc; k++) {
        const ptq_awq_lin *l = &j->lins[k];
        if (l->q && l->H) j->rc = gptq_round(l, cols, j->s, j->Wq[k], &j->e);
        else if (l->q)
            j->rc = ptq_awq_fake_quant(l->W, l->rows, cols, j->s, NULL, l->q, j->Wq[k], &j->e);
        else memcpy(j->Wq[k], l->W, (size_t)l->rows * cols * sizeof *j->Wq[k]);
    }
}

/* One worker's share of a batch: items k = worker, worker + nworkers, ...
 * of the nj x nparts (candidate k / nparts, part k % nparts) pairs. */
typedef struct part_job {
    const grid_job *cands;
    int nj, nparts, worker, nworkers;
    ptq_awq_loss_fn fn;
    void *ctx;
    double *loss;       /* [nj * nparts] */
    int fail;           /* the item that failed, or -1 */
    int rc;
    ptq_err e;
} part_job;

static void part_run(void *arg)
{
    part_job *p = arg;
    p->fail = -1;
    p->rc = PTQ_OK;
    for (int k = p->worker; k < p->nj * p->nparts; k += p->nworkers) {
        const grid_job *c = &p->cands[k / p->nparts];
        p->rc = p->fn(p->ctx, p->worker, c->Wq, k % p->nparts, &p->loss[k], &p->e);
        if (p->rc) {
            p->fail = k;
            return;
        }
    }
}

int ptq_awq_loss(ptq_awq_loss_fn fn, void *ctx, int nparts, int nworkers, float *const *Wq,
                 double *loss, ptq_err *e)
{
    if (nparts < 1) nparts = 1;
    int np = nworkers < 1 ? 1 : nworkers > nparts ? nparts : nworkers;
    grid_job cand = {.Wq = Wq};
    double *l = malloc((size_t)nparts * sizeof *l);
    part_job *jobs = calloc((size_t)np, sizeof *jobs);
    if (!l || !jobs) {
        free(l), free(jobs);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    for (int w = 0; w < np; w++)
        jobs[w] = (part_job){&cand, 1, nparts, w, np, fn, ctx, l, -1, 0, {0}};
    ptq_par_run(np, part_run, jobs, sizeof *jobs);
    int rc = PTQ_OK, first = -1;
    for (int w = 0; w < np; w++) /* the first failing part's error */
        if (jobs[w].fail >= 0 && (first < 0 || jobs[w].fail < first))
            first = jobs[w].fail, rc = jobs[w].rc, *e = jobs[w].e;
    *loss = 0;
    for (int c = 0; c < nparts && !rc; c++) *loss += l[c];
    free(l), free(jobs);
    return rc;
}

/* The search's buffers: every batch's candidates and their parts' losses. */
typedef struct search_ws {
    int nworkers, nparts;
    grid_job *jobs;     /* [nworkers] */
    part_job *parts;    /* [nworkers] */
    double *loss;       /* [nworkers * nparts] */
    float *s;           /* [nworkers * cols] */
} search_ws;

/* Judge the ratios idx[0..n) in batches of up to nworkers (quantize each
 * on a worker, then every (candidate, part) on all the workers) and keep
 * the smallest loss (ties: the smaller ratio) in res / s_best. */
static int judge(const int *idx, int n, const float *xmean, int cols, const ptq_awq_lin *lins,
                 int nw, int n_grid, ptq_awq_loss_fn fn, void *ctx, float *const *Wq,
                 search_ws *ws, int *best, float *s_best, ptq_awq_result *res, ptq_err *e)
{
    const int nworkers = ws->nworkers, nparts = ws->nparts;
    for (int i0 = 0; i0 < n; i0 += nworkers) {
        int nj = n - i0 < nworkers ? n - i0 : nworkers;
        for (int w = 0; w < nj; w++) {
            grid_job *j = &ws->jobs[w];
            j->xmean = xmean, j->cols = cols, j->nw = nw, j->n_grid = n_grid;
            j->i = idx[i0 + w], j->lins = lins;
            j->Wq = Wq + (size_t)w * nw, j->s = ws->s + (size_t)w * cols;
        }
        ptq_par_run(nj, grid_run, ws->jobs, sizeof *ws->jobs);
        for (int w = 0; w < nj; w++) /* the lowest ratio's error */
            if (ws->jobs[w].rc) {
                *e = ws->jobs[w].e;
                return ws->jobs[w].rc;
            }
        int items = nj * nparts, np = items < nworkers ? items : nworkers;
        for (int w = 0; w < np; w++)
            ws->parts[w] = (part_job){ws->jobs, nj, nparts, w, np, fn, ctx, ws->loss, -1, 0, {0}};
        ptq_par_run(np, part_run, ws->parts, sizeof *ws->parts);
        int first = -1, fw = 0;
        for (int w = 0; w < np; w++)
            if (ws->parts[w].fail >= 0 && (first < 0 || ws->parts[w].fail < first))
                first = ws->parts[w].fail, fw = w;
        if (first >= 0) {
            *e = ws->parts[fw].e;
            return ws->parts[fw].rc;
        }
        for (int w = 0; w < nj; w++) { /* in the order given */
            grid_job *j = &ws->jobs[w];
            j->loss = 0;
            for (int c = 0; c < nparts; c++) j->loss += ws->loss[(size_t)w * nparts + c];
            float ratio = (float)j->i / (float)n_grid;
            if (!isfinite(j->loss))
                return ptq_fail(e, PTQ_EDATA, "AWQ: the block output error at ratio %g is %g",
                                (double)ratio, j->loss);
            res->evaluated++;
            if (j->i == 0) res->loss_rtn = j->loss;
            if (j->loss < res->loss || (j->loss == res->loss && j->i < *best)) {
                res->loss = j->loss;
                res->ratio = ratio;
                *best = j->i;
                memcpy(s_best, j->s, (size_t)cols * sizeof *s_best);
            }
        }
    }
    return PTQ_OK;
}

int ptq_awq_search(const float *xmean, int cols, const ptq_awq_lin *lins, int nw, int n_grid,
                   int refine, int nworkers, ptq_awq_loss_fn fn, void *ctx, int nparts,
                   float *const *Wq, float *s_best, ptq_awq_result *res, ptq_err *e)
{
    if (n_grid < 1) return ptq_fail(e, PTQ_EUSAGE, "--awq-grid %d: must be at least 1", n_grid);
    if (nworkers < 1) nworkers = 1;
    if (nparts < 1) nparts = 1;
    for (int j = 0; j < cols; j++)
        if (!(xmean[j] >= 0.0f) || !isfinite(xmean[j]))
            return ptq_fail(e, PTQ_EDATA, "activation magnitude of channel %d is %g", j,
                            (double)xmean[j]);
    search_ws ws = {nworkers, nparts, calloc((size_t)nworkers, sizeof *ws.jobs),
                    calloc((size_t)nworkers, sizeof *ws.parts),
                    malloc((size_t)nworkers * nparts * sizeof *ws.loss),
                    malloc((size_t)nworkers * cols * sizeof *ws.s)};
    char *done = calloc((size_t)n_grid, 1);
    int *idx = malloc((size_t)n_grid * sizeof *idx);
    int rc = PTQ_OK;
    if (!ws.jobs || !ws.parts || !ws.loss || !ws.s || !done || !idx)
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    res->ratio = 0.0f;
    res->loss = INFINITY;
    res->loss_rtn = INFINITY;
    res->evaluated = 0;
    /* full: every ratio.  refine: every PTQ_AWQ_COARSE-th ratio, then the
     * two at half the step on each side of the best so far, down to step 1
     * (9 of 20 ratios; the full scan's choice whenever the loss falls then
     * rises along the grid). */
    int step = refine && n_grid >= 2 * PTQ_AWQ_COARSE ? PTQ_AWQ_COARSE : 1, best = 0, n = 0;
    if (!rc) {
        for (int i = 0; i < n_grid; i += step) idx[n++] = i, done[i] = 1;
        rc = judge(idx, n, xmean, cols, lins, nw, n_grid, fn, ctx, Wq, &ws, &best, s_best, res,
                   e);
    }
    while (!rc && step > 1) {
        step /= 2;
        int b = best;
        n = 0;
        for (int k = -1; k <= 1; k += 2) {
            int i = b + k * step;
            if (i >= 0 && i < n_grid && !done[i]) idx[n++] = i, done[i] = 1;
        }
        rc = judge(idx, n, xmean, cols, lins, nw, n_grid, fn, ctx, Wq, &ws, &best, s_best, res,
                   e);
    }
    free(ws.jobs), free(ws.parts), free(ws.loss), free(ws.s), free(done), free(idx);
    return rc;
}

typedef struct quad_ctx {
    const float *W, *H;
    int rows, cols;
    float *buf;         /* [nworkers][2 * PTQ_ERR_ROWS * cols] */
    double *blas;       /* [nworkers] */
} quad_ctx;

static int quad_fn(void *ctx, int w, float *const *Wq, int part, double *loss, ptq_err *e)
{
    (void)part, (void)e;
    quad_ctx *c = ctx;
    *loss = ptq_quad_err(Wq[0], c->W, c->rows, c->cols, c->H,
                         c->buf + (size_t)w * 2 * PTQ_ERR_ROWS * c->cols, &c->blas[w]);
    return PTQ_OK;
}

int ptq_awq_search_linear(const float *W, int rows, int cols, const float *H,
                          const float *xmean, const ptq_gptq_opts *q, int gptq, int n_grid,
                          int refine, float *s_best, ptq_awq_result *res,
                          ptq_awq_timing *timing, ptq_err *e)
{
    return ptq_awq_search_linear_mt(W, rows, cols, H, xmean, q, gptq, n_grid, refine, 1, s_best,
                                    res, timing, e);
}

int ptq_awq_search_linear_mt(const float *W, int rows, int cols, const float *H,
                             const float *xmean, const ptq_gptq_opts *q, int gptq, int n_grid,
                             int refine, int nworkers, float *s_best, ptq_awq_result *res,
                             ptq_awq_timing *timing, ptq_err *e)
{
    double t0 = ptq_now();
    if (nworkers < 1) nworkers = 1;
    size_t nwq = (size_t)rows * cols;
    quad_ctx c = {W, H, rows, cols, NULL, NULL};
    float *wq = malloc((size_t)nworkers * nwq * sizeof *wq);
    float **wqs = malloc((size_t)nworkers * sizeof *wqs);
    c.buf = malloc((size_t)nworkers * 2 * PTQ_ERR_ROWS * cols * sizeof *c.buf);
    c.blas = calloc((size_t)nworkers, sizeof *c.blas);
    int rc;
    if (!wq || !wqs || !c.buf || !c.blas)
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
    else {
        for (int w = 0; w < nworkers; w++) wqs[w] = wq + (size_t)w * nwq;
        ptq_awq_lin lin = {W, rows, q, gptq ? H : NULL};
        rc = ptq_awq_search(xmean, cols, &lin, 1, n_grid, refine, nworkers, quad_fn, &c, 1, wqs,
                            s_best, res, e);
    }
    if (timing && c.blas) {
        timing->total += ptq_now() - t0;
        for (int w = 0; w < nworkers; w++) timing->blas += c.blas[w];
    }
    free(wq), free(wqs), free(c.buf), free(c.blas);
    return rc;
}

/* One shrink of one group of the clip search on one worker: err[r] the
 * output error of row r with its group clamped to p max|w|. */
typedef struct clip_job {
    const float *wg, *xg, *mx;
    const ptq_gptq_opts *q;  /* group 0: the extracted group is one row */
    int rows, L, n, i, n_grid;
    float *cl, *cw, *E;      /* this worker's [rows], [rows, L], [rows, n] */
    double *err;             /* [rows] this shrink's errors */
    double blas;
    int rc;
    ptq_err e;
} clip_job;

static void clip_run(void *arg)
{
    clip_job *j = arg;
    const int rows = j->rows, L = j->L, n = j->n;
    float p = 1.0f - (float)j->i / (float)j->n_grid;
    for (int r = 0; r < rows; r++) j->cl[r] = p * j->mx[r];
    j->rc = ptq_awq_fake_quant(j->wg, rows, L, NULL, j->cl, j->q, j->cw, &j->e);
    if (j->rc) return;
    for (size_t k = 0; k < (size_t)rows * L; k++) j->cw[k] -= j->wg[k];
    double tt = ptq_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, L, 1.0f, j->cw, L, j->xg, L,
                0.0f, j->E, n);
    j->blas += ptq_now() - tt;
    for (int r = 0; r < rows; r++) {
        double err = 0;
        const float *er = j->E + (size_t)r * n;
        for (int t = 0; t < n; t++) err += (double)er[t] * er[t];
        j->err[r] = err;
    }
}

int ptq_awq_clip_search(const float *W, int rows, int cols, const ptq_gptq_opts *q,
                        const float *X, int ntok, int n_grid, float max_shrink, float *maxval,
                        ptq_awq_timing *timing, ptq_err *e)
{
    return ptq_awq_clip_search_mt(W, rows, cols, q, X, ntok, n_grid, max_shrink, 1, maxval,
                                  timing, e);
}

/* Group g's L columns of W into wg [rows, L] and of the every-step-th token
 * of X into xg [n, L]; mx [rows] max |w| of each row's group. */
static void clip_gather(const float *W, int rows, int cols, const float *X, int n, int step,
                        int g, int G, int L, float *xg, float *wg, float *mx)
{
    for (int t = 0; t < n; t++)
        memcpy(xg + (size_t)t * L, X + (size_t)t * step * cols + (size_t)g * G,
               (size_t)L * sizeof *xg);
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * cols + (size_t)g * G;
        memcpy(wg + (size_t)r * L, w, (size_t)L * sizeof *wg);
        float m = 0;
        for (int k = 0; k < L; k++) m = fabsf(w[k]) > m ? fabsf(w[k]) : m;
        mx[r] = m;
    }
}

int ptq_awq_clip_search_mt(const float *W, int rows, int cols, const ptq_gptq_opts *q,
                           const float *X, int ntok, int n_grid, float max_shrink, int nworkers,
                           float *maxval, ptq_awq_timing *timing, ptq_err *e)
{
    double t0 = ptq_now(), tb = 0;
    if (ntok < 1) return ptq_fail(e, PTQ_EDATA, "AWQ clip search: no calibration tokens");
    if (q->group < 0 || q->group > PTQ_PACK_MAX_GROUP)
        return ptq_fail(e, PTQ_EUSAGE, "--group %d: out of range", q->group);
    int G = q->group && q->group < cols ? q->group : cols, ng = ptq_pack_ngroups(cols, q->group);
    int step = ntok / PTQ_AWQ_CLIP_TOKENS > 1 ? ntok / PTQ_AWQ_CLIP_TOKENS : 1;
    int n = (ntok + step - 1) / step;
    int nsteps = (int)(max_shrink * (float)n_grid);
    if (nsteps < 1) nsteps = 1;
    int nw = nworkers < 1 ? 1 : nworkers > nsteps ? nsteps : nworkers;
    size_t R = (size_t)rows;
    float *xg = malloc((size_t)n * G * sizeof *xg), *wg = malloc(R * G * sizeof *wg);
    float *mx = malloc(R * sizeof *mx);
    float *cw = malloc((size_t)nw * R * G * sizeof *cw), *E = malloc((size_t)nw * R * n * sizeof *E);
    float *cl = malloc((size_t)nw * R * sizeof *cl);
    double *err = malloc((size_t)nsteps * R * sizeof *err), *best = malloc(R * sizeof *best);
    clip_job *jobs = calloc((size_t)nw, sizeof *jobs);
    int rc = PTQ_OK;
    if (!xg || !wg || !mx || !cw || !E || !cl || !err || !best || !jobs)
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ clip search");
    ptq_gptq_opts qg = *q;
    qg.group = 0; /* each extracted group is one row of G columns */
    for (int g = 0; g < ng && !rc; g++) {
        /* the group's L columns (the last group may be shorter than G) */
        const int L = ptq_pack_group_len(cols, G, g);
        clip_gather(W, rows, cols, X, n, step, g, G, L, xg, wg, mx);
        for (int i0 = 0; i0 < nsteps && !rc; i0 += nw) {
            int nj = nsteps - i0 < nw ? nsteps - i0 : nw;
            for (int w = 0; w < nj; w++) {
                clip_job *j = &jobs[w];
                j->wg = wg, j->xg = xg, j->mx = mx, j->q = &qg;
                j->rows = rows, j->L = L, j->n = n, j->i = i0 + w, j->n_grid = n_grid;
                j->cl = cl + w * R, j->cw = cw + w * R * G, j->E = E + w * R * n;
                j->err = err + (size_t)(i0 + w) * R;
                j->blas = 0;
            }
            ptq_par_run(nj, clip_run, jobs, sizeof *jobs);
            for (int w = 0; w < nj; w++) tb += jobs[w].blas;
            for (int w = 0; w < nj && !rc; w++)
                if (jobs[w].rc) *e = jobs[w].e, rc = jobs[w].rc;
        }
        /* the first smallest error of each row, in shrink order */
        for (int r = 0; r < rows; r++) best[r] = INFINITY;
        for (int i = 0; i < nsteps && !rc; i++) {
            float p = 1.0f - (float)i / (float)n_grid;
            for (int r = 0; r < rows; r++)
                if (err[(size_t)i * R + r] < best[r]) {
                    best[r] = err[(size_t)i * R + r];
                    maxval[(size_t)r * ng + g] = p * mx[r];
                }
        }
    }
    free(xg), free(wg), free(cw), free(E), free(mx), free(cl), free(err), free(best), free(jobs);
    if (timing) {
        timing->total += ptq_now() - t0;
        timing->blas += tb;
    }
    return rc;
}

void ptq_awq_clip_apply(float *W, int rows, int cols, int group, const float *maxval)
{
    int G = group ? group : cols, ng = ptq_pack_ngroups(cols, group);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < ng; g++) {
            float c = maxval[(size_t)r * ng + g];
            float *w = W + (size_t)r * cols + (size_t)g * G;
            int len = ptq_pack_group_len(cols, G, g);
            for (int k = 0; k < len; k++) w[k] = w[k] > c ? c : w[k] < -c ? -c : w[k];
        }
}

void ptq_awq_scale_cols(float *W, int rows, int cols, const float *s)
{
    for (int r = 0; r < rows; r++) {
        float *w = W + (size_t)r * cols;
        for (int j = 0; j < cols; j++) w[j] *= s[j];
    }
}

void ptq_awq_div_vec(float *v, int n, const float *s)
{
    for (int j = 0; j < n; j++) v[j] /= s[j];
}

void ptq_awq_div_rows(float *W, float *bias, int rows, int cols, const float *s)
{
    for (int r = 0; r < rows; r++) {
        float *w = W + (size_t)r * cols;
        for (int j = 0; j < cols; j++) w[j] /= s[r];
        if (bias) bias[r] /= s[r];
    }
}

void ptq_awq_gqa_mean(const float *xq, int n_heads, int n_kv, int hd, float *out)
{
    int grp = n_heads / n_kv;
    for (int kh = 0; kh < n_kv; kh++)
        for (int i = 0; i < hd; i++) {
            double m = 0;
            for (int h = kh * grp; h < (kh + 1) * grp; h++) m += xq[(size_t)h * hd + i];
            float v = (float)(m / grp);
            for (int h = kh * grp; h < (kh + 1) * grp; h++) out[(size_t)h * hd + i] = v;
        }
}

void ptq_awq_gqa_v(const float *s, int n_heads, int n_kv, int hd, float *sv)
{
    int grp = n_heads / n_kv;
    for (int kh = 0; kh < n_kv; kh++)
        for (int i = 0; i < hd; i++) sv[(size_t)kh * hd + i] = s[(size_t)kh * grp * hd + i];
}

void ptq_awq_mlp(const float *X, int n, int D, int inter, const float *Wg, const float *Wu,
                 const float *Wd, float *hb, float *hb2, float *out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, inter, D, 1.0f, X, D, Wg, D, 0.0f, hb, inter);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, inter, D, 1.0f, X, D, Wu, D, 0.0f, hb2, inter);
    size_t nI = (size_t)n * inter;
    for (size_t i = 0; i < nI; i++) {
        float g = hb[i];
        hb[i] = g / (1.0f + expf(-g)) * hb2[i];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, D, inter, 1.0f, hb, inter, Wd, inter, 0.0f, out, D);
}
