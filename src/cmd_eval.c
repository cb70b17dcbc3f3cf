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

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
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

/* BOS + encode(text) with the model's tokenizer. */
static int encode_text(const eval_model *m, const char *text, size_t len, int32_t **ids,
                       size_t *n, int *bos_out, ptq_err *e)
{
    int32_t *body = NULL;
    size_t nb = 0;
    int rc = ptq_tok_encode(m->tok, text, len, 0, &body, &nb, e);
    if (rc) return ptq_fail_prefix(e, "%s: tokenizing the text", m->path);
    int bos = ptq_tok_bos(m->tok);
    if (bos < 0) bos = m->w.cfg->bos_id;
    *ids = malloc(sizeof(int32_t) * (nb + 1));
    if (!*ids) {
        free(body);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    size_t k = 0;
    if (bos >= 0) (*ids)[k++] = bos;
    if (nb) memcpy(*ids + k, body, sizeof(int32_t) * nb);
    *n = k + nb;
    *bos_out = bos;
    free(body);
    return PTQ_OK;
}

typedef struct prog_state {
    int on;
    double t0;
} prog_state;

static void on_progress(void *ud, long done, long total)
{
    prog_state *p = ud;
    if (!p->on) return;
    double el = cli_now() - p->t0;
    double eta = done ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\rwindow %ld/%ld  %.0f s elapsed  ETA %.0f s   ", done, total, el, eta);
    if (done == total) fprintf(stderr, "\r%60s\r", "");
    fflush(stderr);
}

static void hex(char *out, const uint8_t *b, int n)
{
    for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"text", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"reference", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 'j'},
        {"utf8", required_argument, NULL, 'u'},
        {"jsonl-field", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'J'},
        {"device", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "eval";
    char **texts = calloc((size_t)argc + 1, sizeof *texts);
    if (!texts) return PTQ_ENOMEM;
    int ntexts = 0, json = 0, cuda = 0;
    long ctx = DEFAULT_CTX, batch = 0, threads = 0;
    const char *ref_path = NULL;
    ptq_text_opts topts;
    memset(&topts, 0, sizeof topts);
    topts.utf8_policy = PTQ_UTF8_REPLACE;
    int c;
    optind = 1;
    opterr = 0;
    int rc = PTQ_OK;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': texts[ntexts++] = optarg; break;
        case 'c': rc = cli_parse_long(cmd, "--ctx", optarg, 2, 1L << 24, &ctx); break;
        case 'r': ref_path = optarg; break;
        case 'b': rc = cli_parse_long(cmd, "--batch", optarg, 1, 1L << 20, &batch); break;
        case 'j': rc = cli_parse_long(cmd, "--threads", optarg, 1, PTQ_EVAL_MAX_THREADS,
                                     &threads);
            break;
        case 'u':
            if (!strcmp(optarg, "replace")) topts.utf8_policy = PTQ_UTF8_REPLACE;
            else if (!strcmp(optarg, "strict")) topts.utf8_policy = PTQ_UTF8_STRICT;
            else rc = cli_usage_error(cmd, "--utf8: '%s' is not replace or strict", optarg);
            break;
        case 'f': topts.jsonl_field = optarg; break;
        case 'J': json = 1; break;
        case 'D':
            if (!strcmp(optarg, "cuda")) cuda = 1;
            else if (strcmp(optarg, "cpu")) rc = cli_usage_error(cmd, "--device: '%s' is not cpu or cuda", optarg);
            break;
        case 'h':
            fputs(usage_text, stdout);
            free(texts);
            return 0;
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
    if (!rc && ntexts == 0) rc = cli_usage_error(cmd, "--text FILE is required");
    if (!rc && cuda && ref_path) rc = cli_usage_error(cmd, "--reference needs --device cpu");
    if (rc) {
        free(texts);
        return rc;
    }
    const char *model_path = argv[optind];
    /* BLAS single-threaded: its threaded kernels round differently with the
     * thread count; ptq_eval_ppl runs --threads workers over a fixed cut of
     * the windows itself (lib/model/eval.h), so the figures do not depend on it. */
    cli_set_threads(1);
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > PTQ_EVAL_MAX_THREADS ? PTQ_EVAL_MAX_THREADS : n;
    }

    ptq_err e = {0};
    eval_model m = {0}, r = {0};
    ptq_text text = {0};
    char *all = NULL, *srcnames = join_sources(texts, ntexts);
    int32_t *ids = NULL, *rids = NULL;
    size_t n_ids = 0, n_rids = 0;
    int bos = -1, rbos = -1;
    ptq_eval_result res = {0};
    int have_res = 0;

    rc = eval_model_open(&m, model_path, &e);
    if (!rc && !m.tok)
        rc = ptq_fail(&e, PTQ_EFORMAT, "%s: no tokenizer.json: the model's tokenizer is needed "
                                       "to encode the text", model_path);
    if (!rc && cuda && !m.src.is_bundle)
        rc = ptq_fail(&e, PTQ_EUSAGE, "%s: --device cuda needs a .ptq bundle, not a checkpoint "
                                      "directory", model_path);
    if (!rc && ctx > m.w.cfg->max_pos)
        rc = ptq_fail(&e, PTQ_EUSAGE, "--ctx %ld exceeds %s's max_position_embeddings %d", ctx,
                      model_path, m.w.cfg->max_pos);
    if (!rc && ref_path) {
        rc = eval_model_open(&r, ref_path, &e);
        if (!rc && r.w.cfg->vocab != m.w.cfg->vocab)
            rc = ptq_fail(&e, PTQ_EDATA, "%s: vocabulary size %d differs from %s's %d", ref_path,
                          r.w.cfg->vocab, model_path, m.w.cfg->vocab);
        if (!rc && ctx > r.w.cfg->max_pos)
            rc = ptq_fail(&e, PTQ_EUSAGE, "--ctx %ld exceeds %s's max_position_embeddings %d",
                          ctx, ref_path, r.w.cfg->max_pos);
    }
    if (!rc) rc = ptq_text_read(&text, (const char *const *)texts, ntexts, &topts, &e);
    if (!rc) {
        if (text.total_bytes == 0) {
            rc = ptq_fail(&e, PTQ_EDATA, "%s: text is empty", srcnames);
        } else {
            all = malloc(text.total_bytes + 1);
            if (!all) rc = ptq_fail(&e, PTQ_ENOMEM, "out of memory");
        }
    }
    size_t len = 0;
    if (!rc) {
        for (int i = 0; i < text.ndocs; i++) {
            memcpy(all + len, text.docs[i].text, text.docs[i].len);
            len += text.docs[i].len;
        }
        all[len] = 0;
        size_t i = 0;
        while (i < len && is_space((unsigned char)all[i])) i++;
        if (len == 0) rc = ptq_fail(&e, PTQ_EDATA, "%s: text is empty", srcnames);
        else if (i == len) rc = ptq_fail(&e, PTQ_EDATA, "%s: contains only whitespace", srcnames);
    }
    if (!rc) rc = encode_text(&m, all, len, &ids, &n_ids, &bos, &e);
    if (!rc && ref_path && r.tok) {
        /* same tokenizer: the reference must encode the text to the same ids */
        rc = encode_text(&r, all, len, &rids, &n_rids, &rbos, &e);
        if (!rc) {
            size_t k = 0;
            while (k < n_ids && k < n_rids && ids[k] == rids[k]) k++;
            if (k < n_ids || k < n_rids)
                rc = ptq_fail(&e, PTQ_EDATA,
                              "%s and %s tokenize the text differently (first difference at "
                              "token %zu): the models must share a tokenizer",
                              model_path, ref_path, k);
        }
    }
    if (!rc && n_ids < (size_t)ctx)
        rc = ptq_fail(&e, PTQ_EDATA, "%s: the text has %zu tokens (with BOS), fewer than one "
                                     "window of ctx %ld", srcnames, n_ids, ctx);
    prog_state ps = {isatty(2) && !json, cli_now()};
    if (!rc && cuda) {
        rc = ptqc_eval_cuda(model_path, ids, n_ids, (int)ctx, &res, &e);
        have_res = !rc;
    } else if (!rc) {
        rc = ptq_eval_ppl(&m.w, ref_path ? &r.w : NULL, ids, n_ids, (int)ctx, (int)batch,
                          (int)threads, &res, on_progress, &ps, &e);
        have_res = !rc;
    }

    if (!rc && json) {
        cJSON *o = cJSON_CreateObject();
        char sha[65];
        hex(sha, text.sha256, 32);
        cJSON_AddStringToObject(o, "protocol", "ptqc-ppl-v1");
        cJSON_AddStringToObject(o, "model", model_path);
        cJSON_AddStringToObject(o, "device", cuda ? "cuda" : "cpu");
        if (ref_path) cJSON_AddStringToObject(o, "reference", ref_path);
        else cJSON_AddNullToObject(o, "reference");
        cJSON *ta = cJSON_AddArrayToObject(o, "text");
        for (int i = 0; i < ntexts; i++) cJSON_AddItemToArray(ta, cJSON_CreateString(texts[i]));
        cJSON_AddNumberToObject(o, "documents", text.ndocs);
        cJSON_AddNumberToObject(o, "text_bytes", (double)len);
        cJSON_AddStringToObject(o, "text_sha256", sha);
        cJSON_AddNumberToObject(o, "utf8_replaced", (double)text.n_replaced);
        if (bos >= 0) cJSON_AddNumberToObject(o, "bos", bos);
        else cJSON_AddNullToObject(o, "bos");
        cJSON_AddNumberToObject(o, "n_ids", (double)n_ids);
        cJSON_AddNumberToObject(o, "ctx", (double)ctx);
        cJSON_AddNumberToObject(o, "group", res.group);
        cJSON_AddNumberToObject(o, "batch", res.batch);
        cJSON_AddNumberToObject(o, "threads", res.threads);
        cJSON_AddNumberToObject(o, "windows", (double)res.windows);
        cJSON_AddNumberToObject(o, "predicted", (double)res.predicted);
        cJSON_AddNumberToObject(o, "dropped", (double)res.dropped);
        cJSON_AddNumberToObject(o, "nll_total", res.nll_total);
        cJSON_AddNumberToObject(o, "nll_mean", res.nll_mean);
        cJSON_AddNumberToObject(o, "ppl", res.ppl);
        if (ref_path) {
            cJSON_AddNumberToObject(o, "ref_ppl", res.ref_ppl);
            cJSON_AddNumberToObject(o, "kl_mean", res.kl_mean);
            cJSON_AddNumberToObject(o, "top1_agree", res.top1_agree);
        }
        cJSON_AddNumberToObject(o, "seconds", res.seconds);
        cJSON_AddNumberToObject(o, "tokens_per_s", res.tokens_per_s);
        cJSON_AddItemToObject(o, "window_nll",
                              cJSON_CreateDoubleArray(res.window_nll, (int)res.windows));
        char *s = cJSON_PrintUnformatted(o);
        if (s) {
            printf("%s\n", s);
            free(s);
        } else {
            rc = ptq_fail(&e, PTQ_ENOMEM, "out of memory printing JSON");
        }
        cJSON_Delete(o);
    } else if (!rc) {
        printf("model            %s\n", model_path);
        printf("text             %s (%zu bytes, %d document%s", srcnames, len, text.ndocs,
               text.ndocs == 1 ? "" : "s");
        if (text.n_replaced) printf(", %zu invalid UTF-8 sequences replaced", text.n_replaced);
        printf(")\n");
        printf("tokens           %zu (%s+ %zu from the text)\n", n_ids, bos >= 0 ? "BOS " : "",
               bos >= 0 ? n_ids - 1 : n_ids);
        printf("windows          %ld of ctx %ld: %ld predicted tokens, %ld dropped\n",
               res.windows, ctx, res.predicted, res.dropped);
        printf("perplexity       %.6f\n", res.ppl);
        printf("nll              %.6f mean, %.4f total (nats)\n", res.nll_mean, res.nll_total);
        if (ref_path) {
            printf("reference        %s: perplexity %.6f\n", ref_path, res.ref_ppl);
            printf("KL(ref||model)   %.6g nats per token (mean)\n", res.kl_mean);
            printf("top-1 agreement  %.4f %%\n", 100.0 * res.top1_agree);
        }
        printf("speed            %.1f tokens/s (%.2f s of forward passes%s, %d thread%s)\n",
               res.tokens_per_s, res.seconds, ref_path ? ", both models" : "", res.threads,
               res.threads == 1 ? "" : "s");
    }
    if (have_res) ptq_eval_result_free(&res);
    free(ids);
    free(rids);
    free(all);
    free(srcnames);
    ptq_text_free(&text);
    eval_model_close(&m);
    eval_model_close(&r);
    free(texts);
    if (rc) {
        if (ps.on) fprintf(stderr, "\r%60s\r", "");
        return cli_report(&e);
    }
    return 0;
}
