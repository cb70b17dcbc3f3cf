/* compile_export.c - see compile_export.h */
#include "src/compile_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/bundle.h"
#include "formats/export.h"
#include "lib/compile/method.h"
#include "lib/qfmt/qtensor.h"
#include "src/cli.h"

/* What the flags alone show that format cannot hold, or NULL.  These mirror
 * the exporter rows' checks (formats/export_*.c), which still run on the
 * written bundle and have the last word; with a --recipe the per-layer
 * settings are left to them. */
static const char *flags_refused(const char *format, const ptq_compile_opts *o)
{
    int gptq = !strcmp(format, "gptq"), awq = !strcmp(format, "awq");
    int a8 = ptq_method_a8(o->method), bits = o->q.q.bits;
    if (!a8 && o->method->format != PTQ_QF_INT)
        return "the method's weights are codebook indices, not an integer grid the format "
               "holds";
    if (o->q.rotate)
        return "--rotate hadamard: the int-had weights are rotated, which no export format holds";
    if (o->kv_int8 && (gptq || awq || !strcmp(format, "compressed-tensors")))
        return "--kv-cache int8: the format has no place for int8 KV-cache scales";
    if (a8 && gptq) return "an 8-bit-activation method: gptq holds integer weights only";
    if (a8 && awq) return "an 8-bit-activation method: AWQ GEMM holds 4-bit integer weights only";
    if (gptq && o->nskip)
        return "--skip: a gptq v1 quantize_config cannot mark a linear dense";
    if (o->recipe || a8) return NULL;
    if (gptq && bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return "gptq v1 packs 2, 3, 4 or 8 bits (--bits)";
    if (awq && bits != 4) return "AWQ GEMM is 4-bit only (--bits)";
    if (awq && o->q.act_order && !o->q.static_groups)
        return "act-order with --no-static-groups stores a g_idx and AWQ GEMM has none (drop "
               "--no-static-groups, or export as gptq)";
    return NULL;
}

/* One request from FORMAT[:DIR]; 0 or the status (message printed). */
static int resolve(cx_req *r, const char *spec, const ptq_compile_opts *o)
{
    const char *colon = strchr(spec, ':');
    size_t fl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (fl >= sizeof r->format) fl = sizeof r->format - 1;
    memcpy(r->format, spec, fl);
    r->format[fl] = 0;
    if (!ptq_exporter_get(r->format)) {
        char list[256] = "";
        for (int i = 0; i < ptq_exporter_count(); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     ptq_exporter_row(i)->name);
        return cli_usage_error("compile", "--export: unknown format '%s' (one of %s)", r->format,
                               list);
    }
    if (colon && !colon[1]) return cli_usage_error("compile", "--export %s: empty DIR", spec);
    size_t ol = strlen(o->out);
    if (!colon && ol > 4 && !strcmp(o->out + ol - 4, ".ptq")) ol -= 4;
    r->dir = colon ? strdup(colon + 1) : malloc(ol + fl + 2);
    if (!r->dir) return PTQ_ENOMEM; /* reported by cmd_compile */
    /* a directory OUT-FORMAT, or for a one-file format the file OUT.FORMAT */
    int one_file = ptq_exporter_get(r->format)->write_file != NULL;
    if (!colon)
        snprintf(r->dir, ol + fl + 2, "%.*s%c%s", (int)ol, o->out, one_file ? '.' : '-', r->format);
    const char *why = flags_refused(r->format, o);
    if (why) return cli_usage_error("compile", "--export %s: %s", r->format, why);
    struct stat sb;
    if (!strcmp(r->dir, o->out) || lstat(r->dir, &sb) == 0) {
        fprintf(stderr, "ptqc compile: --export %s: %s already exists; the export writes a new "
                "directory\n", r->format, r->dir);
        return PTQ_EOUTPUT;
    }
    return 0;
}

int cx_check(cx_list *l, const ptq_compile_opts *o)
{
    if (!l->n) return 0;
    if (!(l->req = calloc((size_t)l->n, sizeof *l->req))) return PTQ_ENOMEM;
    for (int i = 0; i < l->n; i++) {
        int rc = resolve(&l->req[i], l->spec[i], o);
        if (rc) return rc;
        for (int j = 0; j < i; j++)
            if (!strcmp(l->req[j].dir, l->req[i].dir))
                return cli_usage_error("compile", "--export: two exports to %s", l->req[i].dir);
    }
    return 0;
}

int cx_run(const cx_list *l, const char *bundle, int quiet)
{
    int status = 0;
    for (int i = 0; i < l->n; i++) {
        const cx_req *r = &l->req[i];
        ptq_bundle b;
        ptq_err e = {0, ""};
        int rc = ptq_bundle_open(&b, bundle, 1, &e);
        if (!rc) {
            rc = ptq_export(&b, r->format, r->dir, &e);
            ptq_bundle_close(&b);
        }
        if (rc) {
            cli_report(&e);
            fprintf(stderr, "ptqc compile: %s is written; --export %s failed (status %d), "
                    "nothing is left at %s\n", bundle, r->format, rc, r->dir);
            status = CX_EXIT_EXPORT;
            continue;
        }
        if (!quiet) fprintf(stderr, "ptqc compile: exported %s to %s\n", r->format, r->dir);
    }
    return status;
}

void cx_free(cx_list *l)
{
    for (int i = 0; l->req && i < l->n; i++) free(l->req[i].dir);
    free(l->req);
    l->req = NULL;
}
