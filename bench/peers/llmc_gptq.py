#!/usr/bin/env python3
"""llmc_gptq.py - run llm-compressor's GPTQ on a Hugging Face checkpoint with the
calibration windows ptqc compile cuts, and write the fake-quantized weights as a
dense float32 checkpoint that `ptqc eval` reads.

Peer benchmark only (bench/peers/run.sh): never run by make check or CI.

The windows are ptqc's (ptqc-compile(1), Calibration): the --calib file is one
document, tokenized without special tokens; each of the --nsamples windows is BOS
followed by --seqlen - 1 stream tokens from an offset uniform in
[0, stream - (seqlen - 1)], drawn with xoshiro256** seeded through splitmix64
(lib/base/sample.c, reimplemented here from its description: start =
floor(u * nstarts), u = (next() >> 11) * 2^-53).  --expect-sha checks the result
against the samples_sha256 of ptqc's --report (sha256 of the int32 LE ids), so
both compilers provably see the same tokens.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import time

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256ss:
    def __init__(self, seed):
        self.s = []
        st = seed & M64
        for _ in range(4):
            st, z = splitmix64(st)
            self.s.append(z)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * (2.0 ** -53)


def ptqc_windows(model_dir, calib, nsamples, seqlen, seed):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
        tcfg = json.load(f)
    bos_tok = tcfg.get("bos_token")
    if isinstance(bos_tok, dict):
        bos_tok = bos_tok.get("content")
    bos = tok.token_to_id(bos_tok) if bos_tok else None
    if bos is None:
        with open(os.path.join(model_dir, "config.json")) as f:
            bos = json.load(f).get("bos_token_id")
    with open(calib, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    stream = tok.encode(text, add_special_tokens=False).ids
    head = 1 if bos is not None and bos >= 0 else 0
    body = seqlen - head
    if len(stream) < body:
        sys.exit("llmc_gptq.py: calibration text shorter than one window")
    rng = Xoshiro256ss(seed)
    nstarts = len(stream) - body + 1
    wins = []
    for _ in range(nsamples):
        start = min(int(rng.uniform() * nstarts), nstarts - 1)
        wins.append(([bos] if head else []) + stream[start:start + body])
    flat = b"".join(struct.pack("<%di" % len(w), *w) for w in wins)
    return wins, hashlib.sha256(flat).hexdigest(), len(stream)


def check_grid(model, bits, group):
    """Every (row, group) of every quantized linear holds at most 2^bits values."""
    import torch
    worst = 0
    n = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        w = mod.weight.detach().float()
        for r in range(0, w.shape[0], max(1, w.shape[0] // 8)):  # sample rows
            for j in range(0, w.shape[1], group):  # the last group may be shorter
                worst = max(worst, torch.unique(w[r, j:j + group]).numel())
        n += 1
    return n, worst, worst <= (1 << bits)


def allow_partial_groups():
    """llm-compressor 0.14 refuses a group size that does not divide the input size
    (SmolLM2's 576 inputs at group 128: its weight observer reshapes the row into
    (-1, group) and compressed_tensors' _process_group raises "tensor column shape must
    be divisble").  Both are given the row padded with zero columns to a multiple of the
    group, and the padding is cut off the result.  For the min-max observer this is
    exactly a shorter last group (calculate_qparams takes min(min, 0) and max(max, 0), so
    zeros change no scale), which is how ptqc quantizes it.  GPTQ's own column loop
    indexes the scales by g_idx = column // group and needs no change."""
    import torch.nn.functional as F
    import llmcompressor.observers.helpers as oh
    import compressed_tensors.quantization.lifecycle.forward as fw
    from compressed_tensors.quantization import QuantizationStrategy as S

    flat = oh._flatten_weight

    def flat_padded(value, args):
        g = args.group_size
        if args.strategy in (S.GROUP, S.TENSOR_GROUP) and g and value.shape[-1] % g:
            value = F.pad(value, (0, g - value.shape[-1] % g))
        return flat(value, args)

    group = fw._process_group

    def group_padded(x, scale, zero_point, args, *rest, **kw):
        g, c = args.group_size, x.shape[-1]
        if g and c > g and c % g:
            return group(F.pad(x, (0, g - c % g)), scale, zero_point, args, *rest, **kw)[..., :c]
        return group(x, scale, zero_point, args, *rest, **kw)

    oh._flatten_weight = flat_padded
    fw._process_group = group_padded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF checkpoint directory (ptqc convert)")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--actorder", default="default",
                    help="default (GPTQModifier's own), static, weight or none")
    ap.add_argument("--damp", type=float, default=None, help="dampening_frac (default: its own)")
    ap.add_argument("--observer", default=None, help="weight observer (default: its own)")
    ap.add_argument("--expect-sha", default=None, help="samples_sha256 from ptqc's --report")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()

    wins, sha, ntok = ptqc_windows(a.model, a.calib, a.nsamples, a.seqlen, a.seed)
    print("calibration: %d x %d tokens from a stream of %d, samples_sha256 %s"
          % (len(wins), len(wins[0]), ntok, sha))
    if a.expect_sha and a.expect_sha != sha:
        sys.exit("llmc_gptq.py: windows differ from ptqc's (sha %s, expected %s)"
                 % (sha, a.expect_sha))

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    torch.manual_seed(0)
    allow_partial_groups()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    wargs = dict(num_bits=a.bits, type="int", symmetric=True, strategy="group",
                 group_size=a.group)
    if a.observer:
        wargs["observer"] = a.observer
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**wargs))
    kw = {}
    if a.actorder != "default":
        kw["actorder"] = None if a.actorder == "none" else a.actorder
    if a.damp is not None:
        kw["dampening_frac"] = a.damp
    if any(c % a.group for c in (576, 1536)):  # SmolLM2's input sizes; see allow_partial_groups
        kw["bypass_divisibility_checks"] = True
    mod = GPTQModifier(config_groups={"group_0": scheme}, ignore=["lm_head"], **kw)
    ds = Dataset.from_dict({"input_ids": wins, "attention_mask": [[1] * len(w) for w in wins]})
    t0 = time.time()
    oneshot(model=model, dataset=ds, recipe=[mod], max_seq_length=a.seqlen,
            num_calibration_samples=len(wins), shuffle_calibration_samples=False)
    wall = time.time() - t0
    res = mod.resolve_quantization_config().config_groups["group_0"].weights
    print("llm-compressor GPTQ: %.1f s wall; actorder=%s dampening_frac=%s block_size=%s "
          "observer=%s" % (wall, res.actorder, mod.dampening_frac, mod.block_size,
                           res.observer or "(default: memoryless_minmax)"))
    nlin, worst, ok = check_grid(model, a.bits, a.group)
    print("grid check: %d linears, at most %d distinct values per row group (%s)"
          % (nlin, worst, "ok" if ok else "NOT on a %d-bit grid" % a.bits))

    from safetensors.torch import save_file
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" or not k.endswith(".weight"):
            continue  # tied classifier; drop observer/qparam buffers
        sd[k] = v.detach().to(torch.float32).contiguous().clone()
    save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.model, f), tmp)
    with open(os.path.join(tmp, "llmc.json"), "w") as f:
        json.dump({"wall_s": wall, "bits": a.bits, "group": a.group,
                   "actorder": str(res.actorder), "dampening_frac": mod.dampening_frac,
                   "block_size": mod.block_size, "observer": res.observer,
                   "samples_sha256": sha, "nsamples": len(wins), "seqlen": len(wins[0]),
                   "grid_ok": ok, "torch": torch.__version__,
                   "threads": torch.get_num_threads()}, f, indent=1)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)


if __name__ == "__main__":
    main()
