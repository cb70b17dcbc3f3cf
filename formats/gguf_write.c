/* gguf_write.c - the GGUF v3 writer (gguf_write.h). */
#include "formats/gguf_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int bad; /* out of memory */
} buf;

typedef struct {
    char *name;
    uint32_t type;
    int ndim;
    uint64_t dims[4];
    const void *data;
    uint64_t nbytes;
    int own;
} wtensor;

struct ptq_gguf_w {
    buf kv;          /* the encoded KVs */
    char **keys;     /* for uniqueness */
    uint64_t n_kv;
    wtensor *t;
    int nt, cap;
};

/* ---------------------------------------------------------------- bytes */

static void put(buf *b, const void *src, size_t n)
{
    if (b->bad) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* v as nb little-endian bytes */
static void put_le(buf *b, uint64_t v, int nb)
{
    uint8_t x[8];
    for (int i = 0; i < nb; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, (size_t)nb);
}

static void put_str(buf *b, const char *s, size_t n)
{
    put_le(b, n, 8);
    put(b, s, n);
}

/* The size of a scalar type; 0 for STRING, ARRAY and unknown types. */
static int vsize(uint32_t vt)
{
    switch (vt) {
    case PTQ_GGUF_U8: case PTQ_GGUF_I8: case PTQ_GGUF_BOOL: return 1;
    case PTQ_GGUF_U16: case PTQ_GGUF_I16: return 2;
    case PTQ_GGUF_U32: case PTQ_GGUF_I32: case PTQ_GGUF_F32: return 4;
    case PTQ_GGUF_U64: case PTQ_GGUF_I64: case PTQ_GGUF_F64: return 8;
    default: return 0;
    }
}

/* One scalar of type vt from host memory, little endian. */
static void put_scalar(buf *b, uint32_t vt, const void *val)
{
    int n = vsize(vt);
    uint64_t v = 0;
    if (n == 1) v = *(const uint8_t *)val;
    else if (n == 2) v = *(const uint16_t *)val;
    else if (n == 4) v = *(const uint32_t *)val;
    else { memcpy(&v, val, 8); }
    if (vt == PTQ_GGUF_BOOL) v = v != 0;
    put_le(b, v, n);
}

/* ---------------------------------------------------------------- writer */

ptq_gguf_w *ptq_gguf_w_new(void)
{
    ptq_gguf_w *w = calloc(1, sizeof *w);
    if (w && ptq_gguf_w_u32(w, "general.alignment", PTQ_GGUF_ALIGN, &(ptq_err){0})) {
        ptq_gguf_w_free(w);
        return NULL;
    }
    return w;
}

void ptq_gguf_w_free(ptq_gguf_w *w)
{
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (int i = 0; i < w->nt; i++) {
        free(w->t[i].name);
        if (w->t[i].own) free((void *)w->t[i].data);
    }
    free(w->keys);
    free(w->t);
    free(w->kv.p);
    free(w);
}

/* Start the KV key of value type vt: checks uniqueness, writes key and type. */
static int begin_kv(ptq_gguf_w *w, const char *key, uint32_t vt, ptq_err *e)
{
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return ptq_fail(e, PTQ_EINTERNAL, "gguf writer: metadata key %s given twice", key);
    char **nk = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *nk);
    char *k = strdup(key);
    if (nk) w->keys = nk;
    if (!nk || !k) {
        free(k);
        return ptq_fail(e, PTQ_ENOMEM, "gguf writer: out of memory for %s", key);
    }
    w->keys[w->n_kv++] = k;
    put_str(&w->kv, key, strlen(key));
    put_le(&w->kv, vt, 4);
    return PTQ_OK;
}

static int end_kv(ptq_gguf_w *w, const char *key, ptq_err *e)
{
    return w->kv.bad ? ptq_fail(e, PTQ_ENOMEM, "gguf writer: out of memory for %s", key) : PTQ_OK;
}

int ptq_gguf_w_scalar(ptq_gguf_w *w, const char *key, uint32_t vt, const void *val, ptq_err *e)
{
    if (!vsize(vt)) return ptq_fail(e, PTQ_EINTERNAL, "gguf writer: %s: type %u is no scalar", key, vt);
    int rc = begin_kv(w, key, vt, e);
    if (rc) return rc;
    put_scalar(&w->kv, vt, val);
    return end_kv(w, key, e);
}

int ptq_gguf_w_u32(ptq_gguf_w *w, const char *key, uint32_t v, ptq_err *e)
{
    return ptq_gguf_w_scalar(w, key, PTQ_GGUF_U32, &v, e);
}

int ptq_gguf_w_f32(ptq_gguf_w *w, const char *key, float v, ptq_err *e)
{
    return ptq_gguf_w_scalar(w, key, PTQ_GGUF_F32, &v, e);
}

int ptq_gguf_w_bool(ptq_gguf_w *w, const char *key, int v, ptq_err *e)
{
    uint8_t b = v != 0;
    return ptq_gguf_w_scalar(w, key, PTQ_GGUF_BOOL, &b, e);
}

int ptq_gguf_w_str(ptq_gguf_w *w, const char *key, const char *s, ptq_err *e)
{
    int rc = begin_kv(w, key, PTQ_GGUF_STRING, e);
    if (rc) return rc;
    put_str(&w->kv, s, strlen(s));
    return end_kv(w, key, e);
}

int ptq_gguf_w_arr(ptq_gguf_w *w, const char *key, uint32_t elem, const void *vals, uint64_t n,
                   ptq_err *e)
{
    int sz = vsize(elem);
    if (!sz) return ptq_fail(e, PTQ_EINTERNAL, "gguf writer: %s: array of type %u", key, elem);
    int rc = begin_kv(w, key, PTQ_GGUF_ARRAY, e);
    if (rc) return rc;
    put_le(&w->kv, elem, 4);
    put_le(&w->kv, n, 8);
    for (uint64_t i = 0; i < n; i++) put_scalar(&w->kv, elem, (const uint8_t *)vals + i * (uint64_t)sz);
    return end_kv(w, key, e);
}

int ptq_gguf_w_arr_str(ptq_gguf_w *w, const char *key, const char *const *s, uint64_t n,
                       ptq_err *e)
{
    int rc = begin_kv(w, key, PTQ_GGUF_ARRAY, e);
    if (rc) return rc;
    put_le(&w->kv, PTQ_GGUF_STRING, 4);
    put_le(&w->kv, n, 8);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, s[i], strlen(s[i]));
    return end_kv(w, key, e);
}

int ptq_gguf_w_tensor(ptq_gguf_w *w, const char *name, uint32_t type, int ndim,
                      const uint64_t *dims, const void *data, uint64_t nbytes, int own,
                      ptq_err *e)
{
    int rc = PTQ_OK;
    if (ndim < 1 || ndim > 4)
        rc = ptq_fail(e, PTQ_EINTERNAL, "gguf writer: %s: %d dims", name, ndim);
    for (int i = 0; i < w->nt && !rc; i++)
        if (!strcmp(w->t[i].name, name))
            rc = ptq_fail(e, PTQ_EINTERNAL, "gguf writer: tensor %s given twice", name);
    char *nm = rc ? NULL : strdup(name);
    if (!rc && w->nt == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (nt) w->t = nt, w->cap = cap;
    }
    if (!rc && (!nm || w->nt == w->cap)) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    if (rc) {
        free(nm);
        if (own) free((void *)data);
        return rc;
    }
    wtensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    *t = (wtensor){nm, type, ndim, {0}, data, nbytes, own};
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    return PTQ_OK;
}

static uint64_t align_up(uint64_t x) { return (x + PTQ_GGUF_ALIGN - 1) / PTQ_GGUF_ALIGN * PTQ_GGUF_ALIGN; }

/* Header, KVs and tensor infos, padded to the alignment. */
static int head(const ptq_gguf_w *w, buf *h, ptq_err *e)
{
    put(h, "GGUF", 4);
    put_le(h, 3, 4);
    put_le(h, (uint64_t)w->nt, 8);
    put_le(h, w->n_kv, 8);
    put(h, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        put_str(h, t->name, strlen(t->name));
        put_le(h, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) put_le(h, t->dims[d], 8);
        put_le(h, t->type, 4);
        put_le(h, off, 8);
        off = align_up(off + t->nbytes);
    }
    static const uint8_t zero[PTQ_GGUF_ALIGN];
    put(h, zero, (size_t)(align_up(h->n) - h->n));
    return h->bad ? ptq_fail(e, PTQ_ENOMEM, "gguf writer: out of memory") : PTQ_OK;
}

int ptq_gguf_w_write(const ptq_gguf_w *w, FILE *f, const char *path, ptq_err *e)
{
    buf h = {0};
    int rc = head(w, &h, e);
    int bad = rc == PTQ_OK && fwrite(h.p, 1, h.n, f) != h.n;
    free(h.p);
    static const uint8_t zero[PTQ_GGUF_ALIGN];
    for (int i = 0; i < w->nt && rc == PTQ_OK && !bad; i++) {
        const wtensor *t = &w->t[i];
        size_t pad = (size_t)(align_up(t->nbytes) - t->nbytes);
        bad = fwrite(t->data, 1, (size_t)t->nbytes, f) != t->nbytes ||
              (pad && fwrite(zero, 1, pad, f) != pad);
    }
    if (rc == PTQ_OK && (bad || fflush(f) != 0))
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", path, strerror(errno));
    return rc;
}
