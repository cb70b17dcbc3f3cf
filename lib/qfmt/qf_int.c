/* qf_int.c - the "int" row of the format table (qfmt.h): uniform integer
 * codes of 2..8 bits in blocks of 32 columns with per-group fp16 scales and
 * uint8 zero points (ceil(cols / group) groups a row, the last one shorter
 * when the group does not divide cols); the layout and its decode arithmetic are in pack.h
 * (shared with the CUDA kernels).  Its encoders are the methods' rounders
 * (lib/quant: rtn.c is the reference), which write codes with ptq_pack_set. */
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"

uint64_t ptq_qf_int_bytes(const ptq_qtensor *q, int i)
{
    uint64_t r = (uint64_t)q->rows, c = (uint64_t)q->cols;
    uint64_t ng = q->group > 0 ? (uint64_t)ptq_pack_ngroups(q->cols, q->group) : 1;
    switch (i) { /* the payloads in the order of the row */
    case 0: return r * (uint64_t)ptq_pack_row_words(q->cols, q->bits) * 4; /* qweight */
    case 1: return r * ng * 2;                                             /* scales */
    case 2: return r * ng;                                                 /* zeros */
    default: return c * 4;                                                 /* g_idx */
    }
}

int ptq_qf_int_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    if (q->bits < 2 || q->bits > 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: bits %d outside 2..8", what, q->bits);
    if (q->group < 0 || q->group > PTQ_PACK_MAX_GROUP)
        return ptq_fail(e, PTQ_EFORMAT, "%s: group %d outside 0..%d", what, q->group,
                        PTQ_PACK_MAX_GROUP);
    int ng = ptq_pack_ngroups(q->cols, q->group); /* the last group may be shorter */
    if (q->ngroups != ng)
        return ptq_fail(e, PTQ_EFORMAT, "%s: ngroups %d, expected %d", what, q->ngroups, ng);
    if (!q->qweight || !q->scales || !q->zeros)
        return ptq_fail(e, PTQ_EFORMAT, "%s: int tensor without qweight, scales or zeros", what);
    unsigned maxq = (1u << q->bits) - 1u;
    for (size_t i = (size_t)row0 * (size_t)ng; i < (size_t)(row0 + n) * (size_t)ng; i++)
        if (q->zeros[i] > maxq)
            return ptq_fail(e, PTQ_EFORMAT, "%s: zero point %u of group %zu exceeds %u", what,
                            q->zeros[i], i, maxq);
    if (q->g_idx)
        for (int k = 0; k < q->cols; k++)
            if (q->g_idx[k] < 0 || q->g_idx[k] >= ng)
                return ptq_fail(e, PTQ_EFORMAT, "%s: g_idx[%d] = %d outside 0..%d", what, k,
                                (int)q->g_idx[k], ng - 1);
    return PTQ_OK;
}

void ptq_qf_int_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    size_t cols = (size_t)q->cols;
    int ng = q->ngroups, words = ptq_pack_row_words(q->cols, q->bits);
    for (int r = row0; r < row0 + n; r++) {
        const uint32_t *row = q->qweight + (size_t)r * (size_t)words;
        const uint16_t *sc = q->scales + (size_t)r * (size_t)ng;
        const uint8_t *zr = q->zeros + (size_t)r * (size_t)ng;
        float *out = w + (size_t)(r - row0) * cols;
        for (int k = 0; k < q->cols; k++) {
            int g = q->g_idx ? q->g_idx[k] : (q->group ? k / q->group : 0);
            out[k] = ptq_dequant(sc[g], zr[g], ptq_pack_get(row, k, q->bits));
        }
    }
}
