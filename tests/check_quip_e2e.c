/* check_quip_e2e.c - QuIP# end to end: the e8p packed format
 * (lib/qfmt/qf_e8p.c), the quip rounder (lib/compile/round_quip.c) and
 * `ptqc compile --method quip` on babyllama-105 and stories260k.
 *
 * Golden facts used: decode's W = U^T W' V is recomputed here in double
 * from the dense matrices Q (columns Q e_j, had.c's fast transform being
 * held equal to the dense product by tests/check_quip.c) and the codebook
 * definition of e8p.h; an orthogonal U, V leaves U^T (U W V^T) V = W, so the
 * transformed model's logits equal the original's before rounding; the
 * gemv bound of qf_e8p.c; 4 bits (two stages) cannot be worse than 2 on
 * the proxy loss and should not be on perplexity. */
#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "lib/model/model.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/qfmt.h"
#include "lib/quant/hadamard.h"
#include "tests/testutil.h"

START_TEST(e8p_table_is_the_books)
{
    static ptq_e8p_book b;
    ptq_e8p_init(&b);
    ck_assert(!memcmp(b.tab, ptq_e8p_tab, sizeof b.tab));
}
END_TEST

/* A random e8p tensor of rows x cols with bits 2, 3 or 4 (3: the uint8
 * stage after the uint16 one, qf_e8p.c). */
static void random_e8p(ptq_qtensor *q, int rows, int cols, int bits, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_E8P, q->rows = rows, q->cols = cols, q->bits = bits;
    size_t per = (size_t)rows * (cols / 8), nb = bits == 3 ? 3 * per : (size_t)bits * per;
    q->e8_codes = malloc(nb);
    q->e8_scale = malloc(8);
    q->e8_su = malloc((size_t)cols);
    q->e8_sv = malloc((size_t)rows);
    for (size_t i = 0; i < nb; i++) ((uint8_t *)q->e8_codes)[i] = (uint8_t)tu_rng_next(&seed);
    q->e8_scale[0] = 0.037f, q->e8_scale[1] = 0.037f / (bits == 3 ? 2.04f : 3.45f);
    for (int i = 0; i < cols; i++) q->e8_su[i] = tu_rng_next(&seed) & 1 ? -1 : 1;
    for (int i = 0; i < rows; i++) q->e8_sv[i] = tu_rng_next(&seed) & 1 ? -1 : 1;
}

/* Dense Q of the plan of n in double, [n][n] (column j = Q e_j). */
static double *dense_q(int n)
{
    ptq_had h;
    ptq_err e;
    ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
    double *Q = malloc(sizeof *Q * (size_t)n * n);
    float *v = malloc(sizeof *v * (size_t)n * 2);
    for (int j = 0; j < n; j++) {
        memset(v, 0, sizeof *v * (size_t)n);
        v[j] = 1;
        ptq_had_apply(&h, v, 1, v + n);
        for (int i = 0; i < n; i++) Q[(size_t)i * n + j] = v[i];
    }
    free(v);
    ptq_had_free(&h);
    return Q;
}

/* W = diag(sv) Q_m^T W' Q_n diag(su) in double, W' from the codebook
 * definition: source nibbles, sign bits b ^ parity, shift +-1/4. */
static double *reference_decode(const ptq_qtensor *q)
{
    int m = q->rows, n = q->cols, per = n / 8;
    double *Wp = calloc((size_t)m * n, sizeof *Wp), *T = calloc((size_t)m * n, sizeof *T);
    for (int s = 0; s < (q->bits + 1) / 2; s++)
        for (int r = 0; r < m; r++)
            for (int j = 0; j < per; j++) {
                if (q->bits == 3 && s == 1) { /* E81B: byte codes after the E8P stage */
                    uint8_t c = ((const uint8_t *)(q->e8_codes + (size_t)m * per))[r * per + j];
                    for (int i = 0; i < 8; i++)
                        Wp[(size_t)r * n + 8 * j + i] += (double)q->e8_scale[1] *
                            ((double)((int)((ptq_e81b_tab[c] >> (4 * i)) & 15) - 8) / 2);
                    continue;
                }
                unsigned c = q->e8_codes[((size_t)s * m + r) * per + j], b = c & 255, p = 0;
                for (int i = 0; i < 8; i++) p ^= (b >> i) & 1;
                uint32_t a = ptq_e8p_tab[c >> 8];
                for (int i = 0; i < 8; i++) {
                    double v = (double)((int)((a >> (4 * i)) & 15) - 8) / 2;
                    if (((b ^ p) >> i) & 1) v = -v;
                    v += p ? -0.25 : 0.25;
                    Wp[(size_t)r * n + 8 * j + i] += (double)q->e8_scale[s] * v;
                }
            }
    double *Qm = dense_q(m), *Qn = dense_q(n);
    for (int r = 0; r < m; r++) /* T = W' Q_n diag(su) */
        for (int k = 0; k < n; k++) {
            double t = 0;
            for (int j = 0; j < n; j++) t += Wp[(size_t)r * n + j] * Qn[(size_t)j * n + k];
            T[(size_t)r * n + k] = t * q->e8_su[k];
        }
    for (int r = 0; r < m; r++) /* W = diag(sv) Q_m^T T */
        for (int k = 0; k < n; k++) {
            double t = 0;
            for (int i = 0; i < m; i++) t += Qm[(size_t)i * m + r] * T[(size_t)i * n + k];
            Wp[(size_t)r * n + k] = t * q->e8_sv[r];
        }
    free(T), free(Qm), free(Qn);
    return Wp;
}

START_TEST(decode_is_the_reference)
{
    static const int shapes[][3] = {{64, 96, 2}, {96, 64, 4}, {40, 56, 2}, {128, 352, 4},
                                    {64, 96, 3}, {128, 352, 3}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1];
        ptq_qtensor q;
        random_e8p(&q, m, n, shapes[t][2], 7 + t);
        ptq_err e;
        ck_assert_int_eq(ptq_qtensor_check(&q, "random", &e), 0);
        float *w = malloc(sizeof *w * (size_t)m * n), *part = malloc(sizeof *w * 8 * n);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        double *ref = reference_decode(&q), err = 0, mx = 0;
        for (size_t i = 0; i < (size_t)m * n; i++) {
            err = fmax(err, fabs(w[i] - ref[i]));
            mx = fmax(mx, fabs(ref[i]));
        }
        printf("decode %dx%d bits %d: max |float - double| / max = %.3g\n", m, n, shapes[t][2],
               err / mx);
        ck_assert_msg(err <= 1e-5 * mx, "%dx%d: %g", m, n, err / mx);
        ck_assert_int_eq(ptq_qtensor_dequant_rows(&q, 3, 8, part, &e), 0);
        ck_assert(!memcmp(part, w + 3 * (size_t)n, sizeof *w * 8 * n));
        free(w), free(part), free(ref);
        ptq_qtensor_free(&q);
    }
}
END_TEST

/* qf_e8p.c's bound: a_n = log2(P) + K + 2 of the plan of n */
static double a_of(int n)
{
    ptq_had h;
    ptq_err e;
    ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
    double a = log2((double)h.P) + h.K + 2;
    ptq_had_free(&h);
    return a;
}

START_TEST(gemv_within_bound_any_threads)
{
    static const int shapes[][3] = {{64, 96, 2}, {576, 576, 4}, {1536, 576, 2}, {352, 128, 4},
                                    {576, 1536, 3}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1];
        ptq_qtensor q;
        random_e8p(&q, m, n, shapes[t][2], 100 + t);
        uint64_t sd = 5 + t;
        float *x = malloc(sizeof *x * n), *w = malloc(sizeof *w * (size_t)m * n);
        float *y1 = malloc(sizeof *y1 * m), *y3 = malloc(sizeof *y3 * m);
        for (int i = 0; i < n; i++) x[i] = tu_rng_normal(&sd);
        ptq_err e;
        const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_E8P);
        ck_assert_int_eq(f->gemv(&q, x, y1, 1, &e), 0);
        ck_assert_int_eq(f->gemv(&q, x, y3, 3, &e), 0);
        ck_assert(!memcmp(y1, y3, sizeof *y1 * m));
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        double d2 = 0, wf = 0, xn = 0;
        for (int r = 0; r < m; r++) {
            float acc = 0;
            for (int k = 0; k < n; k++) acc += w[(size_t)r * n + k] * x[k];
            d2 += ((double)acc - y1[r]) * ((double)acc - y1[r]);
        }
        for (size_t i = 0; i < (size_t)m * n; i++) wf += (double)w[i] * w[i];
        for (int k = 0; k < n; k++) xn += (double)x[k] * x[k];
        double bound = 2 * (a_of(m) + a_of(n) + n + 4) * ldexp(1, -24) * sqrt(wf) * sqrt(xn);
        printf("gemv %dx%d: ||gemv - decode x|| = %.3g, bound %.3g\n", m, n, sqrt(d2), bound);
        ck_assert_msg(sqrt(d2) <= bound, "%dx%d: %g > %g", m, n, sqrt(d2), bound);
        free(x), free(w), free(y1), free(y3);
        ptq_qtensor_free(&q);
    }
}
END_TEST

START_TEST(check_refuses_bad_tensors)
{
    ptq_qtensor q;
    ptq_err e;
    random_e8p(&q, 64, 96, 2, 1);
    q.e8_su[5] = 0;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    printf("bad sign: %s\n", e.msg);
    q.e8_su[5] = 1;
    q.e8_scale[0] = NAN;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    printf("bad scale: %s\n", e.msg);
    q.e8_scale[0] = 1;
    q.bits = 5;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    q.bits = 2;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
    ptq_qtensor_free(&q);
}
END_TEST

/* The incoherence alone (before rounding): each linear through
 * U^T (U W V^T) V, the transform pair decode applies. */
static int rotate_back(const tu_fold *f, int l, ptq_layer_w *w, ptq_err *e)
{
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int rows, cols;
        ptq_linear_shape(f->base.cfg, i, &rows, &cols);
        ptq_incoh c;
        int rc = ptq_incoh_init(&c, rows, cols, 11u + 2u * (unsigned)(7 * l + i), e);
        if (!rc) rc = ptq_incoh_weights(&c, w->w[i], e);
        if (!rc) rc = ptq_incoh_weights_inv(&c, w->w[i], e);
        ptq_incoh_free(&c);
        if (rc) return rc;
    }
    return PTQ_OK;
}

START_TEST(incoherence_keeps_the_logits)
{
    char *dir = tu_shared("models/babyllama-105");
    ptq_checkpoint ck;
    ptq_weights w = tu_ckpt_open(&ck, dir);
    enum { B = 2, T = 24 };
    int32_t tok[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = 3 + (i * 37) % (ck.cfg.vocab - 3);
    ptq_fwd *f;
    ptq_err e;
    ck_assert_int_eq(ptq_fwd_create(&f, &ck.cfg, B * T, T, &e), 0);
    tu_fold fold = {w, rotate_back, NULL};
    ptq_weights rw = tu_fold_weights(&fold);
    double d = tu_logit_change(f, &w, &rw, tok, B, T);
    printf("babyllama-105 incoherence before rounding: max |dlogit| / max |logit| = %.3g\n", d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    ptq_fwd_free(f);
    ptq_ckpt_close(&ck);
    free(dir);
}
END_TEST

/* Every e8p tensor of a bundle read back (mapped) decodes to the double
 * reference of its payloads, and its gemv agrees with the decode. */
static void bundle_decodes(const char *path)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, path, 1, &e) == 0, "%s", e.msg);
    int seen = 0;
    for (int l = 0; l < 5; l++)
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            char *nm = tu_fmt("model.layers.%d.%s.weight", l, ptq_linear_name(i));
            ptq_qtensor q;
            ck_assert_msg(ptq_bundle_tensor(&b, nm, &q, &e) == 0, "%s", e.msg);
            ck_assert_int_eq(q.format, PTQ_QF_E8P);
            size_t n = (size_t)q.rows * q.cols;
            float *w = malloc(sizeof *w * n);
            ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
            double *ref = reference_decode(&q), err = 0, mx = 0;
            for (size_t k = 0; k < n; k++) {
                err = fmax(err, fabs(w[k] - ref[k]));
                mx = fmax(mx, fabs(ref[k]));
            }
            ck_assert_msg(err <= 1e-5 * mx, "%s: %g", nm, err / mx);
            seen++;
            free(w), free(ref), free(nm);
        }
    ck_assert_int_eq(seen, 35);
    ptq_bundle_close(&b);
}

START_TEST(babyllama_end_to_end)
{
    char *model = tu_shared("models/babyllama-105"), *tmp = tu_tmpdir(), *tmp2 = tu_tmpdir();
    /* the same file name in two directories (the manifest names the output) */
    char *o1 = tu_fmt("%s/q2.ptq", tmp), *o2 = tu_fmt("%s/q2.ptq", tmp2);
    char *o4 = tu_fmt("%s/q4.ptq", tmp), *o3 = tu_fmt("%s/q3.ptq", tmp);
    tu_compile_ok(model, o1, NULL, "--method quip --bits 2 --nsamples 16 --seqlen 64 --threads 1",
                  1);
    tu_compile_ok(model, o2, NULL, "--method quip --bits 2 --nsamples 16 --seqlen 64 --threads 2",
                  1);
    size_t n1, n2;
    char *a = tu_read_file(o1, &n1), *b = tu_read_file(o2, &n2);
    ck_assert_msg(n1 == n2 && !memcmp(a, b, n1), "bundles differ across --threads");
    free(a), free(b);
    tu_compile_ok(model, o4, NULL, "--method quip --bits 4 --nsamples 16 --seqlen 64", 1);
    tu_compile_ok(model, o3, NULL, "--method quip --bits 3 --nsamples 16 --seqlen 64", 1);
    bundle_decodes(o1);
    bundle_decodes(o3);
    bundle_decodes(o4);
    double p0 = tu_ppl(model), p2 = tu_ppl(o1), p3 = tu_ppl(o3), p4 = tu_ppl(o4);
    printf("babyllama-105 ppl: fp16 %.4f, quip 2-bit %.4f, 3-bit %.4f, 4-bit %.4f\n", p0, p2,
           p3, p4);
    ck_assert(isfinite(p2) && p2 < 4 * p0);
    ck_assert(p4 < p2 && p4 < 1.25 * p0);
    ck_assert(p3 < p2 && p3 < 2 * p0); /* one more bit a weight than 2 */
    char *out = NULL, *err = NULL;
    char *args = tu_fmt("run '%s' -p 'Once upon a time' -n 24 --device cpu --ignore-eos "
                      "--threads 2", o1);
    ck_assert_msg(tu_ptqc(args, &out, &err) == 0, "%s", err ? err : "");
    printf("run: %s\n", out);
    ck_assert(out && strlen(out) > 16);
    char *man = tu_fmt("inspect '%s'", o1);
    free(out), free(err);
    out = err = NULL;
    if (tu_ptqc(man, &out, &err) == 0 && out) ck_assert_ptr_nonnull(strstr(out, "e8p"));
    free(out), free(err), free(args), free(man);
    tu_rmrf(tmp);
    tu_rmrf(tmp2);
    free(o1), free(o2), free(o3), free(o4), free(model), free(tmp), free(tmp2);
}
END_TEST

START_TEST(bad_input)
{
    char *model = tu_shared("models/babyllama-105"), *st = tu_src("examples/stories260k");
    char *tmp = tu_tmpdir(), *out = tu_fmt("%s/x.ptq", tmp);
    char *calib = tu_shared("text/tinystories-calib.txt");
    char *a;
    a = tu_fmt("compile '%s' -o '%s' --calib '%s' --method quip --bits 5", model, out, calib);
    tu_expect_fail(a, 2, "--bits 2, 3 or 4", out);
    free(a);
    a = tu_fmt("compile '%s' -o '%s' --calib '%s' --method quip --bits 2 --group 64", model, out,
               calib);
    tu_expect_fail(a, 2, "do not apply to --method quip", out);
    free(a);
    a = tu_fmt("compile '%s' -o '%s' --calib '%s' --method quip --bits 2", st, out, calib);
    tu_expect_fail(a, 2, "down_proj.weight: 172 inputs are not a multiple of 8", out);
    free(a);
    /* with the 172-input linears kept dense it compiles */
    tu_compile_ok(st, out, NULL, "--method quip --bits 2 --nsamples 8 --seqlen 64 "
                                 "--skip '*down_proj*'", 1);
    /* or a recipe: quip for every linear but down_proj, which GPTQ rounds */
    char *rp = tu_fmt("%s/r.json", tmp), *out2 = tu_fmt("%s/y.ptq", tmp);
    const char *r = "{\"default\": {\"method\": \"quip\", \"bits\": 2}, \"overrides\": "
                    "[{\"match\": \"*.mlp.down_proj.weight\", \"method\": \"gptq\", "
                    "\"bits\": 4, \"group\": 0}]}";
    ck_assert_int_eq(tu_write_file(rp, r, strlen(r)), 0);
    char *fl = tu_fmt("--recipe '%s' --nsamples 8 --seqlen 64", rp);
    tu_compile_ok(st, out2, NULL, fl, 1);
    double pr = tu_ppl(out2);
    printf("stories260k recipe quip 2-bit + gptq down_proj: ppl %.4f\n", pr);
    ck_assert(isfinite(pr));
    free(rp), free(out2), free(fl);
    tu_rmrf(tmp);
    free(model), free(st), free(tmp), free(out), free(calib);
}
END_TEST

/* Start ptqc compile with --progress=json (exec'ed: the child is ptqc
 * itself), SIGKILL that pid at the second stderr line containing match;
 * 1 when it was killed, 0 when it finished first. */
static int run_and_kill(const char *model, const char *out, const char *flags, const char *match)
{
    char *calib = tu_shared("text/tinystories-calib.txt");
    const char *bin = getenv("PTQC_BIN") && *getenv("PTQC_BIN") ? getenv("PTQC_BIN") : "src/ptqc";
    char *cmd = tu_fmt("exec '%s' compile '%s' -o '%s' --calib '%s' %s --progress=json", bin,
                       model, out, calib, flags);
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
        if (strstr(line, match) && ++seen == 2) {
            killed = kill(pid, SIGKILL) == 0;
            break;
        }
    fclose(f);
    int st;
    waitpid(pid, &st, 0);
    free(cmd), free(calib);
    return killed && WIFSIGNALED(st);
}

/* SIGKILL a quip compile after its second layer, --resume it: the same
 * bytes as one run without interruption. */
START_TEST(resume_after_kill)
{
    char *model = tu_shared("models/babyllama-105"), *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    char *a = tu_fmt("%s/x.ptq", d1), *b = tu_fmt("%s/x.ptq", d2);
    const char *fl = "--method quip --bits 4 --nsamples 16 --seqlen 64";
    tu_compile_ok(model, a, NULL, fl, 0);
    int killed = run_and_kill(model, b, fl, "layer_done");
    char *rs = tu_fmt("--resume %s", fl);
    tu_compile_ok(model, b, NULL, rs, 1);
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    printf("resume after SIGKILL (%s): %s\n", killed ? "killed" : "finished first",
           na == nb && !memcmp(x, y, na) ? "identical" : "DIFFERENT");
    ck_assert(na == nb && !memcmp(x, y, na));
    free(x), free(y), free(rs);
    tu_rmrf(d1), tu_rmrf(d2);
    free(model), free(d1), free(d2), free(a), free(b);
}
END_TEST

/* babyllama-105 copied into dir with one NaN in layer 0's q_proj. */
static void nan_model(const char *dir)
{
    static const char *const files[] = {"config.json", "tokenizer.json",
                                        "tokenizer_config.json", "model.safetensors"};
    for (int i = 0; i < 4; i++) {
        char *rel = tu_fmt("models/babyllama-105/%s", files[i]);
        char *src = tu_shared(rel);
        free(rel);
        char *dst = tu_fmt("%s/%s", dir, files[i]);
        size_t n;
        char *d = tu_read_file(src, &n);
        ck_assert_ptr_nonnull(d);
        if (i == 3) {
            uint64_t hl = 0;
            for (int k = 0; k < 8; k++) hl |= (uint64_t)(unsigned char)d[k] << (8 * k);
            char *hdr = strndup(d + 8, (size_t)hl);
            cJSON *j = cJSON_Parse(hdr);
            const cJSON *t = cJSON_GetObjectItem(j, "model.layers.0.self_attn.q_proj.weight");
            const cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
            size_t at = 8 + (size_t)hl + (size_t)cJSON_GetArrayItem(off, 0)->valuedouble + 2 * 5;
            d[at] = 0x00, d[at + 1] = 0x7e; /* F16 quiet NaN, little endian */
            cJSON_Delete(j);
            free(hdr);
        }
        ck_assert_int_eq(tu_write_file(dst, d, n), 0);
        free(d), free(src), free(dst);
    }
}

START_TEST(nan_weights_refused)
{
    char *tmp = tu_tmpdir(), *model = tu_fmt("%s/m", tmp), *out = tu_fmt("%s/x.ptq", tmp);
    char *calib = tu_shared("text/tinystories-calib.txt");
    char *mk = tu_fmt("mkdir -p '%s'", model);
    ck_assert_int_eq(system(mk), 0);
    nan_model(model);
    char *a = tu_fmt("compile '%s' -o '%s' --calib '%s' --method quip --bits 2 --nsamples 4 "
                     "--seqlen 32", model, out, calib);
    char *err = NULL;
    int rc = tu_ptqc(a, NULL, &err);
    printf("NaN weight: exit %d: %s", rc, err ? err : "");
    ck_assert_msg(rc == 4 || rc == 5, "exit %d", rc);
    ck_assert_ptr_nonnull(strstr(err, "q_proj"));
    tu_assert_no_output(out);
    free(err), free(a), free(mk);
    tu_rmrf(tmp);
    free(tmp), free(model), free(out), free(calib);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quip_e2e");
    TCase *t = tcase_create("quip_e2e");
    tcase_set_timeout(t, 900);
    tcase_add_test(t, e8p_table_is_the_books);
    tcase_add_test(t, decode_is_the_reference);
    tcase_add_test(t, gemv_within_bound_any_threads);
    tcase_add_test(t, check_refuses_bad_tensors);
    tcase_add_test(t, incoherence_keeps_the_logits);
    tcase_add_test(t, babyllama_end_to_end);
    tcase_add_test(t, bad_input);
    tcase_add_test(t, nan_weights_refused);
    tcase_add_test(t, resume_after_kill);
    suite_add_tcase(s, t);
    return tu_run(s);
}
