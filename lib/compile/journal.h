/* journal.h - the resume journal of ptqc compile.
 *
 * Next to OUT.ptq.partial the compile keeps OUT.ptq.journal, a JSON object
 *   {"format":"ptqc-journal-1",
 *    "key":{...},            what the output depends on: the SHA-256 of every
 *                            input file, the calibration hash, every flag that
 *                            changes the bytes (not --threads, --progress,
 *                            --quiet, --report, --tmpdir)
 *    "layers_done":k,        decoder layers completely in the partial bundle
 *    "offset":n,             bytes of the partial bundle to keep (ptq_bw_sync)
 *    "hidden":"path",        FP16 hidden states that feed layer k
 *    "hidden_sha256":"...",
 *    "state":{...}}          the engine's own state: the calibration hash and
 *                            the report entries of the finished layers
 * Order of a layer's commit: bundle synced, hidden states written to a new
 * file (named with k) and fsync'ed, then the journal replaced atomically
 * (temporary name, fsync, rename, fsync of the directory).  A run killed at
 * any moment leaves either the old or the new journal, each consistent with
 * the files it names.
 */
#ifndef PTQC_JOURNAL_H
#define PTQC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

typedef struct cJSON cJSON;

typedef struct journal {
    cJSON *root;        /* owns everything below */
    const cJSON *key;
    int layers_done;
    uint64_t offset;
    const char *hidden;
    const char *hidden_sha256;
    const cJSON *state;
} journal;

/* Write atomically. */
int journal_write(const char *path, const cJSON *key, int layers_done, uint64_t offset,
                  const char *hidden, const char *hidden_sha256, const cJSON *state,
                  ptq_err *e);
/* Read and validate the structure (PTQ_EFORMAT on a damaged journal). */
int journal_read(const char *path, journal *j, ptq_err *e);
void journal_free(journal *j);
/* Compare the stored key with this run's; a difference fails with PTQ_EUSAGE
 * naming the first field that differs. */
int journal_check(const journal *j, const cJSON *key, const char *path, ptq_err *e);

/* Write n FP16 values to path atomically and durably; hex digest to sha.
 * The SHA-256 runs on a second thread while the write and fsync wait on the
 * disk (I/O overlap, whatever --threads says). */
int journal_save_hidden(const char *path, const uint16_t *h, size_t n, char sha[65], ptq_err *e);
/* Read them back, checking size and digest. */
int journal_load_hidden(const char *path, uint16_t *h, size_t n, const char *sha, ptq_err *e);

/* Write len bytes to path through path.tmp + fsync + rename + directory
 * fsync (PTQ_EOUTPUT on failure, nothing left behind). */
int journal_atomic_write(const char *path, const void *data, size_t len, ptq_err *e);

#endif
