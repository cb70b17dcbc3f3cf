/* compile.h - the ptqc compile driver: layer-wise, sequential calibration.
 *
 * For each decoder layer, in order: widen its weights to float32; run the
 * layer over every calibration sample (in chunks) capturing the input of
 * q/k/v, accumulate their Hessian, quantize q, k and v; re-run the layer with
 * the quantized q/k/v and do the same for o, then gate/up, then down; finally
 * re-run the whole quantized layer to produce the FP16 hidden states that
 * feed the next layer.  Each finished layer goes into the bundle and the
 * resume journal (lib/compile/journal.h).
 */
#ifndef PTQC_COMPILE_H
#define PTQC_COMPILE_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/quant/gptq.h"

enum ptq_method {
    PTQ_METHOD_RTN = 0,
    PTQ_METHOD_GPTQ = 1,
    /* activation-quantized (lib/qfmt/w8a8.h): 8-bit per-channel weights, 8-bit
     * activations; SmoothQuant folds its factors into the RMSNorms first */
    PTQ_METHOD_SQ = 2,      /* smoothquant: smoothing + int8 RTN weights */
    PTQ_METHOD_SQ_GPTQ = 3, /* smoothquant+gptq: smoothing + int8 GPTQ weights */
    PTQ_METHOD_W8A8 = 4,    /* w8a8: int8 without smoothing (the naive baseline) */
    PTQ_METHOD_FP8 = 5,     /* fp8: E4M3 weights and activations */
    /* weight-only AWQ (lib/quant/awq.h, lib/compile/awq_step.h): scales folded into the
     * op before, clipping, then round-to-nearest or GPTQ */
    PTQ_METHOD_AWQ = 6,      /* awq */
    PTQ_METHOD_AWQ_GPTQ = 7, /* awq+gptq */
};
/* "rtn", "gptq", "smoothquant", "smoothquant+gptq", "w8a8", "fp8", "awq", "awq+gptq" */
const char *ptq_method_name(int method);

typedef struct ptq_compile_opts {
    const char *model;          /* checkpoint directory */
    const char *out;            /* OUT.ptq */
    int method;                 /* enum ptq_method */
    ptq_gptq_opts q;            /* bits, sym, mse, group, act_order, static_groups, damp, block */
    const char *const *calib;   /* calibration sources (calib/text.h); none = data-free */
    int ncalib;
    const char *jsonl_field;    /* NULL: calib/text.h's default */
    int nsamples, seqlen;
    uint64_t seed;
    const char *const *skip;    /* fnmatch patterns of linears kept dense */
    int nskip;
    const char *report;         /* report JSON path or NULL */
    const char *tmpdir;         /* activations and resume states here, or NULL */
    int resume;
    int progress;               /* enum prog_mode (src/progress.h) */
    int chunk_tokens;           /* tokens per forward chunk (0 = 512) */
    int threads;                /* workers running chunks in parallel (0 = 1) */
    float alpha;                /* SmoothQuant migration strength in [0, 1] (0.5) */
    int act_static;             /* 8-bit methods: 1 per-tensor static activation
                                   scales from the calibration set, 0 per-token dynamic */
    int kv_int8;                /* 1: calibrate int8 KV-cache scales (any method) */
    int awq_grid;               /* AWQ: points of the scale and clip searches (20) */
    int sym_set;                /* 1: --sym/--asym given (else awq defaults to asym) */
    const char *recipe;         /* --recipe FILE (lib/compile/recipe.h) or NULL */
    const char *const *cmdline; /* the command line recorded as provenance */
    int ncmdline;
} ptq_compile_opts;

/* Run the compile; PTQ_OK or an error status with e filled.  On error nothing
 * is left at out, out.partial or out.journal. */
int ptq_compile(const ptq_compile_opts *o, ptq_err *e);

#endif
