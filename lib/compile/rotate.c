/* rotate.c - `--rotate hadamard` for the scalar methods rtn and gptq
 * (lib/compile/engine.h): incoherence processing alone, as QuIP (Chee et
 * al. 2023, "QuIP: 2-Bit Quantization of Large Language Models With
 * Guarantees") introduced it, with the randomized Hadamard transforms of
 * QuIP# (Tseng et al. 2024) instead of QuIP's Kronecker-product orthogonal
 * matrices; the grid stays the int format's.  Around the method's own
 * rounder, for one linear W [rows][cols] with its Hessian s->H:
 *
 *   1. W' = U W V^T, H' = V H V^T (lib/quant/hadamard.h), the sign vectors
 *      seeded per linear by seed_of (the same rule as --method quip);
 *   2. the rounder (rtn or gptq, with its groups, act-order, damping) rounds
 *      W' with H' as it would round W with H: the proxy loss
 *      tr(dW H dW^T) is the same in either basis;
 *   3. the int tensor of W' becomes an int-had tensor (lib/qfmt/qf_int_had.c)
 *      with the signs, whose decode and gemv undo the rotation: the
 *      runtimes and the report's errors see the original basis.
 *
 * AWQ (its scale and clip search rounds in the original basis), the 8-bit
 * methods and the codebook methods are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/engine.h"
#include "lib/qfmt/qfmt.h"
#include "lib/quant/hadamard.h"

/* The signs of linear `which` of layer l: S_rows from seed_of, S_cols from
 * seed_of + 1 (ptq_incoh_init); round_quip.c's rule. */
static uint64_t seed_of(uint64_t seed, int l, int which)
{
    return seed * 0x9E3779B97F4A7C15ull + 2u * (uint64_t)(l * PTQ_NLINEAR + which);
}

/* What m is, when --rotate does not apply to it; NULL when it does. */
static const char *why_not(const ptq_method *m)
{
    if (m->format == PTQ_QF_INT && m->transform == PTQ_TF_NONE &&
        (m->rounder == PTQ_RD_RTN || m->rounder == PTQ_RD_GPTQ))
        return NULL;
    if (m->transform == PTQ_TF_AWQ)
        return "AWQ searches its scales and clips for rounding in the original basis";
    if (ptq_method_a8(m)) return "its 8-bit weights and activations have no rotated format";
    if (m->rounder == PTQ_RD_QUIP) return "QuIP# applies its own incoherence";
    return "its codebooks are not a scalar grid";
}

int rotate_check(const ptq_method *m, const ptq_compile_opts *o, ptq_err *e)
{
    const char *why = o->q.rotate ? why_not(m) : NULL;
    if (!why || o->recipe) return PTQ_OK; /* with a recipe: each linear's method (plan) */
    return ptq_fail(e, PTQ_EUSAGE, "--rotate hadamard applies to --method rtn and gptq, not %s "
                    "(%s)", m->name, why);
}

int rotate_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e)
{
    char nm[256];
    int rows, cols, rc;
    weight_name(nm, sizeof nm, l, which, "weight");
    const char *why = why_not(p->m);
    if (why)
        return ptq_fail(e, PTQ_EUSAGE, "%s: --rotate hadamard applies to rtn and gptq, not %s "
                        "(%s): give it \"rotate\": \"none\" in the recipe", nm, p->m->name, why);
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    ptq_had h;
    if ((rc = ptq_had_plan(&h, rows, e)) || (ptq_had_free(&h), rc = ptq_had_plan(&h, cols, e)))
        return ptq_fail_prefix(e, "%s", nm);
    ptq_had_free(&h);
    return PTQ_OK;
}

void rotate_settings(const cstate *s, cJSON *q)
{
    size_t n = s->plan ? (size_t)s->cfg->n_layers * PTQ_NLINEAR : 0, k = 0;
    for (size_t i = 0; i < n; i++) k += !s->plan[i].skip && s->plan[i].q.rotate;
    if (!k && !s->q.rotate) return;
    cJSON *j = cJSON_AddObjectToObject(q, "rotate");
    cJSON_AddStringToObject(j, "kind", "hadamard");
    cJSON_AddStringToObject(j, "format", "int-had");
    cJSON_AddNumberToObject(j, "linears", (double)k);
    cJSON_AddStringToObject(j, "signs", "seed * 0x9E3779B97F4A7C15 + 2 (7 layer + linear)");
}

/* The int tensor of W' into int-had with c's signs (moved, not copied). */
static void to_had(ptq_qtensor *out, ptq_incoh *c)
{
    out->format = PTQ_QF_INT_HAD;
    out->e8_su = c->sn, c->sn = NULL;
    out->e8_sv = c->sm, c->sm = NULL;
}

int rotate_round(cstate *s, int rd, const float *W, int rows, int cols, const ptq_gptq_opts *q,
                 int format, float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++) /* before the transforms spread it over the row */
        if (!isfinite(W[i]))
            return ptq_fail(e, PTQ_EDATA, "weight [%zu][%zu] is %g", i / cols, i % cols,
                            (double)W[i]);
    ptq_incoh c;
    int rc = ptq_incoh_init(&c, rows, cols, seed_of(s->o->seed, s->cur_layer, s->cur_linear), e);
    if (rc) return rc;
    c.threads = s->q.threads; /* rows of the transforms on the workers (same bits) */
    int hess = ptq_rounders[rd].needs_calib && !s->nocal;
    float *Wr = malloc(n * sizeof *Wr), *Hr = NULL, *H0 = s->H;
    if (hess) Hr = malloc((size_t)cols * cols * sizeof *Hr);
    if (!Wr || (hess && !Hr)) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(Wr, W, n * sizeof *Wr);
        rc = ptq_incoh_weights(&c, Wr, e);
    }
    if (!rc && hess) {
        memcpy(Hr, s->H, (size_t)cols * cols * sizeof *Hr);
        rc = ptq_incoh_hessian(&c, Hr, e);
        s->H = Hr; /* the rounder reads H' (gptq_round copies s->H) */
    }
    if (!rc) rc = ptq_rounders[rd].round(s, Wr, rows, cols, q, format, act, out, rep, e);
    s->H = H0;
    if (!rc) to_had(out, &c);
    ptq_incoh_free(&c);
    free(Wr);
    free(Hr);
    return rc;
}
