/* convert.h - write a source checkpoint (a llama.cpp .gguf or a Hugging Face
 * directory) as a Hugging Face checkpoint directory that ptqc and
 * transformers both load: config.json, model.safetensors (or shards
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json),
 * tokenizer.json and tokenizer_config.json.
 *
 * Tensors carry their Hugging Face names (model.embed_tokens.weight,
 * model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight;
 * lm_head.weight only when the classifier is not tied), q/k rows in the
 * Hugging Face (rotate_half) order, each widened to float32 by the
 * checkpoint reader and then rounded once to the output dtype (F16 and BF16
 * round to nearest even).  A value that F16 cannot hold (|x| > 65504) is
 * refused (PTQ_EDATA naming the tensor, the element and the value), as is a
 * BF16 overflow to Inf.
 *
 * The output is written into a fresh temporary directory beside dst
 * (dst.tmp.XXXXXX) and renamed to dst at the end; on any error the
 * temporary directory is removed and dst is not created.  dst must not
 * exist (PTQ_EOUTPUT).
 */
#ifndef PTQC_CONVERT_H
#define PTQC_CONVERT_H

#include <stdint.h>

#include "lib/base/dtype.h"
#include "lib/base/err.h"

/* Hugging Face's default max_shard_size ("5GB"). */
#define PTQ_CONVERT_SHARD_DEFAULT 5000000000ull

typedef struct ptq_convert_opts {
    ptq_dtype dtype;     /* PTQ_DT_F16, PTQ_DT_BF16 or PTQ_DT_F32 */
    uint64_t shard_size; /* bytes of tensor data per shard (0: the default) */
    /* optional: called after each tensor is written (done of total) */
    void (*progress)(void *ctx, int done, int total, const char *name);
    void *progress_ctx;
} ptq_convert_opts;

typedef struct ptq_convert_result {
    int tensors;          /* tensors written */
    int shards;           /* safetensors files written */
    uint64_t bytes;       /* tensor data bytes */
} ptq_convert_result;

/* Convert src into the new directory dst (see above).  res may be NULL. */
int ptq_convert(const char *src, const char *dst, const ptq_convert_opts *o,
                ptq_convert_result *res, ptq_err *e);

/* tokenizer.json text (as ptqc reads it) completed into the full form
 * Hugging Face's tokenizers deserializer requires: version, truncation,
 * padding, every added token's flags, the BPE model's optional fields,
 * ByteLevel's add_prefix_space / trim_offsets / use_regex and the other
 * components' defaults, merges as "a b" strings where no piece has a
 * space; add_bos: a TemplateProcessing post-processor putting bos in
 * front (when there is none).  *out malloc'ed (formats/tokenizer_write.c). */
int ptq_tok_json_complete(const char *json, size_t len, const char *bos, int add_bos, char **out,
                          ptq_err *e);

#endif
