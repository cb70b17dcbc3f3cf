#!/usr/bin/env python3
"""table.py WORK NAME... - the Markdown table of bench/peers/run.sh (standard library only).

bpw counts what each format stores per weight of the quantized linears: ptqc's
int payload holds a fp16 scale and a uint8 zero per group (ptqc-bundle(5)), so
bits + 24/group; llm-compressor's pack-quantized format stores a 16-bit scale per
group and no zero point when symmetric, so bits + 16/group; the GGUF's Q4_1 is
5.0 (fp16 d and m per 32).
"""
import json
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def walls(work):
    out = {}
    try:
        lines = open(os.path.join(work, "times.txt")).read().splitlines()
    except OSError:
        return out
    for ln in lines:
        m = re.match(r"(\S+) (?:compile_wall_s (\S+)|rc=0 wall=(\S+))", ln)
        if m:
            out[m.group(1)] = float(m.group(2) or m.group(3))
    return out


def describe(name):
    kind, _, b = name.partition("-w")
    kind = kind.rstrip("0123456789")  # gptqao16 = gptqao at another token budget
    meth = {"rtn": "ptqc rtn", "gptq": "ptqc gptq (act-order, static groups)",
            "gptqnoao": "ptqc gptq --no-act-order",
            "gptqd": "ptqc gptq --damp 0.1 / 0.001 (d01 / d001)", "gptqmse": "ptqc gptq --mse",
            "gptqao": "ptqc gptq --act-order --static-groups",
            "llmc": "llm-compressor GPTQ (its defaults)", "awq": "ptqc awq (asym)",
            "awqgptq": "ptqc awq+gptq (asym)", "gguf": "source GGUF (Q4_1)"}.get(kind, kind)
    if name == "gguf":
        return meth, "4", "32", 5.0
    b, _, g = b.partition("g")  # NAME-w4 (group 64) or NAME-w4g128
    bits, group = int(b), int(g or 64)
    per = 16 if kind == "llmc" else 24
    return meth, str(bits), str(group), bits + per * groups_per_weight(group)


# SmolLM2-135M's linears per layer (out, in): q, k, v, o, gate, up, down
SMOL_LINEARS = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576),
                (576, 1536)]


def groups_per_weight(group):
    """ceil(in / group) groups a row, the last one shorter (576 at group 128: 5)"""
    ng = sum(o * -(-i // group) for o, i in SMOL_LINEARS)
    return ng / sum(o * i for o, i in SMOL_LINEARS)


def main():
    work = sys.argv[1]
    w = walls(work)
    print("| run | method | bits | group | bpw | wiki ppl | wiki KL | wiki top-1 "
          "| shak ppl | shak KL | shak top-1 | compile wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ref = {}
    for name in dict.fromkeys(sys.argv[2:]):
        meth, bits, group, bpw = describe(name)
        cells = []
        for text in ("wiki.eval.raw", "shak.eval.txt"):
            e = load(os.path.join(work, "eval-%s-%s.json" % (name, text)))
            if e:
                ref[text] = e.get("ref_ppl")
                cells += ["%.3f" % e["ppl"], "%.4f" % e["kl_mean"], "%.4f" % e["top1_agree"]]
            else:
                cells += ["-", "-", "-"]
        wall = "%.0f" % w[name] if name in w else "-"
        print("| %s | %s | %s | %s | %.3f | %s | %s |"
              % (name, meth, bits, group, bpw, " | ".join(cells), wall))
    for text, p in ref.items():
        print("\nReference (dense float32 = the GGUF dequantized) ppl on %s: %.3f" % (text, p))


if __name__ == "__main__":
    main()
