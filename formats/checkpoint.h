/* checkpoint.h - a Hugging Face model directory: config.json, *.safetensors,
 * tokenizer.json (+ tokenizer_config.json); or a llama.cpp .gguf file
 * (formats/gguf_model.h: config and tokenizer from its metadata, weights
 * dequantized as ggml does).
 *
 * Opening validates that every tensor the config implies exists with the
 * right shape and a float dtype (F32/F16/BF16), and that nothing unexpected
 * of the decoder is missing.  Layers are widened to float32 one at a time.
 */
#ifndef PTQC_CHECKPOINT_H
#define PTQC_CHECKPOINT_H

#include "formats/config.h"
#include "formats/safetensors.h"
#include "formats/tokenizer.h"
#include "formats/arch.h"

typedef struct ptq_checkpoint {
    char *dir;
    ptq_config cfg;
    ptq_safetensors st;
    ptq_tokenizer *tok; /* NULL when the directory has no tokenizer.json */
    struct ptq_gguf_model *gguf; /* a .gguf file: st is empty, weights come from here */
} ptq_checkpoint;

/* dir: a model directory, or a file starting with the GGUF magic. */
int ptq_ckpt_open(ptq_checkpoint *ck, const char *dir, ptq_err *e);
void ptq_ckpt_close(ptq_checkpoint *ck);

/* A ptq_weights provider reading from the checkpoint (widening F16/BF16).
 * A NaN or Inf met while widening is PTQ_EDATA naming the tensor; a token id
 * outside the vocabulary is PTQ_EDATA.  ck must outlive w. */
void ptq_ckpt_weights(ptq_checkpoint *ck, ptq_weights *w);

/* A tensor by its Hugging Face name widened to float32: *out malloc'ed
 * [rows, cols] (a 1-d tensor has rows 1).  For a .gguf the llama.cpp tensor
 * standing for it (attn_q/attn_k rows in HF order).  Missing: PTQ_EFORMAT. */
int ptq_ckpt_read_tensor(const ptq_checkpoint *ck, const char *name, float **out, int *rows,
                         int *cols, ptq_err *e);
/* A .gguf checkpoint's config.json (which 0), tokenizer.json (1) and
 * tokenizer_config.json (2) as generated from its metadata (*data malloc'ed). */
int ptq_ckpt_gguf_meta(const ptq_checkpoint *ck, int which, char **data, size_t *len, ptq_err *e);

/* HF tensor name of a tensor of layer l: suffix "self_attn.q_proj.weight"
 * gives "model.layers.3.self_attn.q_proj.weight" for layer 3. */
void ptq_ckpt_tensor_name(char *buf, size_t n, int layer, const char *suffix);

#endif
