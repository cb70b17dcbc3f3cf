/* cmd_eval.c - `ptqc eval`: perplexity (ptqc-ppl-v1) of a model on a text,
 * and with --reference the KL divergence and top-1 agreement against a second
 * model over the same windows.  See man/ptqc-eval.1.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/ppl_text.h"
#include "calib/text.h"
#include "formats/checkpoint.h"
#include "lib/model/eval.h"
#include "lib/runtime/runtime_cpu.h"
#include "src/cli.h"
#include "src/eval_cuda.h"

#define DEFAULT_CTX 128

static const char usage_text[] =
    "Usage: ptqc eval MODEL --text FILE [options]\n"
    "\n"
    "Perplexity of MODEL on a text by the ptqc-ppl-v1 protocol: BOS + the whole\n"
    "text tokenized with the model's tokenizer, cut into non-overlapping windows\n"
    "of --ctx tokens (the tail that does not fill a window is dropped), every\n"
    "window run from position 0; NLL summed over tokens 1..ctx-1 of each window.\n"
    "MODEL is a Hugging Face checkpoint directory or a .ptq bundle.\n"
    "\n"
    "Options:\n"
    "  --text FILE         text to evaluate (required; repeat to concatenate several\n"
    "                      sources in order; '-' is standard input)\n"
    "  --ctx N             window length in tokens, 2..max_position_embeddings\n"
    "                      (default 128)\n"
    "  --reference MODEL2  also run MODEL2 over the same windows: mean KL(MODEL2 ||\n"
    "                      MODEL), top-1 agreement and MODEL2's perplexity\n"
    "  --batch N           windows per round: memory and speed only, rounded up to\n"
    "                      whole groups (default: about 2048 tokens, at least one\n"
    "                      group per thread)\n"
    "  --threads N         workers, 1..64 (default: the number of online CPUs);\n"
    "                      the figures are the same bits for any --threads and --batch\n"
    "  --utf8 POLICY       invalid UTF-8 in the text: replace (default, U+FFFD) or strict\n"
    "  --jsonl-field F     take field F of each JSON line (.jsonl sources)\n"
    "  --json              print one JSON object with every figure\n"
    "  --device D          cpu (default) or cuda: the logits of a .ptq bundle from\n"
    "                      libptqrt on CUDA device 0 (no --reference)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 success, 2 usage, 3 input unreadable, 4 input malformed,\n"
    "5 data unusable (empty text, fewer tokens than one window, non-finite logits),\n"
    "7 bundle verification failed, 8 out of memory, 9 --device cuda without a CUDA\n"
    "device or in a ptqc built without CUDA.  See ptqc-eval(1).\n";

/* A model opened for evaluation: weights and the tokenizer. */
typedef struct eval_model {
    const char *path;
    ptq_model_src src;
    int open;
    ptq_weights w;
    const ptq_tokenizer *tok; /* NULL when the model has none */
} eval_model;

/* The one place that turns MODEL into a ptq_weights provider and a tokenizer:
 * a checkpoint directory or a .ptq bundle (lib/runtime/runtime_cpu.h). */
static int eval_model_open(eval_model *m, const char *path, ptq_err *e)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ptq_fail(e, PTQ_EIO, "%s: no such file or directory", path);
    int rc = ptq_model_src_open(&m->src, path, e);
    if (rc) return rc;
    m->open = 1;
    m->w = m->src.w;
    m->tok = m->src.tok;
    return PTQ_OK;
}

static void eval_model_close(eval_model *m)
{
    if (m->open) ptq_model_src_close(&m->src);
    m->open = 0;
}

/* "a, b, c" of the sources, for messages. */
static char *join_sources(char **src, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(src[i]) + 2;
    char *s = malloc(len);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, ", ");
        strcat(s, src[i]);
    }
    return s;
}

typedef struct prog_state {
    int on;
    double t0;
} prog_state;

static void on_progress(void *ud, long done, long total)
{
    prog_state *p = ud;
    if (!p->on) return;
    double el = ptq_now() - p->t0;
    double eta = done ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\rwindow %ld/%ld  %.0f s elapsed  ETA %.0f s   ", done, total, el, eta);
    if (done == total) fprintf(stderr, "\r%60s\r", "");
    fflush(stderr);
}

static void hex(char *out, const uint8_t *b, int n)
{
    for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

typedef struct eval_opts {
    char **texts; /* [ntexts] */
    int ntexts, json, cuda;
    long ctx, batch, threads;
    const char *model_path, *ref_path;
    ptq_text_opts topts;
} eval_opts;

/* Options and arguments into o (o->texts malloc'ed); 0, the exit status to
 * return, or -1 after --help. */
static int parse_opts(int argc, char **argv, eval_opts *o)
{
    static const struct option opts[] = {
        {"text", required_argument, NULL, 't'},     {"ctx", required_argument, NULL, 'c'},
        {"reference", required_argument, NULL, 'r'}, {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 'j'},  {"utf8", required_argument, NULL, 'u'},
        {"jsonl-field", required_argument, NULL, 'f'}, {"json", no_argument, NULL, 'J'},
        {"device", required_argument, NULL, 'D'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "eval";
    memset(o, 0, sizeof *o);
    o->ctx = DEFAULT_CTX;
    o->topts.utf8_policy = PTQ_UTF8_REPLACE;
    if (!(o->texts = calloc((size_t)argc + 1, sizeof *o->texts))) return PTQ_ENOMEM;
    int c, rc = PTQ_OK;
    optind = 1;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': o->texts[o->ntexts++] = optarg; break;
        case 'c': rc = cli_parse_long(cmd, "--ctx", optarg, 2, 1L << 24, &o->ctx); break;
        case 'r': o->ref_path = optarg; break;
        case 'b': rc = cli_parse_long(cmd, "--batch", optarg, 1, 1L << 20, &o->batch); break;
        case 'j': rc = cli_parse_long(cmd, "--threads", optarg, 1, PTQ_EVAL_MAX_THREADS,
                                     &o->threads);
            break;
        case 'u':
            if (!strcmp(optarg, "replace")) o->topts.utf8_policy = PTQ_UTF8_REPLACE;
            else if (!strcmp(optarg, "strict")) o->topts.utf8_policy = PTQ_UTF8_STRICT;
            else rc = cli_usage_error(cmd, "--utf8: '%s' is not replace or strict", optarg);
            break;
        case 'f': o->topts.jsonl_field = optarg; break;
        case 'J': o->json = 1; break;
        case 'D':
            if (!strcmp(optarg, "cuda")) o->cuda = 1;
            else if (strcmp(optarg, "cpu"))
                rc = cli_usage_error(cmd, "--device: '%s' is not cpu or cuda", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return -1;
        default:
            if (optopt && strchr("tcrbjufD", optopt))
                rc = cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
            else
                rc = cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
            break;
        }
    }
    if (!rc && optind >= argc) rc = cli_usage_error(cmd, "MODEL is missing");
    if (!rc && argc - optind > 1)
        rc = cli_usage_error(cmd, "one MODEL expected, got '%s' as well", argv[optind + 1]);
    if (!rc && o->ntexts == 0) rc = cli_usage_error(cmd, "--text FILE is required");
    if (!rc && o->cuda && o->ref_path) rc = cli_usage_error(cmd, "--reference needs --device cpu");
    if (!rc) o->model_path = argv[optind];
    return rc;
}

/* One evaluation: the models, the text, its ids, the result. */
typedef struct eval_job {
    eval_model m, r;
    ptq_text text;
    char *all, *srcnames;
    size_t len;
    int32_t *ids, *rids;
    size_t n_ids, n_rids;
    int bos, rbos;
    ptq_eval_result res;
    int have_res;
} eval_job;

/* MODEL and --reference, checked against each other and --ctx. */
static int open_models(const eval_opts *o, eval_job *j, ptq_err *e)
{
    const char *mp = o->model_path, *rp = o->ref_path;
    int rc = eval_model_open(&j->m, mp, e);
    if (!rc && !j->m.tok)
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: no tokenizer.json: the model's tokenizer is needed "
                                      "to encode the text", mp);
    if (!rc && o->cuda && !j->m.src.is_bundle)
        rc = ptq_fail(e, PTQ_EUSAGE, "%s: --device cuda needs a .ptq bundle, not a checkpoint "
                                     "directory", mp);
    if (!rc && o->ctx > j->m.w.cfg->max_pos)
        rc = ptq_fail(e, PTQ_EUSAGE, "--ctx %ld exceeds %s's max_position_embeddings %d", o->ctx,
                      mp, j->m.w.cfg->max_pos);
    if (rc || !rp) return rc;
    rc = eval_model_open(&j->r, rp, e);
    if (!rc && j->r.w.cfg->vocab != j->m.w.cfg->vocab)
        rc = ptq_fail(e, PTQ_EDATA, "%s: vocabulary size %d differs from %s's %d", rp,
                      j->r.w.cfg->vocab, mp, j->m.w.cfg->vocab);
    if (!rc && o->ctx > j->r.w.cfg->max_pos)
        rc = ptq_fail(e, PTQ_EUSAGE, "--ctx %ld exceeds %s's max_position_embeddings %d", o->ctx,
                      rp, j->r.w.cfg->max_pos);
    return rc;
}

/* Read the text, encode it with the model (and the reference: the same ids). */
static int make_ids(const eval_opts *o, eval_job *j, ptq_err *e)
{
    int rc = ptq_text_read(&j->text, (const char *const *)o->texts, o->ntexts, &o->topts, e);
    if (!rc) rc = ptq_ppl_join(&j->text, j->srcnames, &j->all, &j->len, e);
    if (!rc)
        rc = ptq_ppl_encode(j->m.tok, j->m.w.cfg->bos_id, j->all, j->len, o->model_path, &j->ids,
                            &j->n_ids, &j->bos, e);
    if (!rc && o->ref_path && j->r.tok) {
        rc = ptq_ppl_encode(j->r.tok, j->r.w.cfg->bos_id, j->all, j->len, o->ref_path, &j->rids,
                            &j->n_rids, &j->rbos, e);
        size_t k = rc ? 0 : ptq_ids_first_diff(j->ids, j->n_ids, j->rids, j->n_rids);
        if (!rc && (k < j->n_ids || k < j->n_rids))
            rc = ptq_fail(e, PTQ_EDATA,
                          "%s and %s tokenize the text differently (first difference at "
                          "token %zu): the models must share a tokenizer",
                          o->model_path, o->ref_path, k);
    }
    if (!rc && j->n_ids < (size_t)o->ctx)
        rc = ptq_fail(e, PTQ_EDATA, "%s: the text has %zu tokens (with BOS), fewer than one "
                                    "window of ctx %ld", j->srcnames, j->n_ids, o->ctx);
    return rc;
}

static int print_json(const eval_opts *o, const eval_job *j, ptq_err *e)
{
    const ptq_eval_result *res = &j->res;
    cJSON *x = cJSON_CreateObject();
    char sha[65];
    hex(sha, j->text.sha256, 32);
    cJSON_AddStringToObject(x, "protocol", "ptqc-ppl-v1");
    cJSON_AddStringToObject(x, "model", o->model_path);
    cJSON_AddStringToObject(x, "device", o->cuda ? "cuda" : "cpu");
    if (o->ref_path) cJSON_AddStringToObject(x, "reference", o->ref_path);
    else cJSON_AddNullToObject(x, "reference");
    cJSON *ta = cJSON_AddArrayToObject(x, "text");
    for (int i = 0; i < o->ntexts; i++) cJSON_AddItemToArray(ta, cJSON_CreateString(o->texts[i]));
    cJSON_AddNumberToObject(x, "documents", j->text.ndocs);
    cJSON_AddNumberToObject(x, "text_bytes", (double)j->len);
    cJSON_AddStringToObject(x, "text_sha256", sha);
    cJSON_AddNumberToObject(x, "utf8_replaced", (double)j->text.n_replaced);
    if (j->bos >= 0) cJSON_AddNumberToObject(x, "bos", j->bos);
    else cJSON_AddNullToObject(x, "bos");
    cJSON_AddNumberToObject(x, "n_ids", (double)j->n_ids);
    cJSON_AddNumberToObject(x, "ctx", (double)o->ctx);
    cJSON_AddNumberToObject(x, "group", res->group);
    cJSON_AddNumberToObject(x, "batch", res->batch);
    cJSON_AddNumberToObject(x, "threads", res->threads);
    cJSON_AddNumberToObject(x, "windows", (double)res->windows);
    cJSON_AddNumberToObject(x, "predicted", (double)res->predicted);
    cJSON_AddNumberToObject(x, "dropped", (double)res->dropped);
    cJSON_AddNumberToObject(x, "nll_total", res->nll_total);
    cJSON_AddNumberToObject(x, "nll_mean", res->nll_mean);
    cJSON_AddNumberToObject(x, "ppl", res->ppl);
    if (o->ref_path) {
        cJSON_AddNumberToObject(x, "ref_ppl", res->ref_ppl);
        cJSON_AddNumberToObject(x, "kl_mean", res->kl_mean);
        cJSON_AddNumberToObject(x, "top1_agree", res->top1_agree);
    }
    cJSON_AddNumberToObject(x, "seconds", res->seconds);
    cJSON_AddNumberToObject(x, "tokens_per_s", res->tokens_per_s);
    cJSON_AddItemToObject(x, "window_nll", cJSON_CreateDoubleArray(res->window_nll,
                                                                   (int)res->windows));
    char *s = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "out of memory printing JSON");
    printf("%s\n", s);
    free(s);
    return PTQ_OK;
}

static void print_text(const eval_opts *o, const eval_job *j)
{
    const ptq_eval_result *res = &j->res;
    printf("model            %s\n", o->model_path);
    printf("text             %s (%zu bytes, %d document%s", j->srcnames, j->len, j->text.ndocs,
           j->text.ndocs == 1 ? "" : "s");
    if (j->text.n_replaced)
        printf(", %zu invalid UTF-8 sequences replaced", j->text.n_replaced);
    printf(")\n");
    printf("tokens           %zu (%s+ %zu from the text)\n", j->n_ids, j->bos >= 0 ? "BOS " : "",
           j->bos >= 0 ? j->n_ids - 1 : j->n_ids);
    printf("windows          %ld of ctx %ld: %ld predicted tokens, %ld dropped\n",
           res->windows, o->ctx, res->predicted, res->dropped);
    printf("perplexity       %.6f\n", res->ppl);
    printf("nll              %.6f mean, %.4f total (nats)\n", res->nll_mean, res->nll_total);
    if (o->ref_path) {
        printf("reference        %s: perplexity %.6f\n", o->ref_path, res->ref_ppl);
        printf("KL(ref||model)   %.6g nats per token (mean)\n", res->kl_mean);
        printf("top-1 agreement  %.4f %%\n", 100.0 * res->top1_agree);
    }
    printf("speed            %.1f tokens/s (%.2f s of forward passes%s, %d thread%s)\n",
           res->tokens_per_s, res->seconds, o->ref_path ? ", both models" : "", res->threads,
           res->threads == 1 ? "" : "s");
}

static void job_free(eval_job *j)
{
    if (j->have_res) ptq_eval_result_free(&j->res);
    free(j->ids);
    free(j->rids);
    free(j->all);
    free(j->srcnames);
    ptq_text_free(&j->text);
    eval_model_close(&j->m);
    eval_model_close(&j->r);
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) {
        free(o.texts);
        return rc < 0 ? 0 : rc;
    }
    /* BLAS single-threaded: its threaded kernels round differently with the
     * thread count; ptq_eval_ppl runs --threads workers over a fixed cut of
     * the windows itself (lib/model/eval.h), so the figures do not depend on it. */
    cli_set_threads(1);
    if (!o.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n < 1 ? 1 : n > PTQ_EVAL_MAX_THREADS ? PTQ_EVAL_MAX_THREADS : n;
    }
    ptq_err e = {0};
    eval_job j;
    memset(&j, 0, sizeof j);
    j.bos = j.rbos = -1;
    j.srcnames = join_sources(o.texts, o.ntexts);
    rc = open_models(&o, &j, &e);
    if (!rc) rc = make_ids(&o, &j, &e);
    prog_state ps = {isatty(2) && !o.json, ptq_now()};
    if (!rc && o.cuda)
        rc = ptqc_eval_cuda(o.model_path, j.ids, j.n_ids, (int)o.ctx, &j.res, &e);
    else if (!rc)
        rc = ptq_eval_ppl(&j.m.w, o.ref_path ? &j.r.w : NULL, j.ids, j.n_ids, (int)o.ctx,
                          (int)o.batch, (int)o.threads, &j.res, on_progress, &ps, &e);
    j.have_res = !rc;
    if (!rc && o.json) rc = print_json(&o, &j, &e);
    else if (!rc) print_text(&o, &j);
    job_free(&j);
    free(o.texts);
    if (rc) {
        if (ps.on) fprintf(stderr, "\r%60s\r", "");
        return cli_report(&e);
    }
    return 0;
}
