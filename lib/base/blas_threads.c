/* blas_threads.c - the BLAS thread policy of par.h (in libptqc, which links
 * OpenBLAS; ptq_par_run is in libptqc-core). */
#include "lib/base/par.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

int ptq_blas_single(void)
{
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void ptq_blas_restore(int nthreads)
{
    if (nthreads != 1 && nthreads > 0) openblas_set_num_threads(nthreads);
}
