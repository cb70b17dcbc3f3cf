/* round_aqlm.c - the AQLM rounder of the method table (Egiazarian et al.
 * 2024, "Extreme Compression of Large Language Models via Additive
 * Quantization"; lib/compile/engine.h): one linear W [rows][cols] with its
 * Hessian s->H into the aqlm format (lib/qfmt/qf_aqlm.c) by lib/quant/aqlm.h.
 *
 * Settings and their sources (man/ptqc-compile.1, AQLM):
 *   --codebooks MxB  2x8 (the paper's 2-bit setting with 8-bit codebooks;
 *                    the reference code's default is 1x16), M 1..8, B 1..16
 *   --beam N         8 (the paper's beam search; the reference main.py
 *                    defaults to 1, its README examples and ours keep 8 for
 *                    quality: 1 is greedy coordinate descent)
 *   tolerance 0.01   the relative improvement that stops the rounds (the
 *                    reference README's --relative_mse_tolerance=0.01)
 *   20 rounds at most; 10 k-means iterations per codebook of the
 *   initialisation (the reference runs 100: ours alternate least squares
 *   right after, which converges the codebooks)
 *   seed             --seed combined with the linear's index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/engine.h"
#include "lib/quant/aqlm.h"

#define AQLM_TOL 0.01
#define AQLM_MAX_ITER 20
#define AQLM_KMEANS_ITER 10

static void opts_of(const ptq_gptq_opts *q, ptq_aqlm_opts *a)
{
    ptq_aqlm_defaults(a);
    if (q->aqlm_m) a->M = q->aqlm_m, a->B = q->aqlm_b;
    if (q->aqlm_beam) a->beam = q->aqlm_beam;
    a->tol = AQLM_TOL;
    a->max_iter = AQLM_MAX_ITER;
    a->kmeans_iter = AQLM_KMEANS_ITER;
    a->threads = q->threads;
}

int aqlm_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
               ptq_err *e)
{
    if (m->rounder != PTQ_RD_AQLM) {
        if (o->q.aqlm_m || o->q.aqlm_beam)
            return ptq_fail(e, PTQ_EUSAGE, "--codebooks and --beam are aqlm options");
        return PTQ_OK;
    }
    if (given->bits || given->group || o->q.act_order || o->q.q.mse || o->sym_set)
        return ptq_fail(e, PTQ_EUSAGE, "--bits, --group, --act-order, --mse, --sym and --asym "
                        "do not apply to --method aqlm (its size is --codebooks MxB: M codes "
                        "of B bits per 8 weights)");
    return PTQ_OK;
}

int aqlm_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e)
{
    (void)p;
    char nm[256];
    int rows, cols;
    weight_name(nm, sizeof nm, l, which, "weight");
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    if (cols % PTQ_AQLM_GROUP)
        return ptq_fail(e, PTQ_EUSAGE, "%s: %d inputs are not a multiple of 8 (AQLM codes "
                        "groups of 8 inputs): keep it dense with --skip or give it another "
                        "method with --recipe", nm, cols);
    return PTQ_OK;
}

void aqlm_settings(cJSON *q, const ptq_gptq_opts *qo)
{
    ptq_aqlm_opts o;
    opts_of(qo, &o);
    cJSON *j = cJSON_AddObjectToObject(q, "aqlm");
    char cb[32];
    snprintf(cb, sizeof cb, "%dx%d", o.M, o.B);
    cJSON_AddStringToObject(j, "codebooks", cb);
    cJSON_AddNumberToObject(j, "beam", o.beam);
    cJSON_AddNumberToObject(j, "group", PTQ_AQLM_GROUP);
    cJSON_AddNumberToObject(j, "tolerance", AQLM_TOL);
    cJSON_AddNumberToObject(j, "max_rounds", AQLM_MAX_ITER);
    cJSON_AddNumberToObject(j, "kmeans_iters", AQLM_KMEANS_ITER);
}

/* bits per weight of an MxB linear: codes M B / 8, the fp16 codebooks
 * (M 2^B 8 values) and the fp16 scale of each row spread over its weights */
static double aqlm_bpw(int M, int B, int rows, int cols)
{
    double w = (double)rows * cols;
    return M * B / 8.0 + 16.0 * M * (double)(1u << B) * 8 / w + 16.0 * rows / w;
}

void aqlm_plan_json(cJSON *ent, const ptq_gptq_opts *qo, int rows, int cols)
{
    ptq_aqlm_opts o;
    opts_of(qo, &o);
    char cb[32];
    snprintf(cb, sizeof cb, "%dx%d", o.M, o.B);
    cJSON_AddStringToObject(ent, "aqlm_codebooks", cb); /* "codebooks" is the format's */
    cJSON_AddNumberToObject(ent, "bits_per_weight", aqlm_bpw(o.M, o.B, rows, cols));
}

/* seed of linear `which` of layer l */
static uint64_t seed_of(uint64_t seed, int l, int which)
{
    return seed * 0x9E3779B97F4A7C15ull + (uint64_t)(l * PTQ_NLINEAR + which);
}

int aqlm_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    (void)format, (void)act;
    ptq_aqlm_opts o;
    opts_of(q, &o);
    o.seed = seed_of(s->o->seed, s->cur_layer, s->cur_linear);
    char nm[256];
    weight_name(nm, sizeof nm, s->cur_layer, s->cur_linear, "weight");
    double cbytes = (double)o.M * (double)(1u << o.B) * 8 * 2, lbytes = 2.0 * rows * cols;
    if (cbytes > lbytes)
        cs_warn(s, "%s: the %dx%d codebooks (%.0f KiB in fp16) are larger than the %d x %d "
                "layer they encode (%.0f KiB in fp16)", nm, o.M, o.B, cbytes / 1024, rows, cols,
                lbytes / 1024);
    ptq_aqlm_report ar;
    int rc = ptq_aqlm_quantize(W, s->nocal ? NULL : s->H, rows, cols, &o, out, &ar, e);
    if (rc) return ptq_fail_prefix(e, "%s", nm);
    if (rep) memset(rep, 0, sizeof *rep), rep->loss = ar.obj;
    return PTQ_OK;
}
