/* smooth.c - the SmoothQuant transform of the method table: per input
 * channel factors from the captured activation maxima, folded into the
 * RMSNorm before q/k/v and gate/up and into their weights
 * (lib/quant/smoothquant.h, lib/compile/engine.h). */
#include <stdio.h>
#include <stdlib.h>

#include "lib/compile/engine.h"
#include "lib/quant/smoothquant.h"

/* Group g (q/k/v or gate/up; o and down are not smoothed, as in the
 * reference's Llama recipe) when none of its linears is kept dense: factors
 * from s->amax (alpha), folded into the norm and the weights; H and s->amax
 * become the statistics of the smoothed input. */
int smooth_group_step(cstate *s, int l, int g, ptq_layer_w *lw, const char *folded[2],
                      ptq_err *e)
{
    if (g != 0 && g != 2) return PTQ_OK;
    int first = ptq_group_first[g], n = ptq_group_count[g];
    for (int k = 0; k < n; k++)
        if (plan_of(s, l, first + k)->skip) return PTQ_OK;
    int rows[3], cols = s->cfg->hidden;
    const float *Wc[3];
    float *W[3];
    for (int i = 0; i < n; i++) {
        ptq_linear_shape(s->cfg, first + i, &rows[i], &cols);
        Wc[i] = W[i] = lw->w[first + i];
    }
    float *f = malloc((size_t)cols * sizeof *f);
    if (!f) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    int rc = ptq_sq_scales(s->amax, Wc, rows, n, cols, s->o->alpha, f, e);
    if (!rc) {
        ptq_sq_fold(g ? lw->mlp_norm : lw->attn_norm, W, rows, n, cols, f);
        ptq_sq_scale_stats(s->H, s->amax, cols, f);
    }
    free(f);
    folded[g / 2] = ptq_transforms[PTQ_TF_SMOOTHQUANT].name;
    return rc;
}

void smooth_settings(cJSON *q, const ptq_compile_opts *o)
{
    char d[32];
    snprintf(d, sizeof d, "%g", (double)o->alpha);
    cJSON_AddNumberToObject(q, "alpha", strtod(d, NULL));
}

int smooth_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
                 ptq_err *e)
{
    (void)o;
    if (m->transform != PTQ_TF_SMOOTHQUANT && given->alpha)
        return ptq_fail(e, PTQ_EUSAGE, "--alpha is a %s option",
                        ptq_transforms[PTQ_TF_SMOOTHQUANT].name);
    return PTQ_OK;
}
