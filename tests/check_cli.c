/* check_cli.c - end to end through the built ptqc: bad inputs get the exit
 * status documented in ptqc(1), exactly one line on stderr naming the file
 * and the problem, and no crash; plus --help, --version, unknown command and
 * unknown option.  Each case copies examples/stories260k into a temporary
 * directory and damages one thing. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tests/testutil.h"

/* ---------------------------------------------------------------- helpers */

static char *copy_model(void)
{
    char *d = tu_tmpdir(), *src = tu_src("examples/stories260k");
    char *cmd = tu_fmt("cp '%s'/config.json '%s'/model.safetensors '%s'/tokenizer.json "
                       "'%s'/tokenizer_config.json '%s'/",
                       src, src, src, src, d);
    ck_assert_msg(system(cmd) == 0, "cannot copy %s", src);
    free(cmd);
    free(src);
    return d;
}

/* Replace the first occurrence of old by new in the file. */
static void file_replace(const char *path, const char *old, const char *new)
{
    size_t n;
    char *b = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(b);
    char *at = strstr(b, old);
    ck_assert_msg(at != NULL, "%s: '%s' not found", path, old);
    size_t lo = strlen(old), ln = strlen(new), pre = (size_t)(at - b);
    char *o = malloc(n - lo + ln);
    memcpy(o, b, pre);
    memcpy(o + pre, new, ln);
    memcpy(o + pre + ln, at + lo, n - pre - lo);
    ck_assert_int_eq(tu_write_file(path, o, n - lo + ln), 0);
    free(o);
    free(b);
}

/* Replace old by new in the JSON header of a safetensors file, keeping the
 * data section as it is (offsets are relative to it). */
static void header_replace(const char *path, const char *old, const char *new)
{
    size_t n;
    unsigned char *b = (unsigned char *)tu_read_file(path, &n);
    ck_assert_ptr_nonnull(b);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    ck_assert_uint_le(hl, n - 8);
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    char *at = strstr(h, old);
    ck_assert_msg(at != NULL, "header: '%s' not found", old);
    size_t pre = (size_t)(at - h), lo = strlen(old), ln = strlen(new);
    size_t nh = hl - lo + ln, total = 8 + nh + (n - 8 - hl);
    unsigned char *o = malloc(total);
    for (int i = 0; i < 8; i++) o[i] = (unsigned char)((uint64_t)nh >> (8 * i));
    memcpy(o + 8, h, pre);
    memcpy(o + 8 + pre, new, ln);
    memcpy(o + 8 + pre + ln, at + lo, hl - pre - lo);
    memcpy(o + 8 + nh, b + 8 + hl, n - 8 - hl);
    ck_assert_int_eq(tu_write_file(path, o, total), 0);
    free(o);
    free(h);
    free(b);
}

static size_t count_lines(const char *s)
{
    size_t k = 0;
    for (; *s; s++) k += *s == '\n';
    return k;
}

/* Run ptqc; assert the status, no crash, and exactly one stderr line that
 * names `file` and contains one of the '|'-separated words of `problem`. */
static void expect_error(const char *args, int status, const char *file, const char *problem)
{
    char *out = NULL, *err = NULL;
    int st = tu_ptqc(args, &out, &err);
    ck_assert_msg(st >= 0 && st < 128, "ptqc %s: crashed or killed (status %d); stderr: %s", args,
                  st, err ? err : "");
    ck_assert_msg(st == status, "ptqc %s: status %d, want %d; stderr: %s", args, st, status,
                  err ? err : "");
    ck_assert_ptr_nonnull(err);
    size_t len = strlen(err);
    ck_assert_msg(len > 0 && err[len - 1] == '\n' && count_lines(err) == 1,
                  "ptqc %s: want exactly one line on stderr, got:\n%s", args, err);
    ck_assert_msg(strstr(err, file) != NULL, "ptqc %s: stderr does not name %s: %s", args, file,
                  err);
    int found = 0;
    char *words = tu_fmt("%s", problem), *save = NULL;
    for (char *w = strtok_r(words, "|", &save); w && !found; w = strtok_r(NULL, "|", &save))
        found = strstr(err, w) != NULL;
    free(words);
    ck_assert_msg(found, "ptqc %s: stderr does not say the problem (%s): %s", args, problem, err);
    free(out);
    free(err);
}

static void inspect_expect(const char *dir, int status, const char *file, const char *problem)
{
    char *args = tu_fmt("inspect '%s'", dir);
    expect_error(args, status, file, problem);
    free(args);
}

/* ---------------------------------------------------------------- checkpoint */

START_TEST(intact_copy_inspects)
{
    char *d = copy_model(), *out = NULL, *err = NULL;
    char *args = tu_fmt("inspect '%s'", d);
    int st = tu_ptqc(args, &out, &err);
    ck_assert_msg(st == 0, "inspect of the intact copy: status %d: %s", st, err ? err : "");
    free(args);
    free(out);
    free(err);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* One damage to one file of the copy, and what the one stderr line must say. */
typedef enum { CUT_100, HALVE, HEADER_LENGTH, HEADER, TEXT } damage_kind;
static const struct damage {
    const char *file;
    damage_kind kind;
    const char *old, *new; /* HEADER (the safetensors JSON header), TEXT */
    const char *blame, *problem;
} damages[] = {
    {"model.safetensors", CUT_100, NULL, NULL, "model.safetensors",
     "truncated|out of range|past the end"},
    /* a header length more than the file holds after the 8 bytes */
    {"model.safetensors", HEADER_LENGTH, NULL, NULL, "model.safetensors", "header length"},
    /* layer 0's input_layernorm (128 bytes) moved back into the embedding */
    {"model.safetensors", HEADER, "\"data_offsets\":[65536,65664]",
     "\"data_offsets\":[65500,65628]", "model.safetensors", "overlap"},
    {"model.safetensors", HEADER, "\"data_offsets\":[0,65536]", "\"data_offsets\":[600000,665536]",
     "model.safetensors", "out of range|past the end"},
    {"model.safetensors", HEADER, "\"dtype\":\"F16\"", "\"dtype\":\"Q7\"", "model.safetensors",
     "Q7"},
    /* renamed: the data stays where it was, the name the config implies is gone */
    {"model.safetensors", HEADER, "\"model.layers.4.mlp.up_proj.weight\"",
     "\"model.layers.4.mlp.up_proj.weigxt\"", "model.layers.4.mlp.up_proj.weight", "missing"},
    {"config.json", HALVE, NULL, NULL, "config.json", "malformed|JSON|syntax"},
    {"tokenizer.json", TEXT, "\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "tokenizer.json",
     "WordPiece"},
};

START_TEST(damaged_copy)
{
    const struct damage *c = &damages[_i];
    char *d = copy_model(), *p = tu_fmt("%s/%s", d, c->file);
    if (c->kind == HEADER) header_replace(p, c->old, c->new);
    else if (c->kind == TEXT) file_replace(p, c->old, c->new);
    else {
        size_t n;
        unsigned char *b = (unsigned char *)tu_read_file(p, &n);
        ck_assert_ptr_nonnull(b);
        size_t keep = c->kind == CUT_100 ? n - 100 : c->kind == HALVE ? n / 2 : n;
        for (int i = 0; c->kind == HEADER_LENGTH && i < 8; i++)
            b[i] = (unsigned char)((uint64_t)n >> (8 * i));
        ck_assert_int_eq(tu_write_file(p, b, keep), 0);
        free(b);
    }
    inspect_expect(d, 4, c->blame, c->problem);
    free(p);
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(shape_inconsistent_with_config)
{
    char *d = copy_model(), *p = tu_fmt("%s/config.json", d);
    file_replace(p, "\"intermediate_size\": 172", "\"intermediate_size\": 176");
    char *args = tu_fmt("inspect '%s'", d);
    /* the message names the tensor file (or config.json) and the shapes */
    expect_error(args, 4, "shape", "172|176");
    char *out = NULL, *err = NULL;
    tu_ptqc(args, &out, &err);
    ck_assert_msg(err && (strstr(err, "model.safetensors") || strstr(err, "config.json")),
                  "the message names neither file: %s", err ? err : "");
    free(out);
    free(err);
    free(args);
    free(p);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- text */

static void eval_text_expect(const char *text, const char *extra, int status, const char *problem)
{
    char *d = copy_model(), *t = tu_fmt("%s/input.txt", d);
    ck_assert_int_eq(tu_write_file(t, text, strlen(text)), 0);
    char *args = tu_fmt("eval '%s' --text '%s' %s", d, t, extra);
    expect_error(args, status, "input.txt", problem);
    free(args);
    free(t);
    tu_rmrf(d);
    free(d);
}

START_TEST(empty_text) { eval_text_expect("", "", 5, "empty"); }
END_TEST

START_TEST(whitespace_only_text) { eval_text_expect("  \n\t \r\n  ", "", 5, "empty|whitespace"); }
END_TEST

START_TEST(text_shorter_than_one_window)
{
    eval_text_expect("Once upon a time there was a cat.\n", "--ctx 128", 5, "window");
}
END_TEST

START_TEST(missing_text_file)
{
    char *d = copy_model();
    char *args = tu_fmt("eval '%s' --text '%s/no-such-file.txt'", d, d);
    expect_error(args, 3, "no-such-file.txt", "cannot open|No such file");
    free(args);
    tu_rmrf(d);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------- options */

START_TEST(help_and_version)
{
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc("--help", &out, &err), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(strstr(out, "Usage: ptqc"));
    static const char *const cmds[] = {"inspect", "eval", "verify"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        ck_assert_msg(strstr(out, cmds[i]) != NULL, "--help does not list %s", cmds[i]);
    /* the exit statuses of ptqc(1) */
    ck_assert_ptr_nonnull(strstr(out, "9 no GPU"));
    ck_assert_msg(!err || !*err, "--help wrote to stderr: %s", err);
    free(out);
    free(err);
    ck_assert_int_eq(tu_ptqc("--version", &out, &err), 0);
    char *want = tu_fmt("ptqc %s\n", PACKAGE_VERSION);
    ck_assert_str_eq(out, want);
    free(want);
    free(out);
    free(err);
    /* no arguments: usage on stderr, status 2 */
    ck_assert_int_eq(tu_ptqc("", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "Usage: ptqc"));
    free(out);
    free(err);
}
END_TEST

START_TEST(unknown_command_and_option)
{
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc("frobnicate", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "frobnicate"));
    free(out);
    free(err);
    char *d = copy_model();
    static const char *const cmds[] = {"inspect", "eval", "verify"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *args = tu_fmt("%s --no-such-flag '%s'", cmds[i], d);
        int st = tu_ptqc(args, &out, &err);
        ck_assert_msg(st == 2, "ptqc %s: status %d, want 2", args, st);
        ck_assert_msg(err && strstr(err, "no-such-flag"), "ptqc %s: stderr does not name the flag: %s",
                      args, err ? err : "");
        free(args);
        free(out);
        free(err);
        /* every command has --help, on stdout, status 0 */
        args = tu_fmt("%s --help", cmds[i]);
        ck_assert_int_eq(tu_ptqc(args, &out, &err), 0);
        ck_assert_msg(out && strstr(out, cmds[i]), "ptqc %s: no usage on stdout", args);
        free(args);
        free(out);
        free(err);
    }
    tu_rmrf(d);
    free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("bad input");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, intact_copy_inspects);
    tcase_add_loop_test(tc, damaged_copy, 0, (int)(sizeof damages / sizeof damages[0]));
    tcase_add_test(tc, shape_inconsistent_with_config);
    tcase_add_test(tc, empty_text);
    tcase_add_test(tc, whitespace_only_text);
    tcase_add_test(tc, text_shorter_than_one_window);
    tcase_add_test(tc, missing_text_file);
    suite_add_tcase(s, tc);
    TCase *to = tcase_create("options");
    tcase_add_test(to, help_and_version);
    tcase_add_test(to, unknown_command_and_option);
    suite_add_tcase(s, to);
    return tu_run(s);
}
