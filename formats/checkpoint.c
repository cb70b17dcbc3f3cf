/* checkpoint.c - a Hugging Face model directory (see checkpoint.h). */
#include "formats/checkpoint.h"
#include "formats/convert.h"
#include "formats/gguf_model.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ptq_ckpt_tensor_name(char *buf, size_t n, int layer, const char *suffix)
{
    snprintf(buf, n, "model.layers.%d.%s", layer, suffix);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    char *p = malloc(n + strlen(name) + 2);
    if (p) sprintf(p, "%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", name);
    return p;
}

static const char *shape_str(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* Where a tensor name is looked up, for messages: the shard index or the file. */
static const char *where(const ptq_safetensors *st)
{
    return st->index_path ? st->index_path : st->nfiles ? st->paths[0] : "(no file)";
}

/* The tensor `name` must exist, be F32/F16/BF16 and have shape [rows] (cols
 * == 0) or [rows, cols]. */
static int expect(const ptq_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                  ptq_err *e)
{
    const ptq_safetensors *st = &ck->st;
    int64_t want[2] = {rows, cols};
    int nd = cols ? 2 : 1;
    char ws[64], fs[256];
    shape_str(ws, sizeof ws, want, nd);
    const ptq_st_tensor *t = ptq_st_find(st, name);
    if (!t)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is missing (config.json implies %s)",
                        where(st), name, ws);
    const char *file = st->paths[t->file];
    if (t->ndim != nd || t->shape[0] != rows || (nd == 2 && t->shape[1] != cols))
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s has shape %s but config.json implies %s", file,
                        name, shape_str(fs, sizeof fs, t->shape, t->ndim), ws);
    if (t->dtype != PTQ_DT_F32 && t->dtype != PTQ_DT_F16 && t->dtype != PTQ_DT_BF16)
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s has dtype %s; ptqc reads F32, F16 and BF16 "
                        "weights", file, name, ptq_dtype_name(t->dtype));
    return PTQ_OK;
}

/* Suffixes of the tensors of one layer that ptqc uses. */
static const char *const norm_names[2] = {"input_layernorm.weight",
                                          "post_attention_layernorm.weight"};

static int validate(const ptq_checkpoint *ck, ptq_err *e)
{
    const ptq_config *c = &ck->cfg;
    char name[256];
    int rc;
    if ((rc = expect(ck, "model.embed_tokens.weight", c->vocab, c->hidden, e))) return rc;
    for (int l = 0; l < c->n_layers; l++) {
        for (int k = 0; k < 2; k++) {
            ptq_ckpt_tensor_name(name, sizeof name, l, norm_names[k]);
            if ((rc = expect(ck, name, c->hidden, 0, e))) return rc;
        }
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            char suffix[64];
            ptq_linear_shape(c, i, &r, &k);
            snprintf(suffix, sizeof suffix, "%s.weight", ptq_linear_name(i));
            ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
            if ((rc = expect(ck, name, r, k, e))) return rc;
            snprintf(suffix, sizeof suffix, "%s.bias", ptq_linear_name(i));
            ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
            if (c->qkv_bias && i <= PTQ_V) {
                if ((rc = expect(ck, name, r, 0, e))) return rc;
            } else if (ptq_st_find(&ck->st, name)) {
                /* a bias the forward pass would silently drop */
                return ptq_fail(e, PTQ_EFORMAT, "%s: %s is present but not supported (ptqc "
                                "supports q/k/v biases only, with attention_bias or qwen2)",
                                ck->st.paths[ptq_st_find(&ck->st, name)->file], name);
            }
        }
    }
    if ((rc = expect(ck, "model.norm.weight", c->hidden, 0, e))) return rc;
    if (!c->tie_embeddings) {
        if (!ptq_st_find(&ck->st, "lm_head.weight"))
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor lm_head.weight is missing and "
                            "config.json says tie_word_embeddings is false", where(&ck->st));
        if ((rc = expect(ck, "lm_head.weight", c->vocab, c->hidden, e))) return rc;
    }
    return PTQ_OK;
}

/* A .gguf file: config, tokenizer and weights from formats/gguf_model.c. */
static int open_gguf(ptq_checkpoint *ck, const char *path, ptq_err *e)
{
    ck->dir = strdup(path);
    ck->gguf = calloc(1, sizeof *ck->gguf);
    if (!ck->dir || !ck->gguf) {
        ptq_ckpt_close(ck);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    }
    int rc = ptq_gguf_model_open(ck->gguf, path, e);
    if (rc) {
        free(ck->gguf);
        ck->gguf = NULL;
    }
    if (rc == PTQ_OK) {
        ck->cfg = ck->gguf->cfg;
        rc = ptq_gguf_tokenizer(&ck->gguf->g, &ck->tok, e);
    }
    if (rc) ptq_ckpt_close(ck);
    return rc;
}

int ptq_ckpt_open(ptq_checkpoint *ck, const char *dir, ptq_err *e)
{
    memset(ck, 0, sizeof *ck);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", dir, strerror(errno));
    if (S_ISREG(sb.st_mode) && ptq_gguf_is(dir)) return open_gguf(ck, dir, e);
    if (!S_ISDIR(sb.st_mode))
        return ptq_fail(e, PTQ_EIO, "%s: not a directory or a GGUF file (a checkpoint is a "
                        "directory with config.json and *.safetensors, or a .gguf file)", dir);
    ck->dir = strdup(dir);
    char *cfg = join(dir, "config.json");
    char *tj = join(dir, "tokenizer.json");
    char *tc = join(dir, "tokenizer_config.json");
    int rc = PTQ_OK;
    if (!ck->dir || !cfg || !tj || !tc) rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", dir);
    if (rc == PTQ_OK) rc = ptq_config_load(&ck->cfg, cfg, e);
    if (rc == PTQ_OK) rc = ptq_st_open(&ck->st, dir, e);
    if (rc == PTQ_OK) rc = validate(ck, e);
    if (rc == PTQ_OK && stat(tj, &sb) == 0) {
        int has_tc = stat(tc, &sb) == 0;
        rc = ptq_tok_load(&ck->tok, tj, has_tc ? tc : NULL, e);
    }
    free(cfg);
    free(tj);
    free(tc);
    if (rc) ptq_ckpt_close(ck);
    return rc;
}

void ptq_ckpt_close(ptq_checkpoint *ck)
{
    if (ck->tok) ptq_tok_free(ck->tok);
    if (ck->gguf) ptq_gguf_model_close(ck->gguf);
    free(ck->gguf);
    ptq_st_close(&ck->st);
    free(ck->dir);
    memset(ck, 0, sizeof *ck);
}

/* ---------------------------------------------------------------- provider */

static int read_all(const ptq_checkpoint *ck, const char *name, float *out, ptq_err *e)
{
    const ptq_st_tensor *t = ptq_st_find(&ck->st, name);
    if (!t) /* validated at open: only a bug gets here */
        return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s vanished", where(&ck->st), name);
    return ptq_st_read_f32(&ck->st, t, 0, (size_t)ptq_st_numel(t), out, e);
}

static int ck_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    const ptq_checkpoint *ck = ctx;
    const ptq_config *c = &ck->cfg;
    if (l < 0 || l >= c->n_layers)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: layer %d asked of %d", ck->dir, l, c->n_layers);
    char name[256], suffix[64];
    int rc;
    ptq_ckpt_tensor_name(name, sizeof name, l, norm_names[0]);
    if ((rc = read_all(ck, name, w->attn_norm, e))) return rc;
    ptq_ckpt_tensor_name(name, sizeof name, l, norm_names[1]);
    if ((rc = read_all(ck, name, w->mlp_norm, e))) return rc;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        snprintf(suffix, sizeof suffix, "%s.weight", ptq_linear_name(i));
        ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
        if ((rc = read_all(ck, name, w->w[i], e))) return rc;
        if (c->qkv_bias && i <= PTQ_V) {
            if (!w->bias[i])
                return ptq_fail(e, PTQ_EINTERNAL, "layer buffers have no room for biases");
            snprintf(suffix, sizeof suffix, "%s.bias", ptq_linear_name(i));
            ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
            if ((rc = read_all(ck, name, w->bias[i], e))) return rc;
        }
    }
    return PTQ_OK;
}

static int ck_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    const ptq_checkpoint *ck = ctx;
    const ptq_config *c = &ck->cfg;
    const ptq_st_tensor *t = ptq_st_find(&ck->st, "model.embed_tokens.weight");
    if (!t) return ptq_fail(e, PTQ_EINTERNAL, "%s: no embedding", where(&ck->st));
    size_t D = (size_t)c->hidden;
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= c->vocab)
            return ptq_fail(e, PTQ_EDATA, "token id %d is outside the vocabulary [0, %d) of %s",
                            (int)tok[i], c->vocab, ck->dir);
        int rc = ptq_st_read_f32(&ck->st, t, (size_t)tok[i] * D, D, out + (size_t)i * D, e);
        if (rc) return rc;
    }
    return PTQ_OK;
}

static int ck_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    const ptq_checkpoint *ck = ctx;
    int rc = read_all(ck, "model.norm.weight", norm, e);
    if (rc) return rc;
    return read_all(ck, ck->cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
                    lm_head, e);
}

int ptq_ckpt_read_tensor(const ptq_checkpoint *ck, const char *name, float **out, int *rows,
                         int *cols, ptq_err *e)
{
    *out = NULL;
    uint64_t r, c;
    const ptq_gguf_tensor *g = NULL;
    const ptq_st_tensor *t = NULL;
    int heads = 0;
    if (ck->gguf) {
        g = ptq_gguf_model_hf(ck->gguf, name, &heads);
        if (!g) return ptq_fail(e, PTQ_EFORMAT, "%s: no tensor stands for %s", ck->dir, name);
        r = g->ndim == 2 ? g->dims[1] : 1;
        c = g->dims[0];
    } else {
        t = ptq_st_find(&ck->st, name);
        if (!t) return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is missing", where(&ck->st), name);
        if (t->ndim < 1 || t->ndim > 2)
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s has %d dimensions", where(&ck->st),
                            name, t->ndim);
        r = t->ndim == 2 ? (uint64_t)t->shape[0] : 1;
        c = (uint64_t)t->shape[t->ndim - 1];
    }
    float *x = malloc((size_t)(r * c) * sizeof *x);
    if (!x) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory for %s", ck->dir, name);
    int rc = g ? ptq_gguf_model_read(ck->gguf, g, heads, x, e)
               : ptq_st_read_f32(&ck->st, t, 0, (size_t)(r * c), x, e);
    if (rc) {
        free(x);
        return rc;
    }
    *out = x;
    *rows = (int)r;
    *cols = (int)c;
    return PTQ_OK;
}

/* The generated tokenizer.json with every field the tokenizers library
 * requires (formats/tokenizer_write.c), as `ptqc convert` writes it, so a
 * bundle's copy loads in transformers too; bos and add_bos from the
 * generated tokenizer_config.json cj. */
static int complete_tokenizer(const ptq_checkpoint *ck, char **tj, const char *cj, ptq_err *e)
{
    cJSON *cfg = cJSON_Parse(cj);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return ptq_fail(e, PTQ_EINTERNAL, "%s: generated tokenizer_config.json is not an object",
                        ck->dir);
    }
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token");
    int add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"));
    char *full = NULL;
    int rc = ptq_tok_json_complete(*tj, strlen(*tj), cJSON_IsString(bos) ? bos->valuestring : NULL,
                                   add_bos, &full, e);
    cJSON_Delete(cfg);
    if (rc) return rc;
    free(*tj);
    *tj = full;
    return PTQ_OK;
}

int ptq_ckpt_gguf_meta(const ptq_checkpoint *ck, int which, char **data, size_t *len, ptq_err *e)
{
    *data = NULL;
    *len = 0;
    if (!ck->gguf || which < 0 || which > 2)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: no generated metadata file %d", ck->dir, which);
    char *tj = NULL, *cj = NULL;
    int rc = which == 0 ? ptq_gguf_config_json(&ck->gguf->g, data, e)
                        : ptq_gguf_tokenizer_json(&ck->gguf->g, &tj, &cj, e);
    if (rc) return rc;
    if (which == 1) rc = complete_tokenizer(ck, &tj, cj, e);
    if (which) {
        *data = which == 1 ? tj : cj;
        free(which == 1 ? cj : tj);
        if (rc) {
            free(*data);
            *data = NULL;
            return rc;
        }
    }
    *len = strlen(*data);
    return PTQ_OK;
}

void ptq_ckpt_weights(ptq_checkpoint *ck, ptq_weights *w)
{
    if (ck->gguf) {
        ptq_gguf_model_weights(ck->gguf, w);
        w->cfg = &ck->cfg;
        return;
    }
    *w = (ptq_weights){.cfg = &ck->cfg, .ctx = ck,
                       .layer = ck_layer, .embed = ck_embed, .head = ck_head};
}
