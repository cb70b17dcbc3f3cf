/* forward.c - the FP32 forward pass of Llama-family decoders (see model.h).
 *
 * One decoder layer over B sequences of T tokens, every sequence starting at
 * position 0 with causal attention:
 *
 *   h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))
 *
 * with n1 = rmsnorm(x), n2 = rmsnorm(h).  Every linear is one cblas_sgemm over
 * all N = B*T rows (x [N, in] times W^T, W [out, in] row-major).  Attention is
 * two sgemms per (sequence, head, block of 128 query rows [r0, r1)):
 * S = Q[r0, r1) K[0, r1)^T / sqrt(hd), the causal softmax in place (keys
 * j <= i; the few j > i inside the block set to 0), then O[r0, r1) = S V[0, r1),
 * so the scores above the diagonal blocks are never computed (at T = 2048
 * 53% of the full T x T products).  exp, softmax and silu are lib/model/act.h's.
 *
 * RMSNorm: y = x * (1 / sqrt(mean(x^2) + eps)) * w, with the sum of squares
 * accumulated in double and everything else in float.
 * RoPE: the Hugging Face rotate_half convention, pairs (i, i + hd/2), angle
 * pos * inv_freq[i] with inv_freq[i] = theta^(-2i/hd), adjusted for
 * rope_scaling linear (inv_freq / factor, i.e. positions divided by factor)
 * or llama3 (the Llama 3.1 reference: wavelengths above
 * orig_max_pos / low_freq_factor are divided by factor, those below
 * orig_max_pos / high_freq_factor are kept, and those between interpolate
 * smoothly).  The cos/sin tables are computed once, in double, per ptq_fwd.
 *
 * Determinism: the same batch shape and OpenBLAS thread count give the same
 * bits.  OpenBLAS's sgemm rounds differently with another thread count (its
 * work partition) and for fewer than 16 rows (edge kernels), so results across
 * thread counts or batch shapes agree to float32 rounding, not bit for bit.
 */
#include "lib/model/model.h"

#include <cblas.h>
#include "lib/model/act.h"
#include "lib/model/forward_ops.h"
#include "lib/qfmt/qfmt.h"
#include "lib/qfmt/kvq.h"
#include "lib/qfmt/w8a8.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ptq_fwd {
    ptq_config c;
    int max_tokens, max_T;
    int q_dim, kv_dim;
    float *xb;     /* [N, D]     normed input of q/k/v and of gate/up */
    float *q;      /* [N, q_dim] */
    float *k;      /* [N, kv_dim] */
    float *v;      /* [N, kv_dim] */
    float *att;    /* [PTQ_ATT_ROWS, T] scores of one block of query rows */
    float *ao;     /* [N, q_dim] attention output (input of o_proj) */
    float *hb;     /* [N, I]     gate, then silu(gate) * up */
    float *hb2;    /* [N, I]     up */
    float *tmp;    /* [N, D]     output of o_proj / down_proj */
    float *cos_t;  /* [max_T, hd/2] */
    float *sin_t;  /* [max_T, hd/2] */
    /* ptq_forward only: one reused layer, the head, allocated on first use */
    ptq_layer_w lw;
    int have_lw;
    float *norm;    /* [D] */
    float *lm_head; /* [V, D] */
};

/* inv_freq[i] for i in [0, hd/2), after rope_scaling. */
static double rope_inv_freq(const ptq_config *c, int i)
{
    double inv = pow((double)c->rope_theta, -2.0 * i / (double)c->head_dim);
    if (c->rope_scaling == PTQ_ROPE_LINEAR) return inv / c->rope_factor;
    if (c->rope_scaling == PTQ_ROPE_LLAMA3) {
        double factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        double old = c->rope_orig_max_pos;
        double wavelen = 2.0 * M_PI / inv;
        if (wavelen < old / hi) return inv;           /* high frequency: kept */
        if (wavelen > old / lo) return inv / factor;  /* low frequency: scaled */
        double smooth = (old / wavelen - lo) / (hi - lo);
        return (1.0 - smooth) * inv / factor + smooth * inv;
    }
    return inv;
}

void ptq_rope_tables(const ptq_config *c, int n_pos, float *cos_t, float *sin_t)
{
    size_t hd2 = (size_t)c->head_dim / 2;
    for (size_t i = 0; i < hd2; i++) {
        double inv = rope_inv_freq(c, (int)i);
        for (int p = 0; p < n_pos; p++) {
            double a = (double)p * inv;
            cos_t[(size_t)p * hd2 + i] = (float)cos(a);
            sin_t[(size_t)p * hd2 + i] = (float)sin(a);
        }
    }
}

void ptq_fwd_free(ptq_fwd *f)
{
    if (!f) return;
    free(f->xb);
    free(f->q);
    free(f->k);
    free(f->v);
    free(f->att);
    free(f->ao);
    free(f->hb);
    free(f->hb2);
    free(f->tmp);
    free(f->cos_t);
    free(f->sin_t);
    if (f->have_lw) ptq_layer_w_free(&f->lw);
    free(f->norm);
    free(f->lm_head);
    free(f);
}

static float *falloc(size_t a, size_t b, int *ok)
{
    float *p = malloc(sizeof(float) * (a ? a : 1) * (b ? b : 1));
    if (!p) *ok = 0;
    return p;
}

int ptq_fwd_create(ptq_fwd **out, const ptq_config *c, int max_tokens, int max_T, ptq_err *e)
{
    *out = NULL;
    if (c->hidden <= 0 || c->intermediate <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->head_dim % 2 || c->n_heads % c->n_kv_heads || c->vocab <= 0 ||
        c->n_layers <= 0)
        return ptq_fail(e, PTQ_EFORMAT,
                        "model config: unusable shape (hidden %d, intermediate %d, heads %d, "
                        "kv heads %d, head_dim %d, vocab %d, layers %d)",
                        c->hidden, c->intermediate, c->n_heads, c->n_kv_heads, c->head_dim,
                        c->vocab, c->n_layers);
    if (max_T < 1 || max_tokens < max_T)
        return ptq_fail(e, PTQ_EINTERNAL, "forward: max_T %d and max_tokens %d are inconsistent",
                        max_T, max_tokens);
    ptq_fwd *f = calloc(1, sizeof *f);
    if (!f) return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating the forward pass");
    f->c = *c;
    f->max_tokens = max_tokens;
    f->max_T = max_T;
    f->q_dim = c->n_heads * c->head_dim;
    f->kv_dim = c->n_kv_heads * c->head_dim;
    size_t N = (size_t)max_tokens, hd2 = (size_t)c->head_dim / 2;
    int ok = 1;
    f->xb = falloc(N, c->hidden, &ok);
    f->q = falloc(N, f->q_dim, &ok);
    f->k = falloc(N, f->kv_dim, &ok);
    f->v = falloc(N, f->kv_dim, &ok);
    f->att = falloc(max_T < PTQ_ATT_ROWS ? max_T : PTQ_ATT_ROWS, max_T, &ok);
    f->ao = falloc(N, f->q_dim, &ok);
    f->hb = falloc(N, c->intermediate, &ok);
    f->hb2 = falloc(N, c->intermediate, &ok);
    f->tmp = falloc(N, c->hidden, &ok);
    f->cos_t = falloc(max_T, hd2, &ok);
    f->sin_t = falloc(max_T, hd2, &ok);
    if (!ok) {
        ptq_fwd_free(f);
        return ptq_fail(e, PTQ_ENOMEM,
                        "out of memory allocating forward scratch for %d tokens", max_tokens);
    }
    ptq_rope_tables(c, max_T, f->cos_t, f->sin_t);
    *out = f;
    return PTQ_OK;
}

void ptq_rmsnorm(float *out, const float *x, const float *w, int n, int D, float eps)
{
    for (int r = 0; r < n; r++)
        ptq_rmsnorm_row(out + (size_t)r * D, x + (size_t)r * D, w, D, eps, PTQ_ACT_BEST);
}

/* y[N, rows] = x[N, cols] W^T (+ bias) */
static void linear(float *y, const float *x, const float *W, const float *bias, int N, int rows,
                   int cols)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, cols, 1.0f, x, cols, W, cols,
                0.0f, y, rows);
    if (bias)
        for (int r = 0; r < N; r++) {
            float *yr = y + (size_t)r * rows;
            for (int i = 0; i < rows; i++) yr[i] += bias[i];
        }
}

int ptq_layer_linear(const ptq_layer_w *w, int i, float *y, const float *x, int N, int rows,
                        int cols, ptq_err *e)
{
    int rc = PTQ_OK;
    if (w->q[i]) { /* packed weights: the format's fused GEMV per row of x */
        const ptq_qfmt *f = ptq_qfmt_get(w->q[i]->format);
        if (!f || !f->gemv)
            return ptq_fail(e, PTQ_EINTERNAL, "linear %d: format %d has no packed GEMV", i,
                            w->q[i]->format);
        for (int r = 0; r < N && !rc; r++)
            rc = f->gemv(w->q[i], x + (size_t)r * cols, y + (size_t)r * rows, w->threads, e);
    } else if (!w->aq[i]) {
        linear(y, x, w->w[i], w->bias[i], N, rows, cols);
        return PTQ_OK;
    } else {
        rc = ptq_a8_linear(w->aq[i], x, N, y, e);
    }
    if (!rc && w->bias[i])
        for (int r = 0; r < N; r++)
            for (int k = 0; k < rows; k++) y[(size_t)r * rows + k] += w->bias[i][k];
    return rc;
}

void ptq_kv_int8(float *x, const float *s, int N, int kv_dim)
{
    for (size_t r = 0; r < (size_t)N; r++) {
        float *v = x + r * kv_dim;
        for (int i = 0; i < kv_dim; i++) {
            v[i] = ptq_kv_value(ptq_kv_code(v[i], s[i]), s[i]);
        }
    }
}

void ptq_rope_row(float *row, int nh, int hd, const float *cs, const float *sn)
{
    int h2 = hd / 2;
    for (int h = 0; h < nh; h++) {
        float *v = row + (size_t)h * hd;
        for (int i = 0; i < h2; i++) {
            float x0 = v[i], x1 = v[i + h2];
            v[i] = x0 * cs[i] - x1 * sn[i];
            v[i + h2] = x1 * cs[i] + x0 * sn[i];
        }
    }
}

/* Rotate every head of x [B*T, nh*hd] in place; token t of a sequence is at
 * position t. */
static void rope(const ptq_fwd *f, float *x, int B, int T, int nh)
{
    int hd = f->c.head_dim, h2 = hd / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = x + ((size_t)b * T + t) * (size_t)nh * hd;
            ptq_rope_row(row, nh, hd, f->cos_t + (size_t)t * h2, f->sin_t + (size_t)t * h2);
        }
}

/* Causal softmax attention of q, k, v into ao, per (sequence, head) in
 * blocks of PTQ_ATT_ROWS query rows [r0, r1): S = Q[r0, r1) K[0, r1)^T / sqrt(hd),
 * row i's softmax over its keys j <= i (act.h) and zeros for i < j < r1,
 * then O[r0, r1) = S V[0, r1).  Keys past the block are never multiplied. */
static void attention(ptq_fwd *f, int B, int T)
{
    const ptq_config *c = &f->c;
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    float *S = f->att;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < c->n_heads; h++) {
            int kh = h / group;
            const float *Q = f->q + (size_t)b * T * f->q_dim + (size_t)h * hd;
            const float *K = f->k + (size_t)b * T * f->kv_dim + (size_t)kh * hd;
            const float *V = f->v + (size_t)b * T * f->kv_dim + (size_t)kh * hd;
            float *O = f->ao + (size_t)b * T * f->q_dim + (size_t)h * hd;
            for (int r0 = 0; r0 < T; r0 += PTQ_ATT_ROWS) {
                int r1 = r0 + PTQ_ATT_ROWS < T ? r0 + PTQ_ATT_ROWS : T, m = r1 - r0;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, hd, scale,
                            Q + (size_t)r0 * f->q_dim, f->q_dim, K, f->kv_dim, 0.0f, S, r1);
                for (int i = r0; i < r1; i++) {
                    float *s = S + (size_t)(i - r0) * r1;
                    ptq_softmax(s, i + 1, PTQ_ACT_BEST);
                    for (int j = i + 1; j < r1; j++) s[j] = 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, r1, 1.0f, S, r1, V,
                            f->kv_dim, 0.0f, O + (size_t)r0 * f->q_dim, f->q_dim);
            }
        }
}

static void copy_rows(float *dst, const float *src, size_t n)
{
    if (dst) memcpy(dst, src, sizeof(float) * n);
}

static int check_batch(const ptq_fwd *f, int B, int T, ptq_err *e)
{
    if (B < 1 || T < 1 || T > f->max_T || (long)B * T > f->max_tokens)
        return ptq_fail(e, PTQ_EINTERNAL,
                        "forward: batch of %d x %d tokens exceeds the scratch (%d tokens, T <= %d)",
                        B, T, f->max_tokens, f->max_T);
    return PTQ_OK;
}

int ptq_fwd_attn(ptq_fwd *f, const ptq_layer_w *w, const float *x, int B, int T,
                 ptq_capture *cap, ptq_err *e)
{
    const ptq_config *c = &f->c;
    int rc = check_batch(f, B, T, e);
    if (rc) return rc;
    int N = B * T, D = c->hidden;
    ptq_rmsnorm(f->xb, x, w->attn_norm, N, D, c->rms_eps);
    if (cap) copy_rows(cap->attn_in, f->xb, (size_t)N * D);
    if ((rc = ptq_layer_linear(w, PTQ_Q, f->q, f->xb, N, f->q_dim, D, e)) ||
        (rc = ptq_layer_linear(w, PTQ_K, f->k, f->xb, N, f->kv_dim, D, e)) ||
        (rc = ptq_layer_linear(w, PTQ_V, f->v, f->xb, N, f->kv_dim, D, e)))
        return rc;
    rope(f, f->q, B, T, c->n_heads);
    rope(f, f->k, B, T, c->n_kv_heads);
    if (cap) copy_rows(cap->k_rot, f->k, (size_t)N * f->kv_dim);
    if (cap) copy_rows(cap->v_out, f->v, (size_t)N * f->kv_dim);
    if (w->kv_scale) {
        ptq_kv_int8(f->k, w->kv_scale, N, f->kv_dim);
        ptq_kv_int8(f->v, w->kv_scale + f->kv_dim, N, f->kv_dim);
    }
    attention(f, B, T);
    if (cap) copy_rows(cap->o_in, f->ao, (size_t)N * f->q_dim);
    return PTQ_OK;
}

int ptq_fwd_attn_out(ptq_fwd *f, const ptq_layer_w *w, float *x, const float *ao, int N,
                     ptq_err *e)
{
    if (N < 1 || N > f->max_tokens)
        return ptq_fail(e, PTQ_EINTERNAL, "forward: %d tokens exceed the scratch (%d)", N,
                        f->max_tokens);
    size_t ND = (size_t)N * f->c.hidden;
    int rc = ptq_layer_linear(w, PTQ_O, f->tmp, ao ? ao : f->ao, N, f->c.hidden, f->q_dim, e);
    if (rc) return rc;
    for (size_t i = 0; i < ND; i++) x[i] += f->tmp[i];
    return PTQ_OK;
}

int ptq_fwd_mlp(ptq_fwd *f, const ptq_layer_w *w, float *x, int N, ptq_capture *cap,
                int residual, ptq_err *e)
{
    const ptq_config *c = &f->c;
    if (N < 1 || N > f->max_tokens)
        return ptq_fail(e, PTQ_EINTERNAL, "forward: %d tokens exceed the scratch (%d)", N,
                        f->max_tokens);
    int D = c->hidden, I_ = c->intermediate, rc;
    size_t ND = (size_t)N * D;
    ptq_rmsnorm(f->xb, x, w->mlp_norm, N, D, c->rms_eps);
    if (cap) copy_rows(cap->mlp_in, f->xb, ND);
    if ((rc = ptq_layer_linear(w, PTQ_GATE, f->hb, f->xb, N, I_, D, e)) ||
        (rc = ptq_layer_linear(w, PTQ_UP, f->hb2, f->xb, N, I_, D, e)))
        return rc;
    size_t NI = (size_t)N * I_;
    ptq_silu_mul(f->hb, f->hb2, NI, PTQ_ACT_BEST);
    if (cap) copy_rows(cap->down_in, f->hb, NI);
    if (!residual) return PTQ_OK;
    if ((rc = ptq_layer_linear(w, PTQ_DOWN, f->tmp, f->hb, N, D, I_, e))) return rc;
    for (size_t i = 0; i < ND; i++) x[i] += f->tmp[i];
    return PTQ_OK;
}

int ptq_fwd_layer(ptq_fwd *f, const ptq_layer_w *w, float *x, int B, int T, ptq_capture *cap,
                  ptq_err *e)
{
    int rc = ptq_fwd_attn(f, w, x, B, T, cap, e);
    if (!rc) rc = ptq_fwd_attn_out(f, w, x, NULL, B * T, e);
    if (!rc) rc = ptq_fwd_mlp(f, w, x, B * T, cap, 1, e);
    return rc;
}

void ptq_fwd_logits(const ptq_config *c, const float *norm, const float *lm_head, const float *x,
                    int n, float *logits, float *scratch)
{
    ptq_rmsnorm(scratch, x, norm, n, c->hidden, c->rms_eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c->vocab, c->hidden, 1.0f, scratch,
                c->hidden, lm_head, c->hidden, 0.0f, logits, c->vocab);
}

int ptq_forward(ptq_fwd *f, const ptq_weights *src, const int32_t *tokens, int B, int T,
                float *logits, ptq_err *e)
{
    const ptq_config *c = &f->c;
    if (B < 1 || T < 1 || T > f->max_T || (long)B * T > f->max_tokens)
        return ptq_fail(e, PTQ_EINTERNAL,
                        "forward: batch of %d x %d tokens exceeds the scratch (%d tokens, T <= %d)",
                        B, T, f->max_tokens, f->max_T);
    const ptq_config *sc = src->cfg;
    if (sc->hidden != c->hidden || sc->intermediate != c->intermediate ||
        sc->n_layers != c->n_layers || sc->n_heads != c->n_heads ||
        sc->n_kv_heads != c->n_kv_heads || sc->head_dim != c->head_dim ||
        sc->vocab != c->vocab || sc->qkv_bias != c->qkv_bias)
        return ptq_fail(e, PTQ_EINTERNAL, "forward: weights do not match the forward's config");
    int N = B * T;
    for (int i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return ptq_fail(e, PTQ_EDATA, "token id %d at position %d is outside the vocabulary "
                                          "[0, %d)", (int)tokens[i], i, c->vocab);
    if (!f->have_lw) {
        int rc = ptq_layer_w_alloc(&f->lw, c, e);
        if (rc) return rc;
        f->have_lw = 1;
    }
    if (!f->norm) {
        f->norm = malloc(sizeof(float) * (size_t)c->hidden);
        f->lm_head = malloc(sizeof(float) * (size_t)c->vocab * (size_t)c->hidden);
        if (!f->norm || !f->lm_head) {
            free(f->norm);
            free(f->lm_head);
            f->norm = f->lm_head = NULL;
            return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating the classifier (%d x %d)",
                            c->vocab, c->hidden);
        }
    }
    float *x = malloc(sizeof(float) * (size_t)N * c->hidden);
    if (!x) return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating activations");
    int rc = src->embed(src->ctx, tokens, N, x, e);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        rc = src->layer(src->ctx, l, &f->lw, e);
        if (!rc) rc = ptq_fwd_layer(f, &f->lw, x, B, T, NULL, e);
    }
    if (!rc) rc = src->head(src->ctx, f->norm, f->lm_head, e);
    if (!rc) ptq_fwd_logits(c, f->norm, f->lm_head, x, N, logits, f->tmp);
    free(x);
    return rc;
}
