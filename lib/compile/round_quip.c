/* round_quip.c - the QuIP# rounder of the method table (Tseng et al. 2024,
 * "QuIP#: Even Better LLM Quantization with Hadamard Incoherence and Lattice
 * Codebooks"; lib/compile/engine.h): one linear W [rows][cols] with its
 * Hessian s->H into the e8p format (lib/qfmt/qf_e8p.c).
 *
 *   1. incoherence (lib/quant/hadamard.h): W' = U W V^T, H' = V H V^T, the
 *      sign vectors seeded per linear (seed_of below);
 *   2. scale: s1 = rms(W') / 1.03 (quip-sharp's E8P opt_scale: W' / s1 has
 *      the RMS the codebook was tuned for); 4 bits add an E8P residual stage
 *      with s2 = s1 / 3.45 (quip-sharp's E8P12RVQ4B opt_resid_scale); 3 bits
 *      take s1 = rms(W') / 0.98 and a residual stage on the 1-bit E8
 *      codebook (e8p.h) with s2 = s1 / 2.04 (quip-sharp's E8P12RVQ3B);
 *   3. BlockLDLQ with blocks of 8 (lib/quant/ldlq.h) onto E8P, the residual
 *      stage rounded inside each block as quip-sharp's RVQ codebook does;
 *      damping --damp (0.01, the paper's sigma_reg), the float64 retry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/engine.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/qfmt.h"
#include "lib/quant/hadamard.h"
#include "lib/quant/ldlq.h"

#define QUIP_OPT_SCALE 1.03      /* quip-sharp E8P12 / E8P12RVQ4B opt_scale */
#define QUIP_RESID_SCALE 3.45    /* quip-sharp E8P12RVQ4B opt_resid_scale */
#define QUIP3_OPT_SCALE 0.98     /* quip-sharp E8P12RVQ3B opt_scale */
#define QUIP3_RESID_SCALE 2.04   /* quip-sharp E8P12RVQ3B opt_resid_scale */

/* The signs of linear `which` of layer l: S_rows from seed_of, S_cols from
 * seed_of + 1 (ptq_incoh_init), distinct for every linear of a run. */
static uint64_t seed_of(uint64_t seed, int l, int which)
{
    return seed * 0x9E3779B97F4A7C15ull + 2u * (uint64_t)(l * PTQ_NLINEAR + which);
}

static int bits_ok(int bits, const char *what, ptq_err *e)
{
    if (bits < 2 || bits > 4)
        return ptq_fail(e, PTQ_EUSAGE, "%s--method quip takes --bits 2, 3 or 4 (E8P, E8P with "
                        "a 1-bit E8 residual stage, or with an E8P residual stage), not %d",
                        what, bits);
    return PTQ_OK;
}

int quip_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
               ptq_err *e)
{
    if (m->rounder != PTQ_RD_QUIP) return PTQ_OK;
    if (given->group || o->q.act_order || o->q.static_groups || o->q.q.mse || o->sym_set)
        return ptq_fail(e, PTQ_EUSAGE, "--group, --act-order, --static-groups, --mse, --sym and "
                        "--asym do not apply to --method quip (E8P lattice codes, one scale "
                        "per stage)");
    return bits_ok(o->q.q.bits, "", e);
}

int quip_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e)
{
    char nm[256], what[300];
    int rows, cols;
    weight_name(nm, sizeof nm, l, which, "weight");
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    snprintf(what, sizeof what, "%s: ", nm);
    int rc = bits_ok(p->q.q.bits, what, e);
    if (rc) return rc;
    if (cols % 8)
        return ptq_fail(e, PTQ_EUSAGE, "%s: %d inputs are not a multiple of 8 (E8P codes 8 "
                        "weights at a time): keep it dense with --skip or give it another "
                        "method with --recipe", nm, cols);
    ptq_had h;
    if ((rc = ptq_had_plan(&h, rows, e)) || (ptq_had_free(&h), rc = ptq_had_plan(&h, cols, e)))
        return ptq_fail_prefix(e, "%s", nm);
    ptq_had_free(&h);
    return PTQ_OK;
}

void quip_settings(cJSON *q, const ptq_gptq_opts *qo)
{
    cJSON *j = cJSON_AddObjectToObject(q, "quip");
    int b3 = qo->q.bits == 3;
    cJSON_AddStringToObject(j, "codebook", b3 ? "E8P + E81B" : "E8P");
    cJSON_AddNumberToObject(j, "ldlq_block", 8);
    cJSON_AddNumberToObject(j, "opt_scale", b3 ? QUIP3_OPT_SCALE : QUIP_OPT_SCALE);
    cJSON_AddNumberToObject(j, "resid_scale", b3 ? QUIP3_RESID_SCALE : QUIP_RESID_SCALE);
    char d[32];
    snprintf(d, sizeof d, "%g", (double)qo->damp);
    cJSON_AddNumberToObject(j, "damp", strtod(d, NULL));
    cJSON_AddStringToObject(j, "signs", "seed * 0x9E3779B97F4A7C15 + 2 (7 layer + linear)");
}

static double rms(const float *W, size_t n)
{
    double t = 0;
    for (size_t i = 0; i < n; i++) t += (double)W[i] * W[i];
    return sqrt(t / (double)n);
}

/* The e8p tensor out from the rounder's codes and the transforms' signs
 * (moved, not copied). */
static int fill_out(ptq_ldlq_e8p *r, ptq_incoh *c, ptq_qtensor *out, ptq_err *e)
{
    memset(out, 0, sizeof *out);
    out->format = PTQ_QF_E8P;
    out->rows = r->rows, out->cols = r->cols, out->bits = r->e81b ? 3 : 2 * r->stages;
    out->e8_scale = malloc(sizeof *out->e8_scale * 2);
    if (!out->e8_scale) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    out->e8_scale[0] = r->scale, out->e8_scale[1] = r->rscale;
    out->e8_codes = r->codes, r->codes = NULL;
    out->e8_su = c->sn, c->sn = NULL;
    out->e8_sv = c->sm, c->sm = NULL;
    return PTQ_OK;
}

int quip_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    (void)format, (void)act;
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(W[i]))
            return ptq_fail(e, PTQ_EDATA, "weight [%zu][%zu] is %g", i / cols, i % cols,
                            (double)W[i]);
    ptq_incoh c;
    int rc = ptq_incoh_init(&c, rows, cols, seed_of(s->o->seed, s->cur_layer, s->cur_linear), e);
    if (rc) return rc;
    c.threads = s->q.threads;
    float *Wr = malloc(n * sizeof *Wr), *What = malloc(n * sizeof *What);
    ptq_e8p_book *book = malloc(sizeof *book);
    ptq_ldlq_e8p r;
    memset(&r, 0, sizeof r);
    if (!Wr || !What || !book) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(Wr, W, n * sizeof *Wr);
        memcpy(s->Hw, s->H, (size_t)cols * cols * sizeof *s->Hw);
        rc = ptq_incoh_weights(&c, Wr, e);
        if (!rc) rc = ptq_incoh_hessian(&c, s->Hw, e);
    }
    int b3 = q->q.bits == 3;
    double sc = rc ? 0 : rms(Wr, n) / (b3 ? QUIP3_OPT_SCALE : QUIP_OPT_SCALE);
    if (!rc && !(sc > 0)) sc = 1.0; /* all-zero weights: any scale codes them */
    if (!rc) {
        ptq_e8p_init(book);
        float rs = q->q.bits == 4 ? (float)(sc / QUIP_RESID_SCALE) : 0.0f;
        rc = b3 ? ptq_ldlq_e8p_init_3b(&r, book, (float)sc, (float)(sc / QUIP3_RESID_SCALE),
                                       rows, cols, e)
                : ptq_ldlq_e8p_init_rvq(&r, book, (float)sc, rs, rows, cols, e);
    }
    ptq_ldlq_report lr;
    memset(&lr, 0, sizeof lr);
    if (!rc) {
        ptq_ldlq_opts o = {8, q->damp, s->q.threads, 1}; /* quantize.c measures the error */
        ptq_ldlq_rounder rd = ptq_ldlq_e8p_rounder(&r);
        rc = ptq_ldlq(Wr, s->Hw, rows, cols, &o, &rd, What, &lr, e);
    }
    if (!rc) rc = fill_out(&r, &c, out, e);
    if (!rc && lr.f64) {
        char nm[256];
        weight_name(nm, sizeof nm, s->cur_layer, s->cur_linear, "weight");
        cs_warn(s, "%s: the block LDL of the Hessian failed in float32; it worked in float64", nm);
    }
    if (rep) rep->damp_used = q->damp, rep->dead_columns = lr.dead_columns;
    ptq_ldlq_e8p_free(&r);
    ptq_incoh_free(&c);
    free(Wr);
    free(What);
    free(book);
    return rc;
}
