/* standalone.c - the GPU kernel checks (tests/gpu/cases.h) without Check:
 * tests/gpu/run.sh builds this with nvcc and cc alone when the full
 * configure cannot run on the GPU machine.
 * Usage: standalone [model.safetensors]; exit 0 all passed, 1 a failure,
 * 77 no CUDA device. */
#include <stdio.h>

#include "tests/gpu/cases.h"

int main(int argc, char **argv)
{
    if (!gc_have_device()) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    int fails = gc_gemv_int() + gc_gemm_int() + gc_dense() + gc_layers();
    fails += gc_aqlm();
    fails += gc_e8p();
    if (argc > 1) {
        int r = gc_real_layers(argv[1]);
        if (r < 0) printf("FAIL: cannot read real layers from %s\n", argv[1]);
        fails += r < 0 ? 1 : r;
    }
    printf("%s: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}
