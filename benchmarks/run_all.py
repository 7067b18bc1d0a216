"""Run every benchmark (each in its own subprocess, with --markdown) and rewrite benchmarks/RESULTS.md.

    python benchmarks/run_all.py                       # all of them, library-default threads
                                                       # (training also with one thread each)
    python benchmarks/run_all.py --only train generate --threads 1
    python benchmarks/run_all.py --dry-run             # print the report instead of writing it

RESULTS.md records the machine (CPU model and cores from /proc/cpuinfo and os.cpu_count), NumPy
with its BLAS (threadpoolctl when installed, else numpy.show_config), torch and transformers
versions when installed, the date, the exact command of each benchmark, and its table. Extra
arguments for one benchmark go after its name, e.g. --train-args "--repeats 5".
"""
import argparse
import datetime
import io
import os
import platform
import shlex
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP_MARKER = "<!-- kept by run_all.py: everything below is recorded by hand -->"
BENCHES = {  # name -> (script, default extra arguments, title)
    "train": ("bench_train.py", ["--config", "all"], "Training throughput (GPT, fp32, forward+backward+clip+AdamW)"),
    "generate": ("bench_generate.py", [], "Generation (batch 1, greedy, KV cache vs recompute, vs HF transformers)"),
    "ops": ("bench_ops.py", [], "Fused ops, forward+backward"),
    "tokenizer": ("bench_tokenizer.py", [], "BPE tokenizer"),
}


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    """One line per BLAS/OpenMP library NumPy (and torch, if imported) loaded."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_info

        return [f"{d.get('internal_api')} {d.get('version')} ({d.get('threading_layer', '-')}, "
                f"{d.get('num_threads')} threads, {d.get('architecture', '-')})" for d in threadpool_info()]
    except ImportError:
        buf = io.StringIO()
        with redirect_stdout(buf):
            np.show_config(mode="stdout")
        lines = [ln.strip() for ln in buf.getvalue().splitlines()]
        keep = [ln for ln in lines if ln.startswith(("name:", "version:", "openblas configuration:"))]
        return [" ".join(keep[:3])] if keep else ["(BLAS unknown)"]


def versions():
    import numpy as np

    out = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for mod in ("torch", "transformers", "tokenizers", "tiktoken"):
        try:
            m = __import__(mod)
            out.append(f"{mod} {m.__version__}")
        except ImportError:
            out.append(f"{mod} not installed")
    return out


def nanoframe_threads():
    try:
        import nanoframe
    except ImportError:
        return "nanoframe not installed"
    return nanoframe.get_num_threads()


def machine_section():
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    threads = {v: os.environ[v] for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
               if v in os.environ}
    lines = [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({platform.system()} {platform.release()})",
        f"- load average when the run started: {', '.join(f'{x:.2f}' for x in load)}" if load else "",
        f"- {', '.join(versions())}",
        f"- BLAS: {'; '.join(blas_info())}",
        f"- thread variables in the environment: {threads or 'none'}",
        f"- nanoframe intra-op threads (nanoframe.get_num_threads()): {nanoframe_threads()}",
    ]
    return "\n".join(ln for ln in lines if ln)


def run(name, extra, threads, markdown=True):
    script, default_args, _ = BENCHES[name]
    cmd = [sys.executable, str(HERE / script)] + default_args + (["--markdown"] if markdown else []) + extra
    if threads and name in ("train", "generate"):
        cmd += ["--threads", str(threads)]
    shown = "python " + " ".join(shlex.quote(str(Path(c).relative_to(HERE.parent)) if c.startswith(str(HERE)) else c)
                                 for c in cmd[1:])
    print(f"running: {shown}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    took = time.perf_counter() - t
    body = res.stdout.strip() if res.returncode == 0 else f"(failed, exit {res.returncode})\n\n```\n{res.stderr.strip()[-2000:]}\n```"
    return shown, body, took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument("--threads", type=int, default=None,
                    help="pass --threads N to the train and generate benchmarks (both frameworks alike)")
    for name in BENCHES:
        ap.add_argument(f"--{name}-args", default="", help=f"extra arguments for {BENCHES[name][0]}")
    ap.add_argument("--no-single-thread-train", dest="single_thread_train", action="store_false",
                    help="skip the second training table with --threads 1")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--dry-run", action="store_true", help="print the report, do not write --out")
    args = ap.parse_args()
    sections = ["# Benchmark results", "",
                "Written by `python benchmarks/run_all.py` from real runs on the machine below; each table "
                "is the script's own `--markdown` output. Ratios compare nanoframe with the reference "
                "measured in the same run.", "", "## Machine", "", machine_section(), ""]
    for name in args.only:
        shown, body, took = run(name, shlex.split(getattr(args, f"{name}_args")), args.threads)
        sections += [f"## {BENCHES[name][2]}", "", f"`{shown}` ({took:.0f} s)", "", body, ""]
        if name == "train" and args.single_thread_train and args.threads != 1:
            shown, body, took = run(name, shlex.split(args.train_args), 1)
            sections += ["### Same, one BLAS/OpenMP thread per framework", "",
                         "On a shared 2-core machine the default (2-thread) numbers swing with other jobs: a "
                         "thread that the OS parks stalls every BLAS call. One thread each is the steadier "
                         "comparison.", "", f"`{shown}` ({took:.0f} s)", "", body, ""]
    report = "\n".join(sections)
    if args.out.is_file():  # results recorded by hand (long training runs) survive a refresh
        old = args.out.read_text()
        if KEEP_MARKER in old:
            report += "\n" + old[old.index(KEEP_MARKER):]
    if args.dry_run:
        print(report)
    else:
        args.out.write_text(report)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
