#!/bin/sh
# tests/gpu/emu/run.sh - the QuIP# GPU check (tests/gpu/e8p.c, gc_e8p) with
# the kernels of lib/cuda/e8p.cu run unchanged on the CPU by the emulation
# of tests/gpu/emu/emu.hpp: for machines without a GPU (not in make check,
# not a substitute for tests/gpu/run.sh: no timing, coalescing or real
# races).  Needs python3 (the <<<...>>> rewrite), a C++20 compiler and cc.
# Takes minutes (one host thread per CUDA thread).
#
#   sh tests/gpu/emu/run.sh [WORKDIR]       exit 0 when every case passes
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
W=${1:-${TMPDIR:-/tmp}/ptqc-gpu-emu}
mkdir -p "$W"
: > "$W/config.h"
# kernel<<<grid, block, smem, stream>>>(args); -> emu_launch(grid, block, [&] { kernel(args); });
python3 - "$SRC/lib/cuda/e8p.cu" "$W/e8p_emu.cpp" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = s.replace('extern __shared__ float sh[];', 'float *sh = emu_dyn;')
s = s.replace('__device__ __forceinline__ void mma16816(', 'static inline void mma16816_asm(')
s = re.sub(r'(\w+(?:<[^<>]*>)?)<<<(.*?)>>>\((.*?)\)(?=;)',
           lambda m: 'emu_launch(EMU_CFG(%s), [&] { %s(%s); })' % (m.group(2), m.group(1), m.group(3)), s, flags=re.S)
open(sys.argv[2], 'w').write('#include "emu.hpp"\n#define EMU_CFG(g, b, ...) dim3(g), dim3(b)\n' + s)
PY
CXX=${CXX:-g++}
CC=${CC:-cc}
F="-O1 -ffp-contract=off -D_GNU_SOURCE -I$SRC/tests/gpu/emu -I$W -I$SRC"
$CXX -std=c++20 $F -c -o "$W/e8p_emu.o" "$W/e8p_emu.cpp"
cat > "$W/main.c" <<'EOF'
#include <stdio.h>
int gc_e8p(void);
int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int f = gc_e8p();
    printf("%s: %d failure(s) (CPU emulation of lib/cuda/e8p.cu)\n", f ? "FAIL" : "PASS", f);
    return f != 0;
}
EOF
OBJS="$W/e8p_emu.o"
for f in tests/gpu/common.c tests/gpu/e8p.c lib/cuda/ref/e8p_ref.c lib/base/err.c lib/base/par.c \
    lib/base/dtype.c lib/qfmt/qtensor.c lib/qfmt/qfmt.c lib/qfmt/qf_dense.c lib/qfmt/qf_int.c lib/qfmt/qf_a8.c \
    lib/qfmt/gemv_int.c lib/qfmt/had.c lib/qfmt/e8p.c lib/qfmt/qf_e8p.c lib/qfmt/qf_aqlm.c lib/qfmt/qf_int_had.c; do
    o="$W/$(echo "$f" | tr / _).o"
    $CC -std=c11 $F -c -o "$o" "$SRC/$f"
    OBJS="$OBJS $o"
done
$CC -std=c11 $F -c -o "$W/main.o" "$W/main.c"
$CXX -o "$W/emu_e8p" "$W/main.o" $OBJS -lm -lpthread
exec "$W/emu_e8p"
