/* text.c - calibration and evaluation text sources: see text.h.
 *
 * Every source is read whole into memory and hashed; then its content decides
 * what it is: an archive (members), a compressed file (one stream) or plain
 * bytes.  Each resulting file is checked as UTF-8 (Unicode 3.9, "U+FFFD
 * substitution of maximal subparts"), then taken as one document or split
 * into JSONL records. */
#include "calib/text.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/sha256.h"

/* What one ptq_text_read call carries around. */
typedef struct reader {
    ptq_text *t;
    int cap_docs;
    const ptq_text_opts *opts;
    size_t budget; /* bytes still allowed (opts->max_bytes) */
    ptq_sha256_ctx sha;
    ptq_err *e;
} reader;

/* ---------------------------------------------------------------- buffers */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

/* Make room for `more` bytes plus a NUL: grow geometrically, never past the
 * reader's budget, with overflow checks. */
static int buf_reserve(reader *r, buf *b, size_t more, const char *name)
{
    if (more > r->budget || b->n > r->budget - more)
        return ptq_fail(r->e, PTQ_EDATA, "%s: more than %zu bytes of text in all (the limit)",
                        name, r->opts && r->opts->max_bytes ? r->opts->max_bytes
                                                            : PTQ_TEXT_MAX_BYTES);
    size_t need = b->n + more + 1;
    if (need <= b->cap) return PTQ_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) return ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory reading %zu bytes", name, need);
    b->p = p;
    b->cap = cap;
    return PTQ_OK;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *join(const char *a, const char *sep, const char *b)
{
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *d = malloc(na + ns + nb + 1);
    if (!d) return NULL;
    memcpy(d, a, na);
    memcpy(d + na, sep, ns);
    memcpy(d + na + ns, b, nb + 1);
    return d;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the well-formed sequence at p[0..n), or 0 when it is ill-formed;
 * then *sub is the length of its maximal subpart (>= 1). Table 3-7. */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *sub)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else {
        *sub = 1; /* 80..C1, F5..FF: never a lead byte */
        return 0;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (i == len) return len;
    *sub = i;
    return 0;
}

/* Check (and under PTQ_UTF8_REPLACE repair) b as UTF-8 in place; name is the
 * file for messages. */
static int utf8_fix(reader *r, buf *b, const char *name)
{
    const unsigned char *p = (const unsigned char *)b->p;
    size_t nbad = 0, out = 0, first = 0;
    for (size_t i = 0; i < b->n;) {
        size_t sub = 0, k = utf8_seq(p + i, b->n - i, &sub);
        if (k) {
            i += k;
            out += k;
            continue;
        }
        if (nbad++ == 0) first = i;
        i += sub;
        out += 3;
    }
    if (nbad == 0) return PTQ_OK;
    int strict = r->opts && r->opts->utf8_policy == PTQ_UTF8_STRICT;
    if (strict)
        return ptq_fail(r->e, PTQ_EFORMAT, "%s: invalid UTF-8 at byte %zu", name, first);
    if (!r->t->bad_name) {
        r->t->bad_name = dupstr(name);
        if (!r->t->bad_name) return ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", name);
        r->t->bad_offset = first;
    }
    r->t->n_replaced += nbad;
    /* out <= 3 * b->n: each ill-formed byte becomes at most 3 */
    if (b->n > (SIZE_MAX - 1) / 3)
        return ptq_fail(r->e, PTQ_ENOMEM, "%s: too large to repair", name);
    char *q = malloc(out + 1);
    if (!q) return ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", name);
    size_t o = 0;
    for (size_t i = 0; i < b->n;) {
        size_t sub = 0, k = utf8_seq(p + i, b->n - i, &sub);
        if (k) {
            memcpy(q + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(q + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += sub;
        }
    }
    q[o] = 0;
    free(b->p);
    b->p = q;
    b->n = o;
    b->cap = o + 1;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- documents */

static int add_doc(reader *r, char *name, char *text, size_t len)
{
    ptq_text *t = r->t;
    if (t->ndocs == r->cap_docs) {
        int cap = r->cap_docs > INT_MAX / 2 ? -1 : r->cap_docs ? r->cap_docs * 2 : 16;
        ptq_doc *d = cap > 0 && (size_t)cap <= SIZE_MAX / sizeof *d
                         ? realloc(t->docs, (size_t)cap * sizeof *d)
                         : NULL;
        if (!d) {
            free(name);
            free(text);
            return ptq_fail(r->e, PTQ_ENOMEM, "out of memory after %d documents", t->ndocs);
        }
        t->docs = d;
        r->cap_docs = cap;
    }
    t->docs[t->ndocs++] = (ptq_doc){name, text, len};
    t->total_bytes += len;
    return PTQ_OK;
}

/* Does the name (without a compression suffix) end in .jsonl? */
static int jsonl_name(const char *name)
{
    static const char *const z[] = {".gz", ".xz", ".zst", ".bz2", ".lz", ".lzma", ".lz4", ".Z"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
        size_t k = strlen(z[i]);
        if (n > k && !strcmp(name + n - k, z[i])) {
            n -= k;
            break;
        }
    }
    return n >= 6 && !memcmp(name + n - 6, ".jsonl", 6);
}

/* One JSONL file (already valid UTF-8): one document per non-blank line. */
static int add_jsonl(reader *r, const buf *b, const char *name, const char *field)
{
    size_t line = 0;
    for (size_t i = 0; i < b->n;) {
        const char *s = b->p + i;
        const char *nl = memchr(s, '\n', b->n - i);
        size_t len = nl ? (size_t)(nl - s) : b->n - i;
        i += len + (nl != NULL);
        line++;
        if (line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3; /* a byte order mark */
            len -= 3;
        }
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
        if (k == len) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
        if (!j) {
            size_t col = end && end >= s && end <= s + len ? (size_t)(end - s) + 1 : 1;
            return ptq_fail(r->e, PTQ_EFORMAT, "%s:%zu: malformed JSON near column %zu", name,
                            line, col);
        }
        for (const char *q = end; q && q < s + len; q++)
            if (*q != ' ' && *q != '\t' && *q != '\r') {
                cJSON_Delete(j);
                return ptq_fail(r->e, PTQ_EFORMAT, "%s:%zu: text after the JSON value", name,
                                line);
            }
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return ptq_fail(r->e, PTQ_EFORMAT, "%s:%zu: not a JSON object", name, line);
        }
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
        if (!v || !cJSON_IsString(v) || !v->valuestring) {
            int missing = v == NULL;
            cJSON_Delete(j);
            return ptq_fail(r->e, PTQ_EFORMAT, "%s:%zu: field \"%s\" %s", name, line, field,
                            missing ? "is missing" : "is not a string");
        }
        char *text = dupstr(v->valuestring);
        char num[32];
        snprintf(num, sizeof num, "%zu", line);
        char *dname = join(name, ":", num);
        cJSON_Delete(j);
        if (!text || !dname) {
            free(text);
            free(dname);
            return ptq_fail(r->e, PTQ_ENOMEM, "%s:%zu: out of memory", name, line);
        }
        int rc = add_doc(r, dname, text, strlen(text));
        if (rc) return rc;
    }
    return PTQ_OK;
}

/* One decoded file: UTF-8 check, then one document or JSONL records.  Takes
 * b's memory. */
static int add_file(reader *r, buf *b, const char *name, int jsonl)
{
    int rc = utf8_fix(r, b, name);
    if (rc == PTQ_OK && jsonl) {
        const char *field = r->opts && r->opts->jsonl_field ? r->opts->jsonl_field : "text";
        rc = add_jsonl(r, b, name, field);
    } else if (rc == PTQ_OK) {
        char *dname = dupstr(name);
        if (!dname) rc = ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", name);
        if (rc == PTQ_OK && !b->p) rc = buf_reserve(r, b, 0, name);
        if (rc == PTQ_OK) {
            b->p[b->n] = 0;
            rc = add_doc(r, dname, b->p, b->n);
            b->p = NULL;
        } else {
            free(dname);
        }
    }
    free(b->p);
    *b = (buf){0};
    return rc;
}

/* ---------------------------------------------------------------- archives */

static void enable_filters(struct archive *a)
{
    /* Built into Debian's libarchive; each returns ARCHIVE_WARN when it would
     * run an external program instead, which is still fine. */
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_lzma(a);
    archive_read_support_filter_lzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_lz4(a);
    archive_read_support_filter_compress(a);
}

/* Formats that can only match binary headers: not mtree, warc, raw or empty,
 * which would take plain text for an archive. */
static void enable_formats(struct archive *a)
{
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_7zip(a);
    archive_read_support_format_cpio(a);
    archive_read_support_format_iso9660(a);
    archive_read_support_format_xar(a);
    archive_read_support_format_rar(a);
    archive_read_support_format_rar5(a);
    archive_read_support_format_cab(a);
}

/* Read the current entry's data into b. */
static int read_entry(reader *r, struct archive *a, struct archive_entry *ent, buf *b,
                      const char *name)
{
    if (archive_entry_size_is_set(ent) && archive_entry_size(ent) > 0) {
        la_int64_t sz = archive_entry_size(ent);
        size_t want = (uint64_t)sz > r->budget ? r->budget + 1 : (size_t)sz;
        int rc = buf_reserve(r, b, want, name);
        if (rc) return rc;
    }
    for (;;) {
        int rc = buf_reserve(r, b, 1, name);
        if (rc) return rc;
        size_t room = b->cap - b->n - 1;
        if (room > r->budget - b->n) room = r->budget - b->n;
        if (room == 0) room = 1; /* one more byte reports the limit */
        la_ssize_t got = archive_read_data(a, b->p + b->n, room);
        if (got < 0)
            return ptq_fail(r->e, PTQ_EFORMAT, "%s: corrupt archive: %s", name,
                            archive_error_string(a) ? archive_error_string(a) : "read error");
        if (got == 0) break;
        b->n += (size_t)got;
        b->p[b->n] = 0;
    }
    if (b->n > r->budget) return buf_reserve(r, b, 1, name);
    r->budget -= b->n;
    return PTQ_OK;
}

/* 1: handled as an archive; 0: not an archive; <0 never. Errors as status. */
static int try_archive(reader *r, const buf *raw, const char *path, int *handled)
{
    *handled = 0;
    struct archive *a = archive_read_new();
    if (!a) return ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", path);
    enable_filters(a);
    enable_formats(a);
    struct archive_entry *ent;
    int rc = PTQ_OK;
    if (archive_read_open_memory(a, raw->p, raw->n) != ARCHIVE_OK) goto done;
    int h = archive_read_next_header(a, &ent);
    if (h == ARCHIVE_FATAL || h == ARCHIVE_FAILED) goto done; /* no format matched */
    *handled = 1;
    for (; h != ARCHIVE_EOF; h = archive_read_next_header(a, &ent)) {
        if (h < ARCHIVE_WARN) {
            rc = ptq_fail(r->e, PTQ_EFORMAT, "%s: corrupt archive: %s", path,
                          archive_error_string(a) ? archive_error_string(a) : "bad header");
            goto done;
        }
        if (archive_entry_filetype(ent) != AE_IFREG) continue;
        const char *mname = archive_entry_pathname(ent);
        if (!mname) mname = "?";
        char *name = join(path, ":", mname);
        if (!name) {
            rc = ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        buf b = {0};
        rc = read_entry(r, a, ent, &b, name);
        int jsonl = (r->opts && r->opts->jsonl_field) || jsonl_name(mname);
        if (rc == PTQ_OK) rc = add_file(r, &b, name, jsonl);
        free(b.p);
        free(name);
        if (rc) goto done;
    }
done:
    archive_read_free(a);
    return rc;
}

/* A single compressed stream (.gz, .xz, ...): decompress into *out. */
static int try_compressed(reader *r, const buf *raw, const char *path, buf *out, int *handled)
{
    *handled = 0;
    struct archive *a = archive_read_new();
    if (!a) return ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", path);
    enable_filters(a);
    archive_read_support_format_raw(a);
    struct archive_entry *ent;
    int rc = PTQ_OK;
    if (archive_read_open_memory(a, raw->p, raw->n) != ARCHIVE_OK ||
        archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE)
        goto done; /* plain bytes */
    *handled = 1;
    if (archive_read_next_header(a, &ent) < ARCHIVE_WARN) {
        rc = ptq_fail(r->e, PTQ_EFORMAT, "%s: corrupt compressed file: %s", path,
                      archive_error_string(a) ? archive_error_string(a) : "bad header");
        goto done;
    }
    rc = read_entry(r, a, ent, out, path);
    if (rc && r->e && r->e->status == PTQ_EFORMAT)
        rc = ptq_fail(r->e, PTQ_EFORMAT, "%s: corrupt compressed file: %s", path,
                      archive_error_string(a) ? archive_error_string(a) : "read error");
done:
    archive_read_free(a);
    return rc;
}

/* ---------------------------------------------------------------- sources */

/* Read all of fd into b (raw bytes), hashing them. */
static int read_fd(reader *r, int fd, buf *b, const char *name)
{
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        size_t want = (uint64_t)sb.st_size > r->budget ? r->budget + 1 : (size_t)sb.st_size;
        int rc = buf_reserve(r, b, want, name);
        if (rc) return rc;
    }
    for (;;) {
        int rc = buf_reserve(r, b, 1, name);
        if (rc) return rc;
        size_t room = b->cap - b->n - 1;
        if (room > r->budget - b->n) room = r->budget - b->n;
        if (room == 0) room = 1;
        ssize_t got = read(fd, b->p + b->n, room);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return ptq_fail(r->e, PTQ_EIO, "%s: cannot read: %s", name, strerror(errno));
        if (got == 0) break;
        b->n += (size_t)got;
    }
    if (b->n > r->budget) return buf_reserve(r, b, 1, name);
    b->p[b->n] = 0;
    r->budget -= b->n;
    ptq_sha256_update(&r->sha, b->p, b->n);
    return PTQ_OK;
}

/* Raw bytes of one file (or stdin) already read: decide what it is. */
static int add_raw(reader *r, buf *raw, const char *name)
{
    int jsonl = (r->opts && r->opts->jsonl_field) || jsonl_name(name);
    if (raw->n == 0) return add_file(r, raw, name, jsonl);
    int handled, rc = try_archive(r, raw, name, &handled);
    if (rc || handled) return rc;
    buf dec = {0};
    rc = try_compressed(r, raw, name, &dec, &handled);
    if (rc) {
        free(dec.p);
        return rc;
    }
    if (handled) {
        /* the raw bytes no longer count: only the decompressed ones stay */
        r->budget += raw->n;
        return add_file(r, &dec, name, jsonl);
    }
    return add_file(r, raw, name, jsonl);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct pathlist {
    char **v;
    size_t n, cap;
} pathlist;

/* Collect every regular file under dir (symlinks to regular files count;
 * symlinked directories are not followed, so there are no loops). */
static int walk(reader *r, const char *dir, pathlist *pl)
{
    DIR *d = opendir(dir);
    if (!d) return ptq_fail(r->e, PTQ_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = PTQ_OK;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t nd = strlen(dir);
        char *p = join(dir, nd && dir[nd - 1] == '/' ? "" : "/", de->d_name);
        if (!p) {
            rc = ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", dir);
            break;
        }
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            rc = ptq_fail(r->e, PTQ_EIO, "%s: %s", p, strerror(errno));
            free(p);
            break;
        }
        if (S_ISDIR(sb.st_mode)) {
            rc = walk(r, p, pl);
            free(p);
            if (rc) break;
            continue;
        }
        if (S_ISLNK(sb.st_mode) && (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))) {
            free(p);
            continue;
        }
        if (!S_ISREG(sb.st_mode)) {
            free(p);
            continue;
        }
        if (pl->n == pl->cap) {
            size_t cap = pl->cap ? pl->cap * 2 : 64;
            char **v = cap < SIZE_MAX / sizeof *v ? realloc(pl->v, cap * sizeof *v) : NULL;
            if (!v) {
                free(p);
                rc = ptq_fail(r->e, PTQ_ENOMEM, "%s: out of memory", dir);
                break;
            }
            pl->v = v;
            pl->cap = cap;
        }
        pl->v[pl->n++] = p;
    }
    if (rc == PTQ_OK && errno != 0)
        rc = ptq_fail(r->e, PTQ_EIO, "%s: cannot read directory: %s", dir, strerror(errno));
    closedir(d);
    return rc;
}

static int add_path(reader *r, const char *path);

static int add_dir(reader *r, const char *dir)
{
    pathlist pl = {0};
    int rc = walk(r, dir, &pl);
    if (rc == PTQ_OK && pl.n > 1) qsort(pl.v, pl.n, sizeof *pl.v, cmp_str);
    for (size_t i = 0; i < pl.n; i++) {
        if (rc == PTQ_OK) rc = add_path(r, pl.v[i]);
        free(pl.v[i]);
    }
    free(pl.v);
    return rc;
}

static int add_path(reader *r, const char *path)
{
    buf raw = {0};
    int rc;
    if (!strcmp(path, "-")) {
        rc = read_fd(r, 0, &raw, "<stdin>");
        if (rc == PTQ_OK) rc = add_raw(r, &raw, "<stdin>");
        free(raw.p);
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ptq_fail(r->e, PTQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = ptq_fail(r->e, PTQ_EIO, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return add_dir(r, path);
    }
    rc = read_fd(r, fd, &raw, path);
    close(fd);
    if (rc == PTQ_OK) rc = add_raw(r, &raw, path);
    free(raw.p);
    return rc;
}

int ptq_text_read(ptq_text *out, const char *const *sources, int nsources,
                  const ptq_text_opts *opts, ptq_err *e)
{
    *out = (ptq_text){0};
    reader r = {.t = out, .opts = opts, .e = e};
    r.budget = opts && opts->max_bytes ? opts->max_bytes : PTQ_TEXT_MAX_BYTES;
    ptq_sha256_init(&r.sha);
    int rc = PTQ_OK;
    if (nsources < 0 || (nsources > 0 && !sources))
        rc = ptq_fail(e, PTQ_EINTERNAL, "ptq_text_read: bad source list");
    for (int i = 0; rc == PTQ_OK && i < nsources; i++) rc = add_path(&r, sources[i]);
    if (rc) {
        ptq_text_free(out);
        return rc;
    }
    ptq_sha256_final(&r.sha, out->sha256);
    return PTQ_OK;
}

void ptq_text_free(ptq_text *t)
{
    if (!t) return;
    for (int i = 0; i < t->ndocs; i++) {
        free(t->docs[i].name);
        free(t->docs[i].text);
    }
    free(t->docs);
    free(t->bad_name);
    *t = (ptq_text){0};
}
