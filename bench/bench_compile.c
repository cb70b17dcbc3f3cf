/* bench_compile.c - `ptqc compile` of a synthetic 1B-shape checkpoint: wall
 * time split by step, and peak RSS against a bound.
 *
 * The bench writes a Llama checkpoint of Llama-3.2-1B shape (hidden 2048,
 * intermediate 5632, 16 heads, 4 KV heads, head_dim 128, vocab 32000, tied
 * embeddings) with --layers decoder layers of random F16 weights (std 0.02,
 * norms 1) into a temporary directory, with the llama-spm tokenizer (32000
 * pieces), and runs the built ptqc on it:
 *
 *   ptqc compile DIR -o DIR/out.ptq --method gptq --bits 4 --group 128
 *        --calib shared/text/wikitext-2-raw/wiki.test.raw
 *        --nsamples 32 --seqlen 512 --report DIR/report.json --progress=lines
 *
 * It prints the report's seconds by step and per layer, the report's memory
 * figures, and the child's peak RSS from wait4() (ru_maxrss; the compile's own
 * getrusage figure is in the report too).  While the child runs, its
 * /proc/PID/status is sampled every 100 ms so the peak can be split into
 * anonymous memory (RssAnon) and file pages (RssFile: the mmapped checkpoint).
 *
 * Bound (issue 3): peak RSS < 3 x one layer's FP32 weights + the calibration
 * activations + the Hessians, where
 *   layer FP32 weights = the seven linears' rows x cols x 4 bytes (plus the
 *                        two RMSNorm vectors);
 *   activations        = nsamples x seqlen x hidden x 2 bytes: the FP16
 *                        hidden states between layers that the engine keeps;
 *   Hessians           = what lib/compile/compile.c holds at once for the widest
 *                        linear (cols = intermediate, down_proj): the
 *                        ptq_hessian accumulator (double) and its per-chunk
 *                        ssyrk buffer (float), the finished H and GPTQ's
 *                        working copy Hw (float each): cols^2 x (8+4+4+4).
 * PASS when the wait4 peak RSS is below the bound.
 *
 * Usage: bench_compile [--ptqc PATH] [--shared DIR] [--layers N]
 *                      [--nsamples N] [--seqlen N] [--threads N] [--chunk-tokens N] [--keep]
 *   --ptqc: the ptqc binary (default src/ptqc, i.e. run from the build
 *   directory); --shared: default $PTQC_SHARED, else ../shared; --layers:
 *   default 4; --threads and --chunk-tokens: passed to ptqc compile (default:
 *   its own, = CPUs and 512); --keep: leave the temporary directory.
 * Exit status 0 PASS, 2 FAIL, 1 when something could not run.
 */
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "formats/safetensors.h"
#include "lib/base/err.h"
#include "lib/base/half.h"

enum { HIDDEN = 2048, INTER = 5632, HEADS = 16, KV_HEADS = 4, HEAD_DIM = 128, VOCAB = 32000 };

static double mib(double b) { return b / (1024.0 * 1024.0); }

/* dir/name into p (PATH_BUF bytes); the program stops on an over-long path. */
#define PATH_BUF 4096
static void join(char *p, const char *dir, const char *name)
{
    if (snprintf(p, PATH_BUF, "%s/%s", dir, name) >= PATH_BUF) {
        fprintf(stderr, "bench_compile: path too long: %s/%s\n", dir, name);
        exit(1);
    }
}

/* ---------------------------------------------------------------- the checkpoint */

/* n F16 values, approximately normal(0, std) (sum of 4 uniforms). */
static uint16_t *random_f16(size_t n, float std, uint64_t seed)
{
    uint16_t *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    ptq_rng s;
    ptq_rng_seed(&s, seed);
    const float k = std * sqrtf(3.0f); /* var of a sum of 4 U(-1,1) = 4/3 */
    for (size_t i = 0; i < n; i++) {
        uint64_t r = ptq_rng_next(&s);
        float u = 0;
        for (int j = 0; j < 4; j++) u += (float)((r >> (16 * j)) & 0xffff) / 32767.5f - 1.0f;
        p[i] = ptq_f32_to_f16(0.5f * k * u);
    }
    return p;
}

static uint16_t *ones_f16(size_t n)
{
    uint16_t *p = malloc(n * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = ptq_f32_to_f16(1.0f);
    return p;
}

static const char *const lin_names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
static const int lin_rows[7] = {HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, HIDDEN,
                                INTER,            INTER,               HIDDEN};
static const int lin_cols[7] = {HIDDEN, HIDDEN, HIDDEN, HEADS * HEAD_DIM, HIDDEN, HIDDEN, INTER};

static int write_text(const char *dir, const char *name, const char *text)
{
    char p[PATH_BUF];
    join(p, dir, name);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb");
    if (!a) return -1;
    FILE *b = fopen(to, "wb");
    if (!b) {
        fclose(a);
        return -1;
    }
    char buf[65536];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) bad = 1;
    bad |= ferror(a);
    fclose(a);
    bad |= fclose(b) != 0;
    return bad ? -1 : 0;
}

static int write_checkpoint(const char *dir, const char *shared, int layers)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": 2048,\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 10000.0,\n  \"rope_scaling\": null,\n"
             "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"tie_word_embeddings\": true,\n"
             "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"hidden_act\": \"silu\",\n"
             "  \"torch_dtype\": \"float16\"\n}\n",
             HIDDEN, INTER, layers, HEADS, KV_HEADS, HEAD_DIM, VOCAB);
    if (write_text(dir, "config.json", cfg)) return -1;
    static const char *const tokf[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char t0[PATH_BUF], a[PATH_BUF], b[PATH_BUF];
        join(t0, shared, "tokenizers/llama-spm");
        join(a, t0, tokf[i]);
        join(b, dir, tokf[i]);
        if (copy_file(a, b)) {
            fprintf(stderr, "bench_compile: cannot copy %s to %s\n", a, b);
            return -1;
        }
    }
    int nt = 2 + 9 * layers;
    ptq_st_wtensor *t = calloc((size_t)nt, sizeof *t);
    char (*names)[96] = calloc((size_t)nt, sizeof *names);
    void **bufs = calloc((size_t)nt, sizeof *bufs);
    int rc = (!t || !names || !bufs) ? -1 : 0;
    int k = 0;
    uint64_t seed = 1;
#define ADD(nm, r, c, mem)                                                                        \
    do {                                                                                           \
        snprintf(names[k], sizeof names[k], "%s", nm);                                             \
        t[k].name = names[k];                                                                      \
        t[k].dtype = PTQ_DT_F16;                                                                   \
        t[k].ndim = (r) ? 2 : 1;                                                                   \
        t[k].shape[0] = (r) ? (r) : (c);                                                           \
        t[k].shape[1] = (r) ? (c) : 0;                                                             \
        bufs[k] = (mem);                                                                           \
        t[k].data = bufs[k];                                                                       \
        if (!bufs[k]) rc = -1;                                                                     \
        k++;                                                                                       \
    } while (0)
    if (!rc) ADD("model.embed_tokens.weight", VOCAB, HIDDEN, random_f16((size_t)VOCAB * HIDDEN, 1.0f, seed++));
    for (int l = 0; l < layers && !rc; l++) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, 0, HIDDEN, ones_f16(HIDDEN));
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, 0, HIDDEN, ones_f16(HIDDEN));
        for (int w = 0; w < 7 && !rc; w++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin_names[w]);
            ADD(nm, lin_rows[w], lin_cols[w],
                random_f16((size_t)lin_rows[w] * lin_cols[w], 0.02f, seed++));
        }
    }
    if (!rc) ADD("model.norm.weight", 0, HIDDEN, ones_f16(HIDDEN));
#undef ADD
    if (!rc) {
        char p[PATH_BUF];
        join(p, dir, "model.safetensors");
        ptq_err e;
        memset(&e, 0, sizeof e);
        if (ptq_st_write(p, t, k, &e)) {
            fprintf(stderr, "bench_compile: %s\n", e.msg);
            rc = -1;
        }
    }
    for (int i = 0; i < k; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- the child */

typedef struct rss_peak {
    long vm_hwm_kb;             /* VmHWM at the last sample */
    long rss_kb, anon_kb, file_kb; /* at the sample with the largest VmRSS */
} rss_peak;

static long status_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void sample_status(pid_t pid, rss_peak *pk)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    long hwm = status_field(buf, "VmHWM:"), rss = status_field(buf, "VmRSS:");
    if (hwm > pk->vm_hwm_kb) pk->vm_hwm_kb = hwm;
    if (rss > pk->rss_kb) {
        pk->rss_kb = rss;
        pk->anon_kb = status_field(buf, "RssAnon:");
        pk->file_kb = status_field(buf, "RssFile:");
    }
}

/* Run argv; the child's exit status into *status and its rusage into *ru. */
static int run_child(char *const argv[], int *status, struct rusage *ru, rss_peak *pk)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "bench_compile: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        pid_t r = wait4(pid, status, WNOHANG, ru);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -1;
        sample_status(pid, pk);
        usleep(100000);
    }
}

/* ---------------------------------------------------------------- the report */

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n > 0 ? malloc((size_t)n + 1) : NULL;
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
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void rm_tree(const char *dir)
{
    static const char *const f[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                    "model.safetensors", "out.ptq", "report.json"};
    char p[PATH_BUF];
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        join(p, dir, f[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    const char *ptqc = "src/ptqc", *shared = getenv("PTQC_SHARED"), *threads = NULL, *chunk = NULL;
    if (!shared || !*shared) shared = "../shared";
    int layers = 4, nsamples = 32, seqlen = 512, keep = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ptqc") && i + 1 < argc) ptqc = argv[++i];
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nsamples") && i + 1 < argc) nsamples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seqlen") && i + 1 < argc) seqlen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--chunk-tokens") && i + 1 < argc) chunk = argv[++i];
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else {
            fprintf(stderr, "usage: bench_compile [--ptqc PATH] [--shared DIR] [--layers N] "
                            "[--nsamples N] [--seqlen N] [--threads N] [--chunk-tokens N] [--keep]\n");
            return 1;
        }
    }
    if (layers < 1 || nsamples < 1 || seqlen < 2 || seqlen > 2048) {
        fprintf(stderr, "bench_compile: --layers >= 1, --nsamples >= 1, --seqlen 2..2048\n");
        return 1;
    }
    char ptqc_abs[PATH_MAX];
    if (!realpath(ptqc, ptqc_abs)) {
        fprintf(stderr, "bench_compile: %s: %s (give --ptqc)\n", ptqc, strerror(errno));
        return 1;
    }
    const char *td = getenv("TMPDIR");
    char dir[PATH_BUF];
    join(dir, td && *td ? td : "/tmp", "bench_compile-XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_compile: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    double t0 = ptq_now();
    if (write_checkpoint(dir, shared, layers)) {
        if (!keep) rm_tree(dir);
        return 1;
    }
    printf("checkpoint: %d layers of hidden %d, intermediate %d, heads %d/%d, head_dim %d, vocab %d, "
           "F16, written in %.1f s to %s\n",
           layers, HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, VOCAB, ptq_now() - t0, dir);
    fflush(stdout);

    char calib[PATH_BUF], out[PATH_BUF], rep[PATH_BUF], ns[16], sl[16];
    join(calib, shared, "text/wikitext-2-raw/wiki.test.raw");
    join(out, dir, "out.ptq");
    join(rep, dir, "report.json");
    snprintf(ns, sizeof ns, "%d", nsamples);
    snprintf(sl, sizeof sl, "%d", seqlen);
    char *av[32];
    int n = 0;
    char *fixed[] = {ptqc_abs, "compile", dir,     "-o",     out,        "--method", "gptq",
                     "--bits", "4",       "--group", "128",  "--calib",  calib,      "--nsamples",
                     ns,       "--seqlen", sl,       "--report", rep,    "--progress=lines"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) av[n++] = fixed[i];
    if (threads) {
        av[n++] = "--threads";
        av[n++] = (char *)threads;
    }
    if (chunk) {
        av[n++] = "--chunk-tokens";
        av[n++] = (char *)chunk;
    }
    av[n] = NULL;
    printf("run:");
    for (int i = 0; i < n; i++) printf(" %s", av[i]);
    printf("\n");
    fflush(stdout);

    int status = 0;
    struct rusage ru;
    rss_peak pk;
    memset(&ru, 0, sizeof ru);
    memset(&pk, 0, sizeof pk);
    t0 = ptq_now();
    if (run_child(av, &status, &ru, &pk)) {
        fprintf(stderr, "bench_compile: cannot run %s: %s\n", ptqc_abs, strerror(errno));
        if (!keep) rm_tree(dir);
        return 1;
    }
    double wall = ptq_now() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "bench_compile: ptqc compile failed (status %d)\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
        if (!keep) rm_tree(dir);
        return 1;
    }
    cJSON *r = read_json(rep);
    if (!r) {
        fprintf(stderr, "bench_compile: %s: cannot read the report\n", rep);
        if (!keep) rm_tree(dir);
        return 1;
    }
    const cJSON *sec = cJSON_GetObjectItem(r, "seconds");
    const cJSON *mem = cJSON_GetObjectItem(r, "memory_bytes");
    printf("\nwall %.1f s (ptqc compile, measured here); report seconds by step:\n", wall);
    const cJSON *x;
    cJSON_ArrayForEach(x, sec) printf("  %-16s %8.1f\n", x->string, x->valuedouble);
    printf("per layer (s):");
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "layers")) printf(" %.1f", jnum(x, "seconds"));
    printf("\nper linear, layer 0 (s):");
    const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "layers"), 0);
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(l0, "linears")) printf(" %.1f", jnum(x, "seconds"));
    printf("\nGPTQ<RTN relative output error: %.0f/%.0f linears, mean error %.3e\n",
           jnum(cJSON_GetObjectItem(r, "summary"), "gptq_below_rtn"),
           jnum(cJSON_GetObjectItem(r, "summary"), "gptq_compared"),
           jnum(cJSON_GetObjectItem(r, "summary"), "mean_rel_output_error"));

    /* the bound */
    double wl = 0;
    for (int w = 0; w < 7; w++) wl += (double)lin_rows[w] * lin_cols[w] * 4.0;
    wl += 2.0 * HIDDEN * 4.0;
    double acts = (double)nsamples * seqlen * HIDDEN * 2.0;
    double hess = (double)INTER * INTER * (8.0 + 4.0 + 4.0 + 4.0);
    double bound = 3.0 * wl + acts + hess;
    double peak = (double)ru.ru_maxrss * 1024.0;
    printf("\nreport memory_bytes (MiB):");
    cJSON_ArrayForEach(x, mem) {
        if (cJSON_IsNumber(x)) printf(" %s %.1f", x->string, mib(x->valuedouble));
        else printf(" %s %s", x->string, cJSON_IsTrue(x) ? "true" : "false");
    }
    printf("\npeak RSS (MiB): wait4 ru_maxrss %.1f; /proc samples: VmHWM %.1f, at the largest "
           "VmRSS sample %.1f = RssAnon %.1f + RssFile %.1f\n",
           mib(peak), pk.vm_hwm_kb / 1024.0, pk.rss_kb / 1024.0, pk.anon_kb / 1024.0,
           pk.file_kb / 1024.0);
    printf("bound (MiB): 3 x layer FP32 weights %.1f (one layer %.1f) + activations %.1f "
           "(%d x %d x %d x 2 B) + Hessians %.1f (%d^2 x (8+4+4+4) B) = %.1f\n",
           mib(3 * wl), mib(wl), mib(acts), nsamples, seqlen, HIDDEN, mib(hess), INTER, mib(bound));
    int pass = peak < bound;
    printf("peak RSS / bound = %.3f  %s\n", peak / bound, pass ? "PASS" : "FAIL");
    cJSON_Delete(r);
    if (!keep) rm_tree(dir);
    return pass ? 0 : 2;
}
