/* model.h - the FP32 forward pass of Llama-family decoders.
 *
 * Weights reach the forward pass through a ptq_weights provider, one decoder
 * layer at a time, already widened to float32: the checkpoint reader (F16/BF16
 * -> F32) and the bundle reader (dequantize packed payloads -> F32) are both
 * providers, so the same forward code evaluates a source model and a bundle,
 * and memory never grows with the number of layers.
 *
 * Activations are row-major [N = B*T, dim]; matrices are [out, in] row-major
 * as in the checkpoint; every linear is one OpenBLAS sgemm.
 */
#ifndef PTQC_MODEL_H
#define PTQC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "formats/config.h"
#include "lib/err.h"

/* The seven linears of a decoder layer, in the order they are quantized. */
enum ptq_linear { PTQ_Q = 0, PTQ_K, PTQ_V, PTQ_O, PTQ_GATE, PTQ_UP, PTQ_DOWN, PTQ_NLINEAR };
/* "self_attn.q_proj", ... "mlp.down_proj" */
const char *ptq_linear_name(int which);
/* Rows (out) and columns (in) of a linear. */
void ptq_linear_shape(const ptq_config *c, int which, int *rows, int *cols);

typedef struct ptq_layer_w {
    float *attn_norm;            /* [D] input_layernorm */
    float *w[PTQ_NLINEAR];       /* [rows, cols] per ptq_linear_shape */
    float *bias[PTQ_NLINEAR];    /* q/k/v biases (qwen2), NULL otherwise */
    float *mlp_norm;             /* [D] post_attention_layernorm */
    /* Optional (ptq_layer_w_alloc leaves them NULL; a provider sets them):
     * aq[i]: linear i runs as the 8-bit x 8-bit product of lib/w8a8.h
     * (W8A8 / FP8 tensors) instead of the float32 sgemm over w[i]. */
    const struct ptq_qtensor *aq[PTQ_NLINEAR];
    /* int8 KV cache: [2][n_kv_heads * head_dim] static scales, keys then
     * values, one per kv head and head-dim channel (element h * head_dim + i);
     * the keys (after RoPE) and values are rounded to int8 codes of their
     * channel's scale before attention, exactly as an int8 cache holds them. */
    const float *kv_scale;
} ptq_layer_w;

/* Allocate / free float32 buffers for one layer of config c (biases only when
 * c->qkv_bias). */
int ptq_layer_w_alloc(ptq_layer_w *w, const ptq_config *c, ptq_err *e);
void ptq_layer_w_free(ptq_layer_w *w);

/* Where weights come from.  Each callback fills caller-owned buffers. */
typedef struct ptq_weights {
    const ptq_config *cfg;
    void *ctx;
    /* Widen layer l into w (allocated with ptq_layer_w_alloc). */
    int (*layer)(void *ctx, int l, ptq_layer_w *w, ptq_err *e);
    /* Embedding rows of n tokens into out [n, D]. */
    int (*embed)(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e);
    /* Final norm [D] and the classifier [V, D] (the embedding when tied). */
    int (*head)(void *ctx, float *norm, float *lm_head, ptq_err *e);
} ptq_weights;

/* Inputs of the linears captured during one layer's forward, for calibration.
 * Any pointer may be NULL (not captured).  Rows are the N = B*T tokens. */
typedef struct ptq_capture {
    float *attn_in; /* [N, D]      input of q/k/v (after input RMSNorm) */
    float *o_in;    /* [N, H*hd]   input of o_proj (attention output) */
    float *mlp_in;  /* [N, D]      input of gate/up (after post-attn RMSNorm) */
    float *down_in; /* [N, I]      input of down_proj (silu(gate)*up) */
    float *k_rot;   /* [N, KV*hd]  keys after RoPE (int8 KV-cache calibration) */
    float *v_out;   /* [N, KV*hd]  values */
} ptq_capture;

/* Scratch for batches of up to max_tokens tokens with sequences up to max_T. */
typedef struct ptq_fwd ptq_fwd;
int ptq_fwd_create(ptq_fwd **f, const ptq_config *c, int max_tokens, int max_T, ptq_err *e);
void ptq_fwd_free(ptq_fwd *f);

/* One decoder layer in place on x [B*T, D]: B sequences of T tokens, each
 * starting at position 0 with causal attention. */
int ptq_fwd_layer(ptq_fwd *f, const ptq_layer_w *w, float *x, int B, int T,
                  ptq_capture *cap, ptq_err *e);

/* Embedding lookup, every layer, final norm and classifier: logits [B*T, V].
 * Widens one layer at a time through src. */
int ptq_forward(ptq_fwd *f, const ptq_weights *src, const int32_t *tokens, int B, int T,
                float *logits, ptq_err *e);

/* Final RMSNorm + classifier on x [n, D] -> logits [n, V]. */
void ptq_fwd_logits(const ptq_config *c, const float *norm, const float *lm_head,
                    const float *x, int n, float *logits, float *scratch);

#endif
