"""Where the milliseconds of one training step go: per op (forward and backward), engine, optimizer.

    python benchmarks/profile_step.py --config tiny               # library-default threads
    python benchmarks/profile_step.py --config tiny --threads 1   # serial: CPU time = all the work
    python benchmarks/profile_step.py --config tiny --markdown

bench_train.py's nanoframe loop (forward, backward, clip_grad_norm_, AdamW, zero_grad) on random
batches. Every Function subclass's forward and backward is wrapped in a timer, so each op's row is
the time inside its kernel; "engine and Python" is the rest of the forward or backward phase (the
layers' Python, Function.apply, graph bookkeeping, the backward traversal, gradient accumulation).
Each row has wall time and CPU time of the calling thread (time.thread_time: with --threads 1 that
is all the work, and unlike wall time it hardly moves when other jobs share the machine). Medians
over --steps steps after --warmup; timers add ~1 us per op call, which shows in no op row.
"""
import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import CONFIGS  # noqa: E402


def _subclasses(cls):
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


class Timers:
    """name -> per-step lists of (wall, cpu) seconds."""

    def __init__(self):
        self.step = collections.defaultdict(lambda: [0.0, 0.0, 0])
        self.steps = []

    def add(self, name, wall, cpu):
        row = self.step[name]
        row[0] += wall
        row[1] += cpu
        row[2] += 1

    def end_step(self):
        self.steps.append(dict(self.step))
        self.step.clear()

    def medians(self):
        names = {n for s in self.steps for n in s}
        out = {}
        for n in names:
            walls = [s.get(n, (0.0, 0.0, 0))[0] for s in self.steps]
            cpus = [s.get(n, (0.0, 0.0, 0))[1] for s in self.steps]
            calls = self.steps[-1].get(n, (0, 0, 0))[2]
            out[n] = (statistics.median(walls), statistics.median(cpus), calls)
        return out


def instrument(timers):
    """Wrap forward/backward of every Function subclass so that each call is timed under its name."""
    from nanoframe.autograd import Function

    def wrap(cls, kind):
        fn = cls.__dict__[kind].__func__ if isinstance(cls.__dict__[kind], staticmethod) else cls.__dict__[kind]
        name = f"{cls.__name__}.{kind}"

        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                timers.add(name, time.perf_counter() - w, time.thread_time() - c)

        setattr(cls, kind, staticmethod(timed))

    for cls in _subclasses(Function):
        for kind in ("forward", "backward"):
            if kind in cls.__dict__:
                wrap(cls, kind)


def phase(timers, name, fn):
    w, c = time.perf_counter(), time.thread_time()
    out = fn()
    timers.add("phase:" + name, time.perf_counter() - w, time.thread_time() - c)
    return out


def profile(config, steps, warmup, threads):
    import nanoframe
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.utils import clip_grad_norm_

    if threads:
        nanoframe.set_num_threads(threads)
    nanoframe.runtime.tune_malloc()
    L, nh, C, T, B, V = CONFIGS[config]
    nanoframe.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C, dropout=0.0))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = [p for g in opt.param_groups for p in g["params"]]
    timers = Timers()
    instrument(timers)
    rng = np.random.default_rng(0)
    for i in range(warmup + steps):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        w, c = time.perf_counter(), time.thread_time()
        _, loss = phase(timers, "forward", lambda: model(x, y))
        phase(timers, "backward", loss.backward)
        phase(timers, "clip_grad_norm_", lambda: clip_grad_norm_(params, 1.0))
        phase(timers, "optimizer.step", opt.step)
        phase(timers, "zero_grad", opt.zero_grad)
        timers.add("phase:step", time.perf_counter() - w, time.thread_time() - c)
        if i < warmup:
            timers.step.clear()
        else:
            timers.end_step()
    return timers.medians()


def report(med, markdown):
    step_wall, step_cpu, _ = med["phase:step"]
    rows = []
    for kind, phase_name in (("forward", "forward"), ("backward", "backward")):
        ops = {n: v for n, v in med.items() if n.endswith("." + kind)}
        pw, pc, _ = med["phase:" + phase_name]
        for n, (w, c, calls) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
            rows.append((n, calls, w, c))
        rows.append((f"{phase_name}: engine and Python", "", pw - sum(v[0] for v in ops.values()),
                     pc - sum(v[1] for v in ops.values())))
        rows.append((f"**{phase_name} total**", "", pw, pc))
    for name in ("clip_grad_norm_", "optimizer.step", "zero_grad"):
        w, c, _ = med["phase:" + name]
        rows.append((name, 1, w, c))
    rows.append(("**step**", "", step_wall, step_cpu))
    lines = ["| where | calls | wall ms | % of step | CPU ms (this thread) |", "|---|---:|---:|---:|---:|"]
    for name, calls, w, c in rows:
        lines.append(f"| {name} | {calls} | {1e3 * w:.2f} | {100 * w / step_wall:.1f}% | {1e3 * c:.2f} |")
    print("\n".join(lines))
    if not markdown:
        print(f"\nload average: {os.getloadavg()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="nanoframe.set_num_threads(n) first")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    report(profile(args.config, args.steps, args.warmup, args.threads), args.markdown)


if __name__ == "__main__":
    main()
