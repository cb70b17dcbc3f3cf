/* quantize.c - one linear: rounded by its method's rounder (AWQ's clips
 * applied first), its report entry with the relative output errors
 * (lib/quant/err_metric.h), the dequantized weights left in place for the
 * later passes of the layer (lib/compile/engine.h).
 *
 * The relative output error of a linear on the calibration data,
 * ||W X - Wq X||^2 / ||W X||^2, equals tr(dW H dW^T) / tr(W H W^T) with the
 * undamped H, so it is computed from H.  The weight-only methods also report
 * the round-to-nearest error (err_rtn) as a baseline; the 8-bit methods
 * report the weight part of their error.
 *
 * Without calibration (s->nocal) there is no H: the errors are weight-space
 * errors ||W - Wq||_F^2 / ||W||_F^2, what err_metric gives with H = I,
 * summed here directly in double (no product with an identity matrix).
 */
#include <string.h>

#include "lib/base/clock.h"
#include "lib/compile/engine.h"
#include "lib/quant/err_metric.h"

/* Round W with rounder rd into out and its dequantized weights into s->wq. */
static int round_to(cstate *s, int rd, const float *W, int rows, int cols, const ptq_gptq_opts *q,
                    int format, float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    double t0 = ptq_now();
    int rc = q->rotate ? rotate_round(s, rd, W, rows, cols, q, format, act, out, rep, e)
                       : ptq_rounders[rd].round(s, W, rows, cols, q, format, act, out, rep, e);
    if (!rc) rc = ptq_qtensor_dequant(out, s->wq, e);
    if (rc) ptq_qtensor_free(out);
    s->t[T_QUANT] += cs_elapsed(t0);
    return rc;
}

/* sum (A - B)^2 (B NULL: sum A^2): tr(dW I dW^T) */
static double sq_err(const float *A, const float *B, size_t n)
{
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)A[i] - (B ? (double)B[i] : 0.0);
        t += d * d;
    }
    return t;
}

/* tr(W H W^T), the denominator of the relative errors */
static double err_den(cstate *s, const float *W, int rows, int cols)
{
    double t0 = ptq_now();
    double d = s->nocal ? sq_err(W, NULL, (size_t)rows * cols)
                        : ptq_quad_err(W, NULL, rows, cols, s->H, s->errbuf, NULL);
    s->t[T_ERROR] += cs_elapsed(t0);
    return d;
}

/* the relative error of s->wq against W */
static double err_of(cstate *s, const float *W, int rows, int cols, double den)
{
    double t0 = ptq_now();
    double err = !s->nocal ? ptq_rel_err(W, s->wq, rows, cols, s->H, den, s->errbuf)
                 : den > 0 ? sq_err(W, s->wq, (size_t)rows * cols) / den : 0;
    s->t[T_ERROR] += cs_elapsed(t0);
    return err;
}

/* 8-bit formats with --act-scales static: max |x| over the calibration
 * tokens of the (smoothed) input / 127 (E4M3: / 448), from s->amax. */
static float static_act(const cstate *s, int cols, int format)
{
    float act = 0;
    for (int j = 0; j < cols; j++) act = s->amax[j] > act ? s->amax[j] : act;
    return act > 0 ? act / (format == PTQ_QF_FP8 ? 448.0f : 127.0f) : 1.0f;
}

/* The report entries of a GPTQ-rounded linear. */
static void gptq_entry(cstate *s, int l, int which, int a8, const ptq_gptq_report *rep,
                       double err, cJSON *entry)
{
    if (a8) {
        cJSON_AddNumberToObject(entry, "damp_used", rep->damp_used);
        cJSON_AddNumberToObject(entry, "err", err);
        return;
    }
    cJSON_AddNumberToObject(entry, "err_gptq", err);
    cJSON_AddNumberToObject(entry, "err", err);
    cJSON_AddNumberToObject(entry, "damp_used", rep->damp_used);
    cJSON_AddNumberToObject(entry, "damp_raises", rep->damp_raises);
    cJSON_AddNumberToObject(entry, "dead_columns", rep->dead_columns);
    if (rep->damp_raises) {
        char nm[256];
        weight_name(nm, sizeof nm, l, which, "weight");
        cs_warn(s, "%s: Cholesky of the damped Hessian failed at --damp %g; it worked after %d "
                   "raise(s) at %g", nm, (double)s->q.damp, rep->damp_raises, (double)rep->damp_used);
    }
}

/* Quantize linear `which` of layer l in place: lw->w[which] becomes the
 * dequantized weights; *out the quantized tensor; entry the report. */
int quantize_linear(cstate *s, int l, int which, ptq_layer_w *lw, ptq_qtensor *out,
                    cJSON *entry, ptq_err *e)
{
    const lin_plan *pl = plan_of(s, l, which);
    s->cur_layer = l, s->cur_linear = which;
    const int fmt = pl->m->format, a8 = ptq_method_a8(pl->m);
    int rows, cols, rc;
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    float *W = lw->w[which];
    size_t n = (size_t)rows * cols;
    float act = 0;
    if (a8 && s->o->act_static) {
        act = static_act(s, cols, fmt);
        cJSON_AddNumberToObject(entry, "act_scale", act);
    }
    /* AWQ: what is rounded is W clamped to the searched clips; the errors are
     * measured against W itself.  awq+gptq linears whose group kept the AWQ
     * result round as awq does. */
    const float *Wr = W;
    if (s->awq.clip[which]) {
        memcpy(s->wclip, W, n * sizeof *W);
        ptq_awq_clip_apply(s->wclip, rows, cols, pl->q.group, s->awq.clip[which]);
        Wr = s->wclip;
    }
    int rd = s->awq.rtn[which] ? PTQ_RD_RTN : pl->m->rounder;
    double den = -1;
    if (fmt == PTQ_QF_INT) { /* the round-to-nearest baseline */
        ptq_qtensor qr;
        memset(&qr, 0, sizeof qr);
        if ((rc = round_to(s, PTQ_RD_RTN, W, rows, cols, &pl->q, fmt, 0, &qr, NULL, e))) return rc;
        den = err_den(s, W, rows, cols);
        double err_rtn = err_of(s, W, rows, cols, den);
        cJSON_AddNumberToObject(entry, "err_rtn", err_rtn);
        if (rd == PTQ_RD_RTN && Wr == W) {
            cJSON_AddNumberToObject(entry, "err", err_rtn);
            *out = qr;
            memcpy(W, s->wq, n * sizeof *W);
            return PTQ_OK;
        }
        ptq_qtensor_free(&qr);
    }
    ptq_gptq_report rep;
    memset(&rep, 0, sizeof rep);
    if ((rc = round_to(s, rd, Wr, rows, cols, &pl->q, fmt, act, out, &rep, e))) return rc;
    if (den < 0) den = err_den(s, W, rows, cols);
    double err = err_of(s, W, rows, cols, den);
    if (rd == PTQ_RD_GPTQ) gptq_entry(s, l, which, a8, &rep, err, entry);
    else cJSON_AddNumberToObject(entry, "err", err);
    memcpy(W, s->wq, n * sizeof *W);
    if (a8) lw->aq[which] = out; /* later passes of this layer run the 8-bit product */
    return PTQ_OK;
}
