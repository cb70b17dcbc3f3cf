/* round.c - the rounders of the method table: round-to-nearest and GPTQ,
 * onto the integer grid (PTQ_QF_INT) or an 8-bit format (lib/qfmt/w8a8.h)
 * (lib/compile/engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/engine.h"
#include "lib/qfmt/w8a8.h"
#include "lib/quant/gptq.h"

int rtn_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
              float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    (void)s, (void)rep;
    if (format == PTQ_QF_INT) return ptq_rtn(W, rows, cols, q, out, e);
    return ptq_a8_quantize(W, rows, cols, format, act, out, e);
}

/* --act-order with a round-to-nearest method */
int rtn_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
              ptq_err *e)
{
    (void)given;
    if (m->rounder != PTQ_RD_RTN || !o->q.act_order) return PTQ_OK;
    const char *alt = NULL; /* the method with the same transform and GPTQ */
    for (int i = 0; i < ptq_nmethods && m->transform != PTQ_TF_NONE; i++)
        if (ptq_methods[i].transform == m->transform && ptq_methods[i].rounder == PTQ_RD_GPTQ &&
            ptq_methods[i].format == m->format)
            alt = ptq_methods[i].name;
    if (alt) return ptq_fail(e, PTQ_EUSAGE, "--act-order is a GPTQ option (use %s)", alt);
    return ptq_fail(e, PTQ_EUSAGE, "--act-order is a GPTQ option");
}

/* GPTQ on a copy of s->H (it is factored in place); 8-bit formats from the
 * 8-bit symmetric per-channel integer result. */
int gptq_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    memcpy(s->Hw, s->H, (size_t)cols * cols * sizeof *s->Hw);
    memset(rep, 0, sizeof *rep);
    if (format == PTQ_QF_INT) return ptq_gptq(W, s->Hw, rows, cols, q, out, rep, e);
    ptq_qtensor qg;
    memset(&qg, 0, sizeof qg);
    int rc = ptq_gptq(W, s->Hw, rows, cols, q, &qg, rep, e);
    if (!rc) rc = ptq_a8_from_int(&qg, act, out, e);
    ptq_qtensor_free(&qg);
    return rc;
}

void gptq_settings(cJSON *q, const ptq_gptq_opts *qo)
{
    cJSON_AddBoolToObject(q, "act_order", qo->act_order);
    cJSON_AddBoolToObject(q, "static_groups", qo->static_groups);
    char d[32];
    snprintf(d, sizeof d, "%g", (double)qo->damp); /* 0.01, not 0.0099999998 */
    cJSON_AddNumberToObject(q, "damp", strtod(d, NULL));
    cJSON_AddNumberToObject(q, "block", qo->block);
}
