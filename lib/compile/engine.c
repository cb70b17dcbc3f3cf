/* engine.c - the compile run (lib/compile/compile.h): setup, calibration,
 * the layer loop, one layer, the head.  The steps live in the files named
 * in lib/compile/engine.h.
 *
 * Precision: hidden states between layers are stored in FP16 (lib/base/half.h),
 * widened to float32 one chunk of samples at a time for the layer's forward
 * pass.  H = 2/N sum x x^T is accumulated by lib/quant/hessian.c: each chunk's
 * X^T X is one float32 ssyrk (BLAS speed on the O(N cols^2) part) added into
 * a float64 accumulator, so summing over up to 128 x 2048 tokens does not
 * lose precision that float32 would.
 */
#include "lib/compile/compile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/clock.h"
#include "lib/base/par.h"
#include "lib/compile/engine.h"

const int ptq_group_first[4] = {PTQ_Q, PTQ_O, PTQ_GATE, PTQ_DOWN};
const int ptq_group_count[4] = {3, 1, 2, 1};
static const char *const group_step[4] = {"qkv", "o", "mlp", "down"};

/* ---------------------------------------------------------------- helpers */

double cs_elapsed(double t0) { return ptq_now() - t0; }

void cs_warn(cstate *s, const char *fmt, ...)
{
    const ptq_compile_progress *p = s->o->progress;
    if (!p || !p->warn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->warn(p->ctx, msg);
}

void cs_step(cstate *s, int layer, const char *step)
{
    const ptq_compile_progress *p = s->o->progress;
    if (p && p->step) p->step(p->ctx, layer, step);
}

const lin_plan *plan_of(const cstate *s, int l, int which)
{
    return &s->plan[(size_t)l * PTQ_NLINEAR + which];
}

void weight_name(char *buf, size_t n, int l, int which, const char *what)
{
    snprintf(buf, n, "model.layers.%d.%s.%s", l, ptq_linear_name(which), what);
}

char *dir_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

char *path_cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", a, b);
    return s;
}

const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---------------------------------------------------------------- one layer */

/* Whether a linear of [first, first + n) of layer l is quantized with transform t. */
static int uses(const cstate *s, int l, int first, int n, int t)
{
    for (int k = first; k < first + n; k++) {
        const lin_plan *p = plan_of(s, l, k);
        if (!p->skip && p->m->transform == t) return 1;
    }
    return 0;
}

/* The report entry of linear `which`, then (unless kept dense) its quantization. */
static int do_linear(cstate *s, int l, int which, ptq_layer_w *lw, ptq_qtensor *qt, cJSON *lin,
                     ptq_err *e)
{
    char nm[256];
    int rows, cols;
    weight_name(nm, sizeof nm, l, which, "weight");
    cJSON *ent = cJSON_CreateObject();
    cJSON_AddItemToArray(lin, ent);
    cJSON_AddStringToObject(ent, "name", nm);
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    cJSON_AddNumberToObject(ent, "rows", rows);
    cJSON_AddNumberToObject(ent, "cols", cols);
    const lin_plan *pl = plan_of(s, l, which);
    if (pl->skip) {
        cJSON_AddStringToObject(ent, "method", "fp16");
        return PTQ_OK;
    }
    cJSON_AddStringToObject(ent, "method", pl->m->name);
    if (pl->m->rounder == PTQ_RD_AQLM) {
        aqlm_plan_json(ent, &pl->q, rows, cols); /* codebooks MxB, bits per weight */
    } else {
        cJSON_AddNumberToObject(ent, "bits", pl->q.q.bits);
        cJSON_AddNumberToObject(ent, "group", pl->q.group);
    }
    if (pl->q.q.sym != s->q.q.sym) cJSON_AddBoolToObject(ent, "sym", pl->q.q.sym);
    const ptq_transform_ops *tf = &ptq_transforms[pl->m->transform];
    if (tf->report) tf->report(s, which, ent);
    double tl = ptq_now();
    int rc = quantize_linear(s, l, which, lw, qt, ent, e);
    if (rc) ptq_fail_prefix(e, "%s", nm);
    cJSON_AddNumberToObject(ent, "seconds", cs_elapsed(tl));
    return rc;
}

static int group_skipped(const cstate *s, int l, int g)
{
    int all = 1;
    for (int k = ptq_group_first[g]; k < ptq_group_first[g] + ptq_group_count[g]; k++)
        all &= plan_of(s, l, k)->skip;
    return all;
}

/* --hessians layer: stages 0-3 of the still unquantized layer, each group's
 * Hessian and max |x| kept in s->Hl[g], s->amaxl[g] (a group kept dense
 * needs none; its stage still runs, the next stages read it). */
static int layer_hessians(cstate *s, int l, const ptq_layer_w *lw, ptq_err *e)
{
    int rc = PTQ_OK;
    for (int g = 0; g < 4 && !rc; g++) {
        int rows, cols, hess = !group_skipped(s, l, g);
        ptq_linear_shape(s->cfg, ptq_group_first[g], &rows, &cols);
        rc = layer_pass(s, lw, g, hess, e);
        if (!rc && hess) {
            memcpy(s->Hl[g], s->H, (size_t)cols * cols * sizeof *s->H);
            memcpy(s->amaxl[g], s->amax, (size_t)cols * sizeof *s->amax);
        }
    }
    return rc;
}

/* Group g's input statistics into s->H, s->amax: with --hessians layer
 * those of the unquantized layer (all four captured at group 0), else the
 * capture of stage g with the earlier groups quantized. */
static int group_capture(cstate *s, int l, int g, const ptq_layer_w *lw, int all_skipped,
                         ptq_err *e)
{
    if (!s->hess_layer) return layer_pass(s, lw, g, !all_skipped, e);
    int rc = g == 0 ? layer_hessians(s, l, lw, e) : PTQ_OK;
    if (!rc && !all_skipped) {
        int rows, cols;
        ptq_linear_shape(s->cfg, ptq_group_first[g], &rows, &cols);
        memcpy(s->H, s->Hl[g], (size_t)cols * cols * sizeof *s->H);
        memcpy(s->amax, s->amaxl[g], (size_t)cols * sizeof *s->amax);
    }
    return rc;
}

/* Group g of layer l: capture its input (s->H, s->amax), the transforms'
 * group steps, then each linear. */
static int do_group(cstate *s, int l, int g, ptq_layer_w *lw, ptq_qtensor *qt,
                    const char *folded[2], cJSON *lin, ptq_err *e)
{
    const int first = ptq_group_first[g], n = ptq_group_count[g];
    cs_step(s, l, group_step[g]);
    int rc = PTQ_OK;
    int all_skipped = group_skipped(s, l, g);
    double t0 = ptq_now();
    /* no calibration: no capture, no H (weight-space errors, quantize.c);
     * the stage runs for a group kept dense too: the next stages read it */
    if (!s->nocal) rc = group_capture(s, l, g, lw, all_skipped, e);
    s->t[T_CAPTURE] += cs_elapsed(t0);
    for (int t = 0; t < PTQ_TF_COUNT && !rc; t++)
        if (ptq_transforms[t].group_step && uses(s, l, first, n, t)) {
            t0 = ptq_now();
            rc = ptq_transforms[t].group_step(s, l, g, lw, folded, e);
            s->t[T_QUANT] += cs_elapsed(t0);
        }
    for (int k = first; k < first + n && !rc; k++) rc = do_linear(s, l, k, lw, &qt[k], lin, e);
    return rc;
}

static int do_layer(cstate *s, int l, ptq_layer_w *lw, cJSON *lentry, ptq_err *e)
{
    ptq_qtensor qt[PTQ_NLINEAR];
    memset(qt, 0, sizeof qt);
    const char *folded[2] = {NULL, NULL}; /* input_layernorm, post_attention_layernorm */
    cJSON *lin = cJSON_AddArrayToObject(lentry, "linears");
    double t0 = ptq_now();
    int rc = s->src.layer(s->src.ctx, l, lw, e);
    s->t[T_CAPTURE] += cs_elapsed(t0);
    for (int t = 0; t < PTQ_TF_COUNT && !rc; t++)
        if (ptq_transforms[t].layer_step && uses(s, l, 0, PTQ_NLINEAR, t)) {
            t0 = ptq_now();
            rc = ptq_transforms[t].layer_step(s, l, lw, folded, e);
            s->t[t == PTQ_TF_AWQ ? T_AWQ : T_QUANT] += cs_elapsed(t0);
        }
    for (int g = 0; g < 4 && !rc; g++) rc = do_group(s, l, g, lw, qt, folded, lin, e);
    /* the previous layer's commit may still read the hidden states that
     * stage 4 overwrites */
    t0 = ptq_now();
    if (!rc) rc = commit_wait(s, e);
    s->t[T_WRITE] += cs_elapsed(t0);
    if (!rc && !s->nocal) { /* the next layer's input */
        cs_step(s, l, "output");
        t0 = ptq_now();
        /* --hessians layer: the stages ran on the unquantized layer; the
         * quantized attention and h = x + o(...) first (stage 1 also takes
         * the int8 KV statistics of the quantized q/k/v, as sequentially) */
        if (s->hess_layer) rc = layer_pass(s, lw, 1, 0, e);
        if (!rc && s->hess_layer) rc = layer_pass(s, lw, 2, 0, e);
        if (!rc) rc = layer_pass(s, lw, 4, 0, e);
        s->t[T_FORWARD] += cs_elapsed(t0);
    }
    /* int8 KV cache: static scales from the calibration tokens of the
     * quantized layer (stage 1) */
    if (!rc && s->kvmax) kv_scales(s, s->kvscale);
    t0 = ptq_now();
    if (!rc) rc = write_layer(s, l, lw, qt, folded, lin, e);
    s->t[T_WRITE] += cs_elapsed(t0);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        lw->aq[i] = NULL;
        ptq_qtensor_free(&qt[i]);
    }
    awq_layer_res_free(&s->awq);
    return rc;
}

/* ---------------------------------------------------------------- the run */

/* A fresh run: the bundle opened with the checkpoint's metadata files, the
 * calibration samples embedded, the embedding table written. */
static int fresh_start(cstate *s, const metafiles *meta, const ptq_text *txt, ptq_err *e)
{
    unlink(s->journal_path); /* a stale journal of another run */
    int rc = ptq_bw_open(&s->bw, s->o->out, e);
    for (int i = 0; i < 3 && !rc; i++)
        if (meta->data[i])
            rc = ptq_bw_add_file(s->bw, ptq_meta_names[i], meta->data[i], meta->len[i], e);
    s->state = cJSON_CreateObject();
    cJSON *cal = cJSON_AddObjectToObject(s->state, "calibration");
    cJSON_AddItemToObject(s->state, "layers", cJSON_CreateArray());
    double t = ptq_now();
    if (!rc) rc = calibrate(s, txt, cal, e);
    s->t[T_CALIB] += cs_elapsed(t);
    if (!rc) rc = alloc_hidden(s, e);
    if (!rc) rc = alloc_work(s, e);
    t = ptq_now();
    if (!rc) rc = embed_samples(s, e);
    s->t[T_EMBED] += cs_elapsed(t);
    ptq_samples_free(&s->smp);
    t = ptq_now();
    if (!rc) rc = add_dense(s, "model.embed_tokens.weight", s->x32, s->nscratch, e);
    if (!rc) drop_source_pages(s, "model.embed_tokens.");
    s->t[T_WRITE] += cs_elapsed(t);
    return rc;
}

/* Open the checkpoint, resolve the flags and the plan, hash the inputs,
 * then resume or start fresh; *start is the first layer to compile. */
static int setup(cstate *s, int *start, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    int rc;
    if ((rc = ptq_ckpt_open(&s->ck, o->model, e))) return rc;
    s->ck_open = 1;
    s->cfg = &s->ck.cfg;
    ptq_ckpt_weights(&s->ck, &s->src);
    if ((rc = check_flags(s, e)) || (rc = build_plan(s, e))) return rc;
    calib_budget(s);
    s->seqlen = s->nocal ? 0 : s->want_seqlen;
    if (s->seqlen > s->cfg->max_pos) {
        cs_warn(s, "--seqlen %d clipped to the model's context %d", s->want_seqlen,
                s->cfg->max_pos);
        s->seqlen = s->cfg->max_pos;
    }
    double t = ptq_now();
    metafiles meta;
    memset(&meta, 0, sizeof meta);
    ptq_text txt;
    memset(&txt, 0, sizeof txt);
    rc = source_files(s, &meta, e);
    if (!rc && o->ncalib) rc = read_text(s, &txt, e);
    s->t[T_HASH] += cs_elapsed(t);
    if (!rc) s->key = make_key(s, &txt);
    journal j;
    memset(&j, 0, sizeof j);
    *start = 0;
    if (!rc && o->resume) rc = resume_point(s, &j, start, e);
    if (!rc && *start > 0) rc = resume_open(s, &j, e);
    else if (!rc) rc = fresh_start(s, &meta, &txt, e);
    journal_free(&j);
    ptq_text_free(&txt);
    for (int i = 0; i < 3; i++) free(meta.data[i]);
    return rc;
}

/* The layers from start on, each committed to the bundle and the journal. */
static int layers(cstate *s, int start, ptq_err *e)
{
    const ptq_compile_progress *p = s->o->progress;
    if (p && p->start) p->start(p->ctx, s->cfg->n_layers, start, s->nsamples, s->seqlen);
    ptq_layer_w lw;
    int rc = ptq_layer_w_alloc(&lw, s->cfg, e);
    if (rc) return rc;
    cJSON *ls = cJSON_GetObjectItem(s->state, "layers");
    for (int l = start; l < s->cfg->n_layers && !rc; l++) {
        double tl = ptq_now();
        cJSON *le = cJSON_CreateObject();
        cJSON_AddNumberToObject(le, "layer", l);
        rc = do_layer(s, l, &lw, le, e);
        cJSON_AddNumberToObject(le, "seconds", cs_elapsed(tl));
        cJSON_AddItemToArray(ls, le);
        if (!rc) {
            double t = ptq_now();
            rc = commit_layer(s, l, e);
            s->t[T_WRITE] += cs_elapsed(t);
        }
        if (!rc) {
            char pre[64];
            snprintf(pre, sizeof pre, "model.layers.%d.", l);
            drop_source_pages(s, pre);
        }
    }
    /* the last commit (also after a failure: its thread reads s->hidden) */
    ptq_err e2;
    double t = ptq_now();
    int rc2 = commit_wait(s, rc ? &e2 : e);
    s->t[T_WRITE] += cs_elapsed(t);
    if (!rc) rc = rc2;
    ptq_layer_w_free(&lw);
    return rc;
}

/* The head, the report, the manifest; the bundle renamed into place. */
static int finish(cstate *s, double t0, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    double t = ptq_now();
    int rc = add_dense(s, "model.norm.weight", s->x32, s->nscratch, e);
    if (!rc && !s->cfg->tie_embeddings) rc = add_dense(s, "lm_head.weight", s->x32, s->nscratch, e);
    s->t[T_WRITE] += cs_elapsed(t);
    if (!rc && o->report) rc = write_report(s, t0, e);
    if (rc) return rc;
    cJSON *top = manifest_top(s);
    rc = ptq_bw_finish(s->bw, top, e);
    s->bw = NULL; /* freed by finish, also on failure */
    cJSON_Delete(top);
    if (rc) unlink(s->partial_path);
    unlink(s->journal_path);
    if (s->hidden_path) unlink(s->hidden_path);
    if (!rc && o->progress && o->progress->done) o->progress->done(o->progress->ctx, o->out);
    return rc;
}

static int run(cstate *s, ptq_err *e)
{
    double t0 = ptq_now();
    s->partial_path = path_cat(s->o->out, ".partial");
    s->journal_path = path_cat(s->o->out, ".journal");
    if (!s->partial_path || !s->journal_path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    int start, rc = setup(s, &start, e);
    if (!rc) rc = layers(s, start, e);
    if (!rc) rc = finish(s, t0, e);
    return rc;
}

int ptq_compile(const ptq_compile_opts *o, ptq_err *e)
{
    cstate *s = calloc(1, sizeof *s);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    s->o = o;
    s->m = o->method ? o->method : ptq_method_default();
    int blas = ptq_blas_single();
    int rc = run(s, e);
    cleanup(s, rc != 0);
    ptq_blas_restore(blas);
    free(s);
    return rc;
}
