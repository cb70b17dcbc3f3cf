/* model.h - the FP32 forward pass of Llama-family decoders.
 *
 * Weights reach the forward pass through a ptq_weights provider
 * (formats/arch.h), one decoder layer at a time, already widened to float32:
 * the checkpoint reader (F16/BF16 -> F32) and the bundle reader (dequantize packed payloads -> F32) are both
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

#include "formats/arch.h"
#include "formats/config.h"
#include "lib/base/err.h"

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

/* The layer in three parts, for callers that keep what lies between them
 * (the compile engine): ptq_fwd_layer is attn, attn_out on the attention
 * output, mlp with residual, and each part computes what it does there.
 * ptq_fwd_attn: rmsnorm(x), q/k/v, RoPE, attention, with the captures
 * attn_in, k_rot, v_out and o_in (the attention output [N, H*hd]; x is not
 * changed).  ptq_fwd_attn_out: x += o_proj(ao) for ao [N, H*hd] (NULL: the
 * attention output of f's last ptq_fwd_attn).
 * ptq_fwd_mlp: rmsnorm(x), gate/up, silu(gate)*up with the captures mlp_in
 * and down_in; with residual, x += down_proj(...), else x is not changed
 * and down_proj is not run. */
int ptq_fwd_attn(ptq_fwd *f, const ptq_layer_w *w, const float *x, int B, int T,
                 ptq_capture *cap, ptq_err *e);
int ptq_fwd_attn_out(ptq_fwd *f, const ptq_layer_w *w, float *x, const float *ao, int N,
                     ptq_err *e);
int ptq_fwd_mlp(ptq_fwd *f, const ptq_layer_w *w, float *x, int N, ptq_capture *cap,
                int residual, ptq_err *e);

/* Embedding lookup, every layer, final norm and classifier: logits [B*T, V].
 * Widens one layer at a time through src. */
int ptq_forward(ptq_fwd *f, const ptq_weights *src, const int32_t *tokens, int B, int T,
                float *logits, ptq_err *e);

/* Final RMSNorm + classifier on x [n, D] -> logits [n, V]. */
void ptq_fwd_logits(const ptq_config *c, const float *norm, const float *lm_head,
                    const float *x, int n, float *logits, float *scratch);

#endif
