#!/usr/bin/env python3
"""Is a GPTQ export's difference in transformers the packing or the kernel?
(never run by make check).  Run in a directory holding w4-compressed-tensors/
and w4-gptq/ exported from the same bundle (`ptqc compile ... --export
compressed-tensors --export gptq`), with the venv that has gptqmodel.
Compares gptqmodel's own dequantize_weight() with the compressed-tensors
weights transformers decompresses (exact float32, tests/check_export.c), and
the module's forward with float32 / float16 / bfloat16 matmuls of the same
weights.  Results: bench/RESULTS-interop.md."""
import torch
from transformers import AutoModelForCausalLM, CompressedTensorsConfig
ct = AutoModelForCausalLM.from_pretrained("w4-compressed-tensors", dtype=torch.float32,
        quantization_config=CompressedTensorsConfig(run_compressed=False))
g = AutoModelForCausalLM.from_pretrained("w4-gptq", dtype=torch.float32, device_map="cpu")
torch.manual_seed(0)
for name in ["model.layers.0.self_attn.q_proj", "model.layers.5.mlp.down_proj"]:
    a = ct.get_submodule(name).weight.detach()
    m = g.get_submodule(name)
    w = m.dequantize_weight().detach().float().t()
    print(name, "weights max|diff| (gptq fp16 dequant vs exact)", (w - a).abs().max().item(), "max|w|", a.abs().max().item())
    x = torch.randn(4, a.shape[1])
    y = m(x)
    ref = x @ a.t()
    for dt in (torch.float16, torch.bfloat16):
        r = (x.to(dt) @ a.to(dt).t()).float()
        print("  ", dt, "module vs this-dtype matmul", (y - r).abs().max().item(), "; this-dtype vs fp32", (r - ref).abs().max().item())
    print("   module vs fp32", (y - ref).abs().max().item(), "ref max", ref.abs().max().item())
