/* text.h - calibration and evaluation text sources.
 *
 * A source is a path or "-" (standard input):
 *  - a regular file: plain text, or JSONL when it ends in .jsonl / .jsonl.gz ...
 *    or when a JSONL field is given (one JSON object per line, field taken);
 *  - a directory: every regular file under it, in byte order of the path;
 *  - anything libarchive reads (tar, zip, .gz, .xz, .zst, .tar.gz, ...): every
 *    regular member in archive order, each member treated as a file above.
 * Each file (or JSONL record, or archive member) is one document.
 * Invalid UTF-8 is never dropped silently: with PTQ_UTF8_REPLACE (default) each
 * invalid sequence becomes U+FFFD and the count is reported; PTQ_UTF8_STRICT
 * makes it an error naming the file and byte offset.
 */
#ifndef PTQC_TEXT_H
#define PTQC_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

enum ptq_utf8_policy { PTQ_UTF8_REPLACE = 0, PTQ_UTF8_STRICT = 1 };

typedef struct ptq_text_opts {
    const char *jsonl_field; /* NULL: "text" for .jsonl files, plain otherwise */
    int utf8_policy;         /* enum ptq_utf8_policy */
} ptq_text_opts;

typedef struct ptq_doc {
    char *name; /* file path, "path:member" for archives, "path:line" for JSONL */
    char *text; /* UTF-8, NUL-terminated */
    size_t len;
} ptq_doc;

typedef struct ptq_text {
    int ndocs;
    ptq_doc *docs;
    size_t total_bytes;
    size_t n_replaced;       /* invalid UTF-8 sequences replaced */
    uint8_t sha256[32];      /* hash of every source's raw bytes, in order */
} ptq_text;

int ptq_text_read(ptq_text *out, const char *const *sources, int nsources,
                  const ptq_text_opts *opts, ptq_err *e);
void ptq_text_free(ptq_text *t);

#endif
