/* eval.h - perplexity (ptqc-ppl-v1) and divergence between two models.
 *
 * ptqc-ppl-v1: ids = BOS + encode(text); drop the tail to a multiple of ctx;
 * non-overlapping windows of ctx tokens each from position 0; NLL summed (in
 * double) over predicting tokens 1..ctx-1 of each window; ppl = exp(NLL/count).
 * With a reference model: mean KL(ref || model) of the next-token
 * distributions and top-1 agreement over the same predicted positions.
 */
#ifndef PTQC_EVAL_H
#define PTQC_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/model/model.h"

/* Determinism.  The work is cut the same way for every threads and batch:
 * a group of PTQ_EVAL_GROUP_TOKENS / ctx windows (at least one), counted from
 * window 0, is one forward pass (one ptq_fwd_layer call per layer over all
 * its rows), and a window's logits are computed in fixed blocks of rows (their
 * number set by ctx and the vocabulary).  Every sum is taken in a fixed order
 * in double, per window, and the windows are reduced in window order.  So
 * every BLAS call has a shape fixed by (model, ctx), and with a
 * single-threaded BLAS (the caller's job: `ptqc eval` sets
 * openblas_set_num_threads(1)) the figures are bit-identical for any threads
 * and batch.  With a multithreaded BLAS they agree to float32 rounding only. */
#define PTQ_EVAL_GROUP_TOKENS 512
#define PTQ_EVAL_MAX_THREADS 64

typedef struct ptq_eval_result {
    double ppl;
    double nll_total, nll_mean;
    long windows, predicted, dropped;
    double *window_nll;    /* [windows], malloc'ed */
    /* with a reference */
    int has_ref;
    double ref_ppl;
    double kl_mean;        /* mean over predicted tokens of KL(ref || model), nats */
    double top1_agree;     /* fraction of predicted tokens with the same argmax */
    double seconds;        /* wall time of the forward passes and per-token figures */
    double tokens_per_s;   /* windows*ctx tokens (both models counted once) / seconds */
    int group;             /* windows per forward pass (fixed by ctx) */
    int batch;             /* windows per round (a whole number of groups) */
    int threads;           /* workers used */
} ptq_eval_result;

typedef void (*ptq_eval_progress)(void *ud, long done_windows, long total_windows);

/* Windows per group (one forward pass) for ctx: max(1, PTQ_EVAL_GROUP_TOKENS
 * / ctx). */
int ptq_eval_group(int ctx);

/* model and ref (may be NULL) must share the vocabulary.  batch: windows per
 * round (memory and speed only: every layer is widened once per round and
 * shared by the workers; rounded up to a whole number of groups; 0 = about
 * 2048 tokens and at least one group per thread).  threads: workers (0 = 1,
 * at most PTQ_EVAL_MAX_THREADS); the providers are called from the calling
 * thread only, the workers run the forward of their own groups. */
int ptq_eval_ppl(const ptq_weights *model, const ptq_weights *ref, const int32_t *ids,
                 size_t n_ids, int ctx, int batch, int threads, ptq_eval_result *r,
                 ptq_eval_progress progress, void *ud, ptq_err *e);
void ptq_eval_result_free(ptq_eval_result *r);

#endif
