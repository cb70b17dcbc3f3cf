/* fuzz_gguf.c - libFuzzer target: a GGUF header, metadata and tensor infos;
 * when they validate, also the config and tokenizer built from the metadata
 * and the decode of every (small) tensor. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "formats/gguf_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptq_gguf g;
    ptq_err e = {0};
    if (ptq_gguf_parse(&g, data, size, "fuzz.gguf", &e) != PTQ_OK) {
        if (e.msg[0] == 0) __builtin_trap();
        ptq_gguf_close(&g);
        return 0;
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const ptq_gguf_tensor *t = &g.tensors[i];
        if (t->data < g.base || t->data + t->nbytes > g.base + g.size) __builtin_trap();
        if (t->numel > (1u << 20)) continue;
        float *out = malloc(t->numel * sizeof *out);
        if (out) ptq_gguf_read_f32(t, 0, t->numel, out);
        free(out);
    }
    char *json = NULL;
    e.msg[0] = 0;
    if (ptq_gguf_config_json(&g, &json, &e) != PTQ_OK && e.msg[0] == 0) __builtin_trap();
    free(json);
    ptq_tokenizer *tok = NULL;
    e.msg[0] = 0;
    if (ptq_gguf_tokenizer(&g, &tok, &e) != PTQ_OK && e.msg[0] == 0) __builtin_trap();
    if (tok) ptq_tok_free(tok);
    ptq_gguf_close(&g);
    return 0;
}
