#!/bin/sh
# method-table.sh - compile the example model with every method and bit width
# ptqc offers, evaluate each bundle against the FP16 model (ptqc-ppl-v1, ctx
# 128) and print a markdown table of perplexity, KL divergence, top-1
# agreement and bundle size.  The README's table is this script's output.
#
#   sh examples/method-table.sh [PTQC]      (default: src/ptqc of the build)
#
# Environment: MODEL (default examples/stories260k), CALIB / TEXT (default
# examples/stories-calib.txt / examples/stories-eval.txt), NSAMPLES (64),
# SEQLEN (128), GROUP (0: stories260k's down_proj reads 172 inputs, which no
# group of 32/64/128 divides).  Methods that this ptqc does not list in
# `ptqc compile --help` are left out.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ptqc=${1:-${PTQC:-$top/src/ptqc}}
model=${MODEL:-$top/examples/stories260k}
calib=${CALIB:-$top/examples/stories-calib.txt}
text=${TEXT:-$top/examples/stories-eval.txt}
nsamples=${NSAMPLES:-64}
seqlen=${SEQLEN:-128}
group=${GROUP:-0}
[ -x "$ptqc" ] || { echo "method-table.sh: $ptqc is not an executable ptqc" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/method-table.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

help=$("$ptqc" compile --help)
has() { printf '%s\n' "$help" | grep -q -- "$1"; }

# one JSON number field of a one-line JSON object
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p"; }

row() { # method bits flags...
    name=$1 bits=$2
    shift 2
    out="$work/b.ptq"
    if ! "$ptqc" compile "$model" -o "$out" --calib "$calib" --nsamples "$nsamples" \
        --seqlen "$seqlen" --quiet "$@" 2>"$work/err"; then
        echo "method-table.sh: compile $name $* failed: $(cat "$work/err")" >&2
        exit 1
    fi
    j=$("$ptqc" eval "$out" --text "$text" --ctx 128 --reference "$model" --json)
    size=$(wc -c <"$out" | tr -d ' ')
    printf '| %s | %s | %.4f | %.4f | %.2f %% | %s |\n' "$name" "$bits" "$(field "$j" ppl)" \
        "$(field "$j" kl_mean)" "$(echo "$(field "$j" top1_agree)" | awk '{print 100 * $1}')" \
        "$size"
    rm -f "$out"
}

ref=$("$ptqc" eval "$model" --text "$text" --ctx 128 --json)
fsize=$(cat "$model"/*.safetensors | wc -c | tr -d ' ')
echo "Model $(basename "$model"), calibration $nsamples x $seqlen tokens of $(basename "$calib"),"
echo "evaluation ptqc-ppl-v1 (ctx 128) on $(basename "$text"); weight groups: $group (0 = per output channel)."
echo
echo "| method | weight bits | ppl | KL vs FP16 | top-1 agree | bundle bytes |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '| fp16 (source) | 16 | %.4f | 0 | 100 %% | %s (safetensors) |\n' "$(field "$ref" ppl)" "$fsize"
for bits in 8 4 3; do
    row rtn "$bits" --method rtn --bits "$bits" --group "$group"
    row "rtn (asym)" "$bits" --method rtn --asym --bits "$bits" --group "$group"
    row gptq "$bits" --method gptq --bits "$bits" --group "$group"
    if has "awq+gptq"; then
        row awq "$bits" --method awq --bits "$bits" --group "$group"
        row awq+gptq "$bits" --method awq+gptq --bits "$bits" --group "$group"
    fi
done
for m in smoothquant smoothquant+gptq w8a8 fp8; do
    if has "$m"; then
        row "$m (8-bit activations, per token)" 8 --method "$m"
    fi
done
