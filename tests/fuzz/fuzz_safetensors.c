/* fuzz_safetensors.c - libFuzzer target: a safetensors file header.
 * The input is a whole file: 8-byte length, JSON header, data. */
#include <stdint.h>
#include <stddef.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptq_safetensors st = {0};
    ptq_err e = {0};
    if (ptq_st_parse_header(&st, data, size, size, 0, "fuzz.safetensors", &e) == PTQ_OK) {
        /* what the header promises must hold */
        uint64_t data_size = size - 8 - ((uint64_t)data[0] | (uint64_t)data[1] << 8 |
                                         (uint64_t)data[2] << 16 | (uint64_t)data[3] << 24 |
                                         (uint64_t)data[4] << 32 | (uint64_t)data[5] << 40 |
                                         (uint64_t)data[6] << 48 | (uint64_t)data[7] << 56);
        for (int i = 0; i < st.ntensors; i++) {
            const ptq_st_tensor *t = &st.tensors[i];
            if (t->offset + t->nbytes > data_size) __builtin_trap();
            if (ptq_st_find(&st, t->name) != t) __builtin_trap();
            if (i && !(st.tensors[i - 1].name[0] || t->name[0])) __builtin_trap();
        }
        /* a second header with the same names is refused and leaves st intact */
        int n = st.ntensors;
        if (n && ptq_st_parse_header(&st, data, size, size, 1, "again", &e) == PTQ_OK)
            __builtin_trap();
        if (st.ntensors != n) __builtin_trap();
    } else if (e.msg[0] == 0) {
        __builtin_trap(); /* every failure carries a message */
    }
    ptq_st_close(&st);
    return 0;
}
