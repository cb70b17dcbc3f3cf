/* cmd_convert.c - `ptqc convert SRC -o DIR`: a .gguf or a model directory
 * written as a Hugging Face checkpoint directory (ptqc-convert(1); the
 * conversion is formats/convert.c). */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/convert.h"
#include "src/cli.h"

static const char convert_help[] =
    "Usage: ptqc convert SRC -o DIR [--dtype f16|bf16|f32] [--shard-size SIZE] [--quiet]\n"
    "\n"
    "Write SRC (a llama.cpp .gguf file or a Hugging Face model directory) as a new\n"
    "Hugging Face checkpoint directory DIR: config.json, model.safetensors (or shards\n"
    "with model.safetensors.index.json), tokenizer.json, tokenizer_config.json.\n"
    "Weights are dequantized/widened to float32 and rounded once to the dtype.\n"
    "\n"
    "  -o, --output DIR       the directory to create (must not exist)\n"
    "      --dtype T          f16 (default), bf16 or f32; f16 refuses a value with\n"
    "                         |x| > 65504\n"
    "      --shard-size SIZE  most tensor bytes per safetensors file: a number with an\n"
    "                         optional suffix K, M, G (10^3..) or KiB, MiB, GiB\n"
    "                         (default 5GB, as transformers)\n"
    "  -q, --quiet            no progress on stderr\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 written, 2 usage, 3 SRC unreadable, 4 SRC malformed, 5 a value\n"
    "does not fit the dtype, 6 DIR exists or cannot be written, 8 out of memory.\n"
    "On any error nothing is left behind.  See ptqc-convert(1).\n";

/* "5GB", "100MiB", "4096": bytes, or 0 when malformed. */
static unsigned long long parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return 0;
    static const struct { const char *suf; double mul; } u[] = {
        {"", 1},        {"B", 1},         {"K", 1e3},          {"KB", 1e3},
        {"M", 1e6},     {"MB", 1e6},      {"G", 1e9},          {"GB", 1e9},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) {
        const char *a = end, *b = u[i].suf;
        while (*a && *b && toupper((unsigned char)*a) == toupper((unsigned char)*b)) a++, b++;
        if (!*a && !*b) {
            double n = v * u[i].mul;
            return n >= 1 && n < 1.8e19 ? (unsigned long long)n : 0;
        }
    }
    return 0;
}

static void on_tensor(void *ctx, int done, int total, const char *name)
{
    (void)ctx;
    if (isatty(2) || done == total)
        fprintf(stderr, "\rptqc convert: tensor %d/%d %-48.48s%s", done, total, name,
                done == total ? "\n" : "");
}

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"dtype", required_argument, NULL, 'd'},
        {"shard-size", required_argument, NULL, 's'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    ptq_convert_opts o = {.dtype = PTQ_DT_F16};
    const char *out = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'd':
            if (!strcmp(optarg, "f16")) o.dtype = PTQ_DT_F16;
            else if (!strcmp(optarg, "bf16")) o.dtype = PTQ_DT_BF16;
            else if (!strcmp(optarg, "f32")) o.dtype = PTQ_DT_F32;
            else return cli_usage_error("convert", "--dtype '%s': expected f16, bf16 or f32", optarg);
            break;
        case 's':
            if (!(o.shard_size = parse_size(optarg)))
                return cli_usage_error("convert", "--shard-size '%s': expected a size such as "
                                       "2GB, 500MB or 1048576", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(convert_help, stdout); return 0;
        default: return cli_usage_error("convert", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("convert", "expected one SRC argument");
    if (!out) return cli_usage_error("convert", "-o DIR is required");
    if (!quiet) o.progress = on_tensor;
    ptq_convert_result r;
    ptq_err e = {0};
    double t0 = ptq_now();
    int rc = ptq_convert(argv[optind], out, &o, &r, &e);
    if (rc) {
        if (!quiet && isatty(2)) fputc('\n', stderr); /* after a progress line */
        return cli_report(&e);
    }
    if (!quiet)
        fprintf(stderr, "ptqc convert: wrote %s: %d tensors, %.1f MB in %d file%s, %.1f s\n", out,
                r.tensors, (double)r.bytes / 1e6, r.shards, r.shards == 1 ? "" : "s",
                ptq_now() - t0);
    return 0;
}
