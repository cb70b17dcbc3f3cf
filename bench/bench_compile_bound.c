/* bench_compile_bound.c - `ptqc compile` of a real model against a lower
 * bound of BLAS time for the same work, and its peak RSS.
 *
 * Runs the built ptqc (a child, timed, its ru_maxrss from wait4):
 *
 *   ptqc compile MODEL -o TMP/out.ptq --method M --bits 4 --group 128
 *        --calib CALIB --nsamples N --seqlen L --seed 1 --threads P
 *        --report TMP/report.json --quiet
 *
 * prints the report's seconds by step, then measures in this process, on
 * the same P workers (lib/base/par.h, single-threaded OpenBLAS, as the
 * compile runs), the BLAS calls the compile cannot do without:
 *
 *   forward   per chunk of C = 512 / L samples (the compile's --chunk-tokens
 *             default): the sgemm of q, k, v, o, gate, up, down over C*L rows,
 *             and per (sample, head, block of 128 query rows [r0, r1)) the
 *             two attention sgemms [r1 - r0, r1, hd] and [r1 - r0, hd, r1]
 *             lib/model/forward.c makes (the causal triangle by blocks);
 *             no lm_head (a compile never needs the logits).  One forward of
 *             every layer over the N*L tokens;
 *   Hessians  per chunk the ssyrk [cols, C*L] of the four group inputs
 *             (cols = hidden, heads*hd, hidden, intermediate);
 *   GPTQ      per linear of rows x cols: 2 rows cols^2 flops of the lazy
 *             block updates + 2/3 cols^3 of the Cholesky (potrf + trtri), at
 *             the sgemm GFLOP/s of one worker times P.
 *
 * The forward and Hessian calls are timed for real (every worker running
 * one chunk at a time, as the compile does; median of 3 rounds), the bound
 * = the time of ceil(chunks / P) rounds x layers.  ratio = compile wall /
 * bound (the target: <= 2.5).
 *
 * Usage: bench_compile_bound [--ptqc PATH] [--shared DIR] [--model PATH]
 *          [--calib FILE] [--method M] [--nsamples N] [--seqlen L]
 *          [--threads P] [--keep]
 *   defaults: src/ptqc, $PTQC_SHARED or ../shared, the SmolLM2-135M GGUF of
 *   shared/models/smollm2-135m, shared/text/wikitext-2-raw/wiki.test.raw,
 *   gptq, 8 x 512, 2 workers.  The real measurement: --nsamples 128
 *   --seqlen 2048.
 * Exit status 0 when the ratio is <= 2.5, 2 when above, 1 when something
 * could not run.
 */
#include <cJSON.h>
#include <cblas.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "formats/checkpoint.h"
#include "lib/base/err.h"
#include "lib/base/par.h"
#include "lib/model/forward_ops.h"

#define CHUNK_TOKENS 512
#define MAXP 64

typedef struct args {
    const char *ptqc, *shared, *model, *calib, *method;
    int nsamples, seqlen, threads, keep;
} args;

static int parse(int argc, char **argv, args *a)
{
    a->ptqc = "src/ptqc";
    a->shared = getenv("PTQC_SHARED") ? getenv("PTQC_SHARED") : "../shared";
    a->model = a->calib = NULL;
    a->method = "gptq";
    a->nsamples = 8, a->seqlen = 512, a->threads = 2, a->keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--keep")) { a->keep = 1; continue; }
        if (!v) return -1;
        if (!strcmp(k, "--ptqc")) a->ptqc = v;
        else if (!strcmp(k, "--shared")) a->shared = v;
        else if (!strcmp(k, "--model")) a->model = v;
        else if (!strcmp(k, "--calib")) a->calib = v;
        else if (!strcmp(k, "--method")) a->method = v;
        else if (!strcmp(k, "--nsamples")) a->nsamples = atoi(v);
        else if (!strcmp(k, "--seqlen")) a->seqlen = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else return -1;
        i++;
    }
    if (a->nsamples < 1 || a->seqlen < 1 || a->threads < 1 || a->threads > MAXP) return -1;
    return 0;
}

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cJSON *j = NULL;
    if (b && fread(b, 1, (size_t)n, f) == (size_t)n) {
        b[n] = 0;
        j = cJSON_Parse(b);
    }
    free(b);
    fclose(f);
    return j;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

/* ---------------------------------------------------------------- the bound */

typedef struct shapes {
    int D, NI, qd, kvd, hd, nh, L, ntok, layers;
} shapes;

/* One worker's chunk: the forward sgemms or the Hessian ssyrks. */
typedef struct work {
    const shapes *s;
    int what;           /* 0 forward, 1 Hessians */
    int M;              /* rows of the chunk */
    float *x, *y, *W, *S, *H;
} work;

static void sg(int M, int N, int K, const float *A, const float *B, float *C)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
}

static void run_work(void *arg)
{
    work *w = arg;
    const shapes *s = w->s;
    const int M = w->M;
    if (w->what == 0) {
        sg(M, s->qd, s->D, w->x, w->W, w->y);  /* q */
        sg(M, s->kvd, s->D, w->x, w->W, w->y); /* k */
        sg(M, s->kvd, s->D, w->x, w->W, w->y); /* v */
        for (int b = 0; b < M / s->L; b++)
            for (int h = 0; h < s->nh; h++)
                for (int r0 = 0; r0 < s->L; r0 += PTQ_ATT_ROWS) {
                    int r1 = r0 + PTQ_ATT_ROWS < s->L ? r0 + PTQ_ATT_ROWS : s->L, m = r1 - r0;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, s->hd, 1.0f,
                                w->x, s->qd, w->x, s->kvd, 0.0f, w->S, r1);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, s->hd, r1, 1.0f,
                                w->S, r1, w->x, s->kvd, 0.0f, w->y, s->qd);
                }
        sg(M, s->D, s->qd, w->x, w->W, w->y); /* o */
        sg(M, s->NI, s->D, w->x, w->W, w->y);  /* gate */
        sg(M, s->NI, s->D, w->x, w->W, w->y);  /* up */
        sg(M, s->D, s->NI, w->x, w->W, w->y);  /* down */
    } else {
        const int cols[4] = {s->D, s->qd, s->D, s->NI};
        for (int g = 0; g < 4; g++)
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols[g], M, 1.0f, w->x, cols[g],
                        0.0f, w->H, cols[g]);
    }
}

/* Seconds of one round of P workers each doing `what` on a chunk of M rows
 * (median of 3, after one warm-up). */
static double round_time(const shapes *s, int what, int M, int P)
{
    work w[MAXP];
    size_t mx = (size_t)(s->NI > s->qd ? s->NI : s->qd);
    if ((size_t)s->D > mx) mx = (size_t)s->D;
    for (int i = 0; i < P; i++) {
        w[i] = (work){s, what, M, NULL, NULL, NULL, NULL, NULL};
        w[i].x = calloc((size_t)M * mx, sizeof(float));
        w[i].y = calloc((size_t)M * mx, sizeof(float));
        w[i].W = calloc(mx * mx, sizeof(float));
        w[i].S = calloc((size_t)s->L * s->L, sizeof(float));
        w[i].H = calloc(mx * mx, sizeof(float));
        if (!w[i].x || !w[i].y || !w[i].W || !w[i].S || !w[i].H) {
            fprintf(stderr, "bench_compile_bound: out of memory\n");
            exit(1);
        }
    }
    double t[3];
    ptq_par_run(P, run_work, w, sizeof *w);
    for (int r = 0; r < 3; r++) {
        double t0 = ptq_now();
        ptq_par_run(P, run_work, w, sizeof *w);
        t[r] = ptq_now() - t0;
    }
    for (int i = 0; i < P; i++) free(w[i].x), free(w[i].y), free(w[i].W), free(w[i].S), free(w[i].H);
    return bench_median(t, 3);
}

/* GFLOP/s of one worker's sgemm [512, 1536, 576] while P run. */
static double sgemm_gflops(const shapes *s, int P)
{
    shapes g = *s;
    g.nh = 0; /* the linears only */
    double t = round_time(&g, 0, CHUNK_TOKENS, P);
    double fl = 2.0 * CHUNK_TOKENS * ((double)s->D * (s->qd + 2.0 * s->kvd) + (double)s->qd * s->D +
                                      3.0 * s->D * s->NI);
    return fl / t / 1e9;
}

static int find_model(const args *a, char *buf, size_t n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/smollm2-135m", a->shared);
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    int rc = -1;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".gguf")) {
            rc = snprintf(buf, n, "%s/%s", dir, de->d_name) < (int)n ? 0 : -1;
            break;
        }
    closedir(d);
    return rc;
}

/* ---------------------------------------------------------------- the run */

static int run_compile(const args *a, const char *model, const char *calib, const char *dir,
                       double *wall, long *maxrss_kb)
{
    char out[4200], rep[4200], ns[16], sl[16], th[16];
    snprintf(out, sizeof out, "%s/out.ptq", dir);
    snprintf(rep, sizeof rep, "%s/report.json", dir);
    snprintf(ns, sizeof ns, "%d", a->nsamples);
    snprintf(sl, sizeof sl, "%d", a->seqlen);
    snprintf(th, sizeof th, "%d", a->threads);
    char *argv[] = {(char *)a->ptqc, "compile", (char *)model, "-o", out, "--method",
                    (char *)a->method, "--bits", "4", "--group", "128", "--calib", (char *)calib,
                    "--nsamples", ns, "--seqlen", sl, "--seed", "1", "--threads", th, "--report",
                    rep, "--quiet", NULL};
    printf("run:");
    for (int i = 0; argv[i]; i++) printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
    double t0 = ptq_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) return -1;
    *wall = ptq_now() - t0;
    *maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void print_steps(const cJSON *r)
{
    const cJSON *sec = cJSON_GetObjectItem(r, "seconds"), *x;
    printf("report seconds by step:\n");
    cJSON_ArrayForEach(x, sec) printf("  %-16s %9.2f\n", x->string, x->valuedouble);
}

int main(int argc, char **argv)
{
    args a;
    if (parse(argc, argv, &a)) {
        fprintf(stderr, "usage: bench_compile_bound [--ptqc PATH] [--shared DIR] [--model PATH] "
                        "[--calib FILE] [--method M] [--nsamples N] [--seqlen L] [--threads P] "
                        "[--keep]\n");
        return 1;
    }
    char model[4096], calib[4096];
    if (a.model) snprintf(model, sizeof model, "%s", a.model);
    else if (find_model(&a, model, sizeof model)) {
        fprintf(stderr, "bench_compile_bound: no .gguf under %s/models/smollm2-135m\n", a.shared);
        return 1;
    }
    if (a.calib) snprintf(calib, sizeof calib, "%s", a.calib);
    else snprintf(calib, sizeof calib, "%s/text/wikitext-2-raw/wiki.test.raw", a.shared);
    ptq_checkpoint ck;
    ptq_err e;
    if (ptq_ckpt_open(&ck, model, &e)) {
        fprintf(stderr, "bench_compile_bound: %s\n", e.msg);
        return 1;
    }
    const ptq_config *c = &ck.cfg;
    shapes s = {c->hidden, c->intermediate, c->n_heads * c->head_dim, c->n_kv_heads * c->head_dim,
                c->head_dim, c->n_heads, a.seqlen, a.nsamples * a.seqlen, c->n_layers};
    ptq_ckpt_close(&ck);
    char dir[] = "/tmp/bench_compile_bound-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    double wall;
    long rss;
    int rc = run_compile(&a, model, calib, dir, &wall, &rss);
    char rp[4200];
    snprintf(rp, sizeof rp, "%s/report.json", dir);
    cJSON *r = rc ? NULL : read_json(rp);
    if (!r) {
        fprintf(stderr, "bench_compile_bound: the compile failed (see above)\n");
        return 1;
    }
    print_steps(r);
    const cJSON *sec = cJSON_GetObjectItem(r, "seconds");
    /* the bound */
    int P = a.threads, spc = CHUNK_TOKENS / a.seqlen > 0 ? CHUNK_TOKENS / a.seqlen : 1;
    if (spc > a.nsamples) spc = a.nsamples;
    int nchunks = (a.nsamples + spc - 1) / spc, rounds = (nchunks + P - 1) / P;
    int M = spc * a.seqlen;
    int blas = ptq_blas_single();
    double t_fwd = round_time(&s, 0, M, P) * rounds * s.layers;
    double t_hes = round_time(&s, 1, M, P) * rounds * s.layers;
    double gf = sgemm_gflops(&s, P);
    ptq_blas_restore(blas);
    const int rows[7] = {s.qd, s.kvd, s.kvd, s.D, s.NI, s.NI, s.D};
    const int cols[7] = {s.D, s.D, s.D, s.qd, s.D, s.D, s.NI};
    double fl = 0;
    for (int i = 0; i < 7; i++)
        fl += 2.0 * rows[i] * (double)cols[i] * cols[i] + 2.0 / 3.0 * (double)cols[i] * cols[i] * cols[i];
    double t_gptq = fl * s.layers / (gf * 1e9 * P);
    double bound = t_fwd + t_hes + t_gptq, total = jnum(sec, "total");
    printf("\nmodel: %s: %d layers, hidden %d, intermediate %d, heads %d/%d x %d\n", model,
           s.layers, s.D, s.NI, s.nh, s.kvd / s.hd, s.hd);
    printf("tokens: %d x %d = %d; chunks of %d samples: %d rounds of %d workers\n", a.nsamples,
           a.seqlen, s.ntok, spc, rounds, P);
    printf("sgemm GFLOP/s per worker (%d running): %.1f\n", P, gf);
    printf("\n%-28s %10s %10s\n", "step", "compile s", "bound s");
    printf("%-28s %10.2f %10.2f\n", "forward (capture+forward)",
           jnum(sec, "capture_hessian") - jnum(sec, "hessian") + jnum(sec, "forward"), t_fwd);
    printf("%-28s %10.2f %10.2f\n", "Hessians", jnum(sec, "hessian"), t_hes);
    printf("%-28s %10.2f %10.2f\n", "quantize (GPTQ)", jnum(sec, "quantize"), t_gptq);
    printf("%-28s %10.2f %10s\n", "error", jnum(sec, "error"), "-");
    printf("%-28s %10.2f %10s\n", "awq", jnum(sec, "awq"), "-");
    printf("%-28s %10.2f %10s\n", "write", jnum(sec, "write"), "-");
    printf("%-28s %10.2f %10.2f\n", "total (report)", total, bound);
    printf("\nwall %.2f s; ratio total / bound = %.2f (target <= 2.5)\n", wall, total / bound);
    printf("peak RSS (wait4 ru_maxrss): %.1f MiB\n", rss / 1024.0);
    cJSON_Delete(r);
    if (!a.keep) {
        char p[4200];
        snprintf(p, sizeof p, "%s/out.ptq", dir);
        unlink(p);
        unlink(rp);
        rmdir(dir);
    }
    return total / bound <= 2.5 ? 0 : 2;
}
