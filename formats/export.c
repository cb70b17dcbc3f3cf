/* export.c - the exporter table (export.h) and what its rows share: the
 * temporary directory and its rename, the tensor list of model.safetensors,
 * the copied Hugging Face files, and small facts about int tensors. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/export.h"
#include "formats/safetensors.h"
#include "lib/base/file.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"

int ptq_ex_ct_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_ct_write(const ptq_bundle *b, const char *dir, ptq_err *e);
int ptq_ex_gptq_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_gptq_write(const ptq_bundle *b, const char *dir, ptq_err *e);
int ptq_ex_awq_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_awq_write(const ptq_bundle *b, const char *dir, ptq_err *e);
int ptq_ex_gguf_check(const ptq_bundle *b, const ptq_export_opts *o, ptq_err *e);
int ptq_ex_gguf_write(const ptq_bundle *b, FILE *f, const char *path, const ptq_export_opts *o,
                      ptq_err *e);

static const ptq_exporter exporters[] = {
    {"compressed-tensors", "compressed-tensors pack-quantized (vLLM, transformers)",
     ptq_ex_ct_check, ptq_ex_ct_write, NULL, NULL},
    {"gptq", "AutoGPTQ / GPTQModel gptq v1 (transformers, vLLM)", ptq_ex_gptq_check,
     ptq_ex_gptq_write, NULL, NULL},
    {"awq", "AutoAWQ GEMM, 4-bit (transformers, vLLM)", ptq_ex_awq_check, ptq_ex_awq_write,
     NULL, NULL},
    {"gguf", "llama.cpp GGUF, one file (llama.cpp, transformers)", NULL, NULL, ptq_ex_gguf_check,
     ptq_ex_gguf_write},
};
#define NEXPORTERS ((int)(sizeof exporters / sizeof exporters[0]))

int ptq_exporter_count(void) { return NEXPORTERS; }
const ptq_exporter *ptq_exporter_row(int i) { return i >= 0 && i < NEXPORTERS ? &exporters[i] : NULL; }
const ptq_exporter *ptq_exporter_get(const char *name)
{
    for (int i = 0; i < NEXPORTERS; i++)
        if (!strcmp(exporters[i].name, name)) return &exporters[i];
    return NULL;
}

/* ---------------------------------------------------------------- files */

static int write_bytes(const char *dir, const char *name, const void *data, size_t n, ptq_err *e)
{
    char *path = ptq_path_join(dir, name);
    if (!path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(data, 1, n, f) != n;
    int err = errno;
    if (f && fclose(f) != 0 && !bad) bad = 1, err = errno;
    int rc = bad ? ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", path, strerror(err)) : PTQ_OK;
    free(path);
    return rc;
}

int ptq_ex_write_json(const char *dir, const char *name, const cJSON *j, ptq_err *e)
{
    char *s = cJSON_Print(j);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    size_t n = strlen(s);
    s[n] = '\n'; /* cJSON_Print leaves room: the buffer holds n + 1 bytes */
    int rc = write_bytes(dir, name, s, n + 1, e);
    free(s);
    return rc;
}

int ptq_ex_write_hf_files(const ptq_bundle *b, const char *dir, cJSON *qc, ptq_err *e)
{
    uint64_t n = 0;
    const char *text = ptq_bundle_member_data(b, "config.json", &n);
    cJSON *cfg = text ? cJSON_ParseWithLength(text, (size_t)n) : NULL;
    if (!cfg || !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        cJSON_Delete(qc);
        return ptq_fail(e, PTQ_EFORMAT, "%s: config.json missing or malformed", b->path);
    }
    if (qc) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
        cJSON_AddItemToObject(cfg, "quantization_config", qc);
    }
    int rc = ptq_ex_write_json(dir, "config.json", cfg, e);
    cJSON_Delete(cfg);
    static const char *const copied[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2 && rc == PTQ_OK; i++) {
        const void *d = ptq_bundle_member_data(b, copied[i], &n);
        if (d) rc = write_bytes(dir, copied[i], d, (size_t)n, e);
    }
    return rc;
}

/* ---------------------------------------------------------------- tensors */

struct ptq_ex_tensors {
    ptq_st_wtensor *t;
    char **names;
    void **owned;
    int n, cap;
};

ptq_ex_tensors *ptq_ex_new(void) { return calloc(1, sizeof(ptq_ex_tensors)); }

void ptq_ex_free(ptq_ex_tensors *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        free(t->names[i]);
        free(t->owned[i]);
    }
    free(t->t);
    free(t->names);
    free(t->owned);
    free(t);
}

static int grow(ptq_ex_tensors *t)
{
    if (t->n < t->cap) return 0;
    int cap = t->cap ? 2 * t->cap : 64;
    ptq_st_wtensor *nt = realloc(t->t, (size_t)cap * sizeof *nt);
    if (nt) t->t = nt;
    char **nn = realloc(t->names, (size_t)cap * sizeof *nn);
    if (nn) t->names = nn;
    void **no = realloc(t->owned, (size_t)cap * sizeof *no);
    if (no) t->owned = no;
    if (!nt || !nn || !no) return -1;
    t->cap = cap;
    return 0;
}

int ptq_ex_add(ptq_ex_tensors *t, const char *name, ptq_dtype dt, int64_t d0, int64_t d1,
               const void *data, int own, ptq_err *e)
{
    char *nm = strdup(name);
    if (!nm || grow(t)) {
        free(nm);
        if (own) free((void *)data);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    }
    ptq_st_wtensor *w = &t->t[t->n];
    memset(w, 0, sizeof *w);
    w->name = nm;
    w->dtype = dt;
    w->ndim = d1 ? 2 : 1;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->data = data;
    t->names[t->n] = nm;
    t->owned[t->n] = own ? (void *)data : NULL;
    t->n++;
    return PTQ_OK;
}

const ptq_st_wtensor *ptq_ex_view(const ptq_ex_tensors *t, int *n)
{
    *n = t->n;
    return t->t;
}

int ptq_ex_write_st(const ptq_ex_tensors *t, const char *dir, ptq_err *e)
{
    char *path = ptq_path_join(dir, "model.safetensors");
    if (!path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    int rc = ptq_st_write(path, t->t, t->n, e);
    free(path);
    return rc;
}

int ptq_ex_add_dense(ptq_ex_tensors *t, const ptq_qtensor *q, const char *name, ptq_err *e)
{
    /* a vector (norm) is rows = 1: written 1-D as Hugging Face has it */
    if (q->rows == 1 && !strstr(name, "embed") && !strstr(name, "lm_head"))
        return ptq_ex_add(t, name, (ptq_dtype)q->dtype, q->cols, 0, q->data, 0, e);
    return ptq_ex_add(t, name, (ptq_dtype)q->dtype, q->rows, q->cols, q->data, 0, e);
}

/* ---------------------------------------------------------------- int facts */

int ptq_ex_each(const ptq_bundle *b,
                int (*fn)(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e),
                void *ctx, ptq_err *e)
{
    int n = ptq_bundle_ntensors(b);
    for (int i = 0; i < n; i++) {
        ptq_bundle_tinfo t;
        ptq_bundle_tensor_info(b, i, &t);
        ptq_qtensor q;
        int rc = ptq_bundle_tensor(b, t.name, &q, e);
        if (rc) return rc;
        rc = fn(ctx, t.name, &q, e);
        ptq_qtensor_free(&q);
        if (rc) return rc;
    }
    return PTQ_OK;
}

int ptq_ex_linear(const char *name, char *module, size_t n)
{
    static const char *const lin[] = {".q_proj.weight", ".k_proj.weight", ".v_proj.weight",
                                      ".o_proj.weight", ".gate_proj.weight", ".up_proj.weight",
                                      ".down_proj.weight"};
    size_t len = strlen(name);
    if (strncmp(name, "model.layers.", 13)) return 0;
    for (int i = 0; i < 7; i++) {
        size_t s = strlen(lin[i]);
        if (len > s && !strcmp(name + len - s, lin[i]) && len - 7 < n) {
            memcpy(module, name, len - 7); /* less ".weight" */
            module[len - 7] = 0;
            return 1;
        }
    }
    return 0;
}

int ptq_ex_is_sym(const ptq_qtensor *q)
{
    size_t n = (size_t)q->rows * (size_t)q->ngroups;
    for (size_t i = 0; i < n; i++)
        if (q->zeros[i] != 1u << (q->bits - 1)) return 0;
    return 1;
}

int ptq_ex_is_kv_scale(const char *name)
{
    size_t n = strlen(name), s = strlen(PTQ_QFMT_KV_SUFFIX);
    return n > s && !strcmp(name + n - s, PTQ_QFMT_KV_SUFFIX);
}

const char *ptq_ex_kind_words(const ptq_qtensor *q)
{
    if (q->format == PTQ_QF_INT_HAD) /* --rotate hadamard */
        return "int-had (Hadamard-rotated integer: no exporter holds the rotation; compile "
               "without --rotate)";
    return q->format == PTQ_QF_FP8 ? "FP8" : "W8A8 (8-bit activations)";
}

int ptq_ex_full_groups(const ptq_qtensor *q) { return !q->group || q->cols % q->group == 0; }

uint32_t ptq_ex_code(const ptq_qtensor *q, int r, int k)
{
    const uint32_t *row = q->qweight + (size_t)r * (size_t)ptq_pack_row_words(q->cols, q->bits);
    return ptq_pack_get(row, k, q->bits);
}

/* ---------------------------------------------------------------- driver */

/* A single-file row: OUT.tmp.XXXXXX, fsync'ed, then linked to OUT. */
static int export_file(const ptq_exporter *x, const ptq_bundle *b, const char *out,
                       const ptq_export_opts *o, ptq_err *e)
{
    int rc = x->check_file(b, o, e);
    if (rc) return rc;
    size_t n = strlen(out) + 16;
    char *tmp = malloc(n);
    if (!tmp) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", out);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 && fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return rc;
    }
    rc = x->write_file(b, f, tmp, o, e);
    if (rc == PTQ_OK && (fflush(f) || fsync(fileno(f))))
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", tmp, strerror(errno));
    if (fclose(f) && rc == PTQ_OK)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", tmp, strerror(errno));
    struct stat sb;
    int lk = rc == PTQ_OK ? link(tmp, out) : 0;
    if (lk && errno != EEXIST && lstat(out, &sb) != 0) /* no hard links here: rename */
        lk = rename(tmp, out);
    if (lk)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create%s: %s", out,
                      errno == EEXIST ? " (it appeared while exporting)" : "", strerror(errno));
    unlink(tmp);
    free(tmp);
    return rc;
}

int ptq_export(const ptq_bundle *b, const char *format, const char *out, ptq_err *e)
{
    return ptq_export_opt(b, format, out, NULL, e);
}

int ptq_export_opt(const ptq_bundle *b, const char *format, const char *out,
                   const ptq_export_opts *o, ptq_err *e)
{
    static const ptq_export_opts none = {0, NULL};
    if (!o) o = &none;
    const ptq_exporter *x = ptq_exporter_get(format);
    if (!x) return ptq_fail(e, PTQ_EUSAGE, "export: unknown format '%s'", format);
    struct stat sb;
    if (lstat(out, &sb) == 0)
        return ptq_fail(e, PTQ_EOUTPUT, "%s: already exists; ptqc export writes a new %s", out,
                        x->write_file ? "file" : "directory");
    if (x->write_file) return export_file(x, b, out, o, e);
    if (o->allow_requantize)
        return ptq_fail(e, PTQ_EUSAGE, "export: --allow-requantize applies to --format gguf "
                        "only (%s is exact or refused)", format);
    int rc = x->check(b, e);
    if (rc) return rc;
    ptq_tmpdir t;
    if ((rc = ptq_tmpdir_create(&t, out, e))) return rc;
    rc = x->write(b, t.path, e);
    if (rc) ptq_tmpdir_abort(&t);
    else rc = ptq_tmpdir_commit(&t, "exporting", e);
    return rc;
}
