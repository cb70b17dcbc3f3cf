/* bench_decode.c - CPU decode and eval speed of a real model (issue 9,
 * "Speed and memory"); built by `make bench`, never run by make check.
 *
 *   bench/bench_decode --model SRC [--model BUNDLE ...] [--tokens N] [--reps R]
 *                      [--threads T] [--eval-text FILE --ptqc PATH [--ctx 512]]
 *   bench/bench_decode --kernel BITS [--reps R] [--threads T]
 *
 * Decode: each --model (a source directory / .gguf, or a .ptq bundle) is
 * opened as `ptqc run --device cpu` opens it (lib/runtime/runtime_cpu.h's
 * ptq_model_src) and decodes N greedy tokens after a BOS, batch 1, through
 * ptq_gen_step with --threads workers; tokens/s is the median of R runs.
 * The bound: bytes read per token / memcpy bandwidth, both from this run.
 * Bytes per token = the payload bytes of every tensor the decoder multiplies
 * by at batch 1 (the packed or dense views the provider hands, through the
 * format table's payload_bytes; a widened linear as its float32 copy) + the
 * lm_head + one embedding row + the KV cache read at the mean position.
 * memcpy bandwidth = bytes copied per second of a 256 MiB memcpy (median of
 * 5; each byte is read once and written once).  Also a read bandwidth (a
 * 256 MiB float sum in 32 lanes on one thread, median of 5), the ceiling a
 * GEMV that only reads can reach, and the bound against it.
 *
 * Kernels (--kernel BITS, no model needed): SmolLM2's 7 linears x 30 layers
 * as synthetic tensors (random codes, group 128 with its short last group
 * of 576 % 128 = 64, asymmetric zeros) multiplied one after the other as a
 * token does, by ptq_gemv_int (the fast path) and by the dense F16 GEMV of
 * the format table on the same shapes; Gweights/s and GB/s of payload read,
 * median of R passes, with --threads workers (fork/join included, as in the
 * decoder).  Also each int pass's result against ptq_gemv_int_ref.
 *
 * Eval: `PTQC eval SRC --text FILE --ctx C --threads T --json` timed as one
 * process (median of R), the GEMM flops of its windows (2 x rows x cols per
 * token per linear and the lm_head; attention counted apart) divided by its
 * wall time, over OpenBLAS sgemm's GFLOP/s on exactly those shapes (M = C)
 * timed here with the same thread count.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "lib/model/generate.h"
#include "lib/qfmt/gemv_int.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"
#include "lib/runtime/runtime_cpu.h"

#define MAX_MODELS 4

typedef struct opts {
    const char *models[MAX_MODELS];
    int nmodels, tokens, reps, threads, ctx, kbits;
    const char *text, *ptqc;
} opts;

static double memcpy_gbs(void)
{
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) return 0;
    memset(a, 1, n);
    memset(b, 2, n);
    double t[5];
    for (int r = 0; r < 5; r++) {
        double t0 = ptq_now();
        memcpy(r % 2 ? a : b, r % 2 ? b : a, n);
        t[r] = ptq_now() - t0;
    }
    free(a);
    free(b);
    return (double)n / bench_median(t, 5) / 1e9;
}

static double read_gbs(void)
{
    size_t n = ((size_t)256 << 20) / sizeof(float);
    float *a = malloc(n * sizeof(float)), sink = 0;
    if (!a) return 0;
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double t[5];
    for (int r = 0; r < 5; r++) {
        float acc[32] = {0};
        double t0 = ptq_now();
        for (size_t i = 0; i < n; i += 32)
            for (int j = 0; j < 32; j++) acc[j] += a[i + j];
        t[r] = ptq_now() - t0;
        for (int j = 0; j < 32; j++) sink += acc[j];
    }
    free(a);
    if (sink == 1.0f) printf(" ");
    return (double)n * sizeof(float) / bench_median(t, 5) / 1e9;
}

static double tensor_bytes(const ptq_qtensor *q)
{
    const ptq_qfmt *f = ptq_qfmt_get(q->format);
    double s = 0;
    for (int i = 0; i < PTQ_QFMT_MAX_PAYLOADS && f->payloads[i].name; i++)
        if (ptq_qfmt_payload_ptr(f, q, i)) s += (double)f->payload_bytes(q, i);
    return s;
}

/* Bytes the batch-1 decoder reads per token (see the top). */
static int bytes_per_token(const ptq_weights *w, int tokens, double *out, ptq_err *e)
{
    const ptq_config *c = w->cfg;
    ptq_layer_w lw;
    int rc = ptq_layer_w_alloc(&lw, c, e);
    if (rc) return rc;
    double s = 0;
    lw.want_packed = 1;
    lw.threads = 1;
    for (int l = 0; l < c->n_layers && !rc; l++) {
        if ((rc = w->layer(w->ctx, l, &lw, e))) break;
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(c, i, &r, &k);
            s += lw.q[i] ? tensor_bytes(lw.q[i]) : 4.0 * r * k;
        }
        s += 2.0 * 4 * c->hidden; /* norms */
    }
    ptq_layer_w_free(&lw);
    if (rc) return rc;
    const ptq_qtensor *h = NULL;
    float *norm = malloc(sizeof(float) * c->hidden);
    if (!norm) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (w->head_packed && (rc = w->head_packed(w->ctx, norm, &h, e))) {
        free(norm);
        return rc;
    }
    free(norm);
    s += h ? tensor_bytes(h) : 4.0 * c->vocab * c->hidden;
    s += 2.0 * c->hidden;                                           /* embedding row */
    s += 2.0 * 4 * c->n_layers * (tokens / 2.0) * c->n_kv_heads * c->head_dim; /* KV */
    *out = s;
    return PTQ_OK;
}

/* One greedy decode of n tokens after BOS; seconds for the n steps after the first. */
static int decode_once(const ptq_weights *w, int bos, int n, int threads, double *sec,
                       int32_t *ids, ptq_err *e)
{
    const ptq_config *c = w->cfg;
    ptq_gen *g;
    int rc = ptq_gen_create(&g, c, 1, n + 1, e);
    if (rc) return rc;
    ptq_gen_set_threads(g, threads);
    float *lg = malloc(sizeof(float) * c->vocab);
    int32_t t = bos;
    double t0 = 0;
    for (int p = 0; p <= n && !rc && lg; p++) {
        if (p == 1) t0 = ptq_now(); /* the first step loads the head */
        if ((rc = ptq_gen_step(g, w, &t, p, lg, e))) break;
        int am = 0;
        for (int i = 1; i < c->vocab; i++)
            if (lg[i] > lg[am]) am = i;
        ids[p] = t = am;
    }
    *sec = ptq_now() - t0;
    if (!lg) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    free(lg);
    ptq_gen_free(g);
    return rc;
}

static int bench_model(const char *path, const opts *o, double bw, double rbw, ptq_err *e)
{
    ptq_model_src s;
    int rc = ptq_model_src_open(&s, path, e);
    if (rc) return rc;
    const ptq_config *c = s.w.cfg;
    double bytes = 0, t[16];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(o->tokens + 1)), first[8] = {0};
    rc = ids ? bytes_per_token(&s.w, o->tokens, &bytes, e) : ptq_fail(e, PTQ_ENOMEM, "oom");
    for (int r = 0; r < o->reps && !rc; r++) {
        rc = decode_once(&s.w, c->bos_id >= 0 ? c->bos_id : 0, o->tokens - 1, o->threads,
                         &t[r], ids, e);
        if (!rc && r == 0) memcpy(first, ids, sizeof first);
        t[r] = (o->tokens - 1) / t[r];
    }
    if (!rc) {
        double tps = bench_median(t, o->reps), bound = bw * 1e9 / bytes, rb = rbw * 1e9 / bytes;
        printf("decode %s: %.1f MB/token, %.2f tokens/s (median of %d x %d); memcpy bound %.2f "
               "tokens/s: %.2f of it; read bound %.2f tokens/s: %.2f of it; first ids %d %d %d "
               "%d\n", path, bytes / 1e6, tps, o->reps, o->tokens - 1, bound, tps / bound, rb,
               tps / rb, (int)first[1], (int)first[2], (int)first[3], (int)first[4]);
    }
    free(ids);
    ptq_model_src_close(&s);
    return rc;
}

/* ---- --kernel: the token's 210 linears as synthetic tensors (see the top). */
#define KL (7 * 30)

static void kernel_shapes(int sh[KL][2])
{
    static const int one[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576},
                                  {1536, 576}, {1536, 576}, {576, 1536}};
    for (int i = 0; i < KL; i++) sh[i][0] = one[i % 7][0], sh[i][1] = one[i % 7][1];
}

static int kernel_make(ptq_qtensor *q, ptq_qtensor *d, int rows, int cols, int bits,
                       ptq_rng *rng)
{
    memset(q, 0, sizeof *q);
    memset(d, 0, sizeof *d);
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    int ng = ptq_pack_ngroups(cols, 128);
    *q = (ptq_qtensor){.format = PTQ_QF_INT, .rows = rows, .cols = cols, .bits = bits,
                       .group = 128, .ngroups = ng};
    q->qweight = calloc(rw * rows, 4);
    q->scales = malloc(2 * (size_t)rows * ng);
    q->zeros = malloc((size_t)rows * ng);
    *d = (ptq_qtensor){.format = PTQ_QF_DENSE, .rows = rows, .cols = cols, .dtype = PTQ_DT_F16};
    d->data = malloc(2 * (size_t)rows * cols);
    if (!q->qweight || !q->scales || !q->zeros || !d->data) return 1;
    uint16_t *dh = d->data;
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < cols; k++) {
            ptq_pack_set(q->qweight + r * rw, k, bits, (uint32_t)(ptq_rng_next(rng) >> 40) & ((1u << bits) - 1u));
            dh[(size_t)r * cols + k] = ptq_f32_to_f16((float)(ptq_rng_uniform(rng) - 0.5) * 0.1f);
        }
        for (int g = 0; g < ng; g++) {
            q->scales[(size_t)r * ng + g] = ptq_f32_to_f16(0.001f + 0.01f * (float)ptq_rng_uniform(rng));
            q->zeros[(size_t)r * ng + g] = (uint8_t)((ptq_rng_next(rng) >> 40) & ((1u << bits) - 1u));
        }
    }
    return 0;
}

static int bench_kernel(const opts *o, double bw, ptq_err *e)
{
    int sh[KL][2];
    kernel_shapes(sh);
    ptq_qtensor *q = calloc(2 * KL, sizeof *q), *d = q + KL;
    float *x = malloc(sizeof(float) * 1536), *y = malloc(sizeof(float) * 1536 * 2);
    if (!q || !x || !y) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    ptq_rng rng;
    ptq_rng_seed(&rng, 3);
    for (int i = 0; i < 1536; i++) x[i] = bench_normal(&rng);
    double wts = 0, qb = 0, db = 0, worst = 0;
    int rc = 0;
    for (int i = 0; i < KL && !rc; i++) {
        rc = kernel_make(&q[i], &d[i], sh[i][0], sh[i][1], o->kbits, &rng);
        wts += (double)sh[i][0] * sh[i][1];
        qb += tensor_bytes(&q[i]);
        db += tensor_bytes(&d[i]);
    }
    if (rc) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    const ptq_qfmt *df = ptq_qfmt_get(PTQ_QF_DENSE);
    static const int paths[3] = {PTQ_GEMV_PORTABLE, PTQ_GEMV_AVX2, PTQ_GEMV_AVX512};
    static const char *pname[3] = {"portable", "AVX2+FMA", "AVX-512"};
    double ti[3][16], td[16];
    for (int r = 0; r < o->reps && !rc; r++) { /* the loops alternate, one pass each */
        for (int p = 0; p < 3 && !rc; p++) {
            double t0 = ptq_now();
            for (int i = 0; i < KL && !rc; i++)
                rc = ptq_gemv_int_path(&q[i], x, y, o->threads, paths[p], e);
            ti[p][r] = ptq_now() - t0;
        }
        double t0 = ptq_now();
        for (int i = 0; i < KL && !rc; i++) rc = df->gemv(&d[i], x, y, o->threads, e);
        td[r] = ptq_now() - t0;
    }
    for (int i = 0; i < 7 && !rc; i++) { /* the default path against the reference */
        if ((rc = ptq_gemv_int(&q[i], x, y, o->threads, e))) break;
        rc = ptq_gemv_int_ref(&q[i], x, y + 1536, e);
        for (int r = 0; r < sh[i][0] && !rc; r++) {
            double dd = fabs((double)y[r] - y[1536 + r]) / (fabs((double)y[1536 + r]) + 1e-3);
            if (dd > worst) worst = dd;
        }
    }
    if (rc) return rc;
    double b = bench_median(td, o->reps);
    printf("kernel: SmolLM2's 210 linears, %.1f Mweights, threads %d, median of %d passes\n"
           "  F16 dense (%.1f MB): %.2f ms/token, %.2f Gweights/s, %.2f GB/s; memcpy bound %.2f ms: "
           "%.2f of it\n", wts / 1e6, o->threads, o->reps, db / 1e6, b * 1e3, wts / b / 1e9,
           db / b / 1e9, db / bw / 1e6, db / bw / 1e9 / b);
    for (int p = 0; p < 3; p++) {
        double a = bench_median(ti[p], o->reps);
        printf("  W%d g128 %-9s (%.1f MB): %.2f ms/token, %.2f Gweights/s, %.2f GB/s; memcpy bound "
               "%.2f ms: %.2f of it; speed over F16 %.2f\n", o->kbits, pname[p], qb / 1e6, a * 1e3,
               wts / a / 1e9, qb / a / 1e9, qb / bw / 1e6, qb / bw / 1e9 / a, b / a);
    }
    printf("  max |fast - ref| / (|ref| + 1e-3) of the default loop: %.2e\n", worst);
    for (int i = 0; i < KL; i++) ptq_qtensor_free(&q[i]), ptq_qtensor_free(&d[i]);
    free(q), free(x), free(y);
    return PTQ_OK;
}

/* OpenBLAS seconds for the GEMMs of one window of M tokens (median of reps). */
static double sgemm_window(const ptq_config *c, int M, int reps, double *flops)
{
    int sh[PTQ_NLINEAR + 1][2];
    for (int i = 0; i < PTQ_NLINEAR; i++) ptq_linear_shape(c, i, &sh[i][0], &sh[i][1]);
    sh[PTQ_NLINEAR][0] = c->vocab, sh[PTQ_NLINEAR][1] = c->hidden;
    size_t big = 0;
    for (int i = 0; i <= PTQ_NLINEAR; i++)
        if ((size_t)sh[i][0] * sh[i][1] > big) big = (size_t)sh[i][0] * sh[i][1];
    float *A = calloc((size_t)M * c->intermediate + (size_t)M * c->hidden, sizeof(float));
    float *W = malloc(sizeof(float) * big), *Y = malloc(sizeof(float) * (size_t)M * c->vocab);
    ptq_rng rng;
    ptq_rng_seed(&rng, 5);
    bench_fill(W, big, 0.05f, 0, &rng);
    bench_fill(A, (size_t)M * c->intermediate, 1, 0, &rng);
    double t[16], f = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = ptq_now();
        for (int i = 0; i <= PTQ_NLINEAR; i++) {
            int n = i == PTQ_NLINEAR ? 1 : c->n_layers;
            for (int l = 0; l < n; l++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, sh[i][0], sh[i][1], 1.0f,
                            A, sh[i][1], W, sh[i][1], 0.0f, Y, sh[i][0]);
            if (r == 0) f += 2.0 * M * sh[i][0] * sh[i][1] * n;
        }
        t[r] = ptq_now() - t0;
    }
    free(A); free(W); free(Y);
    *flops = f;
    return bench_median(t, reps);
}

static int bench_eval(const char *model, const opts *o, ptq_err *e)
{
    ptq_model_src s;
    int rc = ptq_model_src_open(&s, model, e);
    if (rc) return rc;
    ptq_config c = *s.w.cfg;
    ptq_model_src_close(&s);
    openblas_set_num_threads(o->threads);
    double flops, tg = sgemm_window(&c, o->ctx, o->reps, &flops), t[16];
    int windows = 0;
    for (int r = 0; r < o->reps; r++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "'%s' eval '%s' --text '%s' --ctx %d --threads %d --json",
                 o->ptqc, model, o->text, o->ctx, o->threads);
        double t0 = ptq_now();
        FILE *p = popen(cmd, "r");
        if (!p) return ptq_fail(e, PTQ_EIO, "cannot run %s", o->ptqc);
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, p);
        buf[n] = 0;
        if (pclose(p) != 0) return ptq_fail(e, PTQ_EIO, "%s failed", cmd);
        t[r] = ptq_now() - t0;
        const char *w = strstr(buf, "\"windows\":");
        windows = w ? atoi(w + 10) : 0;
    }
    double te = bench_median(t, o->reps), gf = flops * windows / te / 1e9;
    double attn = 4.0 * c.n_layers * c.n_heads * c.head_dim * (o->ctx * (o->ctx + 1) / 2.0);
    printf("eval %s ctx %d: %d windows in %.2f s (median of %d, whole command), GEMM %.1f "
           "GFLOP/s (+ attention %.1f GFLOP/window not counted); OpenBLAS sgemm on the same "
           "shapes %.1f GFLOP/s (%.3f s/window); ratio %.2f\n", model, o->ctx, windows, te,
           o->reps, gf, attn / 1e9, flops / tg / 1e9, tg, gf / (flops / tg / 1e9));
    return PTQ_OK;
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.tokens = 32, .reps = 3, .threads = 1, .ctx = 512};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--model") && o->nmodels < MAX_MODELS) o->models[o->nmodels++] = v;
        else if (!strcmp(k, "--tokens")) o->tokens = atoi(v);
        else if (!strcmp(k, "--reps")) o->reps = atoi(v);
        else if (!strcmp(k, "--threads")) o->threads = atoi(v);
        else if (!strcmp(k, "--ctx")) o->ctx = atoi(v);
        else if (!strcmp(k, "--eval-text")) o->text = v;
        else if (!strcmp(k, "--ptqc")) o->ptqc = v;
        else if (!strcmp(k, "--kernel")) o->kbits = atoi(v);
        else return 1;
    }
    if (o->reps < 1 || o->reps > 16) o->reps = 3;
    if (o->kbits) return o->kbits < 2 || o->kbits > 8 || o->threads < 1;
    return o->nmodels < 1 || o->tokens < 2 || o->threads < 1 || (o->text && !o->ptqc);
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_decode --model PATH [--model PATH ...] [--tokens N] "
                        "[--reps R] [--threads T] [--eval-text FILE --ptqc PTQC [--ctx C]]\n"
                        "       bench_decode --kernel BITS [--reps R] [--threads T]\n");
        return 2;
    }
    double bw = memcpy_gbs(), rbw = read_gbs();
    printf("memcpy bandwidth %.2f GB/s, read bandwidth %.2f GB/s (256 MiB, median of 5); "
           "threads %d\n", bw, rbw, o.threads);
    ptq_err e;
    if (o.kbits && bench_kernel(&o, bw, &e)) {
        fprintf(stderr, "bench_decode: %s\n", e.msg);
        return 1;
    }
    for (int i = 0; i < o.nmodels; i++)
        if (bench_model(o.models[i], &o, bw, rbw, &e)) {
            fprintf(stderr, "bench_decode: %s\n", e.msg);
            return 1;
        }
    if (o.text && bench_eval(o.models[0], &o, &e)) {
        fprintf(stderr, "bench_decode: %s\n", e.msg);
        return 1;
    }
    return 0;
}
