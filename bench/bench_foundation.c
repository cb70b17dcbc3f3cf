/* bench_foundation.c - speed of the foundation, as ratios measured in one run.
 *
 * 1. One decoder layer of a Llama-3.2-1B-shaped model (hidden 2048,
 *    intermediate 5632, 16 heads, 4 KV heads, head_dim 128, random weights)
 *    over 512 tokens, as B=1 x T=512 and B=4 x T=128.  Forward GFLOP/s counts
 *    the linears (2 N in out each) and the attention products the forward
 *    computes (QK^T and PV, the full T x T per sequence and head:
 *    4 B H T^2 hd).  The baseline is OpenBLAS sgemm alone on exactly the same
 *    calls (the seven linears' shapes and B*H times each attention shape),
 *    timed in the same run.  ratio = forward GFLOP/s / sgemm GFLOP/s, i.e.
 *    the share of the layer's time that sgemm itself needs.  Target >= 0.7.
 * 2. Tokenizer encode throughput on WikiText-2 raw test (1.29 MB) with the
 *    Llama 2 SentencePiece-BPE and the GPT-2 byte-level BPE tokenizers, one
 *    thread.  Target >= 5 MB/s each.
 * Every figure is the median of several repetitions.
 *
 * Usage: bench_foundation [--shared DIR] [--reps N] [--threads N]
 *   DIR defaults to $PTQC_SHARED, else ../shared.
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "formats/config.h"
#include "formats/tokenizer.h"
#include "lib/model/model.h"
#include "tests/synth.h"

/* The sgemm calls of one layer, without anything around them. */
static void sgemm_only(const ptq_config *c, const ptq_layer_w *w, int B, int T, const float *xb,
                       float *q, float *k, float *v, float *att, float *ao, float *hb, float *hb2,
                       float *tmp)
{
    int N = B * T, D = c->hidden, Im = c->intermediate, hd = c->head_dim;
    int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, qd, D, 1, xb, D, w->w[PTQ_Q], D, 0, q, qd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, kvd, D, 1, xb, D, w->w[PTQ_K], D, 0, k, kvd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, kvd, D, 1, xb, D, w->w[PTQ_V], D, 0, v, kvd);
    int group = c->n_heads / c->n_kv_heads;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < c->n_heads; h++) {
            const float *Q = q + (size_t)b * T * qd + (size_t)h * hd;
            const float *K = k + (size_t)b * T * kvd + (size_t)(h / group) * hd;
            const float *V = v + (size_t)b * T * kvd + (size_t)(h / group) * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1, Q, qd, K, kvd, 0, att, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1, att, T, V, kvd, 0,
                        ao + (size_t)b * T * qd + (size_t)h * hd, qd);
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, D, qd, 1, ao, qd, w->w[PTQ_O], qd, 0, tmp, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Im, D, 1, xb, D, w->w[PTQ_GATE], D, 0, hb, Im);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Im, D, 1, xb, D, w->w[PTQ_UP], D, 0, hb2, Im);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, D, Im, 1, hb, Im, w->w[PTQ_DOWN], Im, 0, tmp, D);
}

static int bench_layer(int reps)
{
    ptq_config c = synth_tiny_config();
    c.hidden = 2048, c.intermediate = 5632, c.n_layers = 1, c.n_heads = 16, c.n_kv_heads = 4;
    c.head_dim = 128, c.vocab = 32000, c.max_pos = 2048, c.rope_theta = 500000.0f;
    ptq_err e = {0};
    ptq_layer_w w;
    if (ptq_layer_w_alloc(&w, &c, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    ptq_rng s;
    ptq_rng_seed(&s, 12345);
    int D = c.hidden, Im = c.intermediate, qd = c.n_heads * c.head_dim;
    int kvd = c.n_kv_heads * c.head_dim;
    bench_fill(w.attn_norm, (size_t)D, 0.1f, 1.0f, &s);
    bench_fill(w.mlp_norm, (size_t)D, 0.1f, 1.0f, &s);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int r, k;
        ptq_linear_shape(&c, i, &r, &k);
        bench_fill(w.w[i], (size_t)r * k, 0.02f, 0.0f, &s);
    }
    const int total = 512;
    float *x0 = malloc(sizeof(float) * total * D), *x = malloc(sizeof(float) * total * D);
    float *q = malloc(sizeof(float) * total * qd), *kk = malloc(sizeof(float) * total * kvd);
    float *v = malloc(sizeof(float) * total * kvd), *att = malloc(sizeof(float) * total * total);
    float *ao = malloc(sizeof(float) * total * qd), *hb = malloc(sizeof(float) * total * Im);
    float *hb2 = malloc(sizeof(float) * total * Im), *tmp = malloc(sizeof(float) * total * D);
    if (!x0 || !x || !q || !kk || !v || !att || !ao || !hb || !hb2 || !tmp) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    bench_fill(x0, (size_t)total * D, 1.0f, 0.0f, &s);
    printf("layer: hidden %d, intermediate %d, heads %d/%d, head_dim %d, %d tokens, "
           "OpenBLAS %d threads, median of %d\n",
           D, Im, c.n_heads, c.n_kv_heads, c.head_dim, total, openblas_get_num_threads(), reps);
    printf("%-12s %10s %10s %10s %10s %8s\n", "shape", "GFLOP", "fwd ms", "fwd GF/s", "sgemm GF/s",
           "ratio");
    const int shapes[2][2] = {{1, 512}, {4, 128}};
    int worst_ok = 1;
    for (int si = 0; si < 2; si++) {
        int B = shapes[si][0], T = shapes[si][1], N = B * T;
        double lin = 2.0 * N * ((double)D * qd + 2.0 * D * kvd + (double)qd * D + 3.0 * D * Im);
        double attn = 4.0 * B * c.n_heads * (double)T * T * c.head_dim;
        double flops = lin + attn;
        ptq_fwd *f = NULL;
        if (ptq_fwd_create(&f, &c, N, T, &e)) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double *tf = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
        /* warm up both */
        memcpy(x, x0, sizeof(float) * N * D);
        ptq_fwd_layer(f, &w, x, B, T, NULL, &e);
        sgemm_only(&c, &w, B, T, x0, q, kk, v, att, ao, hb, hb2, tmp);
        for (int r = 0; r < reps; r++) { /* interleaved, so drift hits both */
            memcpy(x, x0, sizeof(float) * N * D);
            double t0 = ptq_now();
            if (ptq_fwd_layer(f, &w, x, B, T, NULL, &e)) {
                fprintf(stderr, "bench: %s\n", e.msg);
                return 1;
            }
            tf[r] = ptq_now() - t0;
            t0 = ptq_now();
            sgemm_only(&c, &w, B, T, x0, q, kk, v, att, ao, hb, hb2, tmp);
            tg[r] = ptq_now() - t0;
        }
        double mf = bench_median(tf, reps), mg = bench_median(tg, reps);
        double ratio = (flops / mf) / (flops / mg);
        char name[32];
        snprintf(name, sizeof name, "B=%d T=%d", B, T);
        printf("%-12s %10.2f %10.1f %10.1f %10.1f %8.3f  %s\n", name, flops * 1e-9, mf * 1e3,
               flops / mf * 1e-9, flops / mg * 1e-9, ratio, ratio >= 0.7 ? "ok (>= 0.7)" : "BELOW 0.7");
        if (ratio < 0.7) worst_ok = 0;
        free(tf);
        free(tg);
        ptq_fwd_free(f);
    }
    ptq_layer_w_free(&w);
    free(x0); free(x); free(q); free(kk); free(v); free(att); free(ao); free(hb); free(hb2); free(tmp);
    return worst_ok ? 0 : 2;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

static int bench_tokenizers(const char *shared, int reps)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/text/wikitext-2-raw/wiki.test.raw", shared);
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) {
        fprintf(stderr, "bench: cannot read %s (--shared DIR)\n", path);
        return 1;
    }
    printf("\ntokenizer encode: %s (%zu bytes), one thread, median of %d\n", path, len, reps);
    printf("%-12s %10s %10s %8s\n", "tokenizer", "tokens", "MB/s", "target");
    const char *names[2] = {"llama-spm", "gpt2"};
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        char tj[4096], tc[4096];
        snprintf(tj, sizeof tj, "%s/tokenizers/%s/tokenizer.json", shared, names[i]);
        snprintf(tc, sizeof tc, "%s/tokenizers/%s/tokenizer_config.json", shared, names[i]);
        ptq_err e = {0};
        ptq_tokenizer *t = NULL;
        if (ptq_tok_load(&t, tj, tc, &e)) {
            printf("%-12s not available: %s\n", names[i], e.msg);
            ok = 0;
            continue;
        }
        double *ts = malloc(sizeof(double) * (size_t)reps);
        size_t n = 0;
        int failed = 0;
        for (int r = 0; r < reps && !failed; r++) {
            int32_t *ids = NULL;
            double t0 = ptq_now();
            if (ptq_tok_encode(t, text, len, 0, &ids, &n, &e)) {
                printf("%-12s encode failed: %s\n", names[i], e.msg);
                failed = 1;
            }
            ts[r] = ptq_now() - t0;
            free(ids);
        }
        if (!failed) {
            double mbs = (double)len / bench_median(ts, reps) * 1e-6;
            printf("%-12s %10zu %10.2f %8s  %s\n", names[i], n, mbs, ">= 5",
                   mbs >= 5.0 ? "ok" : "BELOW 5 MB/s");
            if (mbs < 5.0) ok = 0;
        } else {
            ok = 0;
        }
        free(ts);
        ptq_tok_free(t);
    }
    free(text);
    return ok ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *shared = getenv("PTQC_SHARED");
    if (!shared || !*shared) shared = "../shared";
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) openblas_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr, "usage: bench_foundation [--shared DIR] [--reps N] [--threads N]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    int a = bench_layer(reps);
    int b = bench_tokenizers(shared, 3);
    if (a == 1 || b == 1) return 1;
    return a || b ? 2 : 0;
}
