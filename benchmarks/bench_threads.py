"""nanoframe's thread pool and BLAS thread handling: the measurements behind nanoframe.parallel.

    python benchmarks/bench_threads.py --handoff             # pool hand-off, wake-up, BLAS flip costs
    python benchmarks/bench_threads.py --spin                # OpenBLAS's idle workers against a region
    python benchmarks/bench_threads.py --train --rounds 6    # training speed per thread strategy
    python benchmarks/bench_threads.py --timeline            # where a two-chunk GEMM region loses time

--train runs bench_train.py's nanoframe loop (forward, backward, clip, AdamW; malloc tuned as by
the CLI) in a fresh process per run, with one of these strategies for NumPy's BLAS:

    region        the library's choice: each parallel region runs a one-thread BLAS, then puts back
                  the count it found
    owned         the BLAS is set to one thread once and kept there while the pool is on (as torch
                  owns its own BLAS threads)
    uncontrolled  the pool runs but nobody sets the BLAS count (what macOS / Windows got without a
                  way to reach the BLAS, had the pool been turned on anyway)
    serial        no pool, the BLAS at its own count (what an unreachable BLAS gets now)
    one-thread    nanoframe.set_num_threads(1): no pool, a one-thread BLAS
    polling       region, with pool workers that poll for work as in --timeline's second row
    halves        no pool, a one-thread BLAS, and two Python threads that each run forward and
                  backward on half of the batch (a model replica each; gradients summed before
                  clipping and AdamW): data parallelism inside one process, one hand-off per step

--timeline runs a (768, 128) @ (128, 128) GEMM (a Linear of the tiny config) split over two
chunks, many times, and reports the median time from entering the region to the caller's chunk
starting, to the worker's chunk starting, and to the region's end, beside the same GEMM on one
thread; then again with a worker that, between regions, polls for work with os.sched_yield for up
to 2 ms instead of sleeping on its lock.

and "+nomalloc" after a name runs it with NANOFRAME_MALLOC_TUNING=0. The strategies alternate in
every round (reversed every other round), so that a change in the machine's load hits all alike.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STRATEGIES = ("region", "owned", "uncontrolled", "serial", "one-thread", "halves", "polling")


# ---- --handoff ------------------------------------------------------------------------------------
def _median_us(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e6 * statistics.median(times)


def handoff(n=3000):
    import nanoframe.parallel as par
    from nanoframe import runtime

    worker = par._Worker()
    rows = []

    def round_trip():
        task = par._Task(lambda a, b: None, 0, 0)
        worker.post(task)
        task.wait()                              # the worker always claims it: the caller never does here

    rows.append(("round trip to a pool worker (plain locks)", _median_us(round_trip, n)))
    with ThreadPoolExecutor(1) as ex:
        rows.append(("round trip through concurrent.futures", _median_us(lambda: ex.submit(lambda: None).result(), n)))

    lags = []
    for _ in range(300):                         # a worker asleep on its lock: how late does it start?
        time.sleep(0.002)
        started = []
        t = time.perf_counter()
        task = par._Task(lambda a, b: started.append(time.perf_counter()), 0, 0)
        worker.post(task)
        task.wait()
        lags.append(started[0] - t)
    rows.append(("wake-up of a sleeping worker (median)", 1e6 * statistics.median(lags)))
    rows.append(("wake-up of a sleeping worker (90th percentile)", 1e6 * sorted(lags)[int(0.9 * len(lags))]))
    worker.stop()

    x = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32)   # a chunk that fits in L2
    out = np.empty_like(x)
    ns_mul = 1e3 * _median_us(lambda: np.multiply(x, x, out=out), 200) / x.size
    ns_exp = 1e3 * _median_us(lambda: np.exp(x, out=out), 200) / x.size
    rows.append(("one float32 element through np.multiply (ns)", ns_mul))
    rows.append(("one float32 element through np.exp (ns)", ns_exp))
    blas = runtime.blas_info().control
    if blas is not None:
        a = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32)
        before = blas.get()
        blas.set(1)
        ns_mac = 1e3 * _median_us(lambda: a @ a, 50) / 256**3
        blas.set(before)
        rows.append(("one multiply-add of a one-thread 256^3 SGEMM (ns)", ns_mac))
        rows.append(("np.exp element / GEMM multiply-add (nanoframe.parallel.GEMM_UNIT)", ns_exp / ns_mac))
        rows.append(("BLAS flip per region: get, set(1), set(back)",
                     _median_us(lambda: (blas.get(), blas.set(1), blas.set(before)), n)))
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            def limits():
                with threadpool_limits(1, user_api="blas"):
                    pass
            rows.append(("threadpoolctl.threadpool_limits(1) as a context manager", _median_us(limits, 300)))
    return rows


# ---- --spin --------------------------------------------------------------------------------------
def _thread_cpu_ms():
    """CPU time (ms) of each thread of this process (Linux: /proc/self/task)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            out[tid] = int(f.read().split()[0]) / 1e6
    return out


def spin(repeats=20):
    """What OpenBLAS's workers do after one GEMM on the BLAS's own threads, against a one-thread GEMM:
    the CPU time they burn in the 0.5 s after it, and the time of an elementwise parallel region
    (2 chunks) started right after it."""
    import nanoframe
    import nanoframe.parallel as par
    from nanoframe import runtime

    blas = runtime.blas_info().control
    if blas is None or nanoframe.get_num_threads() < 2 or blas.get() < 2 or not os.path.isdir("/proc/self/task"):
        return None
    threads = blas.get()
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((8, 1 << 17)).astype(np.float32)
    y = np.empty_like(x)

    def region():
        def rows(r0, r1):
            for _ in range(4):
                np.exp(x[r0:r1], out=y[r0:r1])
        t = time.perf_counter()
        par.parallel_for(rows, len(x), work_per_item=4 * x.shape[1])
        return time.perf_counter() - t

    rows = []
    for label, gemm_threads in (("a GEMM on the BLAS's threads", threads), ("a one-thread GEMM", 1)):
        burnt, times = [], []
        for _ in range(repeats):
            blas.set(gemm_threads)
            a @ a
            blas.set(threads)
            c0 = _thread_cpu_ms()
            times.append(region())
            time.sleep(0.5)
            c1 = _thread_cpu_ms()
            python_threads = {str(t.native_id) for t in threading.enumerate()}   # main and the pool's
            burnt.append(sum(c1[t] - c0.get(t, 0.0) for t in c1 if t not in python_threads))
        rows.append((label, 1e3 * statistics.median(times), statistics.median(burnt)))
    return rows


# ---- --timeline -----------------------------------------------------------------------------------
def _polling_loop(self, poll_s=2e-3):
    """A _Worker loop that polls for its next task with os.sched_yield (the GIL released in each
    yield) for up to poll_s before it sleeps on its lock, instead of sleeping at once."""
    import nanoframe.parallel as par

    par._local.in_region = True
    while True:
        if not self._go.acquire(blocking=False):
            end, woken = time.perf_counter() + poll_s, False
            while time.perf_counter() < end:
                if self._go.acquire(blocking=False):
                    woken = True
                    break
                os.sched_yield()
            if not woken:
                self._go.acquire()
        task = self._task
        if task is par._STOP:
            return
        if task.claim.acquire(blocking=False):
            task.outcome = task.run()
            self._idle.release()
            task.done.release()
        else:
            self._idle.release()


def timeline(regions=3000):
    import nanoframe
    import nanoframe.parallel as par

    if nanoframe.get_num_threads() < 2 or par._blas is None:
        return None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((768, 128)).astype(np.float32)
    w = rng.standard_normal((128, 128)).astype(np.float32)
    y = np.empty((768, 128), np.float32)
    starts = {}

    def chunk(a, b):
        starts[a == 0] = time.perf_counter()
        np.matmul(x[a:b], w, out=y[a:b])

    rows = []
    for label in ("worker sleeps on its lock (nanoframe)", "worker polls with sched_yield for 2 ms"):
        if label.startswith("worker polls"):
            while par._workers:
                par._workers.pop().stop()
            par._Worker._loop = _polling_loop
        marks = []
        for _ in range(regions):
            starts.clear()
            t = time.perf_counter()
            par.parallel_for(chunk, 768, work_per_item=128 * 128 // par.GEMM_UNIT)
            end = time.perf_counter()
            if len(starts) == 2:
                marks.append((starts[True] - t, starts[False] - t, end - t))
        med = [1e6 * statistics.median(m[i] for m in marks[regions // 10:]) for i in range(3)]
        rows.append((label, *med))
    before = par._blas.get()
    par._blas.set(1)
    rows.append(("the same GEMM whole on one thread", 0.0, float("nan"), _median_us(lambda: np.matmul(x, w, out=y), 500)))
    par._blas.set(before)
    return rows


# ---- --train --------------------------------------------------------------------------------------
def _halves_step(config):
    """bench_train's step as data parallelism over two Python threads: each runs forward and backward
    on half of the batch with its own model replica; replica 1's gradients are added to replica 0's,
    which is clipped and stepped, then its weights are copied back into replica 1."""
    import bench_train as bt
    import nanoframe
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.utils import clip_grad_norm_

    L, nh, C, T, B, V = bt.CONFIGS[config]
    models = []
    for _ in range(2):
        nanoframe.manual_seed(0)
        models.append(GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C, dropout=0.0,
                                    **bt.LLAMA.get(config, {}))))
    opt = models[0].configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = [list(m.parameters()) for m in models]
    half, rng = B // 2, np.random.default_rng(0)
    go, done, batch = threading.Semaphore(0), threading.Semaphore(0), {}

    def forward_backward(i):
        x, y = batch["xy"]
        _, loss = models[i](x[i * half:(i + 1) * half], y[i * half:(i + 1) * half])
        (loss * 0.5).backward()                  # the mean over the whole batch: each half weighs 1/2

    def second_thread():
        while True:
            go.acquire()
            forward_backward(1)
            done.release()

    threading.Thread(target=second_thread, daemon=True).start()

    def step(x, y):
        batch["xy"] = (x, y)
        go.release()
        forward_backward(0)
        done.acquire()
        for p0, p1 in zip(*params):
            np.add(p0.grad_array, p1.grad_array, out=p0.grad_array)
            p1.grad = None
        clip_grad_norm_(params[0], 1.0)
        opt.step()
        opt.zero_grad()
        for p0, p1 in zip(*params):
            np.copyto(p1.array, p0.array)

    return step, lambda: (rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)))


def train_worker(strategy, config, steps, warmup):
    import bench_train as bt
    import nanoframe
    import nanoframe.parallel as par

    nanoframe.get_num_threads()                  # start the pool's bookkeeping (finds the BLAS)
    blas = par._blas
    if strategy in ("owned", "uncontrolled") and blas is None:
        raise SystemExit(f"{strategy}: nanoframe does not set this BLAS")
    if strategy == "owned":
        blas.set(1)

        class _One:                              # regions see a one-thread BLAS and leave it so
            get = staticmethod(lambda: 1)
            set = staticmethod(lambda n: None)
        par._blas = _One()
    elif strategy == "uncontrolled":
        par._blas = None
    elif strategy == "serial":
        par._num_threads = 1
    elif strategy == "polling":
        par._Worker._loop = _polling_loop
    elif strategy in ("one-thread", "halves"):
        nanoframe.set_num_threads(1)
    L, nh, C, T, B, V = bt.CONFIGS[config]
    if strategy == "halves":
        nanoframe.runtime.tune_malloc()
        times = bt._timed_steps(*_halves_step(config), steps, warmup)
    else:
        times = bt.run_nanoframe(config, steps, warmup)
    print(json.dumps({"tok_s": B * T / statistics.median(times["wall"])}))


def train(configs, strategies, rounds, steps, warmup, markdown):
    results, load_start = {}, os.getloadavg()
    for r in range(rounds):
        for config in configs:
            for name in (strategies if r % 2 == 0 else strategies[::-1]):
                strategy, _, extra = name.partition("+")
                env = dict(os.environ)
                if extra == "nomalloc":
                    env["NANOFRAME_MALLOC_TUNING"] = "0"
                cmd = [sys.executable, os.path.abspath(__file__), "--train-worker", strategy, "--config", config,
                       "--steps", str(steps), "--warmup", str(warmup)]
                res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if res.returncode != 0:
                    raise RuntimeError(f"{name} worker failed:\n{res.stderr}")
                tok_s = json.loads(res.stdout.strip().splitlines()[-1])["tok_s"]
                results.setdefault((config, name), []).append(tok_s)
                if not markdown:
                    print(f"round {r}: {config} {name}: {tok_s:,.0f} tok/s (load {os.getloadavg()[0]:.2f})",
                          file=sys.stderr)
    lines = ["| config | strategy | median tok/s | min - max | vs region |", "|---|---|---:|---|---:|"]
    for config in configs:
        base = statistics.median(results[(config, strategies[0])])
        for name in strategies:
            v = results[(config, name)]
            lines.append(f"| {config} | {name} | {statistics.median(v):,.0f} | {min(v):,.0f} - {max(v):,.0f} | "
                         f"{statistics.median(v) / base:.2f} |")
    lines.append(f"\n{rounds} rounds, {steps} steps after {warmup} warmup per run; load average "
                 f"{load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.")
    return "\n".join(lines)


def _print_table(columns, rows, *formats, missing=None):
    """A markdown table of rows (label, number, ...), each number in its column's format; rows None
    (the measurement needs a BLAS nanoframe sets, with 2+ threads) prints why instead."""
    if rows is None:
        print(f"{missing}: needs a BLAS nanoframe sets, with 2+ threads\n")
        return
    print("| " + " | ".join(columns) + " |\n|---|" + "---:|" * (len(columns) - 1))
    for label, *values in rows:
        print(f"| {label} | " + " | ".join(format(v, f) for v, f in zip(values, formats)) + " |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handoff", action="store_true")
    ap.add_argument("--spin", action="store_true")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("--config", default="tiny,bpe", help="comma-separated bench_train configs")
    ap.add_argument("--strategies", default="region,owned,uncontrolled,serial",
                    help=f"comma-separated, from {', '.join(STRATEGIES)} (optionally +nomalloc); the first is the baseline")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--train-worker", choices=STRATEGIES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_worker:
        return train_worker(args.train_worker, args.config, args.steps, args.warmup)
    if not (args.handoff or args.spin or args.train or args.timeline):
        ap.error("choose --handoff, --spin, --timeline and/or --train")
    if args.handoff:
        _print_table(["quantity", "us (or as named)"], handoff(), ".3g")
    if args.spin:
        _print_table(["after", "region right after (ms)", "CPU burnt by the BLAS's workers in the next 0.5 s (ms)"],
                     spin(), ".2f", ".1f", missing="--spin")
    if args.timeline:
        _print_table(["two-chunk GEMM region, medians (us from entering it)", "caller's chunk starts",
                      "worker's chunk starts", "region ends"], timeline(), ".1f", ".1f", ".1f", missing="--timeline")
    if args.train:
        for name in args.strategies.split(","):
            if name.partition("+")[0] not in STRATEGIES:
                ap.error(f"unknown strategy {name!r}")
        print(train(args.config.split(","), args.strategies.split(","), args.rounds, args.steps, args.warmup,
                    args.markdown))


if __name__ == "__main__":
    main()
