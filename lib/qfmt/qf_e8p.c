/* qf_e8p.c - the "e8p" row of the format table (qfmt.h): QuIP# weights
 * (Tseng et al. 2024) as E8P lattice codes (lib/qfmt/e8p.h) in the
 * incoherent basis, with the sign vectors of the randomized Hadamard
 * transforms (lib/qfmt/had.h).
 *
 * Payloads (ptqc-bundle(5), section E8P):
 *   codes  stage after stage, each [rows][cols / 8], code j of row r
 *          covering the columns 8j .. 8j+7 of W':
 *            2 bits: uint16 E8P                        (1 stage)
 *            3 bits: uint16 E8P, then uint8 E81B       (2 stages; 3 bytes
 *                    per 8 weights: the uint8 stage starts right after the
 *                    rows * cols / 8 uint16 codes)
 *            4 bits: uint16 E8P, then uint16 E8P       (2 stages)
 *   scales float32 [stages]                 one scale per stage
 *   su     int8 [cols]  +1/-1               V = Q_cols diag(su)
 *   sv     int8 [rows]  +1/-1               U = Q_rows diag(sv)
 * E8P = ptq_e8p_decode(ptq_e8p_tab, c) (16-bit codes, E8 + 1/4), E81B =
 * ptq_e81b_decode(ptq_e81b_tab, c) (8-bit codes, 256 points of E8, e8p.h).
 * W'[r][8j+i] = sum_s scales[s] * book_s(codes[s][r][j])[i] (stage order, in
 * float), and the linear's weights are W = U^T W' V.  The plans Q come from
 * ptq_had_plan of the sizes alone, so both runtimes rebuild them.
 *
 * decode() returns rows of W (original basis), so everything that widens a
 * tensor works unchanged; it needs the whole W' even for a few rows (U^T
 * mixes rows) and scratch memory: when malloc fails it fills its rows with
 * NaN (the void hook cannot report), which the runtimes' finite checks and
 * eval see.
 *
 * gemv() computes y = U^T (W' (V x)) without widening: t = V x (ptq_had_fwd),
 * z_r = sum_s scales[s] * (sum_j e8p(c_s,r,j) . t_j) per row on the workers
 * (each row by one worker, j ascending: the same bits for any count), then
 * y = U^T z (ptq_had_inv).  Both it and decode-then-multiply compute
 * U^T W' V x; with u = 2^-24, a_n = log2(P_n) + K_n + 2 for the plan of
 * length n (had.h: the FWHT's log2 P butterfly stages, the K-term dense
 * sums, the scale) and each step bounded in the 2-norm by its operation
 * count times u times its input's norm (Q orthogonal, ||W'||_2 <= ||W'||_F
 * = ||W||_F), to first order in u
 *     ||gemv - decode . x||_2 <= 2 (a_rows + a_cols + cols + 4) u ||W||_F ||x||_2
 * (tests/check_quip_e2e.c checks it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/par.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/qfmt.h"

static int stages_of(const ptq_qtensor *q) { return (q->bits + 1) / 2; }

/* Code at of stage s decoded into d[8] (at = r * cols / 8 + j). */
static void stage_vals(const ptq_qtensor *q, int s, size_t at, float d[8])
{
    size_t stage = (size_t)q->rows * (size_t)(q->cols / 8);
    if (q->bits == 3 && s == 1)
        ptq_e81b_decode(ptq_e81b_tab, ((const uint8_t *)(q->e8_codes + stage))[at], d);
    else
        ptq_e8p_decode(ptq_e8p_tab, q->e8_codes[(size_t)s * stage + at], d);
}

uint64_t ptq_qf_e8p_bytes(const ptq_qtensor *q, int i)
{
    uint64_t r = (uint64_t)q->rows, c = (uint64_t)q->cols, st = (uint64_t)stages_of(q);
    switch (i) {
    case 0: return q->bits == 3 ? r * (c / 8) * 3 : st * r * (c / 8) * 2;
    case 1: return st * 4;
    case 2: return c;
    default: return r;
    }
}

static int signs_ok(const int8_t *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] != 1 && s[i] != -1) return i;
    return -1;
}

/* Fields, scales and signs (codes: any 16-bit value is a codeword), and
 * that both sizes have a transform plan. */
int ptq_qf_e8p_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    (void)row0, (void)n;
    if (q->bits < 2 || q->bits > 4)
        return ptq_fail(e, PTQ_EFORMAT, "%s: E8P tensor of %d bits (2, 3 or 4)", what, q->bits);
    if (q->cols % 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: E8P tensor with %d columns, not a multiple of 8",
                        what, q->cols);
    if (!q->e8_codes || !q->e8_scale || !q->e8_su || !q->e8_sv)
        return ptq_fail(e, PTQ_EFORMAT, "%s: E8P tensor without codes, scales or signs", what);
    for (int s = 0; s < stages_of(q); s++)
        if (!(isfinite(q->e8_scale[s]) && q->e8_scale[s] > 0))
            return ptq_fail(e, PTQ_EFORMAT, "%s: E8P scale of stage %d (%g) is not finite and "
                            "positive", what, s, (double)q->e8_scale[s]);
    int bad = signs_ok(q->e8_su, q->cols);
    if (bad >= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: input sign %d is %d, not +1 or -1", what, bad,
                        q->e8_su[bad]);
    if ((bad = signs_ok(q->e8_sv, q->rows)) >= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: output sign %d is %d, not +1 or -1", what, bad,
                        q->e8_sv[bad]);
    ptq_had h;
    int rc = ptq_had_plan(&h, q->rows, e);
    if (!rc) {
        ptq_had_free(&h);
        rc = ptq_had_plan(&h, q->cols, e);
        if (!rc) ptq_had_free(&h);
    }
    return rc ? ptq_fail_prefix(e, "%s", what) : PTQ_OK;
}

/* Row r of W' (the incoherent basis) into out[cols]. */
static void e8p_row(const ptq_qtensor *q, int r, float *out)
{
    size_t per = (size_t)q->cols / 8;
    for (size_t j = 0; j < per; j++) {
        float acc[8] = {0}, d[8];
        for (int s = 0; s < stages_of(q); s++) {
            stage_vals(q, s, (size_t)r * per + j, d);
            for (int i = 0; i < 8; i++) acc[i] += q->e8_scale[s] * d[i];
        }
        memcpy(out + 8 * j, acc, sizeof acc);
    }
}

void ptq_qf_e8p_rotated(const ptq_qtensor *q, float *w)
{
    for (int r = 0; r < q->rows; r++) e8p_row(q, r, w + (size_t)r * q->cols);
}

/* W = U^T W' V into the full w [rows][cols]; -1 when out of memory. */
static int decode_all(const ptq_qtensor *q, float *w)
{
    int m = q->rows, n = q->cols, big = m > n ? m : n;
    ptq_had hm, hn;
    ptq_err e;
    memset(&hm, 0, sizeof hm);
    memset(&hn, 0, sizeof hn);
    enum { CB = 64 }; /* columns a block */
    float *tmp = malloc(sizeof *tmp * (size_t)big), *T = malloc(sizeof *T * (size_t)m * CB);
    int rc = !tmp || !T || ptq_had_plan(&hm, m, &e) || ptq_had_plan(&hn, n, &e) ? -1 : 0;
    if (!rc) {
        ptq_qf_e8p_rotated(q, w);
        ptq_had_inv(&hn, q->e8_su, w, m, tmp); /* each row: w'_r <- V^T w'_r */
        for (int c0 = 0; c0 < n; c0 += CB) {   /* each column: U^T, CB at a time */
            int b = n - c0 < CB ? n - c0 : CB;
            for (int r = 0; r < m; r++)
                for (int j = 0; j < b; j++) T[(size_t)j * m + r] = w[(size_t)r * n + c0 + j];
            ptq_had_inv(&hm, q->e8_sv, T, b, tmp);
            for (int r = 0; r < m; r++)
                for (int j = 0; j < b; j++) w[(size_t)r * n + c0 + j] = T[(size_t)j * m + r];
        }
    }
    ptq_had_free(&hm);
    ptq_had_free(&hn);
    free(tmp);
    free(T);
    return rc;
}

void ptq_qf_e8p_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    size_t cols = (size_t)q->cols;
    if (row0 == 0 && n == q->rows) {
        if (decode_all(q, w)) goto fail;
        return;
    }
    float *all = malloc(sizeof *all * (size_t)q->rows * cols);
    if (!all || decode_all(q, all)) {
        free(all);
        goto fail;
    }
    memcpy(w, all + (size_t)row0 * cols, sizeof *w * (size_t)n * cols);
    free(all);
    return;
fail:
    for (size_t i = 0; i < (size_t)n * cols; i++) w[i] = NAN;
}

/* ------------------------------------------------------------------ gemv */

typedef struct e8p_gemv_job {
    const ptq_qtensor *q;
    const float *t;
    float *z;
    int r0, r1;
} e8p_gemv_job;

static void gemv_rows(void *arg)
{
    const e8p_gemv_job *j = arg;
    const ptq_qtensor *q = j->q;
    size_t per = (size_t)q->cols / 8, stage = (size_t)q->rows * per;
    for (int r = j->r0; r < j->r1; r++) {
        float z = 0;
        for (int s = 0; s < stages_of(q); s++) {
            const uint16_t *c = q->e8_codes + (size_t)s * stage + (size_t)r * per;
            const uint8_t *c1 = (const uint8_t *)(q->e8_codes + stage) + (size_t)r * per;
            int e81b = q->bits == 3 && s == 1;
            float acc[8] = {0}, d[8];
            for (size_t b = 0; b < per; b++) {
                if (e81b) ptq_e81b_decode(ptq_e81b_tab, c1[b], d);
                else ptq_e8p_decode(ptq_e8p_tab, c[b], d);
                for (int i = 0; i < 8; i++) acc[i] += d[i] * j->t[8 * b + i];
            }
            float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                        ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            z += q->e8_scale[s] * sum;
        }
        j->z[r] = z;
    }
}

int ptq_qf_e8p_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "E8P gemv", e);
    if (rc) return rc;
    int m = q->rows, n = q->cols, big = m > n ? m : n;
    ptq_had hm, hn;
    memset(&hm, 0, sizeof hm);
    memset(&hn, 0, sizeof hn);
    float *t = malloc(sizeof *t * ((size_t)n + 2 * (size_t)big));
    if (!t) return ptq_fail(e, PTQ_ENOMEM, "out of memory for an E8P product");
    float *tmp = t + n;
    if (!(rc = ptq_had_plan(&hm, m, e)) && !(rc = ptq_had_plan(&hn, n, e))) {
        memcpy(t, x, sizeof *t * (size_t)n);
        ptq_had_fwd(&hn, q->e8_su, t, 1, tmp);
        e8p_gemv_job jobs[PTQ_PAR_MAX];
        int nt = threads < 1 ? 1 : threads > PTQ_PAR_MAX ? PTQ_PAR_MAX : threads;
        if (nt > m / 64) nt = m / 64 > 0 ? m / 64 : 1; /* at least 64 rows a worker */
        for (int i = 0; i < nt; i++) {
            e8p_gemv_job jb = {q, t, y, (int)((long)m * i / nt), (int)((long)m * (i + 1) / nt)};
            jobs[i] = jb;
        }
        if (nt == 1) gemv_rows(&jobs[0]);
        else ptq_par_run(nt, gemv_rows, jobs, sizeof *jobs);
        ptq_had_inv(&hm, q->e8_sv, y, 1, tmp);
    }
    ptq_had_free(&hm);
    ptq_had_free(&hn);
    free(t);
    return rc;
}
