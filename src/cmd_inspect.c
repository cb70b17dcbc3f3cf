/* cmd_inspect.c - `ptqc inspect PATH [--json]`: what a checkpoint holds (its
 * config, every tensor with dtype, shape and bytes, the tokenizer).  See
 * man/ptqc-inspect.1.
 *
 * PATH is a checkpoint directory (validated like every other command opens
 * it), a single .safetensors file or a shard index (tensors only), or a .ptq
 * bundle (dispatched to inspect_bundle).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/checkpoint.h"
#include "formats/config_json.h"
#include "formats/gguf_model.h"
#include "lib/qfmt/ggml.h"
#include "src/cli.h"

static const char usage_text[] =
    "Usage: ptqc inspect PATH [--json]\n"
    "\n"
    "Show what PATH holds: the model config, every tensor (name, dtype, shape,\n"
    "bytes, file) with totals, and the tokenizer (style, vocabulary size, merges,\n"
    "added tokens, BOS/EOS).  PATH is a Hugging Face checkpoint directory\n"
    "(config.json, model.safetensors or shards with model.safetensors.index.json,\n"
    "tokenizer.json), a single .safetensors file or a model.safetensors.index.json\n"
    "(tensors only), or a .ptq bundle (its manifest: model config, every tensor's\n"
    "method/format/bits/group/shape/bytes, totals and compression ratio, files,\n"
    "provenance; --json prints the whole manifest).  The input is validated as\n"
    "every ptqc command opens it: a malformed file or a tensor whose shape\n"
    "disagrees with config.json is an error.\n"
    "\n"
    "Options:\n"
    "  --json      print one JSON object instead of text\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 success, 2 usage, 3 input unreadable, 4 input malformed,\n"
    "8 out of memory.  See ptqc-inspect(1).\n";

static void shape_text(char *buf, size_t n, const ptq_st_tensor *t)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---------------------------------------------------------------- text */

static void print_config(const ptq_config *c)
{
    printf("config: %s\n", c->model_type);
    printf("  hidden_size %d, intermediate_size %d, layers %d\n", c->hidden, c->intermediate,
           c->n_layers);
    printf("  heads %d, kv_heads %d, head_dim %d\n", c->n_heads, c->n_kv_heads, c->head_dim);
    printf("  vocab_size %d, max_position_embeddings %d\n", c->vocab, c->max_pos);
    printf("  rms_norm_eps %g, rope_theta %g, rope_scaling %s", (double)c->rms_eps,
           (double)c->rope_theta, ptq_rope_name(c->rope_scaling));
    if (c->rope_scaling == PTQ_ROPE_LINEAR) printf(" (factor %g)", (double)c->rope_factor);
    if (c->rope_scaling == PTQ_ROPE_LLAMA3)
        printf(" (factor %g, low_freq_factor %g, high_freq_factor %g, "
               "original_max_position_embeddings %d)", (double)c->rope_factor,
               (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor,
               c->rope_orig_max_pos);
    printf("\n  tied embeddings %s, q/k/v bias %s, bos_token_id %d, eos_token_id %d, "
           "torch_dtype %s\n", c->tie_embeddings ? "yes" : "no", c->qkv_bias ? "yes" : "no",
           c->bos_id, c->eos_id, c->torch_dtype[0] ? c->torch_dtype : "-");
}

static void print_tensors(const ptq_safetensors *st)
{
    if (st->index_path) printf("index: %s\n", st->index_path);
    printf("files: %d\n", st->nfiles);
    for (int f = 0; f < st->nfiles; f++) printf("  %s (%zu bytes)\n", st->paths[f], st->sizes[f]);
    size_t w = 4;
    for (int i = 0; i < st->ntensors; i++)
        if (strlen(st->tensors[i].name) > w) w = strlen(st->tensors[i].name);
    printf("tensors: %d\n", st->ntensors);
    printf("  %-*s  %-7s  %-16s  %12s%s\n", (int)w, "name", "dtype", "shape", "bytes",
           st->nfiles > 1 ? "  file" : "");
    uint64_t params = 0, bytes = 0;
    uint64_t per_dtype[16] = {0};
    for (int i = 0; i < st->ntensors; i++) {
        const ptq_st_tensor *t = &st->tensors[i];
        char sh[160];
        shape_text(sh, sizeof sh, t);
        printf("  %-*s  %-7s  %-16s  %12llu", (int)w, t->name, ptq_dtype_name(t->dtype), sh,
               (unsigned long long)t->nbytes);
        if (st->nfiles > 1) printf("  %s", base_name(st->paths[t->file]));
        printf("\n");
        params += ptq_st_numel(t);
        bytes += t->nbytes;
        if ((unsigned)t->dtype < 16) per_dtype[t->dtype]++;
    }
    printf("total: %d tensors, %llu parameters, %llu bytes (", st->ntensors,
           (unsigned long long)params, (unsigned long long)bytes);
    int first = 1;
    for (int d = 1; d < 16; d++)
        if (per_dtype[d]) {
            printf("%s%s: %llu", first ? "" : ", ", ptq_dtype_name((ptq_dtype)d),
                   (unsigned long long)per_dtype[d]);
            first = 0;
        }
    printf(")\n");
}

static void print_token(const ptq_tokenizer *t, const char *what, int id)
{
    if (id < 0) {
        printf(", %s none", what);
        return;
    }
    const char *p = ptq_tok_piece(t, id);
    printf(", %s %d", what, id);
    if (p) printf(" (%s)", p);
}

static void print_tokenizer(const ptq_tokenizer *t)
{
    if (!t) {
        printf("tokenizer: none (no tokenizer.json)\n");
        return;
    }
    printf("tokenizer: %s, vocab %d, merges %d, added tokens %d", ptq_tok_style(t),
           ptq_tok_vocab_size(t), ptq_tok_n_merges(t), ptq_tok_n_added(t));
    print_token(t, "bos", ptq_tok_bos(t));
    print_token(t, "eos", ptq_tok_eos(t));
    printf(", add_bos %s\n", ptq_tok_add_bos(t) ? "yes" : "no");
}

/* ---------------------------------------------------------------- JSON */

static void json_tensors(cJSON *root, const ptq_safetensors *st)
{
    if (st->index_path) cJSON_AddStringToObject(root, "index", st->index_path);
    else cJSON_AddNullToObject(root, "index");
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    for (int f = 0; f < st->nfiles; f++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", st->paths[f]);
        cJSON_AddNumberToObject(o, "bytes", (double)st->sizes[f]);
        cJSON_AddItemToArray(files, o);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    double params = 0, bytes = 0;
    for (int i = 0; i < st->ntensors; i++) {
        const ptq_st_tensor *t = &st->tensors[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "dtype", ptq_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddStringToObject(o, "file", base_name(st->paths[t->file]));
        cJSON_AddItemToArray(arr, o);
        params += (double)ptq_st_numel(t);
        bytes += (double)t->nbytes;
    }
    cJSON *tot = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(tot, "tensors", st->ntensors);
    cJSON_AddNumberToObject(tot, "parameters", params);
    cJSON_AddNumberToObject(tot, "bytes", bytes);
}

static cJSON *json_token(const ptq_tokenizer *t, int id)
{
    if (id < 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    const char *p = ptq_tok_piece(t, id);
    if (p) cJSON_AddStringToObject(o, "piece", p);
    else cJSON_AddNullToObject(o, "piece");
    return o;
}

static cJSON *json_tokenizer(const ptq_tokenizer *t)
{
    if (!t) return cJSON_CreateNull();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "style", ptq_tok_style(t));
    cJSON_AddNumberToObject(j, "vocab_size", ptq_tok_vocab_size(t));
    cJSON_AddNumberToObject(j, "merges", ptq_tok_n_merges(t));
    cJSON_AddNumberToObject(j, "added_tokens", ptq_tok_n_added(t));
    cJSON_AddItemToObject(j, "bos", json_token(t, ptq_tok_bos(t)));
    cJSON_AddItemToObject(j, "eos", json_token(t, ptq_tok_eos(t)));
    cJSON_AddBoolToObject(j, "add_bos", ptq_tok_add_bos(t));
    return j;
}

static int print_json(cJSON *root)
{
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "ptqc: out of memory formatting JSON\n");
        return PTQ_ENOMEM;
    }
    printf("%s\n", s);
    free(s);
    return PTQ_OK;
}

/* ---------------------------------------------------------------- kinds */

/* The tensors of a .gguf checkpoint (llama.cpp names, ggml dims and types). */
static cJSON *gguf_tensors(const ptq_gguf *g, int print)
{
    cJSON *a = print ? NULL : cJSON_CreateArray();
    if (print) printf("gguf: version %u, alignment %u, %llu tensors\n", g->version, g->alignment,
                      (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const ptq_gguf_tensor *t = &g->tensors[i];
        const char *ty = ptq_ggml_type_name(t->type);
        if (print) {
            printf("  %-32s  %-5s  [%llu", t->name, ty, (unsigned long long)t->dims[0]);
            for (int d = 1; d < t->ndim; d++) printf(", %llu", (unsigned long long)t->dims[d]);
            printf("]  %llu bytes\n", (unsigned long long)t->nbytes);
            continue;
        }
        cJSON *o = cJSON_CreateObject(), *dims = cJSON_AddArrayToObject(o, "ggml_dims");
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", ty);
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)t->dims[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static int inspect_checkpoint(const char *path, int json)
{
    ptq_checkpoint ck;
    ptq_err e = {0};
    if (ptq_ckpt_open(&ck, path, &e)) return cli_report(&e);
    int rc = PTQ_OK;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddStringToObject(root, "kind", "checkpoint");
        cJSON_AddItemToObject(root, "config", ptq_config_json(&ck.cfg));
        if (ck.gguf) cJSON_AddItemToObject(root, "gguf_tensors", gguf_tensors(&ck.gguf->g, 0));
        else json_tensors(root, &ck.st);
        cJSON_AddItemToObject(root, "tokenizer", json_tokenizer(ck.tok));
        rc = print_json(root);
    } else {
        printf("checkpoint: %s\n", path);
        print_config(&ck.cfg);
        if (ck.gguf) gguf_tensors(&ck.gguf->g, 1);
        else print_tensors(&ck.st);
        print_tokenizer(ck.tok);
    }
    ptq_ckpt_close(&ck);
    return rc;
}

static int inspect_safetensors(const char *path, int json)
{
    ptq_safetensors st;
    ptq_err e = {0};
    if (ptq_st_open(&st, path, &e)) return cli_report(&e);
    int rc = PTQ_OK;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddStringToObject(root, "kind", "safetensors");
        json_tensors(root, &st);
        rc = print_json(root);
    } else {
        printf("safetensors: %s\n", path);
        print_tensors(&st);
    }
    ptq_st_close(&st);
    return rc;
}

/* The dispatch point for bundles (.ptq, see ptqc-bundle(5)): the manifest
 * summary, in src/cmd_verify.c. */
static int inspect_bundle(const char *path, int json)
{
    return cli_inspect_bundle(path, json);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default:
            return cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return cli_usage_error("inspect", "missing PATH");
    if (argc - optind > 1) return cli_usage_error("inspect", "one PATH only, got '%s' too",
                                                  argv[optind + 1]);
    const char *path = argv[optind];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        ptq_err e;
        ptq_fail(&e, PTQ_EIO, "%s: %s", path, strerror(errno));
        return cli_report(&e);
    }
    if (S_ISDIR(sb.st_mode) || (S_ISREG(sb.st_mode) && ptq_gguf_is(path)))
        return inspect_checkpoint(path, json);
    if (S_ISREG(sb.st_mode) && ends_with(path, ".ptq")) return inspect_bundle(path, json);
    return inspect_safetensors(path, json);
}
