/* config_json.c - a parsed config as JSON (config_json.h). */
#include "formats/config_json.h"

#include <stdio.h>
#include <stdlib.h>

const char *ptq_rope_name(int r)
{
    return r == PTQ_ROPE_LINEAR ? "linear" : r == PTQ_ROPE_LLAMA3 ? "llama3" : "none";
}

/* The shortest decimal that reads back as f (1e-05, not 9.99999974737875e-06). */
static double short_double(float f)
{
    char buf[32];
    for (int p = 6; p < 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

cJSON *ptq_config_json(const ptq_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_type", c->model_type);
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
    cJSON_AddNumberToObject(j, "rms_norm_eps", short_double(c->rms_eps));
    cJSON_AddNumberToObject(j, "rope_theta", short_double(c->rope_theta));
    if (c->rope_scaling == PTQ_ROPE_NONE) {
        cJSON_AddNullToObject(j, "rope_scaling");
    } else {
        cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", ptq_rope_name(c->rope_scaling));
        cJSON_AddNumberToObject(r, "factor", short_double(c->rope_factor));
        if (c->rope_scaling == PTQ_ROPE_LLAMA3) {
            cJSON_AddNumberToObject(r, "low_freq_factor", short_double(c->rope_low_freq_factor));
            cJSON_AddNumberToObject(r, "high_freq_factor", short_double(c->rope_high_freq_factor));
            cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->rope_orig_max_pos);
        }
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(j, "qkv_bias", c->qkv_bias);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_id);
    else cJSON_AddNullToObject(j, "bos_token_id");
    if (c->eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_id);
    else cJSON_AddNullToObject(j, "eos_token_id");
    if (c->torch_dtype[0]) cJSON_AddStringToObject(j, "torch_dtype", c->torch_dtype);
    else cJSON_AddNullToObject(j, "torch_dtype");
    return j;
}

