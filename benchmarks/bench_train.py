"""Training throughput: nanoframe beside PyTorch (CPU) on the same GPT shapes.

    python benchmarks/bench_train.py --config tiny        # or bpe, small, llama, all
    python benchmarks/bench_train.py --config all --markdown
    python benchmarks/bench_train.py --config tiny --baseline /path/to/older/checkout
    python benchmarks/bench_train.py --config tiny --same-process 1

Each framework runs in its own fresh subprocess (clean peak-memory numbers, no thread-pool
interference between the two) for --steps timed training steps after warmup: forward, backward,
clip, AdamW, zero_grad. The runs alternate, reversed every other round, so that a change in the
machine's load hits both alike; the median run is kept. Reported per framework: wall-clock
tokens/s and CPU time per step (all threads of the process); the "matmul floor" (the step's matrix
multiplies alone through NumPy's BLAS) and nanoframe's share of it; MFU (achieved FLOP/s over
this machine's measured float32 GEMM peak); the load average over the runs.

--baseline DIR runs a second nanoframe (the package in DIR, e.g. the commit before a change) in
the same alternation. --same-process N also runs both frameworks inside one process, alternating
blocks of N steps, to show how that changes the ratio (benchmarks/RESULTS.md explains why).

The llama config is the bpe shape as a Llama-style decoder (RMSNorm, RoPE, 2 of 4 K/V heads, SwiGLU
MLP of hidden size 784, no biases, tied embeddings: nanoframe's `llama` preset), against the same
architecture in PyTorch (benchmarks/torch_gpt.py TorchLlama: torch.nn.RMSNorm, SDPA with
enable_gqa, F.silu(gate) * up).
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


def _timed_steps(step, make_batch, steps, warmup):
    """Run warmup + steps training steps; {"wall": [...], "cpu": [...]} seconds of the timed ones.
    CPU time is the whole process's (every thread), from time.process_time."""
    wall, cpu = [], []
    for i in range(warmup + steps):
        x, y = make_batch()
        t, c = time.perf_counter(), time.process_time()
        step(x, y)
        if i >= warmup:
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"wall": wall, "cpu": cpu}


def nanoframe_step(name):
    """(step(x, y), make_batch()) for nanoframe: forward, backward, clip, AdamW, zero_grad."""
    import nanoframe
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.utils import clip_grad_norm_

    L, nh, C, T, B, V = CONFIGS[name]
    if hasattr(nanoframe, "runtime"):   # opt-in since import is inert (a --baseline from before tuned at import)
        nanoframe.runtime.tune_malloc()  # as `nanoframe train` and Trainer.train() do
    nanoframe.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C, dropout=0.0,
                          **LLAMA.get(name, {})))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = [p for g in opt.param_groups for p in g["params"]]
    rng = np.random.default_rng(0)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()

    return step, lambda: (rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)))


def torch_step(name):
    """(step(x, y), make_batch()) for PyTorch, the same loop on benchmarks/torch_gpt.py's model."""
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

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def make_batch():
        return torch.from_numpy(rng.integers(0, V, (B, T))), torch.from_numpy(rng.integers(0, V, (B, T)))

    return step, make_batch


def run_nanoframe(name, steps, warmup):
    return _timed_steps(*nanoframe_step(name), steps, warmup)


def run_torch(name, steps, warmup):
    return _timed_steps(*torch_step(name), steps, warmup)


def worker(framework, config, steps, warmup):
    load = os.getloadavg()[0]
    run = run_torch if framework == "torch" else run_nanoframe
    times = run(config, steps, warmup)
    out = {"step_s": float(np.median(times["wall"])), "cpu_s": float(np.median(times["cpu"])),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "load": [load, os.getloadavg()[0]]}
    if framework == "nanoframe":
        out["floor_s"] = matmul_floor(config)
        out["peak_flops"] = gemm_peak()
    print(json.dumps(out))


def same_process_worker(config, steps, warmup, block):
    """Both frameworks in ONE process, alternating blocks of `block` steps (the way the issue's
    interleaved figures were taken): prints each one's median step time and CPU time."""
    loops = {"nanoframe": nanoframe_step(config), "torch": torch_step(config)}
    times = {fw: {"wall": [], "cpu": []} for fw in loops}
    for fw, (step, make_batch) in loops.items():
        _timed_steps(step, make_batch, 0, warmup)
    load = os.getloadavg()[0]
    for _ in range(-(-steps // block)):
        for fw, (step, make_batch) in loops.items():
            t = _timed_steps(step, make_batch, block, 0)
            times[fw]["wall"] += t["wall"]
            times[fw]["cpu"] += t["cpu"]
    print(json.dumps({fw: {"step_s": float(np.median(t["wall"])), "cpu_s": float(np.median(t["cpu"])),
                           "load": [load, os.getloadavg()[0]]} for fw, t in times.items()}))


def thread_env(threads, pythonpath=None):
    """The environment for a worker: BLAS / OpenMP thread counts pinned to `threads` if given, for
    both frameworks alike (NumPy's OpenBLAS and torch's OpenMP pool); None keeps each default.
    pythonpath, if given, is put first on PYTHONPATH (a baseline nanoframe checkout)."""
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def measure(framework, config, steps, warmup, threads=None, baseline=None, same_process=0):
    """One fresh worker process; its JSON result, or None when torch is not installed."""
    kind = "baseline" if framework == "baseline" else framework
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "nanoframe" if kind == "baseline" else kind,
           "--config", config, "--steps", str(steps), "--warmup", str(warmup)]
    if same_process:
        cmd += ["--same-process", str(same_process)]
    res = subprocess.run(cmd, capture_output=True, text=True,
                         env=thread_env(threads, baseline if kind == "baseline" else None))
    if res.returncode != 0:
        if "No module named 'torch'" in res.stderr:
            return None
        raise RuntimeError(f"{framework} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median_run(rs, key="step_s"):
    return sorted(rs, key=lambda r: r[key])[len(rs) // 2] if rs else None


def table(rows, baseline=False):
    head = ("| config (L, nh, C, T, B, V) | nanoframe tok/s | PyTorch tok/s | ratio | ratio of CPU time "
            "| matmul floor tok/s | nanoframe of floor | nanoframe MFU | PyTorch MFU "
            "| peak RSS nanoframe / PyTorch (MB) | load |")
    if baseline:
        head += " baseline tok/s | nanoframe / baseline | CPU ms/step nanoframe / baseline |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, nf, pt, base in rows:
        L, nh, C, T, B, V = CONFIGS[name]
        tokens, fpt = B * T, flops_per_token(name)
        nf_tps, floor_tps = tokens / nf["step_s"], tokens / nf["floor_s"]
        peak = nf["peak_flops"]
        loads = [x for r in (nf, pt, base) if r for x in r["load"]]
        if pt:
            pt_tps = tokens / pt["step_s"]
            pt_cols = (f"{pt_tps:,.0f}", f"{nf_tps / pt_tps:.2f}", f"{pt['cpu_s'] / nf['cpu_s']:.2f}",
                       f"{100 * pt_tps * fpt / peak:.1f}%", f"{pt['peak_rss_mb']:,.0f}")
        else:
            pt_cols = ("-",) * 5
        line = (f"| {name} ({L}, {nh}, {C}, {T}, {B}, {V}) | {nf_tps:,.0f} | {pt_cols[0]} | {pt_cols[1]} | "
                f"{pt_cols[2]} | {floor_tps:,.0f} | {100 * nf_tps / floor_tps:.0f}% | "
                f"{100 * nf_tps * fpt / peak:.1f}% | {pt_cols[3]} | {nf['peak_rss_mb']:,.0f} / {pt_cols[4]} | "
                f"{min(loads):.1f}-{max(loads):.1f} |")
        if baseline:
            b_tps = tokens / base["step_s"]
            line += (f" {b_tps:,.0f} | {nf_tps / b_tps:.2f} | "
                     f"{1e3 * nf['cpu_s']:.1f} / {1e3 * base['cpu_s']:.1f} |")
        lines.append(line)
    return "\n".join(lines)


def same_process_table(rows):
    lines = ["| config | separate processes: ratio (CPU-time ratio) | one process, alternating blocks: ratio "
             "(CPU-time ratio) | load |", "|---|---|---|---|"]
    for name, sep_nf, sep_pt, both in rows:
        one_nf, one_pt = both["nanoframe"], both["torch"]
        loads = [x for r in (sep_nf, sep_pt, one_nf) for x in r["load"]]
        lines.append(f"| {name} | {sep_pt['step_s'] / sep_nf['step_s']:.2f} ({sep_pt['cpu_s'] / sep_nf['cpu_s']:.2f}) | "
                     f"{one_pt['step_s'] / one_nf['step_s']:.2f} ({one_pt['cpu_s'] / one_nf['cpu_s']:.2f}) | "
                     f"{min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="runs per framework (alternating); the median is kept")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP threads for both frameworks (default: each library's own default)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the nanoframe found in DIR (e.g. an older checkout) in the same alternation")
    ap.add_argument("--same-process", type=int, default=0, metavar="N",
                    help="also run both frameworks in one process, alternating blocks of N steps, and "
                         "compare that ratio with the separate-process one")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--worker", choices=["nanoframe", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker and args.same_process:
        return same_process_worker(args.config, args.steps, args.warmup, args.same_process)
    if args.worker:
        return worker(args.worker, args.config, args.steps, args.warmup)
    if args.baseline and not os.path.isdir(os.path.join(args.baseline, "nanoframe")):
        ap.error(f"--baseline {args.baseline}: no nanoframe package in that folder")
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    frameworks = ["nanoframe", "torch"] + (["baseline"] if baseline else []) + (["both"] if args.same_process else [])
    rows, same_rows = [], []
    for name in CONFIGS if args.config == "all" else [args.config]:
        runs = {fw: [] for fw in frameworks}
        for r in range(args.repeats):       # alternate, reversed every other round, so load changes hit all alike
            for fw in (frameworks if r % 2 == 0 else frameworks[::-1]):
                if fw == "both":
                    res = measure("torch", name, args.steps, args.warmup, args.threads, same_process=args.same_process)
                else:
                    res = measure(fw, name, args.steps, args.warmup, args.threads, baseline)
                if res:
                    runs[fw].append(res)
                    if not args.markdown:
                        shown = res if fw != "both" else {k: round(v["step_s"] * 1e3, 1) for k, v in res.items()}
                        print(f"{name} round {r} {fw}: {shown.get('step_s', shown)} (load {os.getloadavg()[0]:.2f})",
                              file=sys.stderr)
        results = {fw: _median_run(rs) for fw, rs in runs.items() if fw != "both"}
        if not args.markdown:
            for fw, res in results.items():
                ms = (f"{res['step_s'] * 1000:.1f} ms/step, {res['cpu_s'] * 1000:.1f} ms CPU (median of "
                      f"{len(runs[fw])} runs)" if res else "not installed")
                print(f"{name}: {fw} {ms}", file=sys.stderr)
        rows.append((name, results["nanoframe"], results["torch"], results.get("baseline")))
        if args.same_process and runs["both"] and results["torch"]:
            both = {fw: {"step_s": float(np.median([r[fw]["step_s"] for r in runs["both"]])),
                         "cpu_s": float(np.median([r[fw]["cpu_s"] for r in runs["both"]])),
                         "load": [x for r in runs["both"] for x in r[fw]["load"]]} for fw in ("nanoframe", "torch")}
            same_rows.append((name, results["nanoframe"], results["torch"], both))
    print(table(rows, baseline=bool(baseline)))
    threads = f"{args.threads} (OPENBLAS/OMP_NUM_THREADS)" if args.threads else "library defaults"
    print(f"\nthreads: {threads}; median of {args.repeats} runs per framework, each in its own process, "
          f"{args.steps} steps each after {args.warmup} warmup steps; ratio = nanoframe tok/s / PyTorch tok/s "
          "(wall clock); ratio of CPU time = PyTorch's CPU time per step / nanoframe's (all threads); "
          "load = the 1-minute load average over the runs.")
    if same_rows:
        print("\n" + same_process_table(same_rows))
        print(f"\none process: both models built in one process, alternating blocks of {args.same_process} "
              f"step(s); median of {args.repeats} such processes.")


if __name__ == "__main__":
    main()
