"""Training throughput: nanoframe beside PyTorch (CPU) on the same GPT shapes, in one run.

    python benchmarks/bench_train.py --config tiny        # or bpe, small, llama, all

The llama config is the bpe shape as a Llama-style decoder (RMSNorm, RoPE, 2 of 4 K/V heads, SwiGLU
MLP of hidden size 784, no biases, tied embeddings: nanoframe's `llama` preset), against the same
architecture in PyTorch (benchmarks/torch_gpt.py TorchLlama: torch.nn.RMSNorm, SDPA with
enable_gqa, F.silu(gate) * up).
    python benchmarks/bench_train.py --config all --markdown

Each framework runs in its own subprocess (clean peak-memory numbers, no thread-pool interference)
for --steps timed training steps after warmup: forward, backward, clip, AdamW. Also printed: the
"matmul floor" (time of the step's matrix multiplies alone through NumPy's BLAS) and MFU (achieved
FLOP/s over this machine's measured float32 GEMM peak).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CONFIGS = {  # (n_layer, n_head, n_embd, block_size T, batch B, vocab V), as in issue 7
    "tiny": (4, 4, 128, 64, 12, 65),
    "bpe": (4, 4, 256, 128, 8, 4096),
    "small": (6, 6, 384, 256, 8, 65),
    "llama": (4, 4, 256, 128, 8, 4096),
}
# Llama-style configs: their GPTConfig architecture fields (the `llama` preset's)
LLAMA = {"llama": dict(n_kv_head=2, mlp_hidden=784, positions="rope", norm="rmsnorm", mlp="swiglu",
                       qkv_proj="split", bias=False)}


def layer_gemms(name):
    """(in, out) of each Linear in one block of config `name`."""
    L, nh, C, T, B, V = CONFIGS[name]
    if name not in LLAMA:
        return [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]      # c_attn, attn c_proj, c_fc, mlp c_proj
    kv, H = LLAMA[name]["n_kv_head"] * (C // nh), LLAMA[name]["mlp_hidden"]
    return [(C, C), (C, kv), (C, kv), (C, C), (C, H), (C, H), (H, C)]   # q, k, v, o, gate, up, down


def flops_per_token(name):
    L, nh, C, T, B, V = CONFIGS[name]
    n_params = L * sum(i * o for i, o in layer_gemms(name)) + V * C   # matmul weights (biases, norms negligible)
    return 6 * n_params + 12 * L * T * C


def gemm_peak(n=2048):
    """This machine's float32 GEMM FLOP/s (best of 5 n^3 products; 2048 as the trainer's MFU probe:
    1024^3 read low on a busy machine)."""
    a = np.ones((n, n), np.float32)
    a @ a
    return 2 * n**3 / min(_timeit(lambda: a @ a) for _ in range(5))


def _timeit(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_floor(name, repeats=5):
    """Seconds per step for the forward and backward matmuls alone (3 GEMMs per forward GEMM)."""
    L, nh, C, T, B, V = CONFIGS[name]
    rng = np.random.default_rng(0)
    N, hs = B * T, C // nh
    mats = []
    for k, n in layer_gemms(name):
        mats.append((rng.standard_normal((N, k), np.float32), rng.standard_normal((k, n), np.float32), L))
    mats.append((rng.standard_normal((N, C), np.float32), rng.standard_normal((C, V), np.float32), 1))
    q = rng.standard_normal((B * nh, T, hs), np.float32)
    kt = rng.standard_normal((B * nh, hs, T), np.float32)
    att = rng.standard_normal((B * nh, T, T), np.float32)

    def step():
        for x, w, times in mats:
            for _ in range(times):
                y = x @ w
                x @ w  # stand-ins for dX = dY W^T and dW = X^T dY: same FLOPs
                x @ w
        for _ in range(L):
            for _ in range(3):  # q k^T and att v, forward and two backward products each
                q @ kt
                att @ q
        return y

    step()
    return min(_timeit(step) for _ in range(repeats))


def run_nanoframe(name, steps, warmup):
    import nanoframe
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.utils import clip_grad_norm_

    L, nh, C, T, B, V = CONFIGS[name]
    nanoframe.runtime.tune_malloc()   # as `nanoframe train` and Trainer.train() do (opt-in since import is inert)
    nanoframe.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C, dropout=0.0,
                          **LLAMA.get(name, {})))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = [p for g in opt.param_groups for p in g["params"]]
    rng = np.random.default_rng(0)
    times = []
    for i in range(warmup + steps):
        x = rng.integers(0, V, (B, T))
        y = rng.integers(0, V, (B, T))
        t = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def run_torch(name, steps, warmup):
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_gpt import TorchGPT, TorchLlama

    L, nh, C, T, B, V = CONFIGS[name]
    torch.manual_seed(0)
    if name in LLAMA:
        model = TorchLlama(V, T, L, nh, C, LLAMA[name]["n_kv_head"], LLAMA[name]["mlp_hidden"])
    else:
        model = TorchGPT(V, T, L, nh, C)
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(0)
    times = []
    for i in range(warmup + steps):
        x = torch.from_numpy(rng.integers(0, V, (B, T)))
        y = torch.from_numpy(rng.integers(0, V, (B, T)))
        t = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def worker(framework, config, steps, warmup):
    if framework == "nanoframe":
        times = run_nanoframe(config, steps, warmup)
    else:
        times = run_torch(config, steps, warmup)
    out = {"step_s": float(np.median(times)),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if framework == "nanoframe":
        out["floor_s"] = matmul_floor(config)
        out["peak_flops"] = gemm_peak()
    print(json.dumps(out))


def thread_env(threads):
    """The environment for a worker: BLAS / OpenMP thread counts pinned to `threads` if given, for
    both frameworks alike (NumPy's OpenBLAS and torch's OpenMP pool); None keeps each default."""
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def measure(framework, config, steps, warmup, threads=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--config", config,
           "--steps", str(steps), "--warmup", str(warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads))
    if res.returncode != 0:
        if framework == "torch" and "No module named 'torch'" in res.stderr:
            return None
        raise RuntimeError(f"{framework} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows):
    head = ("| config (L, nh, C, T, B, V) | nanoframe tok/s | PyTorch tok/s | ratio | matmul floor tok/s "
            "| nanoframe MFU | PyTorch MFU | peak RSS nanoframe / PyTorch (MB) |")
    lines = [head, "|" + "---|" * 8]
    for name, nf, pt in rows:
        L, nh, C, T, B, V = CONFIGS[name]
        tokens, fpt = B * T, flops_per_token(name)
        nf_tps, floor_tps = tokens / nf["step_s"], tokens / nf["floor_s"]
        peak = nf["peak_flops"]
        if pt:
            pt_tps = tokens / pt["step_s"]
            pt_cols = (f"{pt_tps:,.0f}", f"{nf_tps / pt_tps:.2f}", f"{100 * pt_tps * fpt / peak:.1f}%",
                       f"{pt['peak_rss_mb']:,.0f}")
        else:
            pt_cols = ("-", "-", "-", "-")
        lines.append(
            f"| {name} ({L}, {nh}, {C}, {T}, {B}, {V}) | {nf_tps:,.0f} | {pt_cols[0]} | {pt_cols[1]} | "
            f"{floor_tps:,.0f} | {100 * nf_tps * fpt / peak:.1f}% | {pt_cols[2]} | "
            f"{nf['peak_rss_mb']:,.0f} / {pt_cols[3]} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="runs per framework (alternating); the median is kept")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for both frameworks (default: each library's own default)")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--worker", choices=["nanoframe", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.config, args.steps, args.warmup)
    rows = []
    for name in CONFIGS if args.config == "all" else [args.config]:
        runs = {"nanoframe": [], "torch": []}
        for _ in range(args.repeats):        # alternate the two, so that load changes hit both alike
            for fw in runs:
                r = measure(fw, name, args.steps, args.warmup, args.threads)
                if r:
                    runs[fw].append(r)
        results = {fw: sorted(rs, key=lambda r: r["step_s"])[len(rs) // 2] if rs else None
                   for fw, rs in runs.items()}
        if not args.markdown:
            for fw, r in results.items():
                ms = f"{r['step_s'] * 1000:.1f} ms/step (median of {len(runs[fw])} runs)" if r else "not installed"
                print(f"{name}: {fw} {ms}", file=sys.stderr)
        rows.append((name, results["nanoframe"], results["torch"]))
    print(table(rows))
    threads = f"{args.threads} (OPENBLAS/OMP_NUM_THREADS)" if args.threads else "library defaults"
    print(f"\nthreads: {threads}; median of {args.repeats} runs per framework, {args.steps} steps each after "
          f"{args.warmup} warmup steps.")


if __name__ == "__main__":
    main()
