/* eval_cuda.h - `ptqc eval --device cuda`: the ptqc-ppl-v1 figures of a
 * bundle computed with libptqrt on a GPU (see ptqc-eval(1)). */
#ifndef PTQC_EVAL_CUDA_H
#define PTQC_EVAL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "lib/model/eval.h"

/* Open the bundle at path on CUDA device 0 and fill r as ptq_eval_ppl does
 * without a reference (windows, predicted, dropped, window_nll, nll_total,
 * nll_mean, ppl, seconds, tokens_per_s; group 1, batch = windows per forward,
 * threads 1).  PTQ_ENODEV (9) when ptqc was built without CUDA or no device is
 * usable.  Free r with ptq_eval_result_free. */
int ptqc_eval_cuda(const char *path, const int32_t *ids, size_t n_ids, int ctx, ptq_eval_result *r,
                   ptq_err *e);

#endif
