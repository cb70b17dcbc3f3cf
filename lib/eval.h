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

#include "lib/model.h"

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
    double seconds;        /* wall time of the forward passes */
    double tokens_per_s;   /* windows*ctx tokens (both models counted once) / seconds */
    int batch;             /* windows per forward batch actually used */
} ptq_eval_result;

typedef void (*ptq_eval_progress)(void *ud, long done_windows, long total_windows);

/* model and ref (may be NULL) must share the vocabulary. batch: windows per
 * forward batch (0 = choose). */
int ptq_eval_ppl(const ptq_weights *model, const ptq_weights *ref, const int32_t *ids,
                 size_t n_ids, int ctx, int batch, ptq_eval_result *r,
                 ptq_eval_progress progress, void *ud, ptq_err *e);
void ptq_eval_result_free(ptq_eval_result *r);

#endif
