/* check_cuda.c - the GPU tests of libptqrt: every kernel against CPU
 * references on random layers and on real stories260k layers
 * (each check in tests/gpu/ states its tolerance).  Exits 77 with "SKIP: no CUDA
 * device" when no device is usable, or "SKIP: built without CUDA".  The CPU
 * side of the shared decode arithmetic is tests/check_cuda_decode, always
 * run; the end-to-end comparison with the CPU runtime (perplexity, greedy
 * ids) is in tests/gpu/run.sh.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "tests/testutil.h"
#ifdef PTQC_HAVE_CUDA
#include "tests/gpu/cases.h"

START_TEST(gpu_gemv_int) { ck_assert_int_eq(gc_gemv_int(), 0); }
END_TEST
START_TEST(gpu_gemm_int) { ck_assert_int_eq(gc_gemm_int(), 0); }
END_TEST
START_TEST(gpu_dense) { ck_assert_int_eq(gc_dense(), 0); }
END_TEST
START_TEST(gpu_layers) { ck_assert_int_eq(gc_layers(), 0); }
END_TEST
START_TEST(gpu_aqlm) { ck_assert_int_eq(gc_aqlm(), 0); }
END_TEST
START_TEST(gpu_e8p) { ck_assert_int_eq(gc_e8p(), 0); }
END_TEST
START_TEST(gpu_real_layers)
{
    char *p = tu_shared("models/stories260k/model.safetensors");
    int r = gc_real_layers(p);
    ck_assert_msg(r >= 0, "cannot read %s", p);
    ck_assert_int_eq(r, 0);
    free(p);
}
END_TEST
#endif

int main(void)
{
#ifdef PTQC_HAVE_CUDA
    if (!gc_have_device()) {
        printf("SKIP: no CUDA device (the CPU side is tests/check_cuda_decode)\n");
        return 77;
    }
    Suite *g = suite_create("cuda-gpu");
    TCase *tg = tcase_create("kernels vs CPU reference");
    tcase_set_timeout(tg, 600);
    tcase_add_test(tg, gpu_gemv_int);
    tcase_add_test(tg, gpu_gemm_int);
    tcase_add_test(tg, gpu_dense);
    tcase_add_test(tg, gpu_layers);
    tcase_add_test(tg, gpu_aqlm);
    tcase_add_test(tg, gpu_e8p);
    tcase_add_test(tg, gpu_real_layers);
    suite_add_tcase(g, tg);
    SRunner *sg = srunner_create(g);
    srunner_set_fork_status(sg, CK_NOFORK);
    srunner_run_all(sg, CK_NORMAL);
    int nf = srunner_ntests_failed(sg);
    srunner_free(sg);
    return nf ? 1 : 0;
#else
    printf("SKIP: built without CUDA (the CPU side is tests/check_cuda_decode)\n");
    return 77;
#endif
}
