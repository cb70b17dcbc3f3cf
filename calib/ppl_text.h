/* ppl_text.h - the token stream of the ptqc-ppl-v1 protocol (ptqc-eval(1)):
 * the documents of a text concatenated in order into one string, then BOS +
 * encode(that string) with the model's tokenizer.  The perplexity itself is
 * lib/model/eval.h. */
#ifndef PTQC_PPL_TEXT_H
#define PTQC_PPL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "calib/text.h"
#include "formats/tokenizer.h"
#include "lib/base/err.h"

/* The documents of t concatenated into *all (malloc'ed, NUL-terminated, *len
 * bytes).  PTQ_EDATA naming what when the text is empty or only whitespace. */
int ptq_ppl_join(const ptq_text *t, const char *what, char **all, size_t *len, ptq_err *e);
/* *ids (malloc'ed, *n of them) = BOS + encode(text) with tok; the BOS is the
 * tokenizer's, else cfg_bos (the config's), none when both are < 0; *bos =
 * the one used (-1: none).  what names the model in messages. */
int ptq_ppl_encode(const ptq_tokenizer *tok, int cfg_bos, const char *text, size_t len,
                   const char *what, int32_t **ids, size_t *n, int *bos, ptq_err *e);
/* The first position where a [na] and b [nb] differ (na == nb == the result
 * when they are equal). */
size_t ptq_ids_first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb);

#endif
