/* safetensors.c - read Hugging Face safetensors checkpoints (see safetensors.h).
 *
 * Layout of one file: u64 little-endian N, N bytes of UTF-8 JSON (an object:
 * "__metadata__" -> {string: string}, and per tensor name {"dtype", "shape",
 * "data_offsets": [begin, end]} relative to the data section), then the data
 * section.  Everything in the header is checked before a tensor byte is read.
 */
#include "formats/safetensors.h"
#include "lib/base/file.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/half.h"

/* Integers in the header are JSON numbers (doubles in cJSON): accept only
 * exact integers below 2^53, where a double still counts every integer. */
#define ST_MAX_INT 9007199254740992.0

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Length of a valid UTF-8 prefix: returns 1 if all n bytes are valid UTF-8. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* A JSON number that is an integer in [0, 2^53). */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d >= ST_MAX_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

uint64_t ptq_st_numel(const ptq_st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* "[172, 64]" into buf */
static const char *shape_str(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const ptq_st_tensor *)a)->name, ((const ptq_st_tensor *)b)->name);
}

typedef struct span { uint64_t begin, end; const char *name; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static void free_tensors(ptq_st_tensor *t, int n)
{
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

/* One tensor entry of the header into t (name not set). */
static int parse_entry(const cJSON *j, ptq_st_tensor *t, uint64_t data_size, const char *fname,
                       ptq_err *e)
{
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return ptq_fail(e, PTQ_EFORMAT, "%s: header entry '%s' is not an object", fname, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!dt || !sh || !off)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s' has no %s", fname, name,
                        !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': dtype is not a string", fname, name);
    t->dtype = ptq_dtype_parse(dt->valuestring);
    if (t->dtype == PTQ_DT_INVALID)
        return ptq_fail(e, PTQ_EFORMAT,
                        "%s: tensor '%s' has unknown dtype '%.32s' (known: F32, F16, BF16, I8, "
                        "U8, I32, F8_E4M3, I64)", fname, name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': shape is not an array", fname, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > PTQ_ST_MAX_DIMS)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s' has %d dimensions (at most %d)", fname,
                        name, nd, PTQ_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0, i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return ptq_fail(e, PTQ_EFORMAT,
                            "%s: tensor '%s': shape dimension %d is not an integer in [0, 2^53)",
                            fname, name, i);
        t->shape[i] = (int64_t)v;
        if (!overflow && __builtin_mul_overflow(numel, v, &numel)) overflow = 1;
    }
    uint64_t nbytes;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)ptq_dtype_size(t->dtype), &nbytes)) {
        char sb[256];
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': shape %s overflows 64 bits", fname, name,
                        shape_str(sb, sizeof sb, t->shape, t->ndim));
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': data_offsets is not an array of two "
                        "integers", fname, name);
    uint64_t b, en;
    if (!json_uint(off->child, &b) || !json_uint(off->child->next, &en))
        return ptq_fail(e, PTQ_EFORMAT,
                        "%s: tensor '%s': data_offsets are not integers in [0, 2^53)", fname, name);
    if (b > en)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before "
                        "they begin", fname, name, (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are out of "
                        "range: the data section has %llu bytes", fname, name,
                        (unsigned long long)b, (unsigned long long)en,
                        (unsigned long long)data_size);
    if (en - b != nbytes) {
        char sb[256];
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s': shape %s of %s needs %llu bytes but "
                        "data_offsets [%llu, %llu] hold %llu", fname, name,
                        shape_str(sb, sizeof sb, t->shape, t->ndim), ptq_dtype_name(t->dtype),
                        (unsigned long long)nbytes, (unsigned long long)b,
                        (unsigned long long)en, (unsigned long long)(en - b));
    }
    t->offset = b;
    t->nbytes = nbytes;
    t->data = NULL;
    return PTQ_OK;
}

static int check_metadata(const cJSON *j, const char *fname, ptq_err *e)
{
    if (!cJSON_IsObject(j))
        return ptq_fail(e, PTQ_EFORMAT, "%s: __metadata__ is not an object", fname);
    for (const cJSON *m = j->child; m; m = m->next)
        if (!cJSON_IsString(m))
            return ptq_fail(e, PTQ_EFORMAT, "%s: __metadata__ value of '%s' is not a string",
                            fname, m->string);
    return PTQ_OK;
}

/* No two of the k tensors of sp share a byte (empty tensors occupy none);
 * sorts sp. */
static int check_overlap(span *sp, int k, const char *fname, ptq_err *e)
{
    qsort(sp, (size_t)k, sizeof *sp, cmp_span);
    const span *prev = NULL;
    for (int i = 0; i < k; i++) {
        if (sp[i].begin == sp[i].end) continue;
        if (prev && sp[i].begin < prev->end)
            return ptq_fail(e, PTQ_EFORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] "
                            "overlap in the data section", fname, prev->name,
                            (unsigned long long)prev->begin, (unsigned long long)prev->end,
                            sp[i].name, (unsigned long long)sp[i].begin,
                            (unsigned long long)sp[i].end);
        prev = &sp[i];
    }
    return PTQ_OK;
}

int ptq_st_parse_header(ptq_safetensors *st, const uint8_t *buf, size_t buflen,
                        uint64_t file_size, int file, const char *fname, ptq_err *e)
{
    if (buflen < 8 || file_size < 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: truncated: %llu bytes, too short for the 8-byte "
                        "header length of a safetensors file", fname,
                        (unsigned long long)(buflen < file_size ? buflen : file_size));
    uint64_t hlen = le64(buf);
    if (hlen > PTQ_ST_MAX_HEADER)
        return ptq_fail(e, PTQ_EFORMAT, "%s: header length %llu is larger than the %u-byte limit "
                        "(not a safetensors file?)", fname, (unsigned long long)hlen,
                        PTQ_ST_MAX_HEADER);
    if (hlen > file_size - 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: truncated: header length %llu runs past the end of "
                        "the %llu-byte file", fname, (unsigned long long)hlen,
                        (unsigned long long)file_size);
    if (hlen > buflen - 8)
        return ptq_fail(e, PTQ_EFORMAT, "%s: header length %llu runs past the %zu bytes given",
                        fname, (unsigned long long)hlen, buflen);
    if (hlen < 2)
        return ptq_fail(e, PTQ_EFORMAT, "%s: header of %llu bytes is too short for a JSON "
                        "object", fname, (unsigned long long)hlen);
    const uint8_t *h = buf + 8;
    if (h[0] != '{')
        return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: JSON does not start with '{' (not "
                        "a safetensors file?)", fname);
    if (!utf8_valid(h, (size_t)hlen))
        return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: not valid UTF-8", fname);
    if (memchr(h, 0, (size_t)hlen))
        return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: NUL byte in the JSON", fname);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)hlen, &end, 0);
    if (!root)
        return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: JSON syntax error at byte %llu",
                        fname, (unsigned long long)(8 + (cJSON_GetErrorPtr()
                            ? (uint64_t)((const uint8_t *)cJSON_GetErrorPtr() - h) : 0)));
    for (const char *p = end; p < (const char *)h + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: trailing bytes after the JSON "
                            "object at byte %llu", fname,
                            (unsigned long long)(8 + (uint64_t)(p - (const char *)h)));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ptq_fail(e, PTQ_EFORMAT, "%s: malformed header: not a JSON object", fname);
    }
    uint64_t data_size = file_size - 8 - hlen;
    int n = 0;
    for (const cJSON *j = root->child; j; j = j->next) n++;
    ptq_st_tensor *nt = calloc((size_t)n + 1, sizeof *nt);
    span *sp = calloc((size_t)n + 1, sizeof *sp);
    int k = 0, rc = PTQ_OK;
    if (!nt || !sp)
        rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory for %d header entries", fname, n);
    for (const cJSON *j = root->child; j && rc == PTQ_OK; j = j->next) {
        if (!strcmp(j->string, "__metadata__")) {
            rc = check_metadata(j, fname, e);
            continue;
        }
        if (!j->string[0]) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: a tensor has an empty name", fname);
            break;
        }
        rc = parse_entry(j, &nt[k], data_size, fname, e);
        if (rc) break;
        nt[k].file = file;
        nt[k].name = strdup(j->string);
        if (!nt[k].name) {
            rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
            break;
        }
        sp[k] = (span){nt[k].offset, nt[k].offset + nt[k].nbytes, nt[k].name};
        k++;
    }
    if (rc == PTQ_OK) rc = check_overlap(sp, k, fname, e);
    free(sp);
    cJSON_Delete(root);
    if (rc != PTQ_OK) {
        free_tensors(nt, k);
        return rc;
    }
    /* refuse a name seen twice, in this header or in an earlier shard */
    qsort(nt, (size_t)k, sizeof *nt, cmp_name);
    for (int i = 0; i < k && rc == PTQ_OK; i++) {
        const ptq_st_tensor *old = ptq_st_find(st, nt[i].name);
        if (i > 0 && !strcmp(nt[i - 1].name, nt[i].name))
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: duplicate tensor name '%s' in the header", fname,
                          nt[i].name);
        else if (old)
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s' is also in %s", fname, nt[i].name,
                          (st->paths && old->file >= 0 && old->file < st->nfiles)
                              ? st->paths[old->file] : "an earlier header");
    }
    ptq_st_tensor *all =
        rc ? NULL : realloc(nt, ((size_t)st->ntensors + (size_t)k + 1) * sizeof *all);
    if (!all) {
        free_tensors(nt, k);
        return rc ? rc : ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    }
    if (st->ntensors) memcpy(all + k, st->tensors, (size_t)st->ntensors * sizeof *all);
    st->ntensors += k;
    qsort(all, (size_t)st->ntensors, sizeof *all, cmp_name);
    free(st->tensors);
    st->tensors = all;
    return PTQ_OK;
}

const ptq_st_tensor *ptq_st_find(const ptq_safetensors *st, const char *name)
{
    if (!st->ntensors) return NULL;
    ptq_st_tensor key = {0};
    key.name = (char *)name;
    return bsearch(&key, st->tensors, (size_t)st->ntensors, sizeof key, cmp_name);
}

/* ------------------------------------------------------------------ open */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    char *p = malloc(n + strlen(name) + 2);
    if (p) sprintf(p, "%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", name);
    return p;
}

static char *dirname_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* mmap one shard and parse its header; appends to st->paths/maps/sizes. */
static int add_file(ptq_safetensors *st, const char *path, ptq_err *e)
{
    char *p = strdup(path);
    char **paths = realloc(st->paths, sizeof(char *) * ((size_t)st->nfiles + 1));
    if (paths) st->paths = paths;
    void **maps = realloc(st->maps, sizeof(void *) * ((size_t)st->nfiles + 1));
    if (maps) st->maps = maps;
    size_t *sizes = realloc(st->sizes, sizeof(size_t) * ((size_t)st->nfiles + 1));
    if (sizes) st->sizes = sizes;
    if (!p || !paths || !maps || !sizes) {
        free(p);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(p);
        return ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", path, strerror(err));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        free(p);
        return ptq_fail(e, PTQ_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        free(p);
        return ptq_fail(e, PTQ_EIO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            free(p);
            return ptq_fail(e, err == ENOMEM ? PTQ_ENOMEM : PTQ_EIO,
                            "%s: cannot mmap %llu bytes: %s", path, (unsigned long long)size,
                            strerror(err));
        }
    }
    close(fd);
    int idx = st->nfiles;
    int rc =
        ptq_st_parse_header(st, map ? map : (const uint8_t *)"", (size_t)size, size, idx, path, e);
    if (rc) {
        if (map) munmap(map, (size_t)size);
        free(p);
        return rc;
    }
    st->paths[idx] = p;
    st->maps[idx] = map;
    st->sizes[idx] = (size_t)size;
    st->nfiles++;
    const uint8_t *data = (const uint8_t *)map + 8 + le64(map);
    for (int i = 0; i < st->ntensors; i++)
        if (st->tensors[i].file == idx) st->tensors[i].data = data + st->tensors[i].offset;
    return PTQ_OK;
}


static int open_index(ptq_safetensors *st, const char *index, ptq_err *e)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ptq_read_file(index, PTQ_ST_MAX_HEADER, &text, &len, e);
    if (rc) return rc;
    st->index_path = strdup(index);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!st->index_path) {
        cJSON_Delete(root);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", index);
    }
    if (!root) return ptq_fail(e, PTQ_EFORMAT, "%s: malformed JSON", index);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ptq_fail(e, PTQ_EFORMAT, "%s: no weight_map object", index);
    }
    if (!wm->child) {
        cJSON_Delete(root);
        return ptq_fail(e, PTQ_EFORMAT, "%s: weight_map is empty", index);
    }
    char *dir = dirname_of(index);
    if (!dir) {
        cJSON_Delete(root);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", index);
    }
    /* open each shard once, in order of first mention */
    int nmap = 0;
    for (const cJSON *j = wm->child; j && rc == PTQ_OK; j = j->next, nmap++) {
        if (!cJSON_IsString(j)) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: weight_map entry '%s' is not a file name", index,
                          j->string);
            break;
        }
        const char *shard = j->valuestring;
        if (!shard[0] || strchr(shard, '/') || !strcmp(shard, ".") || !strcmp(shard, "..")) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: weight_map entry '%s' names '%s', not a file in "
                          "the index's directory", index, j->string, shard);
            break;
        }
        char *path = join(dir, shard);
        if (!path) {
            rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", index);
            break;
        }
        int seen = 0;
        for (int f = 0; f < st->nfiles && !seen; f++) seen = !strcmp(st->paths[f], path);
        if (!seen) {
            rc = add_file(st, path, e);
            if (rc) ptq_fail_prefix(e, "%s lists shard %s", index, shard);
        }
        free(path);
    }
    /* every listed tensor lives in its shard, and every shard tensor is listed */
    for (const cJSON *j = wm->child; j && rc == PTQ_OK; j = j->next) {
        const ptq_st_tensor *t = ptq_st_find(st, j->string);
        char *path = join(dir, j->valuestring);
        if (!path) rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", index);
        else if (!t)
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s' is listed in weight_map but not found "
                          "in %s", index, j->string, j->valuestring);
        else if (strcmp(st->paths[t->file], path))
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: weight_map puts tensor '%s' in %s but it is in %s",
                          index, j->string, j->valuestring, st->paths[t->file]);
        free(path);
    }
    if (rc == PTQ_OK && st->ntensors != nmap) {
        for (int i = 0; i < st->ntensors; i++)
            if (!cJSON_GetObjectItemCaseSensitive(wm, st->tensors[i].name)) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: tensor '%s' of %s is not listed in weight_map",
                              index, st->tensors[i].name, st->paths[st->tensors[i].file]);
                break;
            }
        if (rc == PTQ_OK) /* same names, counted twice in weight_map */
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: weight_map lists a tensor twice", index);
    }
    free(dir);
    cJSON_Delete(root);
    return rc;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The one *.safetensors file of a directory without an index or
 * model.safetensors. */
static int find_single(const char *dir, char **out, ptq_err *e)
{
    DIR *d = opendir(dir);
    if (!d) return ptq_fail(e, PTQ_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    char *found = NULL;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".safetensors")) continue;
        if (count++ == 0) found = join(dir, de->d_name);
    }
    closedir(d);
    if (count == 0)
        return ptq_fail(e, PTQ_EIO, "%s: no model.safetensors, model.safetensors.index.json or "
                        "other *.safetensors file", dir);
    if (count > 1) {
        free(found);
        return ptq_fail(e, PTQ_EFORMAT, "%s: %d *.safetensors files but no "
                        "model.safetensors.index.json saying how they fit together", dir, count);
    }
    if (!found) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", dir);
    *out = found;
    return PTQ_OK;
}

int ptq_st_open(ptq_safetensors *st, const char *path, ptq_err *e)
{
    memset(st, 0, sizeof *st);
    int rc;
    if (is_dir(path)) {
        char *index = join(path, "model.safetensors.index.json");
        char *single = join(path, "model.safetensors");
        if (!index || !single) rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
        else if (exists(index)) rc = open_index(st, index, e);
        else if (exists(single)) rc = add_file(st, single, e);
        else {
            char *found = NULL;
            rc = find_single(path, &found, e);
            if (rc == PTQ_OK) rc = add_file(st, found, e);
            free(found);
        }
        free(index);
        free(single);
    } else if (ends_with(path, ".json")) {
        rc = open_index(st, path, e);
    } else {
        rc = add_file(st, path, e);
    }
    if (rc) ptq_st_close(st);
    return rc;
}

void ptq_st_close(ptq_safetensors *st)
{
    for (int i = 0; i < st->nfiles; i++) {
        if (st->maps && st->maps[i]) munmap(st->maps[i], st->sizes[i]);
        free(st->paths[i]);
    }
    free(st->paths);
    free(st->maps);
    free(st->sizes);
    free_tensors(st->tensors, st->ntensors);
    free(st->index_path);
    memset(st, 0, sizeof *st);
}

/* ------------------------------------------------------------------ read */

int ptq_st_read_f32(const ptq_safetensors *st, const ptq_st_tensor *t, size_t first, size_t n,
                    float *out, ptq_err *e)
{
    const char *fname = (t->file >= 0 && t->file < st->nfiles) ? st->paths[t->file] : "(memory)";
    uint64_t numel = ptq_st_numel(t);
    if (first > numel || n > numel - first)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s: elements [%zu, %zu) asked of %llu",
                        fname, t->name, first, first + n, (unsigned long long)numel);
    if (!t->data && n)
        return ptq_fail(e, PTQ_EINTERNAL, "%s: tensor %s has no data (header parsed from memory)",
                        fname, t->name);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case PTQ_DT_F32: /* little-endian host (x86-64, aarch64) */
        memcpy(out, p + 4 * first, 4 * n);
        break;
    case PTQ_DT_F16:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *q = p + 2 * (first + i);
            out[i] = ptq_f16_to_f32((uint16_t)(q[0] | (q[1] << 8)));
        }
        break;
    case PTQ_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *q = p + 2 * (first + i);
            out[i] = ptq_bf16_to_f32((uint16_t)(q[0] | (q[1] << 8)));
        }
        break;
    default:
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s has dtype %s; only F32, F16 and BF16 can "
                        "be read as float32", fname, t->name, ptq_dtype_name(t->dtype));
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return ptq_fail(e, PTQ_EDATA, "%s: tensor %s has a non-finite value (%s) at element "
                            "%zu", fname, t->name, isnan(out[i]) ? "NaN" : "Inf", first + i);
    return PTQ_OK;
}
