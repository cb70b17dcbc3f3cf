/* synth.h - synthetic Llama-family checkpoints for tests: random weights from
 * a seeded RNG, kept in memory as float32 and written as a Hugging Face
 * directory (config.json + safetensors, optionally sharded with an index).
 */
#ifndef PTQC_TESTS_SYNTH_H
#define PTQC_TESTS_SYNTH_H

#include <stdint.h>

#include "formats/config.h"
#include "lib/base/dtype.h"
#include "lib/base/err.h"
#include "lib/model/model.h"

typedef struct synth_model {
    ptq_config cfg;
    float *embed;        /* [V, D] */
    float *lm_head;      /* [V, D]; NULL when cfg.tie_embeddings (the classifier is embed) */
    float *norm;         /* [D] */
    ptq_layer_w *layers; /* [n_layers]; bias[] set when cfg.qkv_bias */
} synth_model;

/* A tiny Llama config: hidden 32, intermediate 48, 2 layers, 4 heads, 2 kv
 * heads, head_dim 8, vocab 64, max_pos 64, tied, eps 1e-5, theta 10000. */
ptq_config synth_tiny_config(void);

/* Variants of the tiny config that exercise the architecture's options:
 * 0 Qwen2 with q/k/v biases, 1 untied classifier, 2 multi-head attention
 * (n_kv_heads = n_heads).  *name: "synthetic qwen2 bias", ... */
#define SYNTH_NVARIANTS 3
ptq_config synth_variant(int v, const char **name);

/* Fill m with random weights for c (uniform, scaled 1/sqrt(fan_in); norms
 * near 1; biases when c->qkv_bias; lm_head when untied).  0 on success. */
int synth_init(synth_model *m, const ptq_config *c, uint64_t seed);
void synth_free(synth_model *m);
/* Round every weight to dt (F16 or BF16) and back, in place. */
void synth_round(synth_model *m, ptq_dtype dt);

/* Write dir/config.json and the tensors in dtype dt (F32, F16 or BF16):
 * model.safetensors, or with shards == 2 model-0000{1,2}-of-00002.safetensors
 * plus model.safetensors.index.json.  dir must exist. */
int synth_write(const synth_model *m, const char *dir, ptq_dtype dt, int shards, ptq_err *e);

/* An in-memory ptq_weights provider over m (m must outlive it). */
void synth_weights(synth_model *m, ptq_weights *w);

#endif
