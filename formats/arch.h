/* arch.h - the architecture facts of a Llama-family decoder layer: its seven
 * linears (names, shapes), the float32 weights of one layer, and the
 * ptq_weights provider interface through which every weight source (the
 * checkpoint readers, the bundle reader) hands layers to the model.
 */
#ifndef PTQC_ARCH_H
#define PTQC_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "formats/config.h"
#include "lib/base/err.h"

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
     * aq[i]: linear i runs as the 8-bit x 8-bit product of lib/qfmt/w8a8.h
     * (W8A8 / FP8 tensors) instead of the float32 sgemm over w[i]. */
    const struct ptq_qtensor *aq[PTQ_NLINEAR];
    /* Packed decoding (batch-1 decode steps): the caller sets want_packed to
     * ask for it; a provider that can then sets q[i] to linear i's tensor
     * when its format has a fused GEMV (lib/qfmt/qfmt.h's gemv: for int,
     * lib/qfmt/gemv_int.h) (a view that stays valid until its next
     * layer() call) and leaves w[i] unwritten; the forward multiplies by the
     * packed bytes over `threads` workers (the caller's count, >= 1).  A
     * provider that cannot leaves q[i] NULL and widens w[i] as usual. */
    int want_packed, threads;
    const struct ptq_qtensor *q[PTQ_NLINEAR];
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
    /* Optional (NULL: none): the final norm [D], and the classifier as a
     * tensor [V, D] whose format has a fused GEMV (lib/qfmt/qfmt.h), a view
     * valid while the provider lives, so that the batch-1 decoder multiplies
     * by it directly instead of a float32 copy; *lm_head NULL when it
     * cannot (then head() is used). */
    int (*head_packed)(void *ctx, float *norm, const struct ptq_qtensor **lm_head, ptq_err *e);
} ptq_weights;

#endif
