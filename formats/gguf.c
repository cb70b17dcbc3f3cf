/* gguf.c - read and validate GGUF v2/v3 files (see gguf.h). */
#include "formats/gguf.h"

#include "lib/qfmt/ggml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEY 65535 /* far above any real key; keeps messages and copies small */

/* A cursor over the header: every read is checked against the end. */
typedef struct {
    const uint8_t *base, *p, *end;
    const char *fname;
    ptq_err *e;
} cur;

static size_t left(const cur *c) { return (size_t)(c->end - c->p); }

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int truncated(cur *c, const char *what)
{
    return ptq_fail(c->e, PTQ_EFORMAT, "%s: truncated: %s at byte %zu runs past the end of the "
                    "file", c->fname, what, (size_t)(c->p - c->base));
}

static int rd(cur *c, int n, uint64_t *v, const char *what)
{
    if (left(c) < (size_t)n) return truncated(c, what);
    *v = le(c->p, n);
    c->p += n;
    return PTQ_OK;
}

/* A string: u64 length, bytes.  *s points into the buffer. */
static int rd_str(cur *c, const uint8_t **s, uint64_t *len, const char *what)
{
    int rc = rd(c, 8, len, what);
    if (rc) return rc;
    if (*len > left(c))
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: %s: string length %llu is past the end of the "
                        "file (%zu bytes left)", c->fname, what, (unsigned long long)*len, left(c));
    *s = c->p;
    c->p += *len;
    return PTQ_OK;
}

static const int vsize[PTQ_GGUF_NVTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const vnames[PTQ_GGUF_NVTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64"};

const char *ptq_gguf_vtype_name(uint32_t t) { return t < PTQ_GGUF_NVTYPES ? vnames[t] : "?"; }

/* A metadata key or tensor name: a string of 1..MAX_KEY bytes without NUL,
 * read at `what` (the string's own place) and copied to a C string *out;
 * `subject` names it in the message. */
static int rd_name(cur *c, const char *what, const char *subject, char **out)
{
    const uint8_t *s;
    uint64_t len = 0;
    int rc = rd_str(c, &s, &len, what);
    if (rc) return rc;
    if (len == 0 || len > MAX_KEY || memchr(s, 0, len))
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: %s is empty, longer than %d bytes or has a NUL",
                        c->fname, subject, MAX_KEY);
    if (!(*out = malloc(len + 1))) return ptq_fail(c->e, PTQ_ENOMEM, "%s: out of memory", c->fname);
    memcpy(*out, s, len);
    (*out)[len] = 0;
    return PTQ_OK;
}

static int rd_kv(cur *c, ptq_gguf_kv *kv, uint64_t idx)
{
    const uint8_t *s;
    uint64_t len = 0, v = 0;
    char what[96];
    snprintf(what, sizeof what, "metadata key %llu", (unsigned long long)idx);
    int rc = rd_name(c, what, what, &kv->key);
    if (rc) return rc;
    if ((rc = rd(c, 4, &v, kv->key))) return rc;
    if (v >= PTQ_GGUF_NVTYPES)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: metadata %.200s has unknown value type %llu",
                        c->fname, kv->key, (unsigned long long)v);
    kv->type = (uint32_t)v;
    kv->n = 1;
    kv->elem = kv->type;
    if (kv->type == PTQ_GGUF_ARRAY) {
        if ((rc = rd(c, 4, &v, kv->key))) return rc;
        if (v >= PTQ_GGUF_NVTYPES || v == PTQ_GGUF_ARRAY)
            return ptq_fail(c->e, PTQ_EFORMAT, "%s: metadata %.200s: array element type %llu is "
                            "%s", c->fname, kv->key, (unsigned long long)v,
                            v == PTQ_GGUF_ARRAY ? "array (nested arrays are not supported)"
                                                : "unknown");
        kv->elem = (uint32_t)v;
        if ((rc = rd(c, 8, &kv->n, kv->key))) return rc;
    }
    kv->val = c->p;
    if (kv->elem != PTQ_GGUF_STRING) {
        if (kv->n > left(c) / (uint64_t)vsize[kv->elem])
            return ptq_fail(c->e, PTQ_EFORMAT, "%s: metadata %.200s: %llu values of %s run past "
                            "the end of the file", c->fname, kv->key, (unsigned long long)kv->n,
                            vnames[kv->elem]);
        c->p += kv->n * (uint64_t)vsize[kv->elem];
        return PTQ_OK;
    }
    if (kv->n > left(c) / 8)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: metadata %.200s: %llu strings run past the end "
                        "of the file", c->fname, kv->key, (unsigned long long)kv->n);
    if (kv->type == PTQ_GGUF_ARRAY && !(kv->strs = malloc((kv->n ? kv->n : 1) * sizeof *kv->strs)))
        return ptq_fail(c->e, PTQ_ENOMEM, "%s: out of memory", c->fname);
    for (uint64_t i = 0; i < kv->n; i++) {
        if (kv->strs) kv->strs[i] = c->p;
        if ((rc = rd_str(c, &s, &len, kv->key))) return rc;
    }
    return PTQ_OK;
}

static int rd_tensor_info(cur *c, ptq_gguf_tensor *t, uint64_t idx)
{
    uint64_t v = 0;
    char what[64], subject[80];
    snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)idx);
    snprintf(subject, sizeof subject, "%s: name", what);
    int rc = rd_name(c, what, subject, &t->name);
    if (rc) return rc;
    if ((rc = rd(c, 4, &v, t->name))) return rc;
    if (v < 1 || v > 4)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: tensor %.200s has %llu dimensions (1 to 4 allowed)",
                        c->fname, t->name, (unsigned long long)v);
    t->ndim = (int)v;
    for (int d = 0; d < t->ndim; d++)
        if ((rc = rd(c, 8, &t->dims[d], t->name))) return rc;
    for (int d = t->ndim; d < 4; d++) t->dims[d] = 1;
    if ((rc = rd(c, 4, &v, t->name))) return rc;
    t->type = (uint32_t)v;
    if ((rc = rd(c, 8, &t->offset, t->name))) return rc;
    return PTQ_OK;
}

/* Shape, type and size of one tensor (offsets are checked by check_layout). */
static int check_tensor(const char *fname, ptq_gguf_tensor *t, ptq_err *e)
{
    int bv, bb;
    const char *tn = ptq_ggml_type_name(t->type);
    if (!tn)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s has unknown ggml type %u", fname,
                        t->name, t->type);
    if (!ptq_ggml_block(t->type, &bv, &bb))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s has type %s, which ptqc does not read "
                        "(it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)",
                        fname, t->name, tn);
    uint64_t n = 1;
    for (int d = 0; d < 4; d++) {
        if (t->dims[d] == 0 || t->dims[d] > ((uint64_t)1 << 62) / n)
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s: dimension %d is %llu: %s", fname,
                            t->name, d, (unsigned long long)t->dims[d],
                            t->dims[d] ? "the element count overflows" : "zero");
        n *= t->dims[d];
    }
    if (t->dims[0] % (uint64_t)bv)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s: row length %llu is not a multiple of "
                        "the %s block of %d", fname, t->name, (unsigned long long)t->dims[0], tn, bv);
    t->numel = n;
    t->nbytes = n / (uint64_t)bv * (uint64_t)bb; /* n < 2^62, bb / bv <= 4 */
    return PTQ_OK;
}

static int cmp_off(const void *a, const void *b)
{
    const ptq_gguf_tensor *x = *(ptq_gguf_tensor *const *)a, *y = *(ptq_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(ptq_gguf_tensor *const *)a)->name, (*(ptq_gguf_tensor *const *)b)->name);
}

/* Offsets aligned, data inside the file, no overlap, names unique. */
static int check_layout(ptq_gguf *g, const char *fname, ptq_err *e)
{
    uint64_t avail = g->size - g->data_off;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ptq_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s: offset %llu is not a multiple of "
                            "the alignment %u", fname, t->name, (unsigned long long)t->offset,
                            g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s: data [%llu, +%llu) runs past the "
                            "end of the file (%llu data bytes)", fname, t->name,
                            (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                            (unsigned long long)avail);
        t->data = g->base + g->data_off + t->offset;
    }
    if (g->n_tensors < 2) return PTQ_OK;
    ptq_gguf_tensor **s = malloc(g->n_tensors * sizeof *s);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    for (uint64_t i = 0; i < g->n_tensors; i++) s[i] = &g->tensors[i];
    int rc = PTQ_OK;
    qsort(s, g->n_tensors, sizeof *s, cmp_off);
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++)
        if (s[i - 1]->offset + s[i - 1]->nbytes > s[i]->offset)
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: tensors %.200s and %.200s overlap (bytes [%llu, "
                          "%llu) and [%llu, ...))", fname, s[i - 1]->name, s[i]->name,
                          (unsigned long long)s[i - 1]->offset,
                          (unsigned long long)(s[i - 1]->offset + s[i - 1]->nbytes),
                          (unsigned long long)s[i]->offset);
    qsort(s, g->n_tensors, sizeof *s, cmp_name);
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++)
        if (!strcmp(s[i - 1]->name, s[i]->name))
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: tensor %.200s appears twice", fname, s[i]->name);
    free(s);
    return rc;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(ptq_gguf_kv *const *)a)->key, (*(ptq_gguf_kv *const *)b)->key);
}

/* Unique keys; general.alignment a u32 power of two. */
static int check_kvs(ptq_gguf *g, const char *fname, ptq_err *e)
{
    g->alignment = 32;
    const ptq_gguf_kv *al = ptq_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != PTQ_GGUF_U32)
            return ptq_fail(e, PTQ_EFORMAT, "%s: general.alignment is a %s, not a uint32", fname,
                            vnames[al->type]);
        uint32_t a = (uint32_t)le(al->val, 4);
        if (a == 0 || (a & (a - 1)))
            return ptq_fail(e, PTQ_EFORMAT, "%s: general.alignment %u is not a power of two",
                            fname, a);
        g->alignment = a;
    }
    if (g->n_kv < 2) return PTQ_OK;
    ptq_gguf_kv **s = malloc(g->n_kv * sizeof *s);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    for (uint64_t i = 0; i < g->n_kv; i++) s[i] = &g->kv[i];
    qsort(s, g->n_kv, sizeof *s, cmp_kv);
    int rc = PTQ_OK;
    for (uint64_t i = 1; i < g->n_kv && !rc; i++)
        if (!strcmp(s[i - 1]->key, s[i]->key))
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: metadata key %.200s appears twice", fname, s[i]->key);
    free(s);
    return rc;
}

static int parse_header(ptq_gguf *g, cur *c)
{
    uint64_t v = 0;
    int rc;
    if (left(c) < 4) return truncated(c, "the magic");
    if (memcmp(c->p, "GGUF", 4))
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: not a GGUF file (bad magic: the first bytes are "
                        "%02x %02x %02x %02x, not \"GGUF\")", c->fname, c->p[0], c->p[1], c->p[2],
                        c->p[3]);
    c->p += 4;
    if ((rc = rd(c, 4, &v, "the version"))) return rc;
    if (v != 2 && v != 3)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: unsupported GGUF version %llu%s (ptqc reads "
                        "versions 2 and 3)", c->fname, (unsigned long long)v,
                        v == 1 ? " (32-bit counts)" : v > 0xffff ? " (a big-endian file?)" : "");
    g->version = (uint32_t)v;
    if ((rc = rd(c, 8, &g->n_tensors, "the tensor count")) ||
        (rc = rd(c, 8, &g->n_kv, "the metadata count")))
        return rc;
    /* each metadata entry takes at least 13 bytes, each tensor info 24 */
    if (g->n_kv > left(c) / 13)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: metadata count %llu is past the end of the file "
                        "(%zu bytes left)", c->fname, (unsigned long long)g->n_kv, left(c));
    if (g->n_tensors > left(c) / 24)
        return ptq_fail(c->e, PTQ_EFORMAT, "%s: tensor count %llu is past the end of the file "
                        "(%zu bytes left)", c->fname, (unsigned long long)g->n_tensors, left(c));
    return PTQ_OK;
}

int ptq_gguf_parse(ptq_gguf *g, const void *buf, size_t len, const char *fname, ptq_err *e)
{
    memset(g, 0, sizeof *g);
    if (!fname) fname = "(gguf)";
    g->base = buf;
    g->size = len;
    g->path = strdup(fname);
    if (!g->path) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    cur c = {g->base, g->base, g->base + len, fname, e};
    int rc = parse_header(g, &c);
    if (rc) return rc;
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((rc = rd_kv(&c, &g->kv[i], i))) return rc;
    if ((rc = check_kvs(g, fname, e))) return rc;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((rc = rd_tensor_info(&c, &g->tensors[i], i)) ||
            (rc = check_tensor(fname, &g->tensors[i], e)))
            return rc;
    size_t pos = (size_t)(c.p - g->base);
    size_t pad = (g->alignment - pos % g->alignment) % g->alignment;
    if (g->n_tensors && pad > len - pos)
        return ptq_fail(e, PTQ_EFORMAT, "%s: truncated: the tensor data would start at byte %zu, "
                        "past the end of the file (%zu bytes)", fname, pos + pad, len);
    g->data_off = pad > len - pos ? len : pos + pad;
    return check_layout(g, fname, e);
}

int ptq_gguf_is(const char *path)
{
    char m[4];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int ok = fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    fclose(f);
    return ok;
}

int ptq_gguf_open(ptq_gguf *g, const char *path, ptq_err *e)
{
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ptq_fail(e, PTQ_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return ptq_fail(e, PTQ_EIO, "%s: cannot map: %s", path, strerror(err));
        }
    }
    close(fd);
    int rc = ptq_gguf_parse(g, size ? map : "", size, path, e);
    g->mapped = size != 0;
    g->base = size ? map : NULL;
    g->size = size;
    if (rc) ptq_gguf_close(g);
    return rc;
}

void ptq_gguf_close(ptq_gguf *g)
{
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].strs);
        }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    if (g->mapped) munmap((void *)g->base, g->size);
    memset(g, 0, sizeof *g);
}

const ptq_gguf_kv *ptq_gguf_find(const ptq_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const ptq_gguf_tensor *ptq_gguf_tensor_find(const ptq_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- values */

static double num(uint32_t type, const uint8_t *p)
{
    uint64_t v = le(p, vsize[type]);
    switch (type) {
    case PTQ_GGUF_I8: return (int8_t)v;
    case PTQ_GGUF_I16: return (int16_t)v;
    case PTQ_GGUF_I32: return (int32_t)v;
    case PTQ_GGUF_I64: return (double)(int64_t)v;
    case PTQ_GGUF_F32: {
        float f;
        uint32_t u = (uint32_t)v;
        memcpy(&f, &u, 4);
        return f;
    }
    case PTQ_GGUF_F64: {
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    default: return (double)v;
    }
}

static int is_int(uint32_t t)
{
    return t <= PTQ_GGUF_I32 || t == PTQ_GGUF_U64 || t == PTQ_GGUF_I64;
}

static int lookup(const ptq_gguf *g, const char *key, int required, const ptq_gguf_kv **kv,
                  ptq_err *e)
{
    *kv = ptq_gguf_find(g, key);
    if (!*kv && required)
        return ptq_fail(e, PTQ_EFORMAT, "%s: metadata %s is missing", g->path, key);
    return PTQ_OK;
}

static int wrong_type(const ptq_gguf *g, const ptq_gguf_kv *kv, const char *want, ptq_err *e)
{
    return ptq_fail(e, PTQ_EFORMAT, "%s: metadata %s is a%s %s, not %s", g->path, kv->key,
                    kv->type == PTQ_GGUF_ARRAY ? "n" : "", vnames[kv->type], want);
}

int ptq_gguf_int(const ptq_gguf *g, const char *key, int required, int64_t lo, int64_t hi,
                 int64_t *out, ptq_err *e)
{
    const ptq_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, e);
    if (rc || !kv) return rc;
    if (!is_int(kv->type)) return wrong_type(g, kv, "an integer", e);
    int64_t v;
    if (kv->type == PTQ_GGUF_U64) {
        uint64_t u = le(kv->val, 8);
        v = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    } else if (kv->type == PTQ_GGUF_I64) {
        v = (int64_t)le(kv->val, 8);
    } else {
        v = (int64_t)num(kv->type, kv->val);
    }
    if (v < lo || v > hi)
        return ptq_fail(e, PTQ_EFORMAT, "%s: metadata %s is %lld, outside [%lld, %lld]", g->path,
                        key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return PTQ_OK;
}

int ptq_gguf_real(const ptq_gguf *g, const char *key, int required, double *out, ptq_err *e)
{
    const ptq_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, e);
    if (rc || !kv) return rc;
    if (kv->type != PTQ_GGUF_F32 && kv->type != PTQ_GGUF_F64 && !is_int(kv->type))
        return wrong_type(g, kv, "a number", e);
    *out = num(kv->type, kv->val);
    return PTQ_OK;
}

int ptq_gguf_bool(const ptq_gguf *g, const char *key, int required, int *out, ptq_err *e)
{
    const ptq_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, e);
    if (rc || !kv) return rc;
    if (kv->type != PTQ_GGUF_BOOL) return wrong_type(g, kv, "a bool", e);
    *out = kv->val[0] != 0;
    return PTQ_OK;
}

int ptq_gguf_str(const ptq_gguf *g, const char *key, int required, const char **s, size_t *len,
                 ptq_err *e)
{
    const ptq_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, e);
    if (rc || !kv) return rc;
    if (kv->type != PTQ_GGUF_STRING) return wrong_type(g, kv, "a string", e);
    *len = (size_t)le(kv->val, 8);
    *s = (const char *)kv->val + 8;
    return PTQ_OK;
}

int ptq_gguf_array(const ptq_gguf *g, const char *key, int required, uint32_t elem,
                   const ptq_gguf_kv **out, ptq_err *e)
{
    const ptq_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, e);
    if (rc || !kv) return rc;
    int ok = kv->type == PTQ_GGUF_ARRAY &&
             (kv->elem == elem || (is_int(elem) && is_int(kv->elem)) ||
              (elem == PTQ_GGUF_F32 && kv->elem == PTQ_GGUF_F64));
    if (!ok) {
        char want[48];
        snprintf(want, sizeof want, "an array of %s", vnames[elem]);
        if (kv->type == PTQ_GGUF_ARRAY)
            return ptq_fail(e, PTQ_EFORMAT, "%s: metadata %s is an array of %s, not %s", g->path,
                            key, vnames[kv->elem], want);
        return wrong_type(g, kv, want, e);
    }
    *out = kv;
    return PTQ_OK;
}

void ptq_gguf_arr_str(const ptq_gguf_kv *kv, uint64_t i, const char **s, size_t *len)
{
    *len = (size_t)le(kv->strs[i], 8);
    *s = (const char *)kv->strs[i] + 8;
}

double ptq_gguf_arr_num(const ptq_gguf_kv *kv, uint64_t i)
{
    return num(kv->elem, kv->val + i * (uint64_t)vsize[kv->elem]);
}

void ptq_gguf_read_f32(const ptq_gguf_tensor *t, uint64_t first, uint64_t n, float *out)
{
    int bv, bb;
    if (!ptq_ggml_block(t->type, &bv, &bb)) return;
    ptq_ggml_decode(t->type, t->data + first / (uint64_t)bv * (uint64_t)bb, (size_t)(n / bv), out);
}
