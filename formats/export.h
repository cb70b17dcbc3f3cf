/* export.h - write a ptqc bundle as a checkpoint other tools load
 * (ptqc-export(1)): a table of exporters, one row per target format, in the
 * spirit of the packed-format table (lib/qfmt/qfmt.h).
 *
 *   compressed-tensors  pack-quantized (llm-compressor -> vLLM)  export_ct.c
 *   gptq                AutoGPTQ / GPTQModel "gptq" v1           export_gptq.c
 *   awq                 AutoAWQ GEMM                             export_awq.c
 *   gguf                llama.cpp GGUF v3, one file              export_gguf.c
 *
 * Each row has a check, which refuses a bundle the format cannot represent
 * exactly (PTQ_EDATA, exit status 5, naming the tensor and the reason; nothing is
 * approximated), and a write, which fills a fresh directory with
 * config.json (the bundle's, with the format's quantization_config),
 * tokenizer.json, tokenizer_config.json (copied from the bundle), the
 * format's own files and model.safetensors: dense tensors (embeddings,
 * norms, kept linears) with their Hugging Face names in the bundle's dtype,
 * quantized linears as the format's tensors.
 *
 * ptq_export writes into OUT.tmp.XXXXXX beside OUT and renames it to OUT at
 * the end; on any error the temporary directory is removed and OUT is not
 * created.  OUT must not exist (PTQ_EOUTPUT).
 */
#ifndef PTQC_EXPORT_H
#define PTQC_EXPORT_H

#include <stdio.h>

#include "formats/bundle.h"
#include "lib/base/dtype.h"
#include "lib/base/err.h"

/* Options of one export (ptq_export_opt). */
typedef struct ptq_export_opts {
    int allow_requantize; /* gguf: requantize what no ggml type holds exactly */
    FILE *log;            /* notes and the requantization errors (NULL: silent) */
} ptq_export_opts;

typedef struct ptq_exporter {
    const char *name;   /* the --format value */
    const char *summary;
    /* PTQ_OK, or PTQ_EDATA naming the first tensor it cannot hold */
    int (*check)(const ptq_bundle *b, ptq_err *e);
    /* the files into the existing empty directory dir; b passed check */
    int (*write)(const ptq_bundle *b, const char *dir, ptq_err *e);
    /* A row writing one file (gguf) has check and write NULL and these
     * instead: OUT is then a file, written as OUT.tmp.XXXXXX and linked
     * into place at the end (never replacing a file). */
    int (*check_file)(const ptq_bundle *b, const ptq_export_opts *o, ptq_err *e);
    int (*write_file)(const ptq_bundle *b, FILE *f, const char *path, const ptq_export_opts *o,
                      ptq_err *e);
} ptq_exporter;

/* The row called name, or NULL; rows 0..ptq_exporter_count() - 1. */
const ptq_exporter *ptq_exporter_get(const char *name);
int ptq_exporter_count(void);
const ptq_exporter *ptq_exporter_row(int i);

/* Check b against format and write it as the new directory out (above). */
int ptq_export(const ptq_bundle *b, const char *format, const char *out, ptq_err *e);
/* The same with options (o may be NULL: none); allow_requantize with a
 * directory format is PTQ_EUSAGE. */
int ptq_export_opt(const ptq_bundle *b, const char *format, const char *out,
                   const ptq_export_opts *o, ptq_err *e);

/* ---- shared by the rows (formats/export.c) ---- */

/* The tensors of one model.safetensors, collected in order; data either
 * borrowed (the bundle's map) or owned (freed by ptq_ex_free). */
typedef struct ptq_ex_tensors ptq_ex_tensors;
ptq_ex_tensors *ptq_ex_new(void);
void ptq_ex_free(ptq_ex_tensors *t);
/* Append a 1-D or 2-D tensor (d1 = 0: 1-D of d0); own: data is malloc'ed
 * and becomes t's.  Returns PTQ_ENOMEM (freeing owned data) on failure. */
int ptq_ex_add(ptq_ex_tensors *t, const char *name, ptq_dtype dt, int64_t d0, int64_t d1,
               const void *data, int own, ptq_err *e);
/* The tensors so far, in order (*n of them; valid until the next add). */
const struct ptq_st_wtensor *ptq_ex_view(const ptq_ex_tensors *t, int *n);
/* Write dir/model.safetensors. */
int ptq_ex_write_st(const ptq_ex_tensors *t, const char *dir, ptq_err *e);
/* A dense tensor of b (format PTQ_QF_DENSE) added under its own name. */
int ptq_ex_add_dense(ptq_ex_tensors *t, const ptq_qtensor *q, const char *name, ptq_err *e);
/* config.json with "quantization_config": qc (taken over, may be NULL),
 * plus the tokenizer files, copied from the bundle into dir. */
int ptq_ex_write_hf_files(const ptq_bundle *b, const char *dir, struct cJSON *qc, ptq_err *e);
/* dir/name = the printed JSON j (not freed). */
int ptq_ex_write_json(const char *dir, const char *name, const struct cJSON *j, ptq_err *e);
/* 1 when name is one of the 7 linears' weights (model.layers.N.*_proj.weight);
 * then module = name less ".weight" (buffer of n bytes). */
int ptq_ex_linear(const char *name, char *module, size_t n);
/* fn(ctx, name, q, e) on each tensor of b in manifest order (q a view into
 * the map); stops at the first error. */
int ptq_ex_each(const ptq_bundle *b,
                int (*fn)(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e),
                void *ctx, ptq_err *e);
/* 1 when name is an int8 KV-cache scale (ends in PTQ_QFMT_KV_SUFFIX). */
int ptq_ex_is_kv_scale(const char *name);
/* The words naming a non-integer quantized q in a refusal: "FP8" or
 * "W8A8 (8-bit activations)". */
const char *ptq_ex_kind_words(const ptq_qtensor *q);
/* 1 when every zero point of q is 2^(bits-1) (the symmetric grid). */
int ptq_ex_is_sym(const ptq_qtensor *q);
/* 1 when q's group divides its input (no shorter last group). */
int ptq_ex_full_groups(const ptq_qtensor *q);
/* The unsigned code of (row r, column k) of an int tensor. */
uint32_t ptq_ex_code(const ptq_qtensor *q, int r, int k);

#endif
