"""Generation throughput: nanoframe's KV-cache path vs recomputing the context, beside Hugging Face
transformers' generate (use_cache True / False), on the same shape and weights.

    python benchmarks/bench_generate.py                # both models, 256 new tokens, batch 1, greedy
    python benchmarks/bench_generate.py --model llama --markdown --repeats 3

Models: gpt2 (issue 7): 6 layers, 6 heads, C 384, vocab 4096, block_size / n_positions 1024 (so 256
new tokens never slide the window), against GPT2LMHeadModel. llama (issue 15): the same size as a
Llama-style decoder with grouped-query attention (2 K/V heads for 6 query heads, RoPE, RMSNorm,
SwiGLU hidden 1024), against LlamaForCausalLM. Random weights (nanoframe's init, copied into the HF
model through to_hf's tensors, so both decode the same greedy tokens up to float rounding), an
8-token prompt, float32. Each variant runs in its own subprocess (one warmup call, one timed call),
the variants alternate over --repeats rounds, and the median round is reported.

Rows: nanoframe's GPT.generate with and without its KV cache, and HF's generate with and without;
for llama also the KV cache's bytes after the last token: nanoframe's (only the K/V heads, allocated
for prompt + new tokens), the same model with multi-head attention, and HF's DynamicCache.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SHAPE = dict(n_layer=6, n_head=6, n_embd=384, vocab_size=4096, block_size=1024)
LLAMA = dict(n_kv_head=2, positions="rope", norm="rmsnorm", mlp="swiglu", mlp_hidden=1024, qkv_proj="split", bias=False)
PROMPT = [[11, 7, 503, 42, 9, 1000, 3, 77]]
MODEL = "gpt2"   # set by --model in each worker


def make_nanoframe_model(**changes):
    import nanoframe
    from nanoframe.models import GPT, GPTConfig

    nanoframe.manual_seed(0)
    arch = LLAMA if MODEL == "llama" else {}
    return GPT(GPTConfig(dropout=0.0, **SHAPE, **{**arch, **changes})).eval()


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
    return sec, out[0, len(PROMPT[0]):].tolist(), cache_bytes(model.config, len(PROMPT[0]) + new_tokens)


def cache_bytes(config, positions):
    """Bytes of the KVCache that generate allocates for `positions` (prompt + new tokens)."""
    from nanoframe.models.generate import KVCache

    return KVCache(config, 1, np.float32, capacity=min(positions, config.block_size)).nbytes


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
    import transformers
    from transformers.utils import logging

    logging.set_verbosity_error()
    ours = make_nanoframe_model()
    if MODEL == "llama":
        from nanoframe.models.hf import config_to_hf, hf_tensors

        cfg = {k: v for k, v in config_to_hf(ours.config).items() if k not in ("architectures", "model_type")}
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg, bos_token_id=0, eos_token_id=0,
                                                                       pad_token_id=0)).eval()
        sd = {k: torch.from_numpy(v) for k, v in hf_tensors(ours).items()}
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and not missing, (missing, unexpected)
    else:
        cfg = transformers.GPT2Config(vocab_size=SHAPE["vocab_size"], n_positions=SHAPE["block_size"],
                                      n_embd=SHAPE["n_embd"], n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"],
                                      activation_function="gelu_new", bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = transformers.GPT2LMHeadModel(cfg).eval()
        missing, unexpected = model.load_state_dict(hf_state_dict(ours), strict=False)
        assert not unexpected and all(k.endswith("attn.bias") or k.endswith("masked_bias") for k in missing), missing
    prompt = torch.tensor(PROMPT)
    mask = torch.ones_like(prompt)

    def gen():
        with torch.no_grad():
            return model.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, use_cache=use_cache, pad_token_id=0, return_dict_in_generate=True)

    sec, out = _timed(gen, repeats)
    cache = getattr(out, "past_key_values", None)
    nbytes = None
    if use_cache and cache is not None:
        nbytes = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return sec, out.sequences[0, len(PROMPT[0]):].tolist(), nbytes


VARIANTS = {  # name -> (framework, use_cache)
    "nanoframe cached": ("nanoframe", True),
    "nanoframe uncached": ("nanoframe", False),
    "hf cached": ("hf", True),
    "hf uncached": ("hf", False),
}


def worker(variant, new_tokens, repeats):
    fw, use_cache = VARIANTS[variant]
    if fw == "nanoframe":
        sec, toks, nbytes = run_nanoframe(use_cache, new_tokens, repeats)
    else:
        sec, toks, nbytes = run_hf(use_cache, new_tokens, repeats)
    print(json.dumps({"sec": sec, "tokens": toks, "cache_bytes": nbytes if use_cache else None}))


def measure(model, variant, new_tokens, repeats, threads):
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--model", model,
           "--new-tokens", str(new_tokens), "--repeats", str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        if variant.startswith("hf") and ("No module named" in res.stderr):
            return None
        raise RuntimeError(f"{variant} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(model, r, n):
    def tps(key):
        return n / r[key]["sec"] if r.get(key) else None

    def fmt(x, spec=",.1f"):
        return "-" if x is None else format(x, spec)

    def ratio(a, b):
        return None if a is None or b is None else a / b

    hf_name = "LlamaForCausalLM" if model == "llama" else "GPT2LMHeadModel"
    nf_c, nf_u = tps("nanoframe cached"), tps("nanoframe uncached")
    hf_c, hf_u = tps("hf cached"), tps("hf uncached")
    lines = [
        f"| {model}: batch 1, greedy, {n} new tokens | KV cache tok/s | no cache tok/s | cache speed-up | KV cache vs HF |",
        "|---|---:|---:|---:|---:|",
        f"| nanoframe GPT.generate | {fmt(nf_c)} | {fmt(nf_u)} | "
        f"{fmt(ratio(nf_c, nf_u), '.1f')}x | {fmt(ratio(nf_c, hf_c), '.2f')}x |",
        f"| HF transformers {hf_name}.generate | {fmt(hf_c)} | {fmt(hf_u)} | {fmt(ratio(hf_c, hf_u), '.1f')}x | 1.00x |",
        f"| ratio nanoframe / HF (no cache) | | {fmt(ratio(nf_u, hf_u), '.2f')} | | |",
    ]
    if r.get("hf cached") and r.get("nanoframe cached"):
        a, b = r["nanoframe cached"]["tokens"], r["hf cached"]["tokens"]
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
        lines.append("")
        lines.append(f"Greedy tokens, nanoframe vs HF (same weights): {same} of {len(a)} identical before the first "
                     "difference (float32 rounding can flip a near-tie).")
    if model == "llama" and r.get("nanoframe cached"):
        global MODEL
        MODEL = "llama"
        mha = cache_bytes(make_nanoframe_model(n_kv_head=0).config, len(PROMPT[0]) + n)
        hf_bytes = (r.get("hf cached") or {}).get("cache_bytes")
        lines.append(f"KV cache after {len(PROMPT[0])} + {n} positions: nanoframe {r['nanoframe cached']['cache_bytes'] / 2**20:.2f} "
                     f"MiB (2 K/V heads), {mha / 2**20:.2f} MiB for the same model with 6 K/V heads; HF DynamicCache "
                     + ("-" if hf_bytes is None else f"{hf_bytes / 2**20:.2f} MiB") + ".")
    return "\n".join(lines)


def main():
    global MODEL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="all", choices=["gpt2", "llama", "all"])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds; each runs every variant once in a fresh process (median over rounds)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for every variant (default: each library's own default)")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        MODEL = args.model
        return worker(args.worker, args.new_tokens, args.repeats)
    load = os.getloadavg()
    for model in (["gpt2", "llama"] if args.model == "all" else [args.model]):
        runs = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):            # alternate the variants, so that load changes hit all alike
            for variant in VARIANTS:
                r = measure(model, variant, args.new_tokens, 1, args.threads)
                if r:
                    runs[variant].append(r)
        results = {v: sorted(rs, key=lambda r: r["sec"])[len(rs) // 2] if rs else None for v, rs in runs.items()}
        if not args.markdown:
            for variant, r in results.items():
                msg = f"{args.new_tokens / r['sec']:,.1f} tok/s" if r else "not installed"
                spread = ", ".join(f"{args.new_tokens / x['sec']:,.1f}" for x in runs[variant])
                print(f"{model} {variant}: {msg} (rounds: {spread})", file=sys.stderr)
        print(table(model, results, args.new_tokens) + "\n")
    threads = f"{args.threads} (OPENBLAS/OMP_NUM_THREADS)" if args.threads else "library defaults"
    print(f"shape: {SHAPE} (llama: {LLAMA}), prompt {len(PROMPT[0])} tokens; threads: {threads}; median of "
          f"{args.repeats} rounds, each variant once per round in a fresh process after one warmup call; load "
          f"average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end.")


if __name__ == "__main__":
    main()
