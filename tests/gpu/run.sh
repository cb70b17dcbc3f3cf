#!/bin/sh
# tests/gpu/run.sh - the one prepared GPU check of libptqrt: build, correctness,
# sanitizers, benchmarks.  POSIX sh; one command; under nine minutes on an H100.
#
#   sh tests/gpu/run.sh [OUTDIR]        (default: $OUT, else ./gpu-results)
#
# Environment: PTQC_CUDA_ARCH (the SASS targets, e.g. "90"; default: the
# GPU's compute capability), PTQC_GPU_DIRECT=1 (skip configure: the direct
# nvcc build), PTQC_GPU_BUDGET (seconds for all steps, 520).
#
# Writes OUTDIR/results.md (device, date, every figure) and one log per step.
# The GPU machine may lack the dev packages that configure requires (OpenBLAS,
# LAPACKE, libarchive, cJSON, PCRE2, Check) and has no network, so the script
# tries the full autotools build first and otherwise builds the kernels, the
# GPU tests (tests/gpu/standalone.c, the same cases as tests/check_cuda) and
# bench_kernels directly with nvcc, which need only CUDA.  `ptqc bench` and
# the end-to-end comparison with the CPU runtime need the full build (ptqc
# compile, eval and run); without it those steps are reported as not run.
# Both builds compile SASS for this machine's GPU only (nvidia-smi's
# compute_cap; configure --with-cuda-arch).
#
# End to end (full build): a W4 GPTQ bundle of examples/stories260k; its
# ptqc-ppl-v1 perplexity on examples/stories-eval.txt from `ptqc eval` on the
# CPU and with --device cuda must agree within 0.1 %; 64 greedy ids of
# `ptqc run --print-ids --ignore-eos` on the GPU and with --device cpu (the
# CPU reference runtime) must be equal, else the first divergence is reported
# with the top-2 logit margins of both at that step.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUTDIR=${1:-${OUT:-$PWD/gpu-results}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
B="$OUTDIR/build"
mkdir -p "$B"
R="$OUTDIR/results.md"
PATH="$PATH:/usr/local/cuda/bin"
export PATH
NVCC=$(command -v nvcc || true)
T0=$(date +%s)
status=0

say() { printf '%s\n' "$*" | tee -a "$R"; }
BUDGET=${PTQC_GPU_BUDGET:-520} # seconds for all steps: the script stays under nine minutes
step() { # step NAME TIMEOUT CMD...: run, log to OUTDIR/NAME.log, record the status
    name=$1; lim=$2; shift 2
    s0=$(date +%s)
    left=$(( BUDGET - (s0 - T0) ))
    if [ $left -lt 15 ]; then say "- $name: not run (time budget of $BUDGET s spent)"; return 1; fi
    [ $lim -gt $left ] && lim=$left
    timeout "$lim" "$@" > "$OUTDIR/$name.log" 2>&1
    rc=$?
    say "- $name: exit $rc ($(( $(date +%s) - s0 )) s), log $name.log"
    return $rc
}

: > "$R"
say "# libptqrt GPU check"
say ""
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
say "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "- nvcc: $($NVCC --version 2>/dev/null | tail -1)"
say "- source: $(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say ""
say "## Steps"
[ -n "$NVCC" ] || { say "nvcc not found: nothing can be built"; exit 1; }

# ---- 1. full build (configure), else direct nvcc builds; SASS for this GPU only
# (compute capability from nvidia-smi, e.g. 9.0 -> 90), which keeps the nvcc
# time of the build to one target instead of configure's default list
ARCH=${PTQC_CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')}
case "$ARCH" in ''|*[!0-9\ ]*) ARCH="80 90" ;; esac
say "- CUDA targets: $ARCH"
GENCODE=""
for a in $ARCH; do GENCODE="$GENCODE -gencode arch=compute_$a,code=sm_$a"; done
FULL=0
if [ -z "${PTQC_GPU_DIRECT:-}" ] && ( cd "$SRC" && { [ -x configure ] || autoreconf -fi; } ) > "$OUTDIR/autoreconf.log" 2>&1 &&
   ( cd "$B" && "$SRC/configure" -q --with-cuda --with-cuda-arch="$ARCH" ) > "$OUTDIR/configure.log" 2>&1; then
    if step make 420 make -C "$B" -j16 all tests/check_cuda tests/check_cuda_decode bench/bench_kernels; then FULL=1; fi
else
    say "- configure failed (see configure.log): direct nvcc build"
fi
CUDA_INC=$(dirname "$(dirname "$NVCC")")/include
CC=${CC:-cc}
NV="$NVCC -std=c++17 -O3 $GENCODE -I$SRC -I$B"
if [ $FULL = 1 ]; then
    CHECK="$B/tests/check_cuda"; BENCHK="$B/bench/bench_kernels"; PTQC="$B/src/ptqc"
else
    # the kernels (lib/cuda), the test-only kernel, the CPU references
    # (lib/cuda/ref) and the checks (tests/gpu): the same files as tests/check_cuda
    D="$B/direct"
    mkdir -p "$D"
    : > "$B/config.h"
    KOBJ="$D/gemv_int.o $D/gemm_int.o $D/dense.o $D/layers.o"
    COBJ="$D/common.o $D/int_linear.o $D/dense_check.o $D/layers_check.o $D/int_ref.o $D/dense_ref.o $D/layers_ref.o"
    CCF="-std=c11 -O2 -D_GNU_SOURCE -I$SRC -I$B -I$CUDA_INC"
    step nvcc-build 420 sh -c "
        for f in gemv_int gemm_int dense layers; do $NV -c -o $D/\$f.o $SRC/lib/cuda/\$f.cu & done
        $NV -c -o $D/dense_naive.o $SRC/tests/gpu/dense_naive.cu & wait &&
        $CC $CCF -c -o $D/common.o $SRC/tests/gpu/common.c &&
        $CC $CCF -c -o $D/int_linear.o $SRC/tests/gpu/int_linear.c &&
        $CC $CCF -c -o $D/dense_check.o $SRC/tests/gpu/dense.c &&
        $CC $CCF -c -o $D/layers_check.o $SRC/tests/gpu/layers.c &&
        for r in int_ref dense_ref layers_ref; do $CC $CCF -c -o $D/\$r.o $SRC/lib/cuda/ref/\$r.c || exit 1; done &&
        $CC $CCF -c -o $D/standalone.o $SRC/tests/gpu/standalone.c &&
        $NV -o $D/standalone $D/standalone.o $COBJ $D/dense_naive.o $KOBJ -lcublas &&
        $NV -o $D/bench_kernels $SRC/bench/bench_kernels.cu $KOBJ -lcublas" || status=1
    CHECK="$D/standalone"; BENCHK="$D/bench_kernels"; PTQC=""
fi
STORIES="$SRC/../shared/models/stories260k/model.safetensors"
[ -f "$STORIES" ] || STORIES="$SRC/examples/stories260k/model.safetensors"
PTQC_SHARED="$SRC/../shared"; export PTQC_SHARED
[ -d "$PTQC_SHARED" ] || { mkdir -p "$OUTDIR/shared/models"; ln -sf "$SRC/examples/stories260k" "$OUTDIR/shared/models/stories260k"; PTQC_SHARED="$OUTDIR/shared"; }

# ---- 2. correctness: every kernel vs the CPU reference
if [ $FULL = 1 ]; then step check_cuda 240 "$CHECK" || status=1
else step check_cuda 240 "$CHECK" "$STORIES" || status=1; fi

# ---- 3. end to end against the CPU runtime (full build only)
E2E=""
if [ -n "$PTQC" ]; then
    W4="$OUTDIR/stories-w4.ptq"
    PROMPT="Once upon a time"
    rm -f "$W4"
    if step e2e_compile 120 "$PTQC" compile "$SRC/examples/stories260k" -o "$W4" --method gptq --bits 4 \
        --group 0 --calib "$SRC/examples/stories-calib.txt" --nsamples 16 --seqlen 128 --seed 1; then
        step e2e_eval_cpu 120 sh -c "'$PTQC' eval '$W4' --text '$SRC/examples/stories-eval.txt' --json > '$OUTDIR/eval-cpu.json'"
        step e2e_eval_gpu 120 sh -c "'$PTQC' eval '$W4' --text '$SRC/examples/stories-eval.txt' --device cuda --json > '$OUTDIR/eval-gpu.json'"
        step e2e_run_cpu 120 sh -c "'$PTQC' run '$W4' --prompt '$PROMPT' -n 64 --temp 0 --print-ids --ignore-eos --device cpu > '$OUTDIR/ids-cpu.txt'"
        step e2e_run_gpu 120 sh -c "'$PTQC' run '$W4' --prompt '$PROMPT' -n 64 --temp 0 --print-ids --ignore-eos --device cuda > '$OUTDIR/ids-gpu.txt'"
        timeout 60 "$PTQC" run "$W4" --prompt "$PROMPT" -n 64 --temp 0 > "$OUTDIR/text-gpu.txt" 2>> "$OUTDIR/e2e_run_gpu.log"
        timeout 60 "$PTQC" run "$W4" --prompt "$PROMPT" -n 64 --temp 0 --device cpu > "$OUTDIR/text-cpu.txt" 2>> "$OUTDIR/e2e_run_cpu.log"
        # perplexity: "ppl":X of each JSON object, relative difference <= 0.1 %
        pc=$(sed -n 's/.*"ppl":\([^,}]*\).*/\1/p' "$OUTDIR/eval-cpu.json")
        pg=$(sed -n 's/.*"ppl":\([^,}]*\).*/\1/p' "$OUTDIR/eval-gpu.json")
        E2E_PPL=$(awk -v c="$pc" -v g="$pg" 'BEGIN {
            if (c == "" || g == "") { print "FAIL perplexity: missing (CPU \"" c "\", GPU \"" g "\")"; exit 1 }
            d = (g - c) / c * 100; a = d < 0 ? -d : d
            printf "%s perplexity: CPU %.6f, GPU %.6f, difference %+.4f %% (bound 0.1 %%)\n", a <= 0.1 ? "PASS" : "FAIL", c, g, d
            exit a <= 0.1 ? 0 : 1 }') || status=1
        # greedy ids: lines "ID MARGIN"; equal, or the first divergence with both margins
        E2E_IDS=$(paste -d ' ' "$OUTDIR/ids-cpu.txt" "$OUTDIR/ids-gpu.txt" | awk '
            NF == 4 { n++; if ($1 != $3 && !d) { d = n; ci = $1; cm = $2; gi = $3; gm = $4 } }
            END {
                if (n < 64) { printf "FAIL greedy ids: %d of 64 compared\n", n; exit 1 }
                if (!d) { printf "PASS greedy ids: the first %d ids on the GPU equal the CPU reference\n", n; exit 0 }
                printf "DIVERGE greedy ids: first difference at generated token %d: CPU %s (top-2 margin %s), GPU %s (top-2 margin %s)%s\n", d, ci, cm, gi, gm, (cm < 0.02 || gm < 0.02) ? ": a near-tie" : ": NOT a near-tie"
                exit (cm < 0.02 || gm < 0.02) ? 0 : 1 }') || status=1
        E2E="$E2E_PPL
$E2E_IDS"
    else
        status=1; E2E="FAIL: ptqc compile of the stories260k bundle failed (e2e_compile.log)"
    fi
else
    E2E="not run (needs the full configure build)"
fi

# ---- 4. benchmarks
step bench_kernels 120 "$BENCHK" || status=1
if [ -n "$PTQC" ]; then
    step ptqc_bench 200 "$PTQC" bench --synthetic llama7b --bits 4 --group 128 -n 64 -r 3 || status=1
else
    say "- ptqc bench: not run (needs the full configure build)"
fi

# ---- 5. compute-sanitizer on the GPU test binary, in the time that is left
if command -v compute-sanitizer > /dev/null 2>&1; then
    ARGS=""; [ $FULL = 1 ] || ARGS="$STORIES"
    CK_FORK=no; export CK_FORK
    step memcheck 200 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 1 "$CHECK" $ARGS || status=1
    step racecheck 200 compute-sanitizer --tool racecheck --error-exitcode 1 "$CHECK" $ARGS || status=1
else
    say "- compute-sanitizer not found: memcheck/racecheck not run"
fi

say ""
say "## Correctness"
say '```'
grep -E "^(ok|FAIL|PASS|SKIP)|Checks|failure" "$OUTDIR/check_cuda.log" 2>/dev/null | tail -60 >> "$R"
say '```'
for t in memcheck racecheck; do
    [ -f "$OUTDIR/$t.log" ] && { say "$t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUTDIR/$t.log" | tail -1)"; }
done
say ""
say "## End to end (stories260k W4 GPTQ bundle, GPU vs CPU runtime)"
say '```'
say "$E2E"
say '```'
for f in text-cpu text-gpu; do [ -s "$OUTDIR/$f.txt" ] && say "$f: $(head -c 400 "$OUTDIR/$f.txt" | tr '\n' ' ')"; done
say ""
say "## Benchmarks"
[ -f "$OUTDIR/bench_kernels.log" ] && cat "$OUTDIR/bench_kernels.log" >> "$R"
say ""
[ -f "$OUTDIR/ptqc_bench.log" ] && { say '```'; cat "$OUTDIR/ptqc_bench.log" >> "$R"; say '```'; }
say ""
say "total $(( $(date +%s) - T0 )) s; overall status $status"
exit $status
