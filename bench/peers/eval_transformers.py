#!/usr/bin/env python3
"""eval_transformers.py - time Hugging Face transformers on the windows that
`ptqc eval MODEL --text FILE --ctx C` runs (the ptqc-ppl-v1 protocol: BOS +
the whole text tokenized, cut into non-overlapping windows of C tokens, the
tail dropped), on the CPU with the same thread count, for the speed ratio of
bench/RESULTS-decode.md.  Not run by make check or CI.

    /work/venv-peers/bin/python bench/peers/eval_transformers.py \
        --model DIR --text FILE [--ctx 512] [--threads 2] [--reps 3] [--ptqc PTQC]

MODEL is a Hugging Face directory (e.g. `ptqc convert` of the GGUF to F16);
it is loaded in float32 (as ptqc computes).  With --ptqc, `PTQC eval` is
timed on the same text in the same run (whole command, wall time), and the
ratio printed.  Prints the perplexity too, to show both ran the same windows.
"""
import argparse
import json
import math
import statistics
import subprocess
import time


def windows(tok, text, ctx):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    if bos is not None:
        ids = [bos] + ids
    n = len(ids) // ctx
    return [ids[i * ctx:(i + 1) * ctx] for i in range(n)]


def run_hf(model, wins, torch):
    nll, cnt = 0.0, 0
    with torch.inference_mode():
        for w in wins:
            x = torch.tensor([w])
            logits = model(x).logits[0].float()
            lp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= lp.gather(1, x[0, 1:, None]).sum().item()
            cnt += len(w) - 1
    return math.exp(nll / cnt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ptqc")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    text = open(a.text, encoding="utf-8").read()
    wins = windows(tok, text, a.ctx)
    ts, ppl = [], None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        ppl = run_hf(model, wins, torch)
        ts.append(time.perf_counter() - t0)
    th = statistics.median(ts)
    print(f"transformers {torch.__version__}: {len(wins)} windows of {a.ctx} in {th:.2f} s "
          f"(median of {a.reps}, forward only), {a.threads} threads, ppl {ppl:.4f}")
    if a.ptqc:
        tp, out = [], None
        for _ in range(a.reps):
            t0 = time.perf_counter()
            out = subprocess.run([a.ptqc, "eval", a.model, "--text", a.text, "--ctx",
                                  str(a.ctx), "--threads", str(a.threads), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            tp.append(time.perf_counter() - t0)
        j = json.loads(out)
        tq = statistics.median(tp)
        print(f"ptqc eval: {j.get('windows')} windows in {tq:.2f} s (median of {a.reps}, whole "
              f"command), ppl {j.get('ppl', j.get('perplexity'))}; transformers / ptqc = "
              f"{th / tq:.2f}")


if __name__ == "__main__":
    main()
