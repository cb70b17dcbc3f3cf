/* gguf_config.c - the config.json a GGUF file's metadata stands for (see
 * gguf_model.h).  Keys: general.architecture, {arch}.block_count,
 * context_length, embedding_length, feed_forward_length,
 * attention.head_count, attention.head_count_kv, attention.key_length,
 * attention.layer_norm_rms_epsilon, rope.freq_base, rope.scaling.type and
 * rope.scaling.factor, vocab_size (else the token count), and
 * tokenizer.ggml.bos/eos_token_id.  Ranges are checked again by
 * ptq_config_parse; here only that each value is a number in int range. */
#include "formats/gguf_model.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG 0x7fffffff

typedef struct {
    const ptq_gguf *g;
    const char *arch;
    cJSON *root;
    ptq_err *e;
} cfgb;

/* {arch}.suffix as an integer into root[key]; absent and !required: skipped. */
static int put_int(cfgb *b, const char *suffix, const char *key, int required)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", b->arch, suffix);
    int64_t v = -1;
    int rc = ptq_gguf_int(b->g, k, required, 0, BIG, &v, b->e);
    if (rc == PTQ_OK && v >= 0) cJSON_AddNumberToObject(b->root, key, (double)v);
    return rc;
}

static int put_real(cfgb *b, const char *suffix, const char *key, int required)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", b->arch, suffix);
    if (!ptq_gguf_find(b->g, k) && !required) return PTQ_OK;
    double v;
    int rc = ptq_gguf_real(b->g, k, required, &v, b->e);
    if (rc == PTQ_OK) cJSON_AddNumberToObject(b->root, key, v);
    return rc;
}

static int put_rope_scaling(cfgb *b)
{
    char k[128];
    const char *s;
    size_t n;
    snprintf(k, sizeof k, "%s.rope.scaling.type", b->arch);
    if (!ptq_gguf_find(b->g, k)) return PTQ_OK;
    int rc = ptq_gguf_str(b->g, k, 1, &s, &n, b->e);
    if (rc) return rc;
    if (n == 4 && !memcmp(s, "none", 4)) return PTQ_OK;
    if (!(n == 6 && !memcmp(s, "linear", 6)))
        return ptq_fail(b->e, PTQ_EFORMAT, "%s: %s '%.*s' is not supported: ptqc knows none and "
                        "linear", b->g->path, k, (int)(n > 40 ? 40 : n), s);
    snprintf(k, sizeof k, "%s.rope.scaling.factor", b->arch);
    double f;
    if ((rc = ptq_gguf_real(b->g, k, 1, &f, b->e))) return rc;
    cJSON *rs = cJSON_AddObjectToObject(b->root, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "linear");
    cJSON_AddNumberToObject(rs, "factor", f);
    return PTQ_OK;
}

static int put_vocab(cfgb *b)
{
    char k[128];
    snprintf(k, sizeof k, "%s.vocab_size", b->arch);
    if (ptq_gguf_find(b->g, k)) return put_int(b, "vocab_size", "vocab_size", 1);
    const ptq_gguf_tensor *t = ptq_gguf_tensor_find(b->g, "token_embd.weight");
    if (!t || t->ndim != 2)
        return ptq_fail(b->e, PTQ_EFORMAT, "%s: neither %s nor a 2-d token_embd.weight gives the "
                        "vocabulary size", b->g->path, k);
    if (t->dims[1] > BIG)
        return ptq_fail(b->e, PTQ_EFORMAT, "%s: token_embd.weight has %llu rows", b->g->path,
                        (unsigned long long)t->dims[1]);
    cJSON_AddNumberToObject(b->root, "vocab_size", (double)t->dims[1]);
    return PTQ_OK;
}

static int put_token(cfgb *b, const char *key, const char *name)
{
    int64_t v = -1;
    int rc = ptq_gguf_int(b->g, key, 0, 0, BIG, &v, b->e);
    if (rc == PTQ_OK && v >= 0) cJSON_AddNumberToObject(b->root, name, (double)v);
    return rc;
}

int ptq_gguf_config_json(const ptq_gguf *g, char **json, ptq_err *e)
{
    *json = NULL;
    const char *a;
    size_t n;
    int rc = ptq_gguf_str(g, "general.architecture", 1, &a, &n, e);
    if (rc) return rc;
    char arch[16];
    if (!((n == 5 && !memcmp(a, "llama", 5)) || (n == 5 && !memcmp(a, "qwen2", 5))))
        return ptq_fail(e, PTQ_EFORMAT, "%s: general.architecture '%.*s' is not supported: ptqc "
                        "reads llama and qwen2 GGUF files", g->path, (int)(n > 64 ? 64 : n), a);
    memcpy(arch, a, n);
    arch[n] = 0;
    cfgb b = {g, arch, cJSON_CreateObject(), e};
    if (!b.root) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
    cJSON_AddStringToObject(b.root, "model_type", arch);
    cJSON_AddStringToObject(b.root, "hidden_act", "silu");
    if ((rc = put_int(&b, "embedding_length", "hidden_size", 1)) ||
        (rc = put_int(&b, "feed_forward_length", "intermediate_size", 1)) ||
        (rc = put_int(&b, "block_count", "num_hidden_layers", 1)) ||
        (rc = put_int(&b, "attention.head_count", "num_attention_heads", 1)) ||
        (rc = put_int(&b, "attention.head_count_kv", "num_key_value_heads", 0)) ||
        (rc = put_int(&b, "attention.key_length", "head_dim", 0)) ||
        (rc = put_int(&b, "context_length", "max_position_embeddings", 0)) ||
        (rc = put_real(&b, "attention.layer_norm_rms_epsilon", "rms_norm_eps", 1)) ||
        (rc = put_real(&b, "rope.freq_base", "rope_theta", 0)) || (rc = put_rope_scaling(&b)) ||
        (rc = put_vocab(&b)) ||
        (rc = put_token(&b, "tokenizer.ggml.bos_token_id", "bos_token_id")) ||
        (rc = put_token(&b, "tokenizer.ggml.eos_token_id", "eos_token_id")))
        goto done;
    cJSON_AddBoolToObject(b.root, "tie_word_embeddings",
                          ptq_gguf_tensor_find(g, "output.weight") == NULL);
    if (ptq_gguf_tensor_find(g, "rope_freqs.weight")) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: has a rope_freqs.weight tensor (llama3 RoPE "
                      "frequency factors), which ptqc does not read from GGUF", g->path);
        goto done;
    }
    if (!(*json = cJSON_PrintUnformatted(b.root)))
        rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
done:
    cJSON_Delete(b.root);
    return rc;
}
