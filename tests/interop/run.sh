#!/bin/sh
# tests/interop/run.sh - load ptqc's exports of SmolLM2-135M with the real
# consumers on the CPU and compare next-token logits with ptqc's CPU runtime
# on the same bundle.  Never part of make check or CI: it needs a Python
# environment of a few GB (torch, transformers, compressed-tensors, gguf,
# gptqmodel, optimum) and about 10 minutes of two cores.
#
# usage: sh tests/interop/run.sh BUILD_DIR [WORK_DIR]
#   BUILD_DIR  a configured and built ptqc tree (src/ptqc, .libs/libptqc.so)
#   WORK_DIR   where bundles and exports go (default /tmp/ptqc-interop)
# env: PEERS_VENV (default /work/venv-peers: torch 2.10 CPU, transformers,
#      compressed-tensors, gguf), SHARED (default ../shared from the source
#      tree), METHOD (default rtn), W4_FLAGS / W8_FLAGS to override.
#
# GPTQ and AWQ checkpoints load in transformers only through gptqmodel (and
# optimum for GPTQ); they go into an overlay venv $WORK/venv (it sees the
# peers venv's packages through a .pth file, adds ~70 MB) so the shared venv
# is not changed.  Without PEERS_VENV a fresh venv is made from PyPI (torch's
# PyPI wheel for Linux is the CUDA build: ~3 GB with its nvidia packages).
# Results: one JSON line per (bundle, format) on stdout and in
# WORK/results.jsonl; see bench/RESULTS-interop.md.  Tolerance: max |diff| /
# max |ref| of the logits 1e-4 for float32 consumers (compressed-tensors
# decompressed, gguf dequantized: same weights, summation order differs),
# 2e-2 for gptq/awq, which run in float16 through gptqmodel's torch kernels.
set -eu
BLD=$(cd "${1:?usage: run.sh BUILD_DIR [WORK_DIR]}" && pwd)
WORK=${2:-/tmp/ptqc-interop}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$SRC/../shared}
PEERS_VENV=${PEERS_VENV:-/work/venv-peers}
METHOD=${METHOD:-rtn}
PTQC=$BLD/src/ptqc
MODEL=$SHARED/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$WORK"

# ---- Python: the peers venv plus an overlay with gptqmodel / optimum
VENV=$WORK/venv
if [ ! -x "$VENV/bin/python" ]; then
    if [ -x "$PEERS_VENV/bin/python" ]; then
        base=$("$PEERS_VENV/bin/python" -c 'import sys; print(sys.base_prefix)')
        "$base/bin/python3" -m venv "$VENV"
        site=$("$PEERS_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        vsite=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        echo "$site" >"$vsite/peers.pth"
    else
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q torch==2.10.0 transformers==5.17.0 compressed-tensors gguf \
            accelerate datasets
    fi
    # gptqmodel 7.2.0 is the newest whose requirements accept torch 2.10 and
    # transformers 5.17 (7.3+ want newer); pure Python (kernels JIT-built)
    "$VENV/bin/pip" install -q --no-deps gptqmodel==7.2.0 optimum==2.3.0 threadpoolctl \
        device-smi protobuf pypcre tokenicer logbar torchao==0.16.0 defuser torchvision==0.25.0
fi
PY=$VENV/bin/python

# ---- ptqc's logits: tests/interop/ptq_logits.c against the build
cc -O2 -std=c11 -I"$SRC" -I"$BLD" "$SRC/tests/interop/ptq_logits.c" -o "$WORK/ptq_logits" \
    -L"$BLD/.libs" -lptqc -lptqc-core -Wl,-rpath,"$BLD/.libs" -lm

: >"$WORK/results.jsonl"
# ---- the token ids: the shared golden ids (BOS + 31 ids of the golden text)
# and three 48-token slices of wiki.test.100k.ids.json, BOS first: the same
# ids for every consumer, whatever its tokenizer does.
python3 - "$SHARED/models/smollm2-135m/golden" "$WORK/ids.txt" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1] + "/golden.json"))["gguf-f32"]["logits"]["ids"]
w = json.load(open(sys.argv[1] + "/wiki.test.100k.ids.json"))["wiki_ids"]
seqs = [g] + [[1] + w[o:o + 47] for o in (1000, 5000, 20000)]
open(sys.argv[2], "w").write("".join(" ".join(map(str, s)) + "\n" for s in seqs))
EOF
# one_bundle NAME FLAGS FORMATS...: compile with --export of each, then compare
one_bundle() {
    name=$1 flags=$2
    shift 2
    b=$WORK/$name.ptq
    rm -rf "$b" "$WORK/$name"-* "$WORK/$name.gguf"
    ex=""
    for f in "$@"; do ex="$ex --export $f"; done
    # shellcheck disable=SC2086
    "$PTQC" compile "$MODEL" -o "$b" --method "$METHOD" $flags $ex --quiet --report "$WORK/$name.json" ||
        echo "{\"bundle\": \"$name\", \"compile_exit\": $?}" | tee -a "$WORK/results.jsonl"
    "$WORK/ptq_logits" "$b" "$WORK/ids.txt" "$WORK/$name.ref.f32"
    for f in "$@"; do
        d=$WORK/$name-$f
        [ "$f" = gguf ] && d=$WORK/$name.gguf
        TOL=$( [ "$f" = gptq ] || [ "$f" = awq ] && echo 2e-2 || echo 1e-4 ) \
            "$PY" "$SRC/tests/interop/consumer_logits.py" "$f" "$d" "$WORK/ids.txt" \
            "$WORK/$name.ref.f32" 2>"$WORK/$name-$f.log" |
            sed "s/^{/{\"bundle\": \"$name\", /" | tee -a "$WORK/results.jsonl" || true
    done
}

# W4: groups of 64, not 128: SmolLM2's hidden size 576 = 4.5 x 128 leaves a
# shorter last group, which compressed-tensors and AWQ cannot hold (refused).
one_bundle w4g64 "${W4_FLAGS:---bits 4 --group 64 --sym}" compressed-tensors gptq awq gguf
one_bundle w8 "${W8_FLAGS:---bits 8 --group 0 --sym}" compressed-tensors gptq gguf
# W4 g128 where the format holds a short last group: GGUF (blocks of 32 inside
# groups) and GPTQ (g_idx); gptqmodel's CPU int4 kernel then refuses K % 128.
one_bundle w4g128 "${W4G128_FLAGS:---bits 4 --group 128 --sym}" gguf gptq
