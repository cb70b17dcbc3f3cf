#!/bin/sh
# bench/peers/run.sh - ptqc's weight-only methods against llm-compressor's GPTQ on
# SmolLM2-135M, same weights, same calibration tokens, same evaluation
# (ptqc eval --reference).  Peer benchmark: never run by make check or CI.
#
#   PTQC=/path/to/src/ptqc sh bench/peers/run.sh [NAME...]
#
# NAME: any of the runs below (default: all but the awq ones, which take tens
# of minutes on 2 cores).  Every output is kept under $WORK and reused when it
# exists, so an interrupted run continues; delete a file to redo it.
# Environment (defaults): PTQC (required), SHARED (../shared next to the
# checkout), WORK (/tmp/ptqc-peers), VENV ($WORK/venv: created with python3 -m
# venv and llmcompressor from PyPI when it cannot import llmcompressor),
# NSAMPLES (32), SEQLEN (512), SEED (0), EVAL_BYTES (12000), THREADS (all CPUs),
# TEXTS (wiki.eval.raw shak.eval.txt: the evaluation texts, one or both),
# LLMC_THREADS (torch threads of the peer, default THREADS; 1 was faster on a
# loaded machine).
#
# Texts (see ../shared/README.md): the evaluation texts are the first
# EVAL_BYTES of text/wikitext-2-raw/wiki.test.100k.raw (the SmolLM2 golden
# text) and of text/tinyshakespeare.txt (a second, out-of-domain text); the
# calibration text is wiki.test.raw WITHOUT its first 100058 bytes (= the
# golden text), so calibration and evaluation never share a byte.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
: "${PTQC:?set PTQC to a built src/ptqc}"
SHARED=${SHARED:-$HERE/../../../shared}
WORK=${WORK:-/tmp/ptqc-peers}
VENV=${VENV:-$WORK/venv}
NSAMPLES=${NSAMPLES:-32}
SEQLEN=${SEQLEN:-512}
SEED=${SEED:-0}
EVAL_BYTES=${EVAL_BYTES:-12000}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
TEXTS=${TEXTS:-wiki.eval.raw shak.eval.txt}
GGUF=$SHARED/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
WIKI=$SHARED/text/wikitext-2-raw
mkdir -p "$WORK"
cd "$WORK"

say() { printf '%s\n' "run.sh: $*" >&2; }
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# ---------------------------------------------------------------- inputs
[ -f wiki.calib.raw ] || tail -c +100059 "$WIKI/wiki.test.raw" > wiki.calib.raw
[ -f wiki.eval.raw ] || head -c "$EVAL_BYTES" "$WIKI/wiki.test.100k.raw" > wiki.eval.raw
[ -f shak.eval.txt ] || head -c "$EVAL_BYTES" "$SHARED/text/tinyshakespeare.txt" > shak.eval.txt
# the dense float32 model: exactly the GGUF's dequantized weights (check: its
# ptqc eval perplexity equals the GGUF's, KL 0)
if [ ! -d smol-f32 ]; then
    say "ptqc convert -> smol-f32"
    "$PTQC" convert "$GGUF" -o smol-f32 --dtype f32 --quiet
fi
CAL="--calib $WORK/wiki.calib.raw --nsamples $NSAMPLES --seqlen $SEQLEN --seed $SEED"
# RTN's rounding ignores the calibration, but a compile without --calib still
# samples 128 x 2048 data-free tokens (issue 9): two windows feed its report only
CAL2="--calib $WORK/wiki.calib.raw --nsamples 2 --seqlen $SEQLEN --seed $SEED"

# ---------------------------------------------------------------- the runs
# name | kind | flags   (kind: ptqc = ptqc compile, llmc = llmc_gptq.py, ref = a model as is)
RUNS='gguf|ref|
rtn-w4|ptqc|--method rtn --bits 4 --group 64 --sym CAL2
gptq-w4|ptqc|--method gptq --bits 4 --group 64 --sym CAL
gptqao-w4|ptqc|--method gptq --bits 4 --group 64 --sym --act-order --static-groups CAL
llmc-w4|llmc|--bits 4 --group 64
rtn-w3|ptqc|--method rtn --bits 3 --group 64 --sym CAL2
gptq-w3|ptqc|--method gptq --bits 3 --group 64 --sym CAL
gptqao-w3|ptqc|--method gptq --bits 3 --group 64 --sym --act-order --static-groups CAL
llmc-w3|llmc|--bits 3 --group 64
awq-w4|ptqc|--method awq --bits 4 --group 64 CAL
awqgptq-w4|ptqc|--method awq+gptq --bits 4 --group 64 CAL
rtn-w4g128|ptqc|--method rtn --bits 4 --group 128 --sym
gptq-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --act-order --static-groups CAL
llmc-w4g128|llmc|--bits 4 --group 128
rtn-w3g128|ptqc|--method rtn --bits 3 --group 128 --sym
gptq-w3g128|ptqc|--method gptq --bits 3 --group 128 --sym --act-order --static-groups CAL
llmc-w3g128|llmc|--bits 3 --group 128
awq-w4g128|ptqc|--method awq --bits 4 --group 128 CAL
awqgptq-w4g128|ptqc|--method awq+gptq --bits 4 --group 128 CAL
awqfull-w4g128|ptqc|--method awq --bits 4 --group 128 --awq-scan full CAL
gptqnomse-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --no-mse CAL
awqs4096-w4g128|ptqc|--method awq --bits 4 --group 128 --awq-search-tokens 4096 CAL
gptqnoao-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --no-act-order CAL
gptqd01-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --damp 0.1 CAL
gptqd001-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --damp 0.001 CAL
gptqmse-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --mse CAL
gptqmse-w3g128|ptqc|--method gptq --bits 3 --group 128 --sym --mse CAL
gptqlay-w3g128|ptqc|--method gptq --bits 3 --group 128 --sym --hessians layer CAL
gptqlay-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --hessians layer CAL
gptqlaymse-w3g128|ptqc|--method gptq --bits 3 --group 128 --sym --hessians layer --mse CAL
gptqlaymse-w4g128|ptqc|--method gptq --bits 4 --group 128 --sym --hessians layer --mse CAL
gptqseq-w3g128|ptqc|--method gptq --bits 3 --group 128 --sym --hessians sequential CAL'
DEFAULT_RUNS=$(printf '%s\n' "$RUNS" | cut -d'|' -f1 | grep -v '^awq')
WANT=${*:-$DEFAULT_RUNS}

venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import llmcompressor' 2>/dev/null; then
        return 0
    fi
    say "creating $VENV (llmcompressor from PyPI; CPU torch comes with it)"
    python3 -m venv "$VENV"
    # PyPI's Linux torch wheel is the CUDA build; it runs on the CPU when no GPU is
    # present (no other index is used)
    "$VENV/bin/pip" install -q llmcompressor
}

model_of() { # the path ptqc eval reads for run $1
    case $1 in
    gguf) echo "$GGUF" ;;
    llmc-*) echo "$WORK/$1" ;;
    *) echo "$WORK/$1.ptq" ;;
    esac
}

build() { # name kind flags
    name=$1 kind=$2 flags=$(printf '%s' "$3" | sed "s|CAL2|$CAL2|; s|CAL|$CAL|")
    case $kind in
    ref) return 0 ;;
    ptqc)
        [ -f "$name.ptq" ] && return 0
        say "ptqc compile $name"
        t0=$(now)
        # shellcheck disable=SC2086
        "$PTQC" compile smol-f32 -o "$name.ptq" $flags --threads "$THREADS" \
            --report "$name.json" --quiet
        echo "$name compile_wall_s $(elapsed "$t0" "$(now)")" >> times.txt ;;
    llmc)
        [ -d "$name" ] && return 0
        venv
        # the windows of any GPTQ report of this $WORK (one token budget per $WORK)
        sha=$(cat gptq*.json 2>/dev/null | sed -n 's/.*"samples_sha256":[^"]*"\([0-9a-f]*\)".*/\1/p' | head -1)
        say "llm-compressor GPTQ $name"
        t0=$(now)
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=${LLMC_THREADS:-$THREADS} "$VENV/bin/python" "$HERE/llmc_gptq.py" --model smol-f32 --calib wiki.calib.raw \
            --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --seed "$SEED" $flags \
            ${sha:+--expect-sha $sha} -o "$name" > "$name.log" 2>&1 || {
            tail -20 "$name.log" >&2; exit 1; }
        echo "$name compile_wall_s $(elapsed "$t0" "$(now)")" >> times.txt ;;
    esac
}

evaluate() { # name
    for text in $TEXTS; do
        out=eval-$1-$text.json
        [ -s "$out" ] && continue
        say "ptqc eval $1 on $text"
        "$PTQC" eval "$(model_of "$1")" --text "$text" --ctx 512 --reference smol-f32 \
            --threads "$THREADS" --json > "$out.tmp"
        mv "$out.tmp" "$out"
    done
}

# a GPTQ report holds the samples_sha256 the peer must reproduce: build the ptqc
# runs first (without one, llmc_gptq.py records its sha in llmc.json to compare)
WANT=$(for w in $WANT; do case $w in llmc-*) ;; *) echo "$w" ;; esac; done
       for w in $WANT; do case $w in llmc-*) echo "$w" ;; esac; done)
for w in $WANT; do
    line=$(printf '%s\n' "$RUNS" | grep "^$w|") || { say "unknown run $w"; exit 2; }
    build "$w" "$(echo "$line" | cut -d'|' -f2)" "$(echo "$line" | cut -d'|' -f3)"
done
for w in $WANT; do evaluate "$w"; done
python3 "$HERE/table.py" "$WORK" $WANT
