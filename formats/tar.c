/* tar.c - the ustar headers of the bundle: write one, walk and validate the
 * members of an archive in memory (tar.h).  Written here, not through
 * libarchive: that gives exact control over member order, metadata and
 * alignment, and lets --resume walk a partial file. */
#include "formats/tar.h"

#include <stdlib.h>
#include <string.h>

#define BLK PTQ_TAR_BLOCK

uint64_t ptq_tar_round_up(uint64_t n) { return (n + BLK - 1) / BLK * BLK; }

int ptq_tar_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || s[0] == '/') return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '\\') return 0;
    if (!strcmp(s, "..") || !strncmp(s, "../", 3) || strstr(s, "/../") ||
        (n >= 3 && !strcmp(s + n - 3, "/..")))
        return 0;
    return 1;
}

static void put_octal(char *f, size_t width, uint64_t v)
{
    /* width-1 octal digits and a NUL */
    f[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        f[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

void ptq_tar_header(uint8_t h[BLK], const char *name, uint64_t size)
{
    memset(h, 0, BLK);
    memcpy(h, name, strlen(name));
    char *c = (char *)h;
    put_octal(c + 100, 8, 0644); /* mode */
    put_octal(c + 108, 8, 0);    /* uid */
    put_octal(c + 116, 8, 0);    /* gid */
    if (size < (1ull << 33)) {
        put_octal(c + 124, 12, size);
    } else { /* base-256 (GNU, POSIX-2001 readers accept it) for members >= 8 GiB */
        h[124] = 0x80;
        for (int i = 11; i >= 1; i--) {
            h[124 + i] = (uint8_t)(size & 0xff);
            size >>= 8;
        }
    }
    put_octal(c + 136, 12, 0); /* mtime */
    c[156] = '0';              /* regular file */
    memcpy(c + 257, "ustar", 6);
    memcpy(c + 263, "00", 2);
    put_octal(c + 329, 8, 0); /* devmajor */
    put_octal(c + 337, 8, 0); /* devminor */
    memset(c + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLK; i++) sum += h[i];
    put_octal(c + 148, 7, sum);
    c[155] = ' ';
}

/* Parse an octal (or base-256) numeric field; -1 when invalid. */
static int64_t get_number(const uint8_t *f, size_t width)
{
    if (f[0] & 0x80) {
        if (f[0] != 0x80) return -1;
        uint64_t v = 0;
        for (size_t i = 1; i < width; i++) {
            if (v >> 55) return -1;
            v = (v << 8) | f[i];
        }
        return v > (uint64_t)INT64_MAX ? -1 : (int64_t)v;
    }
    size_t i = 0;
    while (i < width && f[i] == ' ') i++;
    uint64_t v = 0;
    int digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < width; i++)
        if (f[i] != ' ' && f[i] != '\0') return -1;
    return digits ? (int64_t)v : -1;
}

static int zero_block(const uint8_t *p)
{
    for (int i = 0; i < BLK; i++)
        if (p[i]) return 0;
    return 1;
}

/* Validate the header block h at offset off: checksum, ustar magic, name,
 * regular file, size field; the name and data length on success. */
static int read_header(const uint8_t *h, uint64_t off, const char *path, char name[101],
                       uint64_t *len, ptq_err *e)
{
    unsigned sum = 0;
    for (int i = 0; i < BLK; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    int64_t stored = get_number(h + 148, 8);
    if (stored < 0 || (unsigned)stored != sum)
        return ptq_fail(e, PTQ_EFORMAT, "%s: bad tar header checksum at offset %llu", path,
                        (unsigned long long)off);
    if (memcmp(h + 257, "ustar", 6) || memcmp(h + 263, "00", 2))
        return ptq_fail(e, PTQ_EFORMAT, "%s: header at offset %llu is not POSIX ustar", path,
                        (unsigned long long)off);
    memcpy(name, h, 100);
    name[100] = '\0';
    if (!ptq_tar_name_ok(name) || h[345] != '\0')
        return ptq_fail(e, PTQ_EFORMAT, "%s: member at offset %llu has an invalid name", path,
                        (unsigned long long)off);
    if (h[156] != '0' && h[156] != '\0')
        return ptq_fail(e, PTQ_EFORMAT, "%s: member %s is not a regular file (type '%c')", path,
                        name, h[156]);
    int64_t msize = get_number(h + 124, 12);
    if (msize < 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: member %s has an invalid size field", path, name);
    *len = (uint64_t)msize;
    return PTQ_OK;
}

/* Append member {name, data, len} to *m (checking for a duplicate name). */
static int add_member(ptq_tar_member **m, int *n, int *cap, const char *name, uint64_t data,
                      uint64_t len, const char *path, ptq_err *e)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*m)[i].name, name))
            return ptq_fail(e, PTQ_EFORMAT, "%s: member %s appears twice", path, name);
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        ptq_tar_member *t = realloc(*m, sizeof *t * (size_t)c);
        if (!t) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory reading the member table", path);
        *m = t;
        *cap = c;
    }
    memcpy((*m)[*n].name, name, 101);
    (*m)[*n].offset = data;
    (*m)[*n].size = len;
    (*n)++;
    return PTQ_OK;
}

/* The end-of-archive at off (two zero blocks). */
static int end_blocks(const uint8_t *buf, uint64_t size, uint64_t off, const char *path,
                      ptq_err *e)
{
    if (size - off < 2 * BLK || !zero_block(buf + off + BLK))
        return ptq_fail(e, PTQ_EFORMAT, "%s: truncated end-of-archive at offset %llu", path,
                        (unsigned long long)off);
    return PTQ_OK;
}

int ptq_tar_members(const uint8_t *buf, uint64_t size, const char *path, int need_end,
                    ptq_tar_member **out, int *nout, ptq_err *e)
{
    ptq_tar_member *m = NULL;
    int n = 0, cap = 0, ended = 0, rc = PTQ_OK;
    uint64_t off = 0;
    while (off < size && !rc) {
        if (size - off < BLK) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated: %llu stray bytes at offset %llu", path,
                          (unsigned long long)(size - off), (unsigned long long)off);
            break;
        }
        if (zero_block(buf + off)) {
            rc = end_blocks(buf, size, off, path, e);
            ended = 1;
            break;
        }
        char name[101];
        uint64_t len = 0, data = off + BLK;
        if ((rc = read_header(buf + off, off, path, name, &len, e))) break;
        if (len > size - data) {
            rc = ptq_fail(e, PTQ_EFORMAT,
                          "%s: truncated: member %s needs %llu bytes at offset %llu, file has %llu",
                          path, name, (unsigned long long)len, (unsigned long long)data,
                          (unsigned long long)size);
            break;
        }
        if ((rc = add_member(&m, &n, &cap, name, data, len, path, e))) break;
        uint64_t next = data + ptq_tar_round_up(len);
        if (next > size)
            rc = need_end ? ptq_fail(e, PTQ_EFORMAT, "%s: truncated inside the padding of "
                                     "member %s", path, name)
                          : ptq_fail(e, PTQ_EFORMAT, "%s: does not end on a member boundary",
                                     path);
        off = next;
    }
    if (!rc && need_end && !ended)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: truncated: no end-of-archive block", path);
    if (!rc && !need_end && ended)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: end-of-archive block inside the kept part", path);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    *nout = n;
    return PTQ_OK;
}
