/* bench_synth.c - random Llama-shape models for `ptqc bench --synthetic`
 * (see bench_synth.h).  Each tensor the loader asks for is made on the host
 * when asked (the loader uploads and frees it): codes and zeros uniform,
 * fp16 values drawn from a table of 1024 values uniform in the tensor's
 * range; generated in parallel, in fixed blocks so the weights do not
 * depend on the machine. */
#include "src/bench_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/config.h"
#include "lib/base/dtype.h"
#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/base/sample.h"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qtensor.h"

void bench_synth_llama7b(bench_synth *s, int bits, int group)
{
    *s = (bench_synth){4096, 11008, 32, 32, 32, 32000, 4096, bits, group, 1234};
}

/* One fill job: elements [i0, i1) of an array of 16-bit table values, 32-bit
 * random words or 8-bit values below `mod`. */
typedef struct fill_job {
    void *p;
    size_t i0, i1;
    int kind; /* 0: uint16 from table, 1: uint32 random, 2: uint8 % mod */
    const uint16_t *table;
    unsigned mod;
    uint64_t seed;
} fill_job;

static void fill_run(void *arg)
{
    fill_job *j = arg;
    ptq_rng r;
    ptq_rng_seed(&r, j->seed);
    for (size_t i = j->i0; i < j->i1; i++) {
        uint64_t u = ptq_rng_next(&r);
        if (j->kind == 0) ((uint16_t *)j->p)[i] = j->table[u >> 54];
        else if (j->kind == 1) ((uint32_t *)j->p)[i] = (uint32_t)(u >> 32);
        else ((uint8_t *)j->p)[i] = (uint8_t)((u >> 32) % j->mod);
    }
}

/* Fill n elements in 16 blocks on 16 threads, block b seeded from (seed, b):
 * the same bytes on any machine. */
static void fill(void *p, size_t n, int kind, const uint16_t *table, unsigned mod, uint64_t seed)
{
    enum { NJ = 16 };
    fill_job jobs[NJ];
    for (int b = 0; b < NJ; b++)
        jobs[b] = (fill_job){p, n * b / NJ, n * (b + 1) / NJ, kind, table, mod, seed * 1000003ull + b};
    ptq_par_run(NJ, fill_run, jobs, sizeof jobs[0]);
}

/* fp16 values uniform in [center - half, center + half]. */
static void f16_table(uint16_t t[1024], float center, float half)
{
    for (int i = 0; i < 1024; i++) t[i] = ptq_f32_to_f16(center + half * (2.0f * (float)i / 1023.0f - 1.0f));
}

typedef struct synth_ctx {
    ptq_config c;
    bench_synth s;
} synth_ctx;

/* The shape [rows][cols] of a named linear, or 0 when the name is not one. */
static int linear_shape(const ptq_config *c, const char *name, int *rows, int *cols)
{
    int D = c->hidden, I = c->intermediate, QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    static const char *nm[7] = {"q_proj.", "k_proj.", "v_proj.", "o_proj.", "gate_proj.", "up_proj.", "down_proj."};
    int shp[7][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {I, D}, {I, D}, {D, I}};
    for (int j = 0; j < 7; j++)
        if (strstr(name, nm[j])) {
            *rows = shp[j][0], *cols = shp[j][1];
            return 1;
        }
    return 0;
}

static int synth_dense(ptq_qtensor *q, int rows, int cols, int dtype, uint64_t seed, ptq_err *e)
{
    size_t n = (size_t)rows * cols;
    *q = (ptq_qtensor){.format = PTQ_QF_DENSE, .rows = rows, .cols = cols, .dtype = dtype};
    q->data = malloc(n * (dtype == PTQ_DT_F32 ? 4 : 2));
    if (!q->data) return ptq_fail(e, PTQ_ENOMEM, "out of host memory for a %d x %d tensor", rows, cols);
    if (dtype == PTQ_DT_F32) { /* norms */
        for (size_t i = 0; i < n; i++) ((float *)q->data)[i] = 1.0f;
        return PTQ_OK;
    }
    uint16_t t[1024];
    f16_table(t, 0.0f, 1.0f / sqrtf((float)cols));
    fill(q->data, n, 0, t, 0, seed);
    return PTQ_OK;
}

static int synth_int(ptq_qtensor *q, int rows, int cols, int bits, int group, uint64_t seed, ptq_err *e)
{
    int ng = group ? cols / group : 1;
    size_t nw = (size_t)rows * ptq_pack_row_words(cols, bits), ngt = (size_t)rows * ng;
    *q = (ptq_qtensor){.format = PTQ_QF_INT, .rows = rows, .cols = cols, .bits = bits, .group = group,
                       .ngroups = ng};
    q->qweight = malloc(4 * nw);
    q->scales = malloc(2 * ngt);
    q->zeros = malloc(ngt);
    if (!q->qweight || !q->scales || !q->zeros) {
        ptq_qtensor_free(q);
        return ptq_fail(e, PTQ_ENOMEM, "out of host memory for a %d x %d tensor", rows, cols);
    }
    /* codes past cols in a tail block stay random: harmless, they multiply zeros */
    fill(q->qweight, nw, 1, NULL, 0, seed);
    float amp = 2.0f / ((float)(1 << bits) * sqrtf((float)cols));
    uint16_t t[1024];
    f16_table(t, amp, 0.5f * amp);
    fill(q->scales, ngt, 0, t, 0, seed + 1);
    fill(q->zeros, ngt, 2, NULL, 1u << bits, seed + 2);
    return PTQ_OK;
}

/* The tensor provider: every tensor of the config, made when asked; no
 * optional tensors (kv_scale). */
static int synth_get(void *ctx, const char *name, ptq_qtensor *q, ptq_err *e)
{
    const synth_ctx *x = ctx;
    if (!q) return 0;
    uint64_t seed = x->s.seed;
    for (const char *p = name; *p; p++) seed = seed * 131 + (unsigned char)*p; /* per tensor */
    int rows, cols;
    if (strstr(name, "layernorm.weight") || !strcmp(name, "model.norm.weight"))
        return synth_dense(q, 1, x->c.hidden, PTQ_DT_F32, seed, e);
    if (linear_shape(&x->c, name, &rows, &cols))
        return x->s.bits == 16 ? synth_dense(q, rows, cols, PTQ_DT_F16, seed, e)
                               : synth_int(q, rows, cols, x->s.bits, x->s.group, seed, e);
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight"))
        return synth_dense(q, x->c.vocab, x->c.hidden, PTQ_DT_F16, seed, e);
    return ptq_fail(e, PTQ_EINTERNAL, "synthetic model: no tensor %s", name);
}

int bench_open_synthetic(ptqrt_model **m, const bench_synth *s, const ptqrt_options *o, ptq_err *e)
{
    *m = NULL;
    if (s->bits != 16 && s->bits != 2 && s->bits != 3 && s->bits != 4 && s->bits != 8)
        return ptq_fail(e, PTQ_EUSAGE, "synthetic model: bits %d is not 2, 3, 4, 8 or 16", s->bits);
    if (s->hidden < 1 || s->n_heads < 1 || s->hidden % s->n_heads ||
        (s->bits != 16 && s->group && (s->hidden % s->group || s->intermediate % s->group)))
        return ptq_fail(e, PTQ_EUSAGE, "synthetic model: group %d does not divide %d and %d", s->group,
                        s->hidden, s->intermediate);
    synth_ctx x = {.s = *s};
    ptq_config *c = &x.c;
    snprintf(c->model_type, sizeof c->model_type, "llama");
    c->hidden = s->hidden;
    c->intermediate = s->intermediate;
    c->n_layers = s->n_layers;
    c->n_heads = s->n_heads;
    c->n_kv_heads = s->n_kv_heads;
    c->head_dim = s->hidden / s->n_heads;
    c->vocab = s->vocab;
    c->max_pos = s->max_pos;
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->bos_id = 1;
    c->eos_id = -1; /* random weights: never stop early */
    return ptqrt_open_tensors(m, c, synth_get, &x, o, e);
}
