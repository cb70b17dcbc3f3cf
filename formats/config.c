/* config.c - read and validate config.json of llama, mistral and qwen2
 * decoders (see config.h).
 *
 * Defaults follow the transformers configuration classes: num_key_value_heads
 * = num_attention_heads, head_dim = hidden_size / num_attention_heads,
 * rope_theta 10000, rms_norm_eps 1e-6, tie_word_embeddings false,
 * max_position_embeddings 2048 (llama), 131072 (mistral), 32768 (qwen2).
 */
#include "formats/config.h"
#include "lib/base/file.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds far above any real model and far below where int or size_t
 * products of these numbers could overflow. */
#define MAX_HIDDEN (1 << 17)
#define MAX_INTERMEDIATE (1 << 20)
#define MAX_LAYERS 4096
#define MAX_HEADS 4096
#define MAX_HEAD_DIM 4096
#define MAX_VOCAB (1 << 24)
#define MAX_POS (1 << 28)
#define MAX_CONFIG_BYTES (16u << 20)

/* Integer field: absent (or null) -> *out = def and returns 0 if !required.
 * Present: an integer in [lo, hi]. */
static int get_int(const cJSON *root, const char *pre, const char *key, int required, long def,
                   long lo, long hi, int *out, const char *fname, ptq_err *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required)
            return ptq_fail(e, PTQ_EFORMAT, "%s: missing required field %s%s", fname, pre, key);
        *out = (int)def;
        return PTQ_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        if (cJSON_IsNumber(j))
            return ptq_fail(e, PTQ_EFORMAT, "%s: %s%s is %.17g, not an integer in [%ld, %ld]",
                            fname, pre, key, d, lo, hi);
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s%s is not a number (expected an integer in "
                        "[%ld, %ld])", fname, pre, key, lo, hi);
    }
    *out = (int)d;
    return PTQ_OK;
}

/* Real field in (lo, hi], finite, absent -> def (when def is not NaN). */
static int get_real(const cJSON *root, const char *pre, const char *key, double def, double lo,
                    double hi, float *out, const char *fname, ptq_err *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (isnan(def))
            return ptq_fail(e, PTQ_EFORMAT, "%s: missing required field %s%s", fname, pre, key);
        *out = (float)def;
        return PTQ_OK;
    }
    if (!cJSON_IsNumber(j))
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s%s is not a number", fname, pre, key);
    double d = j->valuedouble;
    if (!(d > lo && d <= hi) || !isfinite((float)d) || (float)d == 0.0f)
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s%s is %.17g, outside (%g, %g]", fname, pre, key, d,
                        lo, hi);
    *out = (float)d;
    return PTQ_OK;
}

static int get_bool(const cJSON *root, const char *key, int def, int *out, const char *fname,
                    ptq_err *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return PTQ_OK;
    }
    if (!cJSON_IsBool(j))
        return ptq_fail(e, PTQ_EFORMAT, "%s: %s is not true or false", fname, key);
    *out = cJSON_IsTrue(j);
    return PTQ_OK;
}

/* bos_token_id / eos_token_id: null, an id, or a list of ids (the first
 * counts); -1 when absent. */
static int get_token(const cJSON *root, const char *key, int vocab, int *out, const char *fname,
                     ptq_err *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!j || cJSON_IsNull(j)) return PTQ_OK;
    const cJSON *first = cJSON_IsArray(j) ? j->child : j;
    for (const cJSON *k = first; k; k = cJSON_IsArray(j) ? k->next : NULL)
        if (!cJSON_IsNumber(k) || !(k->valuedouble >= 0 && k->valuedouble < vocab) ||
            k->valuedouble != floor(k->valuedouble))
            return ptq_fail(e, PTQ_EFORMAT, "%s: %s is not a token id in [0, %d) (or a list of "
                            "them)", fname, key, vocab);
    if (first) *out = (int)first->valuedouble;
    return PTQ_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* JSON allows a key twice and readers disagree on which counts: refuse it. */
static int check_unique_keys(const cJSON *obj, const char *what, const char *fname, ptq_err *e)
{
    size_t n = 0;
    for (const cJSON *j = obj->child; j; j = j->next) n++;
    if (n < 2) return PTQ_OK;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    n = 0;
    for (const cJSON *j = obj->child; j; j = j->next) keys[n++] = j->string;
    qsort(keys, n, sizeof *keys, cmp_str);
    int rc = PTQ_OK;
    for (size_t i = 1; i < n && rc == PTQ_OK; i++)
        if (!strcmp(keys[i - 1], keys[i]))
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: %s%.64s appears twice", fname, what, keys[i]);
    free(keys);
    return rc;
}

static int parse_rope_scaling(ptq_config *c, const cJSON *rs, const char *fname, ptq_err *e)
{
    c->rope_scaling = PTQ_ROPE_NONE;
    c->rope_factor = 1.0f;
    c->rope_low_freq_factor = c->rope_high_freq_factor = 0.0f;
    c->rope_orig_max_pos = 0;
    if (!rs || cJSON_IsNull(rs)) return PTQ_OK;
    if (!cJSON_IsObject(rs))
        return ptq_fail(e, PTQ_EFORMAT, "%s: rope_scaling is neither null nor an object", fname);
    int rc = check_unique_keys(rs, "rope_scaling.", fname, e);
    if (rc) return rc;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(ty))
        return ptq_fail(e, PTQ_EFORMAT, "%s: rope_scaling has no \"rope_type\" (or \"type\") "
                        "string", fname);
    const char *type = ty->valuestring;
    if (!strcmp(type, "default")) return PTQ_OK;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = PTQ_ROPE_LINEAR;
        return get_real(rs, "rope_scaling.", "factor", NAN, 0, 1e6, &c->rope_factor, fname, e);
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scaling = PTQ_ROPE_LLAMA3;
        if ((rc =
                 get_real(rs, "rope_scaling.", "factor", NAN, 0, 1e6, &c->rope_factor, fname, e)) ||
            (rc = get_real(rs, "rope_scaling.", "low_freq_factor", NAN, 0, 1e6,
                           &c->rope_low_freq_factor, fname, e)) ||
            (rc = get_real(rs, "rope_scaling.", "high_freq_factor", NAN, 0, 1e6,
                           &c->rope_high_freq_factor, fname, e)) ||
            (rc = get_int(rs, "rope_scaling.", "original_max_position_embeddings", 1, 0, 1, MAX_POS,
                          &c->rope_orig_max_pos, fname, e)))
            return rc;
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return ptq_fail(e, PTQ_EFORMAT, "%s: rope_scaling (llama3): high_freq_factor %g must "
                            "be larger than low_freq_factor %g", fname,
                            (double)c->rope_high_freq_factor, (double)c->rope_low_freq_factor);
        return PTQ_OK;
    }
    return ptq_fail(e, PTQ_EFORMAT, "%s: rope_scaling type '%.40s' is not supported: ptqc knows "
                    "linear and llama3", fname, type);
}

int ptq_config_parse(ptq_config *c, const char *json, size_t len, const char *fname, ptq_err *e)
{
    memset(c, 0, sizeof *c);
    if (len > MAX_CONFIG_BYTES)
        return ptq_fail(e, PTQ_EFORMAT, "%s: %zu bytes, larger than the %u-byte limit", fname, len,
                        MAX_CONFIG_BYTES);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return ptq_fail(e, PTQ_EFORMAT, "%s: malformed JSON", fname);
    int rc = PTQ_OK;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    long max_pos_default = 2048;
    if (!cJSON_IsObject(root)) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: not a JSON object", fname);
    } else if ((rc = check_unique_keys(root, "", fname, e))) {
        /* reported */
    } else if (!mt) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: missing required field model_type", fname);
    } else if (!cJSON_IsString(mt)) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: model_type is not a string", fname);
    } else if (!strcmp(mt->valuestring, "llama") || !strcmp(mt->valuestring, "mistral") ||
               !strcmp(mt->valuestring, "qwen2")) {
        snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
        max_pos_default = !strcmp(mt->valuestring, "llama") ? 2048
                          : !strcmp(mt->valuestring, "mistral") ? 131072 : 32768;
    } else {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: model_type '%.64s' is not supported: ptqc knows llama, "
                      "mistral, qwen2", fname, mt->valuestring);
    }
    if (rc) goto done;

    if ((rc = get_int(root, "", "hidden_size", 1, 0, 1, MAX_HIDDEN, &c->hidden, fname, e)) ||
        (rc = get_int(root, "", "intermediate_size", 1, 0, 1, MAX_INTERMEDIATE, &c->intermediate,
                      fname, e)) ||
        (rc =
             get_int(root, "", "num_hidden_layers", 1, 0, 1, MAX_LAYERS, &c->n_layers, fname, e)) ||
        (rc =
             get_int(root, "", "num_attention_heads", 1, 0, 1, MAX_HEADS, &c->n_heads, fname, e)) ||
        (rc = get_int(root, "", "num_key_value_heads", 0, c->n_heads, 1, MAX_HEADS, &c->n_kv_heads,
                      fname, e)) ||
        (rc = get_int(root, "", "head_dim", 0, 0, 1, MAX_HEAD_DIM, &c->head_dim, fname, e)) ||
        (rc = get_int(root, "", "vocab_size", 1, 0, 1, MAX_VOCAB, &c->vocab, fname, e)) ||
        (rc = get_int(root, "", "max_position_embeddings", 0, max_pos_default, 1, MAX_POS,
                      &c->max_pos, fname, e)) ||
        (rc = get_real(root, "", "rms_norm_eps", 1e-6, 0, 1, &c->rms_eps, fname, e)) ||
        (rc = get_real(root, "", "rope_theta", 10000.0, 0, 1e12, &c->rope_theta, fname, e)) ||
        (rc = get_bool(root, "tie_word_embeddings", 0, &c->tie_embeddings, fname, e)) ||
        (rc = parse_rope_scaling(c, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), fname,
                                 e)))
        goto done;

    if (c->head_dim == 0) {
        if (c->hidden % c->n_heads) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: hidden_size %d is not divisible by "
                          "num_attention_heads %d (and no head_dim is given)", fname, c->hidden,
                          c->n_heads);
            goto done;
        }
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->n_heads % c->n_kv_heads) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: num_attention_heads %d is not a multiple of "
                      "num_key_value_heads %d", fname, c->n_heads, c->n_kv_heads);
        goto done;
    }
    if ((long)c->n_heads * c->head_dim > MAX_HIDDEN) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: num_attention_heads %d x head_dim %d is larger than "
                      "%d", fname, c->n_heads, c->head_dim, MAX_HIDDEN);
        goto done;
    }
    if (c->head_dim % 2) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: head_dim %d is odd; rotary embeddings need an even "
                      "head_dim", fname, c->head_dim);
        goto done;
    }

    /* biases: qwen2 always has q/k/v biases; llama and mistral when attention_bias */
    int attention_bias = 0, mlp_bias = 0;
    if ((rc = get_bool(root, "attention_bias", 0, &attention_bias, fname, e)) ||
        (rc = get_bool(root, "mlp_bias", 0, &mlp_bias, fname, e)))
        goto done;
    c->qkv_bias = !strcmp(c->model_type, "qwen2") || attention_bias;
    if (mlp_bias) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: mlp_bias true is not supported", fname);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsNull(act) && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: hidden_act '%.40s' is not supported: ptqc implements "
                      "silu (SwiGLU)", fname, cJSON_IsString(act) ? act->valuestring : "?");
        goto done;
    }

    if ((rc = get_token(root, "bos_token_id", c->vocab, &c->bos_id, fname, e)) ||
        (rc = get_token(root, "eos_token_id", c->vocab, &c->eos_id, fname, e)))
        goto done;

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!dt) dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (cJSON_IsString(dt) && (!strcmp(dt->valuestring, "float16") ||
                               !strcmp(dt->valuestring, "bfloat16") ||
                               !strcmp(dt->valuestring, "float32")))
        snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", dt->valuestring);

done:
    cJSON_Delete(root);
    return rc;
}

int ptq_config_load(ptq_config *c, const char *path, ptq_err *e)
{
    memset(c, 0, sizeof *c);
    char *buf;
    size_t n;
    int rc0 = ptq_read_file(path, MAX_CONFIG_BYTES, &buf, &n, e);
    if (rc0) return rc0;
    int rc = ptq_config_parse(c, buf, n, path, e);
    free(buf);
    return rc;
}
