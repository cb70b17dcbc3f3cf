/* generate.h - incremental (KV-cached) decoding on the CPU, sampling, and
 * the data-free calibration samples that the FP16 model writes itself.
 *
 * ptq_gen_step feeds one token per sequence at position pos (all sequences in
 * step) and returns next-token logits; layers are fetched one at a time
 * through the ptq_weights provider at every step (widened to float32, or at
 * batch 1 handed over packed when the provider can, the lm_head too through
 * head_packed), so memory stays at one
 * layer plus the KV cache.  The provider must be the same at every step of
 * one ptq_gen (the head is loaded at the first).  Its logits equal ptq_forward's on the same prefix
 * (up to float summation order).
 */
#ifndef PTQC_GENERATE_H
#define PTQC_GENERATE_H

#include <stdint.h>

#include "lib/model/model.h"
#include "lib/base/sample.h"

typedef struct ptq_gen ptq_gen;

int ptq_gen_create(ptq_gen **g, const ptq_config *c, int batch, int max_len, ptq_err *e);
void ptq_gen_free(ptq_gen *g);
/* Workers for the packed GEMV of batch-1 steps (default 1); the logits are
 * the same bits for any count. */
void ptq_gen_set_threads(ptq_gen *g, int threads);
/* tokens [batch] at position pos (0 = start; caches of earlier positions are
 * kept); logits [batch, vocab]. */
int ptq_gen_step(ptq_gen *g, const ptq_weights *src, const int32_t *tokens, int pos,
                 float *logits, ptq_err *e);

/* Random numbers and sampling: lib/base/sample.h. */

/* Data-free calibration: nsamples sequences of seqlen tokens, each starting
 * with bos and continued by sampling the model (temperature 1, top_p 1) with
 * the given seed.  out [nsamples * seqlen]. */
typedef void (*ptq_gen_progress)(void *ud, int done_tokens, int total_tokens);
int ptq_gen_samples(const ptq_weights *src, int bos, int nsamples, int seqlen, uint64_t seed,
                    int32_t *out, ptq_gen_progress progress, void *ud, ptq_err *e);

#endif
