/* qf_int_had.c - the "int-had" row of the format table (qfmt.h): the
 * integer codes of qf_int.c (pack.h: codes, fp16 group scales, uint8 zeros,
 * optional g_idx) for Hadamard-rotated weights W' = U W V^T, with the sign
 * vectors of the two randomized transforms (lib/qfmt/had.h).  This is
 * `ptqc compile --rotate hadamard` (lib/compile/rotate.c): QuIP's
 * incoherence processing (Chee et al. 2023) with QuIP#'s randomized
 * Hadamard transforms (Tseng et al. 2024), rounded by rtn or gptq onto the
 * scalar grid.
 *
 * Payloads (ptqc-bundle(5), section int-had): those of int, then
 *   su  int8 [cols]  +1/-1   V = Q_cols diag(su)
 *   sv  int8 [rows]  +1/-1   U = Q_rows diag(sv)
 * The entry fields are int's (bits, group, sym, act_order); the groups and
 * g_idx are over the columns of W'.  The linear's weights are W = U^T W' V;
 * the plans Q come from ptq_had_plan of the sizes alone.
 *
 * decode() returns rows of W (the original basis), so everything that widens
 * a tensor works unchanged; it needs the whole W' even for a few rows (U^T
 * mixes rows) and scratch memory: when malloc fails it fills its rows with
 * NaN (the void hook cannot report), which the runtimes' finite checks see.
 *
 * gemv() computes y = U^T (W' (V x)) without widening: t = V x
 * (ptq_had_fwd), z = W' t by the int format's fused product (gemv_int.h, on
 * the workers, the same bits for any count), y = U^T z (ptq_had_inv).  With
 * u = 2^-24, a_n = log2(P_n) + K_n + 2 for the plan of length n (had.h) and
 * A[r][k] = |s_g| (|q_rk| + |z_g|) the magnitudes of gemv_int.h's bound
 * (||W||_F <= ||A||_F), to first order in u
 *     ||gemv - decode . x||_2 <= 2 (a_rows + a_cols + cols + 4) u ||A||_F ||x||_2
 * (the transforms on each side, the two products' sums: qf_e8p.c's
 * argument with gemv_int.h's summation bound; tests/check_rotate.c checks
 * it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/qfmt/gemv_int.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/qfmt.h"

/* q seen as the int tensor of W' (the same arrays, format int). */
static ptq_qtensor as_int(const ptq_qtensor *q)
{
    ptq_qtensor t = *q;
    t.format = PTQ_QF_INT;
    t.e8_su = t.e8_sv = NULL;
    return t;
}

uint64_t ptq_qf_int_had_bytes(const ptq_qtensor *q, int i)
{
    if (i < 4) return ptq_qf_int_bytes(q, i);
    return i == 4 ? (uint64_t)q->cols : (uint64_t)q->rows;
}

static int bad_sign(const int8_t *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] != 1 && s[i] != -1) return i;
    return -1;
}

/* int's checks of W', the signs, and that both sizes have a plan. */
int ptq_qf_int_had_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    ptq_qtensor t = as_int(q);
    int rc = ptq_qf_int_check(&t, what, row0, n, e);
    if (rc) return rc;
    if (!q->e8_su || !q->e8_sv)
        return ptq_fail(e, PTQ_EFORMAT, "%s: int-had tensor without its sign vectors su, sv",
                        what);
    int bad = bad_sign(q->e8_su, q->cols);
    if (bad >= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: input sign su[%d] is %d, not +1 or -1", what, bad,
                        q->e8_su[bad]);
    if ((bad = bad_sign(q->e8_sv, q->rows)) >= 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: output sign sv[%d] is %d, not +1 or -1", what, bad,
                        q->e8_sv[bad]);
    ptq_had h;
    if (!(rc = ptq_had_plan(&h, q->rows, e))) {
        ptq_had_free(&h);
        if (!(rc = ptq_had_plan(&h, q->cols, e))) ptq_had_free(&h);
    }
    return rc ? ptq_fail_prefix(e, "%s", what) : PTQ_OK;
}

/* W = U^T W' V into the full w [rows][cols]; -1 when out of memory.  The
 * column pass runs on the transpose (the same arithmetic per column). */
static int decode_all(const ptq_qtensor *q, float *w)
{
    int m = q->rows, n = q->cols, big = m > n ? m : n;
    ptq_had hm, hn;
    ptq_err e;
    memset(&hm, 0, sizeof hm);
    memset(&hn, 0, sizeof hn);
    float *tmp = malloc(sizeof *tmp * (size_t)big), *T = malloc(sizeof *T * (size_t)m * n);
    int rc = !tmp || !T || ptq_had_plan(&hm, m, &e) || ptq_had_plan(&hn, n, &e) ? -1 : 0;
    if (!rc) {
        ptq_qtensor t = as_int(q);
        ptq_qf_int_decode(&t, 0, m, w);
        ptq_had_inv(&hn, q->e8_su, w, m, tmp); /* each row: w'_r <- V^T w'_r */
        ptq_had_transpose(w, m, n, T);
        ptq_had_inv(&hm, q->e8_sv, T, n, tmp); /* each column: U^T */
        ptq_had_transpose(T, n, m, w);
    }
    ptq_had_free(&hm);
    ptq_had_free(&hn);
    free(tmp);
    free(T);
    return rc;
}

void ptq_qf_int_had_decode(const ptq_qtensor *q, int row0, int n, float *w)
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

int ptq_qf_int_had_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "int-had gemv", e);
    if (rc) return rc;
    int m = q->rows, n = q->cols, big = m > n ? m : n;
    ptq_had hm, hn;
    memset(&hm, 0, sizeof hm);
    memset(&hn, 0, sizeof hn);
    float *t = malloc(sizeof *t * ((size_t)n + (size_t)big));
    if (!t) return ptq_fail(e, PTQ_ENOMEM, "out of memory for an int-had product");
    float *tmp = t + n;
    if (!(rc = ptq_had_plan(&hm, m, e)) && !(rc = ptq_had_plan(&hn, n, e))) {
        memcpy(t, x, sizeof *t * (size_t)n);
        ptq_had_fwd(&hn, q->e8_su, t, 1, tmp);
        ptq_qtensor qi = as_int(q);
        rc = ptq_gemv_int(&qi, t, y, threads, e);
        if (!rc) ptq_had_inv(&hm, q->e8_sv, y, 1, tmp);
    }
    ptq_had_free(&hm);
    ptq_had_free(&hn);
    free(t);
    return rc;
}
