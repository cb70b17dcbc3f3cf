/* tokenizer.h - Hugging Face tokenizer.json BPE tokenizers of the Llama family.
 *
 * Two styles:
 *  - SentencePiece-style BPE (Llama 2, TinyLlama, the shared stories models):
 *    normalizer Prepend("▁") + Replace(" ", "▁"), merges by rank, optional
 *    byte fallback (<0xNN> pieces), fuse_unk.
 *  - byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): ByteLevel byte-to-unicode
 *    mapping after a regex pre-tokenizer (PCRE2, the patterns the models ship).
 * Added/special tokens are matched in the text before BPE, as HF does.
 * BOS/EOS come from tokenizer_config.json when present.
 *
 * Loading parses (formats/tokenizer.c); encode/decode live in formats/bpe.c.
 *
 * Accepted tokenizer.json pieces (others are refused by name, PTQ_EFORMAT):
 * model BPE (merges as "a b" or ["a","b"], unk_token, fuse_unk,
 * byte_fallback, ignore_merges); normalizers Sequence, Prepend, Replace
 * (String), NFC, NFD, NFKC, NFKD; pre-tokenizers ByteLevel, Split (Regex or
 * String, Isolated), Digits, Metaspace, Sequence; decoders ByteLevel,
 * Replace ("▁" -> " "), ByteFallback, Fuse, Strip(" ", n, 0), Metaspace,
 * Sequence.  The Unicode normalization forms (Qwen2's NFC and the others)
 * are the full UAX #15 forms, computed by utf8proc on each text section
 * between added tokens, as Hugging Face does.
 */
#ifndef PTQC_TOKENIZER_H
#define PTQC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

typedef struct ptq_tokenizer ptq_tokenizer;

/* Load tokenizer.json at json_path; config_path (tokenizer_config.json) may
 * be NULL or missing, then BOS/EOS come from the added tokens when known. */
int ptq_tok_load(ptq_tokenizer **t, const char *json_path, const char *config_path, ptq_err *e);
/* Load from memory (fuzz entry); config_json may be NULL. */
int ptq_tok_load_mem(ptq_tokenizer **t, const char *json, size_t len,
                     const char *config_json, size_t config_len, const char *fname, ptq_err *e);
void ptq_tok_free(ptq_tokenizer *t);

/* Encode len bytes of UTF-8 text (no special tokens added unless add_bos,
 * which puts one BOS in front).  *ids is malloc'ed; the caller frees it.
 * Invalid UTF-8 is an error (calib/ decides the policy before this point). */
int ptq_tok_encode(const ptq_tokenizer *t, const char *text, size_t len, int add_bos,
                   int32_t **ids, size_t *n, ptq_err *e);
/* Decode ids to UTF-8 text (*out malloc'ed and NUL-terminated). */
int ptq_tok_decode(const ptq_tokenizer *t, const int32_t *ids, size_t n, char **out,
                   size_t *outlen, ptq_err *e);

int ptq_tok_vocab_size(const ptq_tokenizer *t);
int ptq_tok_bos(const ptq_tokenizer *t); /* -1 if none */
int ptq_tok_eos(const ptq_tokenizer *t); /* -1 if none */
int ptq_tok_add_bos(const ptq_tokenizer *t); /* tokenizer_config add_bos_token */
/* "sentencepiece-bpe" or "byte-level-bpe" */
const char *ptq_tok_style(const ptq_tokenizer *t);
int ptq_tok_n_merges(const ptq_tokenizer *t);
int ptq_tok_n_added(const ptq_tokenizer *t);
/* The text of one token as stored in the vocabulary (NULL if out of range). */
const char *ptq_tok_piece(const ptq_tokenizer *t, int32_t id);

#endif
