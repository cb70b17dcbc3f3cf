/* compile.c - see compile.h.
 *
 * Precision: hidden states between layers are stored in FP16 (lib/base/half.h),
 * widened to float32 one chunk of samples at a time for the layer's forward
 * pass.  H = 2/N sum x x^T is accumulated by lib/quant/hessian.c: each chunk's
 * X^T X is one float32 ssyrk (BLAS speed on the O(N cols^2) part) added into
 * a float64 accumulator, so summing over up to 128 x 2048 tokens does not
 * lose precision that float32 would.
 *
 * Reproducibility: OpenBLAS's multithreaded sgemm/ssyrk round differently
 * with different thread counts, so BLAS runs single-threaded here and
 * --threads runs chunks of calibration samples on that many workers
 * (layer_pass); every number is computed the same way for any --threads.  The relative output error of a linear
 * on the calibration data, ||W X - Wq X||^2 / ||W X||^2, equals
 * tr(dW H dW^T) / tr(W H W^T) with the undamped H, so it is computed from H.
 */
#include "lib/compile/compile.h"

#include <cJSON.h>
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/samples.h"
#include "calib/text.h"
#include "config.h"
#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "formats/tokenizer.h"
#include "lib/base/file.h"
#include "lib/model/generate.h"
#include "lib/base/half.h"
#include "lib/quant/hessian.h"
#include "lib/base/sha256.h"
#include "lib/quant/smoothquant.h"
#include "lib/qfmt/w8a8.h"
#include "src/cli.h"
#include "lib/compile/journal.h"
#include "src/progress.h"
#include "lib/compile/awq_step.h"
#include "lib/compile/recipe.h"

#define PTQ_MAX_WORKERS 64

/* Steps whose wall time the report splits. */
enum { T_HASH, T_CALIB, T_EMBED, T_CAPTURE, T_QUANT, T_ERROR, T_FORWARD, T_WRITE, T_NSTEPS };
static const char *const step_names[T_NSTEPS] = {"hash", "calibration", "embed", "capture_hessian",
                                                 "quantize", "error", "forward", "write"};

/* The four groups of linears, quantized in this order. */
static const int group_first[4] = {PTQ_Q, PTQ_O, PTQ_GATE, PTQ_DOWN};
static const int group_count[4] = {3, 1, 2, 1};
static const char *const group_step[4] = {"qkv", "o", "mlp", "down"};

/* What happens to one linear: the command line's settings, then --recipe. */
typedef struct lin_plan {
    int method;                 /* enum ptq_method */
    ptq_gptq_opts q;            /* bits, sym, group, ... */
    int skip;                   /* kept dense */
} lin_plan;

typedef struct cstate {
    const ptq_compile_opts *o;
    ptq_gptq_opts q;            /* o->q with the group resolved */
    lin_plan *plan;             /* [n_layers * PTQ_NLINEAR] */
    recipe rec;                 /* --recipe, or empty */
    float *wclip;               /* [max rows*cols] weights clamped to the AWQ clips */
    awq_layer_res awq;          /* the AWQ step of the current layer */
    progress prog;
    ptq_checkpoint ck;
    int ck_open;
    const ptq_config *cfg;
    ptq_weights src;
    ptq_samples smp;            /* the calibration windows (empty after a resume) */
    int nsamples, seqlen;       /* N = nsamples * seqlen tokens */
    size_t ntok;
    uint16_t *hidden;           /* [ntok, D] FP16 */
    size_t hidden_bytes;
    int hidden_mapped;
    cJSON *key;                 /* journal key */
    cJSON *state;               /* {"calibration":{...},"layers":[...]} */
    cJSON *files;               /* provenance: source files */
    ptq_bundle_writer *bw;
    char *partial_path, *journal_path;
    char *hidden_path;          /* current resume state file, or NULL */
    double t[T_NSTEPS];
    /* per layer work */
    int nworkers;               /* --threads: chunks run in parallel */
    ptq_fwd *fwds[PTQ_MAX_WORKERS];
    int chunk;                  /* samples per forward chunk */
    float *x32s[PTQ_MAX_WORKERS]; /* [chunk*seqlen, D] per worker */
    float *caps[PTQ_MAX_WORKERS]; /* [chunk*seqlen, max cols] per worker */
    float *x32;                 /* = x32s[0] (scratch of the main thread) */
    float *H, *Hw;              /* [maxcols^2] */
    float *wq;                  /* [max rows*cols] dequantized weights */
    float *errbuf;              /* [rows block, cols] */
    size_t mem_weights, mem_acts, mem_hess;
    /* 8-bit methods and the int8 KV cache (lib/compile/compile.c's a8 part) */
    float *amax;                /* [maxcols] max |x| per input channel of the last capture */
    float *kvcaps[PTQ_MAX_WORKERS]; /* [chunk*seqlen, 2 kv_dim] keys, values per worker */
    float *kvmax;               /* [2 kv_dim] max |k|, max |v| per channel; NULL: no KV */
    float *kvscale;             /* [2 kv_dim] the layer's KV scales, keys then values */
} cstate;

const char *ptq_method_name(int m)
{
    static const char *const names[] = {"rtn", "gptq", "smoothquant", "smoothquant+gptq",
                                        "w8a8", "fp8", "awq", "awq+gptq"};
    return m >= 0 && m <= PTQ_METHOD_AWQ_GPTQ ? names[m] : "?";
}

/* activation-quantized output format of a method, or 0 */
static int a8_format(int m)
{
    if (m == PTQ_METHOD_FP8) return PTQ_QF_FP8;
    if (m == PTQ_METHOD_SQ || m == PTQ_METHOD_SQ_GPTQ || m == PTQ_METHOD_W8A8) return PTQ_QF_W8A8;
    return 0;
}
static int smoothing(int m) { return m == PTQ_METHOD_SQ || m == PTQ_METHOD_SQ_GPTQ; }

static double elapsed(double t0) { return cli_now() - t0; }

static void hex_of(const uint8_t d[32], char hex[65]) { ptq_sha256_hex(d, hex); }

static char *dir_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static char *path_cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", a, b);
    return s;
}

/* ---------------------------------------------------------------- files */

static int read_whole(const char *path, char **data, size_t *len, ptq_err *e)
{
    return ptq_read_file(path, (size_t)1 << 40, data, len, e);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Append {"file","bytes","sha256"} of a file (whole in memory or mapped). */
static void add_file_hash(cJSON *arr, const char *name, const void *data, size_t len)
{
    uint8_t d[32];
    char hex[65];
    ptq_sha256(data, len, d);
    hex_of(d, hex);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", name);
    cJSON_AddNumberToObject(o, "bytes", (double)len);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddItemToArray(arr, o);
}


/* Read and hash the checkpoint's files: config.json, tokenizer.json and
 * tokenizer_config.json (kept in memory for the bundle; the tokenizer files
 * are optional), every safetensors shard and the shard index. */
static const char *const meta_names[3] = {"config.json", "tokenizer.json", "tokenizer_config.json"};

typedef struct metafiles {
    char *data[3];
    size_t len[3];
} metafiles;

static int source_files(cstate *s, metafiles *m, ptq_err *e)
{
    s->files = cJSON_CreateArray();
    for (int i = 0; i < 3; i++) {
        char *p = dir_join(s->o->model, meta_names[i]);
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        if (i > 0 && access(p, F_OK) != 0) {
            free(p);
            continue;
        }
        int rc = read_whole(p, &m->data[i], &m->len[i], e);
        free(p);
        if (rc) return rc;
        add_file_hash(s->files, meta_names[i], m->data[i], m->len[i]);
    }
    const ptq_safetensors *st = &s->ck.st;
    if (st->index_path) {
        char *d;
        size_t n;
        int rc = read_whole(st->index_path, &d, &n, e);
        if (rc) return rc;
        add_file_hash(s->files, base_name(st->index_path), d, n);
        free(d);
    }
    for (int i = 0; i < st->nfiles; i++) {
        add_file_hash(s->files, base_name(st->paths[i]), st->maps[i], st->sizes[i]);
        /* hashing read every page: let them go (see drop_source_pages) */
        madvise(st->maps[i], st->sizes[i], MADV_DONTNEED);
    }
    return PTQ_OK;
}

/* ---------------------------------------------------------------- calibration */

/* Read the calibration text (hash only; tokenized later by cut_text). */
static int read_text(cstate *s, ptq_text *txt, ptq_err *e)
{
    ptq_text_opts to;
    memset(&to, 0, sizeof to);
    to.jsonl_field = s->o->jsonl_field;
    to.utf8_policy = PTQ_UTF8_REPLACE;
    int rc = ptq_text_read(txt, s->o->calib, s->o->ncalib, &to, e);
    if (rc) return rc;
    if (txt->n_replaced)
        progress_warn(&s->prog, "calibration text: %zu invalid UTF-8 sequences replaced by U+FFFD",
                      txt->n_replaced);
    return PTQ_OK;
}

static int bos_id(const cstate *s)
{
    if (s->ck.tok && ptq_tok_bos(s->ck.tok) >= 0) return ptq_tok_bos(s->ck.tok);
    return s->cfg->bos_id;
}

static int cut_text(cstate *s, const ptq_text *txt, cJSON *cal, ptq_err *e)
{
    if (!s->ck.tok)
        return ptq_fail(e, PTQ_EFORMAT, "%s: no tokenizer.json: cannot tokenize --calib text",
                        s->o->model);
    int n = txt->ndocs;
    int32_t **ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    size_t *lens = calloc((size_t)(n ? n : 1), sizeof *lens);
    int rc = (!ids || !lens) ? ptq_fail(e, PTQ_ENOMEM, "calibration: out of memory") : PTQ_OK;
    for (int i = 0; i < n && !rc; i++) {
        rc = ptq_tok_encode(s->ck.tok, txt->docs[i].text, txt->docs[i].len, 0, &ids[i], &lens[i], e);
        if (rc) ptq_fail_prefix(e, "%s: ", txt->docs[i].name);
    }
    if (!rc)
        rc = ptq_samples_cut((const int32_t *const *)ids, lens, n, bos_id(s), s->o->nsamples,
                             s->seqlen, s->o->seed, s->o->calib[0], &s->smp, e);
    for (int i = 0; i < n && ids; i++) free(ids[i]);
    free(ids);
    free(lens);
    if (rc) return rc;
    if (s->smp.short_corpus)
        progress_warn(&s->prog,
                      "calibration text has only %ld tokens, less than one window of %d: "
                      "using one window of %d tokens",
                      s->smp.stream_tokens, s->seqlen, s->smp.seqlen);
    cJSON_AddNumberToObject(cal, "documents", n);
    cJSON_AddNumberToObject(cal, "stream_tokens", (double)s->smp.stream_tokens);
    return PTQ_OK;
}

static void calib_progress(void *ud, int done, int total) { progress_calib(ud, done, total); }

static int data_free(cstate *s, ptq_err *e)
{
    int bos = bos_id(s);
    if (bos < 0 || bos >= s->cfg->vocab)
        return ptq_fail(e, PTQ_EDATA, "%s: the model has no BOS token to start data-free "
                                      "calibration samples from; give --calib", s->o->model);
    ptq_samples *m = &s->smp;
    memset(m, 0, sizeof *m);
    m->n = s->o->nsamples;
    m->seqlen = s->seqlen;
    m->ids = malloc((size_t)m->n * (size_t)m->seqlen * sizeof *m->ids);
    if (!m->ids) return ptq_fail(e, PTQ_ENOMEM, "data-free calibration: out of memory");
    return ptq_gen_samples(&s->src, bos, m->n, m->seqlen, s->o->seed, m->ids, calib_progress,
                           &s->prog, e);
}

/* ---------------------------------------------------------------- numerics */

/* sum over rows of (A - B) H (A - B)^T (B may be NULL: A H A^T), in row
 * blocks of 64 with one sgemm each; the dot products in double. */
static double quad_form(const float *A, const float *B, int rows, int cols, const float *H,
                        float *dbuf, float *pbuf)
{
    double sum = 0;
    for (int r0 = 0; r0 < rows; r0 += 64) {
        int nr = rows - r0 < 64 ? rows - r0 : 64;
        size_t n = (size_t)nr * (size_t)cols;
        const float *a = A + (size_t)r0 * cols;
        if (B) {
            const float *b = B + (size_t)r0 * cols;
            for (size_t i = 0; i < n; i++) dbuf[i] = a[i] - b[i];
        } else {
            memcpy(dbuf, a, n * sizeof *dbuf);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, cols, cols, 1.0f, dbuf, cols, H,
                    cols, 0.0f, pbuf, cols);
        for (size_t i = 0; i < n; i++) sum += (double)dbuf[i] * (double)pbuf[i];
    }
    return sum;
}

static void widen_rows(const uint16_t *h, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = ptq_f16_to_f32(h[i]);
}

static void narrow_rows(const float *x, uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) h[i] = ptq_f32_to_f16(x[i]);
}

/* ---------------------------------------------------------------- the bundle */

static const char *dense_method(int dtype)
{
    return dtype == PTQ_DT_BF16 ? "bf16" : dtype == PTQ_DT_F32 ? "fp32" : "fp16";
}

/* A source tensor kept as it is (validated finite first). */
static int add_dense(cstate *s, const char *name, float *scratch, size_t nscratch, ptq_err *e)
{
    const ptq_st_tensor *t = ptq_st_find(&s->ck.st, name);
    if (!t) return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s missing", s->o->model, name);
    if (t->ndim < 1 || t->ndim > 2)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s has %d dimensions", s->o->model, name,
                        t->ndim);
    uint64_t n = ptq_st_numel(t);
    for (uint64_t i = 0; i < n; i += nscratch) {
        size_t m = n - i < nscratch ? (size_t)(n - i) : nscratch;
        int rc = ptq_st_read_f32(&s->ck.st, t, (size_t)i, m, scratch, e);
        if (rc) return rc;
    }
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    q.format = PTQ_QF_DENSE;
    q.rows = t->ndim == 2 ? (int)t->shape[0] : 1;
    q.cols = t->ndim == 2 ? (int)t->shape[1] : (int)t->shape[0];
    q.dtype = t->dtype;
    q.data = (void *)t->data;
    q.mapped = 1;
    return ptq_bw_add_tensor(s->bw, name, dense_method(t->dtype), &q, NULL, e);
}

static void weight_name(char *buf, size_t n, int l, int which, const char *what)
{
    snprintf(buf, n, "model.layers.%d.%s.%s", l, ptq_linear_name(which), what);
}

static int is_awq(int m) { return m == PTQ_METHOD_AWQ || m == PTQ_METHOD_AWQ_GPTQ; }

static const lin_plan *plan_of(const cstate *s, int l, int which)
{
    return &s->plan[(size_t)l * PTQ_NLINEAR + which];
}
static int skipped(const cstate *s, int l, int which) { return plan_of(s, l, which)->skip; }

/* --skip patterns */
static int skip_flag(const ptq_compile_opts *o, int l, int which)
{
    char full[256], mod[256];
    weight_name(full, sizeof full, l, which, "weight");
    snprintf(mod, sizeof mod, "model.layers.%d.%s", l, ptq_linear_name(which));
    for (int i = 0; i < o->nskip; i++)
        if (!fnmatch(o->skip[i], full, 0) || !fnmatch(o->skip[i], mod, 0)) return 1;
    return 0;
}

/* Take the source pages of tensors whose name starts with prefix out of this
 * process's resident set once they are no longer needed.  They are pages of
 * the mmapped checkpoint (file-backed, clean): they stay in the page cache and
 * a later read faults them back in.  Without this, peak RSS grows by one
 * layer of source weights per layer compiled. */
static void drop_source_pages(cstate *s, const char *prefix)
{
    const ptq_safetensors *st = &s->ck.st;
    size_t n = strlen(prefix);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < st->ntensors; i++) {
        const ptq_st_tensor *t = &st->tensors[i];
        if (!t->data || strncmp(t->name, prefix, n)) continue;
        uintptr_t a = ((uintptr_t)t->data + pg - 1) / pg * pg;
        uintptr_t b = ((uintptr_t)t->data + t->nbytes) / pg * pg;
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
}

/* ---------------------------------------------------------------- one layer */

/* Fold max |k| and max |v| per kv channel (kv head and head-dim channel) of n
 * tokens (kv: keys [n, kv_dim] then values [n, kv_dim]) into s->kvmax. */
static int kv_absmax(cstate *s, const float *kv, int n, ptq_err *e)
{
    size_t kvd = (size_t)s->cfg->n_kv_heads * s->cfg->head_dim;
    for (int part = 0; part < 2; part++)
        for (size_t r = 0; r < (size_t)n; r++) {
            const float *x = kv + ((size_t)part * n + r) * kvd;
            float *m = s->kvmax + part * kvd;
            for (size_t i = 0; i < kvd; i++) {
                if (!isfinite(x[i]))
                    return ptq_fail(e, PTQ_EDATA, "calibration %s of kv head %d are not finite "
                                    "(%g)", part ? "values" : "keys",
                                    (int)(i / (size_t)s->cfg->head_dim), (double)x[i]);
                if (fabsf(x[i]) > m[i]) m[i] = fabsf(x[i]);
            }
        }
    return PTQ_OK;
}

static size_t kv_dim(const cstate *s) { return (size_t)s->cfg->n_kv_heads * s->cfg->head_dim; }

/* int8 KV cache: static scales, keys then values, one per kv head and
 * head-dim channel, max |x| / 127 of the channel over the calibration tokens
 * (keys after RoPE) of the quantized layer; a channel that stayed zero gets 1. */
static void kv_scales(const cstate *s, float *kvs)
{
    size_t n = 2 * kv_dim(s);
    for (size_t i = 0; i < n; i++) kvs[i] = s->kvmax[i] > 0 ? s->kvmax[i] / 127.0f : 1.0f;
}

/* One chunk of samples through the layer on one worker. */
typedef struct job {
    cstate *s;
    const ptq_layer_w *lw;
    int w, g, store, b0, B;
    int rc;
    ptq_err e;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    cstate *s = j->s;
    const int D = s->cfg->hidden, T = s->seqlen;
    ptq_capture cap;
    memset(&cap, 0, sizeof cap);
    float *c = s->caps[j->w];
    if (j->g == 0) cap.attn_in = c;
    if (j->g == 1) cap.o_in = c;
    if (j->g == 2) cap.mlp_in = c;
    if (j->g == 3) cap.down_in = c;
    int kv = j->g < 0 && j->store && s->kvmax; /* int8 KV calibration on the output pass */
    if (kv) {
        cap.k_rot = s->kvcaps[j->w];
        cap.v_out = s->kvcaps[j->w] + (size_t)j->B * T * s->cfg->n_kv_heads * s->cfg->head_dim;
    }
    size_t n = (size_t)j->B * T * D;
    uint16_t *hid = s->hidden + (size_t)j->b0 * T * D;
    widen_rows(hid, s->x32s[j->w], n);
    j->rc = ptq_fwd_layer(s->fwds[j->w], j->lw, s->x32s[j->w], j->B, T,
                          j->g >= 0 || kv ? &cap : NULL, &j->e);
    if (!j->rc && j->store) narrow_rows(s->x32s[j->w], hid, n);
    return NULL;
}

/* Run layer l (weights lw) over every sample; capture the input of group g
 * (-1: none) and accumulate its Hessian into s->H; with store, write the
 * output back into the hidden states.  Chunks of samples are the unit of
 * work: each is one single-threaded BLAS forward on a worker, and captures
 * are added to the Hessian in chunk order, so the result does not depend on
 * the number of workers. */
static int layer_pass(cstate *s, const ptq_layer_w *lw, int g, int cols, int store, ptq_err *e)
{
    const int T = s->seqlen;
    ptq_hessian h;
    int rc = PTQ_OK;
    if (g >= 0 && (rc = ptq_hessian_init(&h, cols, e))) return rc;
    job jobs[PTQ_MAX_WORKERS];
    pthread_t tid[PTQ_MAX_WORKERS];
    for (int b0 = 0; b0 < s->nsamples && !rc;) {
        int nj = 0;
        for (; nj < s->nworkers && b0 < s->nsamples; nj++) {
            int B = s->nsamples - b0 < s->chunk ? s->nsamples - b0 : s->chunk;
            job *j = &jobs[nj];
            memset(j, 0, sizeof *j);
            j->s = s, j->lw = lw, j->w = nj, j->g = g, j->store = store, j->b0 = b0, j->B = B;
            b0 += B;
        }
        int started[PTQ_MAX_WORKERS] = {0};
        for (int i = 1; i < nj; i++) started[i] = !pthread_create(&tid[i], NULL, run_job, &jobs[i]);
        run_job(&jobs[0]);
        for (int i = 1; i < nj; i++) {
            if (started[i]) pthread_join(tid[i], NULL);
            else run_job(&jobs[i]);
        }
        for (int i = 0; i < nj && !rc; i++) {
            if (jobs[i].rc) {
                *e = jobs[i].e;
                rc = jobs[i].rc;
            } else if (g >= 0) {
                rc = ptq_hessian_add(&h, s->caps[i], jobs[i].B * T, e);
            } else if (store && s->kvmax) {
                rc = kv_absmax(s, s->kvcaps[i], jobs[i].B * T, e);
            }
        }
    }
    if (g >= 0) {
        if (!rc) rc = ptq_hessian_finalize(&h, s->H, e);
        if (!rc) memcpy(s->amax, h.absmax, (size_t)cols * sizeof *s->amax);
        ptq_hessian_free(&h);
    }
    return rc;
}

/* An 8-bit weights x 8-bit activations linear (lib/qfmt/w8a8.h): per-channel
 * weights by rounding (GPTQ at 8 bits for smoothquant+gptq); with
 * --act-scales static the activation scale is max |x| over the calibration
 * tokens of the (smoothed) input / 127 (E4M3: / 448), from s->amax.  The
 * report's err is the weight part of the error, as for the other methods. */
static int quantize_a8(cstate *s, int which, ptq_layer_w *lw, ptq_qtensor *out, cJSON *entry,
                       ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    int rows, cols, fmt = a8_format(o->method);
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    float *W = lw->w[which];
    float act = 0;
    if (o->act_static) {
        for (int j = 0; j < cols; j++) act = s->amax[j] > act ? s->amax[j] : act;
        act = act > 0 ? act / (fmt == PTQ_QF_FP8 ? 448.0f : 127.0f) : 1.0f;
        cJSON_AddNumberToObject(entry, "act_scale", act);
    }
    double t0 = cli_now();
    int rc;
    if (o->method == PTQ_METHOD_SQ_GPTQ) {
        memcpy(s->Hw, s->H, (size_t)cols * cols * sizeof *s->Hw);
        ptq_gptq_report rep;
        memset(&rep, 0, sizeof rep);
        ptq_qtensor qg;
        memset(&qg, 0, sizeof qg);
        rc = ptq_gptq(W, s->Hw, rows, cols, &s->q, &qg, &rep, e);
        if (!rc) rc = ptq_a8_from_int(&qg, act, out, e);
        ptq_qtensor_free(&qg);
        cJSON_AddNumberToObject(entry, "damp_used", rep.damp_used);
    } else {
        rc = ptq_a8_quantize(W, rows, cols, fmt, act, out, e);
    }
    if (!rc) rc = ptq_qtensor_dequant(out, s->wq, e);
    if (rc) {
        ptq_qtensor_free(out);
        return rc;
    }
    s->t[T_QUANT] += elapsed(t0);
    t0 = cli_now();
    float *dbuf = s->errbuf, *pbuf = s->errbuf + (size_t)64 * cols;
    double den = quad_form(W, NULL, rows, cols, s->H, dbuf, pbuf);
    double err = den > 0 ? quad_form(W, s->wq, rows, cols, s->H, dbuf, pbuf) / den : 0;
    s->t[T_ERROR] += elapsed(t0);
    cJSON_AddNumberToObject(entry, "err", err);
    memcpy(W, s->wq, (size_t)rows * cols * sizeof *W);
    lw->aq[which] = out; /* later passes of this layer run the 8-bit product */
    return PTQ_OK;
}

/* SmoothQuant for the group of linears starting at `first` (q/k/v or
 * gate/up): factors from s->amax (alpha), folded into the norm and the
 * weights; H and s->amax become the statistics of the smoothed input. */
static int smooth_group(cstate *s, int first, int n, float *norm, ptq_layer_w *lw, ptq_err *e)
{
    int rows[3], cols = s->cfg->hidden;
    const float *Wc[3];
    float *W[3];
    for (int i = 0; i < n; i++) {
        ptq_linear_shape(s->cfg, first + i, &rows[i], &cols);
        Wc[i] = W[i] = lw->w[first + i];
    }
    float *f = malloc((size_t)cols * sizeof *f);
    if (!f) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    int rc = ptq_sq_scales(s->amax, Wc, rows, n, cols, s->o->alpha, f, e);
    if (!rc) {
        ptq_sq_fold(norm, W, rows, n, cols, f);
        ptq_sq_scale_stats(s->H, s->amax, cols, f);
    }
    free(f);
    return rc;
}

/* Quantize linear `which` of layer l in place: lw->w[which] becomes the
 * dequantized weights; *out the quantized tensor; entry the report. */
static int quantize_linear(cstate *s, int l, int which, ptq_layer_w *lw, ptq_qtensor *out,
                           cJSON *entry, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    if (a8_format(o->method)) return quantize_a8(s, which, lw, out, entry, e);
    const lin_plan *pl = plan_of(s, l, which);
    int rows, cols;
    ptq_linear_shape(s->cfg, which, &rows, &cols);
    float *W = lw->w[which];
    size_t n = (size_t)rows * cols;
    /* AWQ: what is rounded is W clamped to the searched clips; the errors are
     * measured against W itself */
    const float *Wr = W;
    if (s->awq.clip[which]) {
        memcpy(s->wclip, W, n * sizeof *W);
        ptq_awq_clip_apply(s->wclip, rows, cols, pl->q.group, s->awq.clip[which]);
        Wr = s->wclip;
    }
    float *dbuf = s->errbuf, *pbuf = s->errbuf + (size_t)64 * cols;
    double t0 = cli_now();
    ptq_qtensor qr;
    memset(&qr, 0, sizeof qr);
    int rc = ptq_rtn(W, rows, cols, &pl->q, &qr, e);
    if (!rc) rc = ptq_qtensor_dequant(&qr, s->wq, e);
    if (rc) {
        ptq_qtensor_free(&qr);
        return rc;
    }
    s->t[T_QUANT] += elapsed(t0);
    t0 = cli_now();
    double den = quad_form(W, NULL, rows, cols, s->H, dbuf, pbuf);
    double err_rtn = den > 0 ? quad_form(W, s->wq, rows, cols, s->H, dbuf, pbuf) / den : 0;
    s->t[T_ERROR] += elapsed(t0);
    cJSON_AddNumberToObject(entry, "err_rtn", err_rtn);
    /* awq+gptq linears whose group kept the AWQ result round as awq does */
    int awq_rtn = pl->method == PTQ_METHOD_AWQ || s->awq.rtn[which];
    if (pl->method == PTQ_METHOD_RTN || (awq_rtn && Wr == W)) {
        cJSON_AddNumberToObject(entry, "err", err_rtn);
        *out = qr;
    } else if (awq_rtn) {
        ptq_qtensor_free(&qr);
        t0 = cli_now();
        rc = ptq_rtn(Wr, rows, cols, &pl->q, out, e);
        if (!rc) rc = ptq_qtensor_dequant(out, s->wq, e);
        if (rc) {
            ptq_qtensor_free(out);
            return rc;
        }
        s->t[T_QUANT] += elapsed(t0);
        t0 = cli_now();
        double err = den > 0 ? quad_form(W, s->wq, rows, cols, s->H, dbuf, pbuf) / den : 0;
        s->t[T_ERROR] += elapsed(t0);
        cJSON_AddNumberToObject(entry, "err", err);
    } else {
        t0 = cli_now();
        memcpy(s->Hw, s->H, (size_t)cols * cols * sizeof *s->Hw);
        ptq_gptq_report rep;
        memset(&rep, 0, sizeof rep);
        ptq_qtensor qg;
        memset(&qg, 0, sizeof qg);
        rc = ptq_gptq(Wr, s->Hw, rows, cols, &pl->q, &qg, &rep, e);
        if (!rc) rc = ptq_qtensor_dequant(&qg, s->wq, e);
        ptq_qtensor_free(&qr);
        if (rc) {
            ptq_qtensor_free(&qg);
            return rc;
        }
        s->t[T_QUANT] += elapsed(t0);
        t0 = cli_now();
        double err = den > 0 ? quad_form(W, s->wq, rows, cols, s->H, dbuf, pbuf) / den : 0;
        s->t[T_ERROR] += elapsed(t0);
        cJSON_AddNumberToObject(entry, "err_gptq", err);
        cJSON_AddNumberToObject(entry, "err", err);
        cJSON_AddNumberToObject(entry, "damp_used", rep.damp_used);
        cJSON_AddNumberToObject(entry, "damp_raises", rep.damp_raises);
        cJSON_AddNumberToObject(entry, "dead_columns", rep.dead_columns);
        if (rep.damp_raises) {
            char nm[256];
            weight_name(nm, sizeof nm, l, which, "weight");
            progress_warn(&s->prog,
                          "%s: Cholesky of the damped Hessian failed at --damp %g; it worked "
                          "after %d raise(s) at %g",
                          nm, (double)s->q.damp, rep.damp_raises, (double)rep.damp_used);
        }
        *out = qg;
    }
    memcpy(W, s->wq, n * sizeof *W);
    return PTQ_OK;
}

/* A float32 vector or matrix of the compile's own (a folded norm, KV scales). */
static int add_f32(cstate *s, const char *name, const float *x, int rows, int cols,
                   const char *method, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    q.format = PTQ_QF_DENSE;
    q.rows = rows;
    q.cols = cols;
    q.dtype = PTQ_DT_F32;
    q.data = (void *)x;
    q.mapped = 1;
    return ptq_bw_add_tensor(s->bw, name, method, &q, NULL, e);
}

/* The AWQ step of layer l when any of its linears is awq / awq+gptq: scales
 * searched and folded into lw, clips kept in s->awq (lib/compile/awq_step.h). */
static int awq_step(cstate *s, int l, ptq_layer_w *lw, ptq_err *e)
{
    awq_layer_ctx c;
    memset(&c, 0, sizeof c);
    int any = 0;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        const lin_plan *p = plan_of(s, l, i);
        c.q[i] = p->skip ? NULL : &p->q;
        c.awq[i] = p->skip || !is_awq(p->method) ? 0 : p->method == PTQ_METHOD_AWQ ? 1 : 2;
        any |= c.awq[i];
    }
    if (!any) return PTQ_OK;
    progress_step(&s->prog, l, "awq");
    c.cfg = s->cfg;
    c.fwd = s->fwds[0];
    c.x32 = s->x32;
    c.hidden = s->hidden;
    c.T = s->seqlen;
    c.nsamp = PTQ_AWQ_TOKENS / s->seqlen;
    if (c.nsamp < 1) c.nsamp = 1;
    if (c.nsamp > s->nsamples) c.nsamp = s->nsamples;
    c.chunk = s->chunk;
    c.n_grid = s->o->awq_grid > 0 ? s->o->awq_grid : PTQ_AWQ_GRID;
    return awq_layer(&c, lw, &s->awq, e);
}

static int do_layer(cstate *s, int l, ptq_layer_w *lw, cJSON *lentry, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    ptq_qtensor qt[PTQ_NLINEAR];
    memset(qt, 0, sizeof qt);
    int folded[2] = {0, 0}; /* input_layernorm, post_attention_layernorm smoothed */
    cJSON *lin = cJSON_AddArrayToObject(lentry, "linears");
    double t0 = cli_now();
    int rc = s->src.layer(s->src.ctx, l, lw, e);
    s->t[T_CAPTURE] += elapsed(t0);
    const char *fold_method = smoothing(o->method) ? "smoothquant" : "awq";
    if (!rc) {
        t0 = cli_now();
        rc = awq_step(s, l, lw, e);
        s->t[T_QUANT] += elapsed(t0);
        folded[0] |= s->awq.scale[0] != NULL;
        folded[1] |= s->awq.scale[2] != NULL;
    }
    for (int g = 0; g < 4 && !rc; g++) {
        progress_step(&s->prog, l, group_step[g]);
        int rows, cols;
        ptq_linear_shape(s->cfg, group_first[g], &rows, &cols);
        int all_skipped = 1;
        for (int k = 0; k < group_count[g]; k++)
            if (!skipped(s, l, group_first[g] + k)) all_skipped = 0;
        t0 = cli_now();
        if (!all_skipped) rc = layer_pass(s, lw, g, cols, 0, e);
        s->t[T_CAPTURE] += elapsed(t0);
        int none_skipped = 1;
        for (int k = 0; k < group_count[g]; k++)
            if (skipped(s, l, group_first[g] + k)) none_skipped = 0;
        if (!rc && smoothing(o->method) && (g == 0 || g == 2) && none_skipped) {
            t0 = cli_now();
            rc = smooth_group(s, group_first[g], group_count[g], g ? lw->mlp_norm : lw->attn_norm,
                              lw, e);
            folded[g / 2] = 1;
            s->t[T_QUANT] += elapsed(t0);
        }
        for (int k = 0; k < group_count[g] && !rc; k++) {
            int which = group_first[g] + k;
            char nm[256];
            weight_name(nm, sizeof nm, l, which, "weight");
            cJSON *ent = cJSON_CreateObject();
            cJSON_AddItemToArray(lin, ent);
            cJSON_AddStringToObject(ent, "name", nm);
            ptq_linear_shape(s->cfg, which, &rows, &cols);
            cJSON_AddNumberToObject(ent, "rows", rows);
            cJSON_AddNumberToObject(ent, "cols", cols);
            if (skipped(s, l, which)) {
                cJSON_AddStringToObject(ent, "method", "fp16");
                continue;
            }
            const lin_plan *pl = plan_of(s, l, which);
            cJSON_AddStringToObject(ent, "method", ptq_method_name(pl->method));
            cJSON_AddNumberToObject(ent, "bits", pl->q.q.bits);
            cJSON_AddNumberToObject(ent, "group", pl->q.group);
            if (pl->q.q.sym != s->q.q.sym) cJSON_AddBoolToObject(ent, "sym", pl->q.q.sym);
            if (is_awq(pl->method)) awq_report(&s->awq, which, ent);
            double tl = cli_now();
            rc = quantize_linear(s, l, which, lw, &qt[which], ent, e);
            if (rc) ptq_fail_prefix(e, "%s: ", nm);
            cJSON_AddNumberToObject(ent, "seconds", elapsed(tl));
        }
    }
    if (!rc) {
        progress_step(&s->prog, l, "output");
        t0 = cli_now();
        if (s->kvmax) memset(s->kvmax, 0, 2 * kv_dim(s) * sizeof *s->kvmax);
        rc = layer_pass(s, lw, -1, 0, 1, e);
        s->t[T_FORWARD] += elapsed(t0);
    }
    /* int8 KV cache: static scales from the calibration tokens of the
     * quantized layer (kv_scales) */
    float *kvs = s->kvscale;
    if (!rc && s->kvmax) kv_scales(s, kvs);
    /* into the bundle, in a fixed order */
    t0 = cli_now();
    static const char *const biases[3] = {"q_proj", "k_proj", "v_proj"};
    char nm[256];
    float *scratch = s->x32;
    size_t nscratch = (size_t)s->chunk * s->seqlen * s->cfg->hidden;
    if (!rc) {
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        rc = folded[0] ? add_f32(s, nm, lw->attn_norm, 1, s->cfg->hidden, fold_method, e)
                       : add_dense(s, nm, scratch, nscratch, e);
    }
    for (int which = 0; which < PTQ_NLINEAR && !rc; which++) {
        if (which == PTQ_GATE) {
            snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
            rc = folded[1] ? add_f32(s, nm, lw->mlp_norm, 1, s->cfg->hidden, fold_method, e)
                           : add_dense(s, nm, scratch, nscratch, e);
            if (rc) break;
        }
        weight_name(nm, sizeof nm, l, which, "weight");
        if (qt[which].rows) { /* quantized (else kept: --skip) */
            cJSON *extra = cJSON_Duplicate(cJSON_GetArrayItem(lin, which), 1);
            static const char *const drop[] = {"seconds", "name", "method", "rows",
                                               "cols",    "bits", "group", "sym"};
            for (size_t k = 0; k < sizeof drop / sizeof *drop; k++)
                cJSON_DeleteItemFromObject(extra, drop[k]);
            rc = ptq_bw_add_tensor(s->bw, nm, ptq_method_name(plan_of(s, l, which)->method),
                                   &qt[which], extra, e);
            cJSON_Delete(extra);
        } else {
            rc = add_dense(s, nm, scratch, nscratch, e);
        }
        if (!rc && which <= PTQ_V && s->cfg->qkv_bias) {
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.%s.bias", l, biases[which]);
            if (which == PTQ_V && s->awq.scale[1]) /* o's AWQ scales folded into v */
                rc = add_f32(s, nm, lw->bias[PTQ_V], 1, s->cfg->n_kv_heads * s->cfg->head_dim,
                             "awq", e);
            else
                rc = add_dense(s, nm, scratch, nscratch, e);
        }
    }
    if (!rc && s->kvmax) {
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.kv_scale", l);
        rc = add_f32(s, nm, kvs, 2, (int)kv_dim(s), "int8-kv", e);
    }
    s->t[T_WRITE] += elapsed(t0);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        lw->aq[i] = NULL;
        ptq_qtensor_free(&qt[i]);
    }
    awq_layer_res_free(&s->awq);
    return rc;
}

/* ---------------------------------------------------------------- driver */

static cJSON *settings_json(const ptq_compile_opts *o, const ptq_gptq_opts *qo,
                            const cJSON *recipe_json)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "method", ptq_method_name(o->method));
    cJSON_AddNumberToObject(q, "bits", qo->q.bits);
    cJSON_AddNumberToObject(q, "group", qo->group);
    cJSON_AddBoolToObject(q, "sym", qo->q.sym);
    cJSON_AddBoolToObject(q, "mse", qo->q.mse);
    if (smoothing(o->method)) {
        char d[32];
        snprintf(d, sizeof d, "%g", (double)o->alpha);
        cJSON_AddNumberToObject(q, "alpha", strtod(d, NULL));
    }
    if (a8_format(o->method))
        cJSON_AddStringToObject(q, "act_scales", o->act_static ? "static" : "dynamic");
    if (o->kv_int8) cJSON_AddStringToObject(q, "kv_cache", "int8");
    if (is_awq(o->method) || recipe_json)
        cJSON_AddNumberToObject(q, "awq_grid", o->awq_grid > 0 ? o->awq_grid : PTQ_AWQ_GRID);
    if (recipe_json) cJSON_AddItemToObject(q, "recipe", cJSON_Duplicate(recipe_json, 1));
    if (o->method == PTQ_METHOD_GPTQ || o->method == PTQ_METHOD_SQ_GPTQ ||
        o->method == PTQ_METHOD_AWQ_GPTQ || recipe_json) {
        cJSON_AddBoolToObject(q, "act_order", qo->act_order);
        cJSON_AddBoolToObject(q, "static_groups", qo->static_groups);
        char d[32];
        snprintf(d, sizeof d, "%g", (double)qo->damp); /* 0.01, not 0.0099999998 */
        cJSON_AddNumberToObject(q, "damp", strtod(d, NULL));
        cJSON_AddNumberToObject(q, "block", qo->block);
    }
    cJSON_AddNumberToObject(q, "nsamples", o->nsamples);
    cJSON_AddNumberToObject(q, "seqlen", o->seqlen);
    cJSON_AddNumberToObject(q, "seed", (double)o->seed);
    cJSON *sk = cJSON_AddArrayToObject(q, "skip");
    for (int i = 0; i < o->nskip; i++) cJSON_AddItemToArray(sk, cJSON_CreateString(o->skip[i]));
    return q;
}

/* What the output bytes depend on: the journal key. */
static cJSON *make_key(cstate *s, const ptq_text *txt)
{
    const ptq_compile_opts *o = s->o;
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "ptqc_version", PACKAGE_VERSION);
    cJSON_AddItemToObject(k, "model_files", cJSON_Duplicate(s->files, 1));
    if (o->ncalib) {
        char hex[65];
        hex_of(txt->sha256, hex);
        cJSON_AddStringToObject(k, "calibration_sha256", hex);
        cJSON_AddStringToObject(k, "jsonl_field", o->jsonl_field ? o->jsonl_field : "");
    } else {
        cJSON_AddStringToObject(k, "calibration_sha256", "data-free");
    }
    cJSON_AddItemToObject(k, "settings", settings_json(o, &s->q, s->rec.json));
    cJSON_AddNumberToObject(k, "chunk_tokens", o->chunk_tokens);
    cJSON *cl = cJSON_AddArrayToObject(k, "command_line");
    for (int i = 0; i < o->ncmdline; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(o->cmdline[i]));
    return k;
}

static int divides_all(cstate *s, int group, char *nm, size_t nmlen, int *bad_cols)
{
    for (int l = 0; l < s->cfg->n_layers; l++)
        for (int w = 0; w < PTQ_NLINEAR; w++) {
            int rows, cols;
            ptq_linear_shape(s->cfg, w, &rows, &cols);
            if (cols % group && !skip_flag(s->o, l, w)) {
                weight_name(nm, nmlen, l, w, "weight");
                *bad_cols = cols;
                return 0;
            }
        }
    return 1;
}

static int check_flags(cstate *s, ptq_err *e)
{
    s->q = s->o->q;
    /* GPTQ's row workers give the same bits for any count (lib/quant/gptq.h). */
    s->q.threads = s->o->threads > 0 ? s->o->threads : 1;
    if (s->q.q.bits < 2 || s->q.q.bits > 8)
        return ptq_fail(e, PTQ_EUSAGE, "--bits %d: out of range 2..8", s->q.q.bits);
    if (smoothing(s->o->method) && !(s->o->alpha >= 0.0f && s->o->alpha <= 1.0f))
        return ptq_fail(e, PTQ_EUSAGE, "--alpha %g: outside [0, 1]", (double)s->o->alpha);
    if (a8_format(s->o->method)) { /* 8-bit symmetric, one scale per output channel */
        s->q.q.bits = 8;
        s->q.q.sym = 1;
        s->q.q.mse = 0;
        s->q.group = 0;
        s->q.act_order = s->q.static_groups = 0;
        return PTQ_OK;
    }
    char nm[256];
    int cols;
    if (s->q.group < 0) /* default: 128 when it divides every quantized linear */
        s->q.group = divides_all(s, 128, nm, sizeof nm, &cols) ? 128 : 0;
    else if (s->q.group > 0 && !divides_all(s, s->q.group, nm, sizeof nm, &cols))
        return ptq_fail(e, PTQ_EUSAGE,
                        "--group %d does not divide the input size %d of %s "
                        "(use a divisor, 0 for per channel, or --skip it)",
                        s->q.group, cols, nm);
    return PTQ_OK;
}

/* Settings of every linear: the command line's (s->q, --method, --skip),
 * then --recipe.  AWQ defaults to an asymmetric grid unless --sym/--asym or
 * the recipe says otherwise. */
static int build_plan(cstate *s, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    const ptq_config *c = s->cfg;
    int rc = PTQ_OK;
    if (is_awq(o->method) && !o->sym_set) s->q.q.sym = 0;
    if (o->recipe && (rc = recipe_load(&s->rec, o->recipe, e))) return rc;
    size_t n = (size_t)c->n_layers * PTQ_NLINEAR;
    s->plan = calloc(n, sizeof *s->plan);
    int *used = calloc((size_t)s->rec.nrules + 1, sizeof *used);
    if (!s->plan || !used) {
        free(used);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_layers && !rc; l++)
        for (int w = 0; w < PTQ_NLINEAR && !rc; w++) {
            lin_plan *p = &s->plan[(size_t)l * PTQ_NLINEAR + w];
            p->method = o->method;
            p->q = s->q;
            p->skip = skip_flag(o, l, w);
            if (!o->recipe) continue;
            char full[256], mod[256];
            weight_name(full, sizeof full, l, w, "weight");
            snprintf(mod, sizeof mod, "model.layers.%d.%s", l, ptq_linear_name(w));
            recipe_set rs = {-1, -1, -1, -1, -1};
            recipe_apply(&s->rec, full, mod, &rs, used);
            if (rs.method >= 0) p->method = rs.method;
            if (rs.bits >= 0) p->q.q.bits = rs.bits;
            if (rs.group >= 0) p->q.group = rs.group;
            if (rs.skip >= 0) p->skip = p->skip || rs.skip;
            if (rs.sym >= 0) p->q.q.sym = rs.sym;
            else if (!o->sym_set) p->q.q.sym = !is_awq(p->method);
            int rows, cols;
            ptq_linear_shape(c, w, &rows, &cols);
            if (a8_format(o->method))
                rc = ptq_fail(e, PTQ_EUSAGE, "--recipe does not combine with --method %s",
                              ptq_method_name(o->method));
            else if (!p->skip && p->q.group > 0 && cols % p->q.group)
                rc = ptq_fail(e, PTQ_EUSAGE, "recipe %s: group %d does not divide the input size %d "
                              "of %s", o->recipe, p->q.group, cols, full);
            else if (!p->skip && is_awq(p->method) && p->q.q.mse)
                rc = ptq_fail(e, PTQ_EUSAGE, "recipe %s: %s: --mse does not apply to %s (AWQ "
                              "searches its own clipping)", o->recipe, full, ptq_method_name(p->method));
            else if (!p->skip && p->method == PTQ_METHOD_RTN && p->q.act_order)
                p->q.act_order = p->q.static_groups = 0; /* act-order is GPTQ's */
        }
    if (!rc && o->recipe) rc = recipe_check_used(&s->rec, used, o->model, e);
    free(used);
    return rc;
}

static int alloc_hidden(cstate *s, ptq_err *e)
{
    s->ntok = (size_t)s->nsamples * (size_t)s->seqlen;
    s->hidden_bytes = s->ntok * (size_t)s->cfg->hidden * sizeof(uint16_t);
    if (s->o->tmpdir) { /* an unlinked file under --tmpdir, mapped */
        char *p = dir_join(s->o->tmpdir, "ptqc-act-XXXXXX");
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        int fd = mkstemp(p);
        if (fd < 0) {
            int rc = ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: cannot create a file: %s", s->o->tmpdir,
                              strerror(errno));
            free(p);
            return rc;
        }
        unlink(p);
        free(p);
        int err = posix_fallocate(fd, 0, (off_t)s->hidden_bytes);
        if (err) {
            close(fd);
            return ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: cannot reserve %zu bytes: %s",
                            s->o->tmpdir, s->hidden_bytes, strerror(err));
        }
        void *m = mmap(NULL, s->hidden_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            return ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: mmap failed: %s", s->o->tmpdir,
                            strerror(errno));
        s->hidden = m;
        s->hidden_mapped = 1;
    } else {
        s->hidden = malloc(s->hidden_bytes);
        if (!s->hidden)
            return ptq_fail(e, PTQ_ENOMEM,
                            "calibration activations: out of memory for %zu bytes "
                            "(use --tmpdir, or fewer --nsamples / a shorter --seqlen)",
                            s->hidden_bytes);
    }
    return PTQ_OK;
}

static int alloc_work(cstate *s, ptq_err *e)
{
    const ptq_config *c = s->cfg;
    int ct = s->o->chunk_tokens > 0 ? s->o->chunk_tokens : 512;
    s->chunk = ct / s->seqlen;
    if (s->chunk < 1) s->chunk = 1;
    if (s->chunk > s->nsamples) s->chunk = s->nsamples;
    s->nworkers = s->o->threads > 0 ? s->o->threads : 1;
    if (s->nworkers > PTQ_MAX_WORKERS) s->nworkers = PTQ_MAX_WORKERS;
    int nchunks = (s->nsamples + s->chunk - 1) / s->chunk;
    if (s->nworkers > nchunks) s->nworkers = nchunks;
    size_t maxcols = 0, maxw = 0, wtotal = 0;
    for (int w = 0; w < PTQ_NLINEAR; w++) {
        int rows, cols;
        ptq_linear_shape(c, w, &rows, &cols);
        if ((size_t)cols > maxcols) maxcols = (size_t)cols;
        if ((size_t)rows * cols > maxw) maxw = (size_t)rows * cols;
        wtotal += (size_t)rows * cols;
    }
    size_t ctok = (size_t)s->chunk * s->seqlen;
    for (int i = 0; i < s->nworkers; i++) {
        int rc = ptq_fwd_create(&s->fwds[i], c, s->chunk * s->seqlen, s->seqlen, e);
        if (rc) return rc;
        s->x32s[i] = malloc(ctok * c->hidden * sizeof(float));
        s->caps[i] = malloc(ctok * maxcols * sizeof(float));
        if (!s->x32s[i] || !s->caps[i])
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    }
    s->x32 = s->x32s[0];
    s->H = malloc(maxcols * maxcols * sizeof(float));
    s->Hw = malloc(maxcols * maxcols * sizeof(float));
    s->wq = malloc(maxw * sizeof(float));
    s->wclip = malloc(maxw * sizeof(float));
    if (!s->wclip) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    s->errbuf = malloc(2 * 64 * maxcols * sizeof(float));
    s->amax = malloc(maxcols * sizeof(float));
    if (!s->H || !s->Hw || !s->wq || !s->errbuf || !s->amax)
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    if (s->o->kv_int8) {
        size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
        s->kvmax = calloc(2 * kvd, sizeof(float));
        s->kvscale = calloc(2 * kvd, sizeof(float));
        if (!s->kvmax || !s->kvscale) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        for (int i = 0; i < s->nworkers; i++)
            if (!(s->kvcaps[i] = malloc(2 * ctok * kvd * sizeof(float))))
                return ptq_fail(e, PTQ_ENOMEM, "out of memory for the KV-cache statistics");
    }
    s->mem_weights = (wtotal + 2 * (size_t)c->hidden) * sizeof(float) + maxw * sizeof(float);
    s->mem_acts = s->hidden_bytes + (size_t)s->nworkers * ctok * (c->hidden + maxcols) * sizeof(float);
    /* ptq_hessian: double acc + float chunk; H and its GPTQ copy */
    s->mem_hess = maxcols * maxcols * (sizeof(double) + 3 * sizeof(float));
    return PTQ_OK;
}

static int embed_samples(cstate *s, ptq_err *e)
{
    const int D = s->cfg->hidden, T = s->seqlen;
    for (int b0 = 0; b0 < s->nsamples; b0 += s->chunk) {
        int B = s->nsamples - b0 < s->chunk ? s->nsamples - b0 : s->chunk;
        int rc = s->src.embed(s->src.ctx, s->smp.ids + (size_t)b0 * T, B * T, s->x32, e);
        if (rc) return rc;
        narrow_rows(s->x32, s->hidden + (size_t)b0 * T * D, (size_t)B * T * D);
    }
    return PTQ_OK;
}

static long peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return -1;
    return ru.ru_maxrss * 1024L;
}

/* The layers' report entries without their timings (for the manifest). */
static cJSON *layers_no_time(const cJSON *layers)
{
    cJSON *a = cJSON_Duplicate(layers, 1);
    cJSON *l;
    cJSON_ArrayForEach(l, a) {
        cJSON_DeleteItemFromObject(l, "seconds");
        cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(l, "linears")) cJSON_DeleteItemFromObject(x, "seconds");
    }
    return a;
}

static cJSON *summary(const cJSON *layers)
{
    double worst = 0, sum = 0;
    long n = 0, better = 0, compared = 0;
    const cJSON *l, *x;
    cJSON_ArrayForEach(l, layers) {
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(l, "linears")) {
            const cJSON *err = cJSON_GetObjectItem(x, "err");
            const cJSON *g = cJSON_GetObjectItem(x, "err_gptq"), *r = cJSON_GetObjectItem(x, "err_rtn");
            if (!cJSON_IsNumber(err)) continue;
            n++;
            sum += err->valuedouble;
            if (err->valuedouble > worst) worst = err->valuedouble;
            if (cJSON_IsNumber(g) && cJSON_IsNumber(r)) {
                compared++;
                if (g->valuedouble < r->valuedouble) better++;
            }
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "quantized_linears", n);
    cJSON_AddNumberToObject(o, "mean_rel_output_error", n ? sum / n : 0);
    cJSON_AddNumberToObject(o, "max_rel_output_error", worst);
    if (compared) {
        cJSON_AddNumberToObject(o, "gptq_below_rtn", better);
        cJSON_AddNumberToObject(o, "gptq_compared", compared);
    }
    return o;
}

static cJSON *manifest_top(cstate *s)
{
    const ptq_compile_opts *o = s->o;
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "ptqc_version", PACKAGE_VERSION);
    cJSON *prov = cJSON_AddObjectToObject(top, "provenance");
    cJSON_AddItemToObject(prov, "source_files", cJSON_Duplicate(s->files, 1));
    cJSON_AddItemToObject(prov, "calibration",
                          cJSON_Duplicate(cJSON_GetObjectItem(s->state, "calibration"), 1));
    cJSON *cl = cJSON_AddArrayToObject(prov, "command_line");
    for (int i = 0; i < o->ncmdline; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(o->cmdline[i]));
    cJSON_AddNumberToObject(prov, "seed", (double)o->seed);
    cJSON_AddItemToObject(top, "quantization", settings_json(o, &s->q, s->rec.json));
    cJSON *rep = cJSON_AddObjectToObject(top, "report");
    const cJSON *layers = cJSON_GetObjectItem(s->state, "layers");
    cJSON_AddItemToObject(rep, "summary", summary(layers));
    cJSON_AddItemToObject(rep, "layers", layers_no_time(layers));
    return top;
}

static int write_report(cstate *s, double t0, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "output", o->out);
    cJSON_AddItemToObject(r, "settings", settings_json(o, &s->q, s->rec.json));
    cJSON_AddItemToObject(r, "calibration",
                          cJSON_Duplicate(cJSON_GetObjectItem(s->state, "calibration"), 1));
    cJSON_AddStringToObject(r, "hessian_precision",
                            "float32 ssyrk per chunk of tokens, accumulated in float64");
    const cJSON *layers = cJSON_GetObjectItem(s->state, "layers");
    cJSON_AddItemToObject(r, "summary", summary(layers));
    cJSON_AddItemToObject(r, "layers", cJSON_Duplicate(layers, 1));
    cJSON *m = cJSON_AddObjectToObject(r, "memory_bytes");
    cJSON_AddNumberToObject(m, "layer_weights_fp32", (double)s->mem_weights);
    cJSON_AddNumberToObject(m, "activations", (double)s->mem_acts);
    cJSON_AddBoolToObject(m, "activations_on_disk", s->hidden_mapped);
    cJSON_AddNumberToObject(m, "hessians", (double)s->mem_hess);
    cJSON_AddNumberToObject(m, "peak_rss", (double)peak_rss_bytes());
    cJSON *t = cJSON_AddObjectToObject(r, "seconds");
    for (int i = 0; i < T_NSTEPS; i++) cJSON_AddNumberToObject(t, step_names[i], s->t[i]);
    cJSON_AddNumberToObject(t, "total", elapsed(t0));
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    if (!txt) return ptq_fail(e, PTQ_ENOMEM, "report: out of memory");
    int rc = journal_atomic_write(o->report, txt, strlen(txt), e);
    cJSON_free(txt);
    return rc;
}

static char *hidden_file(const cstate *s, int layer)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".hidden.%d", layer);
    if (!s->o->tmpdir) return path_cat(s->o->out, suffix);
    char *b = dir_join(s->o->tmpdir, base_name(s->o->out));
    char *p = b ? path_cat(b, suffix) : NULL;
    free(b);
    return p;
}

/* After layer l: sync the bundle, save the hidden states, write the journal,
 * drop the previous hidden states. */
static int commit_layer(cstate *s, int l, ptq_err *e)
{
    uint64_t off;
    int rc = ptq_bw_sync(s->bw, &off, e);
    if (rc) return rc;
    char *hp = hidden_file(s, l + 1);
    if (!hp) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    char sha[65];
    rc = journal_save_hidden(hp, s->hidden, s->ntok * (size_t)s->cfg->hidden, sha, e);
    if (!rc)
        rc = journal_write(s->journal_path, s->key, l + 1, off, hp, sha, s->state, e);
    if (rc) {
        unlink(hp);
        free(hp);
        return rc;
    }
    if (s->hidden_path) {
        unlink(s->hidden_path);
        free(s->hidden_path);
    }
    s->hidden_path = hp;
    return PTQ_OK;
}

static void cleanup(cstate *s, int failed)
{
    if (s->bw) {
        if (failed) ptq_bw_abort(s->bw);
        s->bw = NULL;
        if (failed) {
            unlink(s->journal_path);
            if (s->hidden_path) unlink(s->hidden_path);
        }
    }
    if (s->hidden) {
        if (s->hidden_mapped) munmap(s->hidden, s->hidden_bytes);
        else free(s->hidden);
    }
    for (int i = 0; i < PTQ_MAX_WORKERS; i++) {
        ptq_fwd_free(s->fwds[i]);
        free(s->x32s[i]);
        free(s->caps[i]);
    }
    free(s->H);
    free(s->Hw);
    free(s->wq);
    free(s->wclip);
    free(s->plan);
    recipe_free(&s->rec);
    awq_layer_res_free(&s->awq);
    free(s->errbuf);
    free(s->amax);
    free(s->kvmax);
    free(s->kvscale);
    for (int i = 0; i < PTQ_MAX_WORKERS; i++) free(s->kvcaps[i]);
    ptq_samples_free(&s->smp);
    cJSON_Delete(s->key);
    cJSON_Delete(s->state);
    cJSON_Delete(s->files);
    free(s->partial_path);
    free(s->journal_path);
    free(s->hidden_path);
    if (s->ck_open) ptq_ckpt_close(&s->ck);
}

static int run(cstate *s, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    double t0 = cli_now(), t;
    int rc;
    s->partial_path = path_cat(o->out, ".partial");
    s->journal_path = path_cat(o->out, ".journal");
    if (!s->partial_path || !s->journal_path) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if ((rc = ptq_ckpt_open(&s->ck, o->model, e))) return rc;
    s->ck_open = 1;
    s->cfg = &s->ck.cfg;
    ptq_ckpt_weights(&s->ck, &s->src);
    if ((rc = check_flags(s, e))) return rc;
    if ((rc = build_plan(s, e))) return rc;
    s->seqlen = o->seqlen;
    if (s->seqlen > s->cfg->max_pos) {
        progress_warn(&s->prog, "--seqlen %d clipped to the model's context %d", o->seqlen,
                      s->cfg->max_pos);
        s->seqlen = s->cfg->max_pos;
    }

    t = cli_now();
    metafiles meta;
    memset(&meta, 0, sizeof meta);
    ptq_text txt;
    memset(&txt, 0, sizeof txt);
    rc = source_files(s, &meta, e);
    if (!rc && o->ncalib) rc = read_text(s, &txt, e);
    s->t[T_HASH] += elapsed(t);
    if (!rc) s->key = make_key(s, &txt);

    /* resume? */
    journal j;
    memset(&j, 0, sizeof j);
    int start = 0;
    if (!rc && o->resume) {
        if (access(s->journal_path, F_OK) == 0) {
            rc = journal_read(s->journal_path, &j, e);
            if (!rc) rc = journal_check(&j, s->key, s->journal_path, e);
            if (!rc) {
                const cJSON *cal = cJSON_GetObjectItem(j.state, "calibration");
                const cJSON *ns = cJSON_GetObjectItem(cal, "nsamples");
                const cJSON *sl = cJSON_GetObjectItem(cal, "seqlen");
                const cJSON *ly = cJSON_GetObjectItem(j.state, "layers");
                if (!cJSON_IsNumber(ns) || !cJSON_IsNumber(sl) || !cJSON_IsArray(ly) ||
                    cJSON_GetArraySize(ly) != j.layers_done || j.layers_done > s->cfg->n_layers ||
                    ns->valueint < 1 || sl->valueint < 1 || sl->valueint > s->seqlen)
                    rc = ptq_fail(e, PTQ_EFORMAT, "%s: journal state is damaged", s->journal_path);
                else {
                    s->nsamples = ns->valueint;
                    s->seqlen = sl->valueint;
                    start = j.layers_done;
                }
            }
        } else {
            progress_warn(&s->prog, "--resume: no journal %s: starting from the beginning",
                          s->journal_path);
        }
    }

    if (!rc && start > 0) {
        s->state = cJSON_Duplicate(j.state, 1);
        if ((rc = ptq_bw_resume(&s->bw, o->out, j.offset, e))) {
            ptq_fail_prefix(e, "--resume: ");
        }
        if (!rc) rc = alloc_hidden(s, e);
        if (!rc) rc = journal_load_hidden(j.hidden, s->hidden, s->ntok * (size_t)s->cfg->hidden,
                                          j.hidden_sha256, e);
        if (!rc) s->hidden_path = strdup(j.hidden);
        if (!rc) rc = alloc_work(s, e);
    } else if (!rc) {
        unlink(s->journal_path); /* a stale journal of another run */
        rc = ptq_bw_open(&s->bw, o->out, e);
        for (int i = 0; i < 3 && !rc; i++)
            if (meta.data[i]) rc = ptq_bw_add_file(s->bw, meta_names[i], meta.data[i], meta.len[i], e);
        s->state = cJSON_CreateObject();
        cJSON *cal = cJSON_AddObjectToObject(s->state, "calibration");
        cJSON_AddItemToObject(s->state, "layers", cJSON_CreateArray());
        t = cli_now();
        if (!rc && o->ncalib) {
            char hex[65];
            hex_of(txt.sha256, hex);
            cJSON_AddStringToObject(cal, "source", "text");
            cJSON *f = cJSON_AddArrayToObject(cal, "files");
            for (int i = 0; i < o->ncalib; i++) cJSON_AddItemToArray(f, cJSON_CreateString(o->calib[i]));
            cJSON_AddStringToObject(cal, "sha256", hex);
            rc = cut_text(s, &txt, cal, e);
        } else if (!rc) {
            cJSON_AddStringToObject(cal, "source", "data-free");
            cJSON_AddStringToObject(cal, "sampling", "from BOS, temperature 1, top-p 1");
            rc = data_free(s, e);
        }
        s->t[T_CALIB] += elapsed(t);
        if (!rc) {
            uint8_t d[32];
            char hex[65];
            ptq_sha256(s->smp.ids, (size_t)s->smp.n * s->smp.seqlen * sizeof(int32_t), d);
            hex_of(d, hex);
            cJSON_AddStringToObject(cal, "samples_sha256", hex);
            cJSON_AddNumberToObject(cal, "nsamples", s->smp.n);
            cJSON_AddNumberToObject(cal, "seqlen", s->smp.seqlen);
            s->nsamples = s->smp.n;
            s->seqlen = s->smp.seqlen;
        }
        if (!rc) rc = alloc_hidden(s, e);
        if (!rc) rc = alloc_work(s, e);
        t = cli_now();
        if (!rc) rc = embed_samples(s, e);
        s->t[T_EMBED] += elapsed(t);
        ptq_samples_free(&s->smp);
        t = cli_now();
        if (!rc) rc = add_dense(s, "model.embed_tokens.weight", s->x32,
                                (size_t)s->chunk * s->seqlen * s->cfg->hidden, e);
        if (!rc) drop_source_pages(s, "model.embed_tokens.");
        s->t[T_WRITE] += elapsed(t);
    }
    journal_free(&j);
    ptq_text_free(&txt);
    for (int i = 0; i < 3; i++) free(meta.data[i]);
    if (rc) return rc;

    /* the layers */
    progress_start(&s->prog, s->cfg->n_layers, start, s->nsamples, s->seqlen);
    ptq_layer_w lw;
    if ((rc = ptq_layer_w_alloc(&lw, s->cfg, e))) return rc;
    cJSON *layers = cJSON_GetObjectItem(s->state, "layers");
    for (int l = start; l < s->cfg->n_layers && !rc; l++) {
        double tl = cli_now();
        cJSON *le = cJSON_CreateObject();
        cJSON_AddNumberToObject(le, "layer", l);
        rc = do_layer(s, l, &lw, le, e);
        cJSON_AddNumberToObject(le, "seconds", elapsed(tl));
        cJSON_AddItemToArray(layers, le);
        if (!rc) {
            t = cli_now();
            rc = commit_layer(s, l, e);
            s->t[T_WRITE] += elapsed(t);
        }
        if (!rc) {
            char pre[64];
            snprintf(pre, sizeof pre, "model.layers.%d.", l);
            drop_source_pages(s, pre);
        }
        if (!rc) progress_layer_done(&s->prog, l);
    }
    ptq_layer_w_free(&lw);
    if (rc) return rc;

    /* the head */
    t = cli_now();
    size_t nscr = (size_t)s->chunk * s->seqlen * s->cfg->hidden;
    rc = add_dense(s, "model.norm.weight", s->x32, nscr, e);
    if (!rc && !s->cfg->tie_embeddings) rc = add_dense(s, "lm_head.weight", s->x32, nscr, e);
    s->t[T_WRITE] += elapsed(t);
    if (!rc && o->report) rc = write_report(s, t0, e);
    if (rc) return rc;
    cJSON *top = manifest_top(s);
    rc = ptq_bw_finish(s->bw, top, e);
    s->bw = NULL; /* freed by finish, also on failure */
    cJSON_Delete(top);
    if (rc) {
        unlink(s->partial_path);
        unlink(s->journal_path);
        if (s->hidden_path) unlink(s->hidden_path);
        return rc;
    }
    unlink(s->journal_path);
    if (s->hidden_path) unlink(s->hidden_path);
    progress_done(&s->prog, o->out);
    return PTQ_OK;
}

int ptq_compile(const ptq_compile_opts *o, ptq_err *e)
{
    cstate *s = calloc(1, sizeof *s);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    s->o = o;
    progress_init(&s->prog, o->progress);
    int rc = run(s, e);
    if (rc) progress_clear(&s->prog);
    cleanup(s, rc != 0);
    free(s);
    return rc;
}
