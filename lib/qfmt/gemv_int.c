/* gemv_int.c - the packed-integer GEMV of one activation row (gemv_int.h). */
#include "lib/qfmt/gemv_int.h"

#include <stdlib.h>

#include "lib/base/par.h"
#include "lib/qfmt/pack.h"

#define LANES 8

typedef struct gemv_job {
    const ptq_qtensor *q;
    const float *x, *xsum; /* xsum [ngroups]: sum of x over each group */
    float *y;
    float *codes;          /* [kblocks * 32 + ngroups] scratch of this worker */
    int r0, r1;
} gemv_job;

/* The codes of one packed row as floats, codes [kblocks * 32]. */
static void row_codes(const uint32_t *row, int cols, int bits, float *codes)
{
    int nb = ptq_pack_kblocks(cols);
    if (bits == 4) {
        for (int b = 0; b < nb; b++)
            for (int w = 0; w < 4; w++) {
                uint32_t v = row[b * 4 + w];
                float *o = codes + b * 32 + w * 8;
                for (int j = 0; j < 8; j++) o[j] = (float)((v >> (4 * j)) & 15u);
            }
        return;
    }
    if (bits == 8) {
        for (int b = 0; b < nb * 8; b++) {
            uint32_t v = row[b];
            for (int j = 0; j < 4; j++) codes[b * 4 + j] = (float)((v >> (8 * j)) & 255u);
        }
        return;
    }
    uint32_t qb[PTQ_PACK_BLOCK];
    for (int b = 0; b < nb; b++) {
        ptq_pack_block_codes(row + (size_t)b * bits, bits, qb);
        for (int j = 0; j < PTQ_PACK_BLOCK; j++) codes[b * 32 + j] = (float)qb[j];
    }
}

/* sum_k a[k] b[k] over n in LANES float lanes, added pairwise at the end. */
static float dot(const float *a, const float *b, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[k + j] * b[k + j];
    for (int j = 0; k < n; k++, j++) acc[j] += a[k] * b[k];
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
    return acc[0];
}

static void gemv_rows(void *arg)
{
    gemv_job *j = arg;
    const ptq_qtensor *q = j->q;
    int cols = q->cols, G = q->group, ng = q->ngroups;
    size_t rw = (size_t)ptq_pack_row_words(cols, q->bits);
    for (int r = j->r0; r < j->r1; r++) {
        const uint16_t *sc = q->scales + (size_t)r * ng;
        const uint8_t *zr = q->zeros + (size_t)r * ng;
        row_codes(q->qweight + (size_t)r * rw, cols, q->bits, j->codes);
        float y = 0.0f;
        if (q->g_idx) { /* the reference's order: (s * (q - z)) * x, k ascending */
            float *sf = j->codes + (size_t)ptq_pack_kblocks(cols) * PTQ_PACK_BLOCK;
            for (int g = 0; g < ng; g++) sf[g] = ptq_f16_to_f32(sc[g]);
            for (int k = 0; k < cols; k++) {
                int g = q->g_idx[k];
                y += sf[g] * (j->codes[k] - (float)zr[g]) * j->x[k];
            }
        } else {
            for (int g = 0; g < ng; g++) {
                int k0 = G ? g * G : 0, n = ptq_pack_group_len(cols, G, g);
                float s = dot(j->codes + k0, j->x + k0, n) - (float)zr[g] * j->xsum[g];
                y += ptq_f16_to_f32(sc[g]) * s;
            }
        }
        j->y[r] = y;
    }
}

int ptq_gemv_int(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "packed GEMV", e);
    if (rc) return rc;
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EINTERNAL, "packed GEMV of a tensor of format %d", q->format);
    if (threads < 1) threads = 1;
    if (threads > q->rows) threads = q->rows > 0 ? q->rows : 1;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    size_t nc = (size_t)ptq_pack_kblocks(q->cols) * PTQ_PACK_BLOCK + (size_t)q->ngroups;
    float *buf = malloc(sizeof(float) * ((size_t)q->ngroups + nc * (size_t)threads));
    if (!buf) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a packed GEMV");
    float *xsum = buf;
    for (int g = 0; g < q->ngroups; g++) {
        int k0 = q->group ? g * q->group : 0, n = ptq_pack_group_len(q->cols, q->group, g);
        float s = 0.0f;
        for (int k = 0; k < n; k++) s += x[k0 + k];
        xsum[g] = s;
    }
    gemv_job jobs[PTQ_PAR_MAX];
    for (int t = 0; t < threads; t++)
        jobs[t] = (gemv_job){q, x, xsum, y, buf + q->ngroups + nc * (size_t)t,
                             (int)((long)q->rows * t / threads),
                             (int)((long)q->rows * (t + 1) / threads)};
    if (threads == 1) gemv_rows(&jobs[0]);
    else ptq_par_run(threads, gemv_rows, jobs, sizeof jobs[0]);
    free(buf);
    return PTQ_OK;
}

int ptq_gemv_int_ref(const ptq_qtensor *q, const float *x, float *y, ptq_err *e)
{
    float *w = malloc(sizeof(float) * (q->cols > 0 ? (size_t)q->cols : 1));
    if (!w) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a reference GEMV");
    int rc = PTQ_OK;
    for (int r = 0; r < q->rows && !rc; r++) {
        if ((rc = ptq_qtensor_dequant_rows(q, r, 1, w, e))) break;
        float s = 0.0f;
        for (int k = 0; k < q->cols; k++) s += w[k] * x[k];
        y[r] = s;
    }
    free(w);
    return rc;
}
