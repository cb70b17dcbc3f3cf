/* fuzz_config.c - libFuzzer target: config.json. */
#include <stdint.h>
#include <stddef.h>

#include "formats/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptq_config c;
    ptq_err e = {0};
    if (ptq_config_parse(&c, (const char *)data, size, "fuzz/config.json", &e) == PTQ_OK) {
        /* the invariants the rest of ptqc relies on */
        if (c.hidden <= 0 || c.intermediate <= 0 || c.n_layers <= 0 || c.n_heads <= 0 ||
            c.n_kv_heads <= 0 || c.head_dim <= 0 || c.vocab <= 0 || c.max_pos <= 0 ||
            c.n_heads % c.n_kv_heads || c.head_dim % 2 || !(c.rms_eps > 0) ||
            !(c.rope_theta > 0) || c.bos_id >= c.vocab || c.eos_id >= c.vocab)
            __builtin_trap();
    } else if (e.msg[0] == 0) {
        __builtin_trap();
    }
    return 0;
}
