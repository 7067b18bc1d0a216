"""Paired A/B of one module constant inside one process: training steps alternate between setting A
and setting B, so that a change in the machine's load hits both alike.

    python benchmarks/ab_step.py --config tiny --set nanoframe.ops.norm.LN_BLOCK_ELEMS 131072 65536
    python benchmarks/ab_step.py --config tiny --threads 1 --set nanoframe.parallel.MIN_PARALLEL_SIZE 16384 32768

bench_train.py's nanoframe loop (forward, backward, clip, AdamW, zero_grad). Step i runs A then B,
or B then A (alternating), each on its own random batch; reported: the median wall and CPU time
per step (CPU = the whole process, all threads) of each setting and the median of the paired
differences A - B with their interquartile range. On a loaded machine a difference whose IQR
straddles 0 is not a difference. Only for constants read at call time (block sizes, thresholds);
a change of code needs bench_train.py --baseline.
"""
import argparse
import importlib
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import CONFIGS, nanoframe_step  # noqa: E402


def _number(text):
    return float(text) if any(ch in text for ch in ".e") else int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=list(CONFIGS))
    ap.add_argument("--set", nargs=3, required=True, metavar=("MODULE.NAME", "A", "B"),
                    help="the module constant and its two values")
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="nanoframe.set_num_threads(n) first")
    args = ap.parse_args()
    import nanoframe

    if args.threads:
        nanoframe.set_num_threads(args.threads)
    module_name, _, name = args.set[0].rpartition(".")
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        ap.error(f"--set: {module_name} has no attribute {name}")
    values = {"A": _number(args.set[1]), "B": _number(args.set[2])}
    step, make_batch = nanoframe_step(args.config)
    for _ in range(args.warmup):
        step(*make_batch())
    times = {k: {"wall": [], "cpu": []} for k in values}
    load = os.getloadavg()[0]
    for i in range(args.pairs):
        for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
            setattr(module, name, values[k])
            x, y = make_batch()
            w, c = time.perf_counter(), time.process_time()
            step(x, y)
            times[k]["wall"].append(time.perf_counter() - w)
            times[k]["cpu"].append(time.process_time() - c)
    print(f"{args.config}: {args.set[0]} A={values['A']} B={values['B']}, {args.pairs} pairs, "
          f"threads {nanoframe.get_num_threads()}, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for kind in ("wall", "cpu"):
        a, b = times["A"][kind], times["B"][kind]
        d = np.subtract(a, b) * 1e3
        print(f"  {kind:4s} ms/step: A {1e3 * statistics.median(a):.2f}, B {1e3 * statistics.median(b):.2f}; "
              f"A - B median {np.median(d):+.2f} (IQR {np.percentile(d, 25):+.2f} .. {np.percentile(d, 75):+.2f})")


if __name__ == "__main__":
    main()
