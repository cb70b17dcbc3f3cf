/* bundle_write.c - the bundle writer (bundle.h): members appended to
 * OUT.partial through tar.h's headers, each tensor as its payload members
 * (the format table, lib/qfmt/qfmt.h, says which and their sizes) followed
 * by a small JSON member holding its manifest entry, so a resumed writer
 * (ptq_bw_resume) rebuilds the tensors table from the file itself;
 * manifest.json last, then the rename into place.  ptqc-bundle(5). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/bundle_impl.h"
#include "lib/base/dtype.h"
#include "lib/qfmt/qfmt.h"

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
    if (!ptq_tar_name_ok(name))
        return ptq_fail(e, PTQ_EUSAGE,
                        "%s: member name '%s' is not 1..100 printable characters without '..'",
                        w->final_path, name);
    if (has_name(w, name))
        return ptq_fail(e, PTQ_EUSAGE, "%s: member %s added twice", w->final_path, name);
    uint8_t h[BLK];
    ptq_tar_header(h, name, len);
    int rc = write_all(w, h, BLK, e);
    if (rc) return rc;
    if (offset) *offset = w->off;
    if (len && (rc = write_all(w, data, len, e))) return rc;
    uint64_t pad = ptq_tar_round_up(len) - len;
    if (pad) {
        memset(h, 0, BLK);
        if ((rc = write_all(w, h, (size_t)pad, e))) return rc;
    }
    if (hex) ptq_bndl_hex(data, len, hex);
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
                                            "payloads", "act_scales", "codebooks", "code_bits"};

/* A tensor the writer can store under name: a storage format, valid, a
 * name that fits the member names, not added before; *fp = its format's row. */
static int tensor_ok(ptq_bundle_writer *w, const char *name, const ptq_qtensor *q,
                     const ptq_qfmt **fp, ptq_err *e)
{
    const ptq_qfmt *f = *fp = ptq_qfmt_get(q->format);
    if (!f || (f->flags & PTQ_QFMT_CACHE))
        return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s: format %d has no bundle storage yet",
                        w->final_path, name, q->format);
    if (ptq_qtensor_check(q, name, e)) return ptq_fail_prefix(e, "%s", w->final_path);
    /* the longest member is tensors/<name>.qweight (or .scales, .json) */
    if (!*name || strlen(TPREFIX) + strlen(name) + strlen(".qweight") > 100)
        return ptq_fail(e, PTQ_EUSAGE, "%s: tensor name '%s' is empty or too long (max %d)",
                        w->final_path, name, (int)(100 - strlen(TPREFIX) - strlen(".qweight")));
    for (cJSON *t = w->tensors->child; t; t = t->next)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring, name))
            return ptq_fail(e, PTQ_EUSAGE, "%s: tensor %s added twice", w->final_path, name);
    return PTQ_OK;
}

/* The manifest entry's fields, as the format's row says it has them. */
static cJSON *entry_fields(const char *name, const char *method, const ptq_qfmt *f,
                           const ptq_qtensor *q)
{
    cJSON *ent = cJSON_CreateObject();
    cJSON_AddStringToObject(ent, "name", name);
    cJSON_AddStringToObject(ent, "method", method);
    cJSON_AddStringToObject(ent, "format", f->name);
    if (f->flags & PTQ_QFMT_DTYPE)
        cJSON_AddStringToObject(ent, "dtype", ptq_dtype_name((ptq_dtype)q->dtype));
    if (f->flags & PTQ_QFMT_ACT)
        cJSON_AddStringToObject(ent, "act_scales", q->act_scale ? "static" : "dynamic");
    cJSON_AddNumberToObject(ent, "rows", q->rows);
    cJSON_AddNumberToObject(ent, "cols", q->cols);
    if (f->flags & PTQ_QFMT_GROUPED) {
        cJSON_AddNumberToObject(ent, "bits", q->bits);
        cJSON_AddNumberToObject(ent, "group", q->group);
        cJSON_AddBoolToObject(ent, "sym", q->sym != 0);
        cJSON_AddBoolToObject(ent, "act_order", q->g_idx != NULL);
    }
    if (f->flags & PTQ_QFMT_BITS) cJSON_AddNumberToObject(ent, "bits", q->bits);
    if (f->flags & PTQ_QFMT_CODEBOOKS) {
        cJSON_AddNumberToObject(ent, "codebooks", q->aq_m);
        cJSON_AddNumberToObject(ent, "code_bits", q->aq_b);
    }
    return ent;
}

/* The payload members of q, in the row's order (absent optional ones
 * skipped), each referenced in the entry's payloads object pl. */
static int write_payloads(ptq_bundle_writer *w, const char *name, const ptq_qfmt *f,
                          const ptq_qtensor *q, cJSON *pl, ptq_err *e)
{
    char member[128], hex[65];
    int rc = PTQ_OK;
    for (int i = 0; i < PTQ_QFMT_MAX_PAYLOADS && f->payloads[i].name && !rc; i++) {
        const void *data = ptq_qfmt_payload_ptr(f, q, i);
        if (!data) continue;
        uint64_t size = f->payload_bytes(q, i), off;
        snprintf(member, sizeof member, TPREFIX "%s.%s", name, f->payloads[i].name);
        if (size > SIZE_MAX) rc = ptq_fail(e, PTQ_ENOMEM, "%s: tensor too large", name);
        if (!rc) rc = write_member(w, member, data, (size_t)size, &off, hex, e);
        if (!rc) cJSON_AddItemToObject(pl, f->payloads[i].name, ref_json(member, off, size, hex));
    }
    return rc;
}

/* The method details: copied into the entry, none of them a reserved key. */
static int add_extra(cJSON *ent, const char *name, const cJSON *extra, ptq_err *e)
{
    int rc = PTQ_OK;
    for (const cJSON *x = extra ? extra->child : NULL; x && !rc; x = x->next) {
        for (size_t k = 0; k < sizeof reserved_keys / sizeof *reserved_keys; k++)
            if (!x->string || !strcmp(x->string, reserved_keys[k]))
                rc = ptq_fail(e, PTQ_EINTERNAL, "%s: method detail key '%s' is reserved", name,
                              x->string ? x->string : "");
        if (!rc) cJSON_AddItemToObject(ent, x->string, cJSON_Duplicate(x, 1));
    }
    return rc;
}

int ptq_bw_add_tensor(ptq_bundle_writer *w, const char *name, const char *method,
                      const ptq_qtensor *q, const cJSON *extra, ptq_err *e)
{
    const ptq_qfmt *f;
    int rc = tensor_ok(w, name, q, &f, e);
    if (rc) return rc;
    cJSON *ent = entry_fields(name, method, f, q);
    cJSON *pl = cJSON_AddObjectToObject(ent, "payloads");
    rc = write_payloads(w, name, f, q, pl, e);
    if (!rc) rc = add_extra(ent, name, extra, e);
    char *text = rc ? NULL : cJSON_PrintUnformatted(ent);
    cJSON_Delete(ent);
    if (rc) return rc;
    if (!text) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    /* the entry member; the manifest gets the entry parsed back from the same
     * text, exactly as a resumed writer will see it */
    char member[128];
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

/* An entry whose group does not divide its columns (version 3). */
static int partial_group(const cJSON *t)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(t, "group");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "cols");
    if (!cJSON_IsNumber(g) || !cJSON_IsNumber(c) || g->valueint <= 0) return 0;
    return c->valueint % g->valueint != 0;
}

/* The highest version among the formats of the tensors (qfmt.h), the int8
 * KV cache's when a layer has KV-cache scales, and 3 when a group does not
 * divide its tensor's columns. */
static int bundle_version(const ptq_bundle_writer *w)
{
    int version = FORMAT_VERSION;
    for (const cJSON *t = w->tensors->child; t; t = t->next) {
        const cJSON *fm = cJSON_GetObjectItemCaseSensitive(t, "format");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        const ptq_qfmt *f = cJSON_IsString(fm) ? ptq_qfmt_by_name(fm->valuestring) : NULL;
        size_t ln = cJSON_IsString(n) ? strlen(n->valuestring) : 0;
        if (f && f->version > version) version = f->version;
        if (partial_group(t) && PTQ_BNDL_PARTIAL_GROUP_VERSION > version)
            version = PTQ_BNDL_PARTIAL_GROUP_VERSION;
        if (ln > 9 && !strcmp(n->valuestring + ln - 9, ".kv_scale") &&
            ptq_qfmt_get(PTQ_QF_KV_INT8)->version > version)
            version = ptq_qfmt_get(PTQ_QF_KV_INT8)->version;
    }
    return version;
}

int ptq_bw_finish(ptq_bundle_writer *w, const cJSON *top, ptq_err *e)
{
    int rc = PTQ_OK;
    cJSON *man = cJSON_CreateObject();
    cJSON_AddStringToObject(man, "format", FORMAT_NAME);
    cJSON_AddNumberToObject(man, "version", bundle_version(w));
    if (w->config) {
        cJSON *m = ptq_bndl_model_summary(w->config, w->config_len, e);
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
            (ptq_bndl_hex(map + all[j].offset, all[j].size, hex), strcmp(hex, sha->valuestring))) {
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
    if (!rc && keep_bytes) rc = ptq_tar_members(map, keep_bytes, w->partial_path, 0, &m, &n, e);
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
            ptq_bndl_hex((const uint8_t *)map + m[i].offset, m[i].size, hex);
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

