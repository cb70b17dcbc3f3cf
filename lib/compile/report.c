/* report.c - the settings, the --report file and the manifest's report
 * (lib/compile/engine.h). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "lib/compile/engine.h"

static const char *const step_names[T_NSTEPS] = {"hash", "calibration", "embed", "capture_hessian",
                                                 "quantize", "error", "forward", "write",
                                                 "hessian", "awq"};

/* Whether the run may use transform t / rounder r: its method's, and with a
 * recipe those of every method a recipe may choose. */
static int reaches(const cstate *s, int t, int r)
{
    if (t >= 0 ? s->m->transform == t : s->m->rounder == r) return 1;
    if (!s->rec.json) return 0;
    for (int i = 0; i < ptq_nmethods; i++)
        if (ptq_method_per_linear(&ptq_methods[i]) &&
            (t >= 0 ? ptq_methods[i].transform == t : ptq_methods[i].rounder == r))
            return 1;
    return 0;
}

cJSON *settings_json(const cstate *s)
{
    const ptq_compile_opts *o = s->o;
    const ptq_gptq_opts *qo = &s->q;
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "method", s->m->name);
    if (s->m->rounder != PTQ_RD_AQLM || s->rec.json) { /* aqlm: its "aqlm" object */
        cJSON_AddNumberToObject(q, "bits", qo->q.bits);
        cJSON_AddNumberToObject(q, "group", qo->group);
        cJSON_AddBoolToObject(q, "sym", qo->q.sym);
        cJSON_AddBoolToObject(q, "mse", qo->q.mse);
    }
    for (int t = 0; t < PTQ_TF_COUNT; t++)
        if (ptq_transforms[t].settings && reaches(s, t, -1)) ptq_transforms[t].settings(q, o);
    if (ptq_method_a8(s->m))
        cJSON_AddStringToObject(q, "act_scales", o->act_static ? "static" : "dynamic");
    if (o->kv_int8) cJSON_AddStringToObject(q, "kv_cache", "int8");
    if (s->hess_layer && !s->nocal) cJSON_AddStringToObject(q, "hessians", "layer"); /* absent: sequential */
    if (s->rec.json) cJSON_AddItemToObject(q, "recipe", cJSON_Duplicate(s->rec.json, 1));
    rotate_settings(s, q); /* absent when no linear rotates */
    for (int r = 0; r < PTQ_RD_COUNT; r++)
        if (ptq_rounders[r].settings && reaches(s, -1, r)) ptq_rounders[r].settings(q, qo);
    if (!s->nocal) { /* the budget asked for (the calibration record has what was cut) */
        cJSON_AddNumberToObject(q, "nsamples", s->want_nsamples);
        cJSON_AddNumberToObject(q, "seqlen", s->want_seqlen);
    }
    cJSON_AddNumberToObject(q, "seed", (double)o->seed);
    cJSON *sk = cJSON_AddArrayToObject(q, "skip");
    for (int i = 0; i < o->nskip; i++) cJSON_AddItemToArray(sk, cJSON_CreateString(o->skip[i]));
    return q;
}

static long peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return -1;
    return ru.ru_maxrss * 1024L;
}

/* The layers' report entries without their timings (for the manifest). */
static cJSON *layers_no_time(const cJSON *layers)
{
    cJSON *a = cJSON_Duplicate(layers, 1);
    cJSON *l;
    cJSON_ArrayForEach(l, a) {
        cJSON_DeleteItemFromObject(l, "seconds");
        cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(l, "linears")) cJSON_DeleteItemFromObject(x, "seconds");
    }
    return a;
}

#define WEIGHT_SPACE "weight-space: ||W - Q(W)||_F^2 / ||W||_F^2 per linear (H = I); " \
                     "no calibration: weight-space error"

/* The errors' mean and max; with nocal they are weight-space errors and named so. */
static cJSON *summary(const cJSON *layers, int nocal)
{
    double worst = 0, sum = 0;
    long n = 0, better = 0, compared = 0;
    const cJSON *l, *x;
    cJSON_ArrayForEach(l, layers) {
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(l, "linears")) {
            const cJSON *err = cJSON_GetObjectItem(x, "err");
            const cJSON *g = cJSON_GetObjectItem(x, "err_gptq"), *r = cJSON_GetObjectItem(x, "err_rtn");
            if (!cJSON_IsNumber(err)) continue;
            n++;
            sum += err->valuedouble;
            if (err->valuedouble > worst) worst = err->valuedouble;
            if (cJSON_IsNumber(g) && cJSON_IsNumber(r)) {
                compared++;
                if (g->valuedouble < r->valuedouble) better++;
            }
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "quantized_linears", n);
    if (nocal) cJSON_AddStringToObject(o, "error_space", WEIGHT_SPACE);
    cJSON_AddNumberToObject(o, nocal ? "mean_rel_weight_error" : "mean_rel_output_error",
                            n ? sum / n : 0);
    cJSON_AddNumberToObject(o, nocal ? "max_rel_weight_error" : "max_rel_output_error", worst);
    if (compared) {
        cJSON_AddNumberToObject(o, "gptq_below_rtn", better);
        cJSON_AddNumberToObject(o, "gptq_compared", compared);
    }
    return o;
}

cJSON *manifest_top(cstate *s)
{
    const ptq_compile_opts *o = s->o;
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "ptqc_version", PACKAGE_VERSION);
    cJSON *prov = cJSON_AddObjectToObject(top, "provenance");
    cJSON_AddItemToObject(prov, "source_files", cJSON_Duplicate(s->files, 1));
    cJSON_AddItemToObject(prov, "calibration",
                          cJSON_Duplicate(cJSON_GetObjectItem(s->state, "calibration"), 1));
    cJSON *cl = cJSON_AddArrayToObject(prov, "command_line");
    for (int i = 0; i < o->ncmdline; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(o->cmdline[i]));
    cJSON_AddNumberToObject(prov, "seed", (double)o->seed);
    cJSON_AddItemToObject(top, "quantization", settings_json(s));
    cJSON *rep = cJSON_AddObjectToObject(top, "report");
    const cJSON *layers = cJSON_GetObjectItem(s->state, "layers");
    cJSON_AddItemToObject(rep, "summary", summary(layers, s->nocal));
    cJSON_AddItemToObject(rep, "layers", layers_no_time(layers));
    return top;
}

int write_report(cstate *s, double t0, ptq_err *e)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "output", s->o->out);
    cJSON_AddItemToObject(r, "settings", settings_json(s));
    cJSON_AddItemToObject(r, "calibration",
                          cJSON_Duplicate(cJSON_GetObjectItem(s->state, "calibration"), 1));
    if (s->nocal) cJSON_AddStringToObject(r, "error_space", WEIGHT_SPACE);
    else cJSON_AddStringToObject(r, "hessian_precision",
                                 "float32 ssyrk per chunk of tokens, accumulated in float64");
    const cJSON *layers = cJSON_GetObjectItem(s->state, "layers");
    cJSON_AddItemToObject(r, "summary", summary(layers, s->nocal));
    cJSON_AddItemToObject(r, "layers", cJSON_Duplicate(layers, 1));
    cJSON *m = cJSON_AddObjectToObject(r, "memory_bytes");
    cJSON_AddNumberToObject(m, "layer_weights_fp32", (double)s->mem_weights);
    cJSON_AddNumberToObject(m, "activations", (double)s->mem_acts);
    cJSON_AddBoolToObject(m, "activations_on_disk", s->hidden_mapped);
    cJSON_AddNumberToObject(m, "hessians", (double)s->mem_hess);
    cJSON_AddNumberToObject(m, "peak_rss", (double)peak_rss_bytes());
    cJSON *t = cJSON_AddObjectToObject(r, "seconds");
    for (int i = 0; i < T_NSTEPS; i++) cJSON_AddNumberToObject(t, step_names[i], s->t[i]);
    cJSON_AddNumberToObject(t, "total", cs_elapsed(t0));
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    if (!txt) return ptq_fail(e, PTQ_ENOMEM, "report: out of memory");
    int rc = journal_atomic_write(s->o->report, txt, strlen(txt), e);
    cJSON_free(txt);
    return rc;
}
