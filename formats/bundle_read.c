/* bundle_read.c - opening a bundle (bundle.h): map the file, walk its
 * members (tar.h), parse manifest.json and check every tensor entry against
 * the format table (lib/qfmt/qfmt.h) before a tensor view is handed out.
 * The format is documented in ptqc-bundle(5); the verifier is bundle_verify.c,
 * the writer bundle_write.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/bundle_impl.h"
#include "formats/config.h"
#include "lib/base/dtype.h"
#include "lib/base/sha256.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"

void ptq_bndl_hex(const void *data, size_t n, char hex[65])
{
    uint8_t d[32];
    ptq_sha256(data, n, d);
    ptq_sha256_hex(d, hex);
}

cJSON *ptq_bndl_model_summary(const char *json, size_t len, ptq_err *e)
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

void ptq_bndl_problem(ptq_bndl_checker *ck, int status, const char *fmt, ...)
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

int ptq_bndl_get_int(const cJSON *o, const char *key, double lo, double hi, double *v)
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
static const ptq_bundle_member *check_ref(ptq_bndl_checker *ck, const cJSON *ref, const char *what,
                                          const char *expect_member, uint64_t expect_size)
{
    const ptq_bundle *b = ck->b;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(ref, "member");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(ref, "sha256");
    double off, size;
    if (!cJSON_IsObject(ref) || !cJSON_IsString(mem) || !cJSON_IsString(sha) ||
        strlen(sha->valuestring) != 64 || strspn(sha->valuestring, "0123456789abcdef") != 64 ||
        !ptq_bndl_get_int(ref, "offset", 0, 9007199254740992.0, &off) ||
        !ptq_bndl_get_int(ref, "size", 0, 9007199254740992.0, &size)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: %s: malformed member reference", b->path, what);
        return NULL;
    }
    if (expect_member && strcmp(mem->valuestring, expect_member)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: %s: member is %s, expected %s", b->path, what,
                mem->valuestring, expect_member);
        return NULL;
    }
    if ((uint64_t)off > b->size || (uint64_t)size > b->size - (uint64_t)off) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: %s: member %s at %.0f+%.0f lies outside the file (%zu bytes)",
                b->path, what, mem->valuestring, off, size, b->size);
        return NULL;
    }
    const ptq_bundle_member *m = find_member(b, mem->valuestring);
    if (!m) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: %s: member %s is not in the archive", b->path, what,
                mem->valuestring);
        return NULL;
    }
    if (m->offset != (uint64_t)off || m->size != (uint64_t)size) {
        ptq_bndl_problem(ck, PTQ_EFORMAT,
                "%s: %s: manifest says %s is at %.0f+%.0f, the archive has it at %llu+%llu",
                b->path, what, m->name, off, size, (unsigned long long)m->offset,
                (unsigned long long)m->size);
        return NULL;
    }
    if (expect_size != UINT64_MAX && m->size != expect_size) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: %s: member %s has %llu bytes, the shape implies %llu",
                b->path, what, m->name, (unsigned long long)m->size,
                (unsigned long long)expect_size);
        return NULL;
    }
    return m;
}

static int check_hash(ptq_bndl_checker *ck, const ptq_bundle_member *m, const cJSON *ref)
{
    char hex[65];
    ptq_bndl_hex(ck->b->map + m->offset, (size_t)m->size, hex);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(ref, "sha256");
    if (strcmp(hex, sha->valuestring)) {
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: checksum mismatch in member %s", ck->b->path, m->name);
        return 0;
    }
    return 1;
}

/* The fields of entry ent that its format's row (qfmt.h) says it has: dtype,
 * bits/group/sym, act_scales; into t.  0 (and a problem) when invalid. */
static int entry_fields(ptq_bndl_checker *ck, const cJSON *ent, const cJSON *pl,
                        const ptq_qfmt *f, const char *nm, ptq_qtensor *t)
{
    const char *path = ck->b->path;
    double bits = 0, group = 0, sym = 0;
    t->bits = f->bits_max; /* formats without a bits field: their code width */
    t->sym = f->bits_max > 0;
    if (f->flags & PTQ_QFMT_DTYPE) {
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
        t->dtype = cJSON_IsString(dt) ? (int)ptq_dtype_parse(dt->valuestring) : PTQ_DT_INVALID;
        if (t->dtype != PTQ_DT_F16 && t->dtype != PTQ_DT_BF16 && t->dtype != PTQ_DT_F32) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: dense dtype missing or not "
                             "F16/BF16/F32", path, nm);
            return 0;
        }
    }
    if (f->flags & PTQ_QFMT_GROUPED) {
        if (!ptq_bndl_get_int(ent, "bits", f->bits_min, f->bits_max, &bits) ||
            !ptq_bndl_get_int(ent, "group", 0, PTQ_PACK_MAX_GROUP, &group) ||
            !ptq_bndl_get_int(ent, "sym", 0, 1, &sym)) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: bits (%d..%d), group (0..%d) or "
                             "sym invalid", path, nm, f->bits_min, f->bits_max, PTQ_PACK_MAX_GROUP);
            return 0;
        }
        double ver = 0;
        ptq_bndl_get_int(ck->b->manifest, "version", 1, 1e9, &ver);
        if (group > 0 && t->cols % (int)group && ver < PTQ_BNDL_PARTIAL_GROUP_VERSION) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: group %.0f does not divide its %d "
                             "columns, which a version %.0f bundle cannot hold (version %d can)",
                             path, nm, group, t->cols, ver, PTQ_BNDL_PARTIAL_GROUP_VERSION);
            return 0;
        }
        t->bits = (int)bits;
        t->group = (int)group;
        t->sym = (int)sym;
        t->ngroups = ptq_pack_ngroups(t->cols, t->group); /* the last group may be shorter */
    }
    if ((f->flags & PTQ_QFMT_BITS) && !ptq_bndl_get_int(ent, "bits", f->bits_min, f->bits_max,
                                                        &bits)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: bits missing or outside %d..%d", path,
                         nm, f->bits_min, f->bits_max);
        return 0;
    }
    if (f->flags & PTQ_QFMT_BITS) t->bits = (int)bits;
    if (f->flags & PTQ_QFMT_CODEBOOKS) { /* aqlm */
        double m = 0, b = 0;
        if (!ptq_bndl_get_int(ent, "codebooks", 1, 8, &m) ||
            !ptq_bndl_get_int(ent, "code_bits", f->bits_min, f->bits_max, &b)) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: codebooks (1..8) or code_bits "
                             "(%d..%d) missing or invalid", path, nm, f->bits_min, f->bits_max);
            return 0;
        }
        t->aq_m = (int)m, t->aq_b = (int)b;
    }
    if (f->flags & PTQ_QFMT_ACT) {
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(ent, "act_scales");
        int stat = cJSON_IsString(as) && !strcmp(as->valuestring, "static");
        if (!(stat || (cJSON_IsString(as) && !strcmp(as->valuestring, "dynamic"))) ||
            stat != (cJSON_GetObjectItemCaseSensitive(pl, "act_scale") != NULL)) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: act_scales is not \"static\" with "
                             "an act_scale payload or \"dynamic\" without one", path, nm);
            return 0;
        }
    }
    return 1;
}

/* The payload references of entry nm: each a payload of its format, at the
 * member tensors/<nm>.<payload>, of the size the fields imply (with its hash
 * when hashes); t's pointers into the map. */
static void entry_payloads(ptq_bndl_checker *ck, const cJSON *pl, const ptq_qfmt *f,
                           const char *nm, int hashes, ptq_qtensor *t)
{
    const ptq_bundle *b = ck->b;
    for (const cJSON *p = pl->child; p; p = p->next) {
        int i = p->string ? ptq_qfmt_payload_index(f, p->string) : -1;
        uint64_t size = i >= 0 ? f->payload_bytes(t, i) : 0;
        if (!size) {
            ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: unknown payload '%s'", b->path, nm,
                             p->string ? p->string : "");
            continue;
        }
        char what[256], expect[160];
        snprintf(what, sizeof what, "tensor %s payload %s", nm, p->string);
        snprintf(expect, sizeof expect, TPREFIX "%s.%s", nm, p->string);
        const ptq_bundle_member *m = check_ref(ck, p, what, expect, size);
        if (!m) continue;
        if (hashes) check_hash(ck, m, p);
        ptq_qfmt_set_payload(f, t, i, (void *)(b->map + m->offset));
    }
}

/* One tensor entry: fields, payload references, sizes (hashes when asked).
 * Fills q (pointers into the map) when q is given and all holds. */
static int check_entry(ptq_bndl_checker *ck, const cJSON *ent, int hashes, ptq_qtensor *q)
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
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: manifest: a tensor entry lacks name, method, "
                         "format or payloads", b->path);
        return 0;
    }
    const char *nm = name->valuestring;
    ptq_qtensor t;
    memset(&t, 0, sizeof t);
    double rows, cols;
    if (!ptq_bndl_get_int(ent, "rows", 1, 2147483647.0, &rows) ||
        !ptq_bndl_get_int(ent, "cols", 1, 2147483647.0, &cols)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: rows/cols missing or not positive",
                         b->path, nm);
        return 0;
    }
    t.rows = (int)rows;
    t.cols = (int)cols;
    const ptq_qfmt *f = ptq_qfmt_by_name(fmt->valuestring);
    if (!f) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: tensor %s: unknown format '%s'", b->path, nm,
                         fmt->valuestring);
        return 0;
    }
    t.format = f->id;
    if (!entry_fields(ck, ent, pl, f, nm, &t)) return 0;
    entry_payloads(ck, pl, f, nm, hashes, &t);
    if (ck->n != n0) return 0;
    t.mapped = 1;
    ptq_err e2;
    char what[256];
    snprintf(what, sizeof what, "%s: tensor %s", b->path, nm);
    if (ptq_qtensor_check(&t, what, &e2)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s", e2.msg);
        return 0;
    }
    if (q) *q = t;
    return 1;
}

/* Structure of the manifest: what open needs to read tensors safely. */
void ptq_bndl_check_manifest(ptq_bndl_checker *ck, int hashes)
{
    const ptq_bundle *b = ck->b;
    const cJSON *man = b->manifest;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(man, "format");
    double ver;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, FORMAT_NAME)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: manifest.json: format is not \"" FORMAT_NAME "\"", b->path);
        return;
    }
    if (!ptq_bndl_get_int(man, "version", 1, 1e9, &ver)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: manifest.json: version missing or invalid", b->path);
        return;
    }
    if (ver < FORMAT_VERSION || ver > FORMAT_VERSION_MAX) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: bundle version %.0f is not supported (this ptqc "
                         "reads %d to %d)", b->path, ver, FORMAT_VERSION, FORMAT_VERSION_MAX);
        return;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(man, "tensors");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(man, "files");
    if (!cJSON_IsArray(ts) || !cJSON_IsArray(fs)) {
        ptq_bndl_problem(ck, PTQ_EFORMAT, "%s: manifest.json: tensors or files is not an array", b->path);
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
    int rc = ptq_tar_members(b->map, b->size, path, 1, &b->members, &b->nmembers, e);
    if (rc) return rc;
    if (b->nmembers == 0 || strcmp(b->members[b->nmembers - 1].name, MANIFEST))
        return ptq_fail(e, PTQ_EFORMAT, "%s: the last member is not manifest.json (not a bundle)",
                        path);
    const ptq_bundle_member *mm = &b->members[b->nmembers - 1];
    b->manifest = cJSON_ParseWithLength((const char *)b->map + mm->offset, (size_t)mm->size);
    if (!cJSON_IsObject(b->manifest))
        return ptq_fail(e, PTQ_EFORMAT, "%s: manifest.json is not a well-formed JSON object", path);
    ptq_bndl_checker ck = {.b = b};
    ptq_bndl_check_manifest(&ck, verify);
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

const cJSON *ptq_bndl_find_entry(const ptq_bundle *b, const char *name)
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
    const cJSON *ent = ptq_bndl_find_entry(b, name);
    if (!ent) return ptq_fail(e, PTQ_EFORMAT, "%s: no tensor %s", b->path, name);
    ptq_bndl_checker ck = {.b = b};
    if (!check_entry(&ck, ent, 0, q)) return ptq_fail(e, ck.status, "%s", ck.first);
    return PTQ_OK;
}

