/* cmd_export.c - `ptqc export BUNDLE -o OUT --format F`: a bundle written as
 * a checkpoint directory another tool loads (ptqc-export(1); the exporters
 * are formats/export*.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "formats/bundle.h"
#include "formats/export.h"
#include "src/cli.h"

static const char export_help[] =
    "Usage: ptqc export BUNDLE -o OUT --format FORMAT [--allow-requantize] [--quiet]\n"
    "\n"
    "Write a .ptq bundle as a new checkpoint directory OUT in the layout another\n"
    "tool loads: config.json (with its quantization_config), tokenizer files and\n"
    "model.safetensors.  The quantized weights are repacked, never re-rounded: the\n"
    "export dequantizes to exactly the bundle's weights, or it is refused with the\n"
    "tensor named and the reason.\n"
    "\n"
    "  -o, --output OUT     the directory to create (must not exist)\n"
    "  -f, --format FORMAT  compressed-tensors (vLLM, transformers), gptq\n"
    "                       (AutoGPTQ/GPTQModel v1), awq (AutoAWQ GEMM, 4-bit) or\n"
    "                       gguf (llama.cpp; OUT is then one .gguf file)\n"
    "  --allow-requantize   gguf: requantize the linears no ggml type holds exactly\n"
    "                       (reporting the added error) instead of refusing\n"
    "  -q, --quiet          print nothing on success\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 written, 2 usage, 3 BUNDLE unreadable, 4 BUNDLE malformed,\n"
    "5 the format cannot hold a tensor of the bundle, 6 OUT exists or cannot be\n"
    "written, 7 a checksum mismatch, 8 out of memory.  On any error nothing is left\n"
    "behind.  See ptqc-export(1).\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {"allow-requantize", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *format = NULL;
    int quiet = 0, requant = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:f:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': format = optarg; break;
        case 'q': quiet = 1; break;
        case 'R': requant = 1; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: return cli_usage_error("export", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("export", "expected one BUNDLE argument");
    if (!out) return cli_usage_error("export", "-o OUT is required");
    if (!format) return cli_usage_error("export", "--format is required");
    if (!ptq_exporter_get(format)) {
        char list[256] = "";
        for (int i = 0; i < ptq_exporter_count(); i++) {
            if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, ptq_exporter_row(i)->name, sizeof list - strlen(list) - 1);
        }
        return cli_usage_error("export", "unknown --format '%s' (one of %s)", format, list);
    }
    ptq_bundle b;
    ptq_err e = {0};
    int rc = ptq_bundle_open(&b, argv[optind], 1, &e);
    if (rc) return cli_report(&e);
    ptq_export_opts xo = {requant, quiet ? NULL : stderr};
    rc = ptq_export_opt(&b, format, out, &xo, &e);
    ptq_bundle_close(&b);
    if (rc) return cli_report(&e);
    if (!quiet) printf("ptqc export: wrote %s (%s)\n", out, format);
    return 0;
}
