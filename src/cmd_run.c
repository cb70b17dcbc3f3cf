/* cmd_run.c - `ptqc run BUNDLE --prompt TEXT`: generate text on the GPU with
 * libptqrt (ptqc-run(1)).  The prompt is tokenized with the bundle's own
 * tokenizer; generated text is printed as it is produced. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "src/cli.h"

#ifdef PTQC_HAVE_CUDA
#include "formats/bundle.h"
#include "formats/tokenizer.h"
#include "lib/ptqrt.h"
#endif

static const char run_help[] =
    "Usage: ptqc run BUNDLE --prompt TEXT [-n N] [--temp T] [--top-p P] [--seed S]\n"
    "                [--device D] [--max-seq L] [--no-verify]\n"
    "\n"
    "Generate text from a .ptq bundle on an NVIDIA GPU (sm_80 or later) with the\n"
    "libptqrt runtime.  Prints the prompt and the continuation to stdout as it is\n"
    "generated, and a timing line to stderr.\n"
    "\n"
    "  -p, --prompt TEXT   the prompt (a BOS is added when the tokenizer asks for one)\n"
    "  -n, --tokens N      generate at most N tokens (default 128); stops at EOS\n"
    "      --temp T        sampling temperature (default 0 = greedy)\n"
    "      --top-p P       nucleus sampling mass in (0, 1] (default 1)\n"
    "      --seed S        random seed for sampling (default 0)\n"
    "      --device D      CUDA device ordinal (default 0)\n"
    "      --max-seq L     KV cache length (default min(max_position_embeddings, 2048))\n"
    "      --no-verify     skip the checksum verification of the bundle\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 success, 2 usage, 3 BUNDLE unreadable, 4 malformed, 7 checksum\n"
    "mismatch, 8 out of memory, 9 no CUDA device or ptqc built without CUDA.\n"
    "See ptqc-run(1).\n";

#ifdef PTQC_HAVE_CUDA
typedef struct stream_ctx {
    const ptq_tokenizer *tok;
    int32_t *ids;
    int n;
    size_t printed; /* bytes of the decoded text already printed */
} stream_ctx;

/* Decode everything so far and print what is new (pieces can merge bytes). */
static int on_token(void *ud, int32_t id)
{
    stream_ctx *s = ud;
    s->ids[s->n++] = id;
    char *text = NULL;
    size_t len = 0;
    ptq_err e;
    if (ptq_tok_decode(s->tok, s->ids, (size_t)s->n, &text, &len, &e) == PTQ_OK) {
        if (len > s->printed) {
            fwrite(text + s->printed, 1, len - s->printed, stdout);
            fflush(stdout);
            s->printed = len;
        }
    }
    free(text);
    return 0;
}
#endif

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt", required_argument, NULL, 'p'}, {"tokens", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, 't'},   {"top-p", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},   {"device", required_argument, NULL, 'd'},
        {"max-seq", required_argument, NULL, 'L'}, {"no-verify", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *prompt = NULL;
    long ntok = 128, seed = 0, device = 0, max_seq = 0;
    double temp = 0.0, top_p = 1.0;
    int verify = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': prompt = optarg; break;
        case 'n': if (cli_parse_long("run", "--tokens", optarg, 0, 1000000, &ntok)) return PTQ_EUSAGE; break;
        case 't': if (cli_parse_double("run", "--temp", optarg, 0.0, 100.0, &temp)) return PTQ_EUSAGE; break;
        case 'P': if (cli_parse_double("run", "--top-p", optarg, 1e-9, 1.0, &top_p)) return PTQ_EUSAGE; break;
        case 's': if (cli_parse_long("run", "--seed", optarg, 0, 0x7fffffffffffffffL, &seed)) return PTQ_EUSAGE; break;
        case 'd': if (cli_parse_long("run", "--device", optarg, 0, 1024, &device)) return PTQ_EUSAGE; break;
        case 'L': if (cli_parse_long("run", "--max-seq", optarg, 1, 1 << 20, &max_seq)) return PTQ_EUSAGE; break;
        case 'V': verify = 0; break;
        case 'h': fputs(run_help, stdout); return 0;
        default: return cli_usage_error("run", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("run", "expected one BUNDLE argument");
    if (!prompt) return cli_usage_error("run", "--prompt TEXT is required");
#ifndef PTQC_HAVE_CUDA
    (void)ntok; (void)seed; (void)device; (void)max_seq; (void)temp; (void)top_p; (void)verify;
    fprintf(stderr, "ptqc: ptqc was built without CUDA\n");
    return PTQ_ENODEV;
#else
    const char *path = argv[optind];
    ptq_err e;
    if (ptqrt_device_count() < 1) {
        fprintf(stderr, "ptqc: no CUDA device\n");
        return PTQ_ENODEV;
    }
    /* tokenizer from the bundle */
    ptq_bundle b;
    memset(&b, 0, sizeof b);
    if (ptq_bundle_open(&b, path, 0, &e)) return cli_report(&e);
    uint64_t tl = 0, cl = 0;
    const char *tj = ptq_bundle_member_data(&b, "tokenizer.json", &tl);
    const char *tc = ptq_bundle_member_data(&b, "tokenizer_config.json", &cl);
    ptq_tokenizer *tok = NULL;
    int rc;
    if (!tj) {
        ptq_fail(&e, PTQ_EFORMAT, "%s: no tokenizer.json member", path);
        rc = PTQ_EFORMAT;
    } else {
        rc = ptq_tok_load_mem(&tok, tj, (size_t)tl, tc, tc ? (size_t)cl : 0, "tokenizer.json", &e);
    }
    ptq_bundle_close(&b);
    if (rc) return cli_report(&e);
    int32_t *ids = NULL;
    size_t nids = 0;
    if ((rc = ptq_tok_encode(tok, prompt, strlen(prompt), ptq_tok_add_bos(tok), &ids, &nids, &e))) {
        ptq_tok_free(tok);
        return cli_report(&e);
    }
    if (nids == 0) {
        free(ids);
        ptq_tok_free(tok);
        return cli_usage_error("run", "the prompt encodes to no tokens (and the tokenizer adds no BOS)");
    }
    ptqrt_options o;
    ptqrt_options_default(&o);
    o.device = (int)device;
    o.max_seq = (int)max_seq;
    o.verify = verify;
    ptqrt_model *m = NULL;
    double t0 = cli_now();
    if ((rc = ptqrt_open(&m, path, &o, &e))) {
        free(ids);
        ptq_tok_free(tok);
        return cli_report(&e);
    }
    double t1 = cli_now();
    stream_ctx sc = {tok, malloc(sizeof(int32_t) * (nids + (size_t)ntok + 1)), 0, 0};
    int32_t *out = malloc(sizeof(int32_t) * ((size_t)ntok + 1));
    if (!sc.ids || !out) {
        rc = ptq_fail(&e, PTQ_ENOMEM, "out of memory");
    } else {
        /* print the prompt as the tokenizer decodes it, then stream the rest */
        for (size_t i = 0; i < nids; i++) sc.ids[sc.n++] = ids[i];
        char *text = NULL;
        size_t len = 0;
        if (ptq_tok_decode(tok, ids, nids, &text, &len, &e) == PTQ_OK) {
            fwrite(text, 1, len, stdout);
            sc.printed = len;
        }
        free(text);
        fflush(stdout);
        ptqrt_sampling smp = {(float)temp, (float)top_p, (uint64_t)seed};
        int nout = 0;
        double g0 = cli_now();
        rc = ptqrt_generate(m, ids, (int)nids, (int)ntok, &smp, out, &nout, on_token, &sc, &e);
        double g1 = cli_now();
        printf("\n");
        if (!rc) {
            ptqrt_info info;
            ptqrt_get_info(m, &info);
            fprintf(stderr, "ptqc run: %s, load %.2f s, %zu prompt + %d generated tokens in %.3f s (%.1f tokens/s)\n",
                    info.device_name, t1 - t0, nids, nout, g1 - g0, nout / (g1 - g0 > 0 ? g1 - g0 : 1e-9));
        }
    }
    free(out);
    free(sc.ids);
    free(ids);
    ptqrt_close(m);
    ptq_tok_free(tok);
    return rc ? cli_report(&e) : 0;
#endif
}
