/* bundle_impl.h - what the bundle's reader (bundle_read.c), verifier
 * (bundle_verify.c) and writer (bundle_write.c) share; not installed.
 * The ustar layer is formats/tar.h; the packed formats are lib/qfmt/qfmt.h. */
#ifndef PTQC_BUNDLE_IMPL_H
#define PTQC_BUNDLE_IMPL_H

#include <cJSON.h>

#include "formats/bundle.h"
#include "formats/tar.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the bundle payloads are little-endian; a big-endian port must byte-swap them"
#endif

#define BLK PTQ_TAR_BLOCK
#define FORMAT_NAME "ptqc-bundle"
/* Version 1; a bundle with a format or tensor introduced later (qfmt.h's
 * version column: w8a8, fp8 and the int8 KV-cache scales are 2) gets the
 * highest version among them.  Version 3: an int tensor whose group does
 * not divide its columns (ceil(cols / group) groups, the last one shorter:
 * a reader of version 1 or 2, which takes ngroups = cols / group, would
 * misread its scales). */
#define FORMAT_VERSION 1
#define FORMAT_VERSION_MAX 5 /* 4: the e8p and aqlm formats (lib/qfmt/qf_e8p.c, qf_aqlm.c);
                               5: int-had (lib/qfmt/qf_int_had.c) */
#define PTQ_BNDL_PARTIAL_GROUP_VERSION 3
#define MANIFEST "manifest.json"
#define TPREFIX "tensors/"

/* hex SHA-256 of data[0..n) */
void ptq_bndl_hex(const void *data, size_t n, char hex[65]);
/* The "model" object of the manifest: a summary of config.json (HF names). */
cJSON *ptq_bndl_model_summary(const char *json, size_t len, ptq_err *e);

/* Problems are collected (verify) or the first one is returned (open). */
typedef struct ptq_bndl_checker {
    const ptq_bundle *b;
    int n;
    int status; /* of the first problem */
    char first[1024];
    void (*cb)(void *ud, const char *line);
    void *ud;
} ptq_bndl_checker;

__attribute__((format(printf, 3, 4))) void ptq_bndl_problem(ptq_bndl_checker *ck, int status,
                                                            const char *fmt, ...);
/* An integer-valued JSON number (or a bool) in [lo, hi]. */
int ptq_bndl_get_int(const cJSON *o, const char *key, double lo, double hi, double *v);
/* The manifest entry of tensor name, or NULL. */
const cJSON *ptq_bndl_find_entry(const ptq_bundle *b, const char *name);
/* Structure of the manifest: format, version, every tensor entry and file
 * reference (with their checksums when hashes). */
void ptq_bndl_check_manifest(ptq_bndl_checker *ck, int hashes);

#endif
