/* cmd_compile.c - `ptqc compile MODEL -o OUT.ptq`: flags, then lib/compile/compile.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/cli.h"
#include "lib/compile/compile.h"
#include "src/progress.h"

static const char usage_text[] =
    "Usage: ptqc compile MODEL -o OUT.ptq [OPTIONS]\n"
    "\n"
    "Quantize a Hugging Face Llama-family checkpoint directory layer by layer\n"
    "and write a bundle.  See ptqc-compile(1).\n"
    "\n"
    "Quantization:\n"
    "  --method M             rtn, gptq (default), awq, awq+gptq, or the 8-bit\n"
    "                         weight x 8-bit activation methods smoothquant,\n"
    "                         smoothquant+gptq, w8a8 (int8 without smoothing)\n"
    "                         and fp8 (E4M3)\n"
    "  --awq-grid N           AWQ: points of the scale and clip searches (default 20)\n"
    "  --recipe FILE          per-layer methods and settings (JSON; ptqc-compile(1))\n"
    "  --alpha X              SmoothQuant migration strength in [0, 1] (default 0.5)\n"
    "  --act-scales MODE      8-bit methods: dynamic (per token, default) or static\n"
    "                         (per tensor, calibrated)\n"
    "  --kv-cache MODE        fp (default) or int8: static per-head, per-channel\n"
    "                         K/V scales\n"
    "  --bits N               bits per weight, 2..8 (default 4)\n"
    "  --group N              columns per group: 32, 64, 128, ... dividing every\n"
    "                         input size, or 0 = one group per output channel\n"
    "                         (default 128, or 0 when 128 does not divide)\n"
    "  --sym / --asym         symmetric or asymmetric grid (default symmetric;\n"
    "                         asymmetric for awq and awq+gptq)\n"
    "  --mse                  clipping search for each group's range\n"
    "  --act-order            GPTQ: columns in order of decreasing Hessian diagonal\n"
    "  --static-groups        with --act-order: groups fixed before the permutation\n"
    "                         (otherwise a g_idx is stored)\n"
    "  --damp X               GPTQ dampening, fraction of the mean diagonal (0.01);\n"
    "                         raised x10 with a warning while Cholesky fails\n"
    "  --block N              GPTQ lazy-batch block size (default 128)\n"
    "  --skip PATTERN         keep linears whose tensor name matches (fnmatch) dense;\n"
    "                         repeatable\n"
    "Calibration:\n"
    "  --calib SOURCE         calibration text: file, directory, JSONL, archive, or -;\n"
    "                         repeatable.  None: the model writes its own samples\n"
    "  --jsonl-field NAME     field of JSONL records (default text)\n"
    "  --nsamples N           calibration windows (default 128)\n"
    "  --seqlen N             tokens per window (default 2048, clipped to the context)\n"
    "  --seed N               seed of window offsets / data-free sampling (default 0)\n"
    "  --chunk-tokens N       tokens per forward chunk (default 512)\n"
    "Run:\n"
    "  -o, --output OUT.ptq   the bundle to write (required)\n"
    "  --report FILE.json     per-linear errors, memory and time by step\n"
    "  --tmpdir DIR           keep calibration activations and resume states in DIR\n"
    "  --resume               continue a killed run after its last finished layer\n"
    "  --threads N            workers over calibration chunks (default: CPUs);\n"
    "                         does not change the output\n"
    "  --progress=MODE        auto, tty, lines, json or none (default auto)\n"
    "  --quiet                no progress (warnings still shown)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 success, 1 internal error, 2 usage (bad flag, --group not\n"
    "dividing, --alpha outside [0, 1], journal mismatch on --resume, a recipe\n"
    "pattern matching no linear), 3 input unreadable, 4 input malformed (also\n"
    "a recipe file), 5 data unusable (zero calibration tokens,\n"
    "NaN/Inf weights or calibration activations, singular Hessian), 6 output unwritable, 7 resume state corrupt, 8 out of memory.\n";

enum {
    O_METHOD = 256, O_BITS, O_GROUP, O_SYM, O_ASYM, O_MSE, O_ACTORDER, O_STATIC, O_DAMP, O_BLOCK,
    O_SKIP, O_CALIB, O_FIELD, O_NSAMPLES, O_SEQLEN, O_SEED, O_CHUNK, O_REPORT, O_TMPDIR, O_RESUME,
    O_THREADS, O_PROGRESS, O_QUIET, O_ALPHA, O_ACTSCALES, O_KVCACHE, O_AWQGRID, O_RECIPE
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
    {0, 0, 0, 0},
};

/* Flags that do not change the output bytes are left out of the recorded
 * command line (so --threads, --resume, ... give identical bundles), and the
 * output path is recorded by its file name only. */
static const char *const unrecorded[] = {"--threads", "--progress", "--quiet", "--resume",
                                         "--report", "--tmpdir"};
static const int unrecorded_arg[] = {1, 1, 0, 0, 1, 1};

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

int cmd_compile(int argc, char **argv)
{
    const char *cmd = "compile";
    ptq_compile_opts o;
    memset(&o, 0, sizeof o);
    o.method = PTQ_METHOD_GPTQ;
    o.q.q.bits = 4;
    o.q.q.sym = 1;
    o.q.group = -1; /* auto: 128 when it divides, else 0 */
    o.q.damp = 0.01f;
    o.q.block = 128;
    o.nsamples = 128;
    o.seqlen = 2048;
    o.progress = PROG_AUTO;
    o.alpha = 0.5f; /* SmoothQuant's default */
    int threads = 0, quiet = 0, bits_set = 0, group_set = 0, alpha_set = 0, acts_set = 0;
    int awq_grid_set = 0;
    o.awq_grid = 20; /* AWQ's n_grid (llm-awq) */
    const char **calib = calloc((size_t)argc + 1, sizeof *calib);
    const char **skip = calloc((size_t)argc + 1, sizeof *skip);
    if (!calib || !skip) {
        fprintf(stderr, "ptqc compile: out of memory\n");
        return PTQ_ENOMEM;
    }
    int rc = 0, c;
    long v;
    double d;
    optind = 1;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'h':
            fputs(usage_text, stdout);
            free(calib);
            free(skip);
            return 0;
        case O_METHOD:
            if (!strcmp(optarg, "rtn")) o.method = PTQ_METHOD_RTN;
            else if (!strcmp(optarg, "gptq")) o.method = PTQ_METHOD_GPTQ;
            else if (!strcmp(optarg, "smoothquant")) o.method = PTQ_METHOD_SQ;
            else if (!strcmp(optarg, "smoothquant+gptq")) o.method = PTQ_METHOD_SQ_GPTQ;
            else if (!strcmp(optarg, "w8a8")) o.method = PTQ_METHOD_W8A8;
            else if (!strcmp(optarg, "fp8")) o.method = PTQ_METHOD_FP8;
            else if (!strcmp(optarg, "awq")) o.method = PTQ_METHOD_AWQ;
            else if (!strcmp(optarg, "awq+gptq")) o.method = PTQ_METHOD_AWQ_GPTQ;
            else rc = cli_usage_error(cmd, "--method: '%s' is not rtn, gptq, awq, awq+gptq, "
                                      "smoothquant, smoothquant+gptq, w8a8 or fp8", optarg);
            break;
        case O_AWQGRID:
            awq_grid_set = 1;
            if (!(rc = cli_parse_long(cmd, "--awq-grid", optarg, 1, 1000, &v))) o.awq_grid = (int)v;
            break;
        case O_RECIPE: o.recipe = optarg; break;
        case O_ALPHA:
            alpha_set = 1;
            if (!(rc = cli_parse_double(cmd, "--alpha", optarg, 0, 1, &d))) o.alpha = (float)d;
            break;
        case O_ACTSCALES:
            acts_set = 1;
            if (!strcmp(optarg, "static")) o.act_static = 1;
            else if (!strcmp(optarg, "dynamic")) o.act_static = 0;
            else rc = cli_usage_error(cmd, "--act-scales: '%s' is not static or dynamic", optarg);
            break;
        case O_KVCACHE:
            if (!strcmp(optarg, "int8")) o.kv_int8 = 1;
            else if (!strcmp(optarg, "fp")) o.kv_int8 = 0;
            else rc = cli_usage_error(cmd, "--kv-cache: '%s' is not int8 or fp", optarg);
            break;
        case O_BITS:
            bits_set = 1;
            if (!(rc = cli_parse_long(cmd, "--bits", optarg, 2, 8, &v))) o.q.q.bits = (int)v;
            break;
        case O_GROUP:
            group_set = 1;
            if (!(rc = cli_parse_long(cmd, "--group", optarg, 0, 1 << 20, &v))) o.q.group = (int)v;
            break;
        case O_SYM: o.q.q.sym = 1, o.sym_set = 1; break;
        case O_ASYM: o.q.q.sym = 0, o.sym_set = 1; break;
        case O_MSE: o.q.q.mse = 1; break;
        case O_ACTORDER: o.q.act_order = 1; break;
        case O_STATIC: o.q.static_groups = 1; break;
        case O_DAMP:
            if (!(rc = cli_parse_double(cmd, "--damp", optarg, 0, 10, &d))) o.q.damp = (float)d;
            break;
        case O_BLOCK:
            if (!(rc = cli_parse_long(cmd, "--block", optarg, 1, 1 << 16, &v))) o.q.block = (int)v;
            break;
        case O_SKIP: skip[o.nskip++] = optarg; break;
        case O_CALIB: calib[o.ncalib++] = optarg; break;
        case O_FIELD: o.jsonl_field = optarg; break;
        case O_NSAMPLES:
            if (!(rc = cli_parse_long(cmd, "--nsamples", optarg, 1, 1 << 20, &v))) o.nsamples = (int)v;
            break;
        case O_SEQLEN:
            if (!(rc = cli_parse_long(cmd, "--seqlen", optarg, 2, 1 << 20, &v))) o.seqlen = (int)v;
            break;
        case O_SEED:
            if (!(rc = cli_parse_long(cmd, "--seed", optarg, 0, 9007199254740992L, &v)))
                o.seed = (uint64_t)v;
            break;
        case O_CHUNK:
            if (!(rc = cli_parse_long(cmd, "--chunk-tokens", optarg, 1, 1 << 24, &v)))
                o.chunk_tokens = (int)v;
            break;
        case O_REPORT: o.report = optarg; break;
        case O_TMPDIR: o.tmpdir = optarg; break;
        case O_RESUME: o.resume = 1; break;
        case O_THREADS:
            if (!(rc = cli_parse_long(cmd, "--threads", optarg, 1, 4096, &v))) threads = (int)v;
            break;
        case O_PROGRESS:
            if (!strcmp(optarg, "auto")) o.progress = PROG_AUTO;
            else if (!strcmp(optarg, "tty")) o.progress = PROG_TTY;
            else if (!strcmp(optarg, "lines")) o.progress = PROG_LINES;
            else if (!strcmp(optarg, "json")) o.progress = PROG_JSON;
            else if (!strcmp(optarg, "none")) o.progress = PROG_QUIET;
            else rc = cli_usage_error(cmd, "--progress: '%s' is not auto, tty, lines, json or none", optarg);
            break;
        case O_QUIET: quiet = 1; break;
        case ':': rc = cli_usage_error(cmd, "%s: missing value", argv[optind - 1]); break;
        default: rc = cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (!rc && optind != argc - 1)
        rc = cli_usage_error(cmd, optind >= argc ? "missing MODEL directory" : "one MODEL only");
    if (!rc && !o.out) rc = cli_usage_error(cmd, "missing -o OUT.ptq");
    if (!rc && o.q.static_groups && !o.q.act_order)
        rc = cli_usage_error(cmd, "--static-groups needs --act-order");
    if (!rc && o.method == PTQ_METHOD_RTN && o.q.act_order)
        rc = cli_usage_error(cmd, "--act-order is a GPTQ option");
    int a8 = o.method >= PTQ_METHOD_SQ && o.method <= PTQ_METHOD_FP8;
    int awq = o.method == PTQ_METHOD_AWQ || o.method == PTQ_METHOD_AWQ_GPTQ;
    if (!rc && o.method == PTQ_METHOD_AWQ && o.q.act_order)
        rc = cli_usage_error(cmd, "--act-order is a GPTQ option (use awq+gptq)");
    if (!rc && awq && o.q.q.mse)
        rc = cli_usage_error(cmd, "--mse does not apply to --method %s (AWQ searches its own "
                                  "clipping)", ptq_method_name(o.method));
    if (!rc && awq_grid_set && !awq && !o.recipe)
        rc = cli_usage_error(cmd, "--awq-grid is an awq / awq+gptq option");
    if (!rc && a8 && o.recipe)
        rc = cli_usage_error(cmd, "--recipe mixes the weight-only methods (rtn, gptq, awq, "
                                  "awq+gptq); it does not combine with --method %s",
                             ptq_method_name(o.method));
    if (!rc && a8 && (bits_set || group_set || o.q.act_order || o.q.q.mse))
        rc = cli_usage_error(cmd, "--bits, --group, --act-order and --mse do not apply to "
                                  "--method %s (8 bits, one scale per output channel)",
                             ptq_method_name(o.method));
    if (!rc && alpha_set && o.method != PTQ_METHOD_SQ && o.method != PTQ_METHOD_SQ_GPTQ)
        rc = cli_usage_error(cmd, "--alpha is a smoothquant option");
    if (!rc && acts_set && !a8)
        rc = cli_usage_error(cmd, "--act-scales applies to smoothquant, smoothquant+gptq, w8a8 "
                                  "and fp8");
    if (rc) {
        free(calib);
        free(skip);
        return rc;
    }
    if (quiet) o.progress = PROG_QUIET;
    o.model = argv[optind];
    o.calib = calib;
    o.skip = skip;
    const char **rec = NULL;
    int nrec = record_cmdline(argc, argv, &rec);
    if (nrec < 0) {
        fprintf(stderr, "ptqc compile: out of memory\n");
        return PTQ_ENOMEM;
    }
    o.cmdline = rec;
    o.ncmdline = nrec;
    /* A write past RLIMIT_FSIZE must fail with EFBIG (a clean error), not
     * kill the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* BLAS single-threaded: its threaded kernels round differently with the
     * thread count; the engine runs --threads workers itself. */
    cli_set_threads(1);
    o.threads = threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    ptq_err e = {0, ""};
    rc = ptq_compile(&o, &e);
    if (rc) cli_report(&e);
    free(rec);
    free(calib);
    free(skip);
    return rc;
}
