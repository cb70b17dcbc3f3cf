/* safetensors_write.c - write one safetensors file atomically (see safetensors.h). */
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A growing string. */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[32];
    sb_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

/* JSON string literal, escaping quotes, backslashes and control bytes. */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            sb_put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int write_all(int fd, const void *data, uint64_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (uint64_t)w;
    }
    return 0;
}

int ptq_st_write(const char *path, const ptq_st_wtensor *t, int n, ptq_err *e)
{
    return ptq_st_write_from(path, t, n, NULL, NULL, e);
}

int ptq_st_write_from(const char *path, const ptq_st_wtensor *t, int n, ptq_st_source src,
                      void *ctx, ptq_err *e)
{
    if (n < 0) return ptq_fail(e, PTQ_EINTERNAL, "%s: negative tensor count", path);
    uint64_t *nbytes = calloc((size_t)n + 1, sizeof *nbytes);
    if (!nbytes) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    int rc = PTQ_OK;
    for (int i = 0; i < n && rc == PTQ_OK; i++) {
        size_t es = ptq_dtype_size(t[i].dtype);
        uint64_t m = es;
        int bad = !t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__") || es == 0 ||
                  t[i].ndim < 0 || t[i].ndim > PTQ_ST_MAX_DIMS;
        for (int d = 0; !bad && d < t[i].ndim; d++)
            bad = t[i].shape[d] < 0 || __builtin_mul_overflow(m, (uint64_t)t[i].shape[d], &m);
        if (!bad && m && !t[i].data && !src) bad = 1;
        for (int j = 0; !bad && j < i; j++) bad = !strcmp(t[i].name, t[j].name);
        if (bad)
            rc = ptq_fail(e, PTQ_EINTERNAL, "%s: cannot write tensor %d '%s': empty, reserved or "
                          "repeated name, unknown dtype, bad shape or no data", path, i,
                          t[i].name ? t[i].name : "(null)");
        nbytes[i] = m;
    }
    sbuf h = {0};
    sb_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n && rc == PTQ_OK; i++) {
        sb_str(&h, ",");
        sb_json(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, ptq_dtype_name(t[i].dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t[i].shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_str(&h, ",");
        if (__builtin_add_overflow(off, nbytes[i], &off))
            rc = ptq_fail(e, PTQ_EINTERNAL, "%s: total size overflows", path);
        sb_u64(&h, off);
        sb_str(&h, "]}");
    }
    sb_str(&h, "}");
    while (h.n % 8) sb_str(&h, " ");
    if (rc == PTQ_OK && h.oom)
        rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory for the header", path);
    if (rc) {
        free(h.p);
        free(nbytes);
        return rc;
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(h.p);
        free(nbytes);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create a temporary file beside it: %s", path,
                      strerror(errno));
    } else {
        uint8_t len8[8];
        uint64_t hl = h.n;
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
        int bad = fchmod(fd, 0644) != 0 || write_all(fd, len8, 8) || write_all(fd, h.p, h.n);
        int err = errno;
        for (int i = 0; i < n && !bad && rc == PTQ_OK; i++) {
            const void *data = t[i].data;
            if (src && (rc = src(ctx, i, &data, e))) break;
            bad = write_all(fd, data, nbytes[i]);
            err = errno;
        }
        if (!bad && rc == PTQ_OK) {
            bad = fsync(fd) != 0;
            err = errno;
        }
        if (close(fd) != 0 && !bad) {
            bad = 1;
            err = errno;
        }
        if (!bad && rc == PTQ_OK && rename(tmp, path) != 0) {
            bad = 1;
            err = errno;
        }
        if (bad || rc) unlink(tmp);
        if (bad && rc == PTQ_OK)
            rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", path, strerror(err));
    }
    free(tmp);
    free(h.p);
    free(nbytes);
    return rc;
}
