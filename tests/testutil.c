/* testutil.c - see testutil.h */
#include "tests/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    if (!s) abort();
    return s;
}

char *tu_shared(const char *rel)
{
    const char *dir = getenv("PTQC_SHARED");
    if (!dir || !*dir) dir = "../shared";
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "test data directory %s not found: the tests need the shared models "
                        "and text next to the checkout (configure --with-shared-data=DIR)\n", dir);
        abort();
    }
    return tu_fmt("%s/%s", dir, rel);
}

char *tu_src(const char *rel)
{
    const char *dir = getenv("PTQC_SRCDIR");
    if (!dir || !*dir) dir = ".";
    return tu_fmt("%s/%s", dir, rel);
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *t = tu_fmt("%s/ptqc-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(t)) abort();
    return t;
}

void tu_rmrf(const char *path)
{
    char *cmd = tu_fmt("rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
    free(cmd);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

int tu_ptqc(const char *args, char **out, char **err)
{
    const char *bin = getenv("PTQC_BIN");
    if (!bin || !*bin) bin = "src/ptqc";
    char *tmp = tu_tmpdir();
    char *cmd = tu_fmt("'%s' %s >'%s/out' 2>'%s/err'", bin, args, tmp, tmp);
    int st = system(cmd);
    free(cmd);
    char *p = tu_fmt("%s/out", tmp);
    if (out) *out = tu_read_file(p, NULL);
    free(p);
    p = tu_fmt("%s/err", tmp);
    if (err) *err = tu_read_file(p, NULL);
    free(p);
    tu_rmrf(tmp);
    free(tmp);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}
