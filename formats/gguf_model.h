/* gguf_model.h - a llama.cpp GGUF file as a source model: its config, its
 * tokenizer and a ptq_weights provider.
 *
 * The config and the tokenizer are translated from the metadata into the
 * Hugging Face config.json / tokenizer.json / tokenizer_config.json they
 * stand for and then loaded by the same code as a model directory
 * (formats/config.c, formats/tokenizer.c), so one set of checks applies to
 * both (and those JSON texts are what a conversion writes).
 *
 * Architectures: llama and qwen2 (general.architecture); anything else is
 * refused by name.  Tensor names are llama.cpp's: token_embd, output_norm,
 * output (absent: tied), blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, and for qwen2
 * blk.N.attn_{q,k,v}.bias.  llama.cpp's converter permutes the rows of
 * llama's attn_q/attn_k into interleaved RoPE order; the provider puts them
 * back into the Hugging Face (rotate_half) order.
 *
 * Tokenizers: tokenizer.ggml.model "gpt2" (byte-level BPE: tokens + merges;
 * tokenizer.ggml.pre gpt-2, llama-bpe / llama3, qwen2, smollm) and "llama"
 * (SentencePiece: pieces + scores, byte fallback); token_type CONTROL and
 * USER_DEFINED tokens are special tokens matched in the text; bos/eos ids and
 * add_bos_token from the metadata.
 */
#ifndef PTQC_GGUF_MODEL_H
#define PTQC_GGUF_MODEL_H

#include "formats/arch.h"
#include "formats/config.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"

typedef struct ptq_gguf_model {
    ptq_gguf g;
    ptq_config cfg;
    int permute_qk; /* llama: attn_q / attn_k rows are in llama.cpp's order */
    const ptq_gguf_tensor *embd, *out_norm, *output; /* output NULL when tied */
    /* per layer: the 7 linears, 2 norms, 3 optional biases */
    const ptq_gguf_tensor **lin;  /* [n_layers * PTQ_NLINEAR] */
    const ptq_gguf_tensor **norm; /* [n_layers * 2] attn_norm, ffn_norm */
    const ptq_gguf_tensor **bias; /* [n_layers * 3] */
} ptq_gguf_model;

/* Open path, build the config and find and check every tensor it implies. */
int ptq_gguf_model_open(ptq_gguf_model *m, const char *path, ptq_err *e);
void ptq_gguf_model_close(ptq_gguf_model *m);
void ptq_gguf_model_weights(ptq_gguf_model *m, ptq_weights *w);

/* The tensor standing for the Hugging Face tensor name hf (model.embed_tokens.weight,
 * model.norm.weight, lm_head.weight, model.layers.N.{input_layernorm,
 * post_attention_layernorm}.weight, model.layers.N.{self_attn,mlp}.*.{weight,bias});
 * NULL when there is none.  *heads: the head count whose rows are to be put back
 * in HF order (0: none). */
const ptq_gguf_tensor *ptq_gguf_model_hf(const ptq_gguf_model *m, const char *hf, int *heads);
/* Widen t (from ptq_gguf_model_hf) into out [numel]; NaN/Inf is PTQ_EDATA. */
int ptq_gguf_model_read(const ptq_gguf_model *m, const ptq_gguf_tensor *t, int heads, float *out,
                        ptq_err *e);

/* The config.json the metadata stands for (malloc'ed text). */
int ptq_gguf_config_json(const ptq_gguf *g, char **json, ptq_err *e);
/* The tokenizer.json and tokenizer_config.json (malloc'ed texts). */
int ptq_gguf_tokenizer_json(const ptq_gguf *g, char **tok_json, char **cfg_json, ptq_err *e);
/* The tokenizer built from them. */
int ptq_gguf_tokenizer(const ptq_gguf *g, ptq_tokenizer **t, ptq_err *e);

#endif
