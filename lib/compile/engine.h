/* engine.h - the compile engine's own interfaces, shared by the files of
 * lib/compile (not installed): the run's state, the plan of every linear,
 * the hooks of the transforms and rounders of the method table, and the
 * steps of the run, one concern per file:
 *
 *   engine.c      the run: setup, the layer loop, one layer, the head
 *   plan.c        flag resolution and the per-linear plan (--skip, --recipe)
 *   provenance.c  source file hashes, the journal key
 *   calibrate.c   calibration text and data-free samples
 *   pass.c        the stages of one layer over every sample on the workers;
 *                 the Hessian
 *   quantize.c    one linear: its rounder and the report's errors
 *   round.c       the rounders (rtn, gptq)
 *   round_quip.c  the QuIP# rounder (incoherence, BlockLDLQ, E8P)
 *   round_aqlm.c  the AQLM rounder (additive codebooks, beam search)
 *   rotate.c      --rotate hadamard around the rtn / gptq rounders
 *   smooth.c      the SmoothQuant transform
 *   awq_step.c    the AWQ transform (the layer step)
 *   kvcal.c       int8 KV-cache scales
 *   write.c       tensors into the bundle; dropping source pages
 *   work.c        buffers and cleanup
 *   resume.c      commit a layer, resume from the journal
 *   report.c      settings, report and manifest JSON
 */
#ifndef PTQC_ENGINE_H
#define PTQC_ENGINE_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "calib/samples.h"
#include "calib/text.h"
#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "lib/base/par.h"
#include "lib/compile/awq_step.h"
#include "lib/compile/compile.h"
#include "lib/compile/journal.h"
#include "lib/compile/method.h"
#include "lib/compile/recipe.h"
#include "lib/model/model.h"

#define PTQ_MAX_WORKERS 64

/* Steps whose wall time the report splits. */
/* T_HESS: of T_CAPTURE, the Hessian accumulation; T_AWQ: the AWQ step. */
enum { T_HASH, T_CALIB, T_EMBED, T_CAPTURE, T_QUANT, T_ERROR, T_FORWARD, T_WRITE, T_HESS, T_AWQ,
       T_NSTEPS };

/* The four groups of linears, quantized in this order. */
extern const int ptq_group_first[4], ptq_group_count[4];

/* What happens to one linear: the command line's settings, then --recipe. */
typedef struct lin_plan {
    const ptq_method *m;
    ptq_gptq_opts q;            /* bits, sym, group, ... */
    int skip;                   /* kept dense */
} lin_plan;

typedef struct metafiles {      /* config.json, tokenizer.json, tokenizer_config.json */
    char *data[3];
    size_t len[3];
} metafiles;
extern const char *const ptq_meta_names[3];

/* A layer's commit (resume.c): the hidden states that the next layer reads
 * saved and the journal written on a thread of its own while the next layer
 * runs, joined before that layer's output overwrites the hidden states. */
typedef struct commit_job {
    int active, layer;
    ptq_task task;
    const struct cstate *s;
    uint64_t off;   /* the bundle's synced length after the layer */
    char *hp;       /* the hidden-state file it writes */
    cJSON *state;   /* s->state as it was at the commit */
    int rc;
    ptq_err e;
} commit_job;

typedef struct cstate {
    const ptq_compile_opts *o;
    const ptq_method *m;        /* o->method or the default */
    ptq_gptq_opts q;            /* o->q with the group resolved */
    lin_plan *plan;             /* [n_layers * PTQ_NLINEAR] */
    recipe rec;                 /* --recipe, or empty */
    float *wclip;               /* [max rows*cols] weights clamped to the AWQ clips */
    awq_layer_res awq;          /* the AWQ step of the current layer */
    ptq_checkpoint ck;
    int ck_open;
    const ptq_config *cfg;
    ptq_weights src;
    ptq_samples smp;            /* the calibration windows (empty after a resume) */
    int nocal;                  /* 1: no calibration (no samples, H = I, weight-space errors) */
    int want_nsamples, want_seqlen; /* the budget asked for (o's or the defaults) */
    int nsamples, seqlen;       /* N = nsamples * seqlen tokens (0 with nocal) */
    size_t ntok;
    uint16_t *hidden;           /* [ntok, D] FP16 */
    size_t hidden_bytes;
    int hidden_mapped;
    float *stage;               /* [ntok, stage_w] float32: the layer between its stages (pass.c) */
    size_t stage_w, stage_bytes;
    int stage_mapped;
    cJSON *key;                 /* journal key */
    cJSON *state;               /* {"calibration":{...},"layers":[...]} */
    cJSON *files;               /* provenance: source files */
    ptq_bundle_writer *bw;
    char *partial_path, *journal_path;
    char *hidden_path;          /* current resume state file, or NULL */
    commit_job commit;          /* the last layer's commit while it runs */
    double t[T_NSTEPS];
    /* per layer work */
    int nworkers;               /* --threads: chunks run in parallel */
    ptq_fwd *fwds[PTQ_MAX_WORKERS];
    int chunk;                  /* samples per forward chunk */
    float *x32s[PTQ_MAX_WORKERS]; /* [chunk*seqlen, D] per worker */
    float *caps[PTQ_MAX_WORKERS]; /* [chunk*seqlen, max cols] per worker */
    float *x32;                 /* = x32s[0] (scratch of the main thread) */
    size_t nscratch;            /* floats in x32 */
    float *H, *Hw;              /* [maxcols^2] */
    int hess_layer;             /* 1: --hessians layer (every H from the unquantized layer) */
    float *Hl[4], *amaxl[4];    /* with hess_layer: group g's H [cols_g^2] and max |x| */
    float *wq;                  /* [max rows*cols] dequantized weights */
    float *errbuf;              /* [2 * PTQ_ERR_ROWS, max cols] (lib/quant/err_metric.h) */
    size_t mem_weights, mem_acts, mem_hess;
    float *amax;                /* [maxcols] max |x| per input channel of the last capture */
    float *kvcaps[PTQ_MAX_WORKERS]; /* [chunk*seqlen, 2 kv_dim] keys, values per worker */
    float *kvmax;               /* [2 kv_dim] max |k|, max |v| per channel; NULL: no KV */
    float *kvscale;             /* [2 kv_dim] the layer's KV scales, keys then values */
    int cur_layer, cur_linear;  /* the linear being rounded (quantize.c; QuIP#'s signs) */
} cstate;

/* The hooks of a transform.  folded[0] / folded[1] name the transform that
 * folded factors into input_layernorm / post_attention_layernorm (the
 * norm's stored method), NULL while none did. */
typedef struct ptq_transform_ops {
    const char *name;
    int asym_default;  /* the grid defaults to asymmetric (no --sym/--asym) */
    int own_clipping;  /* it searches its own clipping: --mse does not apply */
    /* before the groups of layer l, when a linear of the layer uses it */
    int (*layer_step)(cstate *s, int l, ptq_layer_w *lw, const char *folded[2], ptq_err *e);
    /* after the capture of group g (s->H, s->amax), when a linear of it uses it */
    int (*group_step)(cstate *s, int l, int g, ptq_layer_w *lw, const char *folded[2],
                      ptq_err *e);
    /* report entries of a linear that uses it */
    void (*report)(const cstate *s, int which, cJSON *entry);
    /* its settings in the manifest */
    void (*settings)(cJSON *q, const ptq_compile_opts *o);
    /* flags it refuses, with --method m (its own or another transform's) */
    int (*check)(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
                 ptq_err *e);
    int needs_calib;   /* it reads calibration activations (scales from X) */
} ptq_transform_ops;

/* The hooks of a rounder.  round: W [rows, cols] onto q's grid in format
 * (PTQ_QF_INT, or an 8-bit format with activation scale act), with the
 * Hessian s->H; rep (may be NULL) gets GPTQ's report. */
typedef struct ptq_rounder_ops {
    const char *name;
    int act_order;     /* takes --act-order / --static-groups */
    int (*round)(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q,
                 int format, float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
    void (*settings)(cJSON *q, const ptq_gptq_opts *qo);
    int (*check)(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
                 ptq_err *e);
    int needs_calib;   /* it reads the Hessian H = 2/N X^T X */
    /* linear `which` of layer l with plan p, before anything runs (shapes,
     * bits: a refusal naming the linear), or NULL */
    int (*plan_check)(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e);
} ptq_rounder_ops;

extern const ptq_transform_ops ptq_transforms[PTQ_TF_COUNT];
extern const ptq_rounder_ops ptq_rounders[PTQ_RD_COUNT];

/* method.c: "awq / awq+gptq", the rows with the AWQ transform */
void ptq_awq_methods(char *buf, size_t n);
/* engine.c */
double cs_elapsed(double t0);
void cs_warn(cstate *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cs_step(cstate *s, int layer, const char *step);
const lin_plan *plan_of(const cstate *s, int l, int which);
void weight_name(char *buf, size_t n, int l, int which, const char *what);
char *dir_join(const char *dir, const char *name);
char *path_cat(const char *a, const char *b);
const char *base_name(const char *p);
/* plan.c */
int check_flags(cstate *s, ptq_err *e);
int build_plan(cstate *s, ptq_err *e);
int needs_calibration(const cstate *s);
void calib_budget(cstate *s);
/* provenance.c */
int source_files(cstate *s, metafiles *m, ptq_err *e);
cJSON *make_key(cstate *s, const ptq_text *txt);
/* calibrate.c */
int read_text(cstate *s, ptq_text *txt, ptq_err *e);
int calibrate(cstate *s, const ptq_text *txt, cJSON *cal, ptq_err *e);
/* pass.c */
/* stage g (0-3: the input of group g, with hess its Hessian into s->H;
 * 4: the layer's output into s->hidden) */
int layer_pass(cstate *s, const ptq_layer_w *lw, int g, int hess, ptq_err *e);
int embed_samples(cstate *s, ptq_err *e);
/* quantize.c */
int quantize_linear(cstate *s, int l, int which, ptq_layer_w *lw, ptq_qtensor *out,
                    cJSON *entry, ptq_err *e);
/* round.c: the rounders' hooks */
int rtn_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
              float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
int rtn_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
              ptq_err *e);
int gptq_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
void gptq_settings(cJSON *q, const ptq_gptq_opts *qo);
/* round_quip.c: QuIP# (incoherence + BlockLDLQ onto E8P, lib/qfmt/qf_e8p.c) */
int quip_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
void quip_settings(cJSON *q, const ptq_gptq_opts *qo);
int quip_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
               ptq_err *e);
int quip_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e);
/* round_aqlm.c: AQLM (additive codebooks, lib/quant/aqlm.h, lib/qfmt/qf_aqlm.c) */
int aqlm_round(cstate *s, const float *W, int rows, int cols, const ptq_gptq_opts *q, int format,
               float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
void aqlm_settings(cJSON *q, const ptq_gptq_opts *qo);
/* the plan of one aqlm linear in its report entry: aqlm_codebooks "MxB" and
 * bits per weight with the codebooks and scales counted */
void aqlm_plan_json(cJSON *ent, const ptq_gptq_opts *qo, int rows, int cols);
int aqlm_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
               ptq_err *e);
int aqlm_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e);
/* rotate.c: --rotate hadamard for the int rounders (rtn, gptq; lib/qfmt/qf_int_had.c) */
int rotate_round(cstate *s, int rd, const float *W, int rows, int cols, const ptq_gptq_opts *q,
                 int format, float act, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e);
int rotate_check(const ptq_method *m, const ptq_compile_opts *o, ptq_err *e);
int rotate_plan_check(const cstate *s, int l, int which, const lin_plan *p, ptq_err *e);
void rotate_settings(const cstate *s, cJSON *q);
/* smooth.c, awq_step.c: the transforms' hooks */
int smooth_group_step(cstate *s, int l, int g, ptq_layer_w *lw, const char *folded[2],
                      ptq_err *e);
void smooth_settings(cJSON *q, const ptq_compile_opts *o);
int smooth_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
                 ptq_err *e);
int awq_layer_step(cstate *s, int l, ptq_layer_w *lw, const char *folded[2], ptq_err *e);
void awq_entry(const cstate *s, int which, cJSON *entry);
void awq_settings(cJSON *q, const ptq_compile_opts *o);
int awq_check(const ptq_method *m, const ptq_compile_opts *o, const ptq_flags_given *given,
              ptq_err *e);
/* kvcal.c */
size_t kv_dim(const cstate *s);
int kv_absmax(cstate *s, const float *kv, int n, ptq_err *e);
void kv_scales(const cstate *s, float *kvs);
/* write.c */
int add_dense(cstate *s, const char *name, float *scratch, size_t nscratch, ptq_err *e);
int write_layer(cstate *s, int l, const ptq_layer_w *lw, const ptq_qtensor *qt,
                const char *const folded[2], const cJSON *lin, ptq_err *e);
void drop_source_pages(cstate *s, const char *prefix);
/* work.c */
int alloc_hidden(cstate *s, ptq_err *e);
int alloc_work(cstate *s, ptq_err *e);
void cleanup(cstate *s, int failed);
/* resume.c */
/* Start layer l's commit (the bundle synced now, the rest in the
 * background: at most one at a time); commit_wait finishes the running one
 * (the layer_done progress event comes then, once it is durable). */
int commit_layer(cstate *s, int l, ptq_err *e);
int commit_wait(cstate *s, ptq_err *e);
int resume_point(cstate *s, journal *j, int *start, ptq_err *e);
int resume_open(cstate *s, const journal *j, ptq_err *e);
/* report.c */
cJSON *settings_json(const cstate *s);
int write_report(cstate *s, double t0, ptq_err *e);
cJSON *manifest_top(cstate *s);

#endif
