/* qf_dense.c - the "dense" row of the format table (qfmt.h): a tensor kept
 * unquantized in its source dtype F16, BF16 or F32 (embeddings, norms,
 * --skip'ped linears), little-endian [rows][cols]. */
#include <string.h>

#include "lib/base/dtype.h"
#include "lib/base/half.h"
#include "lib/qfmt/qfmt.h"

uint64_t ptq_qf_dense_bytes(const ptq_qtensor *q, int i)
{
    (void)i; /* one payload: data */
    return (uint64_t)q->rows * (uint64_t)q->cols * ptq_dtype_size((ptq_dtype)q->dtype);
}

int ptq_qf_dense_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    (void)row0, (void)n;
    if (q->dtype != PTQ_DT_F16 && q->dtype != PTQ_DT_BF16 && q->dtype != PTQ_DT_F32)
        return ptq_fail(e, PTQ_EFORMAT, "%s: dense dtype %s is not F16, BF16 or F32", what,
                        ptq_dtype_name((ptq_dtype)q->dtype));
    if (!q->data) return ptq_fail(e, PTQ_EFORMAT, "%s: dense tensor without data", what);
    return PTQ_OK;
}

void ptq_qf_dense_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    size_t first = (size_t)row0 * (size_t)q->cols, count = (size_t)n * (size_t)q->cols;
    if (q->dtype == PTQ_DT_F32) {
        memcpy(w, (const float *)q->data + first, count * sizeof(float));
    } else if (q->dtype == PTQ_DT_F16) {
        const uint16_t *s = (const uint16_t *)q->data + first;
        for (size_t i = 0; i < count; i++) w[i] = ptq_f16_to_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)q->data + first;
        for (size_t i = 0; i < count; i++) w[i] = ptq_bf16_to_f32(s[i]);
    }
}
