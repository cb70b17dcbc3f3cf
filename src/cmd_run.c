/* cmd_run.c - `ptqc run MODEL --prompt TEXT`: generate text from a bundle on
 * the GPU with libptqrt, or with --device cpu on the CPU reference runtime
 * (lib/runtime/runtime_cpu.h + lib/model/generate.h's KV-cached ptq_gen_step), see
 * ptqc-run(1).  MODEL may also be the source model (a checkpoint directory or
 * a .gguf, lib/runtime/runtime_cpu.h's ptq_model_src), which runs on the CPU,
 * so that its generations can be compared with a bundle's.  Both devices run the same loop: feed the prompt, then sample
 * a token and feed it, one position at a time.  The prompt is tokenized with
 * the bundle's own tokenizer; generated text is printed as it is produced, or
 * with --print-ids one line "ID MARGIN" per generated token. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "formats/bundle.h"
#include "formats/tokenizer.h"
#include "lib/model/generate.h"
#include "lib/runtime/logits.h"
#include "lib/runtime/runtime_cpu.h"
#include "src/cli.h"

#ifdef PTQC_HAVE_CUDA
#include "lib/cuda/ptqrt.h"
#endif

static const char run_help[] =
    "Usage: ptqc run MODEL --prompt TEXT [-n N] [--temp T] [--top-p P] [--seed S]\n"
    "                [--device D] [--threads N] [--max-seq L] [--no-verify] [--print-ids]\n"
    "                [--ignore-eos]\n"
    "\n"
    "Generate text from a .ptq bundle on an NVIDIA GPU (sm_80 or later) with the\n"
    "libptqrt runtime, or on the CPU reference runtime with --device cpu.  MODEL\n"
    "may also be the source model (a Hugging Face directory or a .gguf file),\n"
    "which runs on the CPU (the default device then), to compare generations.\n"
    "Prints the prompt and the continuation to stdout as it is generated, and a\n"
    "timing line to stderr.\n"
    "\n"
    "  -p, --prompt TEXT   the prompt (a BOS is added when the tokenizer asks for one)\n"
    "  -n, --tokens N      generate at most N tokens (default 128); stops at EOS\n"
    "      --temp T        sampling temperature (default 0 = greedy)\n"
    "      --top-p P       nucleus sampling mass in (0, 1] (default 1)\n"
    "      --seed S        random seed for sampling (default 0)\n"
    "      --device D      cuda (default for a bundle: CUDA device 0), cuda:N or N\n"
    "                      (CUDA device N), or cpu (the CPU reference runtime; the\n"
    "                      only one for a source model)\n"
    "      --threads N     CPU workers for the packed products of --device cpu, 1..64\n"
    "                      (default: the number of online CPUs); the same tokens for\n"
    "                      any N\n"
    "      --max-seq L     KV cache length (default min(max_position_embeddings, 2048))\n"
    "      --no-verify     skip the checksum verification of the bundle\n"
    "      --print-ids     print one line \"ID MARGIN\" per generated token instead of\n"
    "                      the text (MARGIN: largest minus second largest logit of\n"
    "                      the step that chose it)\n"
    "      --ignore-eos    do not stop at the EOS token\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 success, 2 usage, 3 MODEL unreadable, 4 malformed, 7 checksum\n"
    "mismatch, 8 out of memory, 9 no CUDA device or ptqc built without CUDA.\n"
    "See ptqc-run(1).\n";

/* One model on one device: feed tokens, get the logits of the last one. */
typedef struct runner {
    int cuda;
    int vocab, eos, max_seq;
    char name[256];
#ifdef PTQC_HAVE_CUDA
    ptqrt_model *m;
    ptqrt_rng grng;
#endif
    ptq_cpu_model cm;
    int cpu_open;
    ptq_weights w;    /* the bundle's (cm) or the source model's provider */
    ptq_gen *g;
    ptq_rng crng;
} runner;

static int runner_open(runner *r, const char *path, const ptq_model_src *src, int cuda,
                       int device, int max_seq, int need, int verify, uint64_t seed, int threads,
                       ptq_err *e)
{
    r->cuda = cuda;
    if (cuda) {
#ifdef PTQC_HAVE_CUDA
        if (ptqrt_device_count() < 1) return ptq_fail(e, PTQ_ENODEV, "no CUDA device");
        ptqrt_options o;
        ptqrt_options_default(&o);
        o.device = device;
        o.max_seq = max_seq;
        o.verify = verify;
        int rc = ptqrt_open(&r->m, path, &o, e);
        if (rc) return rc;
        ptqrt_info info;
        ptqrt_get_info(r->m, &info);
        r->vocab = info.vocab;
        r->eos = info.eos_id;
        r->max_seq = info.max_seq;
        snprintf(r->name, sizeof r->name, "%s", info.device_name);
        ptqrt_rng_seed(&r->grng, seed);
        return PTQ_OK;
#else
        (void)path, (void)src, (void)device, (void)max_seq, (void)need, (void)verify;
        (void)seed, (void)threads;
        return ptq_fail(e, PTQ_ENODEV, "ptqc was built without CUDA");
#endif
    }
    int rc;
    if (src) {
        r->w = src->w; /* the caller's source model */
    } else {
        if ((rc = ptq_cpu_open(&r->cm, path, verify, e))) return rc;
        r->cpu_open = 1;
        ptq_cpu_weights(&r->cm, &r->w);
    }
    const ptq_config *c = r->w.cfg;
    r->vocab = c->vocab;
    r->eos = c->eos_id;
    r->max_seq = max_seq ? max_seq : (c->max_pos > 0 && c->max_pos < 2048 ? c->max_pos : 2048);
    /* the CPU cache holds float32 keys and values: only the positions used */
    int len = need < r->max_seq ? need : r->max_seq;
    snprintf(r->name, sizeof r->name, "cpu");
    ptq_rng_seed(&r->crng, seed);
    rc = ptq_gen_create(&r->g, c, 1, len < 1 ? 1 : len, e);
    if (!rc) ptq_gen_set_threads(r->g, threads);
    return rc;
}

static void runner_close(runner *r)
{
#ifdef PTQC_HAVE_CUDA
    if (r->cuda) ptqrt_close(r->m);
#endif
    ptq_gen_free(r->g);
    if (r->cpu_open) ptq_cpu_close(&r->cm);
}

/* Tokens t [n] at positions pos..pos+n-1; logits [vocab] of the last one. */
static int runner_feed(runner *r, const int32_t *t, int n, int pos, float *logits, ptq_err *e)
{
#ifdef PTQC_HAVE_CUDA
    if (r->cuda) return ptqrt_forward(r->m, t, 1, n, pos, logits, 0, e);
#endif
    for (int i = 0; i < n; i++) {
        int rc = ptq_gen_step(r->g, &r->w, t + i, pos + i, logits, e);
        if (rc) return rc;
    }
    return PTQ_OK;
}

static int runner_sample(runner *r, const float *logits, float temp, float top_p)
{
#ifdef PTQC_HAVE_CUDA
    if (r->cuda) return ptqrt_sample(logits, r->vocab, temp, top_p, &r->grng);
#endif
    return ptq_sample(logits, r->vocab, temp, top_p, &r->crng);
}

typedef struct stream_ctx {
    const ptq_tokenizer *tok;
    int32_t *ids;
    int n;
    size_t printed; /* bytes of the decoded text already printed */
} stream_ctx;

/* Decode everything so far and print what is new (pieces can merge bytes). */
static void stream_token(stream_ctx *s, int32_t id)
{
    s->ids[s->n++] = id;
    char *text = NULL;
    size_t len = 0;
    ptq_err e;
    if (ptq_tok_decode(s->tok, s->ids, (size_t)s->n, &text, &len, &e) == PTQ_OK && len > s->printed) {
        fwrite(text + s->printed, 1, len - s->printed, stdout);
        fflush(stdout);
        s->printed = len;
    }
    free(text);
}

/* "cpu", "cuda", "cuda:N" or "N". */
static int parse_device(const char *s, int *cuda, long *ordinal)
{
    *ordinal = 0;
    if (!strcmp(s, "cpu")) {
        *cuda = 0;
        return PTQ_OK;
    }
    *cuda = 1;
    if (!strcmp(s, "cuda")) return PTQ_OK;
    const char *num = !strncmp(s, "cuda:", 5) ? s + 5 : s;
    return cli_parse_long("run", "--device", num, 0, 1024, ordinal);
}

typedef struct run_opts {
    const char *path, *prompt;
    long ntok, seed, device, max_seq, threads;
    double temp, top_p;
    int verify, cuda, device_set, print_ids, ignore_eos;
} run_opts;

/* Options and arguments into o; 0, or the exit status to return (-1: --help). */
static int parse_opts(int argc, char **argv, run_opts *o)
{
    static const struct option opts[] = {
        {"prompt", required_argument, NULL, 'p'}, {"tokens", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, 't'},   {"top-p", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},   {"device", required_argument, NULL, 'd'},
        {"max-seq", required_argument, NULL, 'L'}, {"no-verify", no_argument, NULL, 'V'},
        {"print-ids", no_argument, NULL, 'I'},    {"ignore-eos", no_argument, NULL, 'E'},
        {"threads", required_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (run_opts){.ntok = 128, .top_p = 1.0, .verify = 1, .cuda = 1};
    int c, rc = 0;
    optind = 1;
    while (!rc && (c = getopt_long(argc, argv, "p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': o->prompt = optarg; break;
        case 'n': rc = cli_parse_long("run", "--tokens", optarg, 0, 1000000, &o->ntok); break;
        case 't': rc = cli_parse_double("run", "--temp", optarg, 0.0, 100.0, &o->temp); break;
        case 'P': rc = cli_parse_double("run", "--top-p", optarg, 1e-9, 1.0, &o->top_p); break;
        case 's':
            rc = cli_parse_long("run", "--seed", optarg, 0, 0x7fffffffffffffffL, &o->seed);
            break;
        case 'd':
            rc = parse_device(optarg, &o->cuda, &o->device);
            o->device_set = 1;
            break;
        case 'L': rc = cli_parse_long("run", "--max-seq", optarg, 1, 1 << 20, &o->max_seq); break;
        case 'j': rc = cli_parse_long("run", "--threads", optarg, 1, 64, &o->threads); break;
        case 'V': o->verify = 0; break;
        case 'I': o->print_ids = 1; break;
        case 'E': o->ignore_eos = 1; break;
        case 'h': fputs(run_help, stdout); return -1;
        default: return cli_usage_error("run", "unknown option");
        }
    }
    if (rc) return PTQ_EUSAGE;
    if (optind != argc - 1) return cli_usage_error("run", "expected one MODEL argument");
    if (!o->prompt) return cli_usage_error("run", "--prompt TEXT is required");
    o->path = argv[optind];
    if (!o->threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = n < 1 ? 1 : n > 64 ? 64 : n;
    }
    return 0;
}

/* 0 when the device asked for can run, else the exit status (with a message). */
static int device_ok(const run_opts *o)
{
#ifndef PTQC_HAVE_CUDA
    if (o->cuda) {
        fprintf(stderr, "ptqc: ptqc was built without CUDA (use --device cpu)\n");
        return PTQ_ENODEV;
    }
#else
    if (o->cuda && ptqrt_device_count() < 1) {
        fprintf(stderr, "ptqc: no CUDA device (use --device cpu)\n");
        return PTQ_ENODEV;
    }
#endif
    return 0;
}

/* Print the prompt as the tokenizer decodes it; the stream continues after it. */
static void print_prompt(stream_ctx *sc, const int32_t *ids, size_t nids)
{
    for (size_t i = 0; i < nids; i++) sc->ids[sc->n++] = ids[i];
    char *text = NULL;
    size_t len = 0;
    ptq_err e;
    if (ptq_tok_decode(sc->tok, ids, nids, &text, &len, &e) == PTQ_OK) {
        fwrite(text, 1, len, stdout);
        sc->printed = len;
    }
    free(text);
    fflush(stdout);
}

/* Feed the prompt, then sample, print and feed one token at a time. */
static int generate(runner *r, const run_opts *o, const int32_t *ids, size_t nids,
                    stream_ctx *sc, float *logits, int *nout, ptq_err *e)
{
    int rc = o->ntok > 0 ? runner_feed(r, ids, (int)nids, 0, logits, e) : PTQ_OK;
    int pos = (int)nids;
    *nout = 0;
    while (!rc && *nout < o->ntok) {
        int32_t t = runner_sample(r, logits, (float)o->temp, (float)o->top_p);
        if (t < 0) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        (*nout)++;
        if (o->print_ids) {
            printf("%d %.6f\n", (int)t, ptq_logit_margin(logits, r->vocab));
            fflush(stdout);
        } else {
            stream_token(sc, t);
        }
        if ((t == r->eos && !o->ignore_eos) || *nout == o->ntok || pos >= r->max_seq) break;
        rc = runner_feed(r, &t, 1, pos++, logits, e);
    }
    return rc;
}

/* Open the model for the prompt ids and run the generation. */
static int run_model(const run_opts *o, const ptq_model_src *src, ptq_tokenizer *tok,
                     const int32_t *ids, size_t nids, ptq_err *e)
{
    runner r;
    memset(&r, 0, sizeof r);
    double t0 = ptq_now();
    int rc = runner_open(&r, o->path, src, o->cuda, (int)o->device, (int)o->max_seq,
                         (int)(nids + (size_t)o->ntok), o->verify, (uint64_t)o->seed,
                         (int)o->threads, e);
    if (!rc && nids > (size_t)r.max_seq)
        rc = ptq_fail(e, PTQ_EUSAGE, "the prompt of %zu tokens is longer than the KV cache (%d)",
                      nids, r.max_seq);
    if (rc) {
        runner_close(&r);
        return rc;
    }
    double t1 = ptq_now();
    stream_ctx sc = {tok, malloc(sizeof(int32_t) * (nids + (size_t)o->ntok + 1)), 0, 0};
    float *logits = malloc(sizeof(float) * (size_t)r.vocab);
    int nout = 0;
    if (!sc.ids || !logits) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    } else {
        if (!o->print_ids) print_prompt(&sc, ids, nids);
        double g0 = ptq_now();
        rc = generate(&r, o, ids, nids, &sc, logits, &nout, e);
        double g1 = ptq_now();
        if (!o->print_ids) printf("\n");
        if (!rc)
            fprintf(stderr, "ptqc run: %s, load %.2f s, %zu prompt + %d generated tokens in "
                    "%.3f s (%.1f tokens/s)\n", r.name, t1 - t0, nids, nout, g1 - g0,
                    nout / (g1 - g0 > 0 ? g1 - g0 : 1e-9));
    }
    free(logits);
    free(sc.ids);
    runner_close(&r);
    return rc;
}

/* A source model (not a bundle) into src: on the CPU only (its default
 * device), with its own tokenizer.  0, or the exit status (reported). */
static int open_source(run_opts *o, ptq_model_src *src)
{
    if (o->cuda && o->device_set)
        return cli_usage_error("run", "a source model (directory or .gguf) runs on --device cpu "
                                      "only; compile it to a bundle for the GPU");
    o->cuda = 0;
    ptq_err e;
    if (ptq_model_src_open(src, o->path, &e)) return cli_report(&e);
    if (!src->tok) {
        ptq_model_src_close(src);
        ptq_fail(&e, PTQ_EFORMAT, "%s: the model has no tokenizer.json", o->path);
        return cli_report(&e);
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    ptq_model_src src;
    int is_src = !ptq_path_is_bundle(o.path);
    if (is_src && (rc = open_source(&o, &src))) return rc;
    if ((rc = device_ok(&o))) {
        if (is_src) ptq_model_src_close(&src);
        return rc;
    }
    ptq_err e;
    ptq_tokenizer *tok = is_src ? src.tok : NULL;
    if (!is_src && (rc = ptq_bundle_file_tokenizer(o.path, &tok, &e))) return cli_report(&e);
    int32_t *ids = NULL;
    size_t nids = 0;
    rc = ptq_tok_encode(tok, o.prompt, strlen(o.prompt), ptq_tok_add_bos(tok), &ids, &nids, &e);
    if (!rc && nids == 0) {
        rc = cli_usage_error("run", "the prompt encodes to no tokens (and the tokenizer adds no "
                                    "BOS)");
    } else {
        if (!rc) rc = run_model(&o, is_src ? &src : NULL, tok, ids, nids, &e);
        if (rc) rc = cli_report(&e);
    }
    free(ids);
    if (is_src) ptq_model_src_close(&src);
    else ptq_tok_free(tok);
    return rc;
}
