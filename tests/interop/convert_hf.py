#!/usr/bin/env python3
"""Load a `ptqc convert` output directory with Hugging Face transformers and
check it against the shared SmolLM2 golden data (never run by make check).

usage: python tests/interop/convert_hf.py DIR [SHARED]   (SHARED: ../shared)

Checks: AutoTokenizer (PreTrainedTokenizerFast from tokenizer.json) encodes
every line of golden/tokens.jsonl to its ids and decodes them back; the
model (AutoModelForCausalLM, float32) gives golden/logits-f16.f32 for the
golden ids within 1e-3.  Prints one line per check; exit status 1 on a
failure.

Measured (transformers 5.17.0, tokenizers 0.23.3, CPU torch 2.10) on
`ptqc convert SmolLM2-135M-Instruct.Q4_1.gguf` (F16, and sharded at 40MB):
logits max |diff| 0; tokens 51/52: line 1 ("... 4 1/2 months" with U+00BD)
differs because tokenizers 0.23.3's Digits pre-tokenizer splits U+00BD off
(Digits(individual_digits=True).pre_tokenize_str gives ' ', '\u00bd'), where
the golden ids (and ptqc) keep " \u00bd" together; the file itself has the
official SmolLM2 layout Sequence[Digits(individual_digits), ByteLevel]."""
import json, os, sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

d = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../../../shared")
g = os.path.join(shared, "models/smollm2-135m/golden")
ok = True

tok = AutoTokenizer.from_pretrained(d)
lines = [json.loads(l) for l in open(os.path.join(g, "tokens.jsonl"), encoding="utf-8")]
bad = 0
for i, l in enumerate(lines):
    ids = tok.encode(l["text"], add_special_tokens=False)
    back = tok.decode(ids)
    if ids != l["ids"] or back != l["text"]:
        bad += 1
        print(f"tokens line {i + 1}: ids {ids[:8]}... want {l['ids'][:8]}..., decode {back!r}")
print(f"tokenizer ({type(tok).__name__}): {len(lines) - bad}/{len(lines)} lines exact")
ok &= bad == 0

golden = json.load(open(os.path.join(g, "golden.json")))
ids = golden["f16"]["logits"]["ids"]
want = np.fromfile(os.path.join(g, "logits-f16.f32"), dtype="<f4").reshape(len(ids), -1)
model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
with torch.no_grad():
    got = model(torch.tensor([ids])).logits[0].numpy()
md = float(np.abs(got - want).max())
print(f"logits: max |diff| vs golden/logits-f16.f32 {md:.3g}")
ok &= md < 1e-3
sys.exit(0 if ok else 1)
