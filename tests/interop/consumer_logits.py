#!/usr/bin/env python3
"""Load one ptqc export with its real consumer on the CPU and compare its
next-token logits with ptqc's own (never run by make check).

usage: consumer_logits.py KIND DIR IDS.txt REF.f32
  KIND     compressed-tensors | gptq | awq | gguf  (gguf: DIR is the .gguf file)
  DIR      the `ptqc export` / `ptqc compile --export` output
  IDS.txt  one sequence of token ids per line (what ptq_logits read)
  REF.f32  float32 [T, vocab] rows per line from tests/interop/ptq_logits
           on the bundle (ptqc's CPU reference runtime, the one of ptqc eval)

Prints one JSON line: kind, versions, max |diff|, max |diff| / max |ref|,
top-1 agreement, and 'ok' against the tolerance given in TOL (env, default
1e-3 relative).  Exit 0 ok, 1 over tolerance, 3 the consumer cannot load it.
"""
import json, os, sys, time

import numpy as np
import torch

kind, d, ids_path, ref_path = sys.argv[1:5]
tol = float(os.environ.get("TOL", "1e-3"))
seqs = [[int(x) for x in l.split()] for l in open(ids_path) if l.strip()]
ref = np.fromfile(ref_path, dtype="<f4")

import transformers
versions = {"torch": torch.__version__, "transformers": transformers.__version__}


def version_of(mod):
    from importlib import metadata
    try:
        __import__(mod)
        versions[mod] = metadata.version(mod.replace("_", "-"))
    except Exception as ex:  # recorded, not fatal here
        versions[mod] = "absent (%s: %s)" % (type(ex).__name__, ex)


def load():
    from transformers import AutoModelForCausalLM
    if kind == "compressed-tensors":
        version_of("compressed_tensors")
        # the checkpoint stays compressed (run_compressed would need vLLM
        # kernels); transformers decompresses to float32 on load
        from transformers import CompressedTensorsConfig
        # DTYPE=float16: the same weights computed in float16, the control
        # for the GPTQ/AWQ integrations' float16 compute
        dt = getattr(torch, os.environ.get("DTYPE", "float32"))
        return AutoModelForCausalLM.from_pretrained(
            d, dtype=dt,
            quantization_config=CompressedTensorsConfig(run_compressed=False))
    if kind in ("gptq", "awq"):
        version_of("gptqmodel"), version_of("optimum")
        # float16 by default (the integrations' dtype); DTYPE=float32 to try
        dt = getattr(torch, os.environ.get("DTYPE", "float16"))
        return AutoModelForCausalLM.from_pretrained(d, dtype=dt, device_map="cpu")
    if kind == "gguf":
        version_of("gguf")
        return AutoModelForCausalLM.from_pretrained(
            os.path.dirname(d) or ".", gguf_file=os.path.basename(d), dtype=torch.float32)
    raise SystemExit("unknown kind " + kind)


t0 = time.time()
try:
    model = load()
except Exception as ex:
    print(json.dumps({"kind": kind, "versions": versions, "load_error":
                      "%s: %s" % (type(ex).__name__, str(ex).splitlines()[0][:400])}))
    sys.exit(3)
model.eval()
maxd = maxr = 0.0
agree = total = 0
off = 0
with torch.no_grad():
    for s in seqs:
        out = model(torch.tensor([s])).logits[0].float().numpy()
        T, V = out.shape
        r = ref[off:off + T * V].reshape(T, V)
        off += T * V
        maxd = max(maxd, float(np.abs(out - r).max()))
        maxr = max(maxr, float(np.abs(r).max()))
        agree += int((out.argmax(1) == r.argmax(1)).sum())
        total += T
assert off == ref.size, "REF.f32 has %d floats, the sequences %d" % (ref.size, off)
rel = maxd / maxr
res = {"kind": kind, "versions": versions, "dtype": str(next(model.parameters()).dtype),
       "positions": total, "max_abs_diff": maxd, "max_rel_diff": rel,
       "top1_agree": agree / total, "tol_rel": tol, "ok": rel <= tol,
       "seconds": round(time.time() - t0, 1)}
print(json.dumps(res))
sys.exit(0 if res["ok"] else 1)
