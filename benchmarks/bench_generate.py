"""Generation throughput: nanoframe's KV-cache path vs recomputing the context, beside Hugging Face
transformers' GPT2LMHeadModel.generate (use_cache True / False), on the same shape and weights.

    python benchmarks/bench_generate.py                # 256 new tokens, batch 1, greedy
    python benchmarks/bench_generate.py --markdown --repeats 3

Shape (issue 7): 6 layers, 6 heads, C 384, vocab 4096, block_size / n_positions 1024 (so 256 new
tokens never slide the window), random weights (nanoframe's GPT-2 init, copied into the HF model, so
both decode the same greedy tokens up to float rounding), an 8-token prompt, float32. Each variant
runs in its own subprocess (one warmup call, one timed call), the variants alternate over --repeats
rounds, and the median round is reported.

Rows: nanoframe's GPT.generate with and without its KV cache, and HF's generate with and without.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SHAPE = dict(n_layer=6, n_head=6, n_embd=384, vocab_size=4096, block_size=1024)
PROMPT = [[11, 7, 503, 42, 9, 1000, 3, 77]]


def make_nanoframe_model():
    import nanoframe
    from nanoframe.models import GPT, GPTConfig

    nanoframe.manual_seed(0)
    return GPT(GPTConfig(dropout=0.0, **SHAPE)).eval()


# ---- workers -------------------------------------------------------------------------------------
def _timed(fn, repeats):
    fn()                                             # warmup (and the tokens to compare)
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def run_nanoframe(use_cache, new_tokens, repeats):
    model = make_nanoframe_model()
    prompt = np.array(PROMPT)
    sec, out = _timed(lambda: model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache), repeats)
    return sec, out[0, len(PROMPT[0]):].tolist()


def hf_state_dict(model):
    """nanoframe GPT parameters -> GPT2LMHeadModel state dict (Conv1D weights are stored (in, out))."""
    import torch

    sd = {}
    for name, p in model.named_parameters():
        a = p.array
        if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            a = a.T
        sd[name] = torch.from_numpy(np.ascontiguousarray(a))
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    return sd


def run_hf(use_cache, new_tokens, repeats):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    cfg = GPT2Config(vocab_size=SHAPE["vocab_size"], n_positions=SHAPE["block_size"], n_embd=SHAPE["n_embd"],
                     n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], activation_function="gelu_new",
                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    missing, unexpected = model.load_state_dict(hf_state_dict(make_nanoframe_model()), strict=False)
    assert not unexpected and all(k.endswith("attn.bias") or k.endswith("masked_bias") for k in missing), missing
    prompt = torch.tensor(PROMPT)
    mask = torch.ones_like(prompt)

    def gen():
        with torch.no_grad():
            return model.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, use_cache=use_cache, pad_token_id=0)

    sec, out = _timed(gen, repeats)
    return sec, out[0, len(PROMPT[0]):].tolist()


VARIANTS = {  # name -> (framework, use_cache)
    "nanoframe cached": ("nanoframe", True),
    "nanoframe uncached": ("nanoframe", False),
    "hf cached": ("hf", True),
    "hf uncached": ("hf", False),
}


def worker(variant, new_tokens, repeats):
    fw, use_cache = VARIANTS[variant]
    if fw == "nanoframe":
        sec, toks = run_nanoframe(use_cache, new_tokens, repeats)
    else:
        sec, toks = run_hf(use_cache, new_tokens, repeats)
    print(json.dumps({"sec": sec, "tokens": toks}))


def measure(variant, new_tokens, repeats, threads):
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--new-tokens", str(new_tokens),
           "--repeats", str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        if variant.startswith("hf") and ("No module named" in res.stderr):
            return None
        raise RuntimeError(f"{variant} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(r, n):
    def tps(key):
        return n / r[key]["sec"] if r.get(key) else None

    def fmt(x, spec=",.1f"):
        return "-" if x is None else format(x, spec)

    def ratio(a, b):
        return None if a is None or b is None else a / b

    nf_c, nf_u = tps("nanoframe cached"), tps("nanoframe uncached")
    hf_c, hf_u = tps("hf cached"), tps("hf uncached")
    lines = [
        f"| batch 1, greedy, {n} new tokens | KV cache tok/s | no cache tok/s | cache speed-up | KV cache vs HF |",
        "|---|---:|---:|---:|---:|",
        f"| nanoframe GPT.generate | {fmt(nf_c)} | {fmt(nf_u)} | "
        f"{fmt(ratio(nf_c, nf_u), '.1f')}x | {fmt(ratio(nf_c, hf_c), '.2f')}x |",
        f"| HF transformers GPT2LMHeadModel.generate | {fmt(hf_c)} | {fmt(hf_u)} | {fmt(ratio(hf_c, hf_u), '.1f')}x | 1.00x |",
        f"| ratio nanoframe / HF (no cache) | | {fmt(ratio(nf_u, hf_u), '.2f')} | | |",
    ]
    if r.get("hf cached") and r.get("nanoframe cached"):
        a, b = r["nanoframe cached"]["tokens"], r["hf cached"]["tokens"]
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
        lines.append("")
        lines.append(f"Greedy tokens, nanoframe vs HF (same weights): {same} of {len(a)} identical before the first "
                     "difference (float32 rounding can flip a near-tie).")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds; each runs every variant once in a fresh process (median over rounds)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for every variant (default: each library's own default)")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.new_tokens, args.repeats)
    runs = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):            # alternate the variants, so that load changes hit all alike
        for variant in VARIANTS:
            r = measure(variant, args.new_tokens, 1, args.threads)
            if r:
                runs[variant].append(r)
    results = {v: sorted(rs, key=lambda r: r["sec"])[len(rs) // 2] if rs else None for v, rs in runs.items()}
    if not args.markdown:
        for variant, r in results.items():
            msg = f"{args.new_tokens / r['sec']:,.1f} tok/s" if r else "not installed"
            print(f"{variant}: {msg}", file=sys.stderr)
    print(table(results, args.new_tokens))
    threads = f"{args.threads} (OPENBLAS/OMP_NUM_THREADS)" if args.threads else "library defaults"
    print(f"\nshape: {SHAPE}, prompt {len(PROMPT[0])} tokens; threads: {threads}; median of {args.repeats} "
          "rounds, each variant once per round in a fresh process after one warmup call.")


if __name__ == "__main__":
    main()
