/* gguf_vocab.h - facts of llama.cpp's GGUF vocabulary shared by the reader
 * (formats/gguf_tokenizer.c) and the exporter (formats/export_gguf_tok.c):
 * tokenizer.ggml.token_type values and the Split regexes of the
 * pre-tokenizers llama.cpp names (as in the models' tokenizer.json). */
#ifndef PTQC_GGUF_VOCAB_H
#define PTQC_GGUF_VOCAB_H

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

extern const char ptq_gguf_llama3_re[];
extern const char ptq_gguf_qwen2_re[];

#endif
