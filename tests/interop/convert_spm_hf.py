#!/usr/bin/env python3
"""The SentencePiece path of `ptqc convert` against transformers (never run by
make check): writes ../shared/models/stories260k as a llama.cpp GGUF with
gguf-py the way llama.cpp's converter does (attn_q/attn_k rows permuted into
the interleaved RoPE order; tokenizer.ggml.model "llama" with pieces, token
types and scores: the shared data has no SentencePiece scores, so a piece
made by merge r scores -r and every other normal piece below all of them, as
tests/check_gguf.c's test_spm_from_gguf does), converts it with the built
ptqc to F16, and loads the result with transformers: logits against
golden/logits.f32 (llama2.c run.c, within 1e-4), every golden/tokens.jsonl
line (with BOS, add_special_tokens=True, and without) encoded and decoded.

usage: python tests/interop/convert_spm_hf.py PTQC [SHARED]"""
import json, os, subprocess, sys, tempfile

import gguf
import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ptqc = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../../../shared")
m = os.path.join(shared, "models/stories260k")
cfg = json.load(open(os.path.join(m, "config.json")))
tj = json.load(open(os.path.join(m, "tokenizer.json"), encoding="utf-8"))
st = load_file(os.path.join(m, "model.safetensors"))

vocab = tj["model"]["vocab"]
V = len(vocab)
pieces = [None] * V
for p, i in vocab.items():
    pieces[i] = p
score = [-1e6 - i for i in range(V)]
for r, mg in enumerate(tj["model"]["merges"]):
    a, b = mg.split(" ") if isinstance(mg, str) else mg
    i = vocab[a + b]
    score[i] = max(score[i], -float(r))
types = [2 if i == 0 else 3 if i < 3 else 6 if pieces[i].startswith("<0x") and len(pieces[i]) == 6 else 1
         for i in range(V)]
score = [0.0 if types[i] != 1 else score[i] for i in range(V)]

H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]


def permute(w, n):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


tmp = tempfile.mkdtemp()
path = os.path.join(tmp, "stories260k.gguf")
w = gguf.GGUFWriter(path, "llama")
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_block_count(cfg["num_hidden_layers"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(H)
w.add_head_count_kv(KV)
w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
w.add_tokenizer_model("llama")
w.add_token_list(pieces)
w.add_token_scores(score)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_add_bos_token(True)
names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
w.add_tensor("token_embd.weight", st["model.embed_tokens.weight"])
for l in range(cfg["num_hidden_layers"]):
    for hf, g in names.items():
        t = st[f"model.layers.{l}.{hf}.weight"]
        if g == "attn_q": t = permute(t, H)
        if g == "attn_k": t = permute(t, KV)
        w.add_tensor(f"blk.{l}.{g}.weight", np.ascontiguousarray(t))
w.add_tensor("output_norm.weight", st["model.norm.weight"])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

out = os.path.join(tmp, "hf")
subprocess.run([ptqc, "convert", path, "-o", out, "--quiet"], check=True)
ok = True
tok = AutoTokenizer.from_pretrained(out)
lines = [json.loads(l) for l in open(os.path.join(m, "golden/tokens.jsonl"), encoding="utf-8")]
bad = 0
for i, l in enumerate(lines):
    a = tok.encode(l["text"], add_special_tokens=False)
    b = tok.encode(l["text"])
    d = tok.decode(a)
    if a != l["ids_no_bos"] or b != l["ids"] or d != l["text"]:
        bad += 1
        print(f"line {i + 1}: {a[:8]} want {l['ids_no_bos'][:8]}; with BOS {b[:3]}; decode {d!r}")
print(f"tokenizer ({type(tok).__name__}): {len(lines) - bad}/{len(lines)} lines exact")
ok &= bad == 0
lj = json.load(open(os.path.join(m, "golden/logits.json")))
want = np.fromfile(os.path.join(m, "golden/logits.f32"), dtype="<f4").reshape(lj["T"], lj["vocab"])
model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
with torch.no_grad():
    got = model(torch.tensor([lj["ids"]])).logits[0].numpy()
md = float(np.abs(got - want).max())
print(f"logits: max |diff| vs golden/logits.f32 {md:.3g}")
ok &= md < 1e-4
sys.exit(0 if ok else 1)
