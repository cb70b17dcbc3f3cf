#!/bin/sh
# Quickstart: install the build dependencies (Debian), build ptqc, and run it
# on the example model examples/stories260k:
#   inspect -> eval (perplexity) -> compile (GPTQ W4 g32) -> verify -> eval the bundle.
# (stories260k's down_proj has 172 inputs: with --group 32 the last group of
# each of its rows holds 12 columns.)
# Run from the top of the repository:  sh examples/quickstart.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sh .ci/deps
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"

model=examples/stories260k
text=examples/stories-eval.txt
out=${TMPDIR:-/tmp}/stories260k-gptq-w4.ptq

echo "== ptqc inspect $model"
src/ptqc inspect "$model"
echo "== ptqc eval $model (FP16 reference)"
src/ptqc eval "$model" --text "$text" --ctx 128
echo "== ptqc compile $model -> $out (GPTQ, 4 bits, groups of 32)"
src/ptqc compile "$model" -o "$out" --method gptq --bits 4 --group 32 \
    --calib examples/stories-calib.txt --nsamples 32 --seqlen 128 --seed 1
echo "== ptqc verify $out"
src/ptqc verify "$out"
echo "== ptqc eval $out against the FP16 model"
src/ptqc eval "$out" --text "$text" --ctx 128 --reference "$model"
