/* compile.h - the ptqc compile driver: layer-wise, sequential calibration.
 *
 * For each decoder layer, in order: widen its weights to float32; run the
 * layer over every calibration sample (in chunks) capturing the input of
 * q/k/v, accumulate their Hessian, quantize q, k and v; re-run the layer with
 * the quantized q/k/v and do the same for o, then gate/up, then down; finally
 * re-run the whole quantized layer to produce the FP16 hidden states that
 * feed the next layer.  Each finished layer goes into the bundle and the
 * resume journal (src/journal.h).
 */
#ifndef PTQC_COMPILE_H
#define PTQC_COMPILE_H

#include <stdint.h>

#include "lib/err.h"
#include "lib/gptq.h"

enum ptq_method { PTQ_METHOD_RTN = 0, PTQ_METHOD_GPTQ = 1 };

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
    int chunk_tokens;           /* tokens per forward chunk (0 = 2048) */
    int threads;                /* workers running chunks in parallel (0 = 1) */
    const char *const *cmdline; /* the command line recorded as provenance */
    int ncmdline;
} ptq_compile_opts;

/* Run the compile; PTQ_OK or an error status with e filled.  On error nothing
 * is left at out, out.partial or out.journal. */
int ptq_compile(const ptq_compile_opts *o, ptq_err *e);

#endif
