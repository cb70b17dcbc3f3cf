/* ptqc - post-training quantization compiler for LLMs.
 *
 * main() only dispatches: each subcommand lives in src/cmd_<name>.c, parses
 * its own flags with getopt_long, and returns an exit status from lib/base/err.h
 * (documented in ptqc(1)).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "src/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"compile", cmd_compile, "quantize a checkpoint layer by layer (RTN/GPTQ) into a bundle"},
    {"convert", cmd_convert, "write a .gguf or a model directory as a Hugging Face checkpoint"},
    {"export", cmd_export, "write a bundle as a compressed-tensors, GPTQ or AWQ checkpoint"},
    {"inspect", cmd_inspect, "show a checkpoint's or bundle's config, tensors and tokenizer"},
    {"eval", cmd_eval, "perplexity (ptqc-ppl-v1), KL divergence and top-1 agreement"},
    {"verify", cmd_verify, "check a bundle's checksums and manifest"},
    {"run", cmd_run, "generate text from a bundle on the GPU (libptqrt)"},
    {"bench", cmd_bench, "measure prefill and decode speed of a bundle on the GPU"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "Usage: ptqc [--help | --version] COMMAND [ARGS...]\n\n"
               "Post-training quantization compiler for Llama-family LLMs.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'ptqc COMMAND --help' for a command's options; see ptqc(1).\n"
               "Exit status: 0 success, 1 internal error, 2 usage, 3 input unreadable,\n"
               "4 input malformed, 5 data unusable, 6 output unwritable, 7 verification\n"
               "failed, 8 out of memory, 9 no GPU.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("ptqc %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ptqc: unknown command '%s'\nTry 'ptqc --help'.\n", argv[1]);
    return 2;
}
