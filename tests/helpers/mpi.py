"""Launching `mpiexec -n N` from the tests: the distributed extra's check, environment and data."""
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec")


def _missing():
    """Why the MPI tests cannot run here, or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'nanoframe[distributed]')"
    if MPIEXEC is None:
        return "no mpiexec on PATH (pip install 'nanoframe[distributed]' brings Open MPI's)"
    return None


needs_mpi = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def env():
    """This clone first on the path (also in the ranks), one BLAS thread, Open MPI allowed as root."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
    e.pop("NANOFRAME_DEBUG", None)
    return e


def mpiexec(n, *args, timeout=240, **kw):
    """`mpiexec -n n --oversubscribe python ARGS` (a CompletedProcess; text output)."""
    cmd = [MPIEXEC, "-n", str(n), "--oversubscribe", sys.executable, *map(str, args)]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, **kw)


def nanoframe(*args, n=None, timeout=240):
    """`nanoframe ARGS` in one plain process (n=None) or under `mpiexec -n n`."""
    if n is not None:
        return mpiexec(n, "-m", "nanoframe", *args, timeout=timeout)
    return subprocess.run([sys.executable, "-m", "nanoframe", *map(str, args)], env=env(), capture_output=True,
                          text=True, timeout=timeout)


def words_corpus(path, n_words=40000, seed=0):
    """A few hundred KB of seeded random words: enough text for tiny models, no shared data needed."""
    rng = random.Random(seed)
    vocab = "the a cat dog sat on mat and ran far away to see big small red blue house tree".split()
    lines = [" ".join(rng.choice(vocab) for _ in range(12)) + "." for _ in range(n_words // 12)]
    path.write_text("\n".join(lines) + "\n")
    return path


def metrics(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def curve(run, keys=("loss", "val_loss", "lr", "grad_norm")):
    """[(step, key, value)] of a run's metrics, without the timing fields."""
    return [(r["step"], k, r[k]) for r in metrics(run) for k in keys if k in r]


def rank_pid(rank, marker, timeout=30):
    """The pid of MPI rank `rank` whose command line holds `marker` (from /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in cmd and f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ and "mpiexec" not in cmd:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} process with {marker!r} in its command line")
