/* ptqrt_forward.c - the decoder forward of libptqrt over the kernels of
 * lib/cuda/ptqrt_kernels.h, in chunks of at most max_tokens tokens, and the
 * perplexity windows (ptqrt_eval_nll). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cuda/ptqrt_impl.h"

/* ---------------------------------------------------------------- forward */
static int linear(ptqrt_model *m, const lin *l, const uint16_t *x, float *y, int n)
{
    if (l->is_int) return ptqk_linear_int(&l->iw, x, l->cols, y, l->rows, n, m->opt.gemv_max_n, m->stream);
    if (l->is_e8p)
        return ptqk_linear_e8p(&l->ew, x, l->cols, y, l->rows, n, m->opt.gemv_max_n, m->e8_scratch, m->stream);
    if (l->is_aqlm)
        return ptqk_linear_aqlm(m->cublas, &l->aw, x, l->cols, y, l->rows, n, m->opt.gemv_max_n, m->aq_scratch,
                                m->stream);
    return ptqk_linear_f16(m->cublas, &l->fw, x, l->cols, y, l->rows, n);
}

/* One chunk: B sequences of T tokens (already on the device in m->tok) at
 * positions pos..; leaves the final hidden states in m->x. */
static int forward_chunk(ptqrt_model *m, int B, int T, int pos, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    const int n = B * T, D = c->hidden, I = c->intermediate, hd = c->head_dim;
    const int QD = c->n_heads * hd, KVD = c->n_kv_heads * hd, S = m->opt.max_seq;
    cudaStream_t s = m->stream;
    if (m->embed.is_int) CK(ptqk_embed_int(&m->embed.iw, m->tok, n, m->x, s), "embedding");
    else if (m->embed.is_aqlm) CK(ptqk_embed_aqlm(&m->embed.aw, m->tok, n, m->x, s), "embedding");
    else CK(ptqk_embed_f16(m->embed.fw.w, D, m->tok, n, m->x, s), "embedding");
    for (int l = 0; l < c->n_layers; l++) {
        layer *L = &m->layers[l];
        CK(ptqk_rmsnorm(m->x, L->attn_norm, D, c->rms_eps, n, m->xb, s), "rmsnorm");
        CK(linear(m, &L->w[0], m->xb, m->q, n), "q_proj");
        CK(linear(m, &L->w[1], m->xb, m->k, n), "k_proj");
        CK(linear(m, &L->w[2], m->xb, m->v, n), "v_proj");
        if (L->bias[0]) {
            CK(ptqk_add_bias(m->q, L->bias[0], QD, n, s), "q bias");
            CK(ptqk_add_bias(m->k, L->bias[1], KVD, n, s), "k bias");
            CK(ptqk_add_bias(m->v, L->bias[2], KVD, n, s), "v bias");
        }
        CK(ptqk_rope(m->q, c->n_heads, hd, m->inv_freq, B, T, pos, s), "rope");
        CK(ptqk_rope(m->k, c->n_kv_heads, hd, m->inv_freq, B, T, pos, s), "rope");
        if (L->kv_scale) {
            CK(ptqk_kv_store_i8(m->k, m->v, L->kv_scale, KVD, B, T, pos, S, L->kq, L->vq, s), "kv cache");
            CK(ptqk_attention_i8(m->q, L->kq, L->vq, L->kv_scale, c->n_heads, c->n_kv_heads, hd, B, T,
                                 pos, S, m->att, s),
               "attention");
        } else {
            CK(ptqk_kv_store(m->k, m->v, KVD, B, T, pos, S, L->kc, L->vc, s), "kv cache");
            CK(ptqk_attention(m->q, L->kc, L->vc, c->n_heads, c->n_kv_heads, hd, B, T, pos, S, m->att, s),
               "attention");
        }
        CK(linear(m, &L->w[3], m->att, m->t1, n), "o_proj");
        CK(ptqk_residual(m->x, m->t1, (size_t)n * D, s), "residual");
        CK(ptqk_rmsnorm(m->x, L->mlp_norm, D, c->rms_eps, n, m->xb, s), "rmsnorm");
        CK(linear(m, &L->w[4], m->xb, m->t1, n), "gate_proj");
        CK(linear(m, &L->w[5], m->xb, m->t2, n), "up_proj");
        CK(ptqk_swiglu(m->t1, m->t2, (size_t)n * I, m->hb, s), "swiglu");
        CK(linear(m, &L->w[6], m->hb, m->t1, n), "down_proj");
        CK(ptqk_residual(m->x, m->t1, (size_t)n * D, s), "residual");
    }
    return PTQ_OK;
}

/* Final norm and classifier for rows h [n][D] -> m->logits [n][V]. */
static int classify(ptqrt_model *m, const float *h, int n, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    CK(ptqk_rmsnorm(h, m->final_norm, c->hidden, c->rms_eps, n, m->xb, m->stream), "final norm");
    CK(linear(m, &m->head, m->xb, m->logits, n), "lm_head");
    return PTQ_OK;
}

int ptqrt_forward(ptqrt_model *m, const int32_t *tokens, int B, int T, int pos, float *logits,
                  int all_logits, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    const size_t V = (size_t)c->vocab;
    if (B < 1 || B > m->opt.max_batch)
        return ptq_fail(e, PTQ_EUSAGE, "batch %d outside 1..%d (max_batch)", B, m->opt.max_batch);
    if (T < 1 || pos < 0 || pos > m->opt.max_seq - T)
        return ptq_fail(e, PTQ_EUSAGE, "positions %d..%d outside the KV cache of %d", pos, pos + T - 1,
                        m->opt.max_seq);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return ptq_fail(e, PTQ_EUSAGE, "token id %d outside the vocabulary of %d", (int)tokens[i],
                            c->vocab);
    CK(cudaSetDevice(m->opt.device), "selecting the device");
    const int tc = m->opt.max_tokens / B; /* >= 1: max_batch <= max_tokens */
    int32_t *htok = malloc(sizeof *htok * (size_t)m->opt.max_tokens * 2);
    if (!htok) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    int32_t *hidx = htok + m->opt.max_tokens;
    int rc = PTQ_OK;
    for (int t0 = 0; t0 < T && !rc; t0 += tc) {
        int tt = T - t0 < tc ? T - t0 : tc, n = B * tt;
        for (int b = 0; b < B; b++)
            memcpy(htok + (size_t)b * tt, tokens + (size_t)b * T + t0, sizeof *htok * (size_t)tt);
        int err = (int)cudaMemcpyAsync(m->tok, htok, sizeof *htok * (size_t)n, cudaMemcpyHostToDevice, m->stream);
        if (err) {
            rc = ptqrt_cuda_fail(e, err, "uploading tokens");
            break;
        }
        if ((rc = forward_chunk(m, B, tt, pos + t0, e))) break;
        if (all_logits) {
            if ((rc = classify(m, m->x, n, e))) break;
            for (int b = 0; b < B && !err; b++)
                err = (int)cudaMemcpyAsync(logits + ((size_t)b * T + t0) * V, m->logits + (size_t)b * tt * V,
                                           sizeof(float) * V * (size_t)tt, cudaMemcpyDeviceToHost, m->stream);
        } else if (t0 + tt == T) {
            for (int b = 0; b < B; b++) hidx[b] = b * tt + tt - 1;
            err = (int)cudaMemcpyAsync(m->idx, hidx, sizeof *hidx * (size_t)B, cudaMemcpyHostToDevice, m->stream);
            if (!err) err = ptqk_gather_rows(m->x, c->hidden, m->idx, B, m->xl, m->stream);
            if (!err && (rc = classify(m, m->xl, B, e))) break;
            if (!err)
                err = (int)cudaMemcpyAsync(logits, m->logits, sizeof(float) * V * (size_t)B,
                                           cudaMemcpyDeviceToHost, m->stream);
        }
        /* the host buffers are reused by the next chunk: wait for the copies */
        if (!err) err = (int)cudaStreamSynchronize(m->stream);
        if (err) rc = ptqrt_cuda_fail(e, err, "forward");
    }
    free(htok);
    return rc;
}

/* ---------------------------------------------------------------- perplexity */
/* logsumexp(l) - l[target] in double; NAN when a logit is not finite. */
static double token_nll(const float *l, int V, int target)
{
    float mx = l[0];
    for (int v = 0; v < V; v++) {
        if (!isfinite(l[v])) return NAN;
        if (l[v] > mx) mx = l[v];
    }
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
    return (double)mx + log(s) - (double)l[target];
}

int ptqrt_eval_nll(ptqrt_model *m, const int32_t *ids, size_t n_ids, int ctx, double *window_nll,
                   ptq_err *e)
{
    const int V = m->cfg.vocab;
    if (ctx < 2 || ctx > m->opt.max_seq)
        return ptq_fail(e, PTQ_EUSAGE, "window of %d tokens outside 2..%d (max_seq)", ctx, m->opt.max_seq);
    size_t nw = n_ids / (size_t)ctx;
    int B = m->opt.max_batch;
    float *logits = malloc(sizeof *logits * (size_t)B * ctx * V);
    if (!logits) return ptq_fail(e, PTQ_ENOMEM, "out of host memory for %d x %d logits", B * ctx, V);
    int rc = PTQ_OK;
    for (size_t w0 = 0; w0 < nw && !rc; w0 += (size_t)B) {
        int nb = nw - w0 < (size_t)B ? (int)(nw - w0) : B;
        const int32_t *win = ids + w0 * (size_t)ctx;
        if ((rc = ptqrt_forward(m, win, nb, ctx, 0, logits, 1, e))) break;
        for (int b = 0; b < nb && !rc; b++) {
            double sum = 0.0;
            for (int t = 1; t < ctx; t++) {
                double d = token_nll(logits + ((size_t)b * ctx + t - 1) * V, V, win[(size_t)b * ctx + t]);
                if (isnan(d)) {
                    rc = ptq_fail(e, PTQ_EDATA, "the logits are not finite (window %zu, position %d)",
                                  w0 + (size_t)b, t - 1);
                    break;
                }
                sum += d;
            }
            window_nll[w0 + (size_t)b] = sum;
        }
    }
    free(logits);
    return rc;
}
