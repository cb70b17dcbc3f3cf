/* bundle.c - the ptqc bundle (.ptq) v1: writer, reader, verifier.
 * The format is documented in ptqc-bundle(5); bundle.h is the interface.
 *
 * The ustar headers are written here, not through libarchive: that gives
 * exact control over member order, metadata and alignment (every member's data
 * starts at a multiple of 512 in the file), makes the output reproducible
 * byte for byte, and lets --resume truncate the file at a member boundary and
 * keep appending.  Each tensor is written as its payload members followed by a
 * small JSON member holding its manifest entry, so a resumed writer rebuilds
 * the tensors table from the file itself.
 */
#include "formats/bundle.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/config.h"
#include "lib/base/dtype.h"
#include "formats/arch.h"
#include "lib/qfmt/pack.h"
#include "lib/base/sha256.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the bundle payloads are little-endian; a big-endian port must byte-swap them"
#endif

#define BLK 512
#define FORMAT_NAME "ptqc-bundle"
#define FORMAT_VERSION 1
/* Version 2 = version 1 + the w8a8 and fp8 tensor formats and the int8
 * KV-cache scale tensors; a bundle without them is still written as 1. */
#define FORMAT_VERSION_A8 2
#define MANIFEST "manifest.json"
#define TPREFIX "tensors/"

static uint64_t round_up(uint64_t n) { return (n + BLK - 1) / BLK * BLK; }

static void hex_digest(const void *data, size_t n, char hex[65])
{
    uint8_t d[32];
    ptq_sha256(data, n, d);
    ptq_sha256_hex(d, hex);
}

/* A member name we accept in a bundle: 1..100 bytes of printable ASCII, no
 * leading '/', no ".." component (safe to extract with tar). */
static int member_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || s[0] == '/') return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '\\') return 0;
    if (!strcmp(s, "..") || !strncmp(s, "../", 3) || strstr(s, "/../") ||
        (n >= 3 && !strcmp(s + n - 3, "/..")))
        return 0;
    return 1;
}

/* The payloads of each format, in the order they are written. */
static const char *const int_payloads[] = {"qweight", "scales", "zeros", "g_idx"};
#define N_INT_PAYLOADS 4

/* Byte size of payload p of a tensor; 0 for an unknown payload. */
static uint64_t payload_size(const char *p, int format, int rows, int cols, int bits, int group,
                             int dtype)
{
    uint64_t r = (uint64_t)rows, c = (uint64_t)cols;
    if (format == PTQ_QF_DENSE) return !strcmp(p, "data") ? r * c * ptq_dtype_size(dtype) : 0;
    if (format == PTQ_QF_W8A8 || format == PTQ_QF_FP8) /* lib/qfmt/w8a8.h */
        return !strcmp(p, "codes") ? r * c : !strcmp(p, "wscale") ? r * 4
                                           : !strcmp(p, "act_scale") ? 4 : 0;
    uint64_t ng = group ? c / (uint64_t)group : 1;
    if (!strcmp(p, "qweight")) return r * (uint64_t)ptq_pack_row_words(cols, bits) * 4;
    if (!strcmp(p, "scales")) return r * ng * 2;
    if (!strcmp(p, "zeros")) return r * ng;
    if (!strcmp(p, "g_idx")) return c * 4;
    return 0;
}

/* The "model" object of the manifest: a summary of config.json (HF names). */
static cJSON *model_summary(const char *json, size_t len, ptq_err *e)
{
    ptq_config c;
    if (ptq_config_parse(&c, json, len, "config.json", e)) return NULL;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "model_type", c.model_type);
    cJSON_AddNumberToObject(m, "hidden_size", c.hidden);
    cJSON_AddNumberToObject(m, "intermediate_size", c.intermediate);
    cJSON_AddNumberToObject(m, "num_hidden_layers", c.n_layers);
    cJSON_AddNumberToObject(m, "num_attention_heads", c.n_heads);
    cJSON_AddNumberToObject(m, "num_key_value_heads", c.n_kv_heads);
    cJSON_AddNumberToObject(m, "head_dim", c.head_dim);
    cJSON_AddNumberToObject(m, "vocab_size", c.vocab);
    cJSON_AddNumberToObject(m, "max_position_embeddings", c.max_pos);
    cJSON_AddBoolToObject(m, "tie_word_embeddings", c.tie_embeddings);
    cJSON_AddBoolToObject(m, "qkv_bias", c.qkv_bias);
    cJSON_AddStringToObject(m, "torch_dtype", c.torch_dtype);
    return m;
}

/* ================================================================ ustar */

static void put_octal(char *f, size_t width, uint64_t v)
{
    /* width-1 octal digits and a NUL */
    f[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        f[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

static void tar_header(uint8_t h[BLK], const char *name, uint64_t size)
{
    memset(h, 0, BLK);
    memcpy(h, name, strlen(name));
    char *c = (char *)h;
    put_octal(c + 100, 8, 0644); /* mode */
    put_octal(c + 108, 8, 0);    /* uid */
    put_octal(c + 116, 8, 0);    /* gid */
    if (size < (1ull << 33)) {
        put_octal(c + 124, 12, size);
    } else { /* base-256 (GNU, POSIX-2001 readers accept it) for members >= 8 GiB */
        h[124] = 0x80;
        for (int i = 11; i >= 1; i--) {
            h[124 + i] = (uint8_t)(size & 0xff);
            size >>= 8;
        }
    }
    put_octal(c + 136, 12, 0); /* mtime */
    c[156] = '0';              /* regular file */
    memcpy(c + 257, "ustar", 6);
    memcpy(c + 263, "00", 2);
    put_octal(c + 329, 8, 0); /* devmajor */
    put_octal(c + 337, 8, 0); /* devminor */
    memset(c + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLK; i++) sum += h[i];
    put_octal(c + 148, 7, sum);
    c[155] = ' ';
}

/* Parse an octal (or base-256) numeric field; -1 when invalid. */
static int64_t get_number(const uint8_t *f, size_t width)
{
    if (f[0] & 0x80) {
        if (f[0] != 0x80) return -1;
        uint64_t v = 0;
        for (size_t i = 1; i < width; i++) {
            if (v >> 55) return -1;
            v = (v << 8) | f[i];
        }
        return v > (uint64_t)INT64_MAX ? -1 : (int64_t)v;
    }
    size_t i = 0;
    while (i < width && f[i] == ' ') i++;
    uint64_t v = 0;
    int digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < width; i++)
        if (f[i] != ' ' && f[i] != '\0') return -1;
    return digits ? (int64_t)v : -1;
}

static int zero_block(const uint8_t *p)
{
    for (int i = 0; i < BLK; i++)
        if (p[i]) return 0;
    return 1;
}

/* Walk the members of buf[0..size).  need_end: the archive must end with a
 * zero block (a finished bundle); otherwise the walk must end exactly at size
 * (a partial file being resumed). */
static int tar_members(const uint8_t *buf, uint64_t size, const char *path, int need_end,
                       ptq_bundle_member **out, int *nout, ptq_err *e)
{
    ptq_bundle_member *m = NULL;
    int n = 0, cap = 0, ended = 0;
    uint64_t off = 0;
    int rc = PTQ_OK;
    while (off < size) {
        if (size - off < BLK) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated: %llu stray bytes at offset %llu", path,
                          (unsigned long long)(size - off), (unsigned long long)off);
            goto fail;
        }
        const uint8_t *h = buf + off;
        if (zero_block(h)) { /* end of archive: two zero blocks */
            if (size - off < 2 * BLK || !zero_block(h + BLK)) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated end-of-archive at offset %llu",
                              path, (unsigned long long)off);
                goto fail;
            }
            ended = 1;
            break;
        }
        unsigned sum = 0;
        for (int i = 0; i < BLK; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
        int64_t stored = get_number(h + 148, 8);
        if (stored < 0 || (unsigned)stored != sum) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: bad tar header checksum at offset %llu", path,
                          (unsigned long long)off);
            goto fail;
        }
        if (memcmp(h + 257, "ustar", 6) || memcmp(h + 263, "00", 2)) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: header at offset %llu is not POSIX ustar", path,
                          (unsigned long long)off);
            goto fail;
        }
        char name[101];
        memcpy(name, h, 100);
        name[100] = '\0';
        if (!member_name_ok(name) || h[345] != '\0') {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: member at offset %llu has an invalid name", path,
                          (unsigned long long)off);
            goto fail;
        }
        if (h[156] != '0' && h[156] != '\0') {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: member %s is not a regular file (type '%c')", path,
                          name, h[156]);
            goto fail;
        }
        int64_t msize = get_number(h + 124, 12);
        if (msize < 0) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: member %s has an invalid size field", path, name);
            goto fail;
        }
        uint64_t data = off + BLK, len = (uint64_t)msize;
        if (len > size - data) {
            rc = ptq_fail(e, PTQ_EFORMAT,
                          "%s: truncated: member %s needs %llu bytes at offset %llu, file has %llu",
                          path, name, (unsigned long long)len, (unsigned long long)data,
                          (unsigned long long)size);
            goto fail;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(m[i].name, name)) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: member %s appears twice", path, name);
                goto fail;
            }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            ptq_bundle_member *t = realloc(m, sizeof *m * (size_t)cap);
            if (!t) {
                rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory reading the member table", path);
                goto fail;
            }
            m = t;
        }
        memcpy(m[n].name, name, sizeof name);
        m[n].offset = data;
        m[n].size = len;
        n++;
        uint64_t next = data + round_up(len);
        if (next > size) {
            if (need_end) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated inside the padding of member %s",
                              path, name);
                goto fail;
            }
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: does not end on a member boundary", path);
            goto fail;
        }
        off = next;
    }
    if (need_end && !ended) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated: no end-of-archive block", path);
        goto fail;
    }
    if (!need_end && ended) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: end-of-archive block inside the kept part", path);
        goto fail;
    }
    *out = m;
    *nout = n;
    return PTQ_OK;
fail:
    free(m);
    return rc;
}

/* ================================================================ writer */

struct ptq_bundle_writer {
    char *final_path, *partial_path;
    int fd;
    uint64_t off;
    cJSON *tensors; /* entries, in order */
    cJSON *files;   /* plain members: {member, offset, size, sha256} */
    char **names;   /* every member written, for duplicate checks */
    int nnames, capnames;
    char *config;   /* a copy of config.json, for the model summary */
    size_t config_len;
};

static int write_all(ptq_bundle_writer *w, const void *buf, size_t n, ptq_err *e)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(w->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return ptq_fail(e, PTQ_EOUTPUT, "%s: cannot write: %s", w->partial_path,
                            k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
    return PTQ_OK;
}

static int has_name(const ptq_bundle_writer *w, const char *name)
{
    for (int i = 0; i < w->nnames; i++)
        if (!strcmp(w->names[i], name)) return 1;
    return 0;
}

static int remember_name(ptq_bundle_writer *w, const char *name, ptq_err *e)
{
    if (w->nnames == w->capnames) {
        int cap = w->capnames ? 2 * w->capnames : 64;
        char **t = realloc(w->names, sizeof *t * (size_t)cap);
        if (!t) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        w->names = t;
        w->capnames = cap;
    }
    if (!(w->names[w->nnames] = strdup(name))) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    w->nnames++;
    return PTQ_OK;
}

/* Append one member; its data offset and SHA-256 go to *offset and hex. */
static int write_member(ptq_bundle_writer *w, const char *name, const void *data, size_t len,
                        uint64_t *offset, char hex[65], ptq_err *e)
{
    if (!member_name_ok(name))
        return ptq_fail(e, PTQ_EUSAGE,
                        "%s: member name '%s' is not 1..100 printable characters without '..'",
                        w->final_path, name);
    if (has_name(w, name))
        return ptq_fail(e, PTQ_EUSAGE, "%s: member %s added twice", w->final_path, name);
    uint8_t h[BLK];
    tar_header(h, name, len);
    int rc = write_all(w, h, BLK, e);
    if (rc) return rc;
    if (offset) *offset = w->off;
    if (len && (rc = write_all(w, data, len, e))) return rc;
    uint64_t pad = round_up(len) - len;
    if (pad) {
        memset(h, 0, BLK);
        if ((rc = write_all(w, h, (size_t)pad, e))) return rc;
    }
    if (hex) hex_digest(data, len, hex);
    return remember_name(w, name, e);
}

static cJSON *ref_json(const char *member, uint64_t offset, uint64_t size, const char *hex)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "member", member);
    cJSON_AddNumberToObject(r, "offset", (double)offset);
    cJSON_AddNumberToObject(r, "size", (double)size);
    cJSON_AddStringToObject(r, "sha256", hex);
    return r;
}

static ptq_bundle_writer *writer_new(const char *final_path)
{
    ptq_bundle_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = -1;
    w->final_path = strdup(final_path);
    size_t n = strlen(final_path) + sizeof ".partial";
    w->partial_path = malloc(n);
    w->tensors = cJSON_CreateArray();
    w->files = cJSON_CreateArray();
    if (!w->final_path || !w->partial_path || !w->tensors || !w->files) {
        ptq_bw_abort(w);
        return NULL;
    }
    snprintf(w->partial_path, n, "%s.partial", final_path);
    return w;
}

static void writer_free(ptq_bundle_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    for (int i = 0; i < w->nnames; i++) free(w->names[i]);
    free(w->names);
    cJSON_Delete(w->tensors);
    cJSON_Delete(w->files);
    free(w->config);
    free(w->final_path);
    free(w->partial_path);
    free(w);
}

int ptq_bw_open(ptq_bundle_writer **out, const char *final_path, ptq_err *e)
{
    *out = NULL;
    ptq_bundle_writer *w = writer_new(final_path);
    if (!w) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", final_path);
    w->fd = open(w->partial_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create: %s", w->partial_path,
                          strerror(errno));
        writer_free(w);
        return rc;
    }
    *out = w;
    return PTQ_OK;
}

void ptq_bw_abort(ptq_bundle_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
        unlink(w->partial_path);
    }
    writer_free(w);
}

static int keep_config(ptq_bundle_writer *w, const void *data, size_t len, ptq_err *e)
{
    free(w->config);
    w->config = malloc(len ? len : 1);
    if (!w->config) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    memcpy(w->config, data, len);
    w->config_len = len;
    return PTQ_OK;
}

int ptq_bw_add_file(ptq_bundle_writer *w, const char *member, const void *data, size_t len,
                    ptq_err *e)
{
    if (!strcmp(member, MANIFEST) || !strncmp(member, TPREFIX, strlen(TPREFIX)))
        return ptq_fail(e, PTQ_EUSAGE, "%s: member name %s is reserved", w->final_path, member);
    uint64_t off;
    char hex[65];
    int rc = write_member(w, member, data, len, &off, hex, e);
    if (rc) return rc;
    cJSON_AddItemToArray(w->files, ref_json(member, off, len, hex));
    if (!strcmp(member, "config.json")) return keep_config(w, data, len, e);
    return PTQ_OK;
}

static const char *const reserved_keys[] = {"name", "method", "format", "dtype",   "rows",
                                            "cols", "bits",   "group",  "sym",     "act_order",
                                            "payloads", "act_scales"};

int ptq_bw_add_tensor(ptq_bundle_writer *w, const char *name, const char *method,
                      const ptq_qtensor *q, const cJSON *extra, ptq_err *e)
{
    if (q->format != PTQ_QF_INT && q->format != PTQ_QF_DENSE && q->format != PTQ_QF_W8A8 &&
        q->format != PTQ_QF_FP8)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s: format %d has no bundle storage yet",
                        w->final_path, name, q->format);
    int rc = ptq_qtensor_check(q, name, e);
    if (rc) return ptq_fail_prefix(e, "%s", w->final_path);
    /* the longest member is tensors/<name>.qweight (or .scales, .json) */
    if (!*name || strlen(TPREFIX) + strlen(name) + strlen(".qweight") > 100)
        return ptq_fail(e, PTQ_EUSAGE, "%s: tensor name '%s' is empty or too long (max %d)",
                        w->final_path, name, (int)(100 - strlen(TPREFIX) - strlen(".qweight")));
    for (cJSON *t = w->tensors->child; t; t = t->next)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring, name))
            return ptq_fail(e, PTQ_EUSAGE, "%s: tensor %s added twice", w->final_path, name);

    cJSON *ent = cJSON_CreateObject();
    cJSON_AddStringToObject(ent, "name", name);
    cJSON_AddStringToObject(ent, "method", method);
    if (q->format == PTQ_QF_DENSE) {
        cJSON_AddStringToObject(ent, "format", "dense");
        cJSON_AddStringToObject(ent, "dtype", ptq_dtype_name((ptq_dtype)q->dtype));
    } else if (q->format == PTQ_QF_W8A8 || q->format == PTQ_QF_FP8) {
        cJSON_AddStringToObject(ent, "format", q->format == PTQ_QF_FP8 ? "fp8" : "w8a8");
        cJSON_AddStringToObject(ent, "act_scales", q->act_scale ? "static" : "dynamic");
    } else {
        cJSON_AddStringToObject(ent, "format", "int");
    }
    cJSON_AddNumberToObject(ent, "rows", q->rows);
    cJSON_AddNumberToObject(ent, "cols", q->cols);
    if (q->format == PTQ_QF_INT) {
        cJSON_AddNumberToObject(ent, "bits", q->bits);
        cJSON_AddNumberToObject(ent, "group", q->group);
        cJSON_AddBoolToObject(ent, "sym", q->sym != 0);
        cJSON_AddBoolToObject(ent, "act_order", q->g_idx != NULL);
    }
    cJSON *pl = cJSON_AddObjectToObject(ent, "payloads");

    const char *pnames[N_INT_PAYLOADS];
    const void *pdata[N_INT_PAYLOADS];
    int np = 0;
    if (q->format == PTQ_QF_DENSE) {
        pnames[np] = "data";
        pdata[np++] = q->data;
    } else if (q->format == PTQ_QF_W8A8 || q->format == PTQ_QF_FP8) {
        pnames[np] = "codes";
        pdata[np++] = q->codes;
        pnames[np] = "wscale";
        pdata[np++] = q->wscale;
        if (q->act_scale) {
            pnames[np] = "act_scale";
            pdata[np++] = q->act_scale;
        }
    } else {
        const void *arrs[N_INT_PAYLOADS] = {q->qweight, q->scales, q->zeros, q->g_idx};
        for (int i = 0; i < N_INT_PAYLOADS; i++)
            if (arrs[i]) {
                pnames[np] = int_payloads[i];
                pdata[np++] = arrs[i];
            }
    }
    char member[128], hex[65];
    for (int i = 0; i < np && !rc; i++) {
        uint64_t size = payload_size(pnames[i], q->format, q->rows, q->cols, q->bits, q->group,
                                     q->dtype),
                 off;
        snprintf(member, sizeof member, TPREFIX "%s.%s", name, pnames[i]);
        if (size > SIZE_MAX) rc = ptq_fail(e, PTQ_ENOMEM, "%s: tensor too large", name);
        if (!rc) rc = write_member(w, member, pdata[i], (size_t)size, &off, hex, e);
        if (!rc) cJSON_AddItemToObject(pl, pnames[i], ref_json(member, off, size, hex));
    }
    for (const cJSON *x = extra ? extra->child : NULL; x && !rc; x = x->next) {
        for (size_t k = 0; k < sizeof reserved_keys / sizeof *reserved_keys; k++)
            if (!x->string || !strcmp(x->string, reserved_keys[k]))
                rc = ptq_fail(e, PTQ_EINTERNAL, "%s: method detail key '%s' is reserved", name,
                              x->string ? x->string : "");
        if (!rc) cJSON_AddItemToObject(ent, x->string, cJSON_Duplicate(x, 1));
    }
    char *text = rc ? NULL : cJSON_PrintUnformatted(ent);
    cJSON_Delete(ent);
    if (rc) return rc;
    if (!text) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    /* the entry member; the manifest gets the entry parsed back from the same
     * text, exactly as a resumed writer will see it */
    snprintf(member, sizeof member, TPREFIX "%s.json", name);
    rc = write_member(w, member, text, strlen(text), NULL, NULL, e);
    cJSON *back = rc ? NULL : cJSON_Parse(text);
    free(text);
    if (rc) return rc;
    if (!back) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    cJSON_AddItemToArray(w->tensors, back);
    return PTQ_OK;
}

int ptq_bw_sync(ptq_bundle_writer *w, uint64_t *offset, ptq_err *e)
{
    if (fsync(w->fd) != 0)
        return ptq_fail(e, PTQ_EOUTPUT, "%s: cannot sync: %s", w->partial_path, strerror(errno));
    if (offset) *offset = w->off;
    return PTQ_OK;
}

static int sync_dir(const char *path)
{
    char *d = strdup(path);
    if (!d) return -1;
    char *slash = strrchr(d, '/');
    const char *dir = ".";
    if (slash) {
        *slash = '\0';
        dir = slash == d ? "/" : d;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : fsync(fd);
    if (fd >= 0) close(fd);
    free(d);
    return rc;
}

int ptq_bw_finish(ptq_bundle_writer *w, const cJSON *top, ptq_err *e)
{
    int rc = PTQ_OK;
    cJSON *man = cJSON_CreateObject();
    cJSON_AddStringToObject(man, "format", FORMAT_NAME);
    int version = FORMAT_VERSION;
    for (const cJSON *t = w->tensors->child; t; t = t->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "format");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        size_t ln = cJSON_IsString(n) ? strlen(n->valuestring) : 0;
        if ((cJSON_IsString(f) && (!strcmp(f->valuestring, "w8a8") || !strcmp(f->valuestring, "fp8"))) ||
            (ln > 9 && !strcmp(n->valuestring + ln - 9, ".kv_scale")))
            version = FORMAT_VERSION_A8;
    }
    cJSON_AddNumberToObject(man, "version", version);
    if (w->config) {
        cJSON *m = model_summary(w->config, w->config_len, e);
        if (!m) rc = ptq_fail_prefix(e, "%s", w->final_path);
        else cJSON_AddItemToObject(man, "model", m);
    }
    if (!rc) {
        cJSON_AddItemReferenceToObject(man, "tensors", w->tensors);
        cJSON_AddItemReferenceToObject(man, "files", w->files);
    }
    for (const cJSON *x = top ? top->child : NULL; x && !rc; x = x->next) {
        if (!x->string || cJSON_GetObjectItemCaseSensitive(man, x->string))
            rc = ptq_fail(e, PTQ_EINTERNAL, "%s: manifest key '%s' is reserved", w->final_path,
                          x->string ? x->string : "");
        else
            cJSON_AddItemToObject(man, x->string, cJSON_Duplicate(x, 1));
    }
    char *text = rc ? NULL : cJSON_Print(man);
    cJSON_Delete(man);
    if (!rc && !text) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc) {
        size_t n = strlen(text);
        text[n] = '\n'; /* cJSON_Print's buffer has room for the NUL we replace */
        rc = write_member(w, MANIFEST, text, n + 1, NULL, NULL, e);
    }
    free(text);
    if (!rc) {
        uint8_t z[2 * BLK];
        memset(z, 0, sizeof z);
        rc = write_all(w, z, sizeof z, e);
    }
    if (!rc && fsync(w->fd) != 0)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot sync: %s", w->partial_path, strerror(errno));
    if (!rc) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) != 0)
            rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot close: %s", w->partial_path,
                          strerror(errno));
        else if (rename(w->partial_path, w->final_path) != 0)
            rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot rename into place: %s", w->final_path,
                          strerror(errno));
        else
            sync_dir(w->final_path);
        if (rc) unlink(w->partial_path);
    }
    ptq_bw_abort(w); /* frees; removes the partial file only if still open */
    return rc;
}

/* The entry member tensors/<name>.json of a resumed tensor: check that its
 * payloads are the members just before it, with the stated hashes. */
static int resume_entry(ptq_bundle_writer *w, const uint8_t *map, const ptq_bundle_member *m,
                        const ptq_bundle_member *all, int first, int idx, ptq_err *e)
{
    cJSON *ent = cJSON_ParseWithLength((const char *)map + m->offset, m->size);
    cJSON *pl = ent ? cJSON_GetObjectItemCaseSensitive(ent, "payloads") : NULL;
    const cJSON *nm = ent ? cJSON_GetObjectItemCaseSensitive(ent, "name") : NULL;
    char expect[128];
    if (!cJSON_IsString(nm) || !cJSON_IsObject(pl) ||
        (snprintf(expect, sizeof expect, TPREFIX "%s.json", nm->valuestring),
         strcmp(expect, m->name))) {
        cJSON_Delete(ent);
        return ptq_fail(e, PTQ_EFORMAT, "%s: entry member %s is malformed", w->partial_path,
                        m->name);
    }
    int np = 0;
    for (cJSON *p = pl->child; p; p = p->next, np++) {
        const cJSON *mem = cJSON_GetObjectItemCaseSensitive(p, "member");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(p, "sha256");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(p, "offset");
        int j = first + np;
        char hex[65];
        if (j >= idx || !cJSON_IsString(mem) || !cJSON_IsString(sha) || !cJSON_IsNumber(off) ||
            strcmp(all[j].name, mem->valuestring) || off->valuedouble != (double)all[j].offset ||
            (hex_digest(map + all[j].offset, all[j].size, hex), strcmp(hex, sha->valuestring))) {
            cJSON_Delete(ent);
            return ptq_fail(e, PTQ_EFORMAT, "%s: payloads of %s do not match its entry",
                            w->partial_path, m->name);
        }
    }
    if (first + np != idx) {
        cJSON_Delete(ent);
        return ptq_fail(e, PTQ_EFORMAT, "%s: stray payload members before %s", w->partial_path,
                        m->name);
    }
    cJSON_AddItemToArray(w->tensors, ent);
    return PTQ_OK;
}

int ptq_bw_resume(ptq_bundle_writer **out, const char *final_path, uint64_t keep_bytes,
                  ptq_err *e)
{
    *out = NULL;
    ptq_bundle_writer *w = writer_new(final_path);
    if (!w) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", final_path);
    int rc = PTQ_OK;
    void *map = NULL;
    ptq_bundle_member *m = NULL;
    int n = 0;
    struct stat sb;
    w->fd = open(w->partial_path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0) {
        rc = ptq_fail(e, PTQ_EIO, "%s: cannot reopen to resume: %s", w->partial_path,
                      strerror(errno));
        writer_free(w);
        return rc;
    }
    if (fstat(w->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = ptq_fail(e, PTQ_EIO, "%s: not a regular file", w->partial_path);
    else if ((uint64_t)sb.st_size < keep_bytes)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: %llu bytes, shorter than the %llu of the journal",
                      w->partial_path, (unsigned long long)sb.st_size,
                      (unsigned long long)keep_bytes);
    else if (keep_bytes % BLK)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: resume offset %llu is not a member boundary",
                      w->partial_path, (unsigned long long)keep_bytes);
    else if (ftruncate(w->fd, (off_t)keep_bytes) != 0)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot truncate: %s", w->partial_path,
                      strerror(errno));
    if (!rc && keep_bytes) {
        map = mmap(NULL, (size_t)keep_bytes, PROT_READ, MAP_SHARED, w->fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = ptq_fail(e, PTQ_EIO, "%s: cannot map: %s", w->partial_path, strerror(errno));
        }
    }
    if (!rc && keep_bytes) rc = tar_members(map, keep_bytes, w->partial_path, 0, &m, &n, e);
    int first = 0; /* first payload member of the tensor being read */
    for (int i = 0; i < n && !rc; i++) {
        const char *nm = m[i].name;
        size_t len = strlen(nm);
        int is_t = !strncmp(nm, TPREFIX, strlen(TPREFIX));
        if (is_t && len > 5 && !strcmp(nm + len - 5, ".json")) {
            rc = resume_entry(w, map, &m[i], m, first, i, e);
            first = i + 1;
        } else if (!is_t) {
            char hex[65];
            if (first != i || !strcmp(nm, MANIFEST)) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: unexpected member %s", w->partial_path, nm);
                break;
            }
            hex_digest((const uint8_t *)map + m[i].offset, m[i].size, hex);
            cJSON_AddItemToArray(w->files, ref_json(nm, m[i].offset, m[i].size, hex));
            if (!strcmp(nm, "config.json"))
                rc = keep_config(w, (const uint8_t *)map + m[i].offset, m[i].size, e);
            first = i + 1;
        }
        if (!rc) rc = remember_name(w, nm, e);
    }
    if (!rc && first != n)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: payloads at the resume point have no entry",
                      w->partial_path);
    if (map) munmap(map, (size_t)keep_bytes);
    free(m);
    if (!rc && lseek(w->fd, (off_t)keep_bytes, SEEK_SET) < 0)
        rc = ptq_fail(e, PTQ_EIO, "%s: cannot seek: %s", w->partial_path, strerror(errno));
    if (rc) {
        writer_free(w); /* keep the partial file: the caller may start over */
        return rc;
    }
    w->off = keep_bytes;
    *out = w;
    return PTQ_OK;
}

/* ================================================================ reader */

/* Problems are collected (verify) or the first one is returned (open). */
typedef struct checker {
    const ptq_bundle *b;
    int n;
    int status; /* of the first problem */
    char first[1024];
    void (*cb)(void *ud, const char *line);
    void *ud;
} checker;

__attribute__((format(printf, 3, 4))) static void problem(checker *ck, int status,
                                                          const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (ck->n++ == 0) {
        ck->status = status;
        snprintf(ck->first, sizeof ck->first, "%s", line);
    }
    if (ck->cb) ck->cb(ck->ud, line);
}

static const ptq_bundle_member *find_member(const ptq_bundle *b, const char *name)
{
    for (int i = 0; i < b->nmembers; i++)
        if (!strcmp(b->members[i].name, name)) return &b->members[i];
    return NULL;
}

/* An integer-valued JSON number in [lo, hi]. */
static int get_int(const cJSON *o, const char *key, double lo, double hi, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(x)) {
        *v = cJSON_IsTrue(x);
        return lo <= *v && *v <= hi;
    }
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int64_t)x->valuedouble) return 0;
    *v = x->valuedouble;
    return lo <= *v && *v <= hi;
}

/* A payload reference {member, offset, size, sha256} consistent with the
 * member table and of the expected size; the member on success. */
static const ptq_bundle_member *check_ref(checker *ck, const cJSON *ref, const char *what,
                                          const char *expect_member, uint64_t expect_size)
{
    const ptq_bundle *b = ck->b;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(ref, "member");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(ref, "sha256");
    double off, size;
    if (!cJSON_IsObject(ref) || !cJSON_IsString(mem) || !cJSON_IsString(sha) ||
        strlen(sha->valuestring) != 64 || strspn(sha->valuestring, "0123456789abcdef") != 64 ||
        !get_int(ref, "offset", 0, 9007199254740992.0, &off) ||
        !get_int(ref, "size", 0, 9007199254740992.0, &size)) {
        problem(ck, PTQ_EFORMAT, "%s: %s: malformed member reference", b->path, what);
        return NULL;
    }
    if (expect_member && strcmp(mem->valuestring, expect_member)) {
        problem(ck, PTQ_EFORMAT, "%s: %s: member is %s, expected %s", b->path, what,
                mem->valuestring, expect_member);
        return NULL;
    }
    if ((uint64_t)off > b->size || (uint64_t)size > b->size - (uint64_t)off) {
        problem(ck, PTQ_EFORMAT, "%s: %s: member %s at %.0f+%.0f lies outside the file (%zu bytes)",
                b->path, what, mem->valuestring, off, size, b->size);
        return NULL;
    }
    const ptq_bundle_member *m = find_member(b, mem->valuestring);
    if (!m) {
        problem(ck, PTQ_EFORMAT, "%s: %s: member %s is not in the archive", b->path, what,
                mem->valuestring);
        return NULL;
    }
    if (m->offset != (uint64_t)off || m->size != (uint64_t)size) {
        problem(ck, PTQ_EFORMAT,
                "%s: %s: manifest says %s is at %.0f+%.0f, the archive has it at %llu+%llu",
                b->path, what, m->name, off, size, (unsigned long long)m->offset,
                (unsigned long long)m->size);
        return NULL;
    }
    if (expect_size != UINT64_MAX && m->size != expect_size) {
        problem(ck, PTQ_EFORMAT, "%s: %s: member %s has %llu bytes, the shape implies %llu",
                b->path, what, m->name, (unsigned long long)m->size,
                (unsigned long long)expect_size);
        return NULL;
    }
    return m;
}

static int check_hash(checker *ck, const ptq_bundle_member *m, const cJSON *ref)
{
    char hex[65];
    hex_digest(ck->b->map + m->offset, (size_t)m->size, hex);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(ref, "sha256");
    if (strcmp(hex, sha->valuestring)) {
        problem(ck, PTQ_EVERIFY, "%s: checksum mismatch in member %s", ck->b->path, m->name);
        return 0;
    }
    return 1;
}

/* One tensor entry: fields, payload references, sizes (hashes when asked).
 * Fills q (pointers into the map) when q is given and all holds. */
static int check_entry(checker *ck, const cJSON *ent, int hashes, ptq_qtensor *q)
{
    const ptq_bundle *b = ck->b;
    int n0 = ck->n;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ent, "name");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(ent, "method");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(ent, "format");
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(ent, "payloads");
    if (!cJSON_IsObject(ent) || !cJSON_IsString(name) || !*name->valuestring ||
        strlen(name->valuestring) > 100 || !cJSON_IsString(method) || !cJSON_IsString(fmt) ||
        !cJSON_IsObject(pl)) {
        problem(ck, PTQ_EFORMAT, "%s: manifest: a tensor entry lacks name, method, format or "
                                 "payloads", b->path);
        return 0;
    }
    const char *nm = name->valuestring;
    ptq_qtensor t;
    memset(&t, 0, sizeof t);
    double rows, cols, bits = 0, group = 0, sym = 0;
    if (!get_int(ent, "rows", 1, 2147483647.0, &rows) ||
        !get_int(ent, "cols", 1, 2147483647.0, &cols)) {
        problem(ck, PTQ_EFORMAT, "%s: tensor %s: rows/cols missing or not positive", b->path, nm);
        return 0;
    }
    t.rows = (int)rows;
    t.cols = (int)cols;
    if (!strcmp(fmt->valuestring, "dense")) {
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
        t.format = PTQ_QF_DENSE;
        t.dtype = cJSON_IsString(dt) ? (int)ptq_dtype_parse(dt->valuestring) : PTQ_DT_INVALID;
        if (t.dtype != PTQ_DT_F16 && t.dtype != PTQ_DT_BF16 && t.dtype != PTQ_DT_F32) {
            problem(ck, PTQ_EFORMAT, "%s: tensor %s: dense dtype missing or not F16/BF16/F32",
                    b->path, nm);
            return 0;
        }
    } else if (!strcmp(fmt->valuestring, "int")) {
        t.format = PTQ_QF_INT;
        if (!get_int(ent, "bits", 2, 8, &bits) || !get_int(ent, "group", 0, cols, &group) ||
            !get_int(ent, "sym", 0, 1, &sym) || (group > 0 && (int)cols % (int)group)) {
            problem(ck, PTQ_EFORMAT,
                    "%s: tensor %s: bits (2..8), group (dividing cols) or sym invalid", b->path,
                    nm);
            return 0;
        }
        t.bits = (int)bits;
        t.group = (int)group;
        t.sym = (int)sym;
        t.ngroups = t.group ? t.cols / t.group : 1;
    } else if (!strcmp(fmt->valuestring, "w8a8") || !strcmp(fmt->valuestring, "fp8")) {
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(ent, "act_scales");
        t.format = !strcmp(fmt->valuestring, "fp8") ? PTQ_QF_FP8 : PTQ_QF_W8A8;
        t.bits = 8;
        t.sym = 1;
        int stat = cJSON_IsString(as) && !strcmp(as->valuestring, "static");
        if (!(stat || (cJSON_IsString(as) && !strcmp(as->valuestring, "dynamic"))) ||
            stat != (cJSON_GetObjectItemCaseSensitive(pl, "act_scale") != NULL)) {
            problem(ck, PTQ_EFORMAT, "%s: tensor %s: act_scales is not \"static\" with an "
                    "act_scale payload or \"dynamic\" without one", b->path, nm);
            return 0;
        }
    } else {
        problem(ck, PTQ_EFORMAT, "%s: tensor %s: unknown format '%s'", b->path, nm,
                fmt->valuestring);
        return 0;
    }
    for (const cJSON *p = pl->child; p; p = p->next) {
        uint64_t size = p->string ? payload_size(p->string, t.format, t.rows, t.cols, t.bits,
                                                 t.group, t.dtype)
                                  : 0;
        if (!size) {
            problem(ck, PTQ_EFORMAT, "%s: tensor %s: unknown payload '%s'", b->path, nm,
                    p->string ? p->string : "");
            continue;
        }
        char what[256], expect[160];
        snprintf(what, sizeof what, "tensor %s payload %s", nm, p->string);
        snprintf(expect, sizeof expect, TPREFIX "%s.%s", nm, p->string);
        const ptq_bundle_member *m = check_ref(ck, p, what, expect, size);
        if (!m) continue;
        if (hashes) check_hash(ck, m, p);
        void *ptr = (void *)(b->map + m->offset);
        if (!strcmp(p->string, "data")) t.data = ptr;
        else if (!strcmp(p->string, "qweight")) t.qweight = ptr;
        else if (!strcmp(p->string, "scales")) t.scales = ptr;
        else if (!strcmp(p->string, "zeros")) t.zeros = ptr;
        else if (!strcmp(p->string, "codes")) t.codes = ptr;
        else if (!strcmp(p->string, "wscale")) t.wscale = ptr;
        else if (!strcmp(p->string, "act_scale")) t.act_scale = ptr;
        else t.g_idx = ptr;
    }
    if (ck->n != n0) return 0;
    t.mapped = 1;
    ptq_err e2;
    char what[256];
    snprintf(what, sizeof what, "%s: tensor %s", b->path, nm);
    if (ptq_qtensor_check(&t, what, &e2)) {
        problem(ck, PTQ_EFORMAT, "%s", e2.msg);
        return 0;
    }
    if (q) *q = t;
    return 1;
}

/* Structure of the manifest: what open needs to read tensors safely. */
static void check_manifest(checker *ck, int hashes)
{
    const ptq_bundle *b = ck->b;
    const cJSON *man = b->manifest;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(man, "format");
    double ver;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, FORMAT_NAME)) {
        problem(ck, PTQ_EFORMAT, "%s: manifest.json: format is not \"" FORMAT_NAME "\"", b->path);
        return;
    }
    if (!get_int(man, "version", 1, 1e9, &ver)) {
        problem(ck, PTQ_EFORMAT, "%s: manifest.json: version missing or invalid", b->path);
        return;
    }
    if (ver != FORMAT_VERSION && ver != FORMAT_VERSION_A8) {
        problem(ck, PTQ_EFORMAT, "%s: bundle version %.0f is not supported (this ptqc reads %d "
                "and %d)", b->path, ver, FORMAT_VERSION, FORMAT_VERSION_A8);
        return;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(man, "tensors");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(man, "files");
    if (!cJSON_IsArray(ts) || !cJSON_IsArray(fs)) {
        problem(ck, PTQ_EFORMAT, "%s: manifest.json: tensors or files is not an array", b->path);
        return;
    }
    for (const cJSON *t = ts->child; t; t = t->next) check_entry(ck, t, hashes, NULL);
    for (const cJSON *x = fs->child; x; x = x->next) {
        const cJSON *mem = cJSON_GetObjectItemCaseSensitive(x, "member");
        char what[160];
        snprintf(what, sizeof what, "file %s", cJSON_IsString(mem) ? mem->valuestring : "?");
        const ptq_bundle_member *m = check_ref(ck, x, what, NULL, UINT64_MAX);
        if (m && hashes) check_hash(ck, m, x);
    }
}

void ptq_bundle_close(ptq_bundle *b)
{
    if (b->map && b->owns_map) munmap((void *)b->map, b->size);
    free(b->members);
    cJSON_Delete(b->manifest);
    free(b->path);
    memset(b, 0, sizeof *b);
}

/* Parse the archive and the manifest of b->map[0..size). */
static int parse(ptq_bundle *b, int verify, ptq_err *e)
{
    const char *path = b->path;
    if (b->size < 3 * BLK)
        return ptq_fail(e, PTQ_EFORMAT, "%s: %zu bytes is too short for a bundle", path, b->size);
    int rc = tar_members(b->map, b->size, path, 1, &b->members, &b->nmembers, e);
    if (rc) return rc;
    if (b->nmembers == 0 || strcmp(b->members[b->nmembers - 1].name, MANIFEST))
        return ptq_fail(e, PTQ_EFORMAT, "%s: the last member is not manifest.json (not a bundle)",
                        path);
    const ptq_bundle_member *mm = &b->members[b->nmembers - 1];
    b->manifest = cJSON_ParseWithLength((const char *)b->map + mm->offset, (size_t)mm->size);
    if (!cJSON_IsObject(b->manifest))
        return ptq_fail(e, PTQ_EFORMAT, "%s: manifest.json is not a well-formed JSON object", path);
    checker ck = {.b = b};
    check_manifest(&ck, verify);
    if (ck.n) return ptq_fail(e, ck.status, "%s", ck.first);
    return PTQ_OK;
}

int ptq_bundle_open_mem(ptq_bundle *b, const void *data, size_t size, const char *name,
                        int verify, ptq_err *e)
{
    memset(b, 0, sizeof *b);
    if ((uintptr_t)data % 8) return ptq_fail(e, PTQ_EINTERNAL, "%s: buffer not aligned", name);
    if (!(b->path = strdup(name))) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", name);
    b->map = data;
    b->size = size;
    int rc = parse(b, verify, e);
    if (rc) ptq_bundle_close(b);
    return rc;
}

int ptq_bundle_open(ptq_bundle *b, const char *path, int verify, ptq_err *e)
{
    memset(b, 0, sizeof *b);
    int rc = PTQ_OK;
    if (!(b->path = strdup(path))) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        rc = ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        rc = ptq_fail(e, PTQ_EIO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 3 * BLK) {
        close(fd);
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: %lld bytes is too short for a bundle", path,
                      (long long)sb.st_size);
        goto fail;
    }
    b->size = (size_t)sb.st_size;
    void *map = mmap(NULL, b->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        rc = ptq_fail(e, PTQ_EIO, "%s: cannot map: %s", path, strerror(errno));
        b->size = 0;
        goto fail;
    }
    b->map = map;
    b->owns_map = 1;
    if ((rc = parse(b, verify, e))) goto fail;
    return PTQ_OK;
fail:
    ptq_bundle_close(b);
    return rc;
}

const void *ptq_bundle_member_data(const ptq_bundle *b, const char *name, uint64_t *size)
{
    const ptq_bundle_member *m = find_member(b, name);
    if (!m) return NULL;
    if (size) *size = m->size;
    return b->map + m->offset;
}

static const cJSON *find_entry(const ptq_bundle *b, const char *name)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors");
    for (const cJSON *t = ts ? ts->child : NULL; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return t;
    }
    return NULL;
}

int ptq_bundle_tensor(const ptq_bundle *b, const char *name, ptq_qtensor *q, ptq_err *e)
{
    memset(q, 0, sizeof *q);
    const cJSON *ent = find_entry(b, name);
    if (!ent) return ptq_fail(e, PTQ_EFORMAT, "%s: no tensor %s", b->path, name);
    checker ck = {.b = b};
    if (!check_entry(&ck, ent, 0, q)) return ptq_fail(e, ck.status, "%s", ck.first);
    return PTQ_OK;
}

/* The tensors a config implies, with their shapes. */
static void expect_tensor(checker *ck, const char *name, int rows, int cols)
{
    const cJSON *ent = find_entry(ck->b, name);
    double r = -1, c = -1;
    if (!ent) {
        problem(ck, PTQ_EVERIFY, "%s: tensor %s is missing", ck->b->path, name);
        return;
    }
    if (!get_int(ent, "rows", 0, 2147483647.0, &r) || !get_int(ent, "cols", 0, 2147483647.0, &c) ||
        (int)r != rows || (int)c != cols)
        problem(ck, PTQ_EVERIFY, "%s: tensor %s has shape %.0f x %.0f, the config implies %d x %d",
                ck->b->path, name, r, c, rows, cols);
}

/* The int8 KV-cache scales of a layer, when present: F32 dense, 2 rows (keys,
 * values) of one scale per kv head and head-dim channel, or, as written
 * before, one per kv head. */
static void expect_kv_scale(checker *ck, const char *name, const ptq_config *c)
{
    const cJSON *ent = find_entry(ck->b, name);
    double r = -1, k = -1;
    if (!ent) return;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ent, "format");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
    int kvd = c->n_kv_heads * c->head_dim;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "dense") || !cJSON_IsString(d) ||
        strcmp(d->valuestring, "F32") || !get_int(ent, "rows", 0, 2147483647.0, &r) ||
        !get_int(ent, "cols", 0, 2147483647.0, &k) || (int)r != 2 ||
        ((int)k != kvd && (int)k != c->n_kv_heads))
        problem(ck, PTQ_EVERIFY, "%s: tensor %s is not dense F32 2 x %d (per channel) or 2 x %d "
                "(per head)", ck->b->path, name, kvd, c->n_kv_heads);
}

static int config_names(const ptq_config *c, const char *name)
{
    char buf[160];
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight"))
        return 1;
    if (!c->tie_embeddings && !strcmp(name, "lm_head.weight")) return 1;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(buf, sizeof buf, "model.layers.%d.", l);
        size_t n = strlen(buf);
        if (strncmp(name, buf, n)) continue;
        const char *rest = name + n;
        if (!strcmp(rest, "input_layernorm.weight") ||
            !strcmp(rest, "post_attention_layernorm.weight") ||
            !strcmp(rest, "self_attn.kv_scale")) /* int8 KV cache scales */
            return 1;
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            snprintf(buf, sizeof buf, "%s.weight", ptq_linear_name(i));
            if (!strcmp(rest, buf)) return 1;
            snprintf(buf, sizeof buf, "%s.bias", ptq_linear_name(i));
            if (c->qkv_bias && i <= PTQ_V && !strcmp(rest, buf)) return 1;
        }
    }
    return 0;
}

static void check_against_config(checker *ck)
{
    const ptq_bundle *b = ck->b;
    uint64_t len;
    const char *json = ptq_bundle_member_data(b, "config.json", &len);
    if (!json) {
        problem(ck, PTQ_EVERIFY, "%s: member config.json is missing", b->path);
        return;
    }
    if (!ptq_bundle_member_data(b, "tokenizer.json", NULL))
        problem(ck, PTQ_EVERIFY, "%s: member tokenizer.json is missing", b->path);
    ptq_err e2;
    ptq_config c;
    if (ptq_config_parse(&c, json, (size_t)len, "config.json", &e2)) {
        problem(ck, PTQ_EVERIFY, "%s: %s", b->path, e2.msg);
        return;
    }
    cJSON *sum = model_summary(json, (size_t)len, &e2);
    if (!sum || !cJSON_Compare(sum, cJSON_GetObjectItemCaseSensitive(b->manifest, "model"), 1))
        problem(ck, PTQ_EVERIFY, "%s: the manifest's model summary disagrees with config.json",
                b->path);
    cJSON_Delete(sum);
    char name[160];
    expect_tensor(ck, "model.embed_tokens.weight", c.vocab, c.hidden);
    for (int l = 0; l < c.n_layers; l++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        expect_tensor(ck, name, 1, c.hidden);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        expect_tensor(ck, name, 1, c.hidden);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_scale", l);
        expect_kv_scale(ck, name, &c);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(&c, i, &r, &k);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ptq_linear_name(i));
            expect_tensor(ck, name, r, k);
            if (c.qkv_bias && i <= PTQ_V) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, ptq_linear_name(i));
                expect_tensor(ck, name, 1, r);
            }
        }
    }
    expect_tensor(ck, "model.norm.weight", 1, c.hidden);
    if (!c.tie_embeddings) expect_tensor(ck, "lm_head.weight", c.vocab, c.hidden);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors");
    for (const cJSON *t = ts->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && !config_names(&c, n->valuestring))
            problem(ck, PTQ_EVERIFY, "%s: tensor %s is not part of a %s model with this config",
                    b->path, n->valuestring, c.model_type);
    }
}

/* Every member must be accounted for: a file, a payload, an entry, the manifest. */
static void check_members(checker *ck)
{
    const ptq_bundle *b = ck->b;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(b->manifest, "files");
    for (int i = 0; i < b->nmembers - 1; i++) {
        const char *mn = b->members[i].name;
        int known = 0;
        for (const cJSON *x = fs->child; x && !known; x = x->next) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "member");
            known = cJSON_IsString(m) && !strcmp(m->valuestring, mn);
        }
        for (const cJSON *t = ts->child; t && !known; t = t->next) {
            const cJSON *pl = cJSON_GetObjectItemCaseSensitive(t, "payloads");
            for (const cJSON *p = pl ? pl->child : NULL; p && !known; p = p->next) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "member");
                known = cJSON_IsString(m) && !strcmp(m->valuestring, mn);
            }
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
            char ent[160];
            if (!known && cJSON_IsString(n)) {
                snprintf(ent, sizeof ent, TPREFIX "%s.json", n->valuestring);
                if (!strcmp(ent, mn)) {
                    known = 1;
                    const ptq_bundle_member *m = &b->members[i];
                    cJSON *copy =
                        cJSON_ParseWithLength((const char *)b->map + m->offset, (size_t)m->size);
                    if (!cJSON_Compare(copy, t, 1))
                        problem(ck, PTQ_EVERIFY, "%s: entry member %s disagrees with the manifest",
                                b->path, mn);
                    cJSON_Delete(copy);
                }
            }
        }
        if (!known) problem(ck, PTQ_EVERIFY, "%s: unknown member %s", b->path, mn);
    }
    /* duplicate tensor names, act_order consistency */
    for (const cJSON *t = ts->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (!cJSON_IsString(n)) continue;
        for (const cJSON *u = t->next; u; u = u->next) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(u, "name");
            if (cJSON_IsString(m) && !strcmp(m->valuestring, n->valuestring))
                problem(ck, PTQ_EVERIFY, "%s: tensor %s is listed twice", b->path, n->valuestring);
        }
        const cJSON *ao = cJSON_GetObjectItemCaseSensitive(t, "act_order");
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(t, "payloads");
        if (ao && cJSON_IsTrue(ao) != (cJSON_GetObjectItemCaseSensitive(pl, "g_idx") != NULL))
            problem(ck, PTQ_EVERIFY, "%s: tensor %s: act_order disagrees with its g_idx payload",
                    b->path, n->valuestring);
    }
}

int ptq_bundle_verify(const ptq_bundle *b, int *nbad, void (*cb)(void *ud, const char *line),
                      void *ud, ptq_err *e)
{
    checker ck = {.b = b, .cb = cb, .ud = ud};
    check_manifest(&ck, 1);
    check_members(&ck);
    check_against_config(&ck);
    *nbad = ck.n;
    if (ck.n) return ptq_fail(e, PTQ_EVERIFY, "%s", ck.first);
    return PTQ_OK;
}
