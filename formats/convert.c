/* convert.c - a source checkpoint written as a Hugging Face directory (see
 * convert.h).
 *
 * Steps: open the source (formats/checkpoint.c: a .gguf or a directory),
 * list the tensors its config implies with their HF names and shapes, cut
 * that list into shards of at most shard_size bytes (a tensor larger than
 * that gets a shard of its own, as transformers does), write each shard with
 * ptq_st_write_from (one tensor widened and rounded at a time), then
 * model.safetensors.index.json, config.json and the tokenizer files, all in
 * dst.tmp.XXXXXX, which is renamed to dst at the end.
 */
#include "formats/convert.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "lib/base/file.h"
#include "lib/base/half.h"

typedef struct cv_tensor {
    char name[96];
    int rows, cols; /* rows 0: a 1-d tensor [cols] */
    int shard;
} cv_tensor;

typedef struct cv {
    ptq_checkpoint ck;
    const ptq_convert_opts *o;
    cv_tensor *t;
    int nt, nshards;
    uint64_t bytes;
    void *buf; /* the converted tensor being written */
    int done;
    const char *tmp;
} cv;

static void add(cv *c, const char *name, int rows, int cols)
{
    cv_tensor *t = &c->t[c->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
}

/* Every tensor of the config, in the order transformers' state dict has. */
static int list_tensors(cv *c, ptq_err *e)
{
    const ptq_config *f = &c->ck.cfg;
    c->t = calloc((size_t)(unsigned)f->n_layers * 12 + 3, sizeof *c->t);
    if (!c->t) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    add(c, "model.embed_tokens.weight", f->vocab, f->hidden);
    char name[96], suffix[64];
    for (int l = 0; l < f->n_layers; l++) {
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(f, i, &r, &k);
            snprintf(suffix, sizeof suffix, "%s.weight", ptq_linear_name(i));
            ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
            add(c, name, r, k);
            if (f->qkv_bias && i <= PTQ_V) {
                snprintf(suffix, sizeof suffix, "%s.bias", ptq_linear_name(i));
                ptq_ckpt_tensor_name(name, sizeof name, l, suffix);
                add(c, name, 0, r);
            }
        }
        ptq_ckpt_tensor_name(name, sizeof name, l, "input_layernorm.weight");
        add(c, name, 0, f->hidden);
        ptq_ckpt_tensor_name(name, sizeof name, l, "post_attention_layernorm.weight");
        add(c, name, 0, f->hidden);
    }
    add(c, "model.norm.weight", 0, f->hidden);
    if (!f->tie_embeddings) add(c, "lm_head.weight", f->vocab, f->hidden);
    return PTQ_OK;
}

static uint64_t nbytes(const cv *c, const cv_tensor *t)
{
    return (uint64_t)(t->rows ? t->rows : 1) * (uint64_t)t->cols * ptq_dtype_size(c->o->dtype);
}

static void cut_shards(cv *c)
{
    uint64_t max = c->o->shard_size ? c->o->shard_size : PTQ_CONVERT_SHARD_DEFAULT, cur = 0;
    int s = 0;
    for (int i = 0; i < c->nt; i++) {
        uint64_t n = nbytes(c, &c->t[i]);
        if (cur > 0 && cur + n > max) s++, cur = 0;
        cur += n;
        c->t[i].shard = s;
        c->bytes += n;
    }
    c->nshards = s + 1;
}

/* "[r, c]" (or "[c]" for a 1-d tensor) of element i of t. */
static const char *where_in(char *buf, size_t n, const cv_tensor *t, size_t i)
{
    if (t->rows) snprintf(buf, n, "[%zu, %zu]", i / (size_t)t->cols, i % (size_t)t->cols);
    else snprintf(buf, n, "[%zu]", i);
    return buf;
}

/* x rounded to the output dtype into c->buf; a value it cannot hold fails. */
static int round_all(const cv *c, const cv_tensor *t, const float *x, size_t n, ptq_err *e)
{
    char at[64];
    uint16_t *h = c->buf;
    for (size_t i = 0; i < n; i++) {
        if (c->o->dtype == PTQ_DT_F16) {
            if (fabsf(x[i]) > 65504.0f)
                return ptq_fail(e, PTQ_EDATA, "%s: element %s of %s is %.9g, which F16 cannot "
                                "hold (|x| > 65504): convert with --dtype bf16 or f32",
                                c->ck.dir, where_in(at, sizeof at, t, i), t->name, (double)x[i]);
            h[i] = ptq_f32_to_f16(x[i]);
        } else {
            h[i] = ptq_f32_to_bf16(x[i]);
            if ((h[i] & 0x7fffu) == 0x7f80u)
                return ptq_fail(e, PTQ_EDATA, "%s: element %s of %s is %.9g, which overflows "
                                "BF16", c->ck.dir, where_in(at, sizeof at, t, i), t->name, (double)x[i]);
        }
    }
    return PTQ_OK;
}

/* ptq_st_source: tensor i of the shard being written, read and rounded. */
static int source(void *ctx, int i, const void **data, ptq_err *e)
{
    cv *c = ctx;
    const cv_tensor *t = &c->t[c->done];
    (void)i;
    float *x;
    int r, k;
    int rc = ptq_ckpt_read_tensor(&c->ck, t->name, &x, &r, &k, e);
    if (rc) return rc;
    size_t n = (size_t)r * (size_t)k;
    if ((uint64_t)n * ptq_dtype_size(c->o->dtype) != nbytes(c, t) || (t->rows && r != t->rows)) {
        free(x);
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s is [%d, %d], the config implies [%d, %d]",
                        c->ck.dir, t->name, r, k, t->rows ? t->rows : 1, t->cols);
    }
    if (c->o->dtype == PTQ_DT_F32) {
        free(c->buf);
        c->buf = x;
    } else {
        void *b = realloc(c->buf, n * 2 + 1);
        if (!b) {
            free(x);
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", t->name);
        }
        c->buf = b;
        rc = round_all(c, t, x, n, e);
        free(x);
        if (rc) return rc;
    }
    *data = c->buf;
    c->done++;
    if (c->o->progress) c->o->progress(c->o->progress_ctx, c->done, c->nt, t->name);
    return PTQ_OK;
}

static void shard_name(char *buf, size_t n, const cv *c, int s)
{
    if (c->nshards == 1) snprintf(buf, n, "model.safetensors");
    else snprintf(buf, n, "model-%05d-of-%05d.safetensors", s + 1, c->nshards);
}

static int write_shards(cv *c, ptq_err *e)
{
    if (c->nt < 1) return ptq_fail(e, PTQ_EINTERNAL, "no tensors to write");
    ptq_st_wtensor *w = calloc((size_t)(unsigned)c->nt, sizeof *w);
    if (!w) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    for (int i = 0; i < c->nt; i++) {
        const cv_tensor *t = &c->t[i];
        w[i].name = t->name;
        w[i].dtype = c->o->dtype;
        w[i].ndim = t->rows ? 2 : 1;
        w[i].shape[0] = t->rows ? t->rows : t->cols;
        w[i].shape[1] = t->cols;
    }
    int rc = PTQ_OK;
    for (int s = 0, first = 0; s < c->nshards && rc == PTQ_OK; s++) {
        int end = first;
        while (end < c->nt && c->t[end].shard == s) end++;
        char fname[64];
        shard_name(fname, sizeof fname, c, s);
        char *path = ptq_path_join(c->tmp, fname);
        rc = path ? ptq_st_write_from(path, w + first, end - first, source, c, e)
                  : ptq_fail(e, PTQ_ENOMEM, "out of memory");
        free(path);
        first = end;
    }
    free(w);
    return rc;
}

/* text (and a newline when nl) into tmp/name (not atomic by itself: the
 * whole directory is). */
static int write_bytes(const cv *c, const char *name, const char *text, int nl, ptq_err *e)
{
    char *path = ptq_path_join(c->tmp, name);
    if (!path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    FILE *f = fopen(path, "wb");
    size_t n = strlen(text);
    int bad = !f || fwrite(text, 1, n, f) != n || (nl && fputc('\n', f) == EOF);
    int err = errno;
    if (f && fclose(f) != 0 && !bad) bad = 1, err = errno;
    int rc = bad ? ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", path, strerror(err)) : PTQ_OK;
    free(path);
    return rc;
}

static int write_text(const cv *c, const char *name, const char *text, ptq_err *e)
{
    return write_bytes(c, name, text, 1, e);
}

static int write_json(const cv *c, const char *name, cJSON *j, ptq_err *e)
{
    char *s = j ? cJSON_Print(j) : NULL;
    int rc = s ? write_text(c, name, s, e) : ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    free(s);
    return rc;
}

static int write_index(const cv *c, ptq_err *e)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(j, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)c->bytes);
    cJSON *map = cJSON_AddObjectToObject(j, "weight_map");
    for (int i = 0; i < c->nt; i++) {
        char fname[64];
        shard_name(fname, sizeof fname, c, c->t[i].shard);
        cJSON_AddStringToObject(map, c->t[i].name, fname);
    }
    int rc = write_json(c, "model.safetensors.index.json", j, e);
    cJSON_Delete(j);
    return rc;
}

/* ---------------------------------------------------------------- config.json */

/* A float as the shortest decimal that reads back as the same float. */
static double short_float(float f)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static void set_num(cJSON *j, const char *k, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(j, k);
    cJSON_AddNumberToObject(j, k, v);
}

static void put_num(cJSON *j, const char *k, double v)
{
    if (!cJSON_GetObjectItemCaseSensitive(j, k)) cJSON_AddNumberToObject(j, k, v);
}

static const char *dtype_torch(ptq_dtype d)
{
    return d == PTQ_DT_F16 ? "float16" : d == PTQ_DT_BF16 ? "bfloat16" : "float32";
}

static const char *architecture(const char *model_type)
{
    if (!strcmp(model_type, "qwen2")) return "Qwen2ForCausalLM";
    if (!strcmp(model_type, "mistral")) return "MistralForCausalLM";
    return "LlamaForCausalLM";
}

/* The source's config.json (the directory's, or the one the GGUF metadata
 * stands for) with every field the config readers need. */
static int config_json(const cv *c, cJSON **out, ptq_err *e)
{
    char *text = NULL, *path = NULL;
    size_t len = 0;
    int rc = c->ck.gguf ? ptq_ckpt_gguf_meta(&c->ck, 0, &text, &len, e)
                        : (path = ptq_path_join(c->ck.dir, "config.json"))
                              ? ptq_read_file(path, 1 << 24, &text, &len, e)
                              : ptq_fail(e, PTQ_ENOMEM, "out of memory");
    free(path);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ptq_fail(e, PTQ_EFORMAT, "%s: config.json is not a JSON object", c->ck.dir);
    }
    const ptq_config *f = &c->ck.cfg;
    if (!cJSON_GetObjectItemCaseSensitive(j, "architectures")) {
        const char *a = architecture(f->model_type);
        cJSON_AddItemToObject(j, "architectures", cJSON_CreateStringArray(&a, 1));
    }
    if (!cJSON_GetObjectItemCaseSensitive(j, "hidden_act")) cJSON_AddStringToObject(j, "hidden_act", "silu");
    put_num(j, "num_key_value_heads", f->n_kv_heads);
    put_num(j, "max_position_embeddings", f->max_pos);
    set_num(j, "rms_norm_eps", short_float(f->rms_eps));
    set_num(j, "rope_theta", short_float(f->rope_theta));
    if (f->head_dim * f->n_heads != f->hidden) put_num(j, "head_dim", f->head_dim);
    if (f->bos_id >= 0) put_num(j, "bos_token_id", f->bos_id);
    if (f->eos_id >= 0) put_num(j, "eos_token_id", f->eos_id);
    if (f->qkv_bias && strcmp(f->model_type, "qwen2") && !cJSON_GetObjectItemCaseSensitive(j, "attention_bias"))
        cJSON_AddBoolToObject(j, "attention_bias", 1);
    cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (cJSON_IsString(rt) && !cJSON_GetObjectItemCaseSensitive(rs, "type"))
        cJSON_AddStringToObject(rs, "type", rt->valuestring);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "tie_word_embeddings");
    cJSON_AddBoolToObject(j, "tie_word_embeddings", f->tie_embeddings);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "torch_dtype");
    cJSON_AddStringToObject(j, "torch_dtype", dtype_torch(c->o->dtype));
    *out = j;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- tokenizer */

/* A directory's tokenizer files, copied unchanged (absent ones skipped). */
static int copy_tokenizer(const cv *c, ptq_err *e)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    int rc = PTQ_OK;
    for (size_t i = 0; i < sizeof names / sizeof *names && rc == PTQ_OK; i++) {
        char *path = ptq_path_join(c->ck.dir, names[i]), *text = NULL;
        size_t len;
        struct stat sb;
        if (!path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        if (stat(path, &sb) == 0 && (rc = ptq_read_file(path, 1u << 30, &text, &len, e)) == PTQ_OK) {
            if (strlen(text) != len)
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: has a NUL byte", path);
            else
                rc = write_bytes(c, names[i], text, 0, e);
        }
        free(text);
        free(path);
    }
    return rc;
}

/* The tokenizer the GGUF metadata stands for, in full HF form. */
static int gguf_tokenizer(const cv *c, ptq_err *e)
{
    char *tj = NULL, *cj = NULL, *full = NULL;
    size_t tl, cl;
    int rc = ptq_ckpt_gguf_meta(&c->ck, 1, &tj, &tl, e);
    if (rc == PTQ_OK) rc = ptq_ckpt_gguf_meta(&c->ck, 2, &cj, &cl, e);
    cJSON *cfg = rc == PTQ_OK ? cJSON_ParseWithLength(cj, cl) : NULL;
    if (rc == PTQ_OK && !cJSON_IsObject(cfg))
        rc = ptq_fail(e, PTQ_EINTERNAL, "%s: generated tokenizer_config.json is not an object", c->ck.dir);
    if (rc == PTQ_OK) {
        const cJSON *bos = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token");
        int add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"));
        rc = ptq_tok_json_complete(tj, tl, cJSON_IsString(bos) ? bos->valuestring : NULL, add_bos,
                                   &full, e);
    }
    if (rc == PTQ_OK) rc = write_text(c, "tokenizer.json", full, e);
    if (rc == PTQ_OK) {
        if (!cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token")) cJSON_AddBoolToObject(cfg, "add_eos_token", 0);
        cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", 0);
        cJSON_AddNumberToObject(cfg, "model_max_length", c->ck.cfg.max_pos);
        cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
        rc = write_json(c, "tokenizer_config.json", cfg, e);
    }
    cJSON_Delete(cfg);
    free(full);
    free(tj);
    free(cj);
    return rc;
}

/* ---------------------------------------------------------------- driver */

static int convert_into(cv *c, ptq_err *e)
{
    int rc = list_tensors(c, e);
    if (rc) return rc;
    cut_shards(c);
    if ((rc = write_shards(c, e))) return rc;
    if (c->nshards > 1 && (rc = write_index(c, e))) return rc;
    cJSON *cfg = NULL;
    if ((rc = config_json(c, &cfg, e))) return rc;
    rc = write_json(c, "config.json", cfg, e);
    cJSON_Delete(cfg);
    if (rc) return rc;
    if (c->ck.gguf) return gguf_tokenizer(c, e);
    return c->ck.tok ? copy_tokenizer(c, e) : PTQ_OK;
}

int ptq_convert(const char *src, const char *dst, const ptq_convert_opts *o,
                ptq_convert_result *res, ptq_err *e)
{
    if (o->dtype != PTQ_DT_F16 && o->dtype != PTQ_DT_BF16 && o->dtype != PTQ_DT_F32)
        return ptq_fail(e, PTQ_EINTERNAL, "convert: output dtype must be F16, BF16 or F32");
    struct stat sb;
    if (lstat(dst, &sb) == 0)
        return ptq_fail(e, PTQ_EOUTPUT, "%s: already exists; ptqc convert writes a new directory",
                        dst);
    cv c = {.o = o};
    int rc = ptq_ckpt_open(&c.ck, src, e);
    if (rc) return rc;
    ptq_tmpdir t;
    if ((rc = ptq_tmpdir_create(&t, dst, e)) == PTQ_OK) {
        c.tmp = t.path;
        rc = convert_into(&c, e);
        if (rc) ptq_tmpdir_abort(&t);
        else rc = ptq_tmpdir_commit(&t, "converting", e);
    }
    if (rc == PTQ_OK && res) *res = (ptq_convert_result){c.nt, c.nshards, c.bytes};
    ptq_ckpt_close(&c.ck);
    free(c.t);
    free(c.buf);
    return rc;
}
