/* method.h - the table of compile methods: each method is one row, a
 * transform (what is done to the layer before rounding: nothing, SmoothQuant
 * smoothing, AWQ scaling and clipping), a rounder (round-to-nearest or GPTQ)
 * and the packed format it stores (lib/qfmt/qtensor.h).  The command line's
 * --method, the recipe parser, the manifest's "method", `ptqc compile --help`
 * and the checks of flags against methods all read this table; the man page's
 * list is checked against it (tests/check_methods.c).
 *
 * A name is either a row's name or TRANSFORM+ROUNDER ("awq+rtn" is awq,
 * "none+gptq" is gptq): the first row with that transform and rounder.
 *
 * Adding a method: a row here (method.c), and where it is new a transform or
 * a rounder row with its hooks (lib/compile/engine.h) and a packed format.
 */
#ifndef PTQC_METHOD_H
#define PTQC_METHOD_H

#include <stddef.h>

#include "lib/base/err.h"
#include "lib/compile/compile.h"

enum ptq_transform_id { PTQ_TF_NONE, PTQ_TF_SMOOTHQUANT, PTQ_TF_AWQ, PTQ_TF_COUNT };
enum ptq_rounder_id { PTQ_RD_RTN, PTQ_RD_GPTQ, PTQ_RD_QUIP, PTQ_RD_AQLM, PTQ_RD_COUNT };

typedef struct ptq_method {
    const char *name;   /* --method NAME, the manifest's "method" of a linear */
    int transform;      /* enum ptq_transform_id */
    int rounder;        /* enum ptq_rounder_id */
    int format;         /* PTQ_QF_INT (weight-only, --bits/--group), PTQ_QF_W8A8, PTQ_QF_FP8 */
} ptq_method;

/* The rows, in the order of --help and the man page. */
extern const ptq_method ptq_methods[];
extern const int ptq_nmethods;

/* The row of NAME or TRANSFORM+ROUNDER, or NULL. */
const ptq_method *ptq_method_find(const char *name);
/* gptq */
const ptq_method *ptq_method_default(void);
const char *ptq_transform_name(int transform);
const char *ptq_rounder_name(int rounder);
/* 1 when the method quantizes activations too (8-bit formats): a fixed
 * grid (8 bits, symmetric, per output channel) and no --recipe. */
int ptq_method_a8(const ptq_method *m);
/* 1 when a recipe may choose it per linear (the weight-only methods). */
int ptq_method_per_linear(const ptq_method *m);
/* 1 when the method reads calibration activations: its transform (AWQ and
 * SmoothQuant scale by them) or its rounder (GPTQ's Hessian) does.
 * Round-to-nearest without a transform (rtn, w8a8, fp8) depends on the
 * weights alone. */
int ptq_method_needs_calib(const ptq_method *m);
/* "rtn, gptq, ... or fp8": the names of every row (per_linear: only those a
 * recipe accepts) joined by ", " and a final " or ". */
void ptq_method_list(char *buf, size_t n, int per_linear);

/* Which flags the command line gave explicitly (the others are defaults). */
typedef struct ptq_flags_given {
    int bits, group, alpha, act_scales, awq_grid, awq_tokens, awq_scan;
} ptq_flags_given;

/* The flags that do not apply to o->method: PTQ_EUSAGE with a message
 * naming the flag ("--alpha is a smoothquant option"). */
int ptq_method_check(const ptq_compile_opts *o, const ptq_flags_given *given, ptq_err *e);

#endif
