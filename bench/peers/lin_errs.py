#!/usr/bin/env python3
"""lin_errs.py - per-linear output error of quantized SmolLM2 models on ONE common
Hessian, so ptqc's bundles and llm-compressor's dense output compare linear by linear.

    python lin_errs.py --source smol-f32 --calib wiki.calib.raw --nsamples 16 --seqlen 256 \
        NAME=MODEL ...            (MODEL: a ptqc .ptq bundle or a dense HF directory)

For every linear of every layer: H = sum x x^T over the calibration windows (ptqc's
windows, llmc_gptq.ptqc_windows) with x the linear's input in the UNQUANTIZED source
model, and  err = tr(dW H dW^T) / tr(W H W^T),  dW = W_model - W_source:
the relative output error on the source's own activations (neither compiler's
sequential inputs, so neither is favoured).  Prints per-kind medians and means,
the ratio of the first model to each other one, and the worst linears.
Peer benchmark (venv with torch + transformers); never run by make check or CI.

The .ptq reader follows ptqc-bundle(5) and lib/qfmt/pack.h: qweight rows of
ceil(cols/32) blocks of `bits` little-endian uint32 words, column j of a block
in bits [j*b, j*b+b) of the block's stream; w = scale * (q - zero), fp16 scales,
uint8 zeros per (row, group), group(k) = k // G (or g_idx when stored).
"""
import argparse
import json
import os
import sys
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def read_ptq(path):
    out = {}
    with tarfile.open(path) as t:
        man = json.load(t.extractfile("manifest.json"))
        for e in man["tensors"]:
            if e["format"] != "int":
                continue
            p = {k: t.extractfile(v["member"]).read() for k, v in e["payloads"].items()}
            rows, cols, b, G = e["rows"], e["cols"], e["bits"], e["group"]
            kb = -(-cols // 32)
            words = np.frombuffer(p["qweight"], dtype="<u4").reshape(rows, kb, b)
            # each block: a 32*b-bit little-endian stream -> 32 codes of b bits
            bits = np.unpackbits(words.view(np.uint8).reshape(rows, kb, 4 * b), axis=-1,
                                 bitorder="little").reshape(rows, kb, 32, b)
            q = (bits * (1 << np.arange(b))).sum(-1).reshape(rows, kb * 32)[:, :cols]
            ng = -(-cols // G) if G else 1
            sc = np.frombuffer(p["scales"], dtype="<f2").astype(np.float32).reshape(rows, ng)
            z = np.frombuffer(p["zeros"], dtype=np.uint8).astype(np.float32).reshape(rows, ng)
            if "g_idx" in p:
                gi = np.frombuffer(p["g_idx"], dtype="<i4")
            else:
                gi = np.arange(cols) // G if G else np.zeros(cols, dtype=np.int64)
            out[e["name"]] = sc[:, gi] * (q.astype(np.float32) - z[:, gi])
    return out


def read_dense(d):
    from safetensors.numpy import load_file
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update({k: v.astype(np.float32) for k, v in load_file(os.path.join(d, f)).items()})
    return out


def hessians(source, calib, nsamples, seqlen, seed):
    import torch
    from transformers import AutoModelForCausalLM
    from llmc_gptq import ptqc_windows
    wins, sha, _ = ptqc_windows(source, calib, nsamples, seqlen, seed)
    print("calibration %d x %d, samples_sha256 %s" % (len(wins), len(wins[0]), sha))
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.eval()
    H, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and ".layers." in name:
            def hook(m, inp, out, name=name):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                H[name] = H.get(name, 0) + x.T @ x
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        for w in wins:
            model(torch.tensor([w]))
    for h in hooks:
        h.remove()
    W = {n + ".weight": m.weight.detach().double() for n, m in model.named_modules()
         if n in H}
    return {n + ".weight": h for n, h in H.items()}, W


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every err here")
    ap.add_argument("models", nargs="+", help="NAME=PATH")
    a = ap.parse_args()
    import torch
    sys.stdout.reconfigure(line_buffering=True)
    H, W = hessians(a.source, a.calib, a.nsamples, a.seqlen, a.seed)
    names = sorted(H, key=lambda n: (int(n.split(".")[2]), KINDS.index(n.split(".")[-2])))
    errs = {}
    for spec in a.models:
        label, path = spec.split("=", 1)
        m = read_ptq(path) if path.endswith(".ptq") else read_dense(path)
        e = {}
        for n in names:
            dW = torch.from_numpy(m[n]).double() - W[n]
            e[n] = float(((dW @ H[n]) * dW).sum() / ((W[n] @ H[n]) * W[n]).sum())
        errs[label] = e
    labels = list(errs)
    print("\nper kind: median err (mean)")
    print("kind      " + "".join("%22s" % l for l in labels)
          + "".join("  %s/%s" % (labels[0], l) for l in labels[1:]))
    for k in KINDS:
        ks = [n for n in names if n.split(".")[-2] == k]
        cells = ["%12.5f (%7.5f)" % (np.median([errs[l][n] for n in ks]),
                                     np.mean([errs[l][n] for n in ks])) for l in labels]
        ratios = ["%10.3f" % np.median([errs[labels[0]][n] / errs[l][n] for n in ks])
                  for l in labels[1:]]
        print("%-10s" % k + "".join("%22s" % c for c in cells) + "".join(ratios))
    for l in labels[1:]:
        worse = sum(errs[labels[0]][n] > errs[l][n] for n in names)
        print("%s above %s on %d of %d linears" % (labels[0], l, worse, len(names)))
    print("\nper layer: sum of err")
    nl = 1 + max(int(n.split(".")[2]) for n in names)
    for i in range(nl):
        ln = [n for n in names if int(n.split(".")[2]) == i]
        print("%3d " % i + " ".join("%9.4f" % sum(errs[l][n] for n in ln) for l in labels))
    if len(labels) > 1:
        print("\nlargest %s/%s" % (labels[0], labels[1]))
        r = sorted(names, key=lambda n: -errs[labels[0]][n] / errs[labels[1]][n])
        for n in r[:8]:
            print("  %-45s " % n + " ".join("%.5f" % errs[l][n] for l in labels))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(errs, f, indent=0)


if __name__ == "__main__":
    main()
