/* testutil.c - see testutil.h */
#include "tests/testutil.h"

#include <cJSON.h>
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/tokenizer.h"
#include "lib/model/model.h"
#include "tests/synth.h"

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

char *tu_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    if (!s) abort();
    return s;
}

char *tu_shared(const char *rel)
{
    const char *dir = getenv("PTQC_SHARED");
    if (!dir || !*dir) dir = "../shared";
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "test data directory %s not found: the tests need the shared models "
                        "and text next to the checkout (configure --with-shared-data=DIR)\n", dir);
        abort();
    }
    return tu_fmt("%s/%s", dir, rel);
}

char *tu_src(const char *rel)
{
    const char *dir = getenv("PTQC_SRCDIR");
    if (!dir || !*dir) dir = ".";
    return tu_fmt("%s/%s", dir, rel);
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *t = tu_fmt("%s/ptqc-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(t)) abort();
    return t;
}

void tu_rmrf(const char *path)
{
    char *cmd = tu_fmt("rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
    free(cmd);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

int tu_ptqc(const char *args, char **out, char **err)
{
    const char *bin = getenv("PTQC_BIN");
    if (!bin || !*bin) bin = "src/ptqc";
    char *tmp = tu_tmpdir();
    char *cmd = tu_fmt("'%s' %s >'%s/out' 2>'%s/err'", bin, args, tmp, tmp);
    int st = system(cmd);
    free(cmd);
    char *p = tu_fmt("%s/out", tmp);
    if (out) *out = tu_read_file(p, NULL);
    free(p);
    p = tu_fmt("%s/err", tmp);
    if (err) *err = tu_read_file(p, NULL);
    free(p);
    tu_rmrf(tmp);
    free(tmp);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int tu_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

int tu_compile(const char *model, const char *out, const char *calib, const char *flags,
               char **err)
{
    char *cal = calib ? tu_fmt("%s", calib) : tu_shared("text/tinystories-calib.txt");
    char *args = tu_fmt("compile '%s' -o '%s' --calib '%s' %s", model, out, cal, flags);
    int st = tu_ptqc(args, NULL, err);
    free(args);
    free(cal);
    return st;
}

void tu_compile_ok(const char *model, const char *out, const char *calib, const char *flags,
                   int verify)
{
    char *err = NULL;
    int st = tu_compile(model, out, calib, flags, &err);
    ck_assert_msg(st == 0, "compile %s failed (%d): %s", flags, st, err ? err : "");
    free(err);
    if (!verify) return;
    char *args = tu_fmt("verify '%s'", out);
    ck_assert_int_eq(tu_ptqc(args, NULL, NULL), 0);
    free(args);
}

int tu_compile_kill(const char *model, const char *out, const char *calib, const char *flags,
                    const char *match, int nth)
{
    const char *bin = getenv("PTQC_BIN") && *getenv("PTQC_BIN") ? getenv("PTQC_BIN") : "src/ptqc";
    char *cal = calib ? tu_fmt("%s", calib) : tu_shared("text/tinystories-calib.txt");
    char *cmd = tu_fmt("exec '%s' compile '%s' -o '%s' --calib '%s' %s --progress=json", bin,
                       model, out, cal, flags);
    int fd[2];
    ck_assert(pipe(fd) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    int killed = 0, seen = 0;
    FILE *f = fdopen(fd[0], "r");
    char line[4096];
    while (fgets(line, sizeof line, f))
        if (strstr(line, match) && ++seen == nth) {
            killed = kill(pid, SIGKILL) == 0;
            break;
        }
    fclose(f);
    int st;
    waitpid(pid, &st, 0);
    free(cmd), free(cal);
    return killed && WIFSIGNALED(st);
}

cJSON *tu_eval_json(const char *args)
{
    char *full = tu_fmt("%s --json", args), *out = NULL, *err = NULL;
    int rc = tu_ptqc(full, &out, &err);
    ck_assert_msg(rc == 0, "ptqc %s: exit %d: %s", full, rc, err ? err : "");
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "ptqc %s: not JSON: %s", full, out);
    free(full);
    free(out);
    free(err);
    return j;
}

double tu_json_num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number \"%s\" in the JSON", key);
    return v->valuedouble;
}

double tu_ppl(const char *model_or_bundle)
{
    char *ev = tu_shared("text/tinystories-eval.txt");
    char *args = tu_fmt("eval '%s' --text '%s' --ctx 128", model_or_bundle, ev);
    cJSON *j = tu_eval_json(args);
    double v = tu_json_num(j, "ppl");
    cJSON_Delete(j);
    free(args);
    free(ev);
    return v;
}

void tu_expect_fail(const char *args, int status, const char *needle, const char *out)
{
    char *err = NULL;
    int st = tu_ptqc(args, NULL, &err);
    ck_assert_msg(st == status, "%s: status %d, want %d: %s", args, st, status, err ? err : "");
    ck_assert_msg(err && strstr(err, needle), "%s: message lacks '%s': %s", args, needle,
                  err ? err : "");
    int lines = 0;
    for (const char *p = err; *p; p++) lines += *p == '\n';
    ck_assert_msg(lines <= 2, "%s: more than one message: %s", args, err);
    free(err);
    if (out) tu_assert_no_output(out);
}

void tu_assert_no_output(const char *out)
{
    char *p = tu_fmt("%s.partial", out), *j = tu_fmt("%s.journal", out);
    ck_assert_msg(!tu_exists(out), "%s left behind", out);
    ck_assert_msg(!tu_exists(p), "%s left behind", p);
    ck_assert_msg(!tu_exists(j), "%s left behind", j);
    free(p);
    free(j);
}

static int fold_layer(void *ctx, int l, ptq_layer_w *w, ptq_err *e)
{
    tu_fold *f = ctx;
    int rc = f->base.layer(f->base.ctx, l, w, e);
    return rc ? rc : f->edit(f, l, w, e);
}
static int fold_embed(void *ctx, const int32_t *tok, int n, float *out, ptq_err *e)
{
    tu_fold *f = ctx;
    return f->base.embed(f->base.ctx, tok, n, out, e);
}
static int fold_head(void *ctx, float *norm, float *lm_head, ptq_err *e)
{
    tu_fold *f = ctx;
    return f->base.head(f->base.ctx, norm, lm_head, e);
}

ptq_weights tu_fold_weights(tu_fold *f)
{
    ptq_weights w = {f->base.cfg, f, fold_layer, fold_embed, fold_head, NULL};
    return w;
}

double tu_logit_change(ptq_fwd *f, const ptq_weights *a, const ptq_weights *b,
                       const int32_t *tok, int B, int T)
{
    size_t n = (size_t)B * T * a->cfg->vocab;
    float *la = malloc(sizeof(float) * n), *lb = malloc(sizeof(float) * n);
    ck_assert(la && lb);
    ptq_err e;
    ck_assert_msg(ptq_forward(f, a, tok, B, T, la, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_forward(f, b, tok, B, T, lb, &e) == 0, "%s", e.msg);
    double md = 0, ml = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)la[i] - lb[i]));
        ml = fmax(ml, fabs((double)la[i]));
    }
    free(la);
    free(lb);
    return md / ml;
}

void tu_assert_fold_exact(ptq_fwd *f, tu_fold *fold, const int32_t *tok, int B, int T,
                          const char *label, const char *what, double spread)
{
    ptq_weights fw = tu_fold_weights(fold);
    double rel = tu_logit_change(f, &fold->base, &fw, tok, B, T);
    printf("%s %s: max |d logit| / max |logit| = %.3g (max |log s| %.2f)\n", label, what, rel,
           spread);
    ck_assert_msg(rel <= 1e-5, "%s: folding changed the logits by %g relative", what, rel);
}

ptq_weights tu_ckpt_open(ptq_checkpoint *ck, const char *dir)
{
    ptq_err e;
    ck_assert_msg(ptq_ckpt_open(ck, dir, &e) == 0, "%s", e.msg);
    ptq_weights w;
    ptq_ckpt_weights(ck, &w);
    return w;
}

void tu_each_real_model(void (*fn)(const ptq_weights *w, const char *name))
{
    for (int m = 0; m < 2; m++) {
        char *dir = m ? tu_shared("models/babyllama-105") : tu_src("examples/stories260k");
        ptq_checkpoint ck;
        ptq_weights w = tu_ckpt_open(&ck, dir);
        fn(&w, m ? "babyllama-105" : "stories260k");
        ptq_ckpt_close(&ck);
        free(dir);
    }
}

void tu_each_synth_variant(int n, uint64_t seed,
                           void (*fn)(const ptq_weights *w, const char *name))
{
    for (int v = 0; v < n; v++) {
        const char *name;
        ptq_config c = synth_variant(v, &name);
        synth_model m;
        ck_assert_int_eq(synth_init(&m, &c, seed + (uint64_t)v), 0);
        ptq_weights w;
        synth_weights(&m, &w);
        fn(&w, name);
        synth_free(&m);
    }
}

int tu_tok_vectors(const ptq_tokenizer *t, const char *rel, int decode)
{
    char *p = tu_shared(rel);
    size_t n;
    char *s = tu_read_file(p, &n);
    ck_assert_msg(s != NULL, "%s: cannot read", p);
    ptq_err e = {0};
    int lines = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(j, "ids");
        int32_t *ids;
        size_t nid;
        ck_assert_msg(ptq_tok_encode(t, text, strlen(text), 0, &ids, &nid, &e) == 0, "%s", e.msg);
        int ok = (int)nid == cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < nid; i++) ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        ck_assert_msg(ok, "%s line %d '%s': encode differs", rel, lines + 1, text);
        if (decode) {
            char *dec;
            size_t dl;
            ck_assert_msg(ptq_tok_decode(t, ids, nid, &dec, &dl, &e) == 0, "%s", e.msg);
            ck_assert_msg(dl == strlen(text) && !memcmp(dec, text, dl),
                          "%s line %d: decode '%s' != '%s'", rel, lines + 1, dec, text);
            free(dec);
        }
        free(ids);
        cJSON_Delete(j);
    }
    free(s);
    free(p);
    return lines;
}
