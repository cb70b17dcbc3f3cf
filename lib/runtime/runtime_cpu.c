/* runtime_cpu.c - the CPU reference runtime over a bundle (runtime_cpu.h). */
#include "lib/runtime/runtime_cpu.h"
#include "formats/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/base/dtype.h"
#include "lib/qfmt/qfmt.h"

/* Decode tensor name (of shape rows x cols) into out. */
static int load(ptq_cpu_model *m, const char *name, int rows, int cols, float *out, ptq_err *e)
{
    ptq_qtensor q;
    int rc = ptq_bundle_tensor(&m->b, name, &q, e);
    if (rc) return rc;
    if (q.rows != rows || q.cols != cols)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is %d x %d, the config implies %d x %d",
                        m->b.path, name, q.rows, q.cols, rows, cols);
    return ptq_qtensor_dequant(&q, out, e);
}

/* The int8 KV-cache scales of layer l (tensor model.layers.L.self_attn.kv_scale,
 * F32, keys then values), when the bundle has them: [2, kv heads * head_dim]
 * (one scale per kv head and head-dim channel), or the per-head [2, kv heads]
 * of earlier bundles, whose scale then holds for every channel of its head. */
static int kv_scales(ptq_cpu_model *m, int l, ptq_layer_w *w, ptq_err *e)
{
    char name[160], member[200];
    const ptq_config *c = &m->cfg;
    int kvd = c->n_kv_heads * c->head_dim;
    w->kv_scale = NULL;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_scale", l);
    snprintf(member, sizeof member, "tensors/%s.data", name);
    if (!ptq_bundle_member_data(&m->b, member, NULL)) return PTQ_OK;
    ptq_qtensor q;
    int rc = ptq_bundle_tensor(&m->b, name, &q, e);
    if (rc) return rc;
    if (q.format != PTQ_QF_DENSE || q.dtype != PTQ_DT_F32 || q.rows != 2 ||
        (q.cols != kvd && q.cols != c->n_kv_heads))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is not F32 2 x %d (per channel) or 2 x %d "
                        "(per head)", m->b.path, name, kvd, c->n_kv_heads);
    const float *s = q.data;
    for (int i = 0; i < 2 * q.cols; i++)
        if (!(isfinite(s[i]) && s[i] > 0))
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s: scale %g is not finite and positive",
                            m->b.path, name, (double)s[i]);
    if (!m->kv_scale && !(m->kv_scale = malloc(2 * (size_t)kvd * sizeof(float))))
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the KV-cache scales");
    int per = q.cols == kvd ? 1 : c->head_dim; /* channels per stored scale */
    for (int i = 0; i < 2 * kvd; i++) m->kv_scale[i] = s[i / per];
    w->kv_scale = m->kv_scale;
    return PTQ_OK;
}

static int cpu_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    ptq_cpu_model *m = ctx;
    const ptq_config *c = &m->cfg;
    char name[160];
    int rc;
    if (l < 0 || l >= c->n_layers)
        return ptq_fail(e, PTQ_EINTERNAL, "layer %d outside 0..%d", l, c->n_layers - 1);
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if ((rc = load(m, name, 1, c->hidden, w->attn_norm, e))) return rc;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if ((rc = load(m, name, 1, c->hidden, w->mlp_norm, e))) return rc;
    if ((rc = kv_scales(m, l, w, e))) return rc;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int r, k;
        ptq_linear_shape(c, i, &r, &k);
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ptq_linear_name(i));
        w->aq[i] = NULL;
        w->q[i] = NULL;
        if ((rc = ptq_bundle_tensor(&m->b, name, &m->aq[i], e))) return rc;
        const ptq_qfmt *f = ptq_qfmt_get(m->aq[i].format);
        if (w->want_packed && f && f->gemv && m->aq[i].rows == r && m->aq[i].cols == k) {
            w->q[i] = &m->aq[i]; /* decoded by the packed GEMV, never widened */
        } else {
            if ((rc = load(m, name, r, k, w->w[i], e))) return rc;
            /* activation-quantized: the forward runs the 8-bit product */
            if (f && (f->flags & PTQ_QFMT_ACT)) w->aq[i] = &m->aq[i];
        }
        if (w->bias[i]) {
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, ptq_linear_name(i));
            if ((rc = load(m, name, 1, r, w->bias[i], e))) return rc;
        }
    }
    return PTQ_OK;
}

static int cpu_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    ptq_cpu_model *m = ctx;
    const char *name = "model.embed_tokens.weight";
    ptq_qtensor q;
    int rc = ptq_bundle_tensor(&m->b, name, &q, e);
    if (rc) return rc;
    if (q.rows != m->cfg.vocab || q.cols != m->cfg.hidden)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is %d x %d, the config implies %d x %d",
                        m->b.path, name, q.rows, q.cols, m->cfg.vocab, m->cfg.hidden);
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= q.rows)
            return ptq_fail(e, PTQ_EDATA, "token id %d outside the vocabulary of %d",
                            (int)tok[i], q.rows);
        if ((rc = ptq_qtensor_dequant_rows(&q, tok[i], 1, out + (size_t)i * (size_t)q.cols, e)))
            return rc;
    }
    return PTQ_OK;
}

static int cpu_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    ptq_cpu_model *m = ctx;
    const ptq_config *c = &m->cfg;
    int rc = load(m, "model.norm.weight", 1, c->hidden, norm, e);
    if (rc) return rc;
    return load(m, c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", c->vocab,
                c->hidden, lm_head, e);
}

/* The lm_head as the bundle's tensor, when its format has a fused GEMV. */
static int cpu_head_packed(void *ctx, float *norm, const ptq_qtensor **lm_head, ptq_err *e)
{
    ptq_cpu_model *m = ctx;
    const ptq_config *c = &m->cfg;
    const char *name = c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    *lm_head = NULL;
    int rc = load(m, "model.norm.weight", 1, c->hidden, norm, e);
    if (rc || (rc = ptq_bundle_tensor(&m->b, name, &m->head, e))) return rc;
    const ptq_qfmt *f = ptq_qfmt_get(m->head.format);
    if (f && f->gemv && m->head.rows == c->vocab && m->head.cols == c->hidden)
        *lm_head = &m->head;
    return PTQ_OK;
}

int ptq_cpu_open(ptq_cpu_model *m, const char *path, int verify, ptq_err *e)
{
    memset(m, 0, sizeof *m);
    int rc = ptq_bundle_open(&m->b, path, verify, e);
    if (rc) return rc;
    if ((rc = ptq_bundle_config(&m->b, &m->cfg, e))) ptq_cpu_close(m);
    return rc;
}

void ptq_cpu_close(ptq_cpu_model *m)
{
    ptq_bundle_close(&m->b);
    free(m->kv_scale);
    memset(m, 0, sizeof *m);
}

void ptq_cpu_weights(ptq_cpu_model *m, ptq_weights *w)
{
    *w = (ptq_weights){.cfg = &m->cfg, .ctx = m,
                       .layer = cpu_layer, .embed = cpu_embed, .head = cpu_head,
                       .head_packed = cpu_head_packed};
}

int ptq_bundle_tokenizer(const ptq_bundle *b, ptq_tokenizer **t, ptq_err *e)
{
    uint64_t len, clen = 0;
    const char *json = ptq_bundle_member_data(b, "tokenizer.json", &len);
    const char *cfg = ptq_bundle_member_data(b, "tokenizer_config.json", &clen);
    *t = NULL;
    if (!json) return ptq_fail(e, PTQ_EFORMAT, "%s: the bundle has no tokenizer.json", b->path);
    int rc = ptq_tok_load_mem(t, json, (size_t)len, cfg, (size_t)clen, "tokenizer.json", e);
    if (rc) ptq_fail_prefix(e, "%s", b->path);
    return rc;
}

int ptq_cpu_tokenizer(const ptq_cpu_model *m, ptq_tokenizer **t, ptq_err *e)
{
    return ptq_bundle_tokenizer(&m->b, t, e);
}

int ptq_bundle_file_tokenizer(const char *path, ptq_tokenizer **t, ptq_err *e)
{
    ptq_bundle b;
    *t = NULL;
    int rc = ptq_bundle_open(&b, path, 0, e);
    if (rc) return rc;
    rc = ptq_bundle_tokenizer(&b, t, e);
    ptq_bundle_close(&b);
    return rc;
}

int ptq_path_is_bundle(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && !ptq_gguf_is(path);
}

/* ---- the source model's packed views (ptq_model_src) ---- */

/* Tensor name of the checkpoint as a dense view q of shape rows x cols when
 * it is mapped, F16/BF16/F32 and aligned for its dtype; 0 when it cannot be. */
static int src_view(const ptq_model_src *s, const char *name, int rows, int cols, ptq_qtensor *q)
{
    const ptq_st_tensor *t = ptq_st_find(&s->ck.st, name);
    if (!t || !t->data || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) return 0;
    if (t->dtype != PTQ_DT_F16 && t->dtype != PTQ_DT_BF16 && t->dtype != PTQ_DT_F32) return 0;
    if ((uintptr_t)t->data % ptq_dtype_size(t->dtype)) return 0;
    *q = (ptq_qtensor){.format = PTQ_QF_DENSE, .rows = rows, .cols = cols, .dtype = t->dtype,
                       .data = (void *)t->data, .mapped = 1};
    return 1;
}

/* The NaN/Inf check of the widening, once per viewed tensor (index i). */
static int src_finite(ptq_model_src *s, const char *name, int i, int cols, ptq_err *e)
{
    if (s->finite[i]) return PTQ_OK;
    const ptq_st_tensor *t = ptq_st_find(&s->ck.st, name);
    float *row = malloc(sizeof(float) * (size_t)cols);
    if (!row) return ptq_fail(e, PTQ_ENOMEM, "out of memory checking %s", name);
    int rc = PTQ_OK;
    for (int64_t r = 0; r < t->shape[0] && !rc; r++)
        rc = ptq_st_read_f32(&s->ck.st, t, (size_t)r * (size_t)cols, (size_t)cols, row, e);
    free(row);
    if (!rc) s->finite[i] = 1;
    return rc;
}

static int src_read(const ptq_model_src *s, const char *name, float *out, ptq_err *e)
{
    const ptq_st_tensor *t = ptq_st_find(&s->ck.st, name);
    if (!t) return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s vanished", s->ck.dir, name);
    return ptq_st_read_f32(&s->ck.st, t, 0, (size_t)ptq_st_numel(t), out, e);
}

/* Layer l: the seven linears as views when asked and all can be, else the
 * checkpoint's widened layer. */
static int src_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    ptq_model_src *s = ctx;
    const ptq_config *c = &s->ck.cfg;
    char name[256], suffix[64];
    int ok = w->want_packed && l >= 0 && l < c->n_layers, rc;
    for (int i = 0; i < PTQ_NLINEAR && ok; i++) {
        int r, k;
        ptq_linear_shape(c, i, &r, &k);
        snprintf(suffix, sizeof suffix, "%s.weight", ptq_linear_name(i));
        ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
        ok = src_view(s, name, r, k, &s->lin[i]);
        if (ok && (rc = src_finite(s, name, l * PTQ_NLINEAR + i, k, e))) return rc;
    }
    for (int i = 0; i < PTQ_NLINEAR; i++) w->q[i] = ok ? &s->lin[i] : NULL;
    if (!ok) return s->ckw.layer(s->ckw.ctx, l, w, e);
    ptq_ckpt_tensor_name(name, sizeof name, l, "input_layernorm.weight");
    if ((rc = src_read(s, name, w->attn_norm, e))) return rc;
    ptq_ckpt_tensor_name(name, sizeof name, l, "post_attention_layernorm.weight");
    if ((rc = src_read(s, name, w->mlp_norm, e))) return rc;
    for (int i = 0; i <= PTQ_V && c->qkv_bias; i++) {
        if (!w->bias[i]) return ptq_fail(e, PTQ_EINTERNAL, "layer buffers have no room for biases");
        snprintf(suffix, sizeof suffix, "%s.bias", ptq_linear_name(i));
        ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
        if ((rc = src_read(s, name, w->bias[i], e))) return rc;
    }
    return PTQ_OK;
}

static int src_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    const ptq_model_src *s = ctx;
    return s->ckw.embed(s->ckw.ctx, tok, n, out, e);
}

static int src_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    const ptq_model_src *s = ctx;
    return s->ckw.head(s->ckw.ctx, norm, lm_head, e);
}

static int src_head_packed(void *ctx, float *norm, const ptq_qtensor **lm_head, ptq_err *e)
{
    ptq_model_src *s = ctx;
    const ptq_config *c = &s->ck.cfg;
    const char *name = c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    *lm_head = NULL;
    int rc = src_read(s, "model.norm.weight", norm, e);
    if (rc || !src_view(s, name, c->vocab, c->hidden, &s->head)) return rc;
    if ((rc = src_finite(s, name, c->n_layers * PTQ_NLINEAR, c->hidden, e))) return rc;
    *lm_head = &s->head;
    return PTQ_OK;
}

int ptq_model_src_open(ptq_model_src *s, const char *path, ptq_err *e)
{
    memset(s, 0, sizeof *s);
    int rc;
    if (ptq_path_is_bundle(path)) {
        s->is_bundle = 1;
        if ((rc = ptq_cpu_open(&s->cm, path, 1, e))) return rc;
        if ((rc = ptq_cpu_tokenizer(&s->cm, &s->tok, e))) {
            ptq_cpu_close(&s->cm);
            return rc;
        }
        ptq_cpu_weights(&s->cm, &s->w);
        return PTQ_OK;
    }
    if ((rc = ptq_ckpt_open(&s->ck, path, e))) return rc;
    ptq_ckpt_weights(&s->ck, &s->w);
    s->tok = s->ck.tok;
    if (s->ck.gguf) return PTQ_OK; /* widened as ggml dequantizes */
    s->finite = calloc((size_t)s->ck.cfg.n_layers * PTQ_NLINEAR + 1, 1);
    if (!s->finite) {
        ptq_ckpt_close(&s->ck);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    }
    s->ckw = s->w;
    s->w.ctx = s;
    s->w.layer = src_layer;
    s->w.embed = src_embed;
    s->w.head = src_head;
    s->w.head_packed = src_head_packed;
    return PTQ_OK;
}

void ptq_model_src_close(ptq_model_src *s)
{
    if (s->is_bundle) {
        ptq_tok_free(s->tok);
        ptq_cpu_close(&s->cm);
    } else {
        ptq_ckpt_close(&s->ck); /* owns its tokenizer */
        free(s->finite);
    }
    memset(s, 0, sizeof *s);
}
