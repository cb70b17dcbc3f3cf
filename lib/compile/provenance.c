/* provenance.c - what the output depends on: the hashes of the source files
 * and the journal key (lib/compile/engine.h). */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "formats/gguf_model.h"
#include "lib/base/file.h"
#include "lib/base/sha256.h"
#include "lib/compile/engine.h"

const char *const ptq_meta_names[3] = {"config.json", "tokenizer.json", "tokenizer_config.json"};

static int read_whole(const char *path, char **data, size_t *len, ptq_err *e)
{
    return ptq_read_file(path, (size_t)1 << 40, data, len, e);
}

/* Append {"file","bytes","sha256"} of a file (whole in memory or mapped). */
static void add_file_hash(cJSON *arr, const char *name, const void *data, size_t len)
{
    uint8_t d[32];
    char hex[65];
    ptq_sha256(data, len, d);
    ptq_sha256_hex(d, hex);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", name);
    cJSON_AddNumberToObject(o, "bytes", (double)len);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddItemToArray(arr, o);
}

/* A .gguf source: the three JSON texts generated from its metadata, and the
 * file itself hashed. */
static int gguf_source_files(cstate *s, metafiles *m, ptq_err *e)
{
    for (int i = 0; i < 3; i++) {
        int rc = ptq_ckpt_gguf_meta(&s->ck, i, &m->data[i], &m->len[i], e);
        if (rc) return rc;
        add_file_hash(s->files, ptq_meta_names[i], m->data[i], m->len[i]);
    }
    const ptq_gguf *g = &s->ck.gguf->g;
    add_file_hash(s->files, base_name(g->path), g->base, g->size);
    madvise((void *)g->base, g->size, MADV_DONTNEED);
    return PTQ_OK;
}

/* Read and hash the checkpoint's files: config.json, tokenizer.json and
 * tokenizer_config.json (kept in memory for the bundle; the tokenizer files
 * are optional), every safetensors shard and the shard index. */
int source_files(cstate *s, metafiles *m, ptq_err *e)
{
    s->files = cJSON_CreateArray();
    if (s->ck.gguf) return gguf_source_files(s, m, e);
    for (int i = 0; i < 3; i++) {
        char *p = dir_join(s->o->model, ptq_meta_names[i]);
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        if (i > 0 && access(p, F_OK) != 0) {
            free(p);
            continue;
        }
        int rc = read_whole(p, &m->data[i], &m->len[i], e);
        free(p);
        if (rc) return rc;
        add_file_hash(s->files, ptq_meta_names[i], m->data[i], m->len[i]);
    }
    const ptq_safetensors *st = &s->ck.st;
    if (st->index_path) {
        char *d;
        size_t n;
        int rc = read_whole(st->index_path, &d, &n, e);
        if (rc) return rc;
        add_file_hash(s->files, base_name(st->index_path), d, n);
        free(d);
    }
    for (int i = 0; i < st->nfiles; i++) {
        add_file_hash(s->files, base_name(st->paths[i]), st->maps[i], st->sizes[i]);
        /* hashing read every page: let them go (see drop_source_pages) */
        madvise(st->maps[i], st->sizes[i], MADV_DONTNEED);
    }
    return PTQ_OK;
}

/* What the output bytes depend on: the journal key. */
cJSON *make_key(cstate *s, const ptq_text *txt)
{
    const ptq_compile_opts *o = s->o;
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "ptqc_version", PACKAGE_VERSION);
    cJSON_AddItemToObject(k, "model_files", cJSON_Duplicate(s->files, 1));
    if (o->ncalib) {
        char hex[65];
        ptq_sha256_hex(txt->sha256, hex);
        cJSON_AddStringToObject(k, "calibration_sha256", hex);
        cJSON_AddStringToObject(k, "jsonl_field", o->jsonl_field ? o->jsonl_field : "");
    } else {
        cJSON_AddStringToObject(k, "calibration_sha256", s->nocal ? "none" : "data-free");
    }
    cJSON_AddItemToObject(k, "settings", settings_json(s));
    cJSON_AddNumberToObject(k, "chunk_tokens", o->chunk_tokens);
    cJSON *cl = cJSON_AddArrayToObject(k, "command_line");
    for (int i = 0; i < o->ncmdline; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(o->cmdline[i]));
    return k;
}
