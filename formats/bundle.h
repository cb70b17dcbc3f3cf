/* bundle.h - the ptqc bundle (.ptq), version 1 (2: + w8a8/fp8/KV scales; 3: +
 * int groups that do not divide cols, see lib/qfmt/pack.h).  Documented in
 * ptqc-bundle(5).
 *
 * A POSIX ustar archive (readable by `tar tvf`), written member by member in a
 * fixed order with fixed metadata (mtime 0, uid/gid 0, mode 0644), so equal
 * inputs give equal bytes.  Every member's data starts on a 512-byte boundary
 * of the file (ustar's own block size), so payloads can be mmap'ed and copied
 * to a GPU without realignment (version 1 has no padding members).  Members:
 *   config.json, tokenizer.json, tokenizer_config.json   (copied from the source)
 *   tensors/<tensor name>.<payload>                      payloads, in layer order,
 *   tensors/<tensor name>.json                           each tensor followed by its entry
 *   manifest.json                                        last: every tensor's method,
 *       format, bits, group, shape, payload member names, offsets, sizes and
 *       SHA-256; provenance (source file hashes, calibration hash, ptqc version,
 *       command line, seed); the compile report summary.
 * The writer appends to OUT.partial in the destination directory and renames
 * to OUT only after manifest.json is written and fsync'ed.
 *
 * Code: formats/tar.c (ustar headers, member walk), bundle_write.c (writer,
 * resume), bundle_read.c (open, manifest and entry checks, tensor views),
 * bundle_verify.c (verify); each tensor's format, fields and payloads come
 * from the packed-format table lib/qfmt/qfmt.h.
 */
#ifndef PTQC_BUNDLE_H
#define PTQC_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/tar.h"
#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"

typedef struct cJSON cJSON;
struct ptq_config; /* formats/config.h */

/* ---- writing ---- */
typedef struct ptq_bundle_writer ptq_bundle_writer;

/* Start writing final_path (the file goes to final_path.partial until finish). */
int ptq_bw_open(ptq_bundle_writer **w, const char *final_path, ptq_err *e);
/* Resume: reopen final_path.partial, keep the first keep_bytes (a value that
 * ptq_bw_sync returned earlier), re-read and re-hash the members in it, and
 * continue appending after them.  Fails if the partial file is shorter or its
 * members do not parse. */
int ptq_bw_resume(ptq_bundle_writer **w, const char *final_path, uint64_t keep_bytes,
                  ptq_err *e);
/* A plain member (config.json, ...). */
int ptq_bw_add_file(ptq_bundle_writer *w, const char *member, const void *data, size_t len,
                    ptq_err *e);
/* A quantized or kept tensor: writes its payload members and remembers its
 * manifest entry.  method: "rtn", "gptq", "fp16" ... ; extra: method details
 * for the manifest (may be NULL; ownership stays with the caller). */
int ptq_bw_add_tensor(ptq_bundle_writer *w, const char *name, const char *method,
                      const ptq_qtensor *q, const cJSON *extra, ptq_err *e);
/* Flush and fsync; *offset = bytes written so far (a resume point). */
int ptq_bw_sync(ptq_bundle_writer *w, uint64_t *offset, ptq_err *e);
/* Write manifest.json (the tensors table is added by the writer; top holds
 * everything else: provenance, quantization settings, report), fsync, rename
 * to the final path, fsync the directory.  Frees w, also on failure (then the
 * partial file is removed). */
int ptq_bw_finish(ptq_bundle_writer *w, const cJSON *top, ptq_err *e);
/* Abandon: close and remove the partial file.  Frees w. */
void ptq_bw_abort(ptq_bundle_writer *w);

/* ---- reading ---- */
/* {name, offset of the data in the file, size} (formats/tar.h) */
typedef ptq_tar_member ptq_bundle_member;

typedef struct ptq_bundle {
    char *path;
    const uint8_t *map;
    size_t size;
    int nmembers;
    ptq_bundle_member *members;
    cJSON *manifest;
    int owns_map; /* 1: map is the reader's mmap of path (ptq_bundle_close unmaps it) */
} ptq_bundle;

/* mmap and parse; verify=1 checks every payload's SHA-256 (PTQ_EVERIFY on a
 * mismatch naming the member). */
int ptq_bundle_open(ptq_bundle *b, const char *path, int verify, ptq_err *e);
/* The same over a bundle already in memory (the fuzz entry); data must be
 * 8-byte aligned and outlive b; name is used in messages only. */
int ptq_bundle_open_mem(ptq_bundle *b, const void *data, size_t size, const char *name,
                        int verify, ptq_err *e);
void ptq_bundle_close(ptq_bundle *b);
/* Data of a member, or NULL. */
const void *ptq_bundle_member_data(const ptq_bundle *b, const char *name, uint64_t *size);
/* A view of a tensor (pointers into the map; free nothing, or free with
 * ptq_qtensor_free only the struct arrays the reader allocated: see bundle.c). */
int ptq_bundle_tensor(const ptq_bundle *b, const char *name, ptq_qtensor *q, ptq_err *e);
/* What a manifest says of tensor i (0..ptq_bundle_ntensors - 1) of an open
 * bundle, for listings: strings point into the manifest ("" when absent);
 * bits, group, sym and act_order are 0 for formats without them; bytes is
 * the sum of its payloads. */
typedef struct ptq_bundle_tinfo {
    const char *name, *method, *format, *dtype;
    int rows, cols, bits, group, sym, act_order;
    int aq_m, aq_b; /* aqlm: codebooks M x code bits B (0 otherwise) */
    uint64_t bytes;
} ptq_bundle_tinfo;
int ptq_bundle_ntensors(const ptq_bundle *b);
void ptq_bundle_tensor_info(const ptq_bundle *b, int i, ptq_bundle_tinfo *t);
/* The plain members the manifest lists (config.json, ...): i in
 * 0..ptq_bundle_nfiles - 1; sha256 is its hex digest. */
int ptq_bundle_nfiles(const ptq_bundle *b);
void ptq_bundle_file_info(const ptq_bundle *b, int i, const char **member, uint64_t *size,
                          const char **sha256);
/* The model's config, parsed from the config.json member (PTQ_EFORMAT when
 * it is missing or malformed). */
int ptq_bundle_config(const ptq_bundle *b, struct ptq_config *c, ptq_err *e);
/* Totals over the tensors: parameters (rows * cols), payload bytes, and the
 * bytes the same parameters take in fp16. */
typedef struct ptq_bundle_totals {
    int tensors;
    double params, payload_bytes, fp16_bytes;
} ptq_bundle_totals;
void ptq_bundle_get_totals(const ptq_bundle *b, ptq_bundle_totals *t);

/* Check every payload checksum and the manifest's consistency; the number of
 * problems found goes to *nbad, with a line each through cb (may be NULL). */
int ptq_bundle_verify(const ptq_bundle *b, int *nbad,
                      void (*cb)(void *ud, const char *line), void *ud, ptq_err *e);

#endif
