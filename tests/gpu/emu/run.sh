#!/bin/sh
# tests/gpu/emu/run.sh - a GPU check with the kernels of its lib/cuda file
# run unchanged on the CPU by the emulation of tests/gpu/emu/emu.hpp: for
# machines without a GPU (not in make check, not a substitute for
# tests/gpu/run.sh: no timing, coalescing or real races).  Needs python3
# (the <<<...>>> rewrite), a C++20 compiler and cc.  One host thread per
# CUDA thread.
#   e8p (default): tests/gpu/e8p.c (gc_e8p) on lib/cuda/e8p.cu; takes minutes
#   aqlm: tests/gpu/aqlm.c (gc_aqlm) on lib/cuda/aqlm.cu, compiled with
#         GC_AQLM_EMU (small shapes only) and cuBLAS replaced by the plain
#         loop of tests/gpu/emu/dense_emu.c
#
#   sh tests/gpu/emu/run.sh [WORKDIR] [e8p|aqlm]    exit 0 when every case passes
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
W=${1:-${TMPDIR:-/tmp}/ptqc-gpu-emu}
K=${2:-e8p}
case "$K" in e8p|aqlm) ;; *) echo "usage: run.sh [WORKDIR] [e8p|aqlm]" >&2; exit 2 ;; esac
mkdir -p "$W"
: > "$W/config.h"
# extern __shared__ T a[]; -> T *a = (T *)emu_dyn; (the dynamic shared memory)
# kernel<<<grid, block, smem, stream>>>(args); -> emu_launch(grid, block, [&] { kernel(args); });
python3 - "$SRC/lib/cuda/$K.cu" "$W/${K}_emu.cpp" "$SRC/lib/cuda/mma.cuh" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = s.replace('#include "lib/cuda/mma.cuh"', open(sys.argv[3]).read())
s = re.sub(r'extern __shared__ (\w+) (\w+)\[\];', r'\1 *\2 = reinterpret_cast<\1 *>(emu_dyn);', s)
s = s.replace('__device__ __forceinline__ void mma16816(', 'static inline void mma16816_asm(')
s = re.sub(r'(\w+(?:<[^<>]*>)?)<<<(.*?)>>>\((.*?)\)(?=;)',
           lambda m: 'emu_launch(EMU_CFG(%s), [&] { %s(%s); })' % (m.group(2), m.group(1), m.group(3)), s, flags=re.S)
open(sys.argv[2], 'w').write('#include "emu.hpp"\n#define EMU_CFG(g, b, ...) dim3(g), dim3(b)\n' + s)
PY
CXX=${CXX:-g++}
CC=${CC:-cc}
F="-O1 -ffp-contract=off -D_GNU_SOURCE -I$SRC/tests/gpu/emu -I$W -I$SRC"
$CXX -std=c++20 $F -c -o "$W/${K}_emu.o" "$W/${K}_emu.cpp"
cat > "$W/main.c" <<EOF
#include <stdio.h>
int gc_$K(void);
int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int f = gc_$K();
    printf("%s: %d failure(s) (CPU emulation of lib/cuda/$K.cu)\\n", f ? "FAIL" : "PASS", f);
    return f != 0;
}
EOF
OBJS="$W/${K}_emu.o"
EXTRA=""
[ "$K" = aqlm ] && EXTRA="tests/gpu/emu/dense_emu.c"
for f in tests/gpu/common.c tests/gpu/$K.c lib/cuda/ref/${K}_ref.c $EXTRA lib/base/err.c lib/base/par.c \
    lib/base/dtype.c lib/qfmt/qtensor.c lib/qfmt/qfmt.c lib/qfmt/qf_dense.c lib/qfmt/qf_int.c lib/qfmt/qf_a8.c \
    lib/qfmt/gemv_int.c lib/qfmt/had.c lib/qfmt/e8p.c lib/qfmt/qf_e8p.c lib/qfmt/qf_aqlm.c lib/qfmt/qf_int_had.c; do
    o="$W/$(echo "$f" | tr / _).o"
    $CC -std=c11 $F -DGC_AQLM_EMU -c -o "$o" "$SRC/$f"
    OBJS="$OBJS $o"
done
$CC -std=c11 $F -c -o "$W/main.o" "$W/main.c"
$CXX -o "$W/emu_$K" "$W/main.o" $OBJS -lm -lpthread
exec "$W/emu_$K"
