/* file.c - see file.h */
#include "lib/base/file.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ptq_read_file(const char *path, size_t limit, char **out, size_t *len, ptq_err *e)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ptq_fail(e, PTQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ptq_fail(e, PTQ_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > limit || (uint64_t)sb.st_size >= SIZE_MAX) {
        fclose(f);
        return ptq_fail(e, PTQ_EFORMAT, "%s: %lld bytes, larger than the %zu-byte limit", path,
                        (long long)sb.st_size, limit);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f) || fgetc(f) != EOF; /* the file changed under us */
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return ptq_fail(e, PTQ_EIO, "%s: read error (or the file changed while read)", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return PTQ_OK;
}

char *ptq_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

int ptq_tmpdir_create(ptq_tmpdir *t, const char *dst, ptq_err *e)
{
    size_t n = strlen(dst);
    while (n > 1 && dst[n - 1] == '/') n--;
    t->dst = dst;
    t->path = malloc(n + 16);
    if (!t->path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    snprintf(t->path, n + 16, "%.*s.tmp.XXXXXX", (int)n, dst);
    if (!mkdtemp(t->path)) {
        int rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot create a temporary directory beside it: %s",
                          dst, strerror(errno));
        free(t->path);
        t->path = NULL;
        return rc;
    }
    chmod(t->path, 0755);
    return PTQ_OK;
}

int ptq_tmpdir_commit(ptq_tmpdir *t, const char *doing, ptq_err *e)
{
    struct stat sb;
    int rc = PTQ_OK;
    if (lstat(t->dst, &sb) == 0)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: appeared while %s; left alone", t->dst, doing);
    else if (rename(t->path, t->dst) != 0)
        rc = ptq_fail(e, PTQ_EOUTPUT, "%s: cannot rename %s to it: %s", t->dst, t->path,
                      strerror(errno));
    if (rc) ptq_tmpdir_abort(t);
    else {
        free(t->path);
        t->path = NULL;
    }
    return rc;
}

void ptq_tmpdir_abort(ptq_tmpdir *t)
{
    if (!t->path) return;
    DIR *d = opendir(t->path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char *p = ptq_path_join(t->path, de->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(t->path);
    free(t->path);
    t->path = NULL;
}
