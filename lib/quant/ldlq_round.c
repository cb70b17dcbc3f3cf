/* ldlq_round.c - the rounders BlockLDLQ plugs in (lib/quant/ldlq.h): a
 * scalar integer grid per row, and the E8P nearest codeword. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/par.h"
#include "lib/quant/ldlq.h"

int ptq_ldlq_scalar_init(ptq_ldlq_scalar *s, const float *W, int rows, int cols,
                         const ptq_quant_opts *q, ptq_err *e)
{
    memset(s, 0, sizeof *s);
    s->rows = rows, s->cols = cols;
    s->grid = malloc((size_t)rows * sizeof *s->grid);
    s->codes = malloc((size_t)rows * cols);
    if (!s->grid || !s->codes) {
        ptq_ldlq_scalar_free(s);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the grids of a %d x %d linear", rows,
                        cols);
    }
    for (int r = 0; r < rows; r++) {
        ptq_quant_grid(W + (size_t)r * cols, cols, 1, q, &s->grid[r]);
        if (!ptq_quant_grid_ok(&s->grid[r])) {
            ptq_ldlq_scalar_free(s);
            return ptq_fail(e, PTQ_EDATA, "row %d: its range exceeds the fp16 scale", r);
        }
    }
    return 0;
}

void ptq_ldlq_scalar_free(ptq_ldlq_scalar *s)
{
    free(s->grid);
    free(s->codes);
    memset(s, 0, sizeof *s);
}

static int scalar_round(void *ctx, int col0, int width, int rows, const float *v, float *q,
                        int threads, ptq_err *e)
{
    (void)e, (void)threads;
    ptq_ldlq_scalar *s = ctx;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < width; j++) {
            const ptq_qgrid *g = &s->grid[r];
            int c = ptq_quant_code(g, v[(size_t)r * width + j]);
            s->codes[(size_t)r * s->cols + col0 + j] = (uint8_t)c;
            q[(size_t)r * width + j] = ptq_quant_value(g, c);
        }
    return 0;
}

ptq_ldlq_rounder ptq_ldlq_scalar_rounder(ptq_ldlq_scalar *s)
{
    ptq_ldlq_rounder r = {s, scalar_round};
    return r;
}

int ptq_ldlq_e8p_init_rvq(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale,
                          float rscale, int rows, int cols, ptq_err *e)
{
    memset(s, 0, sizeof *s);
    if (cols % 8)
        return ptq_fail(e, PTQ_EUSAGE, "E8P: %d input columns are not a multiple of 8", cols);
    if (!(scale > 0.0f) || !(rscale >= 0.0f) || !isfinite(scale) || !isfinite(rscale))
        return ptq_fail(e, PTQ_EUSAGE, "E8P: scale %g or residual scale %g is not positive",
                        (double)scale, (double)rscale);
    s->book = book, s->scale = scale, s->rows = rows, s->cols = cols;
    s->stages = rscale > 0.0f ? 2 : 1, s->rscale = rscale;
    s->codes = malloc((size_t)s->stages * (size_t)rows * (cols / 8) * sizeof *s->codes);
    if (!s->codes) return ptq_fail(e, PTQ_ENOMEM, "out of memory for E8P codes");
    return 0;
}

int ptq_ldlq_e8p_init_3b(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale, float rscale,
                         int rows, int cols, ptq_err *e)
{
    if (!(rscale > 0.0f))
        return ptq_fail(e, PTQ_EUSAGE, "E8P 3 bits: residual scale %g is not positive",
                        (double)rscale);
    int rc = ptq_ldlq_e8p_init_rvq(s, book, scale, 0.0f, rows, cols, e);
    if (rc) return rc;
    free(s->codes);
    s->stages = 2, s->rscale = rscale, s->e81b = 1;
    s->codes = malloc((size_t)rows * (cols / 8) * 3); /* uint16 stage 0, then uint8 stage 1 */
    if (!s->codes) return ptq_fail(e, PTQ_ENOMEM, "out of memory for E8P codes");
    return 0;
}

int ptq_ldlq_e8p_init(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale, int rows,
                      int cols, ptq_err *e)
{
    return ptq_ldlq_e8p_init_rvq(s, book, scale, 0.0f, rows, cols, e);
}

void ptq_ldlq_e8p_free(ptq_ldlq_e8p *s)
{
    free(s->codes);
    memset(s, 0, sizeof *s);
}

typedef struct e8p_job {
    const ptq_ldlq_e8p *s;
    int col0, r0, r1;
    const float *v;
    float *q;
} e8p_job;

static void e8p_rows(void *arg)
{
    const e8p_job *j = arg;
    const ptq_ldlq_e8p *s = j->s;
    for (int r = j->r0; r < j->r1; r++) {
        float x[8], d[8];
        size_t at = (size_t)r * (s->cols / 8) + j->col0 / 8;
        const float *v = j->v + (size_t)r * 8;
        float *q = j->q + (size_t)r * 8;
        for (int i = 0; i < 8; i++) x[i] = v[i] / s->scale;
        s->codes[at] = ptq_e8p_nearest(s->book, x, d);
        for (int i = 0; i < 8; i++) q[i] = 0.0f + s->scale * d[i];
        if (s->stages < 2) continue;
        for (int i = 0; i < 8; i++) x[i] = (v[i] - q[i]) / s->rscale;
        if (s->e81b)
            ((uint8_t *)(s->codes + (size_t)s->rows * (s->cols / 8)))[at] =
                ptq_e81b_nearest(s->book, x, d);
        else
            s->codes[(size_t)s->rows * (s->cols / 8) + at] = ptq_e8p_nearest(s->book, x, d);
        for (int i = 0; i < 8; i++) q[i] += s->rscale * d[i];
    }
}

static int e8p_round(void *ctx, int col0, int width, int rows, const float *v, float *q,
                     int threads, ptq_err *e)
{
    ptq_ldlq_e8p *s = ctx;
    if (width != 8 || col0 % 8)
        return ptq_fail(e, PTQ_EINTERNAL, "E8P rounder given block %d at column %d", width, col0);
    e8p_job jobs[PTQ_PAR_MAX];
    int nt = threads < 1 ? 1 : threads > PTQ_PAR_MAX ? PTQ_PAR_MAX : threads;
    if (nt > rows / 16) nt = rows / 16 > 0 ? rows / 16 : 1; /* at least 16 rows a worker */
    for (int t = 0; t < nt; t++) {
        e8p_job j = {s, col0, (int)((long)rows * t / nt), (int)((long)rows * (t + 1) / nt), v, q};
        jobs[t] = j;
    }
    if (nt == 1) e8p_rows(&jobs[0]);
    else ptq_par_run(nt, e8p_rows, jobs, sizeof *jobs);
    return 0;
}

ptq_ldlq_rounder ptq_ldlq_e8p_rounder(ptq_ldlq_e8p *s)
{
    ptq_ldlq_rounder r = {s, e8p_round};
    return r;
}
