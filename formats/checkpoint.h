/* checkpoint.h - a Hugging Face model directory: config.json, *.safetensors,
 * tokenizer.json (+ tokenizer_config.json).
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
} ptq_checkpoint;

int ptq_ckpt_open(ptq_checkpoint *ck, const char *dir, ptq_err *e);
void ptq_ckpt_close(ptq_checkpoint *ck);

/* A ptq_weights provider reading from the checkpoint (widening F16/BF16).
 * A NaN or Inf met while widening is PTQ_EDATA naming the tensor; a token id
 * outside the vocabulary is PTQ_EDATA.  ck must outlive w. */
void ptq_ckpt_weights(ptq_checkpoint *ck, ptq_weights *w);

/* HF tensor name of a tensor of layer l: suffix "self_attn.q_proj.weight"
 * gives "model.layers.3.self_attn.q_proj.weight" for layer 3. */
void ptq_ckpt_tensor_name(char *buf, size_t n, int layer, const char *suffix);

#endif
