/* awq_transform.c - the AWQ transform of the method table: its layer step
 * (lib/compile/awq_step.h), report entries, settings and flag checks
 * (lib/compile/engine.h). */
#include <string.h>

#include "lib/base/clock.h"
#include "lib/compile/engine.h"

/* The tokens of the searches: --awq-search-tokens or the default. */
static int awq_tokens(const ptq_compile_opts *o)
{
    return o->awq_tokens > 0 ? o->awq_tokens : PTQ_AWQ_TOKENS;
}

/* The AWQ step of layer l: scales searched and folded into lw, clips kept
 * in s->awq for quantize_linear. */
int awq_layer_step(cstate *s, int l, ptq_layer_w *lw, const char *folded[2], ptq_err *e)
{
    awq_layer_ctx c;
    memset(&c, 0, sizeof c);
    int any = 0;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        const lin_plan *p = plan_of(s, l, i);
        int awq = !p->skip && p->m->transform == PTQ_TF_AWQ;
        c.q[i] = p->skip ? NULL : &p->q;
        c.awq[i] = !awq ? 0 : p->m->rounder == PTQ_RD_GPTQ ? 2 : 1;
        any |= c.awq[i];
    }
    if (!any) return PTQ_OK;
    cs_step(s, l, "awq");
    c.cfg = s->cfg;
    c.fwds = s->fwds;
    c.x32s = s->x32s;
    c.nworkers = s->nworkers; /* the same bits for any count (lib/quant/awq.h) */
    c.hidden = s->hidden;
    c.T = s->seqlen;
    c.nsamp = awq_tokens(s->o) / s->seqlen;
    if (c.nsamp < 1) c.nsamp = 1;
    if (c.nsamp > s->nsamples) c.nsamp = s->nsamples;
    c.chunk = s->chunk;
    c.n_grid = s->o->awq_grid > 0 ? s->o->awq_grid : PTQ_AWQ_GRID;
    c.refine = !s->o->awq_full_scan;
    int rc = awq_layer(&c, lw, &s->awq, e);
    const char *me = ptq_transforms[PTQ_TF_AWQ].name;
    if (s->awq.scale[0]) folded[0] = me;
    if (s->awq.scale[2]) folded[1] = me;
    return rc;
}

void awq_entry(const cstate *s, int which, cJSON *entry) { awq_report(&s->awq, which, entry); }

void awq_settings(cJSON *q, const ptq_compile_opts *o)
{
    cJSON_AddNumberToObject(q, "awq_grid", o->awq_grid > 0 ? o->awq_grid : PTQ_AWQ_GRID);
    cJSON_AddNumberToObject(q, "awq_search_tokens", awq_tokens(o));
    cJSON_AddStringToObject(q, "awq_scan", o->awq_full_scan ? "full" : "refine");
}

int awq_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
              ptq_err *e)
{
    if (m->transform == PTQ_TF_AWQ && o->q.q.mse)
        return ptq_fail(e, PTQ_EUSAGE, "--mse does not apply to --method %s (AWQ searches its "
                        "own clipping)", m->name);
    if (m->transform != PTQ_TF_AWQ && (given->awq_grid || given->awq_tokens || given->awq_scan) &&
        !o->recipe) {
        char list[128];
        ptq_awq_methods(list, sizeof list);
        return ptq_fail(e, PTQ_EUSAGE, "%s is an %s option",
                        given->awq_grid ? "--awq-grid"
                        : given->awq_tokens ? "--awq-search-tokens" : "--awq-scan", list);
    }
    return PTQ_OK;
}
