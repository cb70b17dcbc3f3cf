/* check_export_cli.c - `ptqc compile ... --export FORMAT[:DIR]`
 * (src/compile_export.c): the shortcut writes the same bundle as a compile
 * without it and the same files as a separate `ptqc export`; what the flags
 * show a format cannot hold is refused before compiling (nothing written);
 * what only the bundle shows is refused after it, leaving the bundle, with
 * exit status 10. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/testutil.h"

static char *tmp;
static char *pool[64]; /* the strings of F, freed by teardown */
static int npool;

static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void)
{
    tu_rmrf(tmp);
    free(tmp);
    while (npool) free(pool[--npool]);
}

/* tu_fmt, freed at teardown */
#define F(...) keep(tu_fmt(__VA_ARGS__))
static char *keep(char *s)
{
    ck_assert(npool < 64);
    return pool[npool++] = s;
}

#define QUICK "--nsamples 8 --seqlen 64 --quiet"

/* The two files have the same bytes. */
static void same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    ck_assert_msg(da && db, "cannot read %s or %s", a, b);
    ck_assert_msg(na == nb && !memcmp(da, db, na), "%s and %s differ", a, b);
    free(da);
    free(db);
}

/* The directories hold the same names with the same bytes; returns the count. */
static int same_dir(const char *a, const char *b)
{
    int n = 0, nb = 0;
    DIR *d = opendir(a);
    ck_assert_msg(d != NULL, "no directory %s", a);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *pa = tu_fmt("%s/%s", a, de->d_name), *pb = tu_fmt("%s/%s", b, de->d_name);
        same_file(pa, pb);
        free(pa);
        free(pb);
        n++;
    }
    closedir(d);
    ck_assert((d = opendir(b)) != NULL);
    while ((de = readdir(d))) nb += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(n, nb);
    return n;
}

static void run_ok(const char *args)
{
    char *err = NULL;
    int rc = tu_ptqc(args, NULL, &err);
    ck_assert_msg(rc == 0, "ptqc %s: exit %d: %s", args, rc, err ? err : "");
    free(err);
}

/* babyllama-105 (dims 128 and 352: whole groups of 32) at RTN W4 g32:
 * compile --export equals compile, then export. */
START_TEST(test_same_as_export)
{
    char *model = tu_shared("models/babyllama-105");
    const char *fl = "--method rtn --bits 4 --group 32 " QUICK;
    /* the same file name in two directories (the manifest records it) */
    run_ok(F("compile '%s' -o '%s/m.ptq' %s --export compressed-tensors --export gptq:'%s/g'",
                  model, tmp, fl, tmp));
    ck_assert(mkdir(F("%s/b", tmp), 0755) == 0);
    run_ok(F("compile '%s' -o '%s/b/m.ptq' %s", model, tmp, fl));
    /* --export is not recorded: the bundles are the same bytes */
    same_file(F("%s/m.ptq", tmp), F("%s/b/m.ptq", tmp));
    run_ok(F("export '%s/b/m.ptq' -o '%s/b-ct' --format compressed-tensors --quiet", tmp, tmp));
    run_ok(F("export '%s/b/m.ptq' -o '%s/b-gptq' --format gptq --quiet", tmp, tmp));
    /* default DIR: OUT less .ptq, then -FORMAT */
    ck_assert_int_ge(same_dir(F("%s/m-compressed-tensors", tmp), F("%s/b-ct", tmp)), 4);
    ck_assert_int_ge(same_dir(F("%s/g", tmp), F("%s/b-gptq", tmp)), 5);
    free(model);
}
END_TEST

/* Refused before compiling: exit 2 (or 6), no bundle, no directory. */
START_TEST(test_refused_before)
{
    char *model = tu_shared("models/babyllama-105");
    char *out = F("%s/r.ptq", tmp);
    tu_expect_fail(F("compile '%s' -o '%s' --method rtn --bits 8 --export awq " QUICK, model,
                          out),
                   2, "--export awq: AWQ GEMM is 4-bit only", out);
    ck_assert(!tu_exists(F("%s/r-awq", tmp)));
    tu_expect_fail(F("compile '%s' -o '%s' --method w8a8 --export gptq " QUICK, model, out), 2,
                   "gptq holds integer weights only", out);
    tu_expect_fail(F("compile '%s' -o '%s' --method gptq --no-static-groups --export awq " QUICK,
                          model, out),
                   2, "AWQ GEMM has none", out);
    tu_expect_fail(F("compile '%s' -o '%s' --method rtn --export nope " QUICK, model, out), 2,
                   "unknown format 'nope'", out);
    char *d = F("%s/exists", tmp);
    tu_write_file(d, "x", 1);
    tu_expect_fail(F("compile '%s' -o '%s' --method rtn --export gptq:'%s' " QUICK, model,
                          out, d),
                   6, "already exists", out);
    free(model);
}
END_TEST

/* Refused after compiling (only the bundle shows it): stories260k's
 * intermediate 172 leaves a shorter last group of 32 in down_proj, which
 * compressed-tensors cannot hold: exit 10, the bundle stays, no directory. */
START_TEST(test_refused_after)
{
    char *model = tu_src("examples/stories260k");
    char *out = F("%s/s.ptq", tmp);
    tu_expect_fail(F("compile '%s' -o '%s' --method rtn --bits 4 --group 32 "
                          "--export compressed-tensors " QUICK, model, out),
                   10, "group 32 does not divide the input 172", NULL);
    ck_assert(tu_exists(out));
    run_ok(F("verify '%s'", out));
    ck_assert(!tu_exists(F("%s/s-compressed-tensors", tmp)));
    DIR *dir = opendir(tmp);
    struct dirent *de;
    while ((dir && (de = readdir(dir))))
        ck_assert_msg(!strstr(de->d_name, ".tmp."), "left %s", de->d_name);
    closedir(dir);
    free(model);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("export_cli");
    TCase *tc = tcase_create("export_cli");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_same_as_export);
    tcase_add_test(tc, test_refused_before);
    tcase_add_test(tc, test_refused_after);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
