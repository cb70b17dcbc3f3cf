/* check_bundle.c - the bundle writer/reader/verifier (formats/bundle.c), the
 * reference decode (lib/qfmt/qtensor.c) and the CPU runtime (lib/runtime/runtime_cpu.c).
 *
 * Golden values: the int decode is checked against a per-element formula
 * written here (bit stream read bit by bit, fp16 decoded with ldexp), not
 * against lib/qfmt/pack.h; archives are read back by GNU tar and by libarchive;
 * the runtime is checked against the FP16 checkpoint's own forward pass.
 */
#include <archive.h>
#include <archive_entry.h>
#include <cJSON.h>
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "lib/base/dtype.h"
#include "lib/base/half.h"
#include "lib/model/model.h"
#include "lib/qfmt/qtensor.h"
#include "lib/runtime/runtime_cpu.h"
#include "tests/testutil.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state;
static uint32_t rnd(void) { return (uint32_t)(tu_rng_next(&rng_state) >> 32); }

/* fp16 -> float, written independently of lib/base/half.h */
static float ref_f16(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    float v = ex == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m + 1024), ex - 25);
    return s ? -v : v;
}

/* Set code q at column k of a row: bit stream, LSB first, k*bits onwards. */
static void ref_put(uint32_t *row, int k, int bits, unsigned q)
{
    for (int i = 0; i < bits; i++)
        if (q >> i & 1) {
            long bit = (long)k * bits + i;
            row[bit / 32] |= 1u << (bit % 32);
        }
}
static unsigned ref_get(const uint32_t *row, int k, int bits)
{
    unsigned q = 0;
    for (int i = 0; i < bits; i++) {
        long bit = (long)k * bits + i;
        q |= (row[bit / 32] >> (bit % 32) & 1u) << i;
    }
    return q;
}
static int row_words(int cols, int bits) { return (cols + 31) / 32 * bits; }

/* A random int tensor; codes[] (rows*cols) returned for the reference. */
static void make_int(ptq_qtensor *q, int rows, int cols, int bits, int group, int with_gidx,
                     unsigned **codes)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_INT;
    q->rows = rows;
    q->cols = cols;
    q->bits = bits;
    q->group = group;
    q->ngroups = group ? (cols + group - 1) / group : 1; /* the last group may be shorter */
    q->sym = bits % 2;
    int w = row_words(cols, bits);
    q->qweight = calloc((size_t)rows * w, 4);
    q->scales = malloc((size_t)rows * q->ngroups * 2);
    q->zeros = malloc((size_t)rows * q->ngroups);
    *codes = malloc(sizeof(unsigned) * rows * cols);
    for (int i = 0; i < rows * q->ngroups; i++) {
        q->scales[i] = (uint16_t)(0x1c00 + rnd() % 0x1800); /* positive normal fp16 */
        q->zeros[i] = (uint8_t)(rnd() % (1u << bits));
    }
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            unsigned c = rnd() % (1u << bits);
            (*codes)[r * cols + k] = c;
            ref_put(q->qweight + (size_t)r * w, k, bits, c);
        }
    if (with_gidx) {
        q->g_idx = malloc(sizeof(int32_t) * cols);
        for (int k = 0; k < cols; k++) q->g_idx[k] = (int32_t)(rnd() % q->ngroups);
    }
}

static void make_dense(ptq_qtensor *q, int rows, int cols, int dtype)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_DENSE;
    q->rows = rows;
    q->cols = cols;
    q->dtype = dtype;
    size_t n = (size_t)rows * cols;
    q->data = malloc(n * ptq_dtype_size(dtype));
    for (size_t i = 0; i < n; i++) {
        float v = (float)((int)(rnd() % 2001) - 1000) / 256.0f;
        if (dtype == PTQ_DT_F32) ((float *)q->data)[i] = v;
        else if (dtype == PTQ_DT_F16) ((uint16_t *)q->data)[i] = ptq_f32_to_f16(v);
        else ((uint16_t *)q->data)[i] = ptq_f32_to_bf16(v);
    }
}

/* The reference dequant of element (r, k). */
static float ref_int_value(const ptq_qtensor *q, const unsigned *codes, int r, int k)
{
    int g = q->g_idx ? q->g_idx[k] : (q->group ? k / q->group : 0);
    return ref_f16(q->scales[r * q->ngroups + g]) *
           (float)((int)codes[r * q->cols + k] - (int)q->zeros[r * q->ngroups + g]);
}

/* Paths made in a test, freed at its end. */
static char *pool[64];
static int npool;
static char *P(char *s)
{
    if (npool < 64) pool[npool++] = s;
    return s;
}
static void pool_free(void)
{
    while (npool) free(pool[--npool]);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---------------------------------------------------------------- fixtures */

#define NT 12
typedef struct fixture {
    ptq_qtensor q[NT];
    unsigned *codes[NT];
    char name[NT][64];
    int n;
} fixture;

static void fixture_make(fixture *f, uint64_t seed)
{
    rng_state = seed;
    memset(f, 0, sizeof *f);
    static const struct { int rows, cols, bits, group, gidx; } spec[] = {
        {5, 64, 2, 32, 0}, {7, 96, 3, 32, 1}, {4, 128, 4, 64, 0}, {3, 100, 5, 0, 0},
        {6, 64, 6, 16, 1}, {2, 33, 7, 0, 0},  {9, 256, 8, 128, 1}, {4, 40, 4, 8, 0},
    };
    for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
        make_int(&f->q[f->n], spec[i].rows, spec[i].cols, spec[i].bits, spec[i].group,
                 spec[i].gidx, &f->codes[f->n]);
        snprintf(f->name[f->n], 64, "model.layers.%zu.mlp.up_proj.weight", i);
        f->n++;
    }
    int dts[3] = {PTQ_DT_F16, PTQ_DT_BF16, PTQ_DT_F32};
    for (int i = 0; i < 3; i++) {
        make_dense(&f->q[f->n], 3 + i, 17, dts[i]);
        snprintf(f->name[f->n], 64, "dense.%d.weight", i);
        f->n++;
    }
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->n; i++) {
        ptq_qtensor_free(&f->q[i]);
        free(f->codes[i]);
    }
}

static cJSON *top_json(void)
{
    cJSON *t = cJSON_CreateObject();
    cJSON *p = cJSON_AddObjectToObject(t, "provenance");
    cJSON_AddStringToObject(p, "ptqc_version", "test");
    cJSON_AddNumberToObject(p, "seed", 1234);
    return t;
}

/* Write the fixture's tensors; sync after each, storing offsets in syncs[] */
static int write_fixture(const fixture *f, const char *out, uint64_t *syncs)
{
    ptq_err e;
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_open(&w, out, &e), 0);
    ck_assert_int_eq(ptq_bw_add_file(w, "notes.txt", "hello\n", 6, &e), 0);
    for (int i = 0; i < f->n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "damp", 0.01);
        ck_assert_msg(ptq_bw_add_tensor(w, f->name[i], i < 8 ? "gptq" : "fp16", &f->q[i], x,
                                        &e) == 0, "%s", e.msg);
        cJSON_Delete(x);
        ck_assert_int_eq(ptq_bw_sync(w, syncs ? &syncs[i] : NULL, &e), 0);
    }
    cJSON *top = top_json();
    int rc = ptq_bw_finish(w, top, &e);
    ck_assert_msg(rc == 0, "%s", e.msg);
    cJSON_Delete(top);
    return rc;
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_dequant_reference)
{
    fixture f;
    fixture_make(&f, 11);
    ptq_err e;
    for (int i = 0; i < f.n; i++) {
        ptq_qtensor *q = &f.q[i];
        float *w = malloc(sizeof(float) * q->rows * q->cols);
        ck_assert_int_eq(ptq_qtensor_dequant(q, w, &e), 0);
        for (int r = 0; r < q->rows; r++)
            for (int k = 0; k < q->cols; k++) {
                float ref;
                if (q->format == PTQ_QF_INT) {
                    ref = ref_int_value(q, f.codes[i], r, k);
                    /* the packed codes are where the layout says */
                    ck_assert_uint_eq(ref_get(q->qweight + (size_t)r * row_words(q->cols, q->bits),
                                              k, q->bits),
                                      f.codes[i][r * q->cols + k]);
                } else if (q->dtype == PTQ_DT_F32) {
                    ref = ((float *)q->data)[r * q->cols + k];
                } else if (q->dtype == PTQ_DT_F16) {
                    ref = ref_f16(((uint16_t *)q->data)[r * q->cols + k]);
                } else {
                    uint32_t u = (uint32_t)((uint16_t *)q->data)[r * q->cols + k] << 16;
                    memcpy(&ref, &u, 4);
                }
                ck_assert_msg(w[r * q->cols + k] == ref, "tensor %d (%d,%d): %g != %g", i, r, k,
                              w[r * q->cols + k], ref);
            }
        /* a row range decodes to the same values */
        if (q->rows > 2) {
            float *w2 = malloc(sizeof(float) * 2 * q->cols);
            ck_assert_int_eq(ptq_qtensor_dequant_rows(q, 1, 2, w2, &e), 0);
            ck_assert(memcmp(w2, w + q->cols, sizeof(float) * 2 * q->cols) == 0);
            free(w2);
        }
        free(w);
    }
    /* invalid tensors are refused, not decoded */
    ptq_qtensor *q = &f.q[1];
    float *w = malloc(sizeof(float) * q->rows * q->cols);
    q->g_idx[5] = q->ngroups;
    ck_assert_int_eq(ptq_qtensor_dequant(q, w, &e), PTQ_EFORMAT);
    q->g_idx[5] = 0;
    q->zeros[0] = 8; /* 3 bits: max 7 */
    ck_assert_int_eq(ptq_qtensor_dequant(q, w, &e), PTQ_EFORMAT);
    q->zeros[0] = 7;
    q->bits = 9;
    ck_assert_int_eq(ptq_qtensor_dequant(q, w, &e), PTQ_EFORMAT);
    q->bits = 3;
    free(w);
    fixture_free(&f);
}
END_TEST

START_TEST(test_round_trip)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/a.ptq", dir));
    fixture f;
    fixture_make(&f, 7);
    write_fixture(&f, out, NULL);
    ck_assert(!file_exists(P(tu_fmt("%s.partial", out))));
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, out, 1, &e) == 0, "%s", e.msg);
    for (int i = 0; i < b.nmembers; i++) ck_assert_uint_eq(b.members[i].offset % 512, 0);
    ck_assert_str_eq(b.members[b.nmembers - 1].name, "manifest.json");
    uint64_t n;
    const char *notes = ptq_bundle_member_data(&b, "notes.txt", &n);
    ck_assert(notes && n == 6 && !memcmp(notes, "hello\n", 6));
    for (int i = 0; i < f.n; i++) {
        ptq_qtensor q, *o = &f.q[i];
        ck_assert_msg(ptq_bundle_tensor(&b, f.name[i], &q, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(q.mapped, 1);
        ck_assert_int_eq(q.format, o->format);
        ck_assert_int_eq(q.rows, o->rows);
        ck_assert_int_eq(q.cols, o->cols);
        if (o->format == PTQ_QF_INT) {
            ck_assert_int_eq(q.bits, o->bits);
            ck_assert_int_eq(q.group, o->group);
            ck_assert_int_eq(q.sym, o->sym);
            ck_assert(memcmp(q.qweight, o->qweight, 4u * o->rows * row_words(o->cols, o->bits)) == 0);
            ck_assert(memcmp(q.scales, o->scales, 2u * o->rows * o->ngroups) == 0);
            ck_assert(memcmp(q.zeros, o->zeros, 1u * o->rows * o->ngroups) == 0);
            ck_assert_int_eq(q.g_idx != NULL, o->g_idx != NULL);
            if (o->g_idx) ck_assert(memcmp(q.g_idx, o->g_idx, 4u * o->cols) == 0);
            ck_assert_uint_eq((uintptr_t)q.qweight % 512, (uintptr_t)b.map % 512);
        } else {
            ck_assert_int_eq(q.dtype, o->dtype);
            ck_assert(memcmp(q.data, o->data, ptq_dtype_size(o->dtype) * o->rows * o->cols) == 0);
        }
        /* decode from the map = decode of the original */
        float *a = malloc(sizeof(float) * o->rows * o->cols), *c = malloc(sizeof(float) * o->rows * o->cols);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, a, &e), 0);
        ck_assert_int_eq(ptq_qtensor_dequant(o, c, &e), 0);
        ck_assert(memcmp(a, c, sizeof(float) * o->rows * o->cols) == 0);
        free(a);
        free(c);
        ptq_qtensor_free(&q); /* mapped: frees nothing */
    }
    /* manifest content */
    const cJSON *m = b.manifest;
    ck_assert_str_eq(cJSON_GetObjectItem(m, "format")->valuestring, "ptqc-bundle");
    ck_assert_int_eq(cJSON_GetObjectItem(m, "version")->valueint, 1);
    const cJSON *t1 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "tensors"), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(t1, "method")->valuestring, "gptq");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(t1, "act_order")));
    ck_assert_double_eq(cJSON_GetObjectItem(t1, "damp")->valuedouble, 0.01);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "provenance"), "seed")->valueint, 1234);
    ck_assert_int_eq(ptq_bundle_tensor(&b, "no.such.tensor", &(ptq_qtensor){0}, &e), PTQ_EFORMAT);
    ptq_bundle_close(&b);
    fixture_free(&f);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

static void rebuild(const char *src, const char *dst, const char *man, const char *extra);
static char *manifest_text(const char *path);

/* Groups that do not divide the columns (ceil(cols / group) groups, the last
 * shorter, or one group past the columns): written as version 3, read back
 * bit for bit, decoded by the formula of ref_int_value (group k / group),
 * also through the CPU runtime's decode of mapped tensors; the same tensors
 * in a manifest claiming version 1 are refused (a version 1 reader takes
 * cols / group groups and would misread the scales). */
START_TEST(test_partial_groups)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/p.ptq", dir)), *bad = P(tu_fmt("%s/b.ptq", dir));
    static const struct { int rows, cols, bits, group, gidx; } spec[] = {
        {5, 172, 4, 64, 0}, {3, 45, 3, 16, 1}, {4, 40, 2, 128, 0}, {6, 576, 4, 128, 0},
    };
    enum { N = sizeof spec / sizeof *spec };
    ptq_qtensor t[N];
    unsigned *codes[N];
    rng_state = 5;
    ptq_err e;
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_open(&w, out, &e), 0);
    for (int i = 0; i < N; i++) {
        make_int(&t[i], spec[i].rows, spec[i].cols, spec[i].bits, spec[i].group, spec[i].gidx,
                 &codes[i]);
        char nm[64];
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", i);
        ck_assert_msg(ptq_bw_add_tensor(w, nm, "rtn", &t[i], NULL, &e) == 0, "%s", e.msg);
    }
    cJSON *top = top_json();
    ck_assert_msg(ptq_bw_finish(w, top, &e) == 0, "%s", e.msg);
    cJSON_Delete(top);
    ptq_bundle b;
    ck_assert_msg(ptq_bundle_open(&b, out, 1, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(cJSON_GetObjectItem(b.manifest, "version")->valueint, 3);
    for (int i = 0; i < N; i++) {
        ptq_qtensor q, *o = &t[i];
        char nm[64];
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", i);
        ck_assert_msg(ptq_bundle_tensor(&b, nm, &q, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(q.group, o->group);
        ck_assert_int_eq(q.ngroups, (o->cols + o->group - 1) / o->group);
        ck_assert(memcmp(q.qweight, o->qweight, 4u * o->rows * row_words(o->cols, o->bits)) == 0);
        ck_assert(memcmp(q.scales, o->scales, 2u * o->rows * o->ngroups) == 0);
        ck_assert(memcmp(q.zeros, o->zeros, 1u * o->rows * o->ngroups) == 0);
        float *d = malloc(sizeof(float) * o->rows * o->cols);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, d, &e), 0);
        for (int r = 0; r < o->rows; r++)
            for (int k = 0; k < o->cols; k++)
                ck_assert_msg(d[r * o->cols + k] == ref_int_value(o, codes[i], r, k),
                              "tensor %d [%d][%d]", i, r, k);
        free(d);
    }
    char *man = manifest_text(out), *v = strstr(man, "\"version\":\t3");
    ck_assert(v != NULL);
    v[strlen("\"version\":\t")] = '1';
    ptq_bundle_close(&b);
    rebuild(out, bad, man, NULL);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "does not divide") && strstr(e.msg, "version 3"), "%s", e.msg);
    free(man);
    for (int i = 0; i < N; i++) ptq_qtensor_free(&t[i]), free(codes[i]);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

/* tests/data/bundle-v1-int.tar (a bundle is a ustar archive; named .tar
 * because *.ptq is git-ignored) was written by the bundle writer of 9df247d,
 * before groups could leave a shorter last group: four int tensors made as
 * make_int does from rng seed 42 (specs below, the 0-3rd
 * model.layers.N.mlp.up_proj.weight), provenance ptqc_version "9df247d".
 * It still opens and verifies as version 1, holds those tensors bit for bit,
 * and today's writer writes the same tensors into the same bytes. */
START_TEST(test_old_bundle_loads)
{
    static const struct { int rows, cols, bits, group, gidx; } spec[] = {
        {5, 64, 2, 32, 0}, {7, 96, 3, 32, 1}, {3, 100, 5, 0, 0}, {4, 40, 4, 8, 0}};
    char *old = P(tu_src("tests/data/bundle-v1-int.tar")), *dir = P(tu_tmpdir());
    char *out = P(tu_fmt("%s/new.ptq", dir));
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, old, 1, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(cJSON_GetObjectItem(b.manifest, "version")->valueint, 1);
    rng_state = 42;
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_open(&w, out, &e), 0);
    for (int i = 0; i < 4; i++) {
        ptq_qtensor q, o;
        unsigned *codes;
        make_int(&o, spec[i].rows, spec[i].cols, spec[i].bits, spec[i].group, spec[i].gidx, &codes);
        char nm[64];
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", i);
        ck_assert_msg(ptq_bundle_tensor(&b, nm, &q, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(q.ngroups, o.ngroups);
        ck_assert(memcmp(q.qweight, o.qweight, 4u * o.rows * row_words(o.cols, o.bits)) == 0);
        ck_assert(memcmp(q.scales, o.scales, 2u * o.rows * o.ngroups) == 0);
        ck_assert(memcmp(q.zeros, o.zeros, 1u * o.rows * o.ngroups) == 0);
        ck_assert_int_eq(q.g_idx != NULL, o.g_idx != NULL);
        if (o.g_idx) ck_assert(memcmp(q.g_idx, o.g_idx, 4u * o.cols) == 0);
        float *d = malloc(sizeof(float) * o.rows * o.cols);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, d, &e), 0);
        for (int r = 0; r < o.rows; r++)
            for (int k = 0; k < o.cols; k++) ck_assert(d[r * o.cols + k] == ref_int_value(&o, codes, r, k));
        free(d);
        ck_assert_int_eq(ptq_bw_add_tensor(w, nm, "gptq", &o, NULL, &e), 0);
        ptq_qtensor_free(&o);
        free(codes);
    }
    ptq_bundle_close(&b);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "provenance"), "ptqc_version", "9df247d");
    ck_assert_msg(ptq_bw_finish(w, t, &e) == 0, "%s", e.msg);
    cJSON_Delete(t);
    size_t na, nb;
    char *da = tu_read_file(old, &na), *db = tu_read_file(out, &nb);
    ck_assert(da && db && na == nb && memcmp(da, db, na) == 0);
    free(da), free(db);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

START_TEST(test_reproducible)
{
    char *dir = P(tu_tmpdir()), *a = P(tu_fmt("%s/a.ptq", dir)), *b = P(tu_fmt("%s/b.ptq", dir));
    fixture f;
    fixture_make(&f, 3);
    write_fixture(&f, a, NULL);
    write_fixture(&f, b, NULL);
    size_t na, nb;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    ck_assert(da && db && na == nb && memcmp(da, db, na) == 0);
    free(da);
    free(db);
    fixture_free(&f);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

START_TEST(test_resume)
{
    char *dir = P(tu_tmpdir()), *ref = P(tu_fmt("%s/ref.ptq", dir)), *out = P(tu_fmt("%s/out.ptq", dir));
    fixture f;
    fixture_make(&f, 5);
    uint64_t syncs[NT];
    write_fixture(&f, ref, syncs);
    for (int stop = 0; stop < f.n; stop += 3) {
        /* a child writes tensors 0..stop+1, syncs after stop, and dies */
        int pfd[2];
        ck_assert_int_eq(pipe(pfd), 0);
        pid_t pid = fork();
        if (pid == 0) {
            ptq_err e;
            ptq_bundle_writer *w;
            uint64_t off = 0;
            if (ptq_bw_open(&w, out, &e)) _exit(1);
            if (ptq_bw_add_file(w, "notes.txt", "hello\n", 6, &e)) _exit(1);
            for (int i = 0; i <= stop + 1 && i < f.n; i++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddNumberToObject(x, "damp", 0.01);
                if (ptq_bw_add_tensor(w, f.name[i], i < 8 ? "gptq" : "fp16", &f.q[i], x, &e))
                    _exit(1);
                if (i == stop && ptq_bw_sync(w, &off, &e)) _exit(1);
            }
            if (write(pfd[1], &off, sizeof off) != sizeof off) _exit(1);
            _exit(0); /* crash: no finish, no abort */
        }
        close(pfd[1]);
        uint64_t off = 0;
        ck_assert_int_eq(read(pfd[0], &off, sizeof off), (ssize_t)sizeof off);
        close(pfd[0]);
        int st;
        waitpid(pid, &st, 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ck_assert_uint_eq(off, syncs[stop]);
        ck_assert(!file_exists(out));
        ptq_err e;
        ptq_bundle_writer *w;
        ck_assert_msg(ptq_bw_resume(&w, out, off, &e) == 0, "%s", e.msg);
        for (int i = stop + 1; i < f.n; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "damp", 0.01);
            ck_assert_int_eq(ptq_bw_add_tensor(w, f.name[i], i < 8 ? "gptq" : "fp16", &f.q[i], x, &e), 0);
            cJSON_Delete(x);
        }
        cJSON *top = top_json();
        ck_assert_int_eq(ptq_bw_finish(w, top, &e), 0);
        cJSON_Delete(top);
        size_t na, nb;
        char *da = tu_read_file(ref, &na), *db = tu_read_file(out, &nb);
        ck_assert_msg(da && db && na == nb && memcmp(da, db, na) == 0, "resume after %d differs", stop);
        free(da);
        free(db);
        unlink(out);
    }
    /* resume points that are not valid are refused */
    ptq_err e;
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_resume(&w, out, 0, &e), PTQ_EIO); /* no partial file */
    char *partial = P(tu_fmt("%s.partial", out));
    size_t n;
    char *d = tu_read_file(ref, &n);
    tu_write_file(partial, d, n);
    ck_assert_int_ne(ptq_bw_resume(&w, out, syncs[0] + 512, &e), 0); /* inside a member */
    ck_assert_int_eq(ptq_bw_resume(&w, out, n + 512, &e), PTQ_EFORMAT); /* past the end */
    free(d);
    fixture_free(&f);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

START_TEST(test_tar_tools)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/a.ptq", dir));
    fixture f;
    fixture_make(&f, 9);
    write_fixture(&f, out, NULL);
    ptq_bundle b;
    ptq_err e;
    ck_assert_int_eq(ptq_bundle_open(&b, out, 1, &e), 0);
    /* libarchive lists the same members with the same data */
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    ck_assert_int_eq(archive_read_open_filename(a, out, 10240), ARCHIVE_OK);
    struct archive_entry *ent;
    int i = 0;
    while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
        ck_assert_int_lt(i, b.nmembers);
        ck_assert_str_eq(archive_entry_pathname(ent), b.members[i].name);
        ck_assert_int_eq(archive_entry_size(ent), (int64_t)b.members[i].size);
        ck_assert_int_eq(archive_entry_mtime(ent), 0);
        ck_assert_int_eq(archive_entry_perm(ent), 0644);
        char *buf = malloc(b.members[i].size + 1);
        ck_assert_int_eq(archive_read_data(a, buf, b.members[i].size), (ssize_t)b.members[i].size);
        ck_assert(memcmp(buf, b.map + b.members[i].offset, b.members[i].size) == 0);
        free(buf);
        i++;
    }
    ck_assert_int_eq(i, b.nmembers);
    archive_read_free(a);
    /* GNU tar lists and extracts them */
    if (system("tar --version >/dev/null 2>&1") == 0) {
        char *cmd = tu_fmt("cd '%s' && tar tf a.ptq > list && mkdir x && tar xf a.ptq -C x", dir);
        ck_assert_int_eq(system(cmd), 0);
        char *list = tu_read_file(P(tu_fmt("%s/list", dir)), NULL);
        char *p = list;
        for (i = 0; i < b.nmembers; i++) {
            size_t l = strlen(b.members[i].name);
            ck_assert_msg(!strncmp(p, b.members[i].name, l) && p[l] == '\n', "tar lists %s", p);
            p += l + 1;
        }
        ck_assert_int_eq(*p, 0);
        size_t n;
        char *x = tu_read_file(P(tu_fmt("%s/x/tensors/%s.qweight", dir, f.name[2])), &n);
        ck_assert(x && n == 4u * f.q[2].rows * row_words(f.q[2].cols, f.q[2].bits));
        ck_assert(memcmp(x, f.q[2].qweight, n) == 0);
        free(x);
        free(list);
        free(cmd);
    }
    ptq_bundle_close(&b);
    fixture_free(&f);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

/* Rebuild an archive with libarchive (an independent ustar writer): the
 * members of src with the manifest replaced by man (NULL: keep), plus an
 * optional extra member. */
static void rebuild(const char *src, const char *dst, const char *man, const char *extra)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, src, 0, &e) == 0, "%s", e.msg);
    struct archive *a = archive_write_new();
    archive_write_set_format_ustar(a);
    archive_write_set_bytes_per_block(a, 512);
    ck_assert_int_eq(archive_write_open_filename(a, dst), ARCHIVE_OK);
    for (int i = 0; i < b.nmembers; i++) {
        const char *nm = b.members[i].name;
        const void *data = b.map + b.members[i].offset;
        size_t size = b.members[i].size;
        int last = i == b.nmembers - 1;
        if (last && extra) i--, nm = extra, data = "x", size = 1, extra = NULL, last = 0;
        if (last && man) data = man, size = strlen(man);
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, nm);
        archive_entry_set_size(en, (int64_t)size);
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        archive_write_header(a, en);
        archive_write_data(a, data, size);
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
    ptq_bundle_close(&b);
}

static char *manifest_text(const char *path)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_int_eq(ptq_bundle_open(&b, path, 0, &e), 0);
    uint64_t n;
    const char *s = ptq_bundle_member_data(&b, "manifest.json", &n);
    char *t = strndup(s, n);
    ptq_bundle_close(&b);
    return t;
}

static void count_line(void *ud, const char *line)
{
    (void)line;
    ++*(int *)ud;
}

START_TEST(test_corruption)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/a.ptq", dir)), *bad = P(tu_fmt("%s/bad.ptq", dir));
    fixture f;
    fixture_make(&f, 13);
    write_fixture(&f, out, NULL);
    size_t n;
    char *d = tu_read_file(out, &n);
    ptq_bundle b;
    ptq_err e;

    /* truncation anywhere: a clear error, never a crash */
    size_t cuts[] = {0, 100, 512, 1000, n / 2, n - 1024 - 1, n - 1024, n - 600, n - 512, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        tu_write_file(bad, d, cuts[i]);
        int rc = ptq_bundle_open(&b, bad, 0, &e);
        ck_assert_msg(rc == PTQ_EFORMAT, "cut at %zu: rc %d (%s)", cuts[i], rc, e.msg);
        ck_assert_msg(strstr(e.msg, bad) != NULL, "%s", e.msg);
    }
    /* a flipped payload byte: open with verify names the member */
    ck_assert_int_eq(ptq_bundle_open(&b, out, 0, &e), 0);
    char member[128];
    snprintf(member, sizeof member, "tensors/%s.scales", f.name[3]);
    uint64_t off = 0;
    for (int i = 0; i < b.nmembers; i++)
        if (!strcmp(b.members[i].name, member)) off = b.members[i].offset;
    ptq_bundle_close(&b);
    ck_assert_uint_gt(off, 0);
    d[off + 1] ^= 0x10;
    tu_write_file(bad, d, n);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 1, &e), PTQ_EVERIFY);
    ck_assert_msg(strstr(e.msg, member) != NULL, "%s", e.msg);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), 0); /* structure is fine */
    int nbad = 0, lines = 0;
    ck_assert_int_eq(ptq_bundle_verify(&b, &nbad, count_line, &lines, &e), PTQ_EVERIFY);
    ck_assert_int_ge(nbad, 1);
    ck_assert_int_eq(lines, nbad);
    ptq_bundle_close(&b);
    d[off + 1] ^= 0x10;
    /* a flipped byte in a tar header: its checksum catches it */
    d[5] ^= 1;
    tu_write_file(bad, d, n);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert(strstr(e.msg, "checksum") != NULL);
    d[5] ^= 1;

    /* manifest problems, through an archive rebuilt by libarchive */
    char *man = manifest_text(out);
    rebuild(out, bad, NULL, NULL);
    ck_assert_msg(ptq_bundle_open(&b, bad, 1, &e) == 0, "libarchive copy: %s", e.msg);
    ptq_bundle_close(&b);

    rebuild(out, bad, "{\"format\": \"ptqc-bundle\", \"version\": ", NULL);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert(strstr(e.msg, "manifest.json") != NULL);

    char *m2 = strdup(man);
    char *v = strstr(m2, "\"version\":\t1");
    ck_assert(v != NULL);
    v[strlen("\"version\":\t")] = '9'; /* 2: + w8a8/fp8, 3: + partial groups, 4: + e8p */
    rebuild(out, bad, m2, NULL);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert(strstr(e.msg, "version 9") != NULL);
    free(m2);

    /* a member offset outside the file */
    cJSON *mj = cJSON_Parse(man);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(mj, "tensors"), 0);
    cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "payloads"), "qweight");
    cJSON_SetNumberValue(cJSON_GetObjectItem(ref, "offset"), 1e12);
    char *s = cJSON_Print(mj);
    rebuild(out, bad, s, NULL);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "outside the file") != NULL, "%s", e.msg);
    free(s);
    /* a size that does not match bits/group/shape */
    cJSON_SetNumberValue(cJSON_GetObjectItem(ref, "offset"), 1536);
    cJSON_SetNumberValue(cJSON_GetObjectItem(t0, "bits"), 3);
    s = cJSON_Print(mj);
    rebuild(out, bad, s, NULL);
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    free(s);
    cJSON_Delete(mj);
    /* an unknown member: the bundle opens, verify reports it */
    rebuild(out, bad, NULL, "stowaway.bin");
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), 0);
    char *seen = NULL;
    ck_assert_int_eq(ptq_bundle_verify(&b, &nbad, NULL, NULL, &e), PTQ_EVERIFY);
    ptq_bundle_close(&b);
    (void)seen;
    /* not a tar file at all */
    tu_write_file(bad, man, strlen(man));
    ck_assert_int_eq(ptq_bundle_open(&b, bad, 0, &e), PTQ_EFORMAT);
    ck_assert_int_eq(ptq_bundle_open(&b, P(tu_fmt("%s/missing.ptq", dir)), 0, &e), PTQ_EIO);
    free(man);
    free(d);
    fixture_free(&f);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

START_TEST(test_output_failures)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/a.ptq", dir)), *partial = P(tu_fmt("%s.partial", out));
    /* a file size limit: write() fails with EFBIG */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        ptq_err e;
        ptq_bundle_writer *w;
        if (ptq_bw_open(&w, out, &e)) _exit(10);
        static char big[20000];
        int rc = ptq_bw_add_file(w, "config.json", big, sizeof big, &e);
        if (rc != PTQ_EOUTPUT) _exit(11);
        if (!strstr(e.msg, out) || !strstr(e.msg, "too large")) _exit(12);
        ptq_bw_abort(w);
        if (file_exists(out) || file_exists(partial)) _exit(13);
        /* and the same when it happens in finish */
        if (ptq_bw_open(&w, out, &e)) _exit(14);
        if (ptq_bw_add_file(w, "a", big, 3000, &e)) _exit(15);
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(top, "provenance"), "pad", big + 1);
        char pad[2000];
        memset(pad, 'x', sizeof pad - 1);
        pad[sizeof pad - 1] = 0;
        cJSON_AddStringToObject(top, "report", pad);
        rc = ptq_bw_finish(w, top, &e);
        cJSON_Delete(top);
        if (rc != PTQ_EOUTPUT) _exit(16);
        if (file_exists(out) || file_exists(partial)) _exit(17);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
    /* a directory that cannot be written (root ignores permissions: skipped) */
    ptq_err e;
    ptq_bundle_writer *w;
    char *nodir = P(tu_fmt("%s/nonexistent/a.ptq", dir));
    ck_assert_int_eq(ptq_bw_open(&w, nodir, &e), PTQ_EOUTPUT);
    ck_assert(strstr(e.msg, nodir) != NULL);
    if (geteuid() != 0) {
        char *ro = P(tu_fmt("%s/ro", dir)), *p = P(tu_fmt("%s/ro/a.ptq", dir));
        mkdir(ro, 0555);
        ck_assert_int_eq(ptq_bw_open(&w, p, &e), PTQ_EOUTPUT);
        ck_assert(strstr(e.msg, p) != NULL);
        ck_assert(!file_exists(p));
        chmod(ro, 0755);
    } else {
        fprintf(stderr, "check_bundle: running as root, which ignores directory permissions: "
                        "the read-only directory case is skipped\n");
    }
    /* bad tensors and names are refused before anything is written */
    ck_assert_int_eq(ptq_bw_open(&w, out, &e), 0);
    ptq_qtensor q;
    unsigned *codes;
    make_int(&q, 2, 64, 4, 32, 0, &codes);
    q.group = 16; /* 4 groups a row, but scales for 2 */
    ck_assert_int_ne(ptq_bw_add_tensor(w, "x.weight", "rtn", &q, NULL, &e), 0);
    q.group = 32;
    ck_assert_int_eq(ptq_bw_add_tensor(w, "x.weight", "rtn", &q, NULL, &e), 0);
    ck_assert_int_eq(ptq_bw_add_tensor(w, "x.weight", "rtn", &q, NULL, &e), PTQ_EUSAGE);
    ck_assert_int_eq(ptq_bw_add_file(w, "manifest.json", "{}", 2, &e), PTQ_EUSAGE);
    ck_assert_int_eq(ptq_bw_add_file(w, "../evil", "{}", 2, &e), PTQ_EUSAGE);
    ptq_bw_abort(w);
    ck_assert(!file_exists(partial) && !file_exists(out));
    ptq_qtensor_free(&q);
    free(codes);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

/* ---------------------------------------------------------------- runtime */

/* A bundle of examples/stories260k: every tensor kept dense (quant = 0) or
 * every linear quantized to 8 bits per row (symmetric, written here). */
static void build_stories(const char *out, int quant)
{
    char *src = tu_src("examples/stories260k");
    ptq_checkpoint ck;
    ptq_err e;
    ck_assert_msg(ptq_ckpt_open(&ck, src, &e) == 0, "%s", e.msg);
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_open(&w, out, &e), 0);
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        size_t n;
        char *p = tu_fmt("%s/%s", src, files[i]), *d = tu_read_file(p, &n);
        ck_assert(d);
        ck_assert_int_eq(ptq_bw_add_file(w, files[i], d, n, &e), 0);
        free(d);
        free(p);
    }
    for (int i = 0; i < ck.st.ntensors; i++) {
        const ptq_st_tensor *t = &ck.st.tensors[i];
        ptq_qtensor q;
        memset(&q, 0, sizeof q);
        q.rows = t->ndim == 2 ? (int)t->shape[0] : 1;
        q.cols = (int)t->shape[t->ndim - 1];
        int linear = t->ndim == 2 && strstr(t->name, "model.layers.") != NULL;
        if (!quant || !linear) {
            q.format = PTQ_QF_DENSE;
            q.dtype = t->dtype;
            q.data = (void *)t->data;
            q.mapped = 1;
            ck_assert_int_eq(ptq_bw_add_tensor(w, t->name, "keep", &q, NULL, &e), 0);
            continue;
        }
        float *wf = malloc(sizeof(float) * q.rows * q.cols);
        ck_assert_int_eq(ptq_st_read_f32(&ck.st, t, 0, (size_t)q.rows * q.cols, wf, &e), 0);
        q.format = PTQ_QF_INT;
        q.bits = 8;
        q.group = 0;
        q.ngroups = 1;
        q.sym = 1;
        q.qweight = calloc((size_t)q.rows * row_words(q.cols, 8), 4);
        q.scales = malloc(2u * q.rows);
        q.zeros = malloc(q.rows);
        for (int r = 0; r < q.rows; r++) {
            float amax = 0;
            for (int k = 0; k < q.cols; k++) amax = fmaxf(amax, fabsf(wf[r * q.cols + k]));
            uint16_t sh = ptq_f32_to_f16(amax > 0 ? amax / 127.0f : 1.0f);
            float sc = ref_f16(sh);
            q.scales[r] = sh;
            q.zeros[r] = 128;
            for (int k = 0; k < q.cols; k++) {
                float c = nearbyintf(wf[r * q.cols + k] / sc) + 128;
                c = fminf(fmaxf(c, 0), 255);
                ref_put(q.qweight + (size_t)r * row_words(q.cols, 8), k, 8, (unsigned)c);
            }
        }
        ck_assert_int_eq(ptq_bw_add_tensor(w, t->name, "rtn", &q, NULL, &e), 0);
        ptq_qtensor_free(&q);
        free(wf);
    }
    cJSON *top = top_json();
    ck_assert_msg(ptq_bw_finish(w, top, &e) == 0, "%s", e.msg);
    cJSON_Delete(top);
    ptq_ckpt_close(&ck);
    free(src);
}

static void logits_of(const ptq_weights *src, const int32_t *tok, int B, int T, float *logits)
{
    ptq_fwd *f;
    ptq_err e;
    ck_assert_msg(ptq_fwd_create(&f, src->cfg, B * T, T, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_forward(f, src, tok, B, T, logits, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
}

/* The CPU runtime on a compiled bundle whose groups (48) divide none of
 * stories260k's inputs (64: groups of 48 + 16; 172: 3 x 48 + 28), GPTQ
 * act-order (g_idx): every linear it widens equals the formula decode of the
 * bundle's payloads written here (ref_get, ref_f16, group k / 48 or
 * g_idx[k]). */
START_TEST(test_runtime_partial_groups)
{
    char *dir = P(tu_tmpdir()), *out = P(tu_fmt("%s/g48.ptq", dir));
    char *src = P(tu_src("examples/stories260k"));
    tu_compile_ok(src, out, NULL,
                  "--method gptq --act-order --no-static-groups --bits 3 --group 48 --nsamples 4 --seqlen 32 "
                  "--seed 1 --quiet", 1);
    ptq_cpu_model m;
    ptq_weights w;
    ptq_err e;
    ck_assert_msg(ptq_cpu_open(&m, out, 1, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(cJSON_GetObjectItem(m.b.manifest, "version")->valueint, 3);
    ptq_cpu_weights(&m, &w);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, &m.cfg, &e), 0);
    int nlin = 0;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        ck_assert_msg(w.layer(w.ctx, l, &lw, &e) == 0, "%s", e.msg);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            char nm[160];
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, ptq_linear_name(i));
            ptq_qtensor q;
            ck_assert_msg(ptq_bundle_tensor(&m.b, nm, &q, &e) == 0, "%s", e.msg);
            ck_assert_int_eq(q.format, PTQ_QF_INT);
            ck_assert_int_eq(q.group, 48);
            int ng = (q.cols + 47) / 48, words = row_words(q.cols, q.bits);
            ck_assert_int_eq(q.ngroups, ng);
            for (int r = 0; r < q.rows; r++)
                for (int k = 0; k < q.cols; k++) {
                    int g = q.g_idx ? q.g_idx[k] : k / 48;
                    ck_assert(g >= 0 && g < ng);
                    unsigned c = ref_get(q.qweight + (size_t)r * words, k, q.bits);
                    float want = ref_f16(q.scales[r * ng + g]) * (float)((int)c - (int)q.zeros[r * ng + g]);
                    ck_assert_msg(lw.w[i][(size_t)r * q.cols + k] == want, "%s [%d][%d]", nm, r, k);
                }
            nlin++;
        }
    }
    ck_assert_int_eq(nlin, m.cfg.n_layers * PTQ_NLINEAR);
    ptq_layer_w_free(&lw);
    ptq_cpu_close(&m);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

START_TEST(test_runtime_stories)
{
    char *dir = P(tu_tmpdir()), *dense = P(tu_fmt("%s/dense.ptq", dir)), *q8 = P(tu_fmt("%s/q8.ptq", dir));
    build_stories(dense, 0);
    build_stories(q8, 1);
    ptq_checkpoint ck;
    ptq_err e;
    char *src = tu_src("examples/stories260k");
    ptq_weights ref = tu_ckpt_open(&ck, src);
    enum { B = 2, T = 24 };
    int V = ck.cfg.vocab;
    int32_t tok[B * T];
    rng_state = 99;
    for (int i = 0; i < B * T; i++) tok[i] = i % T == 0 ? 1 : (int32_t)(rnd() % (unsigned)V);
    float *lr = malloc(sizeof(float) * B * T * V), *ld = malloc(sizeof(float) * B * T * V),
          *lq = malloc(sizeof(float) * B * T * V);
    logits_of(&ref, tok, B, T, lr);

    ptq_cpu_model m;
    ptq_weights w;
    ck_assert_msg(ptq_cpu_open(&m, dense, 1, &e) == 0, "%s", e.msg);
    int nbad = -1;
    ck_assert_msg(ptq_bundle_verify(&m.b, &nbad, NULL, NULL, &e) == 0, "%s", e.msg);
    ptq_cpu_weights(&m, &w);
    logits_of(&w, tok, B, T, ld);
    ck_assert(memcmp(lr, ld, sizeof(float) * B * T * V) == 0); /* kept dense: exact */
    ptq_tokenizer *tk;
    ck_assert_msg(ptq_cpu_tokenizer(&m, &tk, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_vocab_size(tk), V);
    ptq_tok_free(tk);
    ptq_cpu_close(&m);

    ck_assert_msg(ptq_cpu_open(&m, q8, 1, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_bundle_verify(&m.b, &nbad, NULL, NULL, &e) == 0, "%s", e.msg);
    ptq_cpu_weights(&m, &w);
    logits_of(&w, tok, B, T, lq);
    /* 8-bit per-row weights: logits within 2% of the FP16 logits' range
     * (max |diff| / (max - min) over all positions), and the argmax agrees
     * on at least 90% of positions */
    double maxdiff = 0, lo = 1e30, hi = -1e30;
    int agree = 0;
    for (int p = 0; p < B * T; p++) {
        int ar = 0, aq = 0;
        for (int v = 0; v < V; v++) {
            float a = lr[p * V + v], b = lq[p * V + v];
            maxdiff = fmax(maxdiff, fabs(a - b));
            lo = fmin(lo, a);
            hi = fmax(hi, a);
            if (a > lr[p * V + ar]) ar = v;
            if (b > lq[p * V + aq]) aq = v;
        }
        agree += ar == aq;
    }
    fprintf(stderr, "stories260k int8 per-row: max |dlogit| %.4g, range %.4g (%.3f%%), top-1 "
                    "agreement %d/%d\n", maxdiff, hi - lo, 100 * maxdiff / (hi - lo), agree, B * T);
    ck_assert_double_gt(maxdiff, 0);
    ck_assert_double_lt(maxdiff / (hi - lo), 0.02);
    ck_assert_int_ge(agree * 10, 9 * B * T);
    ptq_cpu_close(&m);

    /* the command line: verify, and a corrupted copy */
    char *out = NULL;
    char *args = tu_fmt("verify '%s'", q8);
    ck_assert_int_eq(tu_ptqc(args, &out, NULL), 0);
    ck_assert(out && strstr(out, "OK"));
    free(out);
    free(args);
    size_t n;
    char *d = tu_read_file(q8, &n);
    d[n / 2] ^= 0x40; /* lands in some payload */
    char *bad = P(tu_fmt("%s/bad.ptq", dir));
    tu_write_file(bad, d, n);
    args = tu_fmt("verify --json '%s'", bad);
    ck_assert_int_eq(tu_ptqc(args, &out, NULL), PTQ_EVERIFY);
    cJSON *j = cJSON_Parse(out);
    ck_assert(j && cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItem(j, "problems")), 1);
    cJSON_Delete(j);
    free(out);
    free(args);
    args = tu_fmt("verify --quiet '%s'", bad);
    ck_assert_int_eq(tu_ptqc(args, &out, NULL), PTQ_EVERIFY);
    ck_assert(!out || !*out);
    free(out);
    free(args);
    free(d);

    /* ptqc inspect shows the manifest summary */
    args = tu_fmt("inspect '%s'", q8);
    ck_assert_int_eq(tu_ptqc(args, &out, NULL), 0);
    ck_assert(strstr(out, "model.layers.4.mlp.down_proj.weight") && strstr(out, "rtn") &&
              strstr(out, "compression:"));
    free(out);
    free(args);
    args = tu_fmt("inspect --json '%s'", q8);
    ck_assert_int_eq(tu_ptqc(args, &out, NULL), 0);
    j = cJSON_Parse(out);
    ck_assert(j != NULL);
    double ratio = cJSON_GetObjectItem(j, "compression")->valuedouble;
    ck_assert_double_gt(ratio, 1.2); /* 8-bit linears, FP16 embedding and norms */
    ck_assert_double_lt(ratio, 2.0);
    cJSON_Delete(j);
    free(out);
    free(args);

    /* ptqc eval on bundles: the dense one is the FP16 model exactly */
    char *text = tu_src("examples/stories-eval.txt");
    args = tu_fmt("eval '%s' --text '%s' --reference '%s'", dense, text, src);
    j = tu_eval_json(args);
    ck_assert_double_eq(cJSON_GetObjectItem(j, "kl_mean")->valuedouble, 0);
    ck_assert_double_eq(cJSON_GetObjectItem(j, "top1_agree")->valuedouble, 1);
    double dense_ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
    cJSON_Delete(j);
    free(args);
    args = tu_fmt("eval '%s' --text '%s'", src, text); /* the checkpoint alone */
    j = tu_eval_json(args);
    ck_assert_double_eq(cJSON_GetObjectItem(j, "ppl")->valuedouble, dense_ppl);
    cJSON_Delete(j);
    free(args);
    args = tu_fmt("eval '%s' --text '%s' --reference '%s'", q8, text, src);
    j = tu_eval_json(args);
    double kl = cJSON_GetObjectItem(j, "kl_mean")->valuedouble;
    double ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
    double rppl = cJSON_GetObjectItem(j, "ref_ppl")->valuedouble;
    fprintf(stderr, "stories260k int8 per-row eval: ppl %.4f vs FP16 %.4f, KL %.3g nats\n", ppl,
            rppl, kl);
    ck_assert_double_gt(kl, 0);
    ck_assert_double_lt(kl, 0.01);
    ck_assert_double_lt(fabs(ppl / rppl - 1), 0.02);
    cJSON_Delete(j);
    free(args);
    free(text);

    ptq_ckpt_close(&ck);
    free(lr);
    free(ld);
    free(lq);
    free(src);
    tu_rmrf(dir);
    pool_free();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bundle");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_dequant_reference);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_partial_groups);
    tcase_add_test(tc, test_old_bundle_loads);
    tcase_add_test(tc, test_reproducible);
    tcase_add_test(tc, test_resume);
    tcase_add_test(tc, test_tar_tools);
    tcase_add_test(tc, test_corruption);
    tcase_add_test(tc, test_output_failures);
    suite_add_tcase(s, tc);
    TCase *rt = tcase_create("runtime");
    tcase_add_test(rt, test_runtime_stories);
    tcase_add_test(rt, test_runtime_partial_groups);
    suite_add_tcase(s, rt);
    return tu_run(s);
}
