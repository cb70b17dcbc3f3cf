/* eval.c - perplexity (ptqc-ppl-v1), KL divergence and top-1 agreement
 * (see eval.h).
 *
 * Windows are run through the forward pass in batches of `batch` windows;
 * every window is independent (position 0, empty cache), so the batch size
 * changes the speed, not the protocol (the figures move by float32 rounding
 * only: OpenBLAS's rounding depends on the number of rows and threads).  Per predicted position:
 *   NLL = logsumexp(logits) - logits[target], in double from the float logits;
 * window sums and the total are summed in double in window order.
 * With a reference: KL(ref || model) = sum_v p_ref(v) (log p_ref(v) - log p(v))
 * in double, and top-1 agreement compares the argmax (first index on ties).
 */
#include "lib/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* log-sum-exp of one row in double; NAN when the row is not finite. */
static double row_lse(const float *l, int V, int *argmax)
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
    for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
    *argmax = am;
    return (double)mx + log(s);
}

/* Choose windows per batch: about 2048 tokens, logits at most 256 MiB. */
static int choose_batch(int ctx, int V, long windows)
{
    long b = 2048 / ctx;
    long cap = (256L << 20) / ((long)ctx * V * (long)sizeof(float) * 2);
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    if (b > windows) b = windows;
    return (int)b;
}

void ptq_eval_result_free(ptq_eval_result *r)
{
    free(r->window_nll);
    r->window_nll = NULL;
}

int ptq_eval_ppl(const ptq_weights *model, const ptq_weights *ref, const int32_t *ids,
                 size_t n_ids, int ctx, int batch, ptq_eval_result *r, ptq_eval_progress progress,
                 void *ud, ptq_err *e)
{
    memset(r, 0, sizeof *r);
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
    if (n_ids < (size_t)ctx)
        return ptq_fail(e, PTQ_EDATA, "the text has %zu tokens, fewer than one window of ctx %d",
                        n_ids, ctx);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ptq_fail(e, PTQ_EDATA, "token id %d at index %zu is outside the vocabulary "
                                          "[0, %d)", (int)ids[i], i, V);

    long windows = (long)(n_ids / (size_t)ctx);
    int B = batch ? batch : choose_batch(ctx, V, windows);
    if (B > windows) B = (int)windows;
    size_t rows = (size_t)B * ctx;
    if (rows > (size_t)1 << 30)
        return ptq_fail(e, PTQ_EUSAGE, "batch %d x ctx %d is too many tokens", B, ctx);

    ptq_fwd *fm = NULL, *fr = NULL;
    float *lm = NULL, *lr = NULL;
    r->window_nll = calloc((size_t)windows, sizeof(double));
    int rc = r->window_nll ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc) rc = ptq_fwd_create(&fm, c, (int)rows, ctx, e);
    if (!rc && ref) rc = ptq_fwd_create(&fr, ref->cfg, (int)rows, ctx, e);
    if (!rc) {
        lm = malloc(sizeof(float) * rows * (size_t)V);
        if (ref) lr = malloc(sizeof(float) * rows * (size_t)V);
        if (!lm || (ref && !lr))
            rc = ptq_fail(e, PTQ_ENOMEM, "out of memory allocating logits for %zu tokens", rows);
    }

    double total = 0.0, ref_total = 0.0, kl_total = 0.0, secs = 0.0;
    long agree = 0;
    for (long w0 = 0; w0 < windows && !rc; w0 += B) {
        int nb = (int)(windows - w0 < B ? windows - w0 : B);
        const int32_t *tok = ids + (size_t)w0 * ctx;
        double t0 = now_s();
        rc = ptq_forward(fm, model, tok, nb, ctx, lm, e);
        if (!rc && ref) rc = ptq_forward(fr, ref, tok, nb, ctx, lr, e);
        secs += now_s() - t0;
        if (rc) break;
        for (int b = 0; b < nb && !rc; b++) {
            long w = w0 + b;
            double wsum = 0.0;
            for (int t = 0; t + 1 < ctx; t++) {
                size_t row = (size_t)b * ctx + t;
                int target = tok[row + 1];
                const float *l = lm + row * V;
                int am = 0;
                double lse = row_lse(l, V, &am);
                if (!isfinite(lse)) {
                    rc = ptq_fail(e, PTQ_EDATA, "the model's logits are not finite (window %ld, "
                                                "position %d)", w, t);
                    break;
                }
                wsum += lse - l[target];
                if (ref) {
                    const float *q = lr + row * V;
                    int ram = 0;
                    double rlse = row_lse(q, V, &ram);
                    if (!isfinite(rlse)) {
                        rc = ptq_fail(e, PTQ_EDATA, "the reference's logits are not finite "
                                                    "(window %ld, position %d)", w, t);
                        break;
                    }
                    ref_total += rlse - q[target];
                    double kl = 0.0;
                    for (int v = 0; v < V; v++) {
                        double lp_ref = (double)q[v] - rlse, lp = (double)l[v] - lse;
                        kl += exp(lp_ref) * (lp_ref - lp);
                    }
                    kl_total += kl;
                    agree += am == ram;
                }
            }
            r->window_nll[w] = wsum;
            total += wsum;
        }
        if (!rc && progress) progress(ud, w0 + nb, windows);
    }
    ptq_fwd_free(fm);
    ptq_fwd_free(fr);
    free(lm);
    free(lr);
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
    r->batch = B;
    r->seconds = secs;
    r->tokens_per_s = secs > 0 ? (double)windows * ctx / secs : 0.0;
    return PTQ_OK;
}
