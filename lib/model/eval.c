/* eval.c - perplexity (ptqc-ppl-v1), KL divergence and top-1 agreement
 * (see eval.h).
 *
 * Work: windows are cut into groups of G = ptq_eval_group(ctx) windows from
 * window 0; a group is one forward pass of G*ctx rows.  Rounds of whole groups
 * share one widening of every layer: per round the calling thread embeds the
 * round's tokens and widens layer l (of the model, then of the reference),
 * then `threads` workers each run their groups (group i of the round goes to
 * worker i % threads) through that layer with their own ptq_fwd scratch; after
 * the last layer the workers compute the logits and per-token figures of their
 * groups' windows.  The providers are only ever called from the calling
 * thread.
 *
 * Per predicted position:
 *   NLL = logsumexp(logits) - logits[target], in double from the float logits;
 * with a reference, KL(ref || model) = sum_v p_ref(v) (log p_ref(v) - log p(v))
 * in double, and top-1 agreement compares the argmax (first index on ties).
 * Each window's sums run over its positions in order; the totals add the
 * windows in window order.  Logits are computed per window in blocks of
 * logit_rows(ctx, V) rows.  Nothing depends on the number of workers or on the
 * round size, so with a single-threaded BLAS the result is bit-identical for
 * any threads and batch (eval.h).
 */
#include "lib/model/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/clock.h"
#include "lib/base/par.h"

#define EVAL_ROUND_TOKENS 2048      /* default round: about this many tokens */
#define EVAL_LOGIT_BYTES (64L << 20) /* logits of one block, per model and worker */

int ptq_eval_group(int ctx)
{
    return ctx >= PTQ_EVAL_GROUP_TOKENS ? 1 : PTQ_EVAL_GROUP_TOKENS / (ctx > 0 ? ctx : 1);
}

/* Rows of logits per classifier call: all ctx - 1 predicting rows of a
 * window, fewer when a block would pass EVAL_LOGIT_BYTES (at least 16). */
static int logit_rows(int ctx, int V)
{
    long lr = EVAL_LOGIT_BYTES / ((long)V * (long)sizeof(float));
    if (lr < 16) lr = 16;
    if (lr > ctx - 1) lr = ctx - 1;
    return (int)lr;
}

/* One model's state: its layer buffer, head, the round's hidden states, and
 * per worker the forward scratch and logits of one block. */
typedef struct side {
    const ptq_weights *w;
    ptq_layer_w lw;
    int have_lw;
    float *norm, *lm_head; /* [D], [V, D] */
    float *x;              /* [round windows * ctx, D] */
    ptq_fwd *fwd[PTQ_EVAL_MAX_THREADS];
    float *logits[PTQ_EVAL_MAX_THREADS];  /* [lr, V] */
    float *scratch[PTQ_EVAL_MAX_THREADS]; /* [lr, D] */
} side;

typedef struct engine {
    const int32_t *ids;
    int ctx, V, G, lr, nworkers, nsides;
    side s[2]; /* the model, the reference */
    double *ebuf[PTQ_EVAL_MAX_THREADS]; /* [V] exp of the reference's row */
    /* the round: windows [w0, w0 + nwin) */
    long w0, nwin;
    int layer; /* >= 0: run this layer; -1: logits and figures */
    /* per window */
    double *nll, *ref_nll, *kl;
    long *agree;
} engine;

typedef struct job {
    engine *g;
    int wk;
    int rc;
    long bad; /* first failed group of this worker (index in the round) */
    ptq_err e;
} job;

/* log-sum-exp of one row in double; NAN when the row is not finite.  With ex,
 * ex[v] = exp(l[v] - max) and *sum their sum. */
static double row_lse(const float *l, int V, int *argmax, double *ex, double *sum)
{
    float mx = l[0];
    int am = 0;
    for (int v = 0; v < V; v++) {
        if (!isfinite(l[v])) return NAN;
        if (l[v] > mx) {
            mx = l[v];
            am = v;
        }
    }
    double s = 0.0;
    if (ex) {
        for (int v = 0; v < V; v++) s += ex[v] = exp((double)l[v] - mx);
        *sum = s;
    } else {
        for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
    }
    *argmax = am;
    return (double)mx + log(s);
}

/* Logits and figures of window w (in the round) on worker wk. */
static int window_figures(engine *g, int wk, long w, ptq_err *e)
{
    const int ctx = g->ctx, V = g->V;
    const int32_t *tok = g->ids + (size_t)(g->w0 + w) * ctx;
    long gw = g->w0 + w;
    double wsum = 0.0, rsum = 0.0, klsum = 0.0;
    long agree = 0;
    double *ex = g->ebuf[wk];
    for (int t0 = 0; t0 < ctx - 1; t0 += g->lr) {
        int m = ctx - 1 - t0 < g->lr ? ctx - 1 - t0 : g->lr;
        for (int k = 0; k < g->nsides; k++) {
            side *s = &g->s[k];
            const float *x = s->x + ((size_t)w * ctx + t0) * s->w->cfg->hidden;
            ptq_fwd_logits(s->w->cfg, s->norm, s->lm_head, x, m, s->logits[wk], s->scratch[wk]);
        }
        for (int i = 0; i < m; i++) {
            int t = t0 + i, target = tok[t + 1];
            const float *l = g->s[0].logits[wk] + (size_t)i * V;
            int am = 0;
            double lse = row_lse(l, V, &am, NULL, NULL);
            if (!isfinite(lse))
                return ptq_fail(e, PTQ_EDATA, "the model's logits are not finite (window %ld, "
                                              "position %d)", gw, t);
            wsum += lse - l[target];
            if (g->nsides < 2) continue;
            const float *q = g->s[1].logits[wk] + (size_t)i * V;
            int ram = 0;
            double zs = 0.0;
            double rlse = row_lse(q, V, &ram, ex, &zs);
            if (!isfinite(rlse))
                return ptq_fail(e, PTQ_EDATA, "the reference's logits are not finite "
                                              "(window %ld, position %d)", gw, t);
            rsum += rlse - q[target];
            double kl = 0.0;
            for (int v = 0; v < V; v++) {
                double lp_ref = (double)q[v] - rlse, lp = (double)l[v] - lse;
                kl += ex[v] / zs * (lp_ref - lp);
            }
            klsum += kl;
            agree += am == ram;
        }
    }
    g->nll[gw] = wsum;
    if (g->nsides == 2) {
        g->ref_nll[gw] = rsum;
        g->kl[gw] = klsum;
        g->agree[gw] = agree;
    }
    return PTQ_OK;
}

/* Worker wk: groups wk, wk + nworkers, ... of the round, in order; stops at
 * its first failure. */
static void run_job(void *arg)
{
    job *j = arg;
    engine *g = j->g;
    long ngroups = (g->nwin + g->G - 1) / g->G;
    for (long gi = j->wk; gi < ngroups && !j->rc; gi += g->nworkers) {
        long b0 = gi * g->G;
        int B = (int)(g->nwin - b0 < g->G ? g->nwin - b0 : g->G);
        if (g->layer >= 0) {
            for (int k = 0; k < g->nsides && !j->rc; k++) {
                side *s = &g->s[k];
                if (g->layer >= s->w->cfg->n_layers) continue;
                float *x = s->x + (size_t)b0 * g->ctx * s->w->cfg->hidden;
                j->rc = ptq_fwd_layer(s->fwd[j->wk], &s->lw, x, B, g->ctx, NULL, &j->e);
            }
        } else {
            for (int b = 0; b < B && !j->rc; b++)
                j->rc = window_figures(g, j->wk, b0 + b, &j->e);
        }
        if (j->rc) j->bad = gi;
    }
}

/* Run the current step (a layer, or the figures) on every group of the round;
 * the error reported is that of the first failed group. */
static int run_step(engine *g, ptq_err *e)
{
    job jobs[PTQ_EVAL_MAX_THREADS];
    for (int i = 0; i < g->nworkers; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].g = g;
        jobs[i].wk = i;
    }
    ptq_par_run(g->nworkers, run_job, jobs, sizeof *jobs);
    int first = -1;
    for (int i = 0; i < g->nworkers; i++)
        if (jobs[i].rc && (first < 0 || jobs[i].bad < jobs[first].bad)) first = i;
    if (first < 0) return PTQ_OK;
    *e = jobs[first].e;
    return jobs[first].rc;
}

static void side_free(side *s)
{
    if (s->have_lw) ptq_layer_w_free(&s->lw);
    free(s->norm);
    free(s->lm_head);
    free(s->x);
    for (int i = 0; i < PTQ_EVAL_MAX_THREADS; i++) {
        ptq_fwd_free(s->fwd[i]);
        free(s->logits[i]);
        free(s->scratch[i]);
    }
}

/* Buffers of one model for rounds of rw windows, and its head. */
static int side_init(side *s, const ptq_weights *w, const engine *g, long rw, ptq_err *e)
{
    const ptq_config *c = w->cfg;
    s->w = w;
    int rc = ptq_layer_w_alloc(&s->lw, c, e);
    if (rc) return rc;
    s->have_lw = 1;
    size_t D = (size_t)c->hidden;
    s->norm = malloc(sizeof(float) * D);
    s->lm_head = malloc(sizeof(float) * (size_t)g->V * D);
    s->x = malloc(sizeof(float) * (size_t)rw * g->ctx * D);
    if (!s->norm || !s->lm_head || !s->x)
        return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating the classifier (%d x %zu) and "
                                       "the activations of %ld windows", g->V, D, rw);
    for (int i = 0; i < g->nworkers; i++) {
        if ((rc = ptq_fwd_create(&s->fwd[i], c, g->G * g->ctx, g->ctx, e))) return rc;
        s->logits[i] = malloc(sizeof(float) * (size_t)g->lr * g->V);
        s->scratch[i] = malloc(sizeof(float) * (size_t)g->lr * D);
        if (!s->logits[i] || !s->scratch[i])
            return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating logits for %d tokens", g->lr);
    }
    return w->head(w->ctx, s->norm, s->lm_head, e);
}

void ptq_eval_result_free(ptq_eval_result *r)
{
    free(r->window_nll);
    r->window_nll = NULL;
}

static int check_args(const ptq_weights *model, const ptq_weights *ref, const int32_t *ids,
                      size_t n_ids, int ctx, int batch, int threads, ptq_err *e)
{
    const ptq_config *c = model->cfg;
    int V = c->vocab;
    if (ctx < 2)
        return ptq_fail(e, PTQ_EUSAGE, "ctx %d: a window needs at least 2 tokens", ctx);
    if (ctx > c->max_pos)
        return ptq_fail(e, PTQ_EUSAGE, "ctx %d exceeds the model's max_position_embeddings %d",
                        ctx, c->max_pos);
    if (ref) {
        if (ref->cfg->vocab != V)
            return ptq_fail(e, PTQ_EDATA, "the reference's vocabulary (%d) differs from the "
                                          "model's (%d)", ref->cfg->vocab, V);
        if (ctx > ref->cfg->max_pos)
            return ptq_fail(e, PTQ_EUSAGE,
                            "ctx %d exceeds the reference's max_position_embeddings %d", ctx,
                            ref->cfg->max_pos);
    }
    if (batch < 0) return ptq_fail(e, PTQ_EUSAGE, "batch %d: must be 0 (choose) or positive", batch);
    if (threads < 0 || threads > PTQ_EVAL_MAX_THREADS)
        return ptq_fail(e, PTQ_EUSAGE, "threads %d: must be 0 (one) to %d", threads,
                        PTQ_EVAL_MAX_THREADS);
    if (n_ids < (size_t)ctx)
        return ptq_fail(e, PTQ_EDATA, "the text has %zu tokens, fewer than one window of ctx %d",
                        n_ids, ctx);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ptq_fail(e, PTQ_EDATA, "token id %d at index %zu is outside the vocabulary "
                                          "[0, %d)", (int)ids[i], i, V);
    return PTQ_OK;
}

int ptq_eval_ppl(const ptq_weights *model, const ptq_weights *ref, const int32_t *ids,
                 size_t n_ids, int ctx, int batch, int threads, ptq_eval_result *r,
                 ptq_eval_progress progress, void *ud, ptq_err *e)
{
    memset(r, 0, sizeof *r);
    int rc = check_args(model, ref, ids, n_ids, ctx, batch, threads, e);
    if (rc) return rc;
    long windows = (long)(n_ids / (size_t)ctx);

    engine *g = calloc(1, sizeof *g);
    if (!g) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    g->ids = ids;
    g->ctx = ctx;
    g->V = model->cfg->vocab;
    g->G = ptq_eval_group(ctx);
    g->lr = logit_rows(ctx, g->V);
    g->nworkers = threads > 0 ? threads : 1;
    g->nsides = ref ? 2 : 1;
    /* round: whole groups; by default about EVAL_ROUND_TOKENS tokens and a
     * whole number of groups per worker */
    long ngroups_all = (windows + g->G - 1) / g->G, per;
    if (batch) {
        per = (batch + g->G - 1) / g->G;
    } else {
        per = (EVAL_ROUND_TOKENS + (long)g->G * ctx - 1) / ((long)g->G * ctx);
        per = (per + g->nworkers - 1) / g->nworkers * g->nworkers;
    }
    if (per > ngroups_all) per = ngroups_all;
    if (g->nworkers > per) g->nworkers = (int)per;
    long rw = per * g->G < windows ? per * g->G : windows;
    if ((size_t)rw * ctx > (size_t)1 << 30) {
        free(g);
        return ptq_fail(e, PTQ_EUSAGE, "batch %d x ctx %d is too many tokens", batch, ctx);
    }

    r->window_nll = calloc((size_t)windows, sizeof(double));
    g->nll = r->window_nll;
    if (ref) {
        g->ref_nll = calloc((size_t)windows, sizeof(double));
        g->kl = calloc((size_t)windows, sizeof(double));
        g->agree = calloc((size_t)windows, sizeof(long));
    }
    if (!r->window_nll || (ref && (!g->ref_nll || !g->kl || !g->agree)))
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    for (int k = 0; k < g->nsides && !rc; k++)
        rc = side_init(&g->s[k], k ? ref : model, g, rw, e);
    for (int i = 0; i < g->nworkers && !rc && ref; i++)
        if (!(g->ebuf[i] = malloc(sizeof(double) * (size_t)g->V)))
            rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");

    double t0 = ptq_now();
    for (long w0 = 0; w0 < windows && !rc; w0 += rw) {
        g->w0 = w0;
        g->nwin = windows - w0 < rw ? windows - w0 : rw;
        const int32_t *tok = ids + (size_t)w0 * ctx;
        int n = (int)(g->nwin * ctx);
        for (int k = 0; k < g->nsides && !rc; k++)
            rc = g->s[k].w->embed(g->s[k].w->ctx, tok, n, g->s[k].x, e);
        int nl = model->cfg->n_layers, rl = ref ? ref->cfg->n_layers : 0;
        int L = nl > rl ? nl : rl;
        for (int l = 0; l < L && !rc; l++) {
            /* a model with fewer layers than the other is done with them */
            for (int k = 0; k < g->nsides && !rc; k++) {
                side *s = &g->s[k];
                if (l < s->w->cfg->n_layers) rc = s->w->layer(s->w->ctx, l, &s->lw, e);
            }
            if (rc) break;
            g->layer = l;
            rc = run_step(g, e);
        }
        if (rc) break;
        g->layer = -1;
        rc = run_step(g, e);
        if (!rc && progress) progress(ud, w0 + g->nwin, windows);
    }
    double secs = ptq_now() - t0;

    double total = 0.0, ref_total = 0.0, kl_total = 0.0;
    long agree = 0;
    if (!rc)
        for (long w = 0; w < windows; w++) {
            total += g->nll[w];
            if (ref) {
                ref_total += g->ref_nll[w];
                kl_total += g->kl[w];
                agree += g->agree[w];
            }
        }
    for (int k = 0; k < g->nsides; k++) side_free(&g->s[k]);
    for (int i = 0; i < PTQ_EVAL_MAX_THREADS; i++) free(g->ebuf[i]);
    free(g->ref_nll);
    free(g->kl);
    free(g->agree);
    int G = g->G, nw = g->nworkers;
    free(g);
    if (rc) {
        ptq_eval_result_free(r);
        return rc;
    }
    r->windows = windows;
    r->predicted = windows * (ctx - 1);
    r->dropped = (long)(n_ids - (size_t)windows * ctx);
    r->nll_total = total;
    r->nll_mean = total / (double)r->predicted;
    r->ppl = exp(r->nll_mean);
    r->has_ref = ref != NULL;
    if (ref) {
        r->ref_ppl = exp(ref_total / (double)r->predicted);
        r->kl_mean = kl_total / (double)r->predicted;
        r->top1_agree = (double)agree / (double)r->predicted;
    }
    r->group = G;
    r->batch = (int)rw;
    r->threads = nw;
    r->seconds = secs;
    r->tokens_per_s = secs > 0 ? (double)windows * ctx / secs : 0.0;
    return PTQ_OK;
}
