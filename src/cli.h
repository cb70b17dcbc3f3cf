/* cli.h - what every ptqc subcommand shares: error printing, number parsing,
 * global options.  Only src/ prints and exits. */
#ifndef PTQC_CLI_H
#define PTQC_CLI_H

#include "lib/base/clock.h" /* ptq_now: the subcommands' clock */
#include "lib/base/err.h"

/* Print "ptqc: <message>" to stderr and return e->status. */
int cli_report(const ptq_err *e);
/* Print "ptqc CMD: <message>" plus a hint to --help; return PTQ_EUSAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse an integer / real flag value in [lo, hi]; on failure report a usage
 * error naming the flag and return PTQ_EUSAGE. */
int cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                     double *out);
/* Set the BLAS thread count (0 = leave OpenBLAS's default). */
void cli_set_threads(int n);
/* Transitional alias of ptq_now for callers edited concurrently; delete it
 * once `grep -rn cli_now src lib` finds nothing else. */
static inline double cli_now(void) { return ptq_now(); }

/* Subcommands: argv[0] is the subcommand name. */
int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `ptqc inspect` of a .ptq bundle (src/cmd_verify.c); returns the exit status. */
int cli_inspect_bundle(const char *path, int json);

#endif
