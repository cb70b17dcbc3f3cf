/* qf_aqlm.c - the "aqlm" row of the format table (qfmt.h): AQLM additive
 * codebooks (Egiazarian et al. 2024; the encoder is lib/quant/aqlm.h).
 *
 * Payloads (ptqc-bundle(5), section AQLM), M = aq_m, B = aq_b, G = cols / 8:
 *   codes      [rows][G][M]  uint8 when B <= 8, else uint16 (little-endian)
 *   codebooks  fp16 [M][2^B][8]
 *   scales     fp16 [rows]
 * decode: W[r][8g+i] = scale[r] * (sum_m codebook[m][code[r][g][m]][i]), the
 * sum in float32 over m ascending from 0, then one multiply: the arithmetic
 * of lib/qfmt/aqlm_decode.h, which the CUDA kernels share.
 *
 * gemv (the fused batch-1 product), B <= 8: the lookup table
 *     L[g][m][k] = sum_i x[8g+i] * codebook[m][k][i]   (float, i ascending)
 * over the workers by groups, then per row (rows over the workers, each row
 * by one worker)
 *     y[r] = scale[r] * sum_g sum_m L[g][m][code[r][g][m]]   (g, m ascending).
 * B > 8 (1x16: the table would be G 2^16 floats): per row, per group, the
 * dot of x's 8 inputs with the sum of the group's codewords, same order.
 * The same bits for any thread count.  Against decode-then-multiply (the
 * runtime's y = sum_k W[r][k] x[k] in float) only the association differs:
 * both are sums of the cols * M products s v x with at most cols + M + 2
 * roundings on any path, so with u = 2^-24
 *     |gemv - ref| <= 2 (cols + M + 2) u |s[r]| sum_k (sum_m |v_m,k|) |x_k|
 * (tests/check_aqlm.c checks it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/qfmt/aqlm_decode.h"
#include "lib/qfmt/qfmt.h"

#define D 8

static int wide(const ptq_qtensor *q) { return q->aq_b > 8; }

uint64_t ptq_qf_aqlm_bytes(const ptq_qtensor *q, int i)
{
    uint64_t r = (uint64_t)q->rows, g = (uint64_t)q->cols / D, m = (uint64_t)q->aq_m;
    if (q->aq_m < 1 || q->aq_b < 1 || q->aq_b > 16) return 0;
    switch (i) {
    case 0: return r * g * m * (wide(q) ? 2 : 1);
    case 1: return m * ((uint64_t)1 << q->aq_b) * D * 2;
    default: return r * 2;
    }
}

static unsigned code_at(const ptq_qtensor *q, size_t i)
{
    return wide(q) ? ((const uint16_t *)q->aq_codes)[i] : ((const uint8_t *)q->aq_codes)[i];
}

static int fields_ok(const ptq_qtensor *q, const char *what, ptq_err *e)
{
    if (q->aq_m < 1 || q->aq_m > 8 || q->aq_b < 1 || q->aq_b > 16)
        return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM codebooks %dx%d: M must be 1..8 and B 1..16",
                        what, q->aq_m, q->aq_b);
    if (q->cols % D)
        return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM tensor of %d columns (not a multiple of 8)",
                        what, q->cols);
    if (!q->aq_codes || !q->aq_codebooks || !q->aq_scales)
        return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM tensor without codes, codebooks or scales",
                        what);
    return PTQ_OK;
}

int ptq_qf_aqlm_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    int rc = fields_ok(q, what, e);
    if (rc) return rc;
    size_t nb = (size_t)q->aq_m << q->aq_b;
    for (size_t i = 0; i < nb * D; i++)
        if (!isfinite(ptq_f16_to_f32(q->aq_codebooks[i])))
            return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM codebook %zu word %zu is not finite", what,
                            i / D >> q->aq_b, (i / D) & (((size_t)1 << q->aq_b) - 1));
    size_t per = (size_t)(q->cols / D) * q->aq_m;
    unsigned K = 1u << q->aq_b;
    for (int r = row0; r < row0 + n; r++) {
        if (!isfinite(ptq_f16_to_f32(q->aq_scales[r])))
            return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM scale of row %d is not finite", what, r);
        for (size_t i = 0; K < 65536 && i < per; i++)
            if (code_at(q, (size_t)r * per + i) >= K)
                return ptq_fail(e, PTQ_EFORMAT, "%s: AQLM code %u in row %d is outside 0..%u",
                                what, code_at(q, (size_t)r * per + i), r, K - 1);
    }
    return PTQ_OK;
}

/* the codebooks in float32 [M][K][8], or NULL */
static float *widen_codebooks(const ptq_qtensor *q)
{
    size_t nb = ((size_t)q->aq_m << q->aq_b) * D;
    float *cb = malloc(nb * sizeof *cb);
    for (size_t i = 0; cb && i < nb; i++) cb[i] = ptq_f16_to_f32(q->aq_codebooks[i]);
    return cb;
}

void ptq_qf_aqlm_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    int M = q->aq_m, G = q->cols / D;
    float *cb = widen_codebooks(q);
    if (!cb) { /* the void hook cannot report: NaN rows, which the runtimes reject */
        for (size_t i = 0; i < (size_t)n * q->cols; i++) w[i] = NAN;
        return;
    }
    for (int r = row0; r < row0 + n; r++) { /* the arithmetic shared with CUDA (aqlm_decode.h) */
        float s = ptq_aq_widen(q->aq_scales[r]), y[D];
        float *out = w + (size_t)(r - row0) * q->cols;
        for (int g = 0; g < G; g++) {
            ptq_aq_group_sum_f32(cb, q->aq_b, M, q->aq_codes, ((size_t)r * G + g) * M, y);
            ptq_aq_scale(s, y, out + (size_t)g * D);
        }
    }
    free(cb);
}

/* ------------------------------------------------------------------ gemv */

typedef struct gjob {
    const ptq_qtensor *q;
    const float *x, *cb;
    float *lut, *y;
    int lo, hi; /* groups (the table) or rows */
} gjob;

static void lut_groups(void *p)
{
    gjob *j = p;
    int M = j->q->aq_m, K = 1 << j->q->aq_b;
    for (int g = j->lo; g < j->hi; g++)
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                const float *v = j->cb + ((size_t)m * K + k) * D, *x = j->x + (size_t)g * D;
                float t = 0;
                for (int i = 0; i < D; i++) t += x[i] * v[i];
                j->lut[((size_t)g * M + m) * K + k] = t;
            }
}

static void lut_rows(void *p)
{
    gjob *j = p;
    const ptq_qtensor *q = j->q;
    int M = q->aq_m, G = q->cols / D;
    size_t K = (size_t)1 << q->aq_b, per = (size_t)G * M;
    for (int r = j->lo; r < j->hi; r++) {
        const uint8_t *c = (const uint8_t *)q->aq_codes + (size_t)r * per;
        float acc = 0;
        for (int g = 0; g < G; g++)
            for (int m = 0; m < M; m++) acc += j->lut[((size_t)g * M + m) * K + c[g * M + m]];
        j->y[r] = ptq_f16_to_f32(q->aq_scales[r]) * acc;
    }
}

/* B > 8: no table; the same order of sums over g, m per row */
static void wide_rows(void *p)
{
    gjob *j = p;
    const ptq_qtensor *q = j->q;
    int M = q->aq_m, G = q->cols / D;
    size_t K = (size_t)1 << q->aq_b, per = (size_t)G * M;
    for (int r = j->lo; r < j->hi; r++) {
        const uint16_t *c = (const uint16_t *)q->aq_codes + (size_t)r * per;
        float acc = 0;
        for (int g = 0; g < G; g++) {
            const float *x = j->x + (size_t)g * D;
            for (int m = 0; m < M; m++) {
                const float *v = j->cb + ((size_t)m * K + c[g * M + m]) * D;
                float t = 0;
                for (int i = 0; i < D; i++) t += x[i] * v[i];
                acc += t;
            }
        }
        j->y[r] = ptq_f16_to_f32(q->aq_scales[r]) * acc;
    }
}

static void split(gjob *jobs, int nw, gjob base, int n)
{
    for (int w = 0; w < nw; w++) {
        jobs[w] = base;
        jobs[w].lo = (int)((long)n * w / nw);
        jobs[w].hi = (int)((long)n * (w + 1) / nw);
    }
}

int ptq_qf_aqlm_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = fields_ok(q, "AQLM gemv", e);
    if (rc) return rc;
    int G = q->cols / D, nw = threads < 1 ? 1 : threads > PTQ_PAR_MAX ? PTQ_PAR_MAX : threads;
    if (nw > q->rows) nw = q->rows;
    float *cb = widen_codebooks(q), *lut = NULL;
    if (cb && !wide(q)) lut = malloc(((size_t)G * q->aq_m << q->aq_b) * sizeof *lut);
    if (!cb || (!wide(q) && !lut)) {
        free(cb);
        return ptq_fail(e, PTQ_ENOMEM, "AQLM gemv: out of memory for the lookup table");
    }
    gjob jobs[PTQ_PAR_MAX], base = {q, x, cb, lut, y, 0, 0};
    if (!wide(q)) {
        int ng = nw < G ? nw : G;
        split(jobs, ng, base, G);
        ptq_par_run(ng, lut_groups, jobs, sizeof *jobs);
    }
    split(jobs, nw, base, q->rows);
    ptq_par_run(nw, wide(q) ? wide_rows : lut_rows, jobs, sizeof *jobs);
    free(cb);
    free(lut);
    return PTQ_OK;
}
