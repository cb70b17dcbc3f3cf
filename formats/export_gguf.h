/* export_gguf.h - what the two files of the gguf exporter row share
 * (export_gguf.c: model metadata and tensors; export_gguf_tok.c: the
 * tokenizer.ggml.* metadata).  See ptqc-export(1), GGUF. */
#ifndef PTQC_EXPORT_GGUF_H
#define PTQC_EXPORT_GGUF_H

#include "formats/bundle.h"
#include "formats/gguf_write.h"

/* tokenizer.ggml.* of the bundle's tokenizer.json / tokenizer_config.json
 * for a model of n_vocab embedding rows into w.  A tokenizer GGUF cannot
 * describe is PTQ_EDATA naming the member and the reason. */
int ptq_ex_gguf_tokenizer(const ptq_bundle *b, int n_vocab, ptq_gguf_w *w, ptq_err *e);

#endif
