/* ptqrt.c - host side of libptqrt: load a bundle (or random weights), upload
 * it, run the decoder with the kernels of lib/cuda/ptqrt_kernels.h, sample and
 * generate.  See lib/cuda/ptqrt.h.  One CUDA stream and one cuBLAS handle per
 * model; every device allocation is recorded so ptqrt_close frees it all and
 * ptqrt_memory can account for it.
 */
#include "lib/cuda/ptqrt.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "formats/config.h"
#include "lib/base/sample.h"
#include "lib/base/dtype.h"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/qfmt/qtensor.h"

typedef struct lin {
    int is_int;
    ptqk_int_w iw;
    ptqk_f16_w fw;
    int rows, cols;
} lin;

typedef struct layer {
    float *attn_norm, *mlp_norm;
    lin w[7]; /* q k v o gate up down */
    float *bias[3];
    /* KV cache [max_batch][max_seq][kvdim]: fp16 (kc, vc), or int8 codes
     * (kq, vq) when the bundle has the layer's kv_scale [2][kvdim] */
    uint16_t *kc, *vc;
    int8_t *kq, *vq;
    float *kv_scale;
} layer;

struct ptqrt_model {
    ptq_config cfg;
    ptqrt_options opt;
    cudaStream_t stream;
    cublasHandle_t cublas;
    layer *layers;
    lin embed, head;   /* head == embed when tied */
    float *final_norm;
    float *inv_freq;
    /* scratch */
    float *x, *q, *k, *v, *t1, *t2, *xl, *logits;
    uint16_t *xb, *att, *hb;
    int32_t *tok, *idx;
    size_t bytes_weights, bytes_kv, bytes_scratch;
    void **allocs;
    int nallocs, capallocs;
    int weight_bits;
    char device_name[256];
    int device_cc;
};

static const char *lin_names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                   "mlp.down_proj"};

static int cuda_fail(ptq_err *e, int err, const char *what)
{
    int st = err == (int)cudaErrorMemoryAllocation ? PTQ_ENOMEM : PTQ_EINTERNAL;
    return ptq_fail(e, st, "%s: CUDA error: %s", what, cudaGetErrorString((cudaError_t)err));
}
#define CK(call, what)                                  \
    do {                                                \
        int ck_ = (int)(call);                          \
        if (ck_) return cuda_fail(e, ck_, (what));      \
    } while (0)

/* ---------------------------------------------------------------- options, devices */
void ptqrt_options_default(ptqrt_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_batch = 1;
    o->max_tokens = 256;
    o->verify = 1;
    o->gemv_max_n = PTQK_GEMV_MAX_N;
}

int ptqrt_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

/* ---------------------------------------------------------------- device memory */
static int dalloc(ptqrt_model *m, void **p, size_t bytes, size_t *account, ptq_err *e)
{
    if (m->nallocs == m->capallocs) {
        int cap = m->capallocs ? 2 * m->capallocs : 64;
        void **a = realloc(m->allocs, sizeof *a * (size_t)cap);
        if (!a) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        m->allocs = a;
        m->capallocs = cap;
    }
    *p = NULL;
    cudaError_t err = cudaMalloc(p, bytes ? bytes : 16);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return ptq_fail(e, err == cudaErrorMemoryAllocation ? PTQ_ENOMEM : PTQ_EINTERNAL,
                        "cannot allocate %zu bytes of GPU memory: %s", bytes, cudaGetErrorString(err));
    }
    m->allocs[m->nallocs++] = *p;
    *account += bytes;
    return PTQ_OK;
}

static int upload(ptqrt_model *m, void **dst, const void *src, size_t bytes, ptq_err *e)
{
    int rc = dalloc(m, dst, bytes, &m->bytes_weights, e);
    if (rc) return rc;
    CK(cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice), "uploading weights");
    return PTQ_OK;
}

/* ---------------------------------------------------------------- tensors */
static int expect_shape(const ptq_qtensor *q, const char *name, int rows, int cols, ptq_err *e)
{
    if (q->rows != rows || q->cols != cols)
        return ptq_fail(e, PTQ_EFORMAT, "%s: shape %d x %d, expected %d x %d for this config", name,
                        q->rows, q->cols, rows, cols);
    return PTQ_OK;
}

/* Element i of a dense tensor as float. */
static float dense_at(const ptq_qtensor *q, size_t i)
{
    const uint8_t *p = q->data;
    uint16_t h;
    float f;
    switch (q->dtype) {
    case PTQ_DT_F16: memcpy(&h, p + 2 * i, 2); return ptq_f16_to_f32(h);
    case PTQ_DT_BF16: memcpy(&h, p + 2 * i, 2); return ptq_bf16_to_f32(h);
    default: memcpy(&f, p + 4 * i, 4); return f;
    }
}

/* A vector (norm weight, bias) of n floats. */
static int upload_vec(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, const char *name, int n,
                      float **dst, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e))) goto out;
    if (q.format != PTQ_QF_DENSE || (size_t)q.rows * q.cols != (size_t)n) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: expected a dense vector of %d values", name, n);
        goto out;
    }
    float *h = malloc(sizeof *h * (size_t)n);
    if (!h) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        h[i] = dense_at(&q, (size_t)i);
        if (!isfinite(h[i])) {
            free(h);
            rc = ptq_fail(e, PTQ_EDATA, "%s: value %d is not finite", name, i);
            goto out;
        }
    }
    rc = upload(m, (void **)dst, h, sizeof *h * (size_t)n, e);
    free(h);
out:
    ptq_qtensor_free(&q);
    return rc;
}

/* A matrix [rows][cols]: packed integer as stored, dense as fp16. */
static int upload_lin(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, const char *name, int rows,
                      int cols, lin *l, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    memset(l, 0, sizeof *l);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e)) || (rc = expect_shape(&q, name, rows, cols, e))) goto out;
    l->rows = rows;
    l->cols = cols;
    if (q.format != PTQ_QF_INT && q.format != PTQ_QF_DENSE) {
        /* W8A8 / FP8 (activation-quantized) bundles run on the CPU reference
         * runtime; their kernels are not written yet. */
        rc = ptq_fail(e, PTQ_EFORMAT,
                      "%s: 8-bit activation formats (w8a8, fp8) are not supported by the CUDA "
                      "runtime yet; evaluate this bundle with --device cpu",
                      name);
        goto out;
    }
    if (q.format == PTQ_QF_INT) {
        size_t nw = (size_t)rows * (size_t)ptq_pack_row_words(cols, q.bits);
        size_t ng = (size_t)rows * (size_t)q.ngroups;
        void *qw, *sc, *zr, *gi = NULL;
        if ((rc = upload(m, &qw, q.qweight, nw * 4, e)) || (rc = upload(m, &sc, q.scales, ng * 2, e)) ||
            (rc = upload(m, &zr, q.zeros, ng, e)))
            goto out;
        if (q.g_idx && (rc = upload(m, &gi, q.g_idx, (size_t)cols * 4, e))) goto out;
        l->is_int = 1;
        l->iw = (ptqk_int_w){rows, cols, q.bits, q.group, q.ngroups, qw, sc, zr, gi};
        m->weight_bits = m->weight_bits < 0 ? q.bits : (m->weight_bits == q.bits ? q.bits : 0);
    } else {
        size_t count = (size_t)rows * cols;
        uint16_t *h = malloc(2 * count);
        if (!h) {
            rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
            goto out;
        }
        if (q.dtype == PTQ_DT_F16) {
            memcpy(h, q.data, 2 * count);
        } else {
            for (size_t i = 0; i < count; i++) {
                float f = dense_at(&q, i);
                h[i] = ptq_f32_to_f16(f);
                if (isfinite(f) && (h[i] & 0x7c00u) == 0x7c00u) {
                    free(h);
                    rc = ptq_fail(e, PTQ_EDATA, "%s: value %g does not fit in fp16", name, (double)f);
                    goto out;
                }
            }
        }
        void *d;
        rc = upload(m, &d, h, 2 * count, e);
        free(h);
        if (rc) goto out;
        l->fw = (ptqk_f16_w){rows, cols, d};
    }
out:
    ptq_qtensor_free(&q);
    return rc;
}

/* ---------------------------------------------------------------- setup */
static void rope_inv_freq(const ptq_config *c, float *inv)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow((double)c->rope_theta, -2.0 * i / (double)c->head_dim);
        if (c->rope_scaling == PTQ_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == PTQ_ROPE_LLAMA3) {
            double orig = c->rope_orig_max_pos, low_wl = orig / c->rope_low_freq_factor;
            double high_wl = orig / c->rope_high_freq_factor, wl = 2.0 * M_PI / f;
            if (wl > low_wl) {
                f /= c->rope_factor;
            } else if (wl >= high_wl) {
                double sm = (orig / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0 - sm) * f / c->rope_factor + sm * f;
            }
        }
        inv[i] = (float)f;
    }
}

static int imax(int a, int b) { return a > b ? a : b; }

/* Device, stream, cuBLAS, options, scratch and caches (no weights). */
static int model_begin(ptqrt_model **out, const ptq_config *c, const ptqrt_options *o, ptq_err *e)
{
    *out = NULL;
    if (c->hidden < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->vocab < 1 ||
        c->head_dim < 2 || c->head_dim % 2 || c->n_heads % c->n_kv_heads || c->intermediate < 1)
        return ptq_fail(e, PTQ_EFORMAT, "config: unsupported model dimensions");
    int ndev = ptqrt_device_count();
    if (ndev < 1) return ptq_fail(e, PTQ_ENODEV, "no CUDA device");
    ptqrt_options opt;
    if (o) opt = *o;
    else ptqrt_options_default(&opt);
    if (opt.device < 0 || opt.device >= ndev)
        return ptq_fail(e, PTQ_ENODEV, "CUDA device %d does not exist (%d found)", opt.device, ndev);
    if (opt.max_seq <= 0) opt.max_seq = c->max_pos > 0 && c->max_pos < 2048 ? c->max_pos : 2048;
    if (opt.max_tokens <= 0) opt.max_tokens = 256;
    if (opt.max_batch < 1 || opt.max_batch > opt.max_tokens || opt.max_batch > 4096)
        return ptq_fail(e, PTQ_EUSAGE, "max_batch %d outside 1..max_tokens (%d)", opt.max_batch,
                        opt.max_tokens);
    if (opt.max_seq > PTQK_ATT_MAX_S || opt.max_tokens > 65535)
        return ptq_fail(e, PTQ_EUSAGE, "max_seq %d exceeds %d or max_tokens %d exceeds 65535",
                        opt.max_seq, PTQK_ATT_MAX_S, opt.max_tokens);
    if (opt.gemv_max_n < 0) opt.gemv_max_n = 0;
    if (opt.gemv_max_n > PTQK_GEMV_MAX_N) opt.gemv_max_n = PTQK_GEMV_MAX_N;

    ptqrt_model *m = calloc(1, sizeof *m);
    if (!m) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    *out = m;
    m->cfg = *c;
    m->opt = opt;
    m->weight_bits = -1;
    CK(cudaSetDevice(opt.device), "selecting the device");
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, opt.device), "reading device properties");
    snprintf(m->device_name, sizeof m->device_name, "%s", prop.name);
    m->device_cc = prop.major * 10 + prop.minor;
    if (m->device_cc < 80)
        return ptq_fail(e, PTQ_ENODEV, "%s has compute capability %d.%d; libptqrt needs 8.0 or later",
                        prop.name, prop.major, prop.minor);
    CK(cudaStreamCreate(&m->stream), "creating a stream");
    if (cublasCreate(&m->cublas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(m->cublas, m->stream))
        return ptq_fail(e, PTQ_EINTERNAL, "cannot initialise cuBLAS");

    int rc;
    size_t MT = (size_t)opt.max_tokens, D = c->hidden, I = c->intermediate, V = c->vocab;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = (size_t)imax(imax((int)D, (int)I), (int)QD);
    size_t *sc = &m->bytes_scratch;
    if ((rc = dalloc(m, (void **)&m->x, 4 * MT * D, sc, e)) ||
        (rc = dalloc(m, (void **)&m->q, 4 * MT * QD, sc, e)) ||
        (rc = dalloc(m, (void **)&m->k, 4 * MT * KVD, sc, e)) ||
        (rc = dalloc(m, (void **)&m->v, 4 * MT * KVD, sc, e)) ||
        (rc = dalloc(m, (void **)&m->t1, 4 * MT * wide, sc, e)) ||
        (rc = dalloc(m, (void **)&m->t2, 4 * MT * I, sc, e)) ||
        (rc = dalloc(m, (void **)&m->xl, 4 * MT * D, sc, e)) ||
        (rc = dalloc(m, (void **)&m->logits, 4 * MT * V, sc, e)) ||
        (rc = dalloc(m, (void **)&m->xb, 2 * MT * wide, sc, e)) ||
        (rc = dalloc(m, (void **)&m->att, 2 * MT * QD, sc, e)) ||
        (rc = dalloc(m, (void **)&m->hb, 2 * MT * I, sc, e)) ||
        (rc = dalloc(m, (void **)&m->tok, 4 * MT, sc, e)) ||
        (rc = dalloc(m, (void **)&m->idx, 4 * MT, sc, e)))
        return rc;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    float *inv = malloc(sizeof *inv * (size_t)(c->head_dim / 2));
    if (!inv) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    rope_inv_freq(c, inv);
    rc = upload(m, (void **)&m->inv_freq, inv, sizeof *inv * (size_t)(c->head_dim / 2), e);
    free(inv);
    return rc;
}

/* The KV cache of layer l (after its kv_scale is known): int8 or fp16. */
static int alloc_kv(ptqrt_model *m, layer *L, ptq_err *e)
{
    size_t n = (size_t)m->opt.max_batch * m->opt.max_seq * m->cfg.n_kv_heads * m->cfg.head_dim;
    int rc;
    if (L->kv_scale) {
        if ((rc = dalloc(m, (void **)&L->kq, n, &m->bytes_kv, e)) ||
            (rc = dalloc(m, (void **)&L->vq, n, &m->bytes_kv, e)))
            return rc;
        return PTQ_OK;
    }
    if ((rc = dalloc(m, (void **)&L->kc, 2 * n, &m->bytes_kv, e)) ||
        (rc = dalloc(m, (void **)&L->vc, 2 * n, &m->bytes_kv, e)))
        return rc;
    return PTQ_OK;
}

/* The int8 KV-cache scales of layer l when the source has them (tensor
 * model.layers.L.self_attn.kv_scale, F32, keys then values): [2, kv heads *
 * head_dim] per channel, or the per-head [2, kv heads] of earlier bundles,
 * expanded to every channel of its head; finite and positive. */
static int upload_kv_scale(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, int l, float **dst,
                           ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    int kvd = c->n_kv_heads * c->head_dim;
    char name[160];
    *dst = NULL;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_scale", l);
    if (!get(ctx, name, NULL, e)) return PTQ_OK;
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e))) goto out;
    if (q.format != PTQ_QF_DENSE || q.dtype != PTQ_DT_F32 || q.rows != 2 ||
        (q.cols != kvd && q.cols != c->n_kv_heads)) {
        rc = ptq_fail(e, PTQ_EFORMAT, "tensor %s is not F32 2 x %d (per channel) or 2 x %d (per head)",
                      name, kvd, c->n_kv_heads);
        goto out;
    }
    float *h = malloc(sizeof *h * 2 * (size_t)kvd);
    if (!h) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        goto out;
    }
    int per = q.cols == kvd ? 1 : c->head_dim; /* channels per stored scale */
    for (int i = 0; i < 2 * kvd; i++) {
        h[i] = dense_at(&q, (size_t)(i / per));
        if (!(isfinite(h[i]) && h[i] > 0)) {
            rc = ptq_fail(e, PTQ_EFORMAT, "tensor %s: scale %g is not finite and positive", name,
                          (double)h[i]);
            break;
        }
    }
    if (!rc) rc = upload(m, (void **)dst, h, sizeof *h * 2 * (size_t)kvd, e);
    free(h);
out:
    ptq_qtensor_free(&q);
    return rc;
}

int ptqrt_open_tensors(ptqrt_model **out, const ptq_config *c, ptqrt_tensor_fn get, void *ctx,
                       const ptqrt_options *o, ptq_err *e)
{
    ptqrt_model *m = NULL;
    int rc = model_begin(&m, c, o, e);
    char name[160];
    int D = c->hidden, I = c->intermediate, QD = c->n_heads * c->head_dim,
        KVD = c->n_kv_heads * c->head_dim;
    for (int l = 0; !rc && l < c->n_layers; l++) {
        layer *L = &m->layers[l];
        int shp[7][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {I, D}, {I, D}, {D, I}};
        for (int j = 0; !rc && j < 7; j++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lin_names[j]);
            rc = upload_lin(m, get, ctx, name, shp[j][0], shp[j][1], &L->w[j], e);
        }
        for (int j = 0; !rc && c->qkv_bias && j < 3; j++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, lin_names[j]);
            rc = upload_vec(m, get, ctx, name, shp[j][0], &L->bias[j], e);
        }
        if (!rc) {
            snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
            rc = upload_vec(m, get, ctx, name, D, &L->attn_norm, e);
        }
        if (!rc) {
            snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
            rc = upload_vec(m, get, ctx, name, D, &L->mlp_norm, e);
        }
        if (!rc) rc = upload_kv_scale(m, get, ctx, l, &L->kv_scale, e);
        if (!rc) rc = alloc_kv(m, L, e);
    }
    if (!rc) rc = upload_lin(m, get, ctx, "model.embed_tokens.weight", c->vocab, D, &m->embed, e);
    if (!rc) rc = upload_vec(m, get, ctx, "model.norm.weight", D, &m->final_norm, e);
    if (!rc) {
        if (c->tie_embeddings) m->head = m->embed;
        else rc = upload_lin(m, get, ctx, "lm_head.weight", c->vocab, D, &m->head, e);
    }
    if (rc) {
        ptqrt_close(m);
        return rc;
    }
    *out = m;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- bundles */
static int bundle_get(void *ctx, const char *name, ptq_qtensor *q, ptq_err *e)
{
    if (!q) {
        char member[200];
        snprintf(member, sizeof member, "tensors/%s.data", name);
        return ptq_bundle_member_data((const ptq_bundle *)ctx, member, NULL) != NULL;
    }
    return ptq_bundle_tensor((const ptq_bundle *)ctx, name, q, e);
}

int ptqrt_open(ptqrt_model **m, const char *path, const ptqrt_options *o, ptq_err *e)
{
    *m = NULL;
    if (ptqrt_device_count() < 1) return ptq_fail(e, PTQ_ENODEV, "no CUDA device");
    ptqrt_options opt;
    if (o) opt = *o;
    else ptqrt_options_default(&opt);
    ptq_bundle b;
    memset(&b, 0, sizeof b);
    int rc = ptq_bundle_open(&b, path, opt.verify, e);
    if (rc) return rc;
    uint64_t len = 0;
    const void *cj = ptq_bundle_member_data(&b, "config.json", &len);
    ptq_config cfg;
    if (!cj) rc = ptq_fail(e, PTQ_EFORMAT, "%s: no config.json member", path);
    else rc = ptq_config_parse(&cfg, cj, (size_t)len, "config.json", e);
    if (!rc) rc = ptqrt_open_tensors(m, &cfg, bundle_get, &b, &opt, e);
    if (rc) ptq_fail_prefix(e, "%s", path);
    ptq_bundle_close(&b);
    return rc;
}

/* ---------------------------------------------------------------- synthetic models */
void ptqrt_synth_llama7b(ptqrt_synth *s, int bits, int group)
{
    *s = (ptqrt_synth){4096, 11008, 32, 32, 32, 32000, 4096, bits, group, 1234};
}

static int synth_lin(ptqrt_model *m, const ptqrt_synth *s, int rows, int cols, uint64_t seed, lin *l,
                     ptq_err *e)
{
    memset(l, 0, sizeof *l);
    l->rows = rows;
    l->cols = cols;
    int rc;
    cudaStream_t st = m->stream;
    if (s->bits == 16) {
        void *d;
        if ((rc = dalloc(m, &d, 2 * (size_t)rows * cols, &m->bytes_weights, e))) return rc;
        CK(ptqk_fill_f16(d, (size_t)rows * cols, 1.0f / sqrtf((float)cols), 0.0f, seed, st), "filling");
        l->fw = (ptqk_f16_w){rows, cols, d};
        return PTQ_OK;
    }
    int ng = s->group ? cols / s->group : 1;
    size_t nw = (size_t)rows * ptq_pack_row_words(cols, s->bits), ngt = (size_t)rows * ng;
    void *qw, *sc, *zr;
    if ((rc = dalloc(m, &qw, nw * 4, &m->bytes_weights, e)) ||
        (rc = dalloc(m, &sc, ngt * 2, &m->bytes_weights, e)) ||
        (rc = dalloc(m, &zr, ngt, &m->bytes_weights, e)))
        return rc;
    /* codes past cols in a tail block stay random: harmless, they multiply zeros */
    CK(ptqk_fill_u32(qw, nw, seed, st), "filling");
    float amp = 2.0f / ((float)(1 << s->bits) * sqrtf((float)cols));
    CK(ptqk_fill_f16(sc, ngt, 0.5f * amp, amp, seed + 1, st), "filling");
    CK(ptqk_fill_u8(zr, ngt, 0, (1u << s->bits) - 1u, seed + 2, st), "filling");
    l->is_int = 1;
    l->iw = (ptqk_int_w){rows, cols, s->bits, s->group, ng, qw, sc, zr, NULL};
    return PTQ_OK;
}

int ptqrt_open_synthetic(ptqrt_model **out, const ptqrt_synth *s, const ptqrt_options *o, ptq_err *e)
{
    *out = NULL;
    if (s->bits != 16 && s->bits != 2 && s->bits != 3 && s->bits != 4 && s->bits != 8)
        return ptq_fail(e, PTQ_EUSAGE, "synthetic model: bits %d is not 2, 3, 4, 8 or 16", s->bits);
    if (s->hidden < 1 || s->n_heads < 1 || s->hidden % s->n_heads ||
        (s->bits != 16 && s->group && (s->hidden % s->group || s->intermediate % s->group)))
        return ptq_fail(e, PTQ_EUSAGE, "synthetic model: group %d does not divide %d and %d", s->group,
                        s->hidden, s->intermediate);
    ptq_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.hidden = s->hidden;
    c.intermediate = s->intermediate;
    c.n_layers = s->n_layers;
    c.n_heads = s->n_heads;
    c.n_kv_heads = s->n_kv_heads;
    c.head_dim = s->n_heads ? s->hidden / s->n_heads : 0;
    c.vocab = s->vocab;
    c.max_pos = s->max_pos;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.bos_id = 1;
    c.eos_id = -1; /* random weights: never stop early */
    ptqrt_model *m;
    int rc = model_begin(&m, &c, o, e);
    int D = c.hidden, I = c.intermediate, QD = c.n_heads * c.head_dim, KVD = c.n_kv_heads * c.head_dim;
    uint64_t seed = s->seed * 1000003ull;
    for (int l = 0; !rc && l < c.n_layers; l++) {
        layer *L = &m->layers[l];
        int shp[7][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {I, D}, {I, D}, {D, I}};
        for (int j = 0; !rc && j < 7; j++) rc = synth_lin(m, s, shp[j][0], shp[j][1], seed += 17, &L->w[j], e);
        if (!rc) rc = alloc_kv(m, L, e);
        if (!rc && !(rc = dalloc(m, (void **)&L->attn_norm, 4 * (size_t)D, &m->bytes_weights, e)) &&
            !(rc = dalloc(m, (void **)&L->mlp_norm, 4 * (size_t)D, &m->bytes_weights, e))) {
            int r1 = ptqk_fill_f32(L->attn_norm, (size_t)D, 1.0f, m->stream);
            int r2 = ptqk_fill_f32(L->mlp_norm, (size_t)D, 1.0f, m->stream);
            if (r1 || r2) rc = cuda_fail(e, r1 ? r1 : r2, "filling");
        }
    }
    if (!rc) {
        ptqrt_synth fs = *s;
        fs.bits = 16; /* embedding and classifier stay fp16, as compiled bundles keep them */
        rc = synth_lin(m, &fs, c.vocab, D, seed + 101, &m->embed, e);
        if (!rc) rc = synth_lin(m, &fs, c.vocab, D, seed + 103, &m->head, e);
    }
    if (!rc && !(rc = dalloc(m, (void **)&m->final_norm, 4 * (size_t)D, &m->bytes_weights, e))) {
        int r = ptqk_fill_f32(m->final_norm, (size_t)D, 1.0f, m->stream);
        if (r) rc = cuda_fail(e, r, "filling");
    }
    if (!rc) {
        m->weight_bits = s->bits;
        int r = (int)cudaStreamSynchronize(m->stream);
        if (r) rc = cuda_fail(e, r, "generating random weights");
    }
    if (rc) {
        ptqrt_close(m);
        return rc;
    }
    *out = m;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- teardown, info */
void ptqrt_close(ptqrt_model *m)
{
    if (!m) return;
    if (m->stream) cudaStreamSynchronize(m->stream);
    for (int i = 0; i < m->nallocs; i++) cudaFree(m->allocs[i]);
    if (m->cublas) cublasDestroy(m->cublas);
    if (m->stream) cudaStreamDestroy(m->stream);
    (void)cudaGetLastError();
    free(m->allocs);
    free(m->layers);
    free(m);
}

void ptqrt_get_info(const ptqrt_model *m, ptqrt_info *info)
{
    memset(info, 0, sizeof *info);
    const ptq_config *c = &m->cfg;
    info->hidden = c->hidden;
    info->intermediate = c->intermediate;
    info->n_layers = c->n_layers;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->head_dim = c->head_dim;
    info->vocab = c->vocab;
    info->max_batch = m->opt.max_batch;
    info->max_seq = m->opt.max_seq;
    info->max_tokens = m->opt.max_tokens;
    info->bos_id = c->bos_id;
    info->eos_id = c->eos_id;
    info->weight_bits = m->weight_bits < 0 ? 16 : m->weight_bits;
    snprintf(info->device_name, sizeof info->device_name, "%s", m->device_name);
    info->device_cc = m->device_cc;
}

int ptqrt_memory(const ptqrt_model *m, ptqrt_mem *mem, ptq_err *e)
{
    memset(mem, 0, sizeof *mem);
    mem->weights = m->bytes_weights;
    mem->kv_cache = m->bytes_kv;
    mem->scratch = m->bytes_scratch;
    CK(cudaSetDevice(m->opt.device), "selecting the device");
    CK(cudaMemGetInfo(&mem->device_free, &mem->device_total), "reading memory information");
    return PTQ_OK;
}

/* ---------------------------------------------------------------- forward */
static int linear(ptqrt_model *m, const lin *l, const uint16_t *x, float *y, int n)
{
    if (l->is_int) return ptqk_linear_int(&l->iw, x, l->cols, y, l->rows, n, m->opt.gemv_max_n, m->stream);
    return ptqk_linear_f16(m->cublas, &l->fw, x, l->cols, y, l->rows, n);
}

/* One chunk: B sequences of T tokens (already on the device in m->tok) at
 * positions pos..; leaves the final hidden states in m->x. */
static int forward_chunk(ptqrt_model *m, int B, int T, int pos, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    const int n = B * T, D = c->hidden, I = c->intermediate, hd = c->head_dim;
    const int QD = c->n_heads * hd, KVD = c->n_kv_heads * hd, S = m->opt.max_seq;
    cudaStream_t s = m->stream;
    if (m->embed.is_int) CK(ptqk_embed_int(&m->embed.iw, m->tok, n, m->x, s), "embedding");
    else CK(ptqk_embed_f16(m->embed.fw.w, D, m->tok, n, m->x, s), "embedding");
    for (int l = 0; l < c->n_layers; l++) {
        layer *L = &m->layers[l];
        CK(ptqk_rmsnorm(m->x, L->attn_norm, D, c->rms_eps, n, m->xb, s), "rmsnorm");
        CK(linear(m, &L->w[0], m->xb, m->q, n), "q_proj");
        CK(linear(m, &L->w[1], m->xb, m->k, n), "k_proj");
        CK(linear(m, &L->w[2], m->xb, m->v, n), "v_proj");
        if (L->bias[0]) {
            CK(ptqk_add_bias(m->q, L->bias[0], QD, n, s), "q bias");
            CK(ptqk_add_bias(m->k, L->bias[1], KVD, n, s), "k bias");
            CK(ptqk_add_bias(m->v, L->bias[2], KVD, n, s), "v bias");
        }
        CK(ptqk_rope(m->q, c->n_heads, hd, m->inv_freq, B, T, pos, s), "rope");
        CK(ptqk_rope(m->k, c->n_kv_heads, hd, m->inv_freq, B, T, pos, s), "rope");
        if (L->kv_scale) {
            CK(ptqk_kv_store_i8(m->k, m->v, L->kv_scale, KVD, B, T, pos, S, L->kq, L->vq, s), "kv cache");
            CK(ptqk_attention_i8(m->q, L->kq, L->vq, L->kv_scale, c->n_heads, c->n_kv_heads, hd, B, T,
                                 pos, S, m->att, s),
               "attention");
        } else {
            CK(ptqk_kv_store(m->k, m->v, KVD, B, T, pos, S, L->kc, L->vc, s), "kv cache");
            CK(ptqk_attention(m->q, L->kc, L->vc, c->n_heads, c->n_kv_heads, hd, B, T, pos, S, m->att, s),
               "attention");
        }
        CK(linear(m, &L->w[3], m->att, m->t1, n), "o_proj");
        CK(ptqk_residual(m->x, m->t1, (size_t)n * D, s), "residual");
        CK(ptqk_rmsnorm(m->x, L->mlp_norm, D, c->rms_eps, n, m->xb, s), "rmsnorm");
        CK(linear(m, &L->w[4], m->xb, m->t1, n), "gate_proj");
        CK(linear(m, &L->w[5], m->xb, m->t2, n), "up_proj");
        CK(ptqk_swiglu(m->t1, m->t2, (size_t)n * I, m->hb, s), "swiglu");
        CK(linear(m, &L->w[6], m->hb, m->t1, n), "down_proj");
        CK(ptqk_residual(m->x, m->t1, (size_t)n * D, s), "residual");
    }
    return PTQ_OK;
}

/* Final norm and classifier for rows h [n][D] -> m->logits [n][V]. */
static int classify(ptqrt_model *m, const float *h, int n, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    CK(ptqk_rmsnorm(h, m->final_norm, c->hidden, c->rms_eps, n, m->xb, m->stream), "final norm");
    CK(linear(m, &m->head, m->xb, m->logits, n), "lm_head");
    return PTQ_OK;
}

int ptqrt_forward(ptqrt_model *m, const int32_t *tokens, int B, int T, int pos, float *logits,
                  int all_logits, ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    const size_t V = (size_t)c->vocab;
    if (B < 1 || B > m->opt.max_batch)
        return ptq_fail(e, PTQ_EUSAGE, "batch %d outside 1..%d (max_batch)", B, m->opt.max_batch);
    if (T < 1 || pos < 0 || pos > m->opt.max_seq - T)
        return ptq_fail(e, PTQ_EUSAGE, "positions %d..%d outside the KV cache of %d", pos, pos + T - 1,
                        m->opt.max_seq);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return ptq_fail(e, PTQ_EUSAGE, "token id %d outside the vocabulary of %d", (int)tokens[i],
                            c->vocab);
    CK(cudaSetDevice(m->opt.device), "selecting the device");
    const int tc = m->opt.max_tokens / B; /* >= 1: max_batch <= max_tokens */
    int32_t *htok = malloc(sizeof *htok * (size_t)m->opt.max_tokens * 2);
    if (!htok) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    int32_t *hidx = htok + m->opt.max_tokens;
    int rc = PTQ_OK;
    for (int t0 = 0; t0 < T && !rc; t0 += tc) {
        int tt = T - t0 < tc ? T - t0 : tc, n = B * tt;
        for (int b = 0; b < B; b++)
            memcpy(htok + (size_t)b * tt, tokens + (size_t)b * T + t0, sizeof *htok * (size_t)tt);
        int err = (int)cudaMemcpyAsync(m->tok, htok, sizeof *htok * (size_t)n, cudaMemcpyHostToDevice, m->stream);
        if (err) {
            rc = cuda_fail(e, err, "uploading tokens");
            break;
        }
        if ((rc = forward_chunk(m, B, tt, pos + t0, e))) break;
        if (all_logits) {
            if ((rc = classify(m, m->x, n, e))) break;
            for (int b = 0; b < B && !err; b++)
                err = (int)cudaMemcpyAsync(logits + ((size_t)b * T + t0) * V, m->logits + (size_t)b * tt * V,
                                           sizeof(float) * V * (size_t)tt, cudaMemcpyDeviceToHost, m->stream);
        } else if (t0 + tt == T) {
            for (int b = 0; b < B; b++) hidx[b] = b * tt + tt - 1;
            err = (int)cudaMemcpyAsync(m->idx, hidx, sizeof *hidx * (size_t)B, cudaMemcpyHostToDevice, m->stream);
            if (!err) err = ptqk_gather_rows(m->x, c->hidden, m->idx, B, m->xl, m->stream);
            if (!err && (rc = classify(m, m->xl, B, e))) break;
            if (!err)
                err = (int)cudaMemcpyAsync(logits, m->logits, sizeof(float) * V * (size_t)B,
                                           cudaMemcpyDeviceToHost, m->stream);
        }
        /* the host buffers are reused by the next chunk: wait for the copies */
        if (!err) err = (int)cudaStreamSynchronize(m->stream);
        if (err) rc = cuda_fail(e, err, "forward");
    }
    free(htok);
    return rc;
}

/* ---------------------------------------------------------------- perplexity */
/* logsumexp(l) - l[target] in double; NAN when a logit is not finite. */
static double token_nll(const float *l, int V, int target)
{
    float mx = l[0];
    for (int v = 0; v < V; v++) {
        if (!isfinite(l[v])) return NAN;
        if (l[v] > mx) mx = l[v];
    }
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
    return (double)mx + log(s) - (double)l[target];
}

int ptqrt_eval_nll(ptqrt_model *m, const int32_t *ids, size_t n_ids, int ctx, double *window_nll,
                   ptq_err *e)
{
    const int V = m->cfg.vocab;
    if (ctx < 2 || ctx > m->opt.max_seq)
        return ptq_fail(e, PTQ_EUSAGE, "window of %d tokens outside 2..%d (max_seq)", ctx, m->opt.max_seq);
    size_t nw = n_ids / (size_t)ctx;
    int B = m->opt.max_batch;
    float *logits = malloc(sizeof *logits * (size_t)B * ctx * V);
    if (!logits) return ptq_fail(e, PTQ_ENOMEM, "out of host memory for %d x %d logits", B * ctx, V);
    int rc = PTQ_OK;
    for (size_t w0 = 0; w0 < nw && !rc; w0 += (size_t)B) {
        int nb = nw - w0 < (size_t)B ? (int)(nw - w0) : B;
        const int32_t *win = ids + w0 * (size_t)ctx;
        if ((rc = ptqrt_forward(m, win, nb, ctx, 0, logits, 1, e))) break;
        for (int b = 0; b < nb && !rc; b++) {
            double sum = 0.0;
            for (int t = 1; t < ctx; t++) {
                double d = token_nll(logits + ((size_t)b * ctx + t - 1) * V, V, win[(size_t)b * ctx + t]);
                if (isnan(d)) {
                    rc = ptq_fail(e, PTQ_EDATA, "the logits are not finite (window %zu, position %d)",
                                  w0 + (size_t)b, t - 1);
                    break;
                }
                sum += d;
            }
            window_nll[w0 + (size_t)b] = sum;
        }
    }
    free(logits);
    return rc;
}

/* ---------------------------------------------------------------- sampling */
/* The RNG and sampler are lib/base/sample.c's (shared with the CPU decoder, so
 * equal logits and seeds give equal tokens); ptqrt_rng is its public twin. */
void ptqrt_rng_seed(ptqrt_rng *r, uint64_t seed)
{
    ptq_rng g;
    ptq_rng_seed(&g, seed);
    memcpy(r->s, g.s, sizeof r->s);
}

double ptqrt_rng_uniform(ptqrt_rng *r)
{
    ptq_rng g;
    memcpy(g.s, r->s, sizeof g.s);
    double u = ptq_rng_uniform(&g);
    memcpy(r->s, g.s, sizeof r->s);
    return u;
}

int ptqrt_sample(const float *logits, int vocab, float temp, float top_p, ptqrt_rng *rng)
{
    ptq_rng g;
    memcpy(g.s, rng->s, sizeof g.s);
    int tok = ptq_sample(logits, vocab, temp, top_p, &g);
    memcpy(rng->s, g.s, sizeof rng->s);
    return tok;
}

int ptqrt_generate(ptqrt_model *m, const int32_t *prompt, int n_prompt, int max_new,
                   const ptqrt_sampling *s, int32_t *out, int *n_out, ptqrt_token_cb cb, void *ud,
                   ptq_err *e)
{
    *n_out = 0;
    if (n_prompt < 1 || max_new < 0)
        return ptq_fail(e, PTQ_EUSAGE, "generation needs a prompt of at least one token");
    if (n_prompt > m->opt.max_seq)
        return ptq_fail(e, PTQ_EUSAGE, "prompt of %d tokens longer than the KV cache (%d)", n_prompt,
                        m->opt.max_seq);
    float *logits = malloc(sizeof *logits * (size_t)m->cfg.vocab);
    if (!logits) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    ptqrt_rng rng;
    ptqrt_rng_seed(&rng, s ? s->seed : 0);
    float temp = s ? s->temp : 0.0f, top_p = s ? s->top_p : 1.0f;
    int rc = ptqrt_forward(m, prompt, 1, n_prompt, 0, logits, 0, e);
    int pos = n_prompt;
    while (!rc && *n_out < max_new) {
        int32_t tok = ptqrt_sample(logits, m->cfg.vocab, temp, top_p, &rng);
        if (tok < 0) {
            rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
            break;
        }
        out[(*n_out)++] = tok;
        if ((cb && cb(ud, tok)) || tok == m->cfg.eos_id || *n_out == max_new || pos >= m->opt.max_seq)
            break;
        rc = ptqrt_forward(m, &tok, 1, 1, pos++, logits, 0, e);
    }
    free(logits);
    return rc;
}
