/* fuzz_tokenizer.c - libFuzzer target: tokenizer.json (formats/tokenizer.c),
 * then encode and decode a short text with whatever loaded (formats/bpe.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TEXT[] = "Hello  world<s></s> it's 12345\n\n\t caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 "
                           "\xf0\x9f\x98\x80<|endoftext|>ab \xe2\x96\x81x  ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    if (ptq_tok_load_mem(&t, (const char *)data, size, NULL, 0, "fuzz/tokenizer.json", &e) != PTQ_OK) {
        if (e.msg[0] == 0 || t != NULL) __builtin_trap();
        return 0;
    }
    int V = ptq_tok_vocab_size(t);
    for (int bos = 0; bos < 2; bos++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (bos && ptq_tok_bos(t) < 0) break;
        if (ptq_tok_encode(t, TEXT, sizeof TEXT - 1, bos, &ids, &n, &e) != PTQ_OK) {
            if (e.msg[0] == 0) __builtin_trap();
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V || !ptq_tok_piece(t, ids[i])) __builtin_trap();
        char *out = NULL;
        size_t len = 0;
        if (ptq_tok_decode(t, ids, n, &out, &len, &e) != PTQ_OK || strlen(out) > len) __builtin_trap();
        free(out);
        free(ids);
    }
    ptq_tok_free(t);
    return 0;
}
