/* check_text.c - calib/text: every source kind, written by the test itself
 * (archives and compressed files through libarchive's writer), stdin,
 * directory order, JSONL, UTF-8 repair by the Unicode maximal-subpart rule,
 * errors, and the SHA-256 of the raw bytes against lib/sha256. */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/text.h"
#include "lib/base/sha256.h"
#include "tests/testutil.h"

/* ---------------------------------------------------------------- helpers */

typedef struct member {
    const char *name;
    const char *data; /* NULL: a directory entry; "->target": a symlink */
} member;

enum { F_NONE, F_GZIP, F_XZ, F_ZSTD, F_BZIP2 };

static void add_filter(struct archive *a, int filter)
{
    int rc = ARCHIVE_OK;
    switch (filter) {
    case F_GZIP: rc = archive_write_add_filter_gzip(a); break;
    case F_XZ: rc = archive_write_add_filter_xz(a); break;
    case F_ZSTD: rc = archive_write_add_filter_zstd(a); break;
    case F_BZIP2: rc = archive_write_add_filter_bzip2(a); break;
    default: break;
    }
    ck_assert_msg(rc == ARCHIVE_OK, "libarchive writer: %s", archive_error_string(a));
}

/* Write an archive (format "tar" or "zip") with the members, compressed by
 * filter; returns its raw bytes (malloc'ed) in *raw. */
static void write_archive(const char *path, const char *format, int filter, const member *m,
                          int n)
{
    struct archive *a = archive_write_new();
    ck_assert_ptr_nonnull(a);
    if (!strcmp(format, "zip")) ck_assert_int_eq(archive_write_set_format_zip(a), ARCHIVE_OK);
    else ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    add_filter(a, filter);
    ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (!m[i].data) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else if (!strncmp(m[i].data, "->", 2)) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].data + 2);
            archive_entry_set_perm(e, 0777);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
        }
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        if (archive_entry_filetype(e) == AE_IFREG) {
            size_t len = strlen(m[i].data);
            ck_assert_int_eq(archive_write_data(a, m[i].data, len), (la_ssize_t)len);
        }
        archive_entry_free(e);
    }
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* A single compressed stream (format raw) holding data[0..len). */
static void write_compressed(const char *path, int filter, const void *data, size_t len)
{
    struct archive *a = archive_write_new();
    ck_assert_int_eq(archive_write_set_format_raw(a), ARCHIVE_OK);
    add_filter(a, filter);
    ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void put(const char *path, const char *s) { ck_assert_int_eq(tu_write_file(path, s, strlen(s)), 0); }

/* SHA-256 over the raw bytes of the files, concatenated in order. */
static void sha_of_files(const char *const *paths, int n, uint8_t out[32])
{
    ptq_sha256_ctx s;
    ptq_sha256_init(&s);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *b = tu_read_file(paths[i], &len);
        ck_assert_msg(b != NULL, "cannot read back %s", paths[i]);
        ptq_sha256_update(&s, b, len);
        free(b);
    }
    ptq_sha256_final(&s, out);
}

static void assert_sha(const ptq_text *t, const char *const *paths, int n)
{
    uint8_t want[32];
    sha_of_files(paths, n, want);
    ck_assert_msg(!memcmp(t->sha256, want, 32), "sha256 of the input differs");
}

static int read1(const char *path, const ptq_text_opts *o, ptq_text *t, ptq_err *e)
{
    const char *src[1] = {path};
    return ptq_text_read(t, src, 1, o, e);
}

static void assert_doc(const ptq_text *t, int i, const char *name, const char *text)
{
    ck_assert_int_gt(t->ndocs, i);
    ck_assert_str_eq(t->docs[i].name, name);
    ck_assert_uint_eq(t->docs[i].len, strlen(text));
    ck_assert_mem_eq(t->docs[i].text, text, strlen(text));
    ck_assert_int_eq(t->docs[i].text[t->docs[i].len], 0);
}

/* ---------------------------------------------------------------- plain */

START_TEST(plain_file)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/a.txt", d);
    put(p, "Once upon a time\nthere was a tiny model.\n");
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(read1(p, NULL, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 1);
    assert_doc(&t, 0, p, "Once upon a time\nthere was a tiny model.\n");
    ck_assert_uint_eq(t.total_bytes, 41);
    ck_assert_uint_eq(t.n_replaced, 0);
    ck_assert_ptr_null(t.bad_name);
    const char *ps[1] = {p};
    assert_sha(&t, ps, 1);
    ptq_text_free(&t);
    tu_rmrf(d);
    free(p);
    free(d);
}
END_TEST

/* Text that starts like the signatures of text-based archive formats and
 * filters (uuencode, cpio odc, mtree, WARC, ar, shar) stays plain text, and a
 * name ending in .gz or .tar does not make a file compressed. */
START_TEST(plain_not_mistaken_for_archive)
{
    static const char *const texts[] = {
        "begin 644 story.txt\nM5&AE(&-A=\n`\nend\n",
        "070707 is not an octal cpio header, just a number\n",
        "#mtree\n/set type=file uid=0\n. type=dir\n",
        "WARC/1.0\r\nWARC-Type: warcinfo\r\n\r\n",
        "!<arch>\nfoo.o/ 0 0 0 644 4 `\nabcd",
        "#!/bin/sh\n# This is a shell archive (produced by shar)\n",
        "PK is how a zip begins, but this is a sentence.\n",
    };
    static const char *const names[] = {"a.txt", "b.gz", "c.tar", "d.zip", "e.xz", "f", "g.zst"};
    char *d = tu_tmpdir();
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *p = tu_fmt("%s/%s", d, names[i]);
        put(p, texts[i]);
        ptq_text t;
        ptq_err e = {0};
        ck_assert_msg(read1(p, NULL, &t, &e) == PTQ_OK, "%s: %s", names[i], e.msg);
        ck_assert_int_eq(t.ndocs, 1);
        assert_doc(&t, 0, p, texts[i]);
        ptq_text_free(&t);
        free(p);
    }
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(empty_inputs_are_not_errors)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/empty.txt", d), *sub = tu_fmt("%s/sub", d);
    put(p, "");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(read1(p, NULL, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 1);
    assert_doc(&t, 0, p, "");
    ptq_text_free(&t);
    ck_assert_int_eq(read1(sub, NULL, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 0);
    ck_assert_uint_eq(t.total_bytes, 0);
    uint8_t empty[32];
    ptq_sha256("", 0, empty);
    ck_assert_mem_eq(t.sha256, empty, 32);
    ptq_text_free(&t);
    ck_assert_int_eq(ptq_text_read(&t, NULL, 0, NULL, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 0);
    ck_assert_mem_eq(t.sha256, empty, 32);
    ptq_text_free(&t);
    tu_rmrf(d);
    free(p);
    free(sub);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- directory */

START_TEST(directory_sorted_by_path_bytes)
{
    char *d = tu_tmpdir();
    /* byte order of the whole path: "A" < "a-c" < "a/b/c" < "a/z" < "b":
     * '-' (0x2d) sorts before '/' (0x2f), so a walk that visits a directory
     * before its sibling files would get this wrong. */
    const char *rel[] = {"b.txt", "a/z.txt", "a-c.txt", "a/b/c.txt", "A.txt"};
    char *sub1 = tu_fmt("%s/a", d), *sub2 = tu_fmt("%s/a/b", d), *sub3 = tu_fmt("%s/emptydir", d);
    ck_assert_int_eq(mkdir(sub1, 0755), 0);
    ck_assert_int_eq(mkdir(sub2, 0755), 0);
    ck_assert_int_eq(mkdir(sub3, 0755), 0);
    for (int i = 0; i < 5; i++) {
        char *p = tu_fmt("%s/%s", d, rel[i]);
        char *txt = tu_fmt("text of %s\n", rel[i]);
        put(p, txt);
        free(p);
        free(txt);
    }
    const char *order[] = {"A.txt", "a-c.txt", "a/b/c.txt", "a/z.txt", "b.txt"};
    char *paths[5];
    for (int i = 0; i < 5; i++) paths[i] = tu_fmt("%s/%s", d, order[i]);
    ptq_text t;
    ptq_err e = {0};
    ck_assert_msg(read1(d, NULL, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(t.ndocs, 5);
    for (int i = 0; i < 5; i++) {
        char *txt = tu_fmt("text of %s\n", order[i]);
        assert_doc(&t, i, paths[i], txt);
        free(txt);
    }
    assert_sha(&t, (const char *const *)paths, 5);
    ptq_text_free(&t);
    /* a trailing slash gives the same names */
    char *slash = tu_fmt("%s/", d);
    ck_assert_int_eq(read1(slash, NULL, &t, &e), PTQ_OK);
    ck_assert_str_eq(t.docs[0].name, paths[0]);
    ptq_text_free(&t);
    free(slash);
    for (int i = 0; i < 5; i++) free(paths[i]);
    tu_rmrf(d);
    free(sub1);
    free(sub2);
    free(sub3);
    free(d);
}
END_TEST

/* A directory of compressed JSONL shards: each file is a source of its own. */
START_TEST(directory_of_jsonl_gz_shards)
{
    char *d = tu_tmpdir();
    char *p1 = tu_fmt("%s/part-000.jsonl.gz", d), *p2 = tu_fmt("%s/part-001.jsonl.gz", d);
    const char *j1 = "{\"text\":\"first\"}\n{\"text\":\"second\"}\n", *j2 = "{\"text\":\"third\"}\n";
    write_compressed(p2, F_GZIP, j2, strlen(j2));
    write_compressed(p1, F_GZIP, j1, strlen(j1));
    ptq_text t;
    ptq_err e = {0};
    ck_assert_msg(read1(d, NULL, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(t.ndocs, 3);
    char *n1 = tu_fmt("%s:1", p1), *n2 = tu_fmt("%s:2", p1), *n3 = tu_fmt("%s:1", p2);
    assert_doc(&t, 0, n1, "first");
    assert_doc(&t, 1, n2, "second");
    assert_doc(&t, 2, n3, "third");
    const char *ps[2] = {p1, p2};
    assert_sha(&t, ps, 2);
    ptq_text_free(&t);
    free(n1);
    free(n2);
    free(n3);
    free(p1);
    free(p2);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- archives */

static const member members[] = {
    {"z-first.txt", "the first member, though its name sorts last\n"},
    {"dir/", NULL},
    {"dir/records.jsonl", "{\"text\": \"record one\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"record two\"}\n"},
    {"link.txt", "->z-first.txt"},
    {"a-last.txt", "caf\xc3\xa9 au lait\n"},
    {"dir/empty.txt", ""},
};

static void check_archive_docs(const ptq_text *t, const char *p)
{
    ck_assert_int_eq(t->ndocs, 5);
    char *n[5] = {tu_fmt("%s:z-first.txt", p), tu_fmt("%s:dir/records.jsonl:1", p),
                  tu_fmt("%s:dir/records.jsonl:3", p), tu_fmt("%s:a-last.txt", p),
                  tu_fmt("%s:dir/empty.txt", p)};
    assert_doc(t, 0, n[0], members[0].data);
    assert_doc(t, 1, n[1], "record one");
    assert_doc(t, 2, n[2], "record two");
    assert_doc(t, 3, n[3], members[4].data);
    assert_doc(t, 4, n[4], "");
    ck_assert_uint_eq(t->n_replaced, 0);
    for (int i = 0; i < 5; i++) free(n[i]);
}

START_TEST(archives_in_member_order)
{
    static const struct {
        const char *name, *format;
        int filter;
    } v[] = {
        {"c.tar", "tar", F_NONE},       {"c.tar.gz", "tar", F_GZIP}, {"c.tar.xz", "tar", F_XZ},
        {"c.tar.zst", "tar", F_ZSTD},   {"c.tar.bz2", "tar", F_BZIP2}, {"c.zip", "zip", F_NONE},
        {"no-suffix", "tar", F_GZIP},
    };
    char *d = tu_tmpdir();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *p = tu_fmt("%s/%s", d, v[i].name);
        write_archive(p, v[i].format, v[i].filter, members, sizeof members / sizeof members[0]);
        ptq_text t;
        ptq_err e = {0};
        ck_assert_msg(read1(p, NULL, &t, &e) == PTQ_OK, "%s: %s", v[i].name, e.msg);
        check_archive_docs(&t, p);
        const char *ps[1] = {p};
        assert_sha(&t, ps, 1);
        ptq_text_free(&t);
        free(p);
    }
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(single_compressed_files)
{
    static const struct {
        const char *name;
        int filter;
    } v[] = {{"s.txt.gz", F_GZIP}, {"s.txt.xz", F_XZ}, {"s.txt.zst", F_ZSTD},
             {"s.txt.bz2", F_BZIP2}, {"s", F_XZ}};
    /* long enough that the compressed stream spans several reads */
    size_t len = 300000;
    char *text = malloc(len + 1);
    for (size_t i = 0; i < len; i++) text[i] = "The little dog ran.\n"[i % 20];
    text[len] = 0;
    char *d = tu_tmpdir();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *p = tu_fmt("%s/%s", d, v[i].name);
        write_compressed(p, v[i].filter, text, len);
        ptq_text t;
        ptq_err e = {0};
        ck_assert_msg(read1(p, NULL, &t, &e) == PTQ_OK, "%s: %s", v[i].name, e.msg);
        ck_assert_int_eq(t.ndocs, 1);
        assert_doc(&t, 0, p, text);
        const char *ps[1] = {p};
        assert_sha(&t, ps, 1); /* the compressed bytes are hashed */
        ptq_text_free(&t);
        free(p);
    }
    /* .jsonl.gz is JSONL */
    char *p = tu_fmt("%s/r.jsonl.gz", d);
    const char *j = "{\"text\":\"alpha\"}\n{\"text\":\"beta\"}\n";
    write_compressed(p, F_GZIP, j, strlen(j));
    ptq_text t;
    ptq_err e = {0};
    ck_assert_msg(read1(p, NULL, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(t.ndocs, 2);
    char *n2 = tu_fmt("%s:2", p);
    assert_doc(&t, 1, n2, "beta");
    ptq_text_free(&t);
    free(n2);
    free(p);
    free(text);
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(corrupt_archives)
{
    char *d = tu_tmpdir();
    char *p = tu_fmt("%s/c.tar.gz", d), *q = tu_fmt("%s/cut.tar.gz", d);
    /* members big enough that a cut lands inside the data */
    size_t big = 200000;
    char *data = malloc(big + 1);
    uint32_t lcg = 12345; /* letters from an LCG: they do not compress away */
    for (size_t i = 0; i < big; i++) {
        lcg = lcg * 1664525u + 1013904223u;
        data[i] = (char)('a' + (lcg >> 24) % 26);
    }
    data[big] = 0;
    member m[2] = {{"one.txt", data}, {"two.txt", data}};
    write_archive(p, "tar", F_GZIP, m, 2);
    size_t len;
    char *raw = tu_read_file(p, &len);
    ck_assert_ptr_nonnull(raw);
    ck_assert_uint_gt(len, 1000);
    ck_assert_int_eq(tu_write_file(q, raw, len / 2), 0); /* truncated */
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(read1(q, NULL, &t, &e), PTQ_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, q));
    ck_assert_int_eq(t.ndocs, 0);
    /* a truncated single .gz (libarchive does not check gzip's CRC, so
     * damage that still inflates cannot be seen; truncation can) */
    char *g = tu_fmt("%s/x.txt.gz", d);
    write_compressed(g, F_GZIP, data, big);
    free(raw);
    raw = tu_read_file(g, &len);
    ck_assert_int_eq(tu_write_file(g, raw, len / 2), 0);
    ck_assert_int_eq(read1(g, NULL, &t, &e), PTQ_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, g));
    /* damaged data in the middle of a single .xz: its CRC64 catches it */
    char *x = tu_fmt("%s/x.txt.xz", d);
    write_compressed(x, F_XZ, data, big);
    free(raw);
    raw = tu_read_file(x, &len);
    for (size_t i = len / 3; i < len / 3 + 64; i++) raw[i] = (char)(raw[i] ^ 0x5a);
    ck_assert_int_eq(tu_write_file(x, raw, len), 0);
    ck_assert_int_eq(read1(x, NULL, &t, &e), PTQ_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, x));
    free(x);
    /* a zip cut in half */
    char *z = tu_fmt("%s/c.zip", d);
    write_archive(z, "zip", F_NONE, m, 2);
    free(raw);
    raw = tu_read_file(z, &len);
    ck_assert_int_eq(tu_write_file(z, raw, len / 2 + 100), 0);
    int rc = read1(z, NULL, &t, &e);
    ck_assert_msg(rc == PTQ_EFORMAT, "cut zip: status %d (%s)", rc, rc ? e.msg : "ok");
    free(raw);
    free(data);
    free(p);
    free(q);
    free(g);
    free(z);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- stdin */

static int read_stdin_from(const char *path, const ptq_text_opts *o, ptq_text *t, ptq_err *e)
{
    int saved = dup(0);
    ck_assert_int_ge(saved, 0);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 0), 0);
    close(fd);
    int rc = read1("-", o, t, e);
    ck_assert_int_eq(dup2(saved, 0), 0);
    close(saved);
    return rc;
}

START_TEST(standard_input)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/in.txt", d), *g = tu_fmt("%s/in.gz", d),
         *j = tu_fmt("%s/in.json-lines", d);
    put(p, "from standard input\n");
    ptq_text t;
    ptq_err e = {0};
    ck_assert_msg(read_stdin_from(p, NULL, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(t.ndocs, 1);
    assert_doc(&t, 0, "<stdin>", "from standard input\n");
    const char *ps[1] = {p};
    assert_sha(&t, ps, 1);
    ptq_text_free(&t);
    /* compressed data on stdin is recognised by content */
    write_compressed(g, F_GZIP, "zipped stdin", 12);
    ck_assert_int_eq(read_stdin_from(g, NULL, &t, &e), PTQ_OK);
    assert_doc(&t, 0, "<stdin>", "zipped stdin");
    ptq_text_free(&t);
    /* JSONL on stdin when a field is named */
    put(j, "{\"body\":\"b1\"}\n{\"body\":\"b2\"}\n");
    ptq_text_opts o = {.jsonl_field = "body"};
    ck_assert_int_eq(read_stdin_from(j, &o, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 2);
    assert_doc(&t, 1, "<stdin>:2", "b2");
    ptq_text_free(&t);
    tu_rmrf(d);
    free(p);
    free(g);
    free(j);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- JSONL */

START_TEST(jsonl_fields)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/r.jsonl", d), *q = tu_fmt("%s/r.txt", d);
    ptq_text t;
    ptq_err e = {0};
    /* a byte order mark, CR LF, a blank line (still counted), escapes, a
     * surrogate pair, no final newline; the default field "text" */
    const char *body = "\xEF\xBB\xBF{\"text\":\"a\\u00e9\\n\\\"q\\\"\",\"content\":\"c1\"}\r\n"
           "   \n"
           "{\"content\":\"c3\",\"text\":\"\\ud83d\\ude00\"}\n"
           "{\"text\":\"last, no newline\",\"content\":\"c4\"}";
    put(p, body);
    put(q, body);
    ck_assert_msg(read1(p, NULL, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(t.ndocs, 3);
    char *n1 = tu_fmt("%s:1", p), *n3 = tu_fmt("%s:3", p), *n4 = tu_fmt("%s:4", p);
    assert_doc(&t, 0, n1, "a\xc3\xa9\n\"q\"");
    assert_doc(&t, 1, n3, "\xF0\x9F\x98\x80"); /* U+1F600 from a surrogate pair */
    assert_doc(&t, 2, n4, "last, no newline");
    ptq_text_free(&t);
    /* a chosen field, on a .jsonl */
    ptq_text_opts o = {.jsonl_field = "content"};
    ck_assert_int_eq(read1(p, &o, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 3);
    assert_doc(&t, 0, n1, "c1");
    assert_doc(&t, 2, n4, "c4");
    ptq_text_free(&t);
    /* a .txt is plain text unless a field is given */
    ck_assert_int_eq(read1(q, NULL, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 1);
    assert_doc(&t, 0, q, body);
    ptq_text_free(&t);
    ck_assert_int_eq(read1(q, &o, &t, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 3);
    ptq_text_free(&t);
    free(n1);
    free(n3);
    free(n4);
    free(p);
    free(q);
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(jsonl_errors)
{
    static const struct {
        const char *body, *field;
        int line;
        const char *what;
    } v[] = {
        {"{\"text\":\"ok\"}\n{\"text\": \"unterminated}\n", NULL, 2, "malformed"},
        {"{\"text\":\"ok\"}\n\n{\"other\":\"x\"}\n", NULL, 3, "\"text\" is missing"},
        {"{\"text\":42}\n", NULL, 1, "\"text\" is not a string"},
        {"{\"text\":null}\n", NULL, 1, "\"text\" is not a string"},
        {"{\"text\":\"a\"}\n{\"body\":[\"x\"]}\n", "body", 1, "\"body\" is missing"},
        {"[\"text\"]\n", NULL, 1, "not a JSON object"},
        {"{\"text\":\"a\"} {\"text\":\"b\"}\n", NULL, 1, "after the JSON value"},
        {"{\"text\":\"\\udc00\"}\n", NULL, 1, "malformed"}, /* lone low surrogate */
    };
    char *d = tu_tmpdir(), *p = tu_fmt("%s/bad.jsonl", d);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        put(p, v[i].body);
        ptq_text_opts o = {.jsonl_field = v[i].field};
        ptq_text t;
        ptq_err e = {0};
        ck_assert_int_eq(read1(p, &o, &t, &e), PTQ_EFORMAT);
        char *where = tu_fmt("%s:%d:", p, v[i].line);
        ck_assert_msg(strstr(e.msg, where) && strstr(e.msg, v[i].what), "case %zu: %s", i, e.msg);
        ck_assert_int_eq(t.ndocs, 0);
        ck_assert_ptr_null(t.docs);
        free(where);
    }
    free(p);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- UTF-8 */

#define R "\xEF\xBF\xBD" /* U+FFFD */

/* Known cases of "U+FFFD Substitution of Maximal Subparts" (The Unicode
 * Standard, chapter 3.9, Table 3-8 and the text around it). */
static const struct {
    const char *in, *out;
    size_t nrep, first;
} utf8_cases[] = {
    /* Table 3-8 */
    {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a" R R R "b" R "c" R R "d", 6, 1},
    {"\xC0\xAF", R R, 2, 0},                         /* C0 never starts a sequence */
    {"x\xE0\x80\xAF", "x" R R R, 3, 1},              /* E0 needs A0..BF next */
    {"\xED\xA0\x80z", R R R "z", 3, 0},              /* surrogate D800 */
    {"\xF4\x90\x80\x80", R R R R, 4, 0},             /* above U+10FFFF */
    {"\xF5\x80", R R, 2, 0},
    {"ok\xE2\x82", "ok" R, 1, 2},                    /* truncated at the end */
    {"\xF0\x9F\x98" "A", R "A", 1, 0},               /* truncated 4-byte sequence */
    {"\xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF \xF4\x8F\xBF\xBF", /* all valid */
     "\xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF \xF4\x8F\xBF\xBF", 0, 0},
    {"\xFF\xFE", R R, 2, 0},
};

START_TEST(utf8_replace_maximal_subparts)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/u.txt", d);
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        put(p, utf8_cases[i].in);
        ptq_text t;
        ptq_err e = {0};
        ck_assert_int_eq(read1(p, NULL, &t, &e), PTQ_OK);
        ck_assert_int_eq(t.ndocs, 1);
        ck_assert_msg(t.docs[0].len == strlen(utf8_cases[i].out) &&
                          !memcmp(t.docs[0].text, utf8_cases[i].out, t.docs[0].len),
                      "case %zu: wrong repair", i);
        ck_assert_uint_eq(t.n_replaced, utf8_cases[i].nrep);
        if (utf8_cases[i].nrep) {
            ck_assert_str_eq(t.bad_name, p);
            ck_assert_uint_eq(t.bad_offset, utf8_cases[i].first);
        } else {
            ck_assert_ptr_null(t.bad_name);
        }
        const char *ps[1] = {p};
        assert_sha(&t, ps, 1); /* the raw bytes, before repair */
        ptq_text_free(&t);
    }
    free(p);
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(utf8_strict_names_file_and_offset)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/u.txt", d);
    ptq_text_opts o = {.utf8_policy = PTQ_UTF8_STRICT};
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        put(p, utf8_cases[i].in);
        ptq_text t;
        ptq_err e = {0};
        int rc = read1(p, &o, &t, &e);
        if (utf8_cases[i].nrep == 0) {
            ck_assert_int_eq(rc, PTQ_OK);
            ptq_text_free(&t);
            continue;
        }
        ck_assert_int_eq(rc, PTQ_EFORMAT);
        char *want = tu_fmt("%s: invalid UTF-8 at byte %zu", p, utf8_cases[i].first);
        ck_assert_msg(strstr(e.msg, want) != NULL, "case %zu: %s", i, e.msg);
        free(want);
        ck_assert_int_eq(t.ndocs, 0);
    }
    free(p);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* Counts add up over documents, the first bad file is the first in order,
 * and invalid bytes inside a JSONL string are repaired too (offsets count in
 * the decompressed bytes of the member). */
START_TEST(utf8_across_sources)
{
    char *d = tu_tmpdir(), *a = tu_fmt("%s/a.txt", d), *b = tu_fmt("%s/b.tar.gz", d);
    put(a, "clean\n");
    member m[2] = {{"x.txt", "fine"}, {"y.jsonl", "{\"text\":\"bad \xC3(\"}\n{\"text\":\"\xA0\"}\n"}};
    write_archive(b, "tar", F_GZIP, m, 2);
    const char *src[2] = {a, b};
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_text_read(&t, src, 2, NULL, &e), PTQ_OK);
    ck_assert_int_eq(t.ndocs, 4);
    ck_assert_uint_eq(t.n_replaced, 2);
    char *bad = tu_fmt("%s:y.jsonl", b);
    ck_assert_str_eq(t.bad_name, bad);
    ck_assert_uint_eq(t.bad_offset, 13);
    ck_assert_str_eq(t.docs[2].text, "bad " R "(");
    ck_assert_str_eq(t.docs[3].text, R);
    assert_sha(&t, src, 2);
    ptq_text_free(&t);
    ptq_text_opts o = {.utf8_policy = PTQ_UTF8_STRICT};
    ck_assert_int_eq(ptq_text_read(&t, src, 2, &o, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, bad) && strstr(e.msg, "byte 13"), "%s", e.msg);
    free(bad);
    free(a);
    free(b);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(missing_and_unreadable)
{
    char *d = tu_tmpdir(), *p = tu_fmt("%s/nope.txt", d), *ok = tu_fmt("%s/ok.txt", d);
    put(ok, "fine");
    const char *src[2] = {ok, p};
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_text_read(&t, src, 2, NULL, &e), PTQ_EIO);
    ck_assert_ptr_nonnull(strstr(e.msg, p));
    ck_assert_int_eq(t.ndocs, 0); /* nothing half-read is returned */
    if (geteuid() != 0) {         /* root reads anything */
        ck_assert_int_eq(chmod(ok, 0), 0);
        ck_assert_int_eq(read1(ok, NULL, &t, &e), PTQ_EIO);
        ck_assert_ptr_nonnull(strstr(e.msg, ok));
    }
    free(p);
    free(ok);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* A decompression bomb stops at max_bytes with PTQ_EDATA. */
START_TEST(size_limit)
{
    size_t big = 4 << 20;
    char *zeros = malloc(big); /* (all zeros would read as an empty tar) */
    memset(zeros, 'z', big);
    char *d = tu_tmpdir(), *p = tu_fmt("%s/bomb.gz", d), *q = tu_fmt("%s/plain.txt", d);
    write_compressed(p, F_GZIP, zeros, big);
    ptq_text_opts o = {.max_bytes = 1 << 20};
    ptq_text t;
    ptq_err e = {0};
    ck_assert_int_eq(read1(p, &o, &t, &e), PTQ_EDATA);
    ck_assert_ptr_nonnull(strstr(e.msg, p));
    memset(zeros, 'a', 2 << 20);
    ck_assert_int_eq(tu_write_file(q, zeros, 2 << 20), 0);
    ck_assert_int_eq(read1(q, &o, &t, &e), PTQ_EDATA);
    o.max_bytes = 3 << 20;
    ck_assert_int_eq(read1(q, &o, &t, &e), PTQ_OK);
    ck_assert_uint_eq(t.total_bytes, 2 << 20);
    ptq_text_free(&t);
    free(zeros);
    free(p);
    free(q);
    tu_rmrf(d);
    free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, plain_file);
    tcase_add_test(tc, plain_not_mistaken_for_archive);
    tcase_add_test(tc, empty_inputs_are_not_errors);
    tcase_add_test(tc, directory_sorted_by_path_bytes);
    tcase_add_test(tc, directory_of_jsonl_gz_shards);
    tcase_add_test(tc, archives_in_member_order);
    tcase_add_test(tc, single_compressed_files);
    tcase_add_test(tc, corrupt_archives);
    tcase_add_test(tc, standard_input);
    tcase_add_test(tc, jsonl_fields);
    tcase_add_test(tc, jsonl_errors);
    tcase_add_test(tc, utf8_replace_maximal_subparts);
    tcase_add_test(tc, utf8_strict_names_file_and_offset);
    tcase_add_test(tc, utf8_across_sources);
    tcase_add_test(tc, missing_and_unreadable);
    tcase_add_test(tc, size_limit);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
