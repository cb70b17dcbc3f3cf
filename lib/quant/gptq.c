/* gptq.c - GPTQ with lazy batch updates (Frantar et al. 2022, Algorithm 1),
 * and the steps shared with the column-at-a-time reference (gptq_impl.h).
 *
 * For each block of `block` columns [i1, i2) of the (permuted) weights, every
 * column is quantized in turn and its error (w - q) / U[i][i] is propagated
 * to the rest of the block at once; the block's errors Err1 then update all
 * later columns in one sgemm: W[:, i2:] -= Err1 * U[i1:i2, i2:].  GPTQ treats
 * the rows independently, so the rows are cut into fixed chunks of
 * PTQ_GPTQ_CHUNK and each chunk runs the whole column loop on its own (one
 * sgemm per chunk and block), spread over worker threads.
 */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/quant/gptq_impl.h"
#include "lib/qfmt/pack.h"

#define PTQ_GPTQ_CHUNK 128
#define PTQ_GPTQ_MAX_WORKERS 64

/* a[k] <-> a[n-1-k]: for an n x n row-major matrix this is J A J */
static void reverse(float *a, size_t n)
{
    for (size_t i = 0, j = n - 1; i < j; i++, j--) {
        float t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* U = upper Cholesky factor of A^-1, A = H + damp mean(diag) I.
 *
 * Computed as the inverse of the "reverse" Cholesky factor: with J the
 * exchange matrix, J A J = M M^T (M lower) gives A = R R^T with R = J M J
 * upper, so A^-1 = R^-T R^-1 and U = R^-1 = J M^-1 J, the same matrix as
 * chol(inverse(A), upper) of the GPTQ reference in half the flops (potrf +
 * trtri instead of potrf + potri + potrf) and without forming A^-1.
 *
 * Row-major A seen column-major is A^T = A.  LAPACK's 'U' (column-major upper)
 * works in the row-major lower triangle; the row-major strict upper triangle
 * is never touched, so a failed attempt is undone from it and the saved
 * diagonal before the damping is raised. */
int ptq_gptq_hinv(float *H, int n, float damp, ptq_gptq_report *rep, ptq_err *e)
{
    size_t nn = (size_t)n * (size_t)n;
    float *diag = malloc((size_t)n * sizeof *diag);
    if (!diag) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a Hessian of %d columns", n);
    reverse(H, nn);
    double mean = 0.0;
    for (int i = 0; i < n; i++) {
        diag[i] = H[(size_t)i * n + i];
        mean += diag[i];
    }
    mean /= n;
    static const float raises[] = {0.1f, 1.0f, 10.0f};
    float tried[4];
    int ntried = 0, ok = 0;
    tried[ntried++] = damp;
    for (int k = 0; k < 3; k++)
        if (raises[k] > damp) tried[ntried++] = raises[k];
    for (int a = 0; a < ntried && !ok; a++) {
        if (a > 0) /* undo the failed attempt from the untouched triangle */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++) H[(size_t)i * n + j] = H[(size_t)j * n + i];
        float add = (float)(tried[a] * mean);
        for (int i = 0; i < n; i++) H[(size_t)i * n + i] = diag[i] + add;
        int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', n, H, n);
        if (!info) info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', n, H, n);
        ok = !info;
        for (int i = 0; i < n && ok; i++)
            for (int j = 0; j <= i; j++)
                if (!isfinite(H[(size_t)i * n + j])) {
                    ok = 0;
                    break;
                }
        if (ok) {
            rep->damp_used = tried[a];
            rep->damp_raises = a;
        }
    }
    free(diag);
    if (!ok) {
        /* put H back the way it came (permuted) before failing */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) H[(size_t)i * n + j] = H[(size_t)j * n + i];
        reverse(H, nn);
        char list[128] = "";
        size_t len = 0;
        for (int k = 0; k < ntried && len < sizeof list; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%g", k ? ", " : "",
                                    (double)tried[k]);
        return ptq_fail(e, PTQ_EDATA,
                        "Hessian (%d x %d, mean diagonal %g) is singular after damping: its "
                        "Cholesky factorization failed with damp %s",
                        n, n, mean, list);
    }
    reverse(H, nn);
    return PTQ_OK;
}

typedef struct {
    float d;
    int i;
} diag_ix;

static int by_diag_desc(const void *pa, const void *pb)
{
    const diag_ix *a = pa, *b = pb;
    if (a->d != b->d) return a->d > b->d ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* M (rows x n row-major) columns gathered: M'[r][i] = M[r][perm[i]] */
static void gather_cols(float *M, long rows, int n, const int *perm, float *tmp)
{
    for (long r = 0; r < rows; r++) {
        float *row = M + r * n;
        for (int i = 0; i < n; i++) tmp[i] = row[perm[i]];
        memcpy(row, tmp, (size_t)n * sizeof *row);
    }
}

/* rows gathered in place by cycles: M'[i] = M[perm[i]] */
static void gather_rows(float *M, int n, const int *perm, float *tmp, char *seen)
{
    memset(seen, 0, (size_t)n);
    size_t bytes = (size_t)n * sizeof *M;
    for (int s = 0; s < n; s++) {
        if (seen[s] || perm[s] == s) continue;
        memcpy(tmp, M + (size_t)s * n, bytes);
        int i = s;
        for (;;) {
            seen[i] = 1;
            int src = perm[i];
            if (src == s) {
                memcpy(M + (size_t)i * n, tmp, bytes);
                break;
            }
            memcpy(M + (size_t)i * n, M + (size_t)src * n, bytes);
            i = src;
        }
    }
}

void ptq_gptq_state_free(ptq_gptq_state *s)
{
    free(s->W);
    free(s->perm);
    free(s->grid);
    free(s->Q);
    memset(s, 0, sizeof *s);
}

/* The grids fixed in advance (static groups, or one group per row), rows
 * in contiguous runs on o->threads workers: each grid depends on its own
 * weights only, so the bits are the same for any count; the error is the
 * first failing group in row order. */
typedef struct grid_job {
    ptq_gptq_state *s;
    const ptq_gptq_opts *o;
    int r0, r1, rc;
    ptq_err e;
} grid_job;

static void grid_rows(void *arg)
{
    grid_job *j = arg;
    ptq_gptq_state *s = j->s;
    int cols = s->cols, G = j->o->group ? j->o->group : cols;
    j->rc = PTQ_OK;
    for (int r = j->r0; r < j->r1 && !j->rc; r++)
        for (int g = 0; g < s->ngroups && !j->rc; g++) {
            ptq_qgrid *gr = &s->grid[(size_t)r * s->ngroups + g];
            ptq_quant_grid(s->W + (size_t)r * cols + (size_t)g * G,
                           ptq_pack_group_len(cols, G, g), 1, &j->o->q, gr);
            j->rc = ptq_int_grid_check(gr, r, g * G, &j->e);
        }
}

static int fixed_grids(ptq_gptq_state *s, const ptq_gptq_opts *o, ptq_err *e)
{
    int nw = o->threads > 0 ? o->threads : 1;
    if (nw > PTQ_PAR_MAX) nw = PTQ_PAR_MAX;
    if (nw > s->rows) nw = s->rows;
    grid_job *jobs = calloc((size_t)nw, sizeof *jobs);
    if (!jobs) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    for (int w = 0; w < nw; w++)
        jobs[w] = (grid_job){s, o, (int)((long)s->rows * w / nw),
                             (int)((long)s->rows * (w + 1) / nw), PTQ_OK, {0}};
    ptq_par_run(nw, grid_rows, jobs, sizeof *jobs);
    int rc = PTQ_OK;
    for (int w = 0; w < nw && !rc; w++)
        if (jobs[w].rc) rc = jobs[w].rc, *e = jobs[w].e;
    free(jobs);
    return rc;
}

int ptq_gptq_prepare(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                     ptq_gptq_state *s, ptq_gptq_report *rep, ptq_err *e)
{
    memset(s, 0, sizeof *s);
    memset(rep, 0, sizeof *rep);
    int rc = ptq_int_validate(W, rows, cols, o, e);
    if (rc) return rc;
    if (!(o->damp >= 0.0f && o->damp <= 1e4f))
        return ptq_fail(e, PTQ_EUSAGE, "--damp %g: out of range", (double)o->damp);
    size_t n = (size_t)cols;
    for (size_t i = 0; i < n * n; i++)
        if (!isfinite(H[i]))
            return ptq_fail(e, PTQ_EDATA, "Hessian [%zu][%zu] is %g", i / n, i % n, (double)H[i]);
    for (size_t i = 0; i < n; i++)
        if (H[i * n + i] < 0.0f)
            return ptq_fail(e, PTQ_EDATA, "Hessian diagonal [%zu] is negative (%g)", i,
                            (double)H[i * n + i]);
    s->rows = rows, s->cols = cols, s->group = o->group;
    s->ngroups = ptq_pack_ngroups(cols, o->group); /* the last group may be shorter */
    s->fixed = o->group == 0 || o->static_groups;
    size_t wn = (size_t)rows * n;
    s->W = malloc(wn * sizeof *s->W);
    s->perm = malloc(n * sizeof *s->perm);
    s->grid = malloc((size_t)rows * (size_t)s->ngroups * sizeof *s->grid);
    s->Q = malloc(wn);
    diag_ix *dx = malloc(n * sizeof *dx);
    float *tmp = malloc(n * sizeof *tmp);
    char *seen = malloc(n);
    if (!s->W || !s->perm || !s->grid || !s->Q || !dx || !tmp || !seen) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for GPTQ of a %d x %d linear", rows, cols);
        goto out;
    }
    memcpy(s->W, W, wn * sizeof *s->W);
    /* dead inputs: never active, so their weights do not matter */
    for (size_t i = 0; i < n; i++)
        if (H[i * n + i] == 0.0f) {
            H[i * n + i] = 1.0f;
            for (int r = 0; r < rows; r++) s->W[(size_t)r * n + i] = 0.0f;
            rep->dead_columns++;
        }
    /* grids fixed in advance, on the original columns */
    if (s->fixed && (rc = fixed_grids(s, o, e))) goto out;
    for (int i = 0; i < cols; i++) s->perm[i] = i;
    if (o->act_order) {
        for (int i = 0; i < cols; i++) dx[i].d = H[(size_t)i * n + i], dx[i].i = i;
        qsort(dx, n, sizeof *dx, by_diag_desc);
        int identity = 1;
        for (int i = 0; i < cols; i++) {
            s->perm[i] = dx[i].i;
            if (dx[i].i != i) identity = 0;
        }
        if (!identity) {
            gather_cols(s->W, rows, cols, s->perm, tmp);
            gather_cols(H, cols, cols, s->perm, tmp);
            gather_rows(H, cols, s->perm, tmp, seen);
        }
    }
    rc = ptq_gptq_hinv(H, cols, o->damp, rep, e);
    s->U = H;
out:
    free(dx);
    free(tmp);
    free(seen);
    if (rc) ptq_gptq_state_free(s);
    return rc;
}

int ptq_gptq_finish(ptq_gptq_state *s, const ptq_gptq_opts *o, ptq_qtensor *out, ptq_err *e)
{
    int with_gidx = o->act_order && !o->static_groups && o->group > 0;
    int rc = ptq_int_alloc(out, s->rows, s->cols, o, with_gidx, e);
    if (rc) return rc;
    int cols = s->cols, words = ptq_pack_row_words(cols, o->q.bits), ng = s->ngroups;
    for (int r = 0; r < s->rows; r++) {
        uint32_t *packed = out->qweight + (size_t)r * words;
        const uint8_t *q = s->Q + (size_t)r * cols;
        for (int i = 0; i < cols; i++) ptq_pack_set(packed, s->perm[i], o->q.bits, q[i]);
        for (int g = 0; g < ng; g++) {
            out->scales[(size_t)r * ng + g] = s->grid[(size_t)r * ng + g].scale_f16;
            out->zeros[(size_t)r * ng + g] = s->grid[(size_t)r * ng + g].zero;
        }
    }
    if (with_gidx)
        for (int i = 0; i < cols; i++) out->g_idx[s->perm[i]] = i / o->group;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- the blocked loop */

/* End of the block that starts at i1: i1 + block, cut at the start of a
 * group that would not end inside the block (its grid needs the columns
 * after it updated by every earlier column, which the lazy batch has not
 * done yet past i2).  A block ending at cols holds its last group whole. */
static int block_end(const ptq_gptq_state *s, int block, int i1)
{
    int i2 = i1 + block < s->cols ? i1 + block : s->cols;
    if (!s->fixed && s->group > 0 && i2 < s->cols) {
        int j = (i2 - 1) / s->group * s->group;
        if (j > i1 && j + s->group > i2) i2 = j;
    }
    return i2;
}

/* Row r, columns [i1, i2): quantize each column, propagate its error to the
 * rest of the block; err[i - i1] = (w - q) / U[i][i]. */
static int row_block(ptq_gptq_state *s, const ptq_gptq_opts *o, int r, int i1, int i2,
                     float *err, double *loss, ptq_err *e)
{
    const int cols = s->cols;
    float *w = s->W + (size_t)r * cols;
    uint8_t *Q = s->Q + (size_t)r * cols;
    double l = 0.0;
    for (int i = i1; i < i2; i++) {
        ptq_qgrid *g = ptq_gptq_grid_at(s, r, i);
        if (!s->fixed && i % s->group == 0) {
            ptq_quant_grid(w + i, ptq_pack_group_len(cols, s->group, i / s->group), 1, &o->q, g);
            int rc = ptq_int_grid_check(g, r, s->perm[i], e);
            if (rc) return rc;
        }
        int q = 0;
        float wq = 0.0f;
        int rc = ptq_gptq_code(g, w[i], r, s->perm[i], &q, &wq, e);
        if (rc) return rc;
        const float *u = s->U + (size_t)i * cols;
        float d = u[i], dq = w[i] - wq, ev = dq / d;
        l += (double)dq * dq / ((double)d * d) / 2;
        Q[i] = (uint8_t)q;
        err[i - i1] = ev;
        for (int j = i + 1; j < i2; j++) w[j] -= ev * u[j];
    }
    *loss += l;
    return PTQ_OK;
}

typedef struct {
    ptq_gptq_state *s;
    const ptq_gptq_opts *o;
    int first, step, nchunks, block;
    double *loss; /* [nchunks] */
    int rc, bad_chunk;
    ptq_err e;
} worker;

static void run_worker(void *arg)
{
    worker *wk = arg;
    ptq_gptq_state *s = wk->s;
    const int cols = s->cols;
    float *err = malloc((size_t)PTQ_GPTQ_CHUNK * (size_t)wk->block * sizeof *err);
    if (!err) {
        wk->rc = ptq_fail(&wk->e, PTQ_ENOMEM, "out of memory for GPTQ errors");
        wk->bad_chunk = wk->first;
        return;
    }
    for (int c = wk->first; c < wk->nchunks && !wk->rc; c += wk->step) {
        int r0 = c * PTQ_GPTQ_CHUNK;
        int r1 = r0 + PTQ_GPTQ_CHUNK < s->rows ? r0 + PTQ_GPTQ_CHUNK : s->rows;
        double loss = 0.0;
        for (int i1 = 0, i2; i1 < cols && !wk->rc; i1 = i2) {
            i2 = block_end(s, wk->block, i1);
            int K = i2 - i1;
            for (int r = r0; r < r1 && !wk->rc; r++)
                wk->rc = row_block(s, wk->o, r, i1, i2, err + (size_t)(r - r0) * K, &loss, &wk->e);
            if (!wk->rc && i2 < cols)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, cols - i2, K, -1.0f,
                            err, K, s->U + (size_t)i1 * cols + i2, cols, 1.0f,
                            s->W + (size_t)r0 * cols + i2, cols);
        }
        if (wk->rc) wk->bad_chunk = c;
        wk->loss[c] = loss;
    }
    free(err);
}

/* The rows in chunks of PTQ_GPTQ_CHUNK over o->threads workers (default:
 * the caller's BLAS thread count); chunk losses added in chunk order. */
static int blocked_loop(ptq_gptq_state *s, const ptq_gptq_opts *o, int nt, double *loss_out,
                        ptq_err *e)
{
    int nchunks = (s->rows + PTQ_GPTQ_CHUNK - 1) / PTQ_GPTQ_CHUNK;
    int nw = o->threads > 0 ? o->threads : (nt > 0 ? nt : 1);
    if (nw > nchunks) nw = nchunks;
    if (nw > PTQ_GPTQ_MAX_WORKERS) nw = PTQ_GPTQ_MAX_WORKERS;
    double *loss = calloc((size_t)nchunks, sizeof *loss);
    if (!loss) return ptq_fail(e, PTQ_ENOMEM, "out of memory for GPTQ");
    worker wk[PTQ_GPTQ_MAX_WORKERS];
    for (int w = 0; w < nw; w++) {
        memset(&wk[w], 0, sizeof wk[w]);
        wk[w].s = s, wk[w].o = o, wk[w].first = w, wk[w].step = nw;
        wk[w].nchunks = nchunks, wk[w].loss = loss;
        wk[w].block = o->block > 0 ? o->block : 128;
    }
    ptq_par_run(nw, run_worker, wk, sizeof *wk);
    /* the first failing chunk's message, whatever the number of workers */
    int bad = nchunks, rc = PTQ_OK;
    for (int w = 0; w < nw; w++)
        if (wk[w].rc && wk[w].bad_chunk < bad) {
            bad = wk[w].bad_chunk;
            rc = wk[w].rc;
            if (e) *e = wk[w].e;
        }
    double sum = 0.0;
    for (int c = 0; c < nchunks; c++) sum += loss[c];
    *loss_out = sum;
    free(loss);
    return rc;
}

int ptq_gptq_run(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                 ptq_gptq_loop loop, ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    int nt = ptq_blas_single();
    ptq_gptq_state s;
    int rc = ptq_gptq_prepare(W, H, rows, cols, o, &s, rep, e);
    if (rc) {
        ptq_blas_restore(nt);
        return rc;
    }
    double loss = 0.0;
    rc = loop(&s, o, nt, &loss, e);
    if (!rc) {
        rep->loss = loss;
        rc = ptq_gptq_finish(&s, o, out, e);
    }
    ptq_gptq_state_free(&s);
    ptq_blas_restore(nt);
    return rc;
}

int ptq_gptq(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
             ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    return ptq_gptq_run(W, H, rows, cols, o, blocked_loop, out, rep, e);
}
