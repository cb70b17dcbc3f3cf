/* ptqrt.c - host side of libptqrt: options, devices, device memory, model
 * setup and teardown, info.  Loading is ptqrt_load.c, the forward
 * ptqrt_forward.c, generation ptqrt_generate.c (lib/cuda/ptqrt_impl.h lists
 * them); the kernels are lib/cuda/ptqrt_kernels.h.  One CUDA stream and one
 * cuBLAS handle per model; every device allocation is recorded so
 * ptqrt_close frees it all and ptqrt_memory can account for it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cuda/ptqrt_impl.h"

/* ---------------------------------------------------------------- errors */
int ptqrt_cuda_fail(ptq_err *e, int err, const char *what)
{
    int st = err == (int)cudaErrorMemoryAllocation ? PTQ_ENOMEM : PTQ_EINTERNAL;
    return ptq_fail(e, st, "%s: CUDA error: %s", what, cudaGetErrorString((cudaError_t)err));
}

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
int ptqrt_dalloc(ptqrt_model *m, void **p, size_t bytes, size_t *account, ptq_err *e)
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

int ptqrt_upload(ptqrt_model *m, void **dst, const void *src, size_t bytes, ptq_err *e)
{
    int rc = ptqrt_dalloc(m, dst, bytes, &m->bytes_weights, e);
    if (rc) return rc;
    CK(cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice), "uploading weights");
    return PTQ_OK;
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
int ptqrt_model_begin(ptqrt_model **out, const ptq_config *c, const ptqrt_options *o, ptq_err *e)
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
    if ((rc = ptqrt_dalloc(m, (void **)&m->x, 4 * MT * D, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->q, 4 * MT * QD, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->k, 4 * MT * KVD, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->v, 4 * MT * KVD, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->t1, 4 * MT * wide, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->t2, 4 * MT * I, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->xl, 4 * MT * D, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->logits, 4 * MT * V, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->xb, 2 * MT * wide, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->att, 2 * MT * QD, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->hb, 2 * MT * I, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->tok, 4 * MT, sc, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&m->idx, 4 * MT, sc, e)))
        return rc;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    float *inv = malloc(sizeof *inv * (size_t)(c->head_dim / 2));
    if (!inv) return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
    rope_inv_freq(c, inv);
    rc = ptqrt_upload(m, (void **)&m->inv_freq, inv, sizeof *inv * (size_t)(c->head_dim / 2), e);
    free(inv);
    return rc;
}

/* The KV cache of layer l (after its kv_scale is known): int8 or fp16. */
int ptqrt_alloc_kv(ptqrt_model *m, layer *L, ptq_err *e)
{
    size_t n = (size_t)m->opt.max_batch * m->opt.max_seq * m->cfg.n_kv_heads * m->cfg.head_dim;
    int rc;
    if (L->kv_scale) {
        if ((rc = ptqrt_dalloc(m, (void **)&L->kq, n, &m->bytes_kv, e)) ||
            (rc = ptqrt_dalloc(m, (void **)&L->vq, n, &m->bytes_kv, e)))
            return rc;
        return PTQ_OK;
    }
    if ((rc = ptqrt_dalloc(m, (void **)&L->kc, 2 * n, &m->bytes_kv, e)) ||
        (rc = ptqrt_dalloc(m, (void **)&L->vc, 2 * n, &m->bytes_kv, e)))
        return rc;
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

