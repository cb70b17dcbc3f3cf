/* config.h - config.json of Llama-family decoders (llama, mistral, qwen2). */
#ifndef PTQC_CONFIG_H
#define PTQC_CONFIG_H

#include <stddef.h>

#include "lib/base/err.h"

enum ptq_rope_scaling { PTQ_ROPE_NONE = 0, PTQ_ROPE_LINEAR, PTQ_ROPE_LLAMA3 };

typedef struct ptq_config {
    char model_type[32];     /* "llama", "mistral", "qwen2" */
    int hidden;              /* hidden_size */
    int intermediate;        /* intermediate_size */
    int n_layers;            /* num_hidden_layers */
    int n_heads;             /* num_attention_heads */
    int n_kv_heads;          /* num_key_value_heads (defaults to n_heads) */
    int head_dim;            /* head_dim (defaults to hidden / n_heads) */
    int vocab;               /* vocab_size */
    int max_pos;             /* max_position_embeddings */
    float rms_eps;           /* rms_norm_eps */
    float rope_theta;        /* rope_theta (default 10000) */
    int rope_scaling;        /* enum ptq_rope_scaling */
    float rope_factor;       /* linear and llama3 */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int rope_orig_max_pos;   /* llama3 original_max_position_embeddings */
    int tie_embeddings;      /* tie_word_embeddings */
    int qkv_bias;            /* qwen2 always; llama with attention_bias */
    int bos_id, eos_id;      /* -1 when absent */
    char torch_dtype[16];    /* "float16", "bfloat16", "float32" or "" */
} ptq_config;

/* Read and validate path (a config.json file). */
int ptq_config_load(ptq_config *c, const char *path, ptq_err *e);
/* Parse from memory; fname is used in messages only (also the fuzz entry). */
int ptq_config_parse(ptq_config *c, const char *json, size_t len, const char *fname, ptq_err *e);

#endif
