/* ptqrt_generate.c - sampling and batch-1 generation of libptqrt. */
#include <stdlib.h>
#include <string.h>

#include "lib/base/sample.h"
#include "lib/cuda/ptqrt_impl.h"

/* ---------------------------------------------------------------- sampling */
/* The RNG and sampler are lib/base/sample.c's (shared with the CPU decoder, so
 * equal logits and seeds give equal tokens); ptqrt_rng is its public twin. */
void ptqrt_rng_seed(ptqrt_rng *r, uint64_t seed)
{
    ptq_rng g;
    ptq_rng_seed(&g, seed);
    memcpy(r->s, g.s, sizeof r->s);
}

double ptqrt_rng_uniform(ptqrt_rng *r)
{
    ptq_rng g;
    memcpy(g.s, r->s, sizeof g.s);
    double u = ptq_rng_uniform(&g);
    memcpy(r->s, g.s, sizeof r->s);
    return u;
}

int ptqrt_sample(const float *logits, int vocab, float temp, float top_p, ptqrt_rng *rng)
{
    ptq_rng g;
    memcpy(g.s, rng->s, sizeof g.s);
    int tok = ptq_sample(logits, vocab, temp, top_p, &g);
    memcpy(rng->s, g.s, sizeof rng->s);
    return tok;
}

int ptqrt_generate(ptqrt_model *m, const int32_t *prompt, int n_prompt, int max_new,
                   const ptqrt_sampling *s, int32_t *out, int *n_out, ptqrt_token_cb cb, void *ud,
                   ptq_err *e)
{
    *n_out = 0;
    if (n_prompt < 1 || max_new < 0)
        return ptq_fail(e, PTQ_EUSAGE, "generation needs a prompt of at least one token");
    if (n_prompt > m->opt.max_seq)
        return ptq_fail(e, PTQ_EUSAGE, "prompt of %d tokens longer than the KV cache (%d)", n_prompt,
                        m->opt.max_seq);
    float *logits = malloc(sizeof *logits * (size_t)m->cfg.vocab);
    if (!logits) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    ptqrt_rng rng;
    ptqrt_rng_seed(&rng, s ? s->seed : 0);
    float temp = s ? s->temp : 0.0f, top_p = s ? s->top_p : 1.0f;
    int rc = ptqrt_forward(m, prompt, 1, n_prompt, 0, logits, 0, e);
    int pos = n_prompt;
    while (!rc && *n_out < max_new) {
        int32_t tok = ptqrt_sample(logits, m->cfg.vocab, temp, top_p, &rng);
        if (tok < 0) {
            rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
            break;
        }
        out[(*n_out)++] = tok;
        if ((cb && cb(ud, tok)) || tok == m->cfg.eos_id || *n_out == max_new || pos >= m->opt.max_seq)
            break;
        rc = ptqrt_forward(m, &tok, 1, 1, pos++, logits, 0, e);
    }
    free(logits);
    return rc;
}
