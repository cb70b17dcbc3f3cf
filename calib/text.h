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
 *
 * Details: a source is an archive or a compressed file when libarchive finds
 * an archive format (tar, zip, 7z, cpio, iso9660, xar, rar, cab) or a
 * compression filter (gzip, bzip2, xz, lzma, lzip, zstd, lz4, compress) in its
 * content; anything else is plain text, whatever its name.  Members of an
 * archive are not opened as archives again.  A file is JSONL when a field is
 * given, or when its name without a compression suffix ends in .jsonl; blank
 * lines are skipped.  Files under a directory are read as sources of their
 * own (so a directory of .jsonl.gz shards works).  Byte offsets count in the
 * file's decompressed bytes from 0.  Reading stops with PTQ_EDATA past
 * max_bytes, so a decompression bomb cannot exhaust memory.  Integrity is
 * what the formats check: xz, zstd, bzip2, tar headers, zip; libarchive does
 * not check gzip's CRC, so a damaged .gz that still inflates goes unnoticed
 * (a truncated one is an error).  Concatenated gzip members are read whole.
 * Errors: PTQ_EIO (a source cannot be opened or read), PTQ_EFORMAT (corrupt
 * archive, malformed JSONL line, missing or non-string field, invalid UTF-8
 * under PTQ_UTF8_STRICT), PTQ_EDATA (past max_bytes), PTQ_ENOMEM.
 * No documents at all is not an error: the caller decides.
 * On failure *out is left empty (nothing to free).
 */
#ifndef PTQC_TEXT_H
#define PTQC_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

enum ptq_utf8_policy { PTQ_UTF8_REPLACE = 0, PTQ_UTF8_STRICT = 1 };

typedef struct ptq_text_opts {
    const char *jsonl_field; /* NULL: "text" for .jsonl files, plain otherwise */
    int utf8_policy;         /* enum ptq_utf8_policy */
    size_t max_bytes;        /* most bytes read or decompressed from all sources
                                together; 0: PTQ_TEXT_MAX_BYTES */
} ptq_text_opts;

#define PTQ_TEXT_MAX_BYTES ((size_t)4 << 30)

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
    char *bad_name;          /* first file with invalid UTF-8 (NULL if none) */
    size_t bad_offset;       /* byte offset of its first invalid sequence */
} ptq_text;

int ptq_text_read(ptq_text *out, const char *const *sources, int nsources,
                  const ptq_text_opts *opts, ptq_err *e);
void ptq_text_free(ptq_text *t);

#endif
