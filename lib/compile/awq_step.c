/* awq_step.c - the AWQ step of one decoder layer (lib/compile/awq_step.h). */
#include "lib/compile/awq_step.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/clock.h"
#include "lib/base/half_rows.h"
#include "lib/base/par.h"
#include "lib/model/forward_ops.h"
#include "lib/qfmt/pack.h"
#include "lib/quant/err_metric.h"

static const int grp_first[4] = {PTQ_Q, PTQ_O, PTQ_GATE, PTQ_DOWN};
static const int grp_count[4] = {3, 1, 2, 1};

static double now(void) { return ptq_now(); }

static int cols_of(const ptq_config *c, int g)
{
    int r, k;
    ptq_linear_shape(c, grp_first[g], &r, &k);
    return k;
}

/* One chunk of samples through the layer up to the input of group g, on
 * worker w: the parts of the forward (lib/model/model.h) that lead there. */
typedef struct cap_job {
    const awq_layer_ctx *c;
    const ptq_layer_w *lw;
    int g, w, b0, B;
    float *X;
    int rc;
    ptq_err e;
} cap_job;

static void cap_run(void *arg)
{
    cap_job *j = arg;
    const awq_layer_ctx *c = j->c;
    const int D = c->cfg->hidden, T = c->T, n = j->B * T, cols = cols_of(c->cfg, j->g);
    ptq_fwd *f = c->fwds[j->w];
    float *x = c->x32s[j->w], *dst = j->X + (size_t)j->b0 * T * cols;
    ptq_f16_to_f32_n(c->hidden + (size_t)j->b0 * T * D, x, (size_t)n * D, 1);
    ptq_capture cap;
    memset(&cap, 0, sizeof cap);
    j->rc = PTQ_OK;
    if (j->g == 0) {
        ptq_rmsnorm(dst, x, j->lw->attn_norm, n, D, c->cfg->rms_eps);
        return;
    }
    if (j->g == 1) cap.o_in = dst;
    j->rc = ptq_fwd_attn(f, j->lw, x, j->B, T, &cap, &j->e);
    if (j->g == 1 || j->rc) return;
    j->rc = ptq_fwd_attn_out(f, j->lw, x, NULL, n, &j->e);
    if (j->rc) return;
    if (j->g == 2) {
        ptq_rmsnorm(dst, x, j->lw->mlp_norm, n, D, c->cfg->rms_eps);
        return;
    }
    cap.down_in = dst;
    j->rc = ptq_fwd_mlp(f, j->lw, x, n, &cap, 0, &j->e);
}

/* X [nsamp * T, cols]: the input of group g of the layer lw, every sample,
 * chunks of samples on the workers. */
static int capture(const awq_layer_ctx *c, const ptq_layer_w *lw, int g, float *X, ptq_err *e)
{
    cap_job jobs[AWQ_MAX_WORKERS];
    for (int b0 = 0; b0 < c->nsamp;) {
        int nj = 0;
        for (; nj < c->nworkers && b0 < c->nsamp; nj++) {
            int B = c->nsamp - b0 < c->chunk ? c->nsamp - b0 : c->chunk;
            jobs[nj] = (cap_job){c, lw, g, nj, b0, B, X, 0, {0}};
            b0 += B;
        }
        ptq_par_run(nj, cap_run, jobs, sizeof *jobs);
        for (int i = 0; i < nj; i++)
            if (jobs[i].rc) {
                *e = jobs[i].e;
                return jobs[i].rc;
            }
    }
    return PTQ_OK;
}

/* ---------------------------------------------------------------- objectives */

/* The objective of a block; candidates are judged on worker w's scratch
 * (lws[w] a shallow copy of the layer whose pointers candidates swap). */
typedef struct block_ctx {
    const awq_layer_ctx *c;
    ptq_layer_w lws[AWQ_MAX_WORKERS];
    const float *X;     /* group input [N, cols] (MLP) */
    const float *ref;   /* float block output [N, D] */
    float *out[AWQ_MAX_WORKERS];            /* [chunk * T, D] (MLP) */
    float *hb[AWQ_MAX_WORKERS], *hb2[AWQ_MAX_WORKERS]; /* [chunk * T, intermediate] (MLP) */
    double blas[AWQ_MAX_WORKERS];
} block_ctx;

static double sqdiff(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s;
}

/* rows [*r0, *r0 + *n) of the N tokens: chunk `part` of the samples */
static void part_rows(const awq_layer_ctx *c, int part, size_t *r0, int *n)
{
    int b0 = part * c->chunk, B = c->nsamp - b0 < c->chunk ? c->nsamp - b0 : c->chunk;
    *r0 = (size_t)b0 * c->T;
    *n = B * c->T;
}

static int nparts_of(const awq_layer_ctx *c) { return (c->nsamp + c->chunk - 1) / c->chunk; }

/* attention: x + o_proj(attention(q, k, v)) of chunk `part` of the samples
 * (the parts of the layer's forward up to h) on worker w, into out_all or
 * compared to ref (the residual x cancels in the difference) */
static int attn_part(block_ctx *b, int w, int part, float *out_all, double *loss, ptq_err *e)
{
    const awq_layer_ctx *c = b->c;
    const int D = c->cfg->hidden;
    size_t r0;
    int n;
    part_rows(c, part, &r0, &n);
    float *x = c->x32s[w];
    double t0 = now();
    ptq_f16_to_f32_n(c->hidden + r0 * D, x, (size_t)n * D, 1);
    int rc = ptq_fwd_attn(c->fwds[w], &b->lws[w], x, n / c->T, c->T, NULL, e);
    if (!rc) rc = ptq_fwd_attn_out(c->fwds[w], &b->lws[w], x, NULL, n, e);
    if (!rc && out_all) memcpy(out_all + r0 * D, x, (size_t)n * D * sizeof *x);
    else if (!rc) *loss = sqdiff(x, b->ref + r0 * D, (size_t)n * D);
    b->blas[w] += now() - t0; /* the forward is sgemm work but for softmax/rope */
    return rc;
}

static int attn_fn(void *ctx, int w, float *const *Wq, int part, double *loss, ptq_err *e)
{
    block_ctx *b = ctx;
    for (int i = 0; i < 3; i++) b->lws[w].w[PTQ_Q + i] = Wq[i];
    return attn_part(b, w, part, NULL, loss, e);
}

/* the MLP (gate Wg, up Wu, the float down) of chunk `part` on worker w */
static void mlp_part(block_ctx *b, int w, const float *Wg, const float *Wu, int part,
                     float *out_all, double *loss)
{
    const awq_layer_ctx *c = b->c;
    const int D = c->cfg->hidden, NI = c->cfg->intermediate;
    size_t r0;
    int n;
    part_rows(c, part, &r0, &n);
    double t0 = now();
    float *o = out_all ? out_all + r0 * D : b->out[w];
    ptq_awq_mlp(b->X + r0 * D, n, D, NI, Wg, Wu, b->lws[w].w[PTQ_DOWN], b->hb[w], b->hb2[w], o);
    if (!out_all) *loss = sqdiff(o, b->ref + r0 * D, (size_t)n * D);
    b->blas[w] += now() - t0;
}

static int mlp_fn(void *ctx, int w, float *const *Wq, int part, double *loss, ptq_err *e)
{
    (void)e;
    mlp_part(ctx, w, Wq[0], Wq[1], part, NULL, loss);
    return PTQ_OK;
}

/* The float block output of every chunk into ref, the chunks on the
 * workers (worker w: chunks w, w + nworkers, ...). */
typedef struct ref_job {
    block_ctx *b;
    int g, w, np;
    float *ref;
    int rc;
    ptq_err e;
} ref_job;

static void ref_run(void *arg)
{
    ref_job *j = arg;
    block_ctx *b = j->b;
    const ptq_layer_w *lw = &b->lws[j->w];
    j->rc = PTQ_OK;
    for (int p = j->w; p < nparts_of(b->c) && !j->rc; p += j->np) {
        if (j->g == 0) j->rc = attn_part(b, j->w, p, j->ref, NULL, &j->e);
        else mlp_part(b, j->w, lw->w[PTQ_GATE], lw->w[PTQ_UP], p, j->ref, NULL);
    }
}

static int block_ref(block_ctx *b, int g, float *ref, ptq_err *e)
{
    const awq_layer_ctx *c = b->c;
    int np = nparts_of(c) < c->nworkers ? nparts_of(c) : c->nworkers;
    ref_job jobs[AWQ_MAX_WORKERS];
    for (int w = 0; w < np; w++) jobs[w] = (ref_job){b, g, w, np, ref, 0, {0}};
    ptq_par_run(np, ref_run, jobs, sizeof *jobs);
    for (int w = 0; w < np; w++)
        if (jobs[w].rc) {
            *e = jobs[w].e;
            return jobs[w].rc;
        }
    return PTQ_OK;
}

/* one linear's own output through the Gram matrix H of its inputs */
typedef struct lin_ctx {
    const float *W, *H;
    int rows, cols;
    float *buf;         /* [nworkers][2 * PTQ_ERR_ROWS * cols] */
} lin_ctx;

static int lin_fn(void *ctx, int w, float *const *Wq, int part, double *loss, ptq_err *e)
{
    (void)part, (void)e;
    lin_ctx *l = ctx;
    *loss = ptq_quad_err(Wq[0], l->W, l->rows, l->cols, l->H,
                         l->buf + (size_t)w * 2 * PTQ_ERR_ROWS * l->cols, NULL);
    return PTQ_OK;
}

/* ---------------------------------------------------------------- the step */

/* awq+gptq: the AWQ result of group g as --method awq makes it (the search
 * with round-to-nearest, then the clips of its linears but q/k on the
 * inputs X [N, cols] divided by the scales), judged by fn: r->loss is the
 * loss of the clipped, rounded weights; sa [cols] the scales; clip[k] the
 * clips of linear k (NULL for q/k). */
static int awq_alt(const awq_layer_ctx *c, int g, const ptq_awq_lin *lins0, int n,
                   const float *xmean, const float *X, int cols, size_t N, ptq_awq_loss_fn fn,
                   void *ctx, int nparts, float *const *Wq, float *sa, float **clip,
                   ptq_awq_result *r, ptq_err *e)
{
    ptq_awq_lin lins[3];
    for (int k = 0; k < n; k++) {
        lins[k] = lins0[k];
        lins[k].H = NULL;
    }
    int rc = ptq_awq_search(xmean, cols, lins, n, c->n_grid, c->refine, c->nworkers, fn, ctx,
                            nparts, Wq, sa, r, e);
    float *Xs = NULL;
    if (!rc) {
        Xs = malloc(N * cols * sizeof *Xs);
        if (!Xs) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ clip search");
        else
            for (size_t t = 0; t < N; t++)
                for (int j = 0; j < cols; j++) Xs[t * cols + j] = X[t * cols + j] / sa[j];
    }
    for (int k = 0; k < n && !rc; k++) {
        int which = grp_first[g] + k, rows = lins[k].rows;
        if (which == PTQ_Q || which == PTQ_K) continue;
        const ptq_gptq_opts *q = lins[k].q;
        int ng = ptq_pack_ngroups(cols, q->group); /* the last may be shorter */
        float *Ws = malloc((size_t)rows * cols * sizeof *Ws);
        clip[k] = malloc((size_t)rows * ng * sizeof *clip[k]);
        if (!Ws || !clip[k]) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ clip search");
        if (!rc) {
            memcpy(Ws, lins[k].W, (size_t)rows * cols * sizeof *Ws);
            ptq_awq_scale_cols(Ws, rows, cols, sa);
            rc = ptq_awq_clip_search_mt(Ws, rows, cols, q, Xs, (int)N, c->n_grid,
                                        PTQ_AWQ_MAX_SHRINK, c->nworkers, clip[k], NULL, e);
        }
        free(Ws);
    }
    free(Xs);
    for (int k = 0; k < n && !rc; k++)
        rc = ptq_awq_fake_quant(lins[k].W, lins[k].rows, cols, sa, clip[k], lins[k].q, Wq[k], e);
    if (!rc) rc = ptq_awq_loss(fn, ctx, nparts, c->nworkers, Wq, &r->loss, e);
    if (!rc && !isfinite(r->loss))
        rc = ptq_fail(e, PTQ_EDATA, "AWQ: the block output error of the clipped weights is %g",
                      r->loss);
    return rc;
}

/* awq+gptq: keep the better of the GPTQ-rounded search r (scales s) and the
 * AWQ result ra (scales sa, clips clip[k], taken over when chosen). */
static void keep_better(const awq_layer_ctx *c, int g, awq_layer_res *res, ptq_awq_result *r,
                        float *s, const ptq_awq_result *ra, const float *sa, float **clip,
                        int cols)
{
    res->loss_gptq[g] = r->loss;
    res->loss_awq[g] = ra->loss;
    res->choice[g] = ra->loss < r->loss ? 2 : 1;
    for (int k = 0; k < grp_count[g]; k++) {
        int which = grp_first[g] + k;
        if (res->choice[g] == 2 && c->awq[which] == 2) {
            res->rtn[which] = 1;
            res->clip[which] = clip[k];
            clip[k] = NULL;
        }
        free(clip[k]);
        clip[k] = NULL;
    }
    if (res->choice[g] == 2) {
        r->ratio = ra->ratio;
        r->loss = ra->loss;
        memcpy(s, sa, (size_t)cols * sizeof *s);
    }
}

void awq_layer_res_free(awq_layer_res *r)
{
    for (int i = 0; i < PTQ_NLINEAR; i++) free(r->clip[i]);
    for (int g = 0; g < 4; g++) free(r->scale[g]);
    memset(r, 0, sizeof *r);
}

static int group_of(int which) { return which < PTQ_O ? 0 : which == PTQ_O ? 1 : which < PTQ_DOWN ? 2 : 3; }

/* awq+gptq on a block objective: the AWQ result of group g, the better kept */
static int alt_block(const awq_layer_ctx *c, int g, awq_layer_res *res, const ptq_awq_lin *lins,
                     int n, const float *xmean, const float *X, int cols, size_t N,
                     ptq_awq_loss_fn fn, void *ctx, float *const *Wq, float *s, ptq_awq_result *r,
                     ptq_err *e)
{
    float *sa = malloc((size_t)cols * sizeof *sa), *clip[3] = {NULL, NULL, NULL};
    ptq_awq_result ra;
    int rc = sa ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc)
        rc = awq_alt(c, g, lins, n, xmean, X, cols, N, fn, ctx, nparts_of(c), Wq, sa, clip, &ra,
                     e);
    if (!rc) keep_better(c, g, res, r, s, &ra, sa, clip, cols);
    for (int k = 0; k < 3; k++) free(clip[k]);
    free(sa);
    return rc;
}

/* xmean [cols] = mean |x_j| over the N tokens of X (for o with grouped-query
 * attention averaged over the query heads of each kv head). */
static int x_mean(const awq_layer_ctx *c, int g, const float *X, size_t N, int cols, float *xmean,
                  ptq_err *e)
{
    const ptq_config *cfg = c->cfg;
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
    for (size_t t = 0; t < N; t++)
        for (int j = 0; j < cols; j++) acc[j] += fabs((double)X[t * cols + j]);
    for (int j = 0; j < cols; j++) xmean[j] = (float)(acc[j] / (double)N);
    free(acc);
    if (g == 1 && cfg->n_heads != cfg->n_kv_heads) {
        float *m = malloc((size_t)cols * sizeof *m);
        if (!m) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        ptq_awq_gqa_mean(xmean, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim, m);
        memcpy(xmean, m, (size_t)cols * sizeof *m);
        free(m);
    }
    return PTQ_OK;
}

/* H [cols, cols] = scale X^T X, full (both triangles, for GPTQ): one ssyrk. */
static void gram(const float *X, size_t N, int cols, float scale, float *H, double *tblas)
{
    double tt = now();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, (int)N, scale, X, cols, 0.0f, H, cols);
    *tblas += now() - tt;
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < i; j++) H[(size_t)i * cols + j] = H[(size_t)j * cols + i];
}

/* The search of o (g 1) or down (g 3), judged by their own output through
 * the Gram matrix of their inputs. */
static int search_own(const awq_layer_ctx *c, ptq_layer_w *lw, int g, const float *X, size_t N,
                      int cols, const float *xmean, float *s, ptq_awq_result *r,
                      awq_layer_res *res, double *tblas, ptq_err *e)
{
    int which = grp_first[g], rows, rc = PTQ_OK;
    ptq_linear_shape(c->cfg, which, &rows, &(int){0});
    float *H = malloc((size_t)cols * cols * sizeof *H);
    if (!H) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ Gram matrix");
    gram(X, N, cols, 1.0f, H, tblas);
    ptq_awq_timing tm = {0, 0};
    rc = ptq_awq_search_linear_mt(lw->w[which], rows, cols, H, xmean, c->q[which],
                                  c->awq[which] == 2, c->n_grid, c->refine, c->nworkers, s, r,
                                  &tm, e);
    *tblas += tm.blas;
    if (!rc && c->awq[which] == 2) {
        lin_ctx lc = {lw->w[which], H, rows, cols, NULL};
        ptq_awq_lin lin = {lw->w[which], rows, c->q[which], NULL};
        const size_t nw = (size_t)c->nworkers, nwq = (size_t)rows * cols;
        float *wq = malloc(nw * nwq * sizeof *wq), *sa = malloc(cols * sizeof *sa);
        float *clip[1] = {NULL}, *wqs[AWQ_MAX_WORKERS];
        lc.buf = malloc(nw * 2 * (size_t)PTQ_ERR_ROWS * cols * sizeof *lc.buf);
        ptq_awq_result ra;
        if (!wq || !sa || !lc.buf) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
        for (size_t w = 0; w < nw && wq; w++) wqs[w] = wq + w * nwq;
        if (!rc)
            rc = awq_alt(c, g, &lin, 1, xmean, X, cols, N, lin_fn, &lc, 1, wqs, sa, clip, &ra, e);
        if (!rc) keep_better(c, g, res, r, s, &ra, sa, clip, cols);
        free(clip[0]), free(wq), free(sa), free(lc.buf);
    }
    free(H);
    return rc;
}

/* The search of q/k/v (g 0, judged on the attention block) or gate/up (g 2,
 * on the MLP block), the candidates on the workers. */
static int search_block(const awq_layer_ctx *c, ptq_layer_w *lw, int g, const float *X,
                        size_t N, int cols, const float *xmean, float *s, ptq_awq_result *r,
                        awq_layer_res *res, double *tblas, ptq_err *e)
{
    const int D = c->cfg->hidden, NI = c->cfg->intermediate, n = grp_count[g], nw = c->nworkers;
    int rc = PTQ_OK, gptq = 0;
    block_ctx *b = calloc(1, sizeof *b);
    if (!b) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
    b->c = c;
    for (int w = 0; w < nw; w++) b->lws[w] = *lw;
    ptq_awq_lin lins[3];
    float *Wq[AWQ_MAX_WORKERS * 3], *H = NULL; /* batch candidate j, linear k: Wq[j * n + k] */
    memset(Wq, 0, sizeof Wq);
    for (int k = 0; k < n; k++) gptq |= c->awq[grp_first[g] + k] == 2;
    if (gptq) { /* the Hessian of the search tokens, for awq+gptq's rounding */
        H = malloc((size_t)cols * cols * sizeof *H);
        if (!H) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ Hessian");
        else gram(X, N, cols, 2.0f / (float)N, H, tblas);
    }
    for (int k = 0; k < n && !rc; k++) {
        int which = grp_first[g] + k, rows;
        ptq_linear_shape(c->cfg, which, &rows, &(int){0});
        lins[k].W = lw->w[which];
        lins[k].rows = rows;
        lins[k].q = c->q[which];
        lins[k].H = c->awq[which] == 2 ? H : NULL;
        for (int w = 0; w < nw && !rc; w++)
            if (!(Wq[w * n + k] = malloc((size_t)rows * cols * sizeof(float))))
                rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
    }
    float *ref = malloc(N * D * sizeof *ref);
    if (!ref) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ block outputs");
    ptq_awq_loss_fn fn = g == 0 ? attn_fn : mlp_fn;
    if (!rc && g != 0) {
        size_t step = (size_t)c->chunk * c->T;
        b->X = X;
        for (int w = 0; w < nw && !rc; w++) {
            b->out[w] = malloc(step * D * sizeof(float));
            b->hb[w] = malloc(step * NI * sizeof(float));
            b->hb2[w] = malloc(step * NI * sizeof(float));
            if (!b->out[w] || !b->hb[w] || !b->hb2[w]) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
        }
    }
    if (!rc) rc = block_ref(b, g, ref, e);
    b->ref = ref;
    if (!rc)
        rc = ptq_awq_search(xmean, cols, lins, n, c->n_grid, c->refine, nw, fn, b, nparts_of(c),
                            Wq, s, r, e);
    if (!rc && gptq) rc = alt_block(c, g, res, lins, n, xmean, X, cols, N, fn, b, Wq, s, r, e);
    for (int w = 0; w < nw; w++) {
        *tblas += b->blas[w];
        free(b->out[w]), free(b->hb[w]), free(b->hb2[w]);
    }
    for (int k = 0; k < AWQ_MAX_WORKERS * 3; k++) free(Wq[k]);
    free(ref), free(H), free(b);
    return rc;
}

/* The scale search of group g on X [N, cols]; s [cols] out.  0 with
 * res->scale[g] set, or PTQ_OK without when the group is not scaled. */
static int search_group(const awq_layer_ctx *c, ptq_layer_w *lw, int g, const float *X,
                        awq_layer_res *res, ptq_err *e)
{
    const int cols = cols_of(c->cfg, g);
    const size_t N = (size_t)c->nsamp * c->T;
    float *xmean = calloc((size_t)cols, sizeof *xmean), *s = malloc((size_t)cols * sizeof *s);
    if (!xmean || !s) {
        free(xmean), free(s);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ search");
    }
    int rc = x_mean(c, g, X, N, cols, xmean, e);
    ptq_awq_result r;
    memset(&r, 0, sizeof r);
    double t0 = now(), tblas = 0;
    if (!rc && (g == 1 || g == 3)) rc = search_own(c, lw, g, X, N, cols, xmean, s, &r, res, &tblas, e);
    else if (!rc) rc = search_block(c, lw, g, X, N, cols, xmean, s, &r, res, &tblas, e);
    res->seconds += now() - t0;
    res->blas_seconds += tblas;
    free(xmean);
    if (rc) {
        free(s);
        return rc;
    }
    res->ratio[g] = r.ratio;
    res->loss[g] = r.loss;
    res->loss_rtn[g] = r.loss_rtn;
    res->scale[g] = s;
    return PTQ_OK;
}

/* Fold group g's scales into the op before it and into its linears. */
static int fold_group(const awq_layer_ctx *c, ptq_layer_w *lw, int g, const float *s, ptq_err *e)
{
    const ptq_config *cfg = c->cfg;
    const int D = cfg->hidden, NI = cfg->intermediate, hd = cfg->head_dim;
    const int cols = cols_of(cfg, g);
    if (g == 0) ptq_awq_div_vec(lw->attn_norm, D, s);
    if (g == 2) ptq_awq_div_vec(lw->mlp_norm, D, s);
    if (g == 3) ptq_awq_div_rows(lw->w[PTQ_UP], NULL, NI, D, s);
    if (g == 1) {
        int kvd = cfg->n_kv_heads * hd;
        float *sv = malloc((size_t)kvd * sizeof *sv);
        if (!sv) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        ptq_awq_gqa_v(s, cfg->n_heads, cfg->n_kv_heads, hd, sv);
        ptq_awq_div_rows(lw->w[PTQ_V], lw->bias[PTQ_V], kvd, D, sv);
        free(sv);
    }
    for (int k = 0; k < grp_count[g]; k++) {
        int which = grp_first[g] + k, rows;
        ptq_linear_shape(cfg, which, &rows, &(int){0});
        ptq_awq_scale_cols(lw->w[which], rows, cols, s);
    }
    return PTQ_OK;
}

int awq_layer(const awq_layer_ctx *c, ptq_layer_w *lw, awq_layer_res *res, ptq_err *e)
{
    const ptq_config *cfg = c->cfg;
    memset(res, 0, sizeof *res);
    size_t N = (size_t)c->nsamp * c->T, maxcols = 0;
    for (int g = 0; g < 4; g++)
        if ((size_t)cols_of(cfg, g) > maxcols) maxcols = (size_t)cols_of(cfg, g);
    float *X = malloc(N * maxcols * sizeof *X);
    if (!X) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the AWQ activations (%zu MB)",
                            N * maxcols * sizeof(float) >> 20);
    int rc = PTQ_OK;
    /* scales */
    for (int g = 0; g < 4 && !rc; g++) {
        int any = 0, dense = 0;
        for (int k = 0; k < grp_count[g]; k++) {
            any |= c->awq[grp_first[g] + k];
            dense |= !c->q[grp_first[g] + k];
        }
        if (g == 1) dense |= !c->q[PTQ_V];
        if (g == 3) dense |= !c->q[PTQ_UP];
        if (!any || dense) continue;
        rc = capture(c, lw, g, X, e);
        if (!rc) rc = search_group(c, lw, g, X, res, e);
        if (!rc) rc = fold_group(c, lw, g, res->scale[g], e);
    }
    /* clips, on the inputs of the folded layer */
    for (int g = 0; g < 4 && !rc; g++) {
        int any = 0;
        for (int k = 0; k < grp_count[g]; k++) {
            int which = grp_first[g] + k;
            any |= c->awq[which] == 1 && which != PTQ_Q && which != PTQ_K;
        }
        if (!any) continue;
        const int cols = cols_of(cfg, g);
        rc = capture(c, lw, g, X, e);
        for (int k = 0; k < grp_count[g] && !rc; k++) {
            int which = grp_first[g] + k, rows;
            if (c->awq[which] != 1 || which == PTQ_Q || which == PTQ_K) continue;
            ptq_linear_shape(cfg, which, &rows, &(int){0});
            int ng = ptq_pack_ngroups(cols, c->q[which]->group);
            res->clip[which] = malloc((size_t)rows * ng * sizeof(float));
            if (!res->clip[which]) {
                rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
                break;
            }
            ptq_awq_timing tm = {0, 0};
            rc = ptq_awq_clip_search_mt(lw->w[which], rows, cols, c->q[which], X, (int)N,
                                        c->n_grid, PTQ_AWQ_MAX_SHRINK, c->nworkers,
                                        res->clip[which], &tm, e);
            res->seconds += tm.total;
            res->blas_seconds += tm.blas;
        }
    }
    free(X);
    if (rc) awq_layer_res_free(res);
    return rc;
}

void awq_report(const awq_layer_res *res, int which, cJSON *entry)
{
    int g = group_of(which);
    if (res->scale[g]) {
        char d[32];
        snprintf(d, sizeof d, "%g", (double)res->ratio[g]);
        cJSON_AddNumberToObject(entry, "awq_ratio", strtod(d, NULL));
        cJSON_AddNumberToObject(entry, "awq_block_loss", res->loss[g]);
        cJSON_AddNumberToObject(entry, "awq_block_loss_rtn", res->loss_rtn[g]);
        if (res->choice[g]) {
            cJSON_AddStringToObject(entry, "awq_gptq_choice", res->choice[g] == 2 ? "awq" : "gptq");
            cJSON_AddNumberToObject(entry, "awq_block_loss_gptq", res->loss_gptq[g]);
            cJSON_AddNumberToObject(entry, "awq_block_loss_awq", res->loss_awq[g]);
        }
    } else {
        cJSON_AddBoolToObject(entry, "awq_scaled", 0);
    }
    cJSON_AddBoolToObject(entry, "awq_clipped", res->clip[which] != NULL);
}
