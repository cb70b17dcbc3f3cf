/* file.h - reading a small file (config, tokenizer, index, recipe, journal)
 * whole into memory, with the checks every reader needs. */
#ifndef PTQC_FILE_H
#define PTQC_FILE_H

#include <stddef.h>

#include "lib/base/err.h"

/* Read the regular file path into *out (malloc'ed, NUL-terminated; *len
 * bytes before the NUL).  Errors: PTQ_EIO (cannot open, not a regular file,
 * read error), PTQ_EFORMAT (larger than limit bytes), PTQ_ENOMEM. */
int ptq_read_file(const char *path, size_t limit, char **out, size_t *len, ptq_err *e);

/* dir/name, malloc'ed (NULL when out of memory). */
char *ptq_path_join(const char *dir, const char *name);

/* A new output directory built beside dst under a temporary name and
 * renamed to dst at the end, so dst is either complete or absent. */
typedef struct ptq_tmpdir {
    char *path; /* dst.tmp.XXXXXX (trailing slashes of dst dropped), mode 0755 */
    const char *dst;
} ptq_tmpdir;

/* Create t->path.  Errors: PTQ_ENOMEM, PTQ_EOUTPUT (cannot create it). */
int ptq_tmpdir_create(ptq_tmpdir *t, const char *dst, ptq_err *e);
/* Rename t->path to t->dst (PTQ_EOUTPUT when dst appeared "while <doing>",
 * or the rename fails: then the temporary directory is removed); frees t. */
int ptq_tmpdir_commit(ptq_tmpdir *t, const char *doing, ptq_err *e);
/* Remove t->path and the plain files in it; frees t. */
void ptq_tmpdir_abort(ptq_tmpdir *t);

#endif
