/* plan.c - the settings of every linear: the command line's flags resolved
 * (the default group, the 8-bit formats' fixed grid), --skip, then --recipe
 * (lib/compile/engine.h). */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/compile/engine.h"

/* --skip patterns */
static int skip_flag(const ptq_compile_opts *o, int l, int which)
{
    char full[256], mod[256];
    weight_name(full, sizeof full, l, which, "weight");
    snprintf(mod, sizeof mod, "model.layers.%d.%s", l, ptq_linear_name(which));
    for (int i = 0; i < o->nskip; i++)
        if (!fnmatch(o->skip[i], full, 0) || !fnmatch(o->skip[i], mod, 0)) return 1;
    return 0;
}

/* GPTQ's clipping: --mse unless --no-mse (ptqc-compile(1) gives the
 * measurement); min-max for every other method. */
#define GPTQ_MSE_DEFAULT 1
static int mse_default(const ptq_method *m)
{
    return GPTQ_MSE_DEFAULT && m->rounder == PTQ_RD_GPTQ && m->transform == PTQ_TF_NONE &&
           !ptq_method_a8(m);
}

int check_flags(cstate *s, ptq_err *e)
{
    s->q = s->o->q;
    /* GPTQ's row workers give the same bits for any count (lib/quant/gptq.h). */
    s->q.threads = s->o->threads > 0 ? s->o->threads : 1;
    if (s->q.q.bits < 2 || s->q.q.bits > 8)
        return ptq_fail(e, PTQ_EUSAGE, "--bits %d: out of range 2..8", s->q.q.bits);
    /* --hessians: layer for gptq, sequential for the others, unless given
     * (ptqc-compile(1) gives the measurement) */
    int gptq = s->m->rounder == PTQ_RD_GPTQ && s->m->transform == PTQ_TF_NONE &&
               !ptq_method_a8(s->m);
    s->hess_layer = s->o->hessians == PTQ_HESS_LAYER ||
                    (s->o->hessians == PTQ_HESS_DEFAULT && gptq);
    if (s->m->transform == PTQ_TF_SMOOTHQUANT && !(s->o->alpha >= 0.0f && s->o->alpha <= 1.0f))
        return ptq_fail(e, PTQ_EUSAGE, "--alpha %g: outside [0, 1]", (double)s->o->alpha);
    if (ptq_method_a8(s->m)) { /* 8-bit symmetric, one scale per output channel */
        s->q.q.bits = 8;
        s->q.q.sym = 1;
        s->q.q.mse = 0;
        s->q.group = 0;
        s->q.act_order = s->q.static_groups = 0;
        return PTQ_OK;
    }
    if (!s->o->mse_set) s->q.q.mse = s->o->q.q.mse || mse_default(s->m);
    /* default 128 (ptqc-compile(1) gives the measurement); it need not
     * divide: the last group of a row is then shorter (pack.h). */
    if (s->q.group < 0) s->q.group = 128;
    return PTQ_OK;
}

/* The recipe's settings onto linear w of layer l. */
static int apply_recipe(cstate *s, int l, int w, lin_plan *p, int *used, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    char full[256], mod[256];
    weight_name(full, sizeof full, l, w, "weight");
    snprintf(mod, sizeof mod, "model.layers.%d.%s", l, ptq_linear_name(w));
    recipe_set rs = {NULL, -1, -1, -1, -1, -1};
    recipe_apply(&s->rec, full, mod, &rs, used);
    if (rs.method) p->m = rs.method;
    if (rs.bits >= 0) p->q.q.bits = rs.bits;
    if (rs.group >= 0) p->q.group = rs.group;
    if (rs.skip >= 0) p->skip = p->skip || rs.skip;
    if (rs.rotate >= 0) p->q.rotate = rs.rotate;
    if (rs.sym >= 0) p->q.q.sym = rs.sym;
    else if (!o->sym_set) p->q.q.sym = !ptq_transforms[p->m->transform].asym_default;
    if (ptq_method_a8(s->m))
        return ptq_fail(e, PTQ_EUSAGE, "--recipe does not combine with --method %s", s->m->name);
    if (p->skip) return PTQ_OK;
    if (!o->mse_set) p->q.q.mse = o->q.q.mse || mse_default(p->m);
    if (ptq_transforms[p->m->transform].own_clipping && p->q.q.mse)
        return ptq_fail(e, PTQ_EUSAGE, "recipe %s: %s: --mse does not apply to %s (AWQ searches "
                        "its own clipping)", o->recipe, full, p->m->name);
    if (!ptq_rounders[p->m->rounder].act_order && p->q.act_order)
        p->q.act_order = p->q.static_groups = 0; /* act-order is GPTQ's */
    return PTQ_OK;
}

/* Settings of every linear: the command line's (s->q, --method, --skip),
 * then --recipe.  AWQ defaults to an asymmetric grid unless --sym/--asym or
 * the recipe says otherwise. */
int build_plan(cstate *s, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    const ptq_config *c = s->cfg;
    int rc = PTQ_OK;
    if (ptq_transforms[s->m->transform].asym_default && !o->sym_set) s->q.q.sym = 0;
    if (o->recipe && (rc = recipe_load(&s->rec, o->recipe, e))) return rc;
    size_t n = (size_t)c->n_layers * PTQ_NLINEAR;
    s->plan = calloc(n, sizeof *s->plan);
    int *used = calloc((size_t)s->rec.nrules + 1, sizeof *used);
    if (!s->plan || !used) {
        free(used);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_layers && !rc; l++)
        for (int w = 0; w < PTQ_NLINEAR && !rc; w++) {
            lin_plan *p = &s->plan[(size_t)l * PTQ_NLINEAR + w];
            p->m = s->m;
            p->q = s->q;
            p->skip = skip_flag(o, l, w);
            if (o->recipe) rc = apply_recipe(s, l, w, p, used, e);
            if (!rc && !p->skip && ptq_rounders[p->m->rounder].plan_check)
                rc = ptq_rounders[p->m->rounder].plan_check(s, l, w, p, e);
            if (!rc && !p->skip && p->q.rotate) rc = rotate_plan_check(s, l, w, p, e);
        }
    if (!rc && o->recipe) rc = recipe_check_used(&s->rec, used, o->model, e);
    free(used);
    return rc;
}

/* Whether the run needs calibration samples: a quantized linear's method
 * reads activations (lib/compile/method.h), or --kv-cache int8 / static
 * activation scales do. */
int needs_calibration(const cstate *s)
{
    const ptq_compile_opts *o = s->o;
    if (o->ncalib || o->kv_int8 || (ptq_method_a8(s->m) && o->act_static)) return 1;
    size_t n = (size_t)s->cfg->n_layers * PTQ_NLINEAR;
    for (size_t i = 0; i < n; i++)
        if (!s->plan[i].skip && ptq_method_needs_calib(s->plan[i].m)) return 1;
    return 0;
}

/* The budget asked for: --nsamples / --seqlen, else the defaults of
 * lib/compile/compile.h (text or data-free); none without calibration. */
void calib_budget(cstate *s)
{
    const ptq_compile_opts *o = s->o;
    s->nocal = !needs_calibration(s);
    int text = o->ncalib > 0;
    s->want_nsamples = o->nsamples > 0 ? o->nsamples
                       : text      ? PTQ_CALIB_NSAMPLES : PTQ_DATAFREE_NSAMPLES;
    s->want_seqlen = o->seqlen > 0 ? o->seqlen : text ? PTQ_CALIB_SEQLEN : PTQ_DATAFREE_SEQLEN;
}
