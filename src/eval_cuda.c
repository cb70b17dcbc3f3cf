/* eval_cuda.c - perplexity windows on the GPU for `ptqc eval --device cuda`.
 * The windows, the count of predicted tokens and the reduction in window
 * order are those of lib/model/eval.c; only the logits come from libptqrt. */
#include "src/eval_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "src/cli.h"
#ifdef PTQC_HAVE_CUDA
#include "lib/cuda/ptqrt.h"
#endif

#define EVAL_CUDA_BATCH 8 /* windows per forward */

int ptqc_eval_cuda(const char *path, const int32_t *ids, size_t n_ids, int ctx, ptq_eval_result *r,
                   ptq_err *e)
{
    memset(r, 0, sizeof *r);
#ifndef PTQC_HAVE_CUDA
    (void)path, (void)ids, (void)n_ids, (void)ctx;
    return ptq_fail(e, PTQ_ENODEV, "--device cuda: ptqc was built without CUDA");
#else
    if (ctx < 2 || n_ids < (size_t)ctx)
        return ptq_fail(e, PTQ_EDATA, "%zu tokens do not fill one window of %d", n_ids, ctx);
    if (ptqrt_device_count() < 1) return ptq_fail(e, PTQ_ENODEV, "--device cuda: no CUDA device");
    long nw = (long)(n_ids / (size_t)ctx);
    ptqrt_options o;
    ptqrt_options_default(&o);
    o.max_batch = nw < EVAL_CUDA_BATCH ? (int)nw : EVAL_CUDA_BATCH;
    o.max_seq = ctx;
    o.max_tokens = o.max_batch * ctx < 1024 ? o.max_batch * ctx : 1024;
    if (o.max_tokens < o.max_batch) o.max_tokens = o.max_batch;
    o.verify = 0; /* the CPU side of ptqc eval opened and checked the same file */
    ptqrt_model *m = NULL;
    int rc = ptqrt_open(&m, path, &o, e);
    if (rc) return rc;
    r->window_nll = malloc(sizeof(double) * (size_t)nw);
    if (!r->window_nll) {
        ptqrt_close(m);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    double t0 = ptq_now();
    rc = ptqrt_eval_nll(m, ids, n_ids, ctx, r->window_nll, e);
    double t1 = ptq_now();
    ptqrt_close(m);
    if (rc) {
        ptq_eval_result_free(r);
        return rc;
    }
    r->windows = nw;
    r->predicted = nw * (ctx - 1);
    r->dropped = (long)(n_ids - (size_t)nw * (size_t)ctx);
    for (long w = 0; w < nw; w++) r->nll_total += r->window_nll[w];
    r->nll_mean = r->nll_total / (double)r->predicted;
    r->ppl = exp(r->nll_mean);
    r->seconds = t1 - t0;
    r->tokens_per_s = (double)nw * ctx / (r->seconds > 0 ? r->seconds : 1e-9);
    r->group = 1;
    r->batch = o.max_batch;
    r->threads = 1;
    return PTQ_OK;
#endif
}
