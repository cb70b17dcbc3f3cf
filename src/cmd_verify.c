/* cmd_verify.c - `ptqc verify BUNDLE`: every checksum and the manifest's
 * consistency (ptqc-verify(1)); and the bundle view of `ptqc inspect`. */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
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

static double num(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : cJSON_IsTrue(x) ? 1 : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : "";
}

/* Bytes of all payloads of a tensor entry. */
static double entry_bytes(const cJSON *t)
{
    double n = 0;
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(t, "payloads");
    for (const cJSON *p = pl ? pl->child : NULL; p; p = p->next) n += num(p, "size");
    return n;
}

int cli_inspect_bundle(const char *path, int json)
{
    ptq_bundle b;
    ptq_err e = {0};
    if (ptq_bundle_open(&b, path, 0, &e)) return cli_report(&e);
    const cJSON *man = b.manifest;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(man, "tensors");
    double total = 0, f16 = 0, params = 0;
    for (const cJSON *t = ts->child; t; t = t->next) {
        total += entry_bytes(t);
        params += num(t, "rows") * num(t, "cols");
    }
    f16 = 2 * params;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "kind", "bundle");
        cJSON_AddNumberToObject(o, "file_bytes", (double)b.size);
        cJSON_AddNumberToObject(o, "tensor_bytes", total);
        cJSON_AddNumberToObject(o, "params", params);
        cJSON_AddNumberToObject(o, "fp16_bytes", f16);
        cJSON_AddNumberToObject(o, "compression", total > 0 ? f16 / total : 0);
        cJSON_AddItemToObject(o, "manifest", cJSON_Duplicate(man, 1));
        char *s = cJSON_Print(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        ptq_bundle_close(&b);
        return 0;
    }
    printf("%s: ptqc bundle version %.0f, %zu bytes, %d members\n", path, num(man, "version"),
           b.size, b.nmembers);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(man, "model");
    if (cJSON_IsObject(m)) {
        printf("model: %s, %.0f layers, hidden %.0f, intermediate %.0f, heads %.0f (kv %.0f, "
               "head_dim %.0f), vocab %.0f, context %.0f%s%s, source dtype %s\n",
               str(m, "model_type"), num(m, "num_hidden_layers"), num(m, "hidden_size"),
               num(m, "intermediate_size"), num(m, "num_attention_heads"),
               num(m, "num_key_value_heads"), num(m, "head_dim"), num(m, "vocab_size"),
               num(m, "max_position_embeddings"),
               num(m, "tie_word_embeddings") ? ", tied embeddings" : "",
               num(m, "qkv_bias") ? ", qkv bias" : "", str(m, "torch_dtype"));
    }
    printf("\n%-52s %-6s %-6s %4s %5s %-4s %-13s %12s\n", "tensor", "method", "format", "bits",
           "group", "sym", "shape", "bytes");
    for (const cJSON *t = ts->child; t; t = t->next) {
        char shape[32], bits[8] = "-", group[8] = "-", sym[8] = "-";
        snprintf(shape, sizeof shape, "%.0fx%.0f", num(t, "rows"), num(t, "cols"));
        const char *fmt = str(t, "format");
        if (!strcmp(fmt, "int")) {
            snprintf(bits, sizeof bits, "%.0f", num(t, "bits"));
            snprintf(group, sizeof group, "%.0f", num(t, "group"));
            snprintf(sym, sizeof sym, "%s", num(t, "sym") ? "yes" : "no");
            if (num(t, "act_order")) snprintf(sym + strlen(sym), sizeof sym - strlen(sym), "+g");
        } else {
            fmt = str(t, "dtype");
        }
        printf("%-52s %-6s %-6s %4s %5s %-4s %-13s %12.0f\n", str(t, "name"), str(t, "method"),
               fmt, bits, group, sym, shape, entry_bytes(t));
    }
    printf("\ntensors: %d, parameters: %.0f, payload bytes: %.0f, fp16 bytes: %.0f, "
           "compression: %.2fx (%.2f bits per parameter)\n",
           cJSON_GetArraySize(ts), params, total, f16, total > 0 ? f16 / total : 0.0,
           params > 0 ? 8 * total / params : 0.0);
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(man, "files");
    for (const cJSON *f = fs->child; f; f = f->next)
        printf("file: %s (%.0f bytes, sha256 %.16s...)\n", str(f, "member"), num(f, "size"),
               str(f, "sha256"));
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
