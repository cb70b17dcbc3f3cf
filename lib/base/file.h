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

#endif
