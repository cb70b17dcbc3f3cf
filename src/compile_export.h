/* compile_export.h - `ptqc compile ... --export FORMAT[:DIR]`: the bundle,
 * once written, exported as by `ptqc export` (ptqc-compile(1), ptqc-export(1)).
 *
 * Before compiling, cx_check refuses what can be known from the flags alone
 * (an unknown format, an export directory that exists, a format that cannot
 * hold what the flags ask for: awq with --bits 8, gptq with --skip, ...), so
 * an overnight run does not fail at its end.  After the bundle is written,
 * cx_run opens it and runs each exporter's own check and write; a failed
 * export leaves the bundle in place and gives CX_EXIT_EXPORT.
 */
#ifndef PTQC_COMPILE_EXPORT_H
#define PTQC_COMPILE_EXPORT_H

#include "lib/compile/compile.h"

/* The exit status of a compile whose bundle was written but whose --export
 * failed (man/ptqc.1 EXIT STATUS). */
#define CX_EXIT_EXPORT 10

typedef struct cx_req {
    char format[64]; /* the exporter row's name */
    char *dir;       /* DIR, or OUT less ".ptq" + "-" + format, for a one-file
                      * format (gguf) + "." + format (malloc'ed) */
} cx_req;

typedef struct cx_list {
    const char **spec; /* the --export values, in order */
    int n;
    cx_req *req; /* n of them, after cx_check */
} cx_list;

/* Resolve and check the requests against the flags of o (its out set):
 * 0, or a usage error's status (2), or 6 when a DIR exists (the message on
 * stderr), or PTQ_ENOMEM (not reported). */
int cx_check(cx_list *l, const ptq_compile_opts *o);
/* Export the bundle to each request: 0, or CX_EXIT_EXPORT when one or more
 * failed (each named on stderr; the others and the bundle stay). */
int cx_run(const cx_list *l, const char *bundle, int quiet);
void cx_free(cx_list *l);

#endif
