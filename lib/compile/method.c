/* method.c - the method table and the tables of its transforms and rounders
 * (lib/compile/method.h, lib/compile/engine.h). */
#include "lib/compile/method.h"

#include <stdio.h>
#include <string.h>

#include "lib/compile/engine.h"
#include "lib/qfmt/qtensor.h"

/* name, transform, rounder, packed format */
const ptq_method ptq_methods[] = {
    {"rtn", PTQ_TF_NONE, PTQ_RD_RTN, PTQ_QF_INT},
    {"gptq", PTQ_TF_NONE, PTQ_RD_GPTQ, PTQ_QF_INT},
    {"awq", PTQ_TF_AWQ, PTQ_RD_RTN, PTQ_QF_INT},
    {"awq+gptq", PTQ_TF_AWQ, PTQ_RD_GPTQ, PTQ_QF_INT},
    {"smoothquant", PTQ_TF_SMOOTHQUANT, PTQ_RD_RTN, PTQ_QF_W8A8},
    {"smoothquant+gptq", PTQ_TF_SMOOTHQUANT, PTQ_RD_GPTQ, PTQ_QF_W8A8},
    {"w8a8", PTQ_TF_NONE, PTQ_RD_RTN, PTQ_QF_W8A8},
    {"fp8", PTQ_TF_NONE, PTQ_RD_RTN, PTQ_QF_FP8},
    {"quip", PTQ_TF_NONE, PTQ_RD_QUIP, PTQ_QF_E8P},
    {"aqlm", PTQ_TF_NONE, PTQ_RD_AQLM, PTQ_QF_AQLM},
};
const int ptq_nmethods = sizeof ptq_methods / sizeof *ptq_methods;

/* name, asym_default, own_clipping, layer_step, group_step, report, settings, check,
 * needs_calib */
const ptq_transform_ops ptq_transforms[PTQ_TF_COUNT] = {
    [PTQ_TF_NONE] = {"none", 0, 0, NULL, NULL, NULL, NULL, NULL, 0},
    [PTQ_TF_SMOOTHQUANT] = {"smoothquant", 0, 0, NULL, smooth_group_step, NULL, smooth_settings,
                            smooth_check, 1},
    [PTQ_TF_AWQ] = {"awq", 1, 1, awq_layer_step, NULL, awq_entry, awq_settings, awq_check, 1},
};

/* name, act_order, round, settings, check, needs_calib, plan_check */
const ptq_rounder_ops ptq_rounders[PTQ_RD_COUNT] = {
    [PTQ_RD_RTN] = {"rtn", 0, rtn_round, NULL, rtn_check, 0, NULL},
    [PTQ_RD_GPTQ] = {"gptq", 1, gptq_round, gptq_settings, NULL, 1, NULL},
    [PTQ_RD_QUIP] = {"quip", 0, quip_round, quip_settings, quip_check, 1, quip_plan_check},
    [PTQ_RD_AQLM] = {"aqlm", 0, aqlm_round, aqlm_settings, aqlm_check, 1, aqlm_plan_check},
};

const char *ptq_transform_name(int t) { return t >= 0 && t < PTQ_TF_COUNT ? ptq_transforms[t].name : "?"; }
const char *ptq_rounder_name(int r) { return r >= 0 && r < PTQ_RD_COUNT ? ptq_rounders[r].name : "?"; }

const ptq_method *ptq_method_default(void) { return &ptq_methods[1]; }

const ptq_method *ptq_method_find(const char *name)
{
    for (int i = 0; i < ptq_nmethods; i++)
        if (!strcmp(name, ptq_methods[i].name)) return &ptq_methods[i];
    const char *plus = strchr(name, '+');
    if (!plus) return NULL;
    size_t n = (size_t)(plus - name);
    for (int i = 0; i < ptq_nmethods; i++) {
        const char *t = ptq_transform_name(ptq_methods[i].transform);
        if (strlen(t) == n && !strncmp(name, t, n) &&
            !strcmp(plus + 1, ptq_rounder_name(ptq_methods[i].rounder)))
            return &ptq_methods[i];
    }
    return NULL;
}

int ptq_method_a8(const ptq_method *m) { return m->format == PTQ_QF_W8A8 || m->format == PTQ_QF_FP8; }
int ptq_method_per_linear(const ptq_method *m) { return !ptq_method_a8(m); }

int ptq_method_needs_calib(const ptq_method *m)
{
    return ptq_transforms[m->transform].needs_calib || ptq_rounders[m->rounder].needs_calib;
}

/* names of the rows where keep(row) holds, joined by sep and last */
static void join(char *buf, size_t n, int (*keep)(const ptq_method *), const char *sep,
                 const char *last)
{
    int total = 0, k = 0;
    for (int i = 0; i < ptq_nmethods; i++) total += !keep || keep(&ptq_methods[i]);
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < ptq_nmethods && len < n; i++) {
        if (keep && !keep(&ptq_methods[i])) continue;
        const char *s = k == 0 ? "" : k == total - 1 ? last : sep;
        len += (size_t)snprintf(buf + len, n - len, "%s%s", s, ptq_methods[i].name);
        k++;
    }
}

void ptq_method_list(char *buf, size_t n, int per_linear)
{
    join(buf, n, per_linear ? ptq_method_per_linear : NULL, ", ", " or ");
}

static int uses_awq(const ptq_method *m) { return m->transform == PTQ_TF_AWQ; }

/* The flags of the 8-bit formats (lib/qfmt/w8a8.h): a fixed grid. */
static int check_format(const ptq_method *m, const ptq_compile_opts *o,
                        const ptq_flags_given *given, ptq_err *e)
{
    char list[256];
    if (ptq_method_a8(m) && o->recipe) {
        join(list, sizeof list, ptq_method_per_linear, ", ", ", ");
        return ptq_fail(e, PTQ_EUSAGE, "--recipe mixes the weight-only methods (%s); it does "
                        "not combine with --method %s", list, m->name);
    }
    if (ptq_method_a8(m) && (given->bits || given->group || o->q.act_order || o->q.q.mse))
        return ptq_fail(e, PTQ_EUSAGE, "--bits, --group, --act-order and --mse do not apply to "
                        "--method %s (8 bits, one scale per output channel)", m->name);
    return PTQ_OK;
}

static int check_act_scales(const ptq_method *m, const ptq_flags_given *given, ptq_err *e)
{
    char list[256];
    if (ptq_method_a8(m) || !given->act_scales) return PTQ_OK;
    join(list, sizeof list, ptq_method_a8, ", ", " and ");
    return ptq_fail(e, PTQ_EUSAGE, "--act-scales applies to %s", list);
}

int ptq_method_check(const ptq_compile_opts *o, const ptq_flags_given *given, ptq_err *e)
{
    const ptq_method *m = o->method ? o->method : ptq_method_default();
    int rc = check_format(m, o, given, e);
    for (int r = 0; r < PTQ_RD_COUNT && !rc; r++)
        if (ptq_rounders[r].check) rc = ptq_rounders[r].check(m, o, given, e);
    for (int t = 0; t < PTQ_TF_COUNT && !rc; t++)
        if (ptq_transforms[t].check) rc = ptq_transforms[t].check(m, o, given, e);
    if (!rc) rc = check_act_scales(m, given, e);
    if (!rc) rc = rotate_check(m, o, e);
    return rc;
}

/* "awq / awq+gptq" (for the AWQ flags' messages) */
void ptq_awq_methods(char *buf, size_t n) { join(buf, n, uses_awq, " / ", " / "); }
