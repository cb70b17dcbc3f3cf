/* check_methods.c - the method table (lib/compile/method.h) against the man
 * page's method lists (man/ptqc-compile.1: the SYNOPSIS, the --method line
 * and the entries under it, both directions); name lookup (NAME and
 * TRANSFORM+ROUNDER); and the exact text of the errors of a bad weight
 * (one message naming the tensor once, no doubled ": ").
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/method.h"
#include "lib/qfmt/qtensor.h"
#include "tests/synth.h"
#include "tests/testutil.h"

#define MAXN 32

/* ------------------------------------------------------- the man page */

/* s without roff's escapes of '-' ("\-") and the font changes' quotes */
static void unroff(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '-') continue;
        if (s[i] == '"') continue;
        out[k++] = s[i];
    }
    out[k] = 0;
}

/* Split "a|b | c" (separators '|' and blanks) into names. */
static int split_names(const char *line, char names[][64], int max)
{
    int n = 0;
    const char *p = line;
    while (*p && n < max) {
        p += strspn(p, "| \t");
        size_t len = strcspn(p, "| \t");
        if (!len) break;
        if (len < 64) {
            memcpy(names[n], p, len);
            names[n++][len] = 0;
        }
        p += len;
    }
    return n;
}

static char *man_page(void)
{
    char *path = tu_src("man/ptqc-compile.1");
    char *text = tu_read_file(path, NULL);
    ck_assert_msg(text, "cannot read %s (PTQC_SRCDIR)", path);
    free(path);
    return text;
}

/* The line after "after" (its text up to the newline, unescaped). */
static int line_after(const char *text, const char *after, char *out, size_t cap)
{
    const char *p = strstr(text, after);
    if (!p) return 0;
    p = strchr(p, '\n');
    if (!p) return 0;
    p++;
    unroff(p, strcspn(p, "\n"), out, cap);
    return 1;
}

/* The synopsis: ".RB [ \-\-method" then ".BR rtn | gptq | ... ]". */
static int synopsis_names(const char *text, char names[][64])
{
    char line[512];
    ck_assert_msg(line_after(text, ".RB [ \\-\\-method\n", line, sizeof line),
                  "no --method in the SYNOPSIS");
    ck_assert_msg(!strncmp(line, ".BR ", 4), "SYNOPSIS: unexpected line '%s'", line);
    char *end = strchr(line, ']');
    if (end) *end = 0;
    return split_names(line + 4, names, MAXN);
}

/* The option: '.BR \-\-method " rtn|gptq|..."' and, under it up to .RE,
 * one ".TP" + ".B NAME" entry per method. */
static int option_names(const char *text, char head[][64], int *nhead, char entries[][64])
{
    const char *p = strstr(text, ".BR \\-\\-method \"");
    ck_assert_msg(p, "no .BR --method line under OPTIONS");
    char line[512];
    unroff(p + 4, strcspn(p + 4, "\n"), line, sizeof line);
    ck_assert_msg(!strncmp(line, "--method ", 9), "unexpected '%s'", line);
    *nhead = split_names(line + 9, head, MAXN);
    const char *re = strstr(p, "\n.RE\n");
    ck_assert_msg(re, "no .RE after the --method entries");
    int n = 0;
    for (const char *q = strstr(p, "\n.TP\n.B "); q && q < re && n < MAXN;
         q = strstr(q + 1, "\n.TP\n.B ")) {
        const char *name = q + strlen("\n.TP\n.B ");
        unroff(name, strcspn(name, "\n"), entries[n], 64);
        n++;
    }
    return n;
}

static int in_table(const char *name)
{
    for (int i = 0; i < ptq_nmethods; i++)
        if (!strcmp(ptq_methods[i].name, name)) return 1;
    return 0;
}

/* Every name of the list is a row; every row is in the list. */
static void same_as_table(const char *what, char names[][64], int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(in_table(names[i]), "man page %s lists '%s', not in the method table", what,
                      names[i]);
    for (int r = 0; r < ptq_nmethods; r++) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= !strcmp(names[i], ptq_methods[r].name);
        ck_assert_msg(found, "method '%s' of the table is missing from the man page's %s",
                      ptq_methods[r].name, what);
    }
    ck_assert_int_eq(n, ptq_nmethods);
}

START_TEST(man_page_lists_the_table)
{
    char *text = man_page();
    char syn[MAXN][64], head[MAXN][64], ent[MAXN][64];
    int nhead = 0;
    int nsyn = synopsis_names(text, syn);
    int nent = option_names(text, head, &nhead, ent);
    same_as_table("SYNOPSIS", syn, nsyn);
    same_as_table("--method line", head, nhead);
    same_as_table("--method entries", ent, nent);
    free(text);
}
END_TEST

/* ------------------------------------------------------- calibration */

/* Which methods read calibration activations: GPTQ's Hessian, AWQ's and
 * SmoothQuant's activation scales do; round-to-nearest onto any grid (rtn,
 * w8a8, fp8) depends on the weights alone (GPTQ, AWQ, SmoothQuant papers). */
START_TEST(needs_calibration_from_the_table)
{
    static const struct { const char *name; int needs; } want[] = {
        {"rtn", 0},  {"w8a8", 0},        {"fp8", 0},         {"gptq", 1},
        {"awq", 1},  {"awq+gptq", 1},    {"smoothquant", 1}, {"smoothquant+gptq", 1},
        {"none+rtn", 0}, {"awq+rtn", 1}, {"none+gptq", 1}, {"quip", 1}, {"aqlm", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const ptq_method *m = ptq_method_find(want[i].name);
        ck_assert_msg(m != NULL, "%s", want[i].name);
        ck_assert_msg(ptq_method_needs_calib(m) == want[i].needs, "%s: needs_calib %d",
                      want[i].name, ptq_method_needs_calib(m));
    }
    /* every row is covered */
    for (int i = 0; i < ptq_nmethods; i++) {
        int found = 0;
        for (size_t k = 0; k < sizeof want / sizeof *want; k++)
            found |= !strcmp(want[k].name, ptq_methods[i].name);
        ck_assert_msg(found, "%s: not in the test's table", ptq_methods[i].name);
    }
}
END_TEST

/* ------------------------------------------------------- lookup */

START_TEST(find_by_name_and_parts)
{
    for (int i = 0; i < ptq_nmethods; i++) {
        const ptq_method *m = &ptq_methods[i];
        ck_assert_ptr_eq(ptq_method_find(m->name), m);
        for (int j = 0; j < i; j++) ck_assert_str_ne(ptq_methods[j].name, m->name);
    }
    const ptq_method *awq = ptq_method_find("awq"), *ag = ptq_method_find("awq+gptq");
    ck_assert(awq && ag);
    ck_assert_int_eq(awq->transform, PTQ_TF_AWQ);
    ck_assert_int_eq(awq->rounder, PTQ_RD_RTN);
    ck_assert_int_eq(ag->transform, PTQ_TF_AWQ);
    ck_assert_int_eq(ag->rounder, PTQ_RD_GPTQ);
    ck_assert_ptr_eq(ptq_method_find("awq+rtn"), awq);
    ck_assert_ptr_eq(ptq_method_find("none+gptq"), ptq_method_find("gptq"));
    ck_assert_ptr_eq(ptq_method_find("none+rtn"), ptq_method_find("rtn"));
    ck_assert_ptr_eq(ptq_method_find("smoothquant+rtn"), ptq_method_find("smoothquant"));
    ck_assert_ptr_null(ptq_method_find("quip+gptq"));
    ck_assert_ptr_null(ptq_method_find("awq+"));
    ck_assert_ptr_null(ptq_method_find("+gptq"));
    ck_assert_ptr_null(ptq_method_find("awq+beam"));
    ck_assert_str_eq(ptq_method_default()->name, "gptq");
    /* the 8-bit formats are not per linear (no --recipe) */
    ck_assert(ptq_method_a8(ptq_method_find("fp8")));
    ck_assert(!ptq_method_per_linear(ptq_method_find("w8a8")));
    ck_assert(ptq_method_per_linear(ptq_method_find("awq+gptq")));
    char list[512];
    ptq_method_list(list, sizeof list, 1);
    ck_assert_str_eq(list, "rtn, gptq, awq, awq+gptq, quip or aqlm");
}
END_TEST

/* ------------------------------------------------------- bad weights */

/* A tiny synthetic model (F32) with q_proj[0][0] of layer 0 set to v. */
static char *bad_model(const char *dir, float v)
{
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 7), 0);
    m.layers[0].w[PTQ_Q][0] = v;
    char *d = tu_fmt("%s/model", dir);
    char *cmd = tu_fmt("mkdir -p '%s'", d);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    ptq_err e = {0, ""};
    ck_assert_msg(synth_write(&m, d, PTQ_DT_F32, 1, &e) == 0, "%s", e.msg);
    synth_free(&m);
    return d;
}

/* ptqc compile of model with flags must fail with status and exactly the
 * stderr text want. */
static void expect_text(const char *model, const char *dir, const char *flags, int status,
                        const char *want)
{
    char *out = tu_fmt("%s/x.ptq", dir);
    char *args = tu_fmt("compile '%s' -o '%s' --nsamples 2 --seqlen 16 --quiet %s", model, out,
                        flags);
    char *err = NULL;
    int st = tu_ptqc(args, NULL, &err);
    ck_assert_msg(st == status, "%s: status %d, want %d: %s", args, st, status, err ? err : "");
    ck_assert_msg(err && !strcmp(err, want), "%s:\n got '%s'\nwant '%s'", args, err ? err : "",
                  want);
    ck_assert_msg(!strstr(err, ": :"), "doubled ': ' in '%s'", err);
    free(err), free(args), free(out);
}

START_TEST(nan_weight_one_message)
{
    char *dir = tu_tmpdir(), *model = bad_model(dir, NAN);
    char *want = tu_fmt("ptqc: %s/model.safetensors: tensor model.layers.0.self_attn.q_proj.weight "
                        "has a non-finite value (NaN) at element 0\n", model);
    expect_text(model, dir, "--method rtn --bits 4", 5, want);
    expect_text(model, dir, "--method gptq --bits 4", 5, want);
    free(want), free(model);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* A finite weight whose group range no fp16 scale holds: the rounder's
 * message, prefixed once with the tensor's name. */
START_TEST(huge_weight_named_once)
{
    char *dir = tu_tmpdir(), *model = bad_model(dir, 1e30f);
    const char *want = "ptqc: model.layers.0.self_attn.q_proj.weight: weights of row 0 from column "
                       "0 span a range too large for an fp16 scale\n";
    expect_text(model, dir, "--method rtn --bits 4 --group 0", 5, want);
    expect_text(model, dir, "--method gptq --bits 4 --group 0", 5, want);
    free(model);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("methods");
    TCase *t = tcase_create("table");
    tcase_add_test(t, man_page_lists_the_table);
    tcase_add_test(t, find_by_name_and_parts);
    tcase_add_test(t, needs_calibration_from_the_table);
    suite_add_tcase(s, t);
    TCase *b = tcase_create("bad_weights");
    tcase_set_timeout(b, 120);
    tcase_add_test(b, nan_weight_one_message);
    tcase_add_test(b, huge_weight_named_once);
    suite_add_tcase(s, b);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
