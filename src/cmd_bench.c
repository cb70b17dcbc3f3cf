/* cmd_bench.c - `ptqc bench`: prefill and decode speed on the GPU with
 * libptqrt (ptqc-bench(1)).  Either a bundle, or --synthetic llama7b: a
 * 7B-shape model with random weights (src/bench_synth.c), measured packed and
 * in FP16 in the same run so the ratio compares like with like. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "src/cli.h"

#ifdef PTQC_HAVE_CUDA
#include "lib/cuda/ptqrt.h"
#include "src/bench_synth.h"
#endif

static const char bench_help[] =
    "Usage: ptqc bench BUNDLE [options]\n"
    "       ptqc bench --synthetic llama7b [--bits B] [--group G] [options]\n"
    "\n"
    "Measure a model on the GPU: prefill tokens/s over a prompt of random token ids,\n"
    "and decode tokens/s (one token per sequence per step after the prompt).\n"
    "Each figure is the median of --repeat runs after one warm-up run.\n"
    "With --synthetic the model has Llama-2-7B shapes and random weights, uploaded\n"
    "as a bundle's are; it is measured with its linears packed at --bits (default 4,\n"
    "group --group, default 128) and again in FP16, and the decode speed ratio is\n"
    "printed.\n"
    "\n"
    "      --synthetic NAME  llama7b (instead of BUNDLE)\n"
    "      --bits B          2, 3, 4 or 8 for --synthetic (default 4)\n"
    "      --group G         group size for --synthetic, 0 = per row (default 128)\n"
    "  -b, --batch B         sequences decoded together (default 1)\n"
    "      --prompt-len P    prefill length (default 128)\n"
    "  -n, --tokens N        decode steps (default 128)\n"
    "  -r, --repeat R        measured repetitions (default 5)\n"
    "      --device D        CUDA device ordinal (default 0)\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 success, 2 usage, 3/4/7 bundle unreadable/malformed/corrupt,\n"
    "8 out of memory, 9 no CUDA device or ptqc built without CUDA.  See ptqc-bench(1).\n";

#ifdef PTQC_HAVE_CUDA
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bench_res {
    double prefill_tps, decode_tps;
    ptqrt_info info;
    ptqrt_mem mem;
} bench_res;

/* Time prefill and decode on model m. */
static int measure(ptqrt_model *m, int batch, int plen, int steps, int repeat, bench_res *r, ptq_err *e)
{
    ptqrt_get_info(m, &r->info);
    int V = r->info.vocab;
    int32_t *tok = malloc(sizeof *tok * (size_t)batch * (size_t)plen);
    float *logits = malloc(sizeof *logits * (size_t)V * (size_t)batch);
    double *tp = malloc(sizeof *tp * (size_t)repeat), *td = malloc(sizeof *td * (size_t)repeat);
    int rc = PTQ_OK;
    if (!tok || !logits || !tp || !td) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
        goto out;
    }
    ptqrt_rng rng;
    ptqrt_rng_seed(&rng, 42);
    for (size_t i = 0; i < (size_t)batch * plen; i++) tok[i] = (int32_t)(ptqrt_rng_uniform(&rng) * V);
    for (int it = -1; it < repeat && !rc; it++) { /* it = -1: warm-up */
        double t0 = ptq_now();
        rc = ptqrt_forward(m, tok, batch, plen, 0, logits, 0, e);
        double t1 = ptq_now();
        for (int s = 0; s < steps && !rc; s++)
            rc = ptqrt_forward(m, tok + (size_t)s % plen, batch, 1, plen + s, logits, 0, e);
        double t2 = ptq_now();
        if (it >= 0) {
            tp[it] = (double)batch * plen / (t1 - t0);
            td[it] = (double)batch * steps / (t2 - t1);
        }
    }
    if (rc) goto out;
    qsort(tp, (size_t)repeat, sizeof *tp, cmp_double);
    qsort(td, (size_t)repeat, sizeof *td, cmp_double);
    r->prefill_tps = tp[repeat / 2];
    r->decode_tps = td[repeat / 2];
    rc = ptqrt_memory(m, &r->mem, e);
out:
    free(tok);
    free(logits);
    free(tp);
    free(td);
    return rc;
}

static void print_res(const char *label, const bench_res *r, int batch, int plen, int steps)
{
    printf("%-10s weights %8.1f MiB  kv %7.1f MiB  prefill(%d) %9.1f tok/s  decode(batch %d, %d steps) %8.1f tok/s\n",
           label, r->mem.weights / 1048576.0, r->mem.kv_cache / 1048576.0, plen, r->prefill_tps, batch, steps,
           r->decode_tps);
}
#endif

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"synthetic", required_argument, NULL, 'S'}, {"bits", required_argument, NULL, 'B'},
        {"group", required_argument, NULL, 'G'},     {"batch", required_argument, NULL, 'b'},
        {"prompt-len", required_argument, NULL, 'P'}, {"tokens", required_argument, NULL, 'n'},
        {"repeat", required_argument, NULL, 'r'},    {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    const char *synth = NULL;
    long bits = 4, group = 128, batch = 1, plen = 128, steps = 128, repeat = 5, device = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:n:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': synth = optarg; break;
        case 'B': if (cli_parse_long("bench", "--bits", optarg, 2, 8, &bits)) return PTQ_EUSAGE; break;
        case 'G': if (cli_parse_long("bench", "--group", optarg, 0, 1 << 20, &group)) return PTQ_EUSAGE; break;
        case 'b': if (cli_parse_long("bench", "--batch", optarg, 1, 256, &batch)) return PTQ_EUSAGE; break;
        case 'P': if (cli_parse_long("bench", "--prompt-len", optarg, 1, 8192, &plen)) return PTQ_EUSAGE; break;
        case 'n': if (cli_parse_long("bench", "--tokens", optarg, 1, 8192, &steps)) return PTQ_EUSAGE; break;
        case 'r': if (cli_parse_long("bench", "--repeat", optarg, 1, 1000, &repeat)) return PTQ_EUSAGE; break;
        case 'd': if (cli_parse_long("bench", "--device", optarg, 0, 1024, &device)) return PTQ_EUSAGE; break;
        case 'h': fputs(bench_help, stdout); return 0;
        default: return cli_usage_error("bench", "unknown option");
        }
    }
    if (synth ? optind != argc : optind != argc - 1)
        return cli_usage_error("bench", "expected one BUNDLE argument, or --synthetic NAME");
    if (synth && strcmp(synth, "llama7b"))
        return cli_usage_error("bench", "--synthetic: unknown model '%s' (known: llama7b)", synth);
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return cli_usage_error("bench", "--bits must be 2, 3, 4 or 8");
#ifndef PTQC_HAVE_CUDA
    (void)group; (void)batch; (void)plen; (void)steps; (void)repeat; (void)device;
    fprintf(stderr, "ptqc: ptqc was built without CUDA\n");
    return PTQ_ENODEV;
#else
    if (ptqrt_device_count() < 1) {
        fprintf(stderr, "ptqc: no CUDA device\n");
        return PTQ_ENODEV;
    }
    ptqrt_options o;
    ptqrt_options_default(&o);
    o.device = (int)device;
    o.max_batch = (int)batch;
    o.max_seq = (int)(plen + steps);
    if (o.max_tokens < o.max_batch) o.max_tokens = o.max_batch;
    ptq_err e;
    ptqrt_model *m = NULL;
    bench_res r, rf;
    int rc;
    if (!synth) {
        if ((rc = ptqrt_open(&m, argv[optind], &o, &e))) return cli_report(&e);
        rc = measure(m, (int)batch, (int)plen, (int)steps, (int)repeat, &r, &e);
        ptqrt_close(m);
        if (rc) return cli_report(&e);
        printf("ptqc bench %s on %s (sm_%d)\n", argv[optind], r.info.device_name, r.info.device_cc);
        print_res(r.info.weight_bits == 16 ? "fp16" : "bundle", &r, (int)batch, (int)plen, (int)steps);
        return 0;
    }
    bench_synth s;
    bench_synth_llama7b(&s, (int)bits, (int)group);
    if ((rc = bench_open_synthetic(&m, &s, &o, &e))) return cli_report(&e);
    rc = measure(m, (int)batch, (int)plen, (int)steps, (int)repeat, &r, &e);
    ptqrt_close(m);
    if (rc) return cli_report(&e);
    bench_synth_llama7b(&s, 16, 0);
    if ((rc = bench_open_synthetic(&m, &s, &o, &e))) return cli_report(&e);
    rc = measure(m, (int)batch, (int)plen, (int)steps, (int)repeat, &rf, &e);
    ptqrt_close(m);
    if (rc) return cli_report(&e);
    char label[32];
    snprintf(label, sizeof label, "w%ldg%ld", bits, group);
    printf("ptqc bench --synthetic llama7b on %s (sm_%d)\n", r.info.device_name, r.info.device_cc);
    print_res(label, &r, (int)batch, (int)plen, (int)steps);
    print_res("fp16", &rf, (int)batch, (int)plen, (int)steps);
    printf("decode speedup %s / fp16: %.2fx   prefill ratio: %.2fx\n", label, r.decode_tps / rf.decode_tps,
           r.prefill_tps / rf.prefill_tps);
    return 0;
#endif
}
