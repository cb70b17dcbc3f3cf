/* generate.c - KV-cached decoding, sampling, data-free calibration samples.
 * See generate.h.  Mirrors lib/model/forward.c one position at a time, with its
 * own pieces (lib/model/forward_ops.h, lib/model/act.h): RMSNorm, the RoPE
 * tables, the softmax and silu, every linear
 * through the same dispatch (float32 sgemm, or the 8-bit product of W8A8 /
 * FP8 tensors), and the int8 KV cache: a layer with kv_scale keeps its keys
 * and values as int8 codes (lib/qfmt/kvq.h) and reads code * scale, the values
 * ptq_kv_int8 gives ptq_forward; other layers keep float32.  A layer's cache
 * is allocated at its first step, when the provider says which kind it is.
 * At batch 1 the decoder asks the provider for packed layers (arch.h's
 * want_packed): packed linears then run as their format's fused (for int lib/qfmt/gemv_int.h)
 * dequantize + GEMV over the bundle's bytes, never widened.  The final norm
 * and lm_head are loaded once, at the first step: at batch 1 the lm_head as
 * the provider's packed view (head_packed) when it has one, multiplied by
 * its format's GEMV (dense F16/BF16/F32 too: lib/qfmt/qf_dense.c), else
 * widened to a float32 copy for sgemm. */
#include "lib/model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/act.h"
#include "lib/model/forward_ops.h"
#include "lib/qfmt/kvq.h"
#include "lib/qfmt/qfmt.h"

struct ptq_gen {
    ptq_config cfg;
    int batch, max_len;
    int threads;      /* workers of the packed GEMV (ptq_gen_set_threads) */
    int head_ok;      /* norm and lm_head loaded (at the first step) */
    ptq_layer_w w;    /* one widened layer, reused */
    float *norm;      /* [D] final norm */
    float *lm_head;   /* [V, D], allocated at the first step when head_q is NULL */
    const ptq_qtensor *head_q; /* the provider's packed lm_head (batch 1), or NULL */
    /* per layer [batch][max_len][kv_dim]: float32 (kf, vf) or, for layers
     * with kv_scale, int8 codes (kq, vq); NULL until the layer's first step */
    float **kf, **vf;
    int8_t **kq, **vq;
    float *x, *xn;    /* [batch, D] */
    float *q, *att;   /* [batch, q_dim] */
    float *k, *v;     /* [batch, kv_dim] */
    float *h1, *h2;   /* [batch, I] */
    float *scores;    /* [max_len] */
    float *scratch;   /* [batch, D] for ptq_fwd_logits */
    float *cos_t, *sin_t; /* [max_len, head_dim / 2] RoPE tables */
};

int ptq_gen_create(ptq_gen **out, const ptq_config *c, int batch, int max_len, ptq_err *e)
{
    *out = NULL;
    if (batch < 1 || max_len < 1)
        return ptq_fail(e, PTQ_EINTERNAL, "generate: batch %d and length %d must be positive",
                        batch, max_len);
    ptq_gen *g = calloc(1, sizeof *g);
    if (!g) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the decoder state");
    g->cfg = *c;
    g->batch = batch;
    g->max_len = max_len;
    g->threads = 1;
    int rc = ptq_layer_w_alloc(&g->w, c, e);
    if (rc) {
        free(g);
        return rc;
    }
    size_t D = c->hidden, NI = c->intermediate;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    g->norm = malloc(sizeof(float) * D);
    g->kf = calloc((size_t)c->n_layers, sizeof *g->kf);
    g->vf = calloc((size_t)c->n_layers, sizeof *g->vf);
    g->kq = calloc((size_t)c->n_layers, sizeof *g->kq);
    g->vq = calloc((size_t)c->n_layers, sizeof *g->vq);
    g->x = malloc(sizeof(float) * batch * D);
    g->xn = malloc(sizeof(float) * batch * D);
    g->scratch = malloc(sizeof(float) * batch * D);
    g->q = malloc(sizeof(float) * batch * qd);
    g->att = malloc(sizeof(float) * batch * qd);
    g->k = malloc(sizeof(float) * batch * kvd);
    g->v = malloc(sizeof(float) * batch * kvd);
    g->h1 = malloc(sizeof(float) * batch * NI);
    g->h2 = malloc(sizeof(float) * batch * NI);
    g->scores = malloc(sizeof(float) * max_len);
    g->cos_t = malloc(sizeof(float) * max_len * (c->head_dim / 2 + 1));
    g->sin_t = malloc(sizeof(float) * max_len * (c->head_dim / 2 + 1));
    if (!g->norm || !g->kf || !g->vf || !g->kq || !g->vq || !g->x || !g->xn || !g->scratch ||
        !g->q || !g->att || !g->k || !g->v || !g->h1 || !g->h2 || !g->scores || !g->cos_t ||
        !g->sin_t) {
        ptq_gen_free(g);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a KV cache of %d x %d tokens", batch,
                        max_len);
    }
    ptq_rope_tables(c, max_len, g->cos_t, g->sin_t);
    *out = g;
    return PTQ_OK;
}

void ptq_gen_set_threads(ptq_gen *g, int threads)
{
    g->threads = threads < 1 ? 1 : threads;
}

void ptq_gen_free(ptq_gen *g)
{
    if (!g) return;
    ptq_layer_w_free(&g->w);
    for (int l = 0; l < g->cfg.n_layers; l++) {
        if (g->kf) free(g->kf[l]);
        if (g->vf) free(g->vf[l]);
        if (g->kq) free(g->kq[l]);
        if (g->vq) free(g->vq[l]);
    }
    free(g->kf); free(g->vf); free(g->kq); free(g->vq);
    free(g->norm); free(g->lm_head);
    free(g->x); free(g->xn); free(g->scratch); free(g->q); free(g->att);
    free(g->k); free(g->v); free(g->h1); free(g->h2); free(g->scores);
    free(g->cos_t); free(g->sin_t);
    free(g);
}

/* The cache of layer l, allocated at its first step: int8 when the layer has
 * kv_scale, float32 otherwise; a layer that changes kind is refused. */
static int layer_cache(ptq_gen *g, int l, int int8, ptq_err *e)
{
    size_t n = (size_t)g->batch * g->max_len * g->cfg.n_kv_heads * g->cfg.head_dim;
    if (!g->kf[l] && !g->kq[l]) {
        if (int8) {
            g->kq[l] = malloc(n);
            g->vq[l] = malloc(n);
        } else {
            g->kf[l] = malloc(sizeof(float) * n);
            g->vf[l] = malloc(sizeof(float) * n);
        }
        if (!(g->kf[l] && g->vf[l]) && !(g->kq[l] && g->vq[l]))
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for the KV cache of layer %d", l);
    }
    if (!g->kq[l] != !int8)
        return ptq_fail(e, PTQ_EINTERNAL, "generate: layer %d %s int8 KV scales between steps", l,
                        int8 ? "gained" : "lost");
    return PTQ_OK;
}

/* The final norm and lm_head, at the first step: the packed view at batch 1
 * when the provider has one whose format has a GEMV, else a float32 copy. */
static int load_head(ptq_gen *g, const ptq_weights *src, ptq_err *e)
{
    const ptq_config *c = &g->cfg;
    int rc;
    g->head_q = NULL;
    if (g->batch == 1 && src->head_packed) {
        const ptq_qtensor *q = NULL;
        if ((rc = src->head_packed(src->ctx, g->norm, &q, e))) return rc;
        const ptq_qfmt *f = q ? ptq_qfmt_get(q->format) : NULL;
        if (f && f->gemv && q->rows == c->vocab && q->cols == c->hidden) {
            g->head_q = q;
            g->head_ok = 1;
            return PTQ_OK;
        }
    }
    if (!g->lm_head && !(g->lm_head = malloc(sizeof(float) * (size_t)c->vocab * c->hidden)))
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the lm_head (%d x %d floats)", c->vocab,
                        c->hidden);
    if ((rc = src->head(src->ctx, g->norm, g->lm_head, e))) return rc;
    g->head_ok = 1;
    return PTQ_OK;
}

int ptq_gen_step(ptq_gen *g, const ptq_weights *src, const int32_t *tokens, int pos,
                 float *logits, ptq_err *e)
{
    const ptq_config *c = &g->cfg;
    int B = g->batch, D = c->hidden, NI = c->intermediate, hd = c->head_dim;
    int H = c->n_heads, KV = c->n_kv_heads, qd = H * hd, kvd = KV * hd;
    if (pos < 0 || pos >= g->max_len)
        return ptq_fail(e, PTQ_EINTERNAL, "generate: position %d outside the cache of %d", pos,
                        g->max_len);
    for (int b = 0; b < B; b++)
        if (tokens[b] < 0 || tokens[b] >= c->vocab)
            return ptq_fail(e, PTQ_EDATA, "token id %d outside the vocabulary of %d", tokens[b],
                            c->vocab);
    int rc = src->embed(src->ctx, tokens, B, g->x, e);
    if (rc) return rc;
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layers; l++) {
        ptq_layer_w *w = &g->w;
        w->want_packed = B == 1; /* batch 1: multiply by the packed bytes */
        w->threads = g->threads;
        if ((rc = src->layer(src->ctx, l, w, e)) || (rc = layer_cache(g, l, w->kv_scale != NULL, e)))
            return rc;
        const float *ks = w->kv_scale, *vs = ks ? ks + kvd : NULL;
        ptq_rmsnorm(g->xn, g->x, w->attn_norm, B, D, c->rms_eps);
        if ((rc = ptq_layer_linear(w, PTQ_Q, g->q, g->xn, B, qd, D, e)) ||
            (rc = ptq_layer_linear(w, PTQ_K, g->k, g->xn, B, kvd, D, e)) ||
            (rc = ptq_layer_linear(w, PTQ_V, g->v, g->xn, B, kvd, D, e)))
            return rc;
        const float *cs = g->cos_t + (size_t)pos * (hd / 2), *sn = g->sin_t + (size_t)pos * (hd / 2);
        for (int b = 0; b < B; b++) {
            float *q = g->q + (size_t)b * qd;
            size_t row0 = (size_t)b * g->max_len * kvd, at = row0 + (size_t)pos * kvd;
            float *kc = ks ? NULL : g->kf[l] + row0, *vc = ks ? NULL : g->vf[l] + row0;
            const int8_t *kqc = ks ? g->kq[l] + row0 : NULL, *vqc = ks ? g->vq[l] + row0 : NULL;
            float *kn = g->k + (size_t)b * kvd, *vn = g->v + (size_t)b * kvd;
            ptq_rope_row(q, H, hd, cs, sn);
            ptq_rope_row(kn, KV, hd, cs, sn);
            if (ks) { /* int8 codes */
                for (int i = 0; i < kvd; i++) {
                    g->kq[l][at + i] = ptq_kv_code(kn[i], ks[i]);
                    g->vq[l][at + i] = ptq_kv_code(vn[i], vs[i]);
                }
            } else {
                memcpy(g->kf[l] + at, kn, sizeof(float) * kvd);
                memcpy(g->vf[l] + at, vn, sizeof(float) * kvd);
            }
            for (int h = 0; h < H; h++) {
                int kh = h / (H / KV);
                const float *qh = q + (size_t)h * hd;
                const float *ksh = ks ? ks + (size_t)kh * hd : NULL;
                for (int t = 0; t <= pos; t++) {
                    size_t off = (size_t)t * kvd + (size_t)kh * hd;
                    float s = 0.0f;
                    if (ks)
                        for (int i = 0; i < hd; i++) s += qh[i] * ptq_kv_value(kqc[off + i], ksh[i]);
                    else
                        for (int i = 0; i < hd; i++) s += qh[i] * kc[off + i];
                    s *= scale;
                    g->scores[t] = s;
                }
                ptq_softmax(g->scores, pos + 1, PTQ_ACT_BEST);
                float *o = g->att + (size_t)b * qd + (size_t)h * hd;
                memset(o, 0, sizeof(float) * hd);
                const float *vsh = vs ? vs + (size_t)kh * hd : NULL;
                for (int t = 0; t <= pos; t++) {
                    size_t off = (size_t)t * kvd + (size_t)kh * hd;
                    float p = g->scores[t];
                    if (vs)
                        for (int i = 0; i < hd; i++) o[i] += p * ptq_kv_value(vqc[off + i], vsh[i]);
                    else
                        for (int i = 0; i < hd; i++) o[i] += p * vc[off + i];
                }
            }
        }
        if ((rc = ptq_layer_linear(w, PTQ_O, g->xn, g->att, B, D, qd, e))) return rc;
        for (size_t i = 0; i < (size_t)B * D; i++) g->x[i] += g->xn[i];
        ptq_rmsnorm(g->xn, g->x, w->mlp_norm, B, D, c->rms_eps);
        if ((rc = ptq_layer_linear(w, PTQ_GATE, g->h1, g->xn, B, NI, D, e)) ||
            (rc = ptq_layer_linear(w, PTQ_UP, g->h2, g->xn, B, NI, D, e)))
            return rc;
        ptq_silu_mul(g->h1, g->h2, (size_t)B * NI, PTQ_ACT_BEST);
        if ((rc = ptq_layer_linear(w, PTQ_DOWN, g->xn, g->h1, B, D, NI, e))) return rc;
        for (size_t i = 0; i < (size_t)B * D; i++) g->x[i] += g->xn[i];
    }
    if (!g->head_ok && (rc = load_head(g, src, e))) return rc;
    if (!g->head_q) {
        ptq_fwd_logits(c, g->norm, g->lm_head, g->x, B, logits, g->scratch);
        return PTQ_OK;
    }
    ptq_rmsnorm(g->scratch, g->x, g->norm, 1, D, c->rms_eps);
    return ptq_qfmt_get(g->head_q->format)->gemv(g->head_q, g->scratch, logits, g->threads, e);
}

/* ---- data-free calibration ---- */

int ptq_gen_samples(const ptq_weights *src, int bos, int nsamples, int seqlen, uint64_t seed,
                    int32_t *out, ptq_gen_progress progress, void *ud, ptq_err *e)
{
    const ptq_config *c = src->cfg;
    if (bos < 0 || bos >= c->vocab)
        return ptq_fail(e, PTQ_EDATA, "data-free calibration needs a BOS token; the tokenizer has none");
    /* Bound the KV cache to about 1 GiB by generating in sub-batches. */
    size_t per_seq = (size_t)c->n_layers * seqlen * c->n_kv_heads * c->head_dim * 2 * sizeof(float);
    int sub = (int)((1ull << 30) / (per_seq ? per_seq : 1));
    if (sub < 1) sub = 1;
    if (sub > nsamples) sub = nsamples;
    float *logits = malloc(sizeof(float) * (size_t)sub * c->vocab);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)sub);
    if (!logits || !tok) {
        free(logits);
        free(tok);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for data-free calibration");
    }
    ptq_rng rng;
    ptq_rng_seed(&rng, seed);
    int rc = PTQ_OK, done = 0, total = nsamples * seqlen;
    for (int s0 = 0; s0 < nsamples && !rc; s0 += sub) {
        int nb = nsamples - s0 < sub ? nsamples - s0 : sub;
        ptq_gen *g = NULL;
        if ((rc = ptq_gen_create(&g, c, nb, seqlen, e))) break;
        for (int b = 0; b < nb; b++) tok[b] = out[(size_t)(s0 + b) * seqlen] = bos;
        for (int pos = 0; pos + 1 < seqlen && !rc; pos++) {
            rc = ptq_gen_step(g, src, tok, pos, logits, e);
            for (int b = 0; b < nb && !rc; b++) {
                tok[b] = ptq_sample(logits + (size_t)b * c->vocab, c->vocab, 1.0f, 1.0f, &rng);
                out[(size_t)(s0 + b) * seqlen + pos + 1] = tok[b];
            }
            done += nb;
            if (progress) progress(ud, done, total);
        }
        done += nb; /* the BOS positions */
        ptq_gen_free(g);
    }
    free(logits);
    free(tok);
    return rc;
}
