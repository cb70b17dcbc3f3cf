/* testutil.h - shared helpers for the Check tests. */
#ifndef PTQC_TESTUTIL_H
#define PTQC_TESTUTIL_H

#include <stddef.h>

/* Path under the shared data directory ($PTQC_SHARED, default ../shared);
 * malloc'ed.  Aborts with a clear message if the directory is missing. */
char *tu_shared(const char *rel);
/* Path under the source tree ($PTQC_SRCDIR, default "."); malloc'ed. */
char *tu_src(const char *rel);
/* A fresh temporary directory (malloc'ed path); tu_rmrf removes it. */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
/* Whole file into a NUL-terminated buffer (NULL on failure). */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);
/* Run the built ptqc with a shell-quoted argument string; captures stdout and
 * stderr (malloc'ed, may be NULL) and returns the exit status (or -1). */
int tu_ptqc(const char *args, char **out, char **err);
/* printf into a malloc'ed string. */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
