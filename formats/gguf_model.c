/* gguf_model.c - a GGUF file as a source model (see gguf_model.h). */
#include "formats/gguf_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp names of the 7 linears, in enum ptq_linear order. */
static const char *const lin_names[PTQ_NLINEAR] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                   "ffn_gate", "ffn_up", "ffn_down"};
static const char *const norm_names[2] = {"attn_norm", "ffn_norm"};

/* The tensor name must exist with ggml dims [cols] (rows == 0) or [cols, rows]. */
static int expect(const ptq_gguf_model *m, const char *name, int64_t rows, int64_t cols,
                  const ptq_gguf_tensor **out, ptq_err *e)
{
    const ptq_gguf_tensor *t = ptq_gguf_tensor_find(&m->g, name);
    int nd = rows ? 2 : 1;
    if (!t)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is missing (the metadata implies ggml "
                        "dims [%lld, %lld])", m->g.path, name, (long long)cols,
                        (long long)(nd == 2 ? rows : 1));
    if (t->ndim != nd || t->dims[0] != (uint64_t)cols || (nd == 2 && t->dims[1] != (uint64_t)rows))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s has ggml dims [%llu, %llu] (%d-d) but the "
                        "metadata implies [%lld, %lld]", m->g.path, name,
                        (unsigned long long)t->dims[0], (unsigned long long)t->dims[1], t->ndim,
                        (long long)cols, (long long)(nd == 2 ? rows : 1));
    *out = t;
    return PTQ_OK;
}

static int find_layer(ptq_gguf_model *m, int l, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    char name[96];
    int rc;
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, norm_names[k]);
        if ((rc = expect(m, name, 0, c->hidden, &m->norm[l * 2 + k], e))) return rc;
    }
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int r, k;
        ptq_linear_shape(c, i, &r, &k);
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, lin_names[i]);
        if ((rc = expect(m, name, r, k, &m->lin[l * PTQ_NLINEAR + i], e))) return rc;
        snprintf(name, sizeof name, "blk.%d.%s.bias", l, lin_names[i]);
        if (c->qkv_bias && i <= PTQ_V) {
            if ((rc = expect(m, name, 0, r, &m->bias[l * 3 + i], e))) return rc;
        } else if (ptq_gguf_tensor_find(&m->g, name)) {
            return ptq_fail(e, PTQ_EFORMAT, "%s: %s is present but not supported (ptqc supports "
                            "q/k/v biases of qwen2 only)", m->g.path, name);
        }
    }
    return PTQ_OK;
}

static int find_tensors(ptq_gguf_model *m, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers;
    m->lin = calloc(L * PTQ_NLINEAR, sizeof *m->lin);
    m->norm = calloc(L * 2, sizeof *m->norm);
    m->bias = calloc(L * 3, sizeof *m->bias);
    if (!m->lin || !m->norm || !m->bias) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", m->g.path);
    int rc;
    if ((rc = expect(m, "token_embd.weight", c->vocab, c->hidden, &m->embd, e)) ||
        (rc = expect(m, "output_norm.weight", 0, c->hidden, &m->out_norm, e)))
        return rc;
    if (!c->tie_embeddings && (rc = expect(m, "output.weight", c->vocab, c->hidden, &m->output, e)))
        return rc;
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = find_layer(m, l, e))) return rc;
    return PTQ_OK;
}

int ptq_gguf_model_open(ptq_gguf_model *m, const char *path, ptq_err *e)
{
    memset(m, 0, sizeof *m);
    int rc = ptq_gguf_open(&m->g, path, e);
    if (rc) return rc;
    char *json = NULL;
    rc = ptq_gguf_config_json(&m->g, &json, e);
    if (rc == PTQ_OK) {
        char fname[512];
        snprintf(fname, sizeof fname, "%s (config from its metadata)", path);
        rc = ptq_config_parse(&m->cfg, json, strlen(json), fname, e);
    }
    free(json);
    if (rc == PTQ_OK) {
        m->permute_qk = !strcmp(m->cfg.model_type, "llama");
        rc = find_tensors(m, e);
    }
    if (rc) ptq_gguf_model_close(m);
    return rc;
}

void ptq_gguf_model_close(ptq_gguf_model *m)
{
    ptq_gguf_close(&m->g);
    free(m->lin);
    free(m->norm);
    free(m->bias);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- provider */

/* Widen t; for llama's attn_q/attn_k (heads of hd rows) put the rows back
 * from llama.cpp's order: its row h*hd + 2r + i is HF row h*hd + i*hd/2 + r
 * (convert_hf_to_gguf.py's permute: reshape(heads, 2, hd/2) then swap). */
static void read_rows(const ptq_gguf_tensor *t, int heads, int hd, float *out)
{
    uint64_t cols = t->dims[0], rows = t->ndim == 2 ? t->dims[1] : 1;
    if (!heads) {
        ptq_gguf_read_f32(t, 0, t->numel, out);
        return;
    }
    for (uint64_t g = 0; g < rows; g++) {
        uint64_t h = g / (uint64_t)hd, j = g % (uint64_t)hd, r = j / 2, i = j % 2;
        uint64_t hf = h * (uint64_t)hd + i * (uint64_t)(hd / 2) + r;
        ptq_gguf_read_f32(t, g * cols, cols, out + hf * cols);
    }
}

/* NaN or Inf in a widened tensor is PTQ_EDATA naming it. */
static int finite(const ptq_gguf_model *m, const ptq_gguf_tensor *t, const float *x, ptq_err *e)
{
    for (uint64_t i = 0; i < t->numel; i++)
        if (x[i] - x[i] != 0.0f)
            return ptq_fail(e, PTQ_EDATA, "%s: tensor %s holds %s at element %llu", m->g.path,
                            t->name, x[i] != x[i] ? "NaN" : "Inf", (unsigned long long)i);
    return PTQ_OK;
}

static int gg_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    const ptq_gguf_model *m = ctx;
    const ptq_config *c = &m->cfg;
    if (l < 0 || l >= c->n_layers)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: layer %d asked of %d", m->g.path, l, c->n_layers);
    int rc;
    ptq_gguf_read_f32(m->norm[l * 2], 0, (uint64_t)c->hidden, w->attn_norm);
    ptq_gguf_read_f32(m->norm[l * 2 + 1], 0, (uint64_t)c->hidden, w->mlp_norm);
    if ((rc = finite(m, m->norm[l * 2], w->attn_norm, e)) ||
        (rc = finite(m, m->norm[l * 2 + 1], w->mlp_norm, e)))
        return rc;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int heads = !m->permute_qk ? 0 : i == PTQ_Q ? c->n_heads : i == PTQ_K ? c->n_kv_heads : 0;
        const ptq_gguf_tensor *t = m->lin[l * PTQ_NLINEAR + i];
        read_rows(t, heads, c->head_dim, w->w[i]);
        if ((rc = finite(m, t, w->w[i], e))) return rc;
        if (c->qkv_bias && i <= PTQ_V) {
            if (!w->bias[i])
                return ptq_fail(e, PTQ_EINTERNAL, "layer buffers have no room for biases");
            t = m->bias[l * 3 + i];
            ptq_gguf_read_f32(t, 0, t->numel, w->bias[i]);
            if ((rc = finite(m, t, w->bias[i], e))) return rc;
        }
    }
    return PTQ_OK;
}

static int gg_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    const ptq_gguf_model *m = ctx;
    uint64_t D = (uint64_t)m->cfg.hidden;
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= m->cfg.vocab)
            return ptq_fail(e, PTQ_EDATA, "token id %d is outside the vocabulary [0, %d) of %s",
                            (int)tok[i], m->cfg.vocab, m->g.path);
        ptq_gguf_read_f32(m->embd, (uint64_t)tok[i] * D, D, out + (size_t)i * D);
    }
    return PTQ_OK;
}

static int gg_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    const ptq_gguf_model *m = ctx;
    ptq_gguf_read_f32(m->out_norm, 0, (uint64_t)m->cfg.hidden, norm);
    const ptq_gguf_tensor *t = m->output ? m->output : m->embd;
    ptq_gguf_read_f32(t, 0, t->numel, lm_head);
    int rc = finite(m, m->out_norm, norm, e);
    return rc ? rc : finite(m, t, lm_head, e);
}

const ptq_gguf_tensor *ptq_gguf_model_hf(const ptq_gguf_model *m, const char *hf, int *heads)
{
    *heads = 0;
    if (!strcmp(hf, "model.embed_tokens.weight")) return m->embd;
    if (!strcmp(hf, "model.norm.weight")) return m->out_norm;
    if (!strcmp(hf, "lm_head.weight")) return m->output;
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) != 1 || n == 0 || l < 0 || l >= m->cfg.n_layers)
        return NULL;
    const char *rest = hf + n;
    if (!strcmp(rest, "input_layernorm.weight")) return m->norm[l * 2];
    if (!strcmp(rest, "post_attention_layernorm.weight")) return m->norm[l * 2 + 1];
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        size_t k = strlen(ptq_linear_name(i));
        if (strncmp(rest, ptq_linear_name(i), k)) continue;
        if (!strcmp(rest + k, ".weight")) {
            if (m->permute_qk && i == PTQ_Q) *heads = m->cfg.n_heads;
            if (m->permute_qk && i == PTQ_K) *heads = m->cfg.n_kv_heads;
            return m->lin[l * PTQ_NLINEAR + i];
        }
        if (!strcmp(rest + k, ".bias") && i <= PTQ_V) return m->bias[l * 3 + i];
    }
    return NULL;
}

int ptq_gguf_model_read(const ptq_gguf_model *m, const ptq_gguf_tensor *t, int heads, float *out,
                        ptq_err *e)
{
    read_rows(t, heads, m->cfg.head_dim, out);
    return finite(m, t, out, e);
}

void ptq_gguf_model_weights(ptq_gguf_model *m, ptq_weights *w)
{
    *w = (ptq_weights){.cfg = &m->cfg, .ctx = m,
                       .layer = gg_layer, .embed = gg_embed, .head = gg_head};
}
