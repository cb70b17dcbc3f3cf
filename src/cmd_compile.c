/* cmd_compile.c - `ptqc compile MODEL -o OUT.ptq`: flags, then ptq_compile. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/compile/compile.h"
#include "lib/compile/method.h"
#include "src/cli.h"
#include "src/compile_export.h"
#include "src/progress.h"

static const char usage_head[] =
    "Usage: ptqc compile MODEL -o OUT.ptq [OPTIONS]\n"
    "\n"
    "Quantize a Hugging Face Llama-family checkpoint directory layer by layer\n"
    "and write a bundle.  See ptqc-compile(1).\n"
    "\n"
    "Quantization:\n";
/* then the --method lines, from the method table (usage) */
static const char usage_text[] =
    "  --awq-grid N           AWQ: points of the scale and clip searches (default 20)\n"
    "  --awq-search-tokens N  AWQ: calibration tokens the searches judge (4096)\n"
    "  --awq-scan MODE        AWQ: refine (default: coarse to fine, 9 of 20 ratios)\n"
    "                         or full (every ratio, as llm-awq)\n"
    "  --codebooks MxB        aqlm: M codebooks of 2^B codewords per 8 inputs\n"
    "                         (default 2x8: 2 bits per weight; 1..8 x 1..16)\n"
    "  --beam N               aqlm: beam search width (default 8; 1: greedy)\n"
    "  --recipe FILE          per-layer methods and settings (JSON; ptqc-compile(1))\n"
    "  --alpha X              SmoothQuant migration strength in [0, 1] (default 0.5)\n"
    "  --act-scales MODE      8-bit methods: dynamic (per token, default) or static\n"
    "                         (per tensor, calibrated)\n"
    "  --kv-cache MODE        fp (default) or int8: static per-head, per-channel\n"
    "                         K/V scales\n"
    "  --bits N               bits per weight, 2..8 (default 4)\n"
    "  --group N              columns per group: 32, 64, 128, ... (the last group\n"
    "                         of a row is shorter when N does not divide its\n"
    "                         inputs), or 0 = one group per output channel\n"
    "                         (default 128)\n"
    "  --sym / --asym         symmetric or asymmetric grid (default symmetric;\n"
    "                         asymmetric for awq and awq+gptq)\n"
    "  --mse / --no-mse       clipping search for each group's range, or min-max\n"
    "                         (default: --mse for gptq, min-max otherwise)\n"
    "  --act-order            GPTQ: columns in order of decreasing Hessian diagonal\n"
    "                         (default; --no-act-order: in input order)\n"
    "  --static-groups        with act-order: group grids fixed from the original\n"
    "                         weights before the permutation (default;\n"
    "                         --no-static-groups: grids as GPTQ reaches them and a\n"
    "                         g_idx is stored)\n"
    "  --damp X               GPTQ dampening, fraction of the mean diagonal (0.01);\n"
    "                         raised x10 with a warning while Cholesky fails\n"
    "  --block N              GPTQ lazy-batch block size (default 128)\n"
    "  --hessians MODE        layer: every Hessian from the unquantized layer (as\n"
    "                         llm-compressor; default for gptq); sequential: each\n"
    "                         from the layer with the earlier linears quantized\n"
    "                         (default for the other methods)\n"
    "  --rotate MODE          rtn, gptq: none (default) or hadamard: round\n"
    "                         W' = U W V^T (randomized Hadamard incoherence,\n"
    "                         QuIP-style) into the int-had format\n"
    "  --skip PATTERN         keep linears whose tensor name matches (fnmatch) dense;\n"
    "                         repeatable\n"
    "Calibration:\n"
    "  --calib SOURCE         calibration text: file, directory, JSONL, archive, or -;\n"
    "                         repeatable.  None: the model writes its own samples,\n"
    "                         or, where nothing needs them (rtn, w8a8, fp8), no\n"
    "                         calibration runs and errors are weight-space\n"
    "  --jsonl-field NAME     field of JSONL records (default text)\n"
    "  --nsamples N           calibration windows (default 128)\n"
    "  --seqlen N             tokens per window (default 2048 from --calib text,\n"
    "                         128 data-free; clipped to the context)\n"
    "  --seed N               seed of window offsets / data-free sampling (default 0)\n"
    "  --chunk-tokens N       tokens per forward chunk (default 512)\n"
    "Run:\n"
    "  -o, --output OUT.ptq   the bundle to write (required)\n"
    "  --report FILE.json     per-linear errors, memory and time by step\n"
    "  --export FORMAT[:DIR]  then export the bundle as by ptqc export (default DIR:\n"
    "                         OUT less .ptq, then -FORMAT); repeatable\n"
    "  --tmpdir DIR           keep calibration activations and resume states in DIR\n"
    "  --resume               continue a killed run after its last finished layer\n"
    "  --threads N            workers over calibration chunks (default: CPUs);\n"
    "                         does not change the output\n"
    "  --progress=MODE        auto, tty, lines, json or none (default auto)\n"
    "  --quiet                no progress (warnings still shown)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 success, 1 internal error, 2 usage (bad flag,\n"
    "--alpha outside [0, 1], journal mismatch on --resume, a recipe\n"
    "pattern matching no linear), 3 input unreadable, 4 input malformed (also\n"
    "a recipe file), 5 data unusable (zero calibration tokens,\n"
    "NaN/Inf weights or calibration activations, singular Hessian), 6 output unwritable, 7 resume state corrupt, 8 out of memory,\n"
    "10 bundle written but --export failed.\n";

/* Words wrapped into the option column of --help. */
static void help_words(const char *first, const char *text)
{
    int col = printf("%-25s", first);
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, " ");
        if (col > 25 && col + 1 + (int)n > 79) col = printf("\n%25s", "") - 1;
        col += printf("%s%.*s", col > 25 ? " " : "", (int)n, p);
        p += n;
        p += *p == ' ';
    }
    putchar('\n');
}

static void usage(void)
{
    char all[512], a8[256], text[1024];
    ptq_method_list(all, sizeof all, 0);
    a8[0] = 0;
    for (int i = 0; i < ptq_nmethods; i++)
        if (ptq_method_a8(&ptq_methods[i]))
            snprintf(a8 + strlen(a8), sizeof a8 - strlen(a8), "%s%s", a8[0] ? ", " : "",
                     ptq_methods[i].name);
    snprintf(text, sizeof text, "%s (default %s), or TRANSFORM+ROUNDER; 8-bit weights and "
             "activations: %s", all, ptq_method_default()->name, a8);
    fputs(usage_head, stdout);
    help_words("  --method M", text);
    fputs(usage_text, stdout);
}

/* --codebooks MxB (aqlm): M codebooks 1..8 of 2^B codewords, B 1..16 */
static int parse_codebooks(const char *cmd, const char *s, ptq_compile_opts *o)
{
    int m, b, n = 0;
    if (sscanf(s, "%dx%d%n", &m, &b, &n) != 2 || s[n] || m < 1 || b < 1)
        return cli_usage_error(cmd, "--codebooks: '%s' is not MxB with M, B >= 1 (e.g. 2x8)", s);
    if (m > 8 || b > 16)
        return cli_usage_error(cmd, "--codebooks %s: unsupported (M codebooks 1..8, B bits "
                               "1..16 per code)", s);
    o->q.aqlm_m = m, o->q.aqlm_b = b;
    return 0;
}

enum {
    O_METHOD = 256, O_BITS, O_GROUP, O_SYM, O_ASYM, O_MSE, O_ACTORDER, O_STATIC, O_DAMP, O_BLOCK,
    O_SKIP, O_CALIB, O_FIELD, O_NSAMPLES, O_SEQLEN, O_SEED, O_CHUNK, O_REPORT, O_TMPDIR, O_RESUME,
    O_THREADS, O_PROGRESS, O_QUIET, O_ALPHA, O_ACTSCALES, O_KVCACHE, O_AWQGRID, O_AWQTOKENS, O_AWQSCAN, O_RECIPE,
    O_EXPORT,
    O_NOACTORDER, O_NOSTATIC,
    O_CODEBOOKS, O_BEAM,
    O_HESSIANS,
    O_NOMSE,
    O_ROTATE
};

static const struct option longopts[] = {
    {"method", required_argument, 0, O_METHOD},     {"bits", required_argument, 0, O_BITS},
    {"group", required_argument, 0, O_GROUP},       {"sym", no_argument, 0, O_SYM},
    {"asym", no_argument, 0, O_ASYM},               {"mse", no_argument, 0, O_MSE},
    {"act-order", no_argument, 0, O_ACTORDER},      {"static-groups", no_argument, 0, O_STATIC},
    {"damp", required_argument, 0, O_DAMP},         {"block", required_argument, 0, O_BLOCK},
    {"skip", required_argument, 0, O_SKIP},         {"calib", required_argument, 0, O_CALIB},
    {"jsonl-field", required_argument, 0, O_FIELD}, {"nsamples", required_argument, 0, O_NSAMPLES},
    {"seqlen", required_argument, 0, O_SEQLEN},     {"seed", required_argument, 0, O_SEED},
    {"chunk-tokens", required_argument, 0, O_CHUNK}, {"report", required_argument, 0, O_REPORT},
    {"tmpdir", required_argument, 0, O_TMPDIR},     {"resume", no_argument, 0, O_RESUME},
    {"threads", required_argument, 0, O_THREADS},   {"progress", required_argument, 0, O_PROGRESS},
    {"quiet", no_argument, 0, O_QUIET},             {"output", required_argument, 0, 'o'},
    {"help", no_argument, 0, 'h'},                  {"alpha", required_argument, 0, O_ALPHA},
    {"act-scales", required_argument, 0, O_ACTSCALES}, {"kv-cache", required_argument, 0, O_KVCACHE},
    {"awq-grid", required_argument, 0, O_AWQGRID},  {"recipe", required_argument, 0, O_RECIPE},
    {"awq-search-tokens", required_argument, 0, O_AWQTOKENS},
    {"awq-scan", required_argument, 0, O_AWQSCAN},
    {"export", required_argument, 0, O_EXPORT},
    {"no-act-order", no_argument, 0, O_NOACTORDER}, {"no-static-groups", no_argument, 0, O_NOSTATIC},
    {"codebooks", required_argument, 0, O_CODEBOOKS}, {"beam", required_argument, 0, O_BEAM},
    {"hessians", required_argument, 0, O_HESSIANS},
    {"no-mse", no_argument, 0, O_NOMSE},
    {"rotate", required_argument, 0, O_ROTATE},
    {0, 0, 0, 0},
};

/* Flags that do not change the output bytes are left out of the recorded
 * command line (so --threads, --resume, ... give identical bundles), and the
 * output path is recorded by its file name only. */
static const char *const unrecorded[] = {"--threads", "--progress", "--quiet", "--resume",
                                         "--report", "--tmpdir", "--export"};
static const int unrecorded_arg[] = {1, 1, 0, 0, 1, 1, 1};

static int record_cmdline(int argc, char **argv, const char ***out)
{
    const char **v = calloc((size_t)argc + 2, sizeof *v);
    if (!v) return -1;
    int n = 0;
    v[n++] = "ptqc";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int drop = 0;
        for (size_t k = 0; k < sizeof unrecorded / sizeof *unrecorded; k++) {
            size_t l = strlen(unrecorded[k]);
            if (!strncmp(a, unrecorded[k], l) && (a[l] == 0 || a[l] == '=')) {
                drop = 1;
                if (a[l] == 0 && unrecorded_arg[k]) i++;
            }
        }
        if (drop) continue;
        const char *p;
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            v[n++] = a;
            p = strrchr(argv[i + 1], '/');
            v[n++] = p ? p + 1 : argv[i + 1];
            i++;
            continue;
        }
        if ((!strncmp(a, "--output=", 9) || (!strncmp(a, "-o", 2) && a[2])) && strrchr(a, '/')) {
            v[n++] = a[1] == 'o' ? "-o" : "--output";
            v[n++] = strrchr(a, '/') + 1;
            continue;
        }
        v[n++] = a;
    }
    *out = v;
    return n;
}

/* What the command line gives besides the engine's options. */
typedef struct args {
    ptq_compile_opts o;
    ptq_flags_given given;
    int threads, quiet, progress_mode;
    const char **calib, **skip;
    cx_list exports; /* --export */
    int act_order, static_groups; /* GPTQ: -1 default, 0 --no-..., 1 given */
} args;

static void defaults(args *a)
{
    ptq_compile_opts *o = &a->o;
    o->method = ptq_method_default();
    o->q.q.bits = 4;
    o->q.q.sym = 1;
    o->q.group = -1; /* default: 128 (lib/compile/plan.c) */
    o->q.damp = 0.01f;
    a->act_order = a->static_groups = -1; /* act-order, static groups (gptq_order) */
    o->q.block = 128;
    o->nsamples = 0; /* the engine's defaults (lib/compile/compile.h) */
    o->seqlen = 0;
    o->alpha = 0.5f;  /* SmoothQuant's default */
    o->awq_grid = 20; /* AWQ's n_grid (llm-awq) */
    a->progress_mode = PROG_AUTO;
}

/* One option c with its value optarg; 0 or a usage error's status. */
static int one_option(args *a, int c, const char *cmd)
{
    int rc = 0;
    long v;
    double d;
    switch (c) {
    case 'o': a->o.out = optarg; break;
    case O_METHOD:
        if (!(a->o.method = ptq_method_find(optarg))) {
            char list[512];
            ptq_method_list(list, sizeof list, 0);
            rc = cli_usage_error(cmd, "--method: '%s' is not %s", optarg, list);
        }
        break;
    case O_AWQGRID:
        a->given.awq_grid = 1;
        if (!(rc = cli_parse_long(cmd, "--awq-grid", optarg, 1, 1000, &v))) a->o.awq_grid = (int)v;
        break;
    case O_AWQTOKENS:
        a->given.awq_tokens = 1;
        if (!(rc = cli_parse_long(cmd, "--awq-search-tokens", optarg, 1, 1 << 24, &v)))
            a->o.awq_tokens = (int)v;
        break;
    case O_AWQSCAN:
        a->given.awq_scan = 1;
        if (!strcmp(optarg, "full")) a->o.awq_full_scan = 1;
        else if (!strcmp(optarg, "refine")) a->o.awq_full_scan = 0;
        else rc = cli_usage_error(cmd, "--awq-scan: '%s' is not full or refine", optarg);
        break;
    case O_RECIPE: a->o.recipe = optarg; break;
    case O_EXPORT: a->exports.spec[a->exports.n++] = optarg; break;
    case O_ALPHA:
        a->given.alpha = 1;
        if (!(rc = cli_parse_double(cmd, "--alpha", optarg, 0, 1, &d))) a->o.alpha = (float)d;
        break;
    case O_ACTSCALES:
        a->given.act_scales = 1;
        if (!strcmp(optarg, "static")) a->o.act_static = 1;
        else if (!strcmp(optarg, "dynamic")) a->o.act_static = 0;
        else rc = cli_usage_error(cmd, "--act-scales: '%s' is not static or dynamic", optarg);
        break;
    case O_KVCACHE:
        if (!strcmp(optarg, "int8")) a->o.kv_int8 = 1;
        else if (!strcmp(optarg, "fp")) a->o.kv_int8 = 0;
        else rc = cli_usage_error(cmd, "--kv-cache: '%s' is not int8 or fp", optarg);
        break;
    case O_BITS:
        a->given.bits = 1;
        if (!(rc = cli_parse_long(cmd, "--bits", optarg, 2, 8, &v))) a->o.q.q.bits = (int)v;
        break;
    case O_GROUP:
        a->given.group = 1;
        if (!(rc = cli_parse_long(cmd, "--group", optarg, 0, 1 << 20, &v))) a->o.q.group = (int)v;
        break;
    case O_SYM: a->o.q.q.sym = 1, a->o.sym_set = 1; break;
    case O_ASYM: a->o.q.q.sym = 0, a->o.sym_set = 1; break;
    case O_MSE: a->o.q.q.mse = 1, a->o.mse_set = 1; break;
    case O_NOMSE: a->o.q.q.mse = 0, a->o.mse_set = 1; break;
    case O_ACTORDER: a->act_order = 1; break;
    case O_NOACTORDER: a->act_order = 0; break;
    case O_STATIC: a->static_groups = 1; break;
    case O_NOSTATIC: a->static_groups = 0; break;
    case O_DAMP:
        if (!(rc = cli_parse_double(cmd, "--damp", optarg, 0, 10, &d))) a->o.q.damp = (float)d;
        break;
    case O_BLOCK:
        if (!(rc = cli_parse_long(cmd, "--block", optarg, 1, 1 << 16, &v))) a->o.q.block = (int)v;
        break;
    case O_SKIP: a->skip[a->o.nskip++] = optarg; break;
    case O_CALIB: a->calib[a->o.ncalib++] = optarg; break;
    case O_FIELD: a->o.jsonl_field = optarg; break;
    case O_NSAMPLES:
        if (!(rc = cli_parse_long(cmd, "--nsamples", optarg, 1, 1 << 20, &v))) a->o.nsamples = (int)v;
        break;
    case O_SEQLEN:
        if (!(rc = cli_parse_long(cmd, "--seqlen", optarg, 2, 1 << 20, &v))) a->o.seqlen = (int)v;
        break;
    case O_SEED:
        if (!(rc = cli_parse_long(cmd, "--seed", optarg, 0, 9007199254740992L, &v)))
            a->o.seed = (uint64_t)v;
        break;
    case O_CHUNK:
        if (!(rc = cli_parse_long(cmd, "--chunk-tokens", optarg, 1, 1 << 24, &v)))
            a->o.chunk_tokens = (int)v;
        break;
    case O_REPORT: a->o.report = optarg; break;
    case O_TMPDIR: a->o.tmpdir = optarg; break;
    case O_RESUME: a->o.resume = 1; break;
    case O_THREADS:
        if (!(rc = cli_parse_long(cmd, "--threads", optarg, 1, 4096, &v))) a->threads = (int)v;
        break;
    case O_PROGRESS:
        if (!strcmp(optarg, "auto")) a->progress_mode = PROG_AUTO;
        else if (!strcmp(optarg, "tty")) a->progress_mode = PROG_TTY;
        else if (!strcmp(optarg, "lines")) a->progress_mode = PROG_LINES;
        else if (!strcmp(optarg, "json")) a->progress_mode = PROG_JSON;
        else if (!strcmp(optarg, "none")) a->progress_mode = PROG_QUIET;
        else rc = cli_usage_error(cmd, "--progress: '%s' is not auto, tty, lines, json or none", optarg);
        break;
    case O_QUIET: a->quiet = 1; break;
    case O_CODEBOOKS: rc = parse_codebooks(cmd, optarg, &a->o); break;
    case O_HESSIANS:
        if (!strcmp(optarg, "sequential")) a->o.hessians = PTQ_HESS_SEQUENTIAL;
        else if (!strcmp(optarg, "layer")) a->o.hessians = PTQ_HESS_LAYER;
        else rc = cli_usage_error(cmd, "--hessians: '%s' is not sequential or layer", optarg);
        break;
    case O_ROTATE:
        if (!strcmp(optarg, "hadamard")) a->o.q.rotate = 1;
        else if (!strcmp(optarg, "none")) a->o.q.rotate = 0;
        else rc = cli_usage_error(cmd, "--rotate: '%s' is not hadamard or none", optarg);
        break;
    case O_BEAM:
        if (!(rc = cli_parse_long(cmd, "--beam", optarg, 1, 256, &v))) a->o.q.aqlm_beam = (int)v;
        break;
    }
    return rc;
}

/* GPTQ's column order and group grids: act-order with static groups unless
 * --no-act-order / --no-static-groups (ptqc-compile(1) gives the measurement).
 * The default applies to methods that round with GPTQ; elsewhere only a flag
 * given on the command line sets them, so the methods' checks refuse it. */
static void gptq_order(args *a)
{
    const ptq_method *m = a->o.method;
    int gptq = m->rounder == PTQ_RD_GPTQ && !ptq_method_a8(m);
    int ao = a->act_order >= 0 ? a->act_order : a->static_groups == 1 || gptq;
    a->o.q.act_order = ao;
    a->o.q.static_groups = ao && (a->static_groups >= 0 ? a->static_groups : 1);
}

/* The options and the MODEL; 0, -1 after --help, or a usage error's status. */
static int parse(args *a, int argc, char **argv)
{
    const char *cmd = "compile";
    int rc = 0, c;
    optind = 1;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage();
            return -1;
        }
        if (c == ':') rc = cli_usage_error(cmd, "%s: missing value", argv[optind - 1]);
        else if (c == '?') rc = cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        else rc = one_option(a, c, cmd);
    }
    if (!rc && optind != argc - 1)
        rc = cli_usage_error(cmd, optind >= argc ? "missing MODEL directory" : "one MODEL only");
    if (!rc && !a->o.out) rc = cli_usage_error(cmd, "missing -o OUT.ptq");
    if (!rc && a->static_groups == 1 && a->act_order == 0)
        rc = cli_usage_error(cmd, "--static-groups needs act-order (drop --no-act-order)");
    if (!rc) gptq_order(a);
    ptq_err e = {0, ""};
    if (!rc && ptq_method_check(&a->o, &a->given, &e)) rc = cli_usage_error(cmd, "%s", e.msg);
    if (!rc) a->o.model = argv[optind];
    if (!rc) rc = cx_check(&a->exports, &a->o);
    return rc;
}

int cmd_compile(int argc, char **argv)
{
    args a;
    memset(&a, 0, sizeof a);
    defaults(&a);
    a.calib = calloc((size_t)argc + 1, sizeof *a.calib);
    a.skip = calloc((size_t)argc + 1, sizeof *a.skip);
    a.exports.spec = calloc((size_t)argc + 1, sizeof *a.exports.spec);
    const char **rec = NULL;
    int rc = !a.calib || !a.skip || !a.exports.spec ? PTQ_ENOMEM : parse(&a, argc, argv);
    int nrec = rc ? 0 : record_cmdline(argc, argv, &rec);
    if (nrec < 0) rc = PTQ_ENOMEM;
    if (rc == PTQ_ENOMEM) fprintf(stderr, "ptqc compile: out of memory\n");
    if (rc) {
        free(a.calib);
        free(a.skip);
        cx_free(&a.exports);
        free(a.exports.spec);
        return rc < 0 ? 0 : rc;
    }
    ptq_compile_opts *o = &a.o;
    o->calib = a.calib;
    o->skip = a.skip;
    o->cmdline = rec;
    o->ncmdline = nrec;
    /* A write past RLIMIT_FSIZE must fail with EFBIG (a clean error), not
     * kill the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    o->threads = a.threads ? a.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    progress prog;
    ptq_compile_progress cb;
    progress_init(&prog, a.quiet ? PROG_QUIET : a.progress_mode);
    progress_callbacks(&prog, &cb);
    o->progress = &cb;
    ptq_err e = {0, ""};
    rc = ptq_compile(o, &e);
    if (rc) {
        progress_clear(&prog);
        cli_report(&e);
    }
    if (!rc) rc = cx_run(&a.exports, o->out, a.quiet);
    cx_free(&a.exports);
    free(a.exports.spec);
    free(rec);
    free(a.calib);
    free(a.skip);
    return rc;
}
