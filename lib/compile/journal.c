/* journal.c - see journal.h */
#include "lib/compile/journal.h"

#include "lib/base/file.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/par.h"
#include "lib/base/sha256.h"

static int fsync_dir_of(const char *path)
{
    char *tmp = strdup(path);
    if (!tmp) return -1;
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY);
    free(tmp);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int journal_atomic_write(const char *path, const void *data, size_t len, ptq_err *e)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int err = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(tmp);
            int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: write failed: %s", tmp, strerror(err));
            free(tmp);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) || close(fd)) {
        int err = errno;
        unlink(tmp);
        int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: fsync failed: %s", tmp, strerror(err));
        free(tmp);
        return rc;
    }
    if (rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: rename failed: %s", path, strerror(err));
        free(tmp);
        return rc;
    }
    free(tmp);
    if (fsync_dir_of(path)) return ptq_fail(e, PTQ_EOUTPUT, "%s: fsync of the directory failed", path);
    return PTQ_OK;
}

int journal_write(const char *path, const cJSON *key, int layers_done, uint64_t offset,
                  const char *hidden, const char *hidden_sha256, const cJSON *state,
                  ptq_err *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    cJSON_AddStringToObject(o, "format", "ptqc-journal-1");
    cJSON_AddItemToObject(o, "key", cJSON_Duplicate(key, 1));
    cJSON_AddNumberToObject(o, "layers_done", layers_done);
    char off[32];
    snprintf(off, sizeof off, "%llu", (unsigned long long)offset);
    cJSON_AddStringToObject(o, "offset", off); /* a string: exact beyond 2^53 */
    cJSON_AddStringToObject(o, "hidden", hidden ? hidden : "");
    cJSON_AddStringToObject(o, "hidden_sha256", hidden_sha256 ? hidden_sha256 : "");
    cJSON_AddItemToObject(o, "state", state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject());
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", path);
    int rc = journal_atomic_write(path, s, strlen(s), e);
    cJSON_free(s);
    return rc;
}

void journal_free(journal *j)
{
    cJSON_Delete(j->root);
    memset(j, 0, sizeof *j);
}

int journal_read(const char *path, journal *j, ptq_err *e)
{
    memset(j, 0, sizeof *j);
    char *buf;
    size_t len;
    int rc0 = ptq_read_file(path, (size_t)64 << 20, &buf, &len, e);
    if (rc0) return rc0;
    j->root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j->root) return ptq_fail(e, PTQ_EFORMAT, "%s: journal is not valid JSON", path);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j->root, "format");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(j->root, "key");
    const cJSON *ld = cJSON_GetObjectItemCaseSensitive(j->root, "layers_done");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j->root, "offset");
    const cJSON *hid = cJSON_GetObjectItemCaseSensitive(j->root, "hidden");
    const cJSON *hsh = cJSON_GetObjectItemCaseSensitive(j->root, "hidden_sha256");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j->root, "state");
    char *end = NULL;
    unsigned long long o = 0;
    if (cJSON_IsString(off)) {
        errno = 0;
        o = strtoull(off->valuestring, &end, 10);
    }
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "ptqc-journal-1") || !cJSON_IsObject(key) ||
        !cJSON_IsNumber(ld) || ld->valuedouble < 0 || ld->valuedouble > 1e6 ||
        !cJSON_IsString(off) || errno || !end || *end || !cJSON_IsString(hid) ||
        !cJSON_IsString(hsh) || !cJSON_IsObject(st)) {
        journal_free(j);
        return ptq_fail(e, PTQ_EFORMAT, "%s: not a ptqc journal (or damaged)", path);
    }
    j->key = key;
    j->layers_done = (int)ld->valuedouble;
    j->offset = o;
    j->hidden = hid->valuestring;
    j->hidden_sha256 = hsh->valuestring;
    j->state = st;
    return PTQ_OK;
}

int journal_check(const journal *j, const cJSON *key, const char *path, ptq_err *e)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, key) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(j->key, it->string);
        if (!old || !cJSON_Compare(old, it, 1)) {
            char *a = old ? cJSON_PrintUnformatted(old) : NULL;
            char *b = cJSON_PrintUnformatted(it);
            int rc = ptq_fail(e, PTQ_EUSAGE,
                              "%s: cannot resume: '%s' changed since the interrupted run "
                              "(was %.200s, now %.200s); rerun without --resume",
                              path, it->string, a ? a : "absent", b ? b : "?");
            cJSON_free(a);
            cJSON_free(b);
            return rc;
        }
    }
    if (cJSON_GetArraySize(j->key) != cJSON_GetArraySize(key))
        return ptq_fail(e, PTQ_EUSAGE, "%s: cannot resume: the journal records other settings; "
                                       "rerun without --resume", path);
    return PTQ_OK;
}

/* journal_save_hidden's two jobs: the file written (and synced) while the
 * SHA-256 of the same bytes is computed on a second thread */
typedef struct save_job {
    int hash;
    const char *path;
    const void *data;
    size_t len;
    uint8_t d[32];
    int rc;
    ptq_err e;
} save_job;

static void save_run(void *arg)
{
    save_job *j = arg;
    if (j->hash) ptq_sha256(j->data, j->len, j->d);
    else j->rc = journal_atomic_write(j->path, j->data, j->len, &j->e);
}

int journal_save_hidden(const char *path, const uint16_t *h, size_t n, char sha[65], ptq_err *e)
{
    save_job jobs[2];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 2; i++) {
        jobs[i].hash = i;
        jobs[i].path = path;
        jobs[i].data = h;
        jobs[i].len = n * sizeof *h;
    }
    ptq_par_run(2, save_run, jobs, sizeof *jobs);
    if (jobs[0].rc) {
        *e = jobs[0].e;
        return jobs[0].rc;
    }
    ptq_sha256_hex(jobs[1].d, sha);
    return PTQ_OK;
}

int journal_load_hidden(const char *path, uint16_t *h, size_t n, const char *sha, ptq_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t r = fread(h, sizeof *h, n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (r != n || extra)
        return ptq_fail(e, PTQ_EFORMAT, "%s: hidden states have the wrong size", path);
    uint8_t d[32];
    char hex[65];
    ptq_sha256(h, n * sizeof *h, d);
    ptq_sha256_hex(d, hex);
    if (strcmp(hex, sha))
        return ptq_fail(e, PTQ_EVERIFY, "%s: hidden states do not match the journal's SHA-256", path);
    return PTQ_OK;
}
