/* common.c - helpers of the GPU checks (see common.h and cases.h). */
#include "tests/gpu/common.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"
#include "tests/gpu/cases.h"

static uint64_t rs = 0x1234567u;

uint32_t gc_rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}

float gc_frand(float lo, float hi) { return lo + (hi - lo) * (float)(gc_rnd() % 1000003u) / 1000003.0f; }

void *gc_dup_dev(const void *h, size_t bytes)
{
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 4) != cudaSuccess) return NULL;
    if (bytes && h && cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        cudaFree(d);
        return NULL;
    }
    return d;
}

void gc_free_dev(void *d)
{
    if (d) cudaFree(d);
}

int gc_have_device(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0;
}

static void layer_alloc(gc_layer *h, int rows, int cols, int bits, int group)
{
    memset(h, 0, sizeof *h);
    int ng = group ? cols / group : 1;
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    h->qw = calloc((size_t)rows * rw, 4);
    h->sc = malloc(2 * (size_t)rows * ng);
    h->zr = malloc((size_t)rows * ng);
    h->w = (ptqk_int_w){rows, cols, bits, group, ng, h->qw, h->sc, h->zr, NULL};
}

void gc_layer_random(gc_layer *h, int rows, int cols, int bits, int group, int gidx)
{
    layer_alloc(h, rows, cols, bits, group);
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) ptq_pack_set(h->qw + r * rw, k, bits, gc_rnd() & ((1u << bits) - 1u));
    for (size_t i = 0; i < (size_t)rows * h->w.ngroups; i++) {
        h->sc[i] = ptq_f32_to_f16(gc_frand(0.002f, 0.05f));
        h->zr[i] = (uint8_t)(gc_rnd() % (1u << bits));
    }
    if (gidx) {
        h->gidx = malloc(4 * (size_t)cols);
        for (int k = 0; k < cols; k++) h->gidx[k] = (int32_t)(gc_rnd() % (uint32_t)h->w.ngroups);
        h->w.g_idx = h->gidx;
    }
}

void gc_layer_rtn(gc_layer *h, const uint16_t *w, int rows, int cols, int bits, int group)
{
    layer_alloc(h, rows, cols, bits, group);
    int G = group ? group : cols, ng = h->w.ngroups;
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    unsigned maxq = (1u << bits) - 1u;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < ng; g++) {
            float lo = 0, hi = 0;
            for (int k = g * G; k < (g + 1) * G; k++) {
                float v = ptq_f16_to_f32(w[(size_t)r * cols + k]);
                lo = fminf(lo, v), hi = fmaxf(hi, v);
            }
            float s = hi > lo ? (hi - lo) / (float)maxq : 1.0f;
            uint16_t s16 = ptq_f32_to_f16(s);
            s = ptq_f16_to_f32(s16);
            int z = (int)lrintf(-lo / s);
            z = z < 0 ? 0 : (z > (int)maxq ? (int)maxq : z);
            h->sc[(size_t)r * ng + g] = s16;
            h->zr[(size_t)r * ng + g] = (uint8_t)z;
            for (int k = g * G; k < (g + 1) * G; k++) {
                long q = lrintf(ptq_f16_to_f32(w[(size_t)r * cols + k]) / s) + z;
                q = q < 0 ? 0 : (q > (long)maxq ? (long)maxq : q);
                ptq_pack_set(h->qw + r * rw, k, bits, (uint32_t)q);
            }
        }
}

void gc_layer_free(gc_layer *h)
{
    free(h->qw);
    free(h->sc);
    free(h->zr);
    free(h->gidx);
    memset(h, 0, sizeof *h);
}

int gc_report(const char *what, double worst)
{
    int bad = !(worst <= 1.0);
    printf("%s %s: worst error/tolerance %.3f\n", bad ? "FAIL" : "ok  ", what, worst);
    return bad;
}
