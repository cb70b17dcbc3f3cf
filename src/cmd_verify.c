/* cmd_verify.c - `ptqc verify BUNDLE`: every checksum and the manifest's
 * consistency (ptqc-verify(1)); and the bundle view of `ptqc inspect`. */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "formats/config.h"
#include "src/cli.h"

static const char verify_help[] =
    "Usage: ptqc verify BUNDLE [--quiet] [--json]\n"
    "\n"
    "Check a .ptq bundle: the tar structure, the SHA-256 of every member, and the\n"
    "manifest (every tensor the config implies present with its shape, payload\n"
    "sizes matching bits/group/shape, members inside the file, no unknown members).\n"
    "Prints one line per problem.\n"
    "\n"
    "  -q, --quiet   print nothing; only the exit status tells\n"
    "      --json    print one JSON object: {path, ok, members, tensors, problems[]}\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status: 0 the bundle is intact, 7 a problem was found, 3 BUNDLE cannot be\n"
    "read, 2 usage.  See ptqc-verify(1) and ptqc-bundle(5).\n";

typedef struct lines {
    int quiet, json;
    cJSON *arr;
} lines;

static void on_problem(void *ud, const char *line)
{
    lines *l = ud;
    if (l->json) cJSON_AddItemToArray(l->arr, cJSON_CreateString(line));
    else if (!l->quiet) printf("%s\n", line);
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    lines l = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': l.quiet = 1; break;
        case 'j': l.json = 1; break;
        case 'h': fputs(verify_help, stdout); return 0;
        default: return cli_usage_error("verify", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("verify", "expected one BUNDLE argument");
    const char *path = argv[optind];
    l.arr = cJSON_CreateArray();
    ptq_bundle b;
    ptq_err e = {0};
    int nbad = 0, ntensors = 0, nmembers = 0;
    int rc = ptq_bundle_open(&b, path, 0, &e);
    if (rc == PTQ_EIO || rc == PTQ_ENOMEM) {
        cJSON_Delete(l.arr);
        if (!l.quiet) cli_report(&e);
        return rc;
    }
    if (rc) {
        on_problem(&l, e.msg); /* cannot even be read as a bundle */
        nbad = 1;
    } else {
        nmembers = b.nmembers;
        ntensors = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b.manifest, "tensors"));
        ptq_bundle_verify(&b, &nbad, on_problem, &l, &e);
        ptq_bundle_close(&b);
    }
    if (l.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddBoolToObject(o, "ok", nbad == 0);
        cJSON_AddNumberToObject(o, "members", nmembers);
        cJSON_AddNumberToObject(o, "tensors", ntensors);
        cJSON_AddItemToObject(o, "problems", l.arr);
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        cJSON_Delete(l.arr);
        if (!l.quiet) {
            if (nbad) printf("%s: FAILED: %d problem%s\n", path, nbad, nbad == 1 ? "" : "s");
            else printf("%s: OK: %d tensors, %d members, every checksum matches\n", path,
                        ntensors, nmembers);
        }
    }
    return nbad ? PTQ_EVERIFY : 0;
}

/* ---------------------------------------------------------------- inspect */

static void print_bundle_json(const char *path, const ptq_bundle *b, const ptq_bundle_totals *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "kind", "bundle");
    cJSON_AddNumberToObject(o, "file_bytes", (double)b->size);
    cJSON_AddNumberToObject(o, "tensor_bytes", t->payload_bytes);
    cJSON_AddNumberToObject(o, "params", t->params);
    cJSON_AddNumberToObject(o, "fp16_bytes", t->fp16_bytes);
    cJSON_AddNumberToObject(o, "compression",
                            t->payload_bytes > 0 ? t->fp16_bytes / t->payload_bytes : 0);
    cJSON_AddItemToObject(o, "manifest", cJSON_Duplicate(b->manifest, 1));
    char *s = cJSON_Print(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

static void print_model(const ptq_bundle *b)
{
    ptq_config c;
    ptq_err e;
    if (ptq_bundle_config(b, &c, &e)) return;
    printf("model: %s, %d layers, hidden %d, intermediate %d, heads %d (kv %d, head_dim %d), "
           "vocab %d, context %d%s%s, source dtype %s\n", c.model_type, c.n_layers, c.hidden,
           c.intermediate, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab, c.max_pos,
           c.tie_embeddings ? ", tied embeddings" : "", c.qkv_bias ? ", qkv bias" : "",
           c.torch_dtype);
}

static void print_tensor_table(const ptq_bundle *b)
{
    printf("\n%-52s %-6s %-6s %4s %5s %-4s %-13s %12s\n", "tensor", "method", "format", "bits",
           "group", "sym", "shape", "bytes");
    double aq_w = 0, aq_bytes = 0;
    for (int i = 0; i < ptq_bundle_ntensors(b); i++) {
        ptq_bundle_tinfo t;
        ptq_bundle_tensor_info(b, i, &t);
        char shape[32], bits[8] = "-", group[8] = "-", sym[8] = "-";
        snprintf(shape, sizeof shape, "%dx%d", t.rows, t.cols);
        const char *fmt = t.format;
        if (!strcmp(fmt, "int") || !strcmp(fmt, "int-had")) { /* int-had: int's fields */
            snprintf(bits, sizeof bits, "%d", t.bits);
            snprintf(group, sizeof group, "%d", t.group);
            snprintf(sym, sizeof sym, "%s%s", t.sym ? "yes" : "no", t.act_order ? "+g" : "");
        } else if (t.aq_m > 0) { /* aqlm: MxB per group of 8, bits per weight all counted */
            snprintf(bits, sizeof bits, "%dx%d", t.aq_m & 15, t.aq_b & 31);
            snprintf(group, sizeof group, "8");
            aq_w += (double)t.rows * t.cols, aq_bytes += (double)t.bytes;
        } else if (*t.dtype) {
            fmt = t.dtype;
        } else if (t.bits > 0 && t.bits < 100) { /* e8p: bits, no group */
            snprintf(bits, sizeof bits, "%d", (unsigned char)t.bits);
        }
        printf("%-52s %-6s %-6s %4s %5s %-4s %-13s %12llu\n", t.name, t.method, fmt, bits,
               group, sym, shape, (unsigned long long)t.bytes);
    }
    if (aq_w > 0) /* bits: MxB codebooks of the group of 8 */
        printf("aqlm: %.3f bits per weight over its linears (codes, fp16 codebooks and scales "
               "counted)\n", 8 * aq_bytes / aq_w);
}

int cli_inspect_bundle(const char *path, int json)
{
    ptq_bundle b;
    ptq_err e = {0};
    if (ptq_bundle_open(&b, path, 0, &e)) return cli_report(&e);
    ptq_bundle_totals t;
    ptq_bundle_get_totals(&b, &t);
    if (json) {
        print_bundle_json(path, &b, &t);
        ptq_bundle_close(&b);
        return 0;
    }
    const cJSON *man = b.manifest, *v = cJSON_GetObjectItemCaseSensitive(man, "version");
    printf("%s: ptqc bundle version %d, %zu bytes, %d members\n", path,
           cJSON_IsNumber(v) ? v->valueint : 0, b.size, b.nmembers);
    print_model(&b);
    print_tensor_table(&b);
    printf("\ntensors: %d, parameters: %.0f, payload bytes: %.0f, fp16 bytes: %.0f, "
           "compression: %.2fx (%.2f bits per parameter)\n", t.tensors, t.params,
           t.payload_bytes, t.fp16_bytes,
           t.payload_bytes > 0 ? t.fp16_bytes / t.payload_bytes : 0.0,
           t.params > 0 ? 8 * t.payload_bytes / t.params : 0.0);
    for (int i = 0; i < ptq_bundle_nfiles(&b); i++) {
        const char *member, *sha;
        uint64_t size;
        ptq_bundle_file_info(&b, i, &member, &size, &sha);
        printf("file: %s (%llu bytes, sha256 %.16s...)\n", member, (unsigned long long)size, sha);
    }
    /* the rest of the manifest (provenance, settings, report) as it stands */
    for (const cJSON *x = man->child; x; x = x->next) {
        if (!x->string || !strcmp(x->string, "format") || !strcmp(x->string, "version") ||
            !strcmp(x->string, "model") || !strcmp(x->string, "tensors") ||
            !strcmp(x->string, "files"))
            continue;
        char *s = cJSON_PrintUnformatted(x);
        printf("%s: %s\n", x->string, s ? s : "?");
        free(s);
    }
    ptq_bundle_close(&b);
    return 0;
}
