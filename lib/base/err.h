/* err.h - errors as values.
 *
 * Every fallible function in lib/, formats/ and calib/ returns an int status
 * (PTQ_OK on success) and fills a ptq_err with one human-readable message that
 * names the file (or flag) and the problem.  Nothing below src/ ever exits or
 * prints.  The status doubles as the process exit status of the ptqc command,
 * so the values are part of the interface documented in ptqc(1).
 */
#ifndef PTQC_ERR_H
#define PTQC_ERR_H

enum ptq_status {
    PTQ_OK = 0,
    PTQ_EINTERNAL = 1, /* a bug or an unexpected system failure */
    PTQ_EUSAGE = 2,    /* bad command line: unknown flag, value out of range */
    PTQ_EIO = 3,       /* an input cannot be opened or read */
    PTQ_EFORMAT = 4,   /* an input is malformed: checkpoint, config, tokenizer, bundle */
    PTQ_EDATA = 5,     /* the data is unusable: empty corpus, NaN/Inf, singular Hessian */
    PTQ_EOUTPUT = 6,   /* an output cannot be written: permissions, full disk */
    PTQ_EVERIFY = 7,   /* a bundle failed verification: checksum or manifest mismatch */
    PTQ_ENOMEM = 8,    /* out of memory */
    PTQ_ENODEV = 9,    /* no usable GPU for a command that needs one */
};

typedef struct ptq_err {
    int status;
    char msg[1024];
} ptq_err;

/* Record an error and return its status, so callers write
 *     return ptq_fail(e, PTQ_EFORMAT, "%s: header length %llu past end", path, n);
 * e may be NULL. */
int ptq_fail(ptq_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("while loading X: ..."). */
int ptq_fail_prefix(ptq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short name of a status, for JSON output ("format", "io", ...). */
const char *ptq_status_name(int status);

#endif
