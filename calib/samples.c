/* samples.c - see samples.h */
#include "calib/samples.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/sample.h"

void ptq_samples_free(ptq_samples *s)
{
    free(s->ids);
    memset(s, 0, sizeof *s);
}

int ptq_samples_cut(const int32_t *const *docs, const size_t *lens, int ndocs, int bos,
                    int nsamples, int seqlen, uint64_t seed, const char *what,
                    ptq_samples *out, ptq_err *e)
{
    memset(out, 0, sizeof *out);
    if (nsamples < 1 || seqlen < 2)
        return ptq_fail(e, PTQ_EUSAGE, "calibration: need at least one window of 2 tokens");
    size_t total = 0;
    for (int i = 0; i < ndocs; i++) total += lens[i];
    if (total == 0)
        return ptq_fail(e, PTQ_EDATA, "%s: calibration text has zero tokens", what);
    int32_t *stream = malloc(total * sizeof *stream);
    if (!stream) return ptq_fail(e, PTQ_ENOMEM, "calibration: out of memory (%zu tokens)", total);
    size_t p = 0;
    for (int i = 0; i < ndocs; i++) {
        if (lens[i]) memcpy(stream + p, docs[i], lens[i] * sizeof *stream);
        p += lens[i];
    }
    int head = bos >= 0 ? 1 : 0; /* BOS in front of each window */
    size_t body = (size_t)seqlen - (size_t)head;
    out->stream_tokens = (long)total;
    if (total < body) { /* shorter than one window: one window of everything */
        out->short_corpus = 1;
        body = total;
        nsamples = 1;
        seqlen = (int)(body + (size_t)head);
    }
    out->n = nsamples;
    out->seqlen = seqlen;
    out->ids = malloc((size_t)nsamples * (size_t)seqlen * sizeof *out->ids);
    if (!out->ids) {
        free(stream);
        return ptq_fail(e, PTQ_ENOMEM, "calibration: out of memory (%d x %d tokens)", nsamples,
                        seqlen);
    }
    ptq_rng rng;
    ptq_rng_seed(&rng, seed);
    size_t nstarts = total - body + 1;
    for (int s = 0; s < nsamples; s++) {
        size_t start = (size_t)(ptq_rng_uniform(&rng) * (double)nstarts);
        if (start >= nstarts) start = nstarts - 1;
        int32_t *w = out->ids + (size_t)s * (size_t)seqlen;
        if (head) w[0] = bos;
        memcpy(w + head, stream + start, body * sizeof *w);
    }
    free(stream);
    return PTQ_OK;
}
