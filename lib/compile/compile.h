/* compile.h - the ptqc compile driver: layer-wise, sequential calibration.
 *
 * For each decoder layer, in order: widen its weights to float32; run the
 * layer over every calibration sample (in chunks) capturing the input of
 * q/k/v, accumulate their Hessian, quantize q, k and v; re-run the layer with
 * the quantized q/k/v and do the same for o, then gate/up, then down; finally
 * re-run the whole quantized layer to produce the FP16 hidden states that
 * feed the next layer (--hessians layer: all four Hessians from one pass of
 * the unquantized layer instead, the output still from the quantized one).
 * Each finished layer goes into the bundle and the resume journal
 * (lib/compile/journal.h).
 *
 * What a method does is one row of the method table (lib/compile/method.h):
 * a transform, a rounder and a packed format.
 *
 * Without --calib a run whose methods need no calibration (round-to-nearest
 * without a transform: rtn, w8a8, fp8; not with --kv-cache int8 or
 * --act-scales static, see ptq_method_needs_calib) runs none: no samples, no
 * forward pass, no Hessian.  Each linear is rounded from its weights alone
 * and its report errors are weight-space errors ||W - Q(W)||_F^2 / ||W||_F^2
 * (what lib/quant/err_metric.h gives with H = I); the calibration record says
 * "source": "none" and why.  Otherwise, without --calib, the model writes
 * its own samples (data-free, lib/model/generate.h).
 */
#ifndef PTQC_COMPILE_H
#define PTQC_COMPILE_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/quant/gptq.h"

/* The calibration budget where o->nsamples / o->seqlen are 0: from --calib
 * text the GPTQ paper's 128 windows of 2048 tokens; data-free, 128 sequences
 * of 128 tokens that the model writes itself (the KV-cached decoder widens
 * every layer once per step for all sequences together, so many short
 * sequences cost far less than few long ones: ptqc-compile(1) gives the
 * measurement). */
#define PTQ_CALIB_NSAMPLES 128
#define PTQ_CALIB_SEQLEN 2048
#define PTQ_DATAFREE_NSAMPLES 128
#define PTQ_DATAFREE_SEQLEN 128

struct ptq_method;

/* --hessians: PTQ_HESS_SEQUENTIAL takes each group's Hessian from the layer
 * with the earlier groups already quantized (o from the quantized q/k/v's
 * attention, down from the quantized gate/up: true-sequential);
 * PTQ_HESS_LAYER takes all four from one forward of the unquantized layer
 * (llm-compressor, the GPTQ paper without true-sequential).  In both the
 * next layer reads the quantized layer's output.  PTQ_HESS_DEFAULT: layer
 * for gptq, sequential for the other methods (ptqc-compile(1)). */
enum { PTQ_HESS_DEFAULT = 0, PTQ_HESS_SEQUENTIAL = 1, PTQ_HESS_LAYER = 2 };

/* Progress of a run, reported through the caller's callbacks (src/progress.c
 * prints them); any of them may be NULL.  Layers are numbered from 0. */
typedef struct ptq_compile_progress {
    void *ctx;
    void (*start)(void *ctx, int nlayers, int first_layer, int samples, int seqlen);
    void (*calib)(void *ctx, int done, int total);        /* data-free sampling, tokens */
    void (*step)(void *ctx, int layer, const char *step); /* awq, qkv, o, mlp, down, output */
    void (*layer_done)(void *ctx, int layer);             /* in the bundle and the journal */
    void (*warn)(void *ctx, const char *message);
    void (*done)(void *ctx, const char *output);
} ptq_compile_progress;

typedef struct ptq_compile_opts {
    const char *model;          /* checkpoint directory */
    const char *out;            /* OUT.ptq */
    const struct ptq_method *method; /* a row of the method table; NULL: gptq */
    ptq_gptq_opts q;            /* bits, sym, mse, group, act_order, static_groups, damp, block */
    const char *const *calib;   /* calibration sources (calib/text.h); none = data-free */
    int ncalib;
    const char *jsonl_field;    /* NULL: calib/text.h's default */
    int nsamples, seqlen;       /* 0: the defaults above */
    uint64_t seed;
    const char *const *skip;    /* fnmatch patterns of linears kept dense */
    int nskip;
    const char *report;         /* report JSON path or NULL */
    const char *tmpdir;         /* activations and resume states here, or NULL */
    int resume;
    const ptq_compile_progress *progress; /* or NULL */
    int chunk_tokens;           /* tokens per forward chunk (0 = 512) */
    int threads;                /* workers running chunks in parallel (0 = 1) */
    float alpha;                /* SmoothQuant migration strength in [0, 1] (0.5) */
    int act_static;             /* 8-bit methods: 1 per-tensor static activation
                                   scales from the calibration set, 0 per-token dynamic */
    int kv_int8;                /* 1: calibrate int8 KV-cache scales (any method) */
    int hessians;               /* where the Hessians come from: 0 the default,
                                   PTQ_HESS_SEQUENTIAL or PTQ_HESS_LAYER (above) */
    int awq_grid;               /* AWQ: points of the scale and clip searches (20) */
    int awq_tokens;             /* AWQ: tokens of the searches (0: PTQ_AWQ_TOKENS) */
    int awq_full_scan;          /* AWQ: 1 judge every ratio, 0 coarse to fine (ptq_awq_search) */
    int sym_set;                /* 1: --sym/--asym given (else awq defaults to asym) */
    int mse_set;                /* 1: --mse/--no-mse given (else the method's default,
                                   lib/compile/plan.c) */
    const char *recipe;         /* --recipe FILE (lib/compile/recipe.h) or NULL */
    const char *const *cmdline; /* the command line recorded as provenance */
    int ncmdline;
} ptq_compile_opts;

/* Run the compile; PTQ_OK or an error status with e filled.  On error nothing
 * is left at out, out.partial or out.journal.  BLAS runs single-threaded
 * during the run (its threaded kernels round differently with the thread
 * count); o->threads workers run chunks of samples instead. */
int ptq_compile(const ptq_compile_opts *o, ptq_err *e);

#endif
