/* err.c - see err.h */
#include "lib/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ptq_fail(ptq_err *e, int status, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->status = status;
    }
    return status;
}

int ptq_fail_prefix(ptq_err *e, const char *fmt, ...)
{
    if (!e) return PTQ_EINTERNAL;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, prefix, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = 0;
    return e->status;
}

const char *ptq_status_name(int status)
{
    switch (status) {
    case PTQ_OK: return "ok";
    case PTQ_EINTERNAL: return "internal";
    case PTQ_EUSAGE: return "usage";
    case PTQ_EIO: return "io";
    case PTQ_EFORMAT: return "format";
    case PTQ_EDATA: return "data";
    case PTQ_EOUTPUT: return "output";
    case PTQ_EVERIFY: return "verify";
    case PTQ_ENOMEM: return "nomem";
    case PTQ_ENODEV: return "nodev";
    default: return "unknown";
    }
}
