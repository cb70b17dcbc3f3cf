/* fuzz_bundle.c - libFuzzer target: the bundle reader and verifier, and the
 * decode of every tensor a bundle that opens describes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "lib/qfmt/qtensor.h"

#include <cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *ud, const char *line)
{
    (void)ud;
    if (!line || !*line) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 512, size ? size : 1)) return 0;
    memcpy(buf, data, size);
    ptq_bundle b;
    ptq_err e = {0};
    if (ptq_bundle_open_mem(&b, buf, size, "fuzz.ptq", 0, &e) == PTQ_OK) {
        int nbad = 0;
        ptq_bundle_verify(&b, &nbad, ignore, NULL, &e);
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b.manifest, "tensors");
        for (const cJSON *t = ts ? ts->child : NULL; t; t = t->next) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
            ptq_qtensor q;
            if (!cJSON_IsString(n) || ptq_bundle_tensor(&b, n->valuestring, &q, &e)) continue;
            if ((size_t)q.rows * (size_t)q.cols > (1u << 20)) continue;
            float *w = malloc(sizeof(float) * (size_t)q.rows * (size_t)q.cols);
            if (w && ptq_qtensor_dequant(&q, w, &e) != PTQ_OK && !e.msg[0]) __builtin_trap();
            free(w);
        }
        ptq_bundle_close(&b);
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    free(buf);
    return 0;
}
