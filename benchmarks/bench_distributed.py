"""Data parallelism on one machine: 1 process x T threads against N MPI ranks x 1 thread, same global batch.

    python benchmarks/bench_distributed.py                       # bpe and small, 1x2 vs 2x1, 3 repeats
    python benchmarks/bench_distributed.py --config small --repeats 5 --markdown

Every mode trains the issue-7 GPT shapes (benchmarks/bench_train.py's CONFIGS) on random tokens:
forward, backward, clip, AdamW, over a global batch of B sequences. "1 x 2" is one process with
nanoframe.set_num_threads(2); "2 x 1" is `mpiexec -n 2`, each rank one thread and B/2 rows,
gradients averaged by DistributedDataParallel: in 1 MB buckets, each all-reduce started from the
backward hooks as soon as its gradients are complete (overlap), or in one bucket sent after the
whole backward (no overlap). Reported per mode: tokens/s of the job (median step), peak RSS of
each process, and for MPI jobs how long a step waits after its backward (the all-reduce still in
flight plus any wait for the slower rank) and the Allreduce time and bus bandwidth of a float32
buffer of the model's gradient size.

`--collectives` times the ways of all-reducing a float32 buffer over 2 ranks (4 KB to the small
model's 43 MB): MPI's blocking Allreduce, and the polled Iallreduce (in place, and out of place
as nanoframe.distributed.all_reduce does it), which is why nanoframe polls and reduces out of place.

The machine is shared: the 1-minute load average is recorded before every run, modes alternate so
load changes hit both alike, and the table gives the median with the range over the repeats.
Needs the distributed extra (mpi4py + an mpiexec); run as root it sets Open MPI's root variables.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_train import CONFIGS  # noqa: E402  (the same shapes as the training benchmark)


def train_steps(config, steps, warmup, bucket_mb):
    """Run the timed steps in this process (a rank when under mpiexec); returns a result dict."""
    import nanoframe
    from nanoframe import distributed as dist
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.utils import clip_grad_norm_

    if dist.launched_by_mpiexec():
        dist.init()                       # one thread per rank when the ranks fill the cores
    rank, world = dist.get_rank(), dist.get_world_size()
    L, nh, C, T, B, V = CONFIGS[config]
    nanoframe.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C, dropout=0.0))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_mb)
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = [p for g in opt.param_groups for p in g["params"]]
    waited = []
    real_wait = dist._wait

    def timed_wait(requests, what, timeout="default"):
        t = time.perf_counter()
        real_wait(requests, what, timeout)
        if what == "the gradient all-reduce":
            waited.append(time.perf_counter() - t)
    dist._wait = timed_wait

    rng = np.random.default_rng(0)
    b = B // world
    times = []
    for i in range(warmup + steps):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))      # the global batch
        x, y = x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]      # this rank's rows
        dist.barrier()
        t = time.perf_counter()
        _, loss = ddp(x, y)
        loss.backward()
        clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    dist._wait = real_wait
    step = np.array([float(np.median(times))])
    dist.all_reduce(step, "max")                  # the job is as fast as its slowest rank
    out = {"step_s": float(step[0]), "threads": nanoframe.get_num_threads(), "world": world, "buckets": len(ddp._buckets),
           "rss_mb": dist.all_gather_json(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if world > 1:
        out["exposed_comm_s"] = float(np.median(waited[-steps:]))
        out.update(allreduce_bandwidth(sum(p.array.size for p in params)))
    if rank == 0:
        print(json.dumps(out))


def allreduce_bandwidth(n_floats, repeats=10):
    """Median seconds of a float32 Allreduce of n_floats, algorithm and bus bandwidth (GB/s)."""
    from nanoframe import distributed as dist

    buf = np.ones(n_floats, np.float32)
    dist.all_reduce(buf)
    times = []
    for _ in range(repeats):
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(buf)
        times.append(time.perf_counter() - t)
    world, t = dist.get_world_size(), float(np.median(times))
    return {"allreduce_s": t, "grad_mb": buf.nbytes / 1e6, "algbw_gbs": buf.nbytes / t / 1e9,
            "busbw_gbs": 2 * (world - 1) / world * buf.nbytes / t / 1e9}


def collectives(repeats=7):
    """Rank 0 prints median ms per float32 all-reduce size and method (run under mpiexec)."""
    from nanoframe import distributed as dist

    dist.init()
    comm, MPI = dist._comm, dist._MPI
    rows = []
    for nbytes in (4 << 10, 1 << 20, 17 << 20, 43 << 20):
        a = np.ones(nbytes // 4, np.float32)
        b = np.empty_like(a)
        ways = {"blocking Allreduce (in place)": lambda: comm.Allreduce(MPI.IN_PLACE, a),
                "polled Iallreduce, in place": lambda: dist._wait([comm.Iallreduce(MPI.IN_PLACE, a)], "bench"),
                "polled Iallreduce, out of place (all_reduce)": lambda: dist._wait([comm.Iallreduce(a, b)], "bench")}
        row = {"bytes": nbytes}
        for name, fn in ways.items():
            fn()
            times = []
            for _ in range(repeats):
                dist.barrier()
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            row[name] = float(np.median(times))
        rows.append(row)
    if dist.get_rank() == 0:
        print(json.dumps(rows))


def collectives_table(rows, load):
    names = [k for k in rows[0] if k != "bytes"]
    lines = ["| float32 buffer | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for r in rows:
        size = f"{r['bytes'] >> 10} KB" if r["bytes"] < 1 << 20 else f"{r['bytes'] >> 20} MB"
        lines.append(f"| {size} | " + " | ".join(f"{1e3 * r[n]:.2f} ms" for n in names) + " |")
    return "\n".join(lines) + f"\n\n2 ranks (mpiexec --oversubscribe), median of 7; load average {load:.1f} at the start."


def _env(threads):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def measure(config, ranks, threads, bucket_mb, steps, warmup):
    """One run: `ranks` processes (mpiexec when > 1) of `threads` threads each."""
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", config,
              "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads), "--bucket-mb", str(bucket_mb)]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit("no mpiexec: pip install 'nanoframe[distributed]'")
        worker = [mpiexec, "-n", str(ranks), "--oversubscribe", "--bind-to", "none"] + worker
    load = os.getloadavg()[0]
    res = subprocess.run(worker, capture_output=True, text=True, env=_env(threads))
    if res.returncode != 0:
        raise RuntimeError(f"worker failed:\n{res.stderr[-3000:]}")
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "load": load}


def table(results, configs, modes):
    lines = ["| config (L, nh, C, T, B, V) | processes x threads, buckets | tokens/s median (range) | vs 1 process "
             "| peak RSS per process (MB) | wait after backward per step | Allreduce of the gradient (MB, ms, bus GB/s) "
             "| load avg (1 min) at each run |",
             "|" + "---|" * 8]
    for config in configs:
        L, nh, C, T, B, V = CONFIGS[config]
        base = None
        for ranks, threads, bucket_mb in modes:
            runs = results[(config, ranks, threads, bucket_mb)]
            tps = [B * T / r["step_s"] for r in runs]
            med = statistics.median(tps)
            base = base or med
            rss = " / ".join(f"{m:,.0f}" for m in runs[0]["rss_mb"])
            comm = (f"{1e3 * statistics.median(r['exposed_comm_s'] for r in runs):.1f} ms "
                    f"({100 * statistics.median(r['exposed_comm_s'] / r['step_s'] for r in runs):.1f}%)"
                    if ranks > 1 else "-")
            bw = (f"{runs[0]['grad_mb']:.1f} MB, {1e3 * statistics.median(r['allreduce_s'] for r in runs):.1f} ms, "
                  f"{statistics.median(r['busbw_gbs'] for r in runs):.2f}" if ranks > 1 else "-")
            loads = ", ".join(f"{r['load']:.1f}" for r in runs)
            how = f"{ranks} x {threads}" + (f", {runs[0]['buckets']} bucket(s)" if ranks > 1 else "")
            lines.append(f"| {config} ({L}, {nh}, {C}, {T}, {B}, {V}) | {how} | {med:,.0f} "
                         f"({min(tps):,.0f}-{max(tps):,.0f}) | {med / base:.2f} | {rss} | {comm} | {bw} | {loads} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["tiny", "bpe", "small", "all"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode (alternating); the median is kept")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--collectives", action="store_true", help="time the all-reduce methods instead")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--bucket-mb", type=float, default=25, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker and args.collectives:
        return collectives()
    if args.collectives:
        load = os.getloadavg()[0]
        cmd = [shutil.which("mpiexec") or "mpiexec", "-n", "2", "--oversubscribe", sys.executable,
               str(Path(__file__).resolve()), "--worker", "--collectives"]
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(1))
        if res.returncode != 0:
            raise RuntimeError(f"worker failed:\n{res.stderr[-3000:]}")
        return print(collectives_table(json.loads(res.stdout.strip().splitlines()[-1]), load))
    if args.worker:
        import nanoframe

        nanoframe.set_num_threads(args.threads)
        return train_steps(args.config, args.steps, args.warmup, args.bucket_mb)
    configs = ["tiny", "bpe", "small"] if args.config == "all" else [args.config]
    modes = [(1, 2, 25), (2, 1, 1), (2, 1, 10**6)]      # one process; overlapped 1 MB buckets; one bucket
    results = {}
    t0 = time.perf_counter()
    for config in configs:
        for _ in range(args.repeats):
            for mode in modes:
                results.setdefault((config, *mode), []).append(measure(config, *mode, args.steps, args.warmup))
                if not args.markdown:
                    r = results[(config, *mode)][-1]
                    print(f"{config} {mode}: {r['step_s'] * 1e3:.0f} ms/step, load {r['load']:.1f}", file=sys.stderr)
    print(table(results, configs, modes))
    print(f"\n{args.repeats} runs per mode, {args.steps} steps each after {args.warmup} warmup; "
          f"{time.perf_counter() - t0:.0f} s in all.")


if __name__ == "__main__":
    main()
