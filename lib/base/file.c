/* file.c - see file.h */
#include "lib/base/file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
