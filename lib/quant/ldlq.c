/* ldlq.c - BlockLDLQ (lib/quant/ldlq.h): preparation, the block LDL
 * factor, the blocked rounding loop, and its plain float64 reference. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/par.h"
#include "lib/quant/ldlq.h"

typedef struct prep {
    int rows, n, b;
    float *W;   /* [rows][n] copy, dead columns zeroed */
    double *H;  /* [n][n] dead fixed, undamped */
    double add; /* damp * mean(diag) */
} prep;

static void prep_free(prep *p)
{
    free(p->W);
    free(p->H);
    memset(p, 0, sizeof *p);
}

static int prepare(const float *W, const float *H, int rows, int n, const ptq_ldlq_opts *o,
                   prep *p, ptq_ldlq_report *rep, ptq_err *e)
{
    memset(p, 0, sizeof *p);
    memset(rep, 0, sizeof *rep);
    if (rows < 1 || n < 1) return ptq_fail(e, PTQ_EUSAGE, "BlockLDLQ of a %d x %d matrix", rows, n);
    if (o->block < 1 || n % o->block)
        return ptq_fail(e, PTQ_EUSAGE, "BlockLDLQ: block %d does not divide the %d input columns",
                        o->block, n);
    if (!(o->damp >= 0.0f && o->damp <= 1e4f))
        return ptq_fail(e, PTQ_EUSAGE, "damp %g: out of range", (double)o->damp);
    size_t nn = (size_t)n * n, wn = (size_t)rows * n;
    for (size_t i = 0; i < wn; i++)
        if (!isfinite(W[i]))
            return ptq_fail(e, PTQ_EDATA, "weight [%zu][%zu] is %g", i / n, i % n, (double)W[i]);
    for (size_t i = 0; i < nn; i++)
        if (!isfinite(H[i]))
            return ptq_fail(e, PTQ_EDATA, "Hessian [%zu][%zu] is %g", i / n, i % n, (double)H[i]);
    p->rows = rows, p->n = n, p->b = o->block;
    p->W = malloc(wn * sizeof *p->W);
    p->H = malloc(nn * sizeof *p->H);
    if (!p->W || !p->H) {
        prep_free(p);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for BlockLDLQ of a %d x %d linear", rows, n);
    }
    memcpy(p->W, W, wn * sizeof *p->W);
    for (size_t i = 0; i < nn; i++) p->H[i] = H[i];
    double mean = 0.0;
    for (int i = 0; i < n; i++) {
        double *d = &p->H[(size_t)i * n + i];
        if (*d < 0.0) {
            prep_free(p);
            return ptq_fail(e, PTQ_EDATA, "Hessian diagonal [%d] is negative (%g)", i, *d);
        }
        if (*d == 0.0) {
            *d = 1.0;
            for (int r = 0; r < rows; r++) p->W[(size_t)r * n + i] = 0.0f;
            rep->dead_columns++;
        }
        mean += *d;
    }
    p->add = o->damp * (mean / n);
    return 0;
}

/* Lower Cholesky of G (row-major, n x n, in place) in float64 by plain loops. */
static int chol_ref(double *G, int n)
{
    for (int j = 0; j < n; j++) {
        double s = G[(size_t)j * n + j];
        for (int k = 0; k < j; k++) s -= G[(size_t)j * n + k] * G[(size_t)j * n + k];
        if (!(s > 0.0) || !isfinite(s)) return -1;
        double d = sqrt(s);
        G[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double t = G[(size_t)i * n + j];
            for (int k = 0; k < j; k++) t -= G[(size_t)i * n + k] * G[(size_t)j * n + k];
            G[(size_t)i * n + j] = t / d;
        }
        for (int i = 0; i < j; i++) G[(size_t)i * n + j] = 0.0;
    }
    return 0;
}

/* The damped H reversed, F[i][j] = H[n-1-i][n-1-j] + add [i == j], in
 * double (G) or float (F). */
static void fill_rev(const prep *p, double *G, float *F)
{
    int n = p->n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = p->H[(size_t)(n - 1 - i) * n + (n - 1 - j)] + (i == j ? p->add : 0.0);
            if (G) G[(size_t)i * n + j] = v;
            else F[(size_t)i * n + j] = (float)v;
        }
}

/* From the lower Cholesky factor C of the reversed H (so R = J C J is the
 * upper factor of H = R R^T, R[i][j] = C[n-1-i][n-1-j]): A[i][blk k] = X
 * with X R_kk = R[i][blk k] for i < k0, computed in place (X_j needs only
 * X_l, l < j, and R_kk); then the array is reversed so that it holds A in
 * natural order, zero outside the strict block upper part.  The same code
 * for float (T = float) and double. */
#define LDLQ_SOLVE(NAME, T)                                                         \
    static void NAME(T *C, int n, int b)                                            \
    {                                                                               \
        size_t nn = (size_t)n * n;                                                  \
        for (int k0 = b; k0 < n; k0 += b)                                           \
            for (int i = 0; i < k0; i++)                                            \
                for (int j = k0; j < k0 + b; j++) {                                 \
                    T y = C[nn - 1 - ((size_t)i * n + j)];                          \
                    for (int l = k0; l < j; l++)                                    \
                        y -= C[nn - 1 - ((size_t)i * n + l)] *                      \
                             C[nn - 1 - ((size_t)l * n + j)];                       \
                    C[nn - 1 - ((size_t)i * n + j)] = y / C[nn - 1 - ((size_t)j * n + j)]; \
                }                                                                   \
        for (size_t t = 0; t < nn / 2; t++) {                                       \
            T v = C[t];                                                             \
            C[t] = C[nn - 1 - t], C[nn - 1 - t] = v;                                \
        }                                                                           \
        for (int i = 0; i < n; i++)                                                 \
            for (int j = 0; j < n; j++)                                             \
                if (j / b <= i / b) C[(size_t)i * n + j] = 0;                       \
    }
LDLQ_SOLVE(solve_f32, float)
LDLQ_SOLVE(solve_f64, double)
#undef LDLQ_SOLVE

/* Lower triangle of C finite (LAPACK leaves the upper one alone). */
static int lower_finite_f32(const float *C, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (!isfinite(C[(size_t)i * n + j])) return 0;
    return 1;
}

static int lower_finite_f64(const double *C, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (!isfinite(C[(size_t)i * n + j])) return 0;
    return 1;
}

static int ldl_failed(const prep *p, ptq_err *e)
{
    return ptq_fail(e, PTQ_EDATA,
                    "Hessian (%d x %d) is not positive definite after damping by %g: its block "
                    "LDL failed in float64",
                    p->n, p->n, p->add);
}

/* The feedback A = M - I from the damped H: H = R R^T with R upper
 * (reversed Cholesky), M = R diag(R_kk)^-1.  Fast path: into Af, float32
 * factorization (in Af itself), or float64 when that fails (rep->f64).
 * Reference (Af NULL): into A, float64 plain loops. */
static int feedback(const prep *p, double *A, float *Af, ptq_ldlq_report *rep, ptq_err *e)
{
    int n = p->n, b = p->b;
    size_t nn = (size_t)n * n;
    if (!Af) {
        fill_rev(p, A, NULL);
        if (chol_ref(A, n)) return ldl_failed(p, e);
        solve_f64(A, n, b);
        return 0;
    }
    fill_rev(p, NULL, Af);
    if (!LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', n, Af, n) && lower_finite_f32(Af, n)) {
        solve_f32(Af, n, b);
        return 0;
    }
    rep->f64 = 1;
    double *G = malloc(nn * sizeof *G);
    if (!G) return ptq_fail(e, PTQ_ENOMEM, "out of memory for the LDL of a %d x %d Hessian", n, n);
    fill_rev(p, G, NULL);
    int ok = !LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, G, n) && lower_finite_f64(G, n);
    if (ok) {
        solve_f64(G, n, b);
        for (size_t i = 0; i < nn; i++) Af[i] = (float)G[i];
    }
    free(G);
    return ok ? 0 : ldl_failed(p, e);
}

/* Round block k0 from V[rows][b], store What and E = W - What. */
static int round_block(const prep *p, const ptq_ldlq_rounder *r, int k0, float *V, float *Q,
                       float *E, float *What, int threads, ptq_err *e)
{
    int n = p->n, b = p->b;
    int rc = r->round(r->ctx, k0, b, p->rows, V, Q, threads, e);
    if (rc) return rc;
    for (int i = 0; i < p->rows; i++)
        for (int j = 0; j < b; j++) {
            size_t at = (size_t)i * n + k0 + j;
            What[at] = Q[(size_t)i * b + j];
            E[at] = p->W[at] - What[at];
        }
    return 0;
}

static double proxy_loss(const prep *p, const float *E)
{
    int n = p->n;
    double loss = 0.0;
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return NAN;
    for (int r = 0; r < p->rows; r++) {
        const float *er = E + (size_t)r * n;
        for (int j = 0; j < n; j++) t[j] = 0.0;
        for (int i = 0; i < n; i++) {
            if (er[i] == 0.0f) continue;
            const double *hi = p->H + (size_t)i * n;
            for (int j = 0; j < n; j++) t[j] += er[i] * hi[j];
        }
        for (int j = 0; j < n; j++) loss += t[j] * er[j];
    }
    free(t);
    return loss;
}

/* The same with dgemm over chunks of 64 rows. */
static double proxy_loss_blas(const prep *p, const float *E)
{
    int n = p->n, c = 64;
    double loss = 0.0;
    double *Ed = malloc((size_t)c * n * sizeof *Ed), *T = malloc((size_t)c * n * sizeof *T);
    if (!Ed || !T) {
        free(Ed);
        free(T);
        return proxy_loss(p, E);
    }
    for (int r0 = 0; r0 < p->rows; r0 += c) {
        int m = p->rows - r0 < c ? p->rows - r0 : c;
        for (size_t i = 0; i < (size_t)m * n; i++) Ed[i] = E[(size_t)r0 * n + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1.0, Ed, n, p->H, n, 0.0,
                    T, n);
        for (size_t i = 0; i < (size_t)m * n; i++) loss += T[i] * Ed[i];
    }
    free(Ed);
    free(T);
    return loss;
}

/* The fast path in lazy batches (GPTQ's trick): the feedback of the columns
 * before batch c0 .. c0 + L (L = 128, a multiple of b) is one product per
 * batch, U = E_{<c0} A_{<c0, batch}; inside the batch each block adds the
 * 8-wide product of the batch's own earlier columns.  The same sums as the
 * reference, split in two (float rounding differs). */
static int run_lazy(const prep *p, const ptq_ldlq_rounder *r, const float *Af, float *E,
                    float *What, int threads, ptq_err *e)
{
    int rows = p->rows, n = p->n, b = p->b, L = b >= 128 ? b : 128 / b * b, rc = 0;
    float *U = malloc((size_t)rows * L * sizeof *U), *V = malloc((size_t)rows * b * sizeof *V);
    float *Q = malloc((size_t)rows * b * sizeof *Q);
    if (!U || !V || !Q) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for BlockLDLQ");
    for (int c0 = 0; c0 < n && !rc; c0 += L) {
        int bw = n - c0 < L ? n - c0 : L;
        if (c0 > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, bw, c0, 1.0f, E, n,
                        Af + c0, n, 0.0f, U, bw);
        else
            memset(U, 0, (size_t)rows * bw * sizeof *U);
        for (int k0 = c0; k0 < c0 + bw && !rc; k0 += b) {
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < b; j++)
                    V[(size_t)i * b + j] =
                        p->W[(size_t)i * n + k0 + j] + U[(size_t)i * bw + k0 - c0 + j];
            if (k0 > c0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, b, k0 - c0, 1.0f,
                            E + c0, n, Af + (size_t)c0 * n + k0, n, 1.0f, V, b);
            rc = round_block(p, r, k0, V, Q, E, What, threads, e);
        }
    }
    free(U), free(V), free(Q);
    return rc;
}

static int run(const float *W, const float *H, int rows, int cols, const ptq_ldlq_opts *o,
               const ptq_ldlq_rounder *r, float *What, ptq_ldlq_report *rep, int ref, ptq_err *e)
{
    prep p;
    int rc = prepare(W, H, rows, cols, o, &p, rep, e);
    if (rc) return rc;
    int blas = ptq_blas_single();
    int threads = o->threads > 0 ? o->threads : blas;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    int n = cols, b = o->block;
    size_t nn = (size_t)n * n, wn = (size_t)rows * n;
    double *A = ref ? malloc(nn * sizeof *A) : NULL;
    float *Af = ref ? NULL : malloc(nn * sizeof *Af);
    float *E = calloc(wn, sizeof *E);
    float *V = malloc((size_t)rows * b * sizeof *V), *Q = malloc((size_t)rows * b * sizeof *Q);
    if ((ref ? !A : !Af) || !E || !V || !Q) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of memory for BlockLDLQ of a %d x %d linear", rows, n);
        goto out;
    }
    if ((rc = feedback(&p, A, Af, rep, e))) goto out;
    if (!ref) {
        rc = run_lazy(&p, r, Af, E, What, threads, e);
        goto loss;
    }
    for (int k0 = 0; k0 < n && !rc; k0 += b) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < b; j++) {
                const float *wr = p.W + (size_t)i * n;
                double v = wr[k0 + j];
                const float *er = E + (size_t)i * n;
                for (int l = 0; l < k0; l++) v += (double)er[l] * A[(size_t)l * n + k0 + j];
                V[(size_t)i * b + j] = (float)v;
            }
        rc = round_block(&p, r, k0, V, Q, E, What, threads, e);
    }
loss:
    if (!rc && !o->no_loss) rep->loss = ref ? proxy_loss(&p, E) : proxy_loss_blas(&p, E);
out:
    free(A);
    free(Af);
    free(E);
    free(V);
    free(Q);
    prep_free(&p);
    ptq_blas_restore(blas);
    return rc;
}

int ptq_ldlq(const float *W, const float *H, int rows, int cols, const ptq_ldlq_opts *o,
             const ptq_ldlq_rounder *r, float *What, ptq_ldlq_report *rep, ptq_err *e)
{
    return run(W, H, rows, cols, o, r, What, rep, 0, e);
}

int ptq_ldlq_reference(const float *W, const float *H, int rows, int cols,
                       const ptq_ldlq_opts *o, const ptq_ldlq_rounder *r, float *What,
                       ptq_ldlq_report *rep, ptq_err *e)
{
    return run(W, H, rows, cols, o, r, What, rep, 1, e);
}
