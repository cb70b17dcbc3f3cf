/* samples.h - calibration windows cut from tokenized documents.
 *
 * The documents are tokenized one by one and concatenated into one stream
 * (each document as encode(text), without special tokens).  Each window is
 * BOS followed by seqlen - 1 consecutive tokens of the stream starting at a
 * uniformly random offset in [0, stream - (seqlen - 1)] (GPTQ's reference
 * style: random offsets into the concatenated token stream; the BOS in front
 * puts every window at position 0 as the deployed model sees a prompt).
 * Offsets come from ptq_rng (lib/base/sample.h) seeded with seed, so the same
 * documents, seed and sizes give the same windows everywhere.  Without a BOS
 * (bos < 0) the window is seqlen stream tokens.
 *
 * A stream shorter than one window gives a single window of everything there
 * is (*seqlen_out < seqlen, *short_corpus = 1: the caller warns); a stream of
 * zero tokens fails with PTQ_EDATA.
 */
#ifndef PTQC_SAMPLES_H
#define PTQC_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

typedef struct ptq_samples {
    int n;        /* windows */
    int seqlen;   /* tokens per window */
    int32_t *ids; /* [n * seqlen], malloc'ed */
    long stream_tokens; /* tokens in the concatenated stream */
    int short_corpus;   /* 1 when the stream was shorter than one window */
} ptq_samples;

/* docs[i] holds lens[i] token ids.  what names the source in messages. */
int ptq_samples_cut(const int32_t *const *docs, const size_t *lens, int ndocs, int bos,
                    int nsamples, int seqlen, uint64_t seed, const char *what,
                    ptq_samples *out, ptq_err *e);
void ptq_samples_free(ptq_samples *s);

#endif
