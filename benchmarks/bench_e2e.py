"""End to end: `nanoframe train --data <text> --tokenizer char --preset tiny` against its PyTorch twin.

    python benchmarks/bench_e2e.py --data ../shared/data/tinyshakespeare.txt --rounds 2
    python benchmarks/bench_e2e.py --data ../shared/data/tinyshakespeare.txt --max-iters 200   # quick
    python benchmarks/bench_e2e.py --data ... --baseline /path/to/older/checkout

Each round runs the nanoframe command (with --no-progress --no-sample) and
benchmarks/torch_train_char.py (the same model, batches, schedule, clipping, evals, metrics and
checkpoints) in fresh processes, alternating, reversed every other round; --baseline DIR adds the
nanoframe in DIR to the alternation. Reported per run: wall clock of the whole command (tokenizer,
token files, training, evals, checkpoints), its CPU time (user + system, all threads), the final
val loss, and the load average before and after.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_one(kind, text, max_iters, threads, baseline):
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    if kind == "baseline":
        env["PYTHONPATH"] = os.pathsep.join([baseline] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryDirectory(prefix=f"e2e_{kind}_") as tmp:
        out = Path(tmp) / "run"
        if kind == "torch":
            cmd = [sys.executable, str(HERE / "torch_train_char.py"), "--data", text, "--out", str(out)]
            cmd += ["--max-iters", str(max_iters)] if max_iters else []
        else:
            cmd = [sys.executable, "-m", "nanoframe", "train", "--data", text, "--tokenizer", "char", "--preset",
                   "tiny", "--out", str(out), "--no-progress", "--no-sample"]
            cmd += [f"--max_iters={max_iters}"] if max_iters else []
        load0, cpu0, t0 = os.getloadavg()[0], _children_cpu(), time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        if res.returncode != 0:
            raise RuntimeError(f"{kind} run failed:\n{res.stderr[-3000:]}")
        if kind == "torch":
            val = json.loads(res.stdout.strip().splitlines()[-1])["val_loss"]
        else:
            records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
            val = [r["val_loss"] for r in records if "val_loss" in r][-1]
    return {"wall": wall, "cpu": cpu, "val_loss": val, "load": [load0, os.getloadavg()[0]]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="tiny shakespeare (a text file)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-iters", type=int, default=None, help="fewer steps than the preset's 2000")
    ap.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads for every run")
    ap.add_argument("--baseline", metavar="DIR", help="also run the nanoframe in DIR (an older checkout)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    kinds = ["nanoframe", "torch"] + (["baseline"] if args.baseline else [])
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    runs = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            res = run_one(kind, args.data, args.max_iters, args.threads, baseline)
            runs[kind].append(res)
            if not args.markdown:
                print(f"round {r} {kind}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, val {res['val_loss']:.4f}, "
                      f"load {res['load'][0]:.2f} -> {res['load'][1]:.2f}", file=sys.stderr)
    med = {k: {key: statistics.median(r[key] for r in v) for key in ("wall", "cpu", "val_loss")} for k, v in runs.items()}
    lines = ["| command | wall s (median) | all runs, wall s | CPU s (median) | final val loss | load |",
             "|---|---:|---|---:|---|---|"]
    names = {"nanoframe": "nanoframe train (this tree)", "torch": "benchmarks/torch_train_char.py",
             "baseline": "nanoframe train (baseline)"}
    for k in kinds:
        loads = [x for r in runs[k] for x in r["load"]]
        walls = ", ".join(f"{r['wall']:.1f}" for r in runs[k])
        vals = ", ".join(f"{r['val_loss']:.4f}" for r in runs[k])
        lines.append(f"| {names[k]} | {med[k]['wall']:.1f} | {walls} | {med[k]['cpu']:.1f} | {vals} | "
                     f"{min(loads):.1f}-{max(loads):.1f} |")
    print("\n".join(lines))
    ratio = med["torch"]["wall"] / med["nanoframe"]["wall"]
    print(f"\nPyTorch wall / nanoframe wall: {ratio:.2f}; CPU: {med['torch']['cpu'] / med['nanoframe']['cpu']:.2f}"
          + (f"; nanoframe vs baseline wall: {med['baseline']['wall'] / med['nanoframe']['wall']:.2f}" if baseline else "")
          + f". {args.rounds} rounds, {args.max_iters or 2000} steps, threads "
          f"{args.threads or 'library defaults'}.")


if __name__ == "__main__":
    main()
