/* synth.c - synthetic checkpoints for tests (see synth.h). */
#include "tests/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/export.h"
#include "formats/safetensors.h"
#include "lib/base/half.h"
#include "tests/testutil.h"

ptq_config synth_tiny_config(void)
{
    ptq_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.model_type, "llama");
    c.hidden = 32;
    c.intermediate = 48;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.vocab = 64;
    c.max_pos = 64;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_scaling = PTQ_ROPE_NONE;
    c.rope_factor = 1.0f;
    c.tie_embeddings = 1;
    c.bos_id = 1;
    c.eos_id = 2;
    strcpy(c.torch_dtype, "float32");
    return c;
}

/* uniform in [-a, a) */
static void fill(float *p, size_t n, float a, float center, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        double u = (double)(tu_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
        p[i] = center + (float)((2.0 * u - 1.0) * a);
    }
}

ptq_config synth_variant(int v, const char **name)
{
    ptq_config c = synth_tiny_config(); /* 4 heads, 2 kv heads: GQA */
    if (v == 0) {
        c.qkv_bias = 1;
        snprintf(c.model_type, sizeof c.model_type, "qwen2");
        *name = "synthetic qwen2 bias";
    } else if (v == 1) {
        c.tie_embeddings = 0;
        *name = "synthetic untied";
    } else {
        c.n_kv_heads = c.n_heads;
        *name = "synthetic MHA";
    }
    return c;
}

int synth_init(synth_model *m, const ptq_config *c, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    uint64_t s = seed;
    size_t V = (size_t)c->vocab, D = (size_t)c->hidden;
    m->embed = malloc(sizeof(float) * V * D);
    m->norm = malloc(sizeof(float) * D);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->embed || !m->norm || !m->layers) return -1;
    fill(m->embed, V * D, 1.0f, 0.0f, &s);
    fill(m->norm, D, 0.2f, 1.0f, &s);
    if (!c->tie_embeddings) {
        m->lm_head = malloc(sizeof(float) * V * D);
        if (!m->lm_head) return -1;
        fill(m->lm_head, V * D, 1.0f, 0.0f, &s);
    }
    for (int l = 0; l < c->n_layers; l++) {
        ptq_layer_w *w = &m->layers[l];
        if (ptq_layer_w_alloc(w, c, NULL)) return -1;
        fill(w->attn_norm, D, 0.2f, 1.0f, &s);
        fill(w->mlp_norm, D, 0.2f, 1.0f, &s);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(c, i, &r, &k);
            fill(w->w[i], (size_t)r * k, 1.7f / sqrtf((float)k), 0.0f, &s);
            if (w->bias[i]) fill(w->bias[i], (size_t)r, 0.5f, 0.0f, &s);
        }
    }
    return 0;
}

void synth_free(synth_model *m)
{
    free(m->embed);
    free(m->lm_head);
    free(m->norm);
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++) ptq_layer_w_free(&m->layers[l]);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

static void round_buf(float *p, size_t n, ptq_dtype dt)
{
    if (!p) return;
    for (size_t i = 0; i < n; i++)
        p[i] = dt == PTQ_DT_BF16 ? ptq_bf16_to_f32(ptq_f32_to_bf16(p[i]))
             : dt == PTQ_DT_F16  ? ptq_f16_to_f32(ptq_f32_to_f16(p[i]))
                                 : p[i];
}

void synth_round(synth_model *m, ptq_dtype dt)
{
    const ptq_config *c = &m->cfg;
    size_t V = (size_t)c->vocab, D = (size_t)c->hidden;
    round_buf(m->embed, V * D, dt);
    round_buf(m->lm_head, V * D, dt);
    round_buf(m->norm, D, dt);
    for (int l = 0; l < c->n_layers; l++) {
        ptq_layer_w *w = &m->layers[l];
        round_buf(w->attn_norm, D, dt);
        round_buf(w->mlp_norm, D, dt);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(c, i, &r, &k);
            round_buf(w->w[i], (size_t)r * k, dt);
            round_buf(w->bias[i], (size_t)r, dt);
        }
    }
}

/* ------------------------------------------------------------ writing */

/* src as a tensor of dt, appended to tl (which owns the converted copy). */
static int tl_add(ptq_ex_tensors *tl, const char *name, const float *src, int64_t d0, int64_t d1,
                  ptq_dtype dt)
{
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    void *buf = malloc(n * ptq_dtype_size(dt));
    if (!buf) return -1;
    for (size_t i = 0; i < n; i++) {
        if (dt == PTQ_DT_F32) ((float *)buf)[i] = src[i];
        else if (dt == PTQ_DT_F16) ((uint16_t *)buf)[i] = ptq_f32_to_f16(src[i]);
        else ((uint16_t *)buf)[i] = ptq_f32_to_bf16(src[i]);
    }
    ptq_err e;
    return ptq_ex_add(tl, name, dt, d0, d1, buf, 1, &e) ? -1 : 0;
}

static int write_config(const ptq_config *c, const char *dir, ptq_dtype dt)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int qwen = !strcmp(c->model_type, "qwen2");
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
            qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", c->model_type);
    fprintf(f, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
               "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
               "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
               "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
               "  \"rope_theta\": %.9g,\n  \"tie_word_embeddings\": %s,\n",
            c->hidden, c->intermediate, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
            c->vocab, c->max_pos, (double)c->rms_eps, (double)c->rope_theta,
            c->tie_embeddings ? "true" : "false");
    if (!qwen && c->qkv_bias) fprintf(f, "  \"attention_bias\": true,\n");
    if (c->rope_scaling == PTQ_ROPE_LINEAR)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.9g},\n",
                (double)c->rope_factor);
    else if (c->rope_scaling == PTQ_ROPE_LLAMA3)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.9g, "
                   "\"low_freq_factor\": %.9g, \"high_freq_factor\": %.9g, "
                   "\"original_max_position_embeddings\": %d},\n",
                (double)c->rope_factor, (double)c->rope_low_freq_factor,
                (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    fprintf(f, "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"hidden_act\": \"silu\",\n"
               "  \"torch_dtype\": \"%s\"\n}\n",
            c->bos_id, c->eos_id,
            dt == PTQ_DT_BF16 ? "bfloat16" : dt == PTQ_DT_F16 ? "float16" : "float32");
    return fclose(f) ? -1 : 0;
}

static const char *shard_name(int i)
{
    return i == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
}

int synth_write(const synth_model *m, const char *dir, ptq_dtype dt, int shards, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    if (write_config(c, dir, dt)) return ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write config", dir);
    ptq_ex_tensors *tl = ptq_ex_new();
    if (!tl) return ptq_fail(e, PTQ_ENOMEM, "synth: out of memory");
    char name[256];
    int bad = 0;
    bad |= tl_add(tl, "model.embed_tokens.weight", m->embed, c->vocab, c->hidden, dt);
    for (int l = 0; l < c->n_layers && !bad; l++) {
        const ptq_layer_w *w = &m->layers[l];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        bad |= tl_add(tl, name, w->attn_norm, c->hidden, 0, dt);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        bad |= tl_add(tl, name, w->mlp_norm, c->hidden, 0, dt);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(c, i, &r, &k);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ptq_linear_name(i));
            bad |= tl_add(tl, name, w->w[i], r, k, dt);
            if (w->bias[i]) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, ptq_linear_name(i));
                bad |= tl_add(tl, name, w->bias[i], r, 0, dt);
            }
        }
    }
    bad |= tl_add(tl, "model.norm.weight", m->norm, c->hidden, 0, dt);
    if (m->lm_head && !bad) bad |= tl_add(tl, "lm_head.weight", m->lm_head, c->vocab, c->hidden, dt);
    if (bad) {
        ptq_ex_free(tl);
        return ptq_fail(e, PTQ_ENOMEM, "synth: out of memory");
    }
    int nt;
    const ptq_st_wtensor *t = ptq_ex_view(tl, &nt);
    char path[4096];
    int rc = PTQ_OK;
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = ptq_st_write(path, t, nt, e);
    } else {
        int half = nt / 2;
        snprintf(path, sizeof path, "%s/%s", dir, shard_name(0));
        rc = ptq_st_write(path, t, half, e);
        snprintf(path, sizeof path, "%s/%s", dir, shard_name(1));
        if (!rc) rc = ptq_st_write(path, t + half, nt - half, e);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *f = rc ? NULL : fopen(path, "w");
        if (!rc && !f) rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write", path);
        if (f) {
            size_t total = 0;
            for (int i = 0; i < nt; i++)
                total += (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1) *
                         ptq_dtype_size(dt);
            fprintf(f, "{\n  \"metadata\": {\"total_size\": %zu},\n  \"weight_map\": {\n", total);
            for (int i = 0; i < nt; i++)
                fprintf(f, "    \"%s\": \"%s\"%s\n", t[i].name, shard_name(i >= half),
                        i + 1 < nt ? "," : "");
            fprintf(f, "  }\n}\n");
            if (fclose(f)) rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write", path);
        }
    }
    ptq_ex_free(tl);
    return rc;
}

/* ------------------------------------------------------------ in-memory provider */

static int mem_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    synth_model *m = ctx;
    const ptq_config *c = &m->cfg;
    if (l < 0 || l >= c->n_layers) return ptq_fail(e, PTQ_EINTERNAL, "synth: no layer %d", l);
    const ptq_layer_w *s = &m->layers[l];
    size_t D = (size_t)c->hidden;
    memcpy(w->attn_norm, s->attn_norm, sizeof(float) * D);
    memcpy(w->mlp_norm, s->mlp_norm, sizeof(float) * D);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int r, k;
        ptq_linear_shape(c, i, &r, &k);
        memcpy(w->w[i], s->w[i], sizeof(float) * (size_t)r * k);
        if (s->bias[i] && w->bias[i]) memcpy(w->bias[i], s->bias[i], sizeof(float) * (size_t)r);
    }
    return PTQ_OK;
}

static int mem_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    synth_model *m = ctx;
    size_t D = (size_t)m->cfg.hidden;
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= m->cfg.vocab)
            return ptq_fail(e, PTQ_EDATA, "synth: token %d out of range", (int)tok[i]);
        memcpy(out + (size_t)i * D, m->embed + (size_t)tok[i] * D, sizeof(float) * D);
    }
    return PTQ_OK;
}

static int mem_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    synth_model *m = ctx;
    size_t V = (size_t)m->cfg.vocab, D = (size_t)m->cfg.hidden;
    memcpy(norm, m->norm, sizeof(float) * D);
    memcpy(lm_head, m->lm_head ? m->lm_head : m->embed, sizeof(float) * V * D);
    (void)e;
    return PTQ_OK;
}

void synth_weights(synth_model *m, ptq_weights *w)
{
    w->cfg = &m->cfg;
    w->ctx = m;
    w->layer = mem_layer;
    w->embed = mem_embed;
    w->head = mem_head;
    w->head_packed = NULL;
}
