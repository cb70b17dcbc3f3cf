/* tar.h - the POSIX ustar subset of the bundle (ptqc-bundle(5)): headers with
 * fixed metadata (mode 0644, uid/gid 0, mtime 0, regular files only), every
 * member's data on a 512-byte boundary, and a walk of the members of an
 * archive in memory that validates every header before use.
 */
#ifndef PTQC_TAR_H
#define PTQC_TAR_H

#include <stdint.h>

#include "lib/base/err.h"

#define PTQ_TAR_BLOCK 512

typedef struct ptq_tar_member {
    char name[101];
    uint64_t offset; /* of the data in the file */
    uint64_t size;
} ptq_tar_member;

/* n rounded up to a whole number of blocks. */
uint64_t ptq_tar_round_up(uint64_t n);
/* A member name we accept: 1..100 bytes of printable ASCII, no leading '/',
 * no backslash, no ".." component (safe to extract with tar). */
int ptq_tar_name_ok(const char *s);
/* The header block of a regular file member called name (ptq_tar_name_ok)
 * of size bytes (base-256 for members of 8 GiB and more). */
void ptq_tar_header(uint8_t h[PTQ_TAR_BLOCK], const char *name, uint64_t size);
/* Walk the members of buf[0..size) into *out (malloc'ed, *nout of them).
 * need_end: the archive must end with two zero blocks (a finished bundle);
 * otherwise the walk must end exactly at size (a partial file being resumed).
 * PTQ_EFORMAT naming path and the offset on any malformed header, bad
 * checksum, non-regular or duplicate member, or truncation. */
int ptq_tar_members(const uint8_t *buf, uint64_t size, const char *path, int need_end,
                    ptq_tar_member **out, int *nout, ptq_err *e);

#endif
