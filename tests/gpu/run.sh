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
# The same two comparisons for a 2-bit QuIP# (--method quip, E8P) bundle of
# ../shared/models/babyllama-105 on its tinystories eval text, when present.
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
    # QuIP# E8P: its check and reference read lib/qfmt (had.h plans, the
    # format's decode), so the direct build compiles those C sources of
    # libptqc-core too (they need only libc, -lm and -lpthread)
    CORE_C="lib/base/err.c lib/base/par.c lib/base/dtype.c lib/qfmt/qtensor.c lib/qfmt/qfmt.c lib/qfmt/qf_dense.c lib/qfmt/qf_int.c lib/qfmt/qf_a8.c lib/qfmt/gemv_int.c lib/qfmt/had.c lib/qfmt/e8p.c lib/qfmt/qf_e8p.c lib/qfmt/qf_aqlm.c lib/qfmt/qf_int_had.c"
    KOBJ="$KOBJ $D/e8p.o"
    KOBJ="$KOBJ $D/aqlm.o"
    COBJ="$D/common.o $D/int_linear.o $D/dense_check.o $D/layers_check.o $D/int_ref.o $D/dense_ref.o $D/layers_ref.o"
    CCF="-std=c11 -O2 -D_GNU_SOURCE -I$SRC -I$B -I$CUDA_INC"
    COBJ="$COBJ $D/e8p_check.o $D/e8p_ref.o"
    COBJ="$COBJ $D/aqlm_check.o $D/aqlm_ref.o"
    for c in $CORE_C; do COBJ="$COBJ $D/core_$(basename $c .c).o"; done
    step nvcc-build 420 sh -c "
        for f in gemv_int gemm_int dense layers; do $NV -c -o $D/\$f.o $SRC/lib/cuda/\$f.cu & done
        $NV -c -o $D/e8p.o $SRC/lib/cuda/e8p.cu &
        $NV -c -o $D/aqlm.o $SRC/lib/cuda/aqlm.cu &
        $NV -c -o $D/dense_naive.o $SRC/tests/gpu/dense_naive.cu & wait &&
        $CC $CCF -c -o $D/common.o $SRC/tests/gpu/common.c &&
        $CC $CCF -c -o $D/int_linear.o $SRC/tests/gpu/int_linear.c &&
        $CC $CCF -c -o $D/dense_check.o $SRC/tests/gpu/dense.c &&
        $CC $CCF -c -o $D/layers_check.o $SRC/tests/gpu/layers.c &&
        for r in int_ref dense_ref layers_ref; do $CC $CCF -c -o $D/\$r.o $SRC/lib/cuda/ref/\$r.c || exit 1; done &&
        $CC $CCF -c -o $D/e8p_check.o $SRC/tests/gpu/e8p.c &&
        $CC $CCF -c -o $D/e8p_ref.o $SRC/lib/cuda/ref/e8p_ref.c &&
        $CC $CCF -c -o $D/aqlm_check.o $SRC/tests/gpu/aqlm.c &&
        $CC $CCF -c -o $D/aqlm_ref.o $SRC/lib/cuda/ref/aqlm_ref.c &&
        for c in $CORE_C; do $CC $CCF -c -o $D/core_\$(basename \$c .c).o $SRC/\$c || exit 1; done &&
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
# ppl_cmp CPU.json GPU.json: "ppl":X of each, relative difference <= 0.1 %
ppl_cmp() {
    pc=$(sed -n 's/.*"ppl":\([^,}]*\).*/\1/p' "$1")
    pg=$(sed -n 's/.*"ppl":\([^,}]*\).*/\1/p' "$2")
    awk -v c="$pc" -v g="$pg" 'BEGIN {
        if (c == "" || g == "") { print "FAIL perplexity: missing (CPU \"" c "\", GPU \"" g "\")"; exit 1 }
        d = (g - c) / c * 100; a = d < 0 ? -d : d
        printf "%s perplexity: CPU %.6f, GPU %.6f, difference %+.4f %% (bound 0.1 %%)\n", a <= 0.1 ? "PASS" : "FAIL", c, g, d
        exit a <= 0.1 ? 0 : 1 }'
}
# ids_cmp CPU.txt GPU.txt: lines "ID MARGIN"; equal, or the first divergence with both margins
ids_cmp() {
    paste -d ' ' "$1" "$2" | awk '
        NF == 4 { n++; if ($1 != $3 && !d) { d = n; ci = $1; cm = $2; gi = $3; gm = $4 } }
        END {
            if (n < 64) { printf "FAIL greedy ids: %d of 64 compared\n", n; exit 1 }
            if (!d) { printf "PASS greedy ids: the first %d ids on the GPU equal the CPU reference\n", n; exit 0 }
            printf "DIVERGE greedy ids: first difference at generated token %d: CPU %s (top-2 margin %s), GPU %s (top-2 margin %s)%s\n", d, ci, cm, gi, gm, (cm < 0.02 || gm < 0.02) ? ": a near-tie" : ": NOT a near-tie"
            exit (cm < 0.02 || gm < 0.02) ? 0 : 1 }'
}
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
        E2E_PPL=$(ppl_cmp "$OUTDIR/eval-cpu.json" "$OUTDIR/eval-gpu.json") || status=1
        E2E_IDS=$(ids_cmp "$OUTDIR/ids-cpu.txt" "$OUTDIR/ids-gpu.txt") || status=1
        E2E="$E2E_PPL
$E2E_IDS"
    else
        status=1; E2E="FAIL: ptqc compile of the stories260k bundle failed (e2e_compile.log)"
    fi
else
    E2E="not run (needs the full configure build)"
fi

# ---- 3b. QuIP# end to end (full build): a 2-bit --method quip bundle of
# babyllama-105 from ../shared (stories260k's 172-wide down_proj is not a
# multiple of 8), the same comparisons on its tinystories eval text
QE2E="not run (needs the full configure build and ../shared/models/babyllama-105)"
BABY="$PTQC_SHARED/models/babyllama-105"
if [ -n "$PTQC" ] && [ -d "$BABY" ]; then
    Q2="$OUTDIR/babyllama-quip2.ptq"
    QTXT="$PTQC_SHARED/text/tinystories-eval.txt"
    QPROMPT="Once upon a time"
    rm -rf "$Q2"
    if step quip_compile 150 "$PTQC" compile "$BABY" -o "$Q2" --method quip --bits 2 \
        --calib "$PTQC_SHARED/text/tinystories-calib.txt" --nsamples 16 --seqlen 64 --seed 1; then
        step quip_eval_cpu 120 sh -c "'$PTQC' eval '$Q2' --text '$QTXT' --json > '$OUTDIR/quip-eval-cpu.json'"
        step quip_eval_gpu 120 sh -c "'$PTQC' eval '$Q2' --text '$QTXT' --device cuda --json > '$OUTDIR/quip-eval-gpu.json'"
        step quip_run_cpu 120 sh -c "'$PTQC' run '$Q2' --prompt '$QPROMPT' -n 64 --temp 0 --print-ids --ignore-eos --device cpu > '$OUTDIR/quip-ids-cpu.txt'"
        step quip_run_gpu 120 sh -c "'$PTQC' run '$Q2' --prompt '$QPROMPT' -n 64 --temp 0 --print-ids --ignore-eos --device cuda > '$OUTDIR/quip-ids-gpu.txt'"
        Q_PPL=$(ppl_cmp "$OUTDIR/quip-eval-cpu.json" "$OUTDIR/quip-eval-gpu.json") || status=1
        Q_IDS=$(ids_cmp "$OUTDIR/quip-ids-cpu.txt" "$OUTDIR/quip-ids-gpu.txt") || status=1
        QE2E="$Q_PPL
$Q_IDS"
    else
        status=1; QE2E="FAIL: ptqc compile --method quip of babyllama-105 failed (quip_compile.log)"
    fi
fi

# ---- 3c. AQLM end to end (full build): a 2x8 --method aqlm bundle of
# babyllama-105 (small calibration and beam: the bundle only has to be an
# AQLM one), the same comparisons; the prefill runs the fused decode + mma
# GEMM (checked against the CPU reference and decode + cuBLAS in step 2,
# gc_aqlm; timed against decode + cuBLAS in step 4's "AQLM prefill" table),
# the decode steps the GEMV with the codebooks in shared memory
AE2E="not run (needs the full configure build and ../shared/models/babyllama-105)"
if [ -n "$PTQC" ] && [ -d "$BABY" ]; then
    A2="$OUTDIR/babyllama-aqlm2x8.ptq"
    ATXT="$PTQC_SHARED/text/tinystories-eval.txt"
    rm -rf "$A2"
    if step aqlm_compile 150 "$PTQC" compile "$BABY" -o "$A2" --method aqlm --codebooks 2x8 --beam 4 \
        --calib "$PTQC_SHARED/text/tinystories-calib.txt" --nsamples 8 --seqlen 64 --seed 1; then
        step aqlm_eval_cpu 120 sh -c "'$PTQC' eval '$A2' --text '$ATXT' --json > '$OUTDIR/aqlm-eval-cpu.json'"
        step aqlm_eval_gpu 120 sh -c "'$PTQC' eval '$A2' --text '$ATXT' --device cuda --json > '$OUTDIR/aqlm-eval-gpu.json'"
        step aqlm_run_cpu 120 sh -c "'$PTQC' run '$A2' --prompt 'Once upon a time' -n 64 --temp 0 --print-ids --ignore-eos --device cpu > '$OUTDIR/aqlm-ids-cpu.txt'"
        step aqlm_run_gpu 120 sh -c "'$PTQC' run '$A2' --prompt 'Once upon a time' -n 64 --temp 0 --print-ids --ignore-eos --device cuda > '$OUTDIR/aqlm-ids-gpu.txt'"
        A_PPL=$(ppl_cmp "$OUTDIR/aqlm-eval-cpu.json" "$OUTDIR/aqlm-eval-gpu.json") || status=1
        A_IDS=$(ids_cmp "$OUTDIR/aqlm-ids-cpu.txt" "$OUTDIR/aqlm-ids-gpu.txt") || status=1
        AE2E="$A_PPL
$A_IDS"
    else
        status=1; AE2E="FAIL: ptqc compile --method aqlm of babyllama-105 failed (aqlm_compile.log)"
    fi
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
say "## End to end (babyllama-105 QuIP# 2-bit bundle, GPU vs CPU runtime)"
say '```'
say "$QE2E"
say '```'
say ""
say "## End to end (babyllama-105 AQLM 2x8 bundle, GPU vs CPU runtime)"
say '```'
say "$AE2E"
say '```'
say ""
say "## Benchmarks"
[ -f "$OUTDIR/bench_kernels.log" ] && cat "$OUTDIR/bench_kernels.log" >> "$R"
say ""
[ -f "$OUTDIR/ptqc_bench.log" ] && { say '```'; cat "$OUTDIR/ptqc_bench.log" >> "$R"; say '```'; }
say ""
say "total $(( $(date +%s) - T0 )) s; overall status $status"
exit $status
