/* sha256.h - SHA-256 (FIPS 180-4), for provenance and payload checksums. */
#ifndef PTQC_SHA256_H
#define PTQC_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ptq_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
    int portable; /* 1 (after init): FIPS 180-4's loop even where the CPU has
                     the SHA extensions, which give the same digest */
} ptq_sha256_ctx; /* (a typedef named ptq_sha256 would clash with the function) */

void ptq_sha256_init(ptq_sha256_ctx *s);
void ptq_sha256_update(ptq_sha256_ctx *s, const void *data, size_t len);
void ptq_sha256_final(ptq_sha256_ctx *s, uint8_t out[32]);
/* One call: digest of data. */
void ptq_sha256(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex digits + NUL into hex[65]. */
void ptq_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
