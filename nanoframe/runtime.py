"""Everything nanoframe does to the process it runs in, in one place.

Importing nanoframe changes nothing in the host process: it sets no allocator option, leaves the
umask alone, opens no shared library, reads nothing under /proc and registers no fork hook. A
program that only wants the tokenizer gets none of what follows.

- `tune_malloc()` (opt-in): glibc malloc keeps freed memory instead of returning it to the OS.
  The `nanoframe` command and `Trainer.train()` turn it on; a hand-written training loop calls
  `nanoframe.runtime.tune_malloc()` itself. NANOFRAME_MALLOC_TUNING=0 makes it a no-op.
- `blas_info()`: which BLAS NumPy uses and whether nanoframe can set its thread count. Asked for
  by nanoframe.parallel at the first parallel region (or get_num_threads / set_num_threads),
  found through threadpoolctl when it is installed (Linux, macOS, Windows), else on Linux
  through /proc/self/maps. The thread contract itself is in nanoframe.parallel.
- `at_fork_in_child(fn)`: the thread pool's fork hook, registered when the pool first starts.
- Files: nanoframe.io's atomic writer creates its temporary file with mode 0o666 and lets the
  kernel apply the umask, so the umask is never read or set.
"""
import ctypes
import os
import sys
import threading
import warnings
from dataclasses import dataclass

import numpy as np

# ---- malloc ------------------------------------------------------------------------------------
_malloc_tuned = False


def tune_malloc():
    """Keep freed array memory in the process instead of returning it to the OS after every op.

    A training step allocates and frees the same few hundred MB of activations and gradients
    every step. With glibc's defaults, arrays above a (dynamic) mmap threshold are mapped fresh
    and returned on free, and the heap top is trimmed once 2x that threshold is free, so nearly
    every large array is page-faulted in again on its first write (benchmarks/RESULTS.md, "malloc
    tuning", has the page faults and the step times). Raising M_MMAP_THRESHOLD to 32 MiB (glibc's
    maximum) and M_TRIM_THRESHOLD to 1 GiB lets malloc reuse that memory.

    The setting is process-wide and stays for the life of the process (glibc cannot report the
    previous values, so it cannot be undone): call it in programs whose main job is training.
    glibc only (Linux); NANOFRAME_MALLOC_TUNING=0 in the environment makes it a no-op. Returns
    True if the thresholds are (now or already) raised.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if os.environ.get("NANOFRAME_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt        # absent (AttributeError) outside glibc-like libcs
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3     # <malloc.h>
    _malloc_tuned = bool(mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 1 << 30))
    return _malloc_tuned


def malloc_tuned():
    """True once `tune_malloc()` has raised the thresholds in this process."""
    return _malloc_tuned


# ---- BLAS threads ------------------------------------------------------------------------------
# Default cap on nanoframe's threads: the Python threads contend for the GIL between NumPy calls,
# so returns shrink with every thread added (only 2 cores were measured); set_num_threads(n)
# goes past it.
DEFAULT_MAX_THREADS = 8


class BlasThreads:
    """The thread count of the OpenBLAS NumPy uses, through OpenBLAS's own C functions.

    The count is process-wide (OpenBLAS's pthreads build has one worker pool per process): a
    set(n) from any Python thread applies to every thread's next BLAS call. threadpoolctl only
    finds the library: its threadpool_limits inspects every loaded library on each use, far too
    slow for once per op (benchmarks/bench_threads.py --handoff), and recent versions let only
    one Python thread change OpenBLAS's count.
    """

    def __init__(self, path, set_fn, get_fn):
        self.path = path
        self.set, self.get = set_fn, get_fn        # set(n), get(): the C functions, called directly

    def __repr__(self):
        return f"BlasThreads({self.path!r}, threads={self.get()})"


@dataclass(frozen=True)
class BlasInfo:
    """What nanoframe found out about NumPy's BLAS (see `blas_info`)."""

    name: str             # NumPy's BLAS by its build name: "scipy-openblas", "accelerate", "mkl", ...
    control: object       # BlasThreads where nanoframe sets the BLAS thread count, else None
    pool: bool            # whether nanoframe's ops may split their work over a thread pool
    default_threads: int  # nanoframe.get_num_threads() until set_num_threads is called
    note: str             # one line: how the BLAS was found, or why the ops stay serial


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):               # not on macOS / Windows
        return os.cpu_count() or 1


def _numpy_blas_name():
    """NumPy's BLAS as its build recorded it ("scipy-openblas", "accelerate", ...; NumPy >= 1.26)."""
    try:
        name = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:                               # older NumPy: no mode="dicts"
        return "unknown"
    return str(name).lower()


def _openblas_files():
    """(files of the loaded OpenBLAS libraries, NumPy's own copy first; how they were found)."""
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        with warnings.catch_warnings():             # its warnings are about other libraries (OpenMP)
            warnings.simplefilter("ignore")
            found = threadpoolctl.threadpool_info()
        paths = {d["filepath"] for d in found if d.get("internal_api") == "openblas" and d.get("filepath")}
        source = "threadpoolctl"
    elif sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
        except OSError:
            paths = set()
        source = "/proc/self/maps"
    else:
        return [], None
    return sorted(paths, key=lambda p: ("numpy" not in p.lower(), p)), source


_OPENBLAS_AFFIXES = [(prefix, suffix) for prefix in ("scipy_", "") for suffix in ("64_", "_64", "")]


def _bind_openblas(path):
    """(BlasThreads, threading layer) for the OpenBLAS at path, or None if it has no thread API.

    The layer is OpenBLAS's openblas_get_parallel(): 0 sequential build, 1 pthreads, 2 OpenMP.
    """
    try:
        lib = ctypes.CDLL(path)                     # the loaded library: dlopen only counts a reference
    except OSError:
        return None
    for prefix, suffix in _OPENBLAS_AFFIXES:
        set_n = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        get_n = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        if set_n is None or get_n is None:
            continue
        set_n.argtypes, set_n.restype = (ctypes.c_int,), None
        get_n.argtypes, get_n.restype = (), ctypes.c_int
        layer = getattr(lib, f"{prefix}openblas_get_parallel{suffix}", None)
        if layer is not None:
            layer.argtypes, layer.restype = (), ctypes.c_int
        return BlasThreads(path, set_n, get_n), (1 if layer is None else layer())   # pre-0.3.4: pthreads
    return None


def _positive_int_env(name):
    try:
        n = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return n if n > 0 else None


def find_blas():
    """Look up NumPy's BLAS now and decide what nanoframe's thread pool may do with it.

    - OpenBLAS with pthreads (NumPy's wheels on Linux, Windows and macOS before 14; most conda
      installs): nanoframe sets its count. Pool on; default threads = OpenBLAS's own count (so
      OPENBLAS_NUM_THREADS / OMP_NUM_THREADS apply), capped by the usable cores.
    - OpenBLAS built sequential: no BLAS threads to fight over. Pool on, default = the cores.
    - Accelerate (NumPy's wheels on macOS 14+): its threads cannot be limited from inside a
      process; they run on the system's thread pool rather than as spinning workers (assumed:
      no Mac was measured). Pool on, default = the cores, or VECLIB_MAXIMUM_THREADS if set.
    - Anything else (OpenBLAS that cannot be reached, e.g. on macOS or Windows without
      threadpoolctl; OpenBLAS built with OpenMP; MKL; BLIS): its worker threads would fight the
      pool's chunks, which for OpenBLAS measured slower than no pool at all (strategy
      "uncontrolled" in benchmarks/bench_threads.py), so the ops stay serial and `note` says why.
    """
    name = _numpy_blas_name()
    cores = min(usable_cores(), DEFAULT_MAX_THREADS)
    files, source = _openblas_files()
    for path in files:
        bound = _bind_openblas(path)
        if bound is None:
            continue
        control, layer = bound
        if layer == 1:
            return BlasInfo(name, control, True, max(1, min(control.get(), cores)),
                            f"OpenBLAS {path} found through {source}; nanoframe sets its thread count")
        if layer == 0:
            return BlasInfo(name, None, True, cores, f"OpenBLAS {path} is sequential: nothing to set")
        return BlasInfo(name, None, False, 1, f"OpenBLAS {path} runs OpenMP threads, which nanoframe "
                        "does not set: its ops run on one thread")
    if name == "accelerate":
        limit = _positive_int_env("VECLIB_MAXIMUM_THREADS") or cores
        return BlasInfo(name, None, True, min(limit, cores), "Accelerate: its threads cannot be set "
                        "from inside a process; the ops' threads run beside them")
    if "openblas" in name:
        why = ("install threadpoolctl (pip install threadpoolctl) so that nanoframe can find it"
               if source is None else f"not found through {source}")
        return BlasInfo(name, None, False, 1, f"NumPy's OpenBLAS: {why}; nanoframe's ops run on one thread")
    return BlasInfo(name, None, False, 1, f"NumPy's BLAS is {name!r}, whose threads nanoframe cannot "
                    "set: its ops run on one thread")


_blas_info = None
_blas_lock = threading.Lock()


def blas_info():
    """`find_blas()`, looked up once per process, on the first call (never at import)."""
    global _blas_info
    with _blas_lock:
        if _blas_info is None:
            _blas_info = find_blas()
        return _blas_info


# ---- fork --------------------------------------------------------------------------------------
_fork_callbacks = []


def at_fork_in_child(fn):
    """Call fn() in the child after every os.fork(). The one os.register_at_fork hook is
    registered on the first call (when the thread pool starts), not at import."""
    if not _fork_callbacks and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_run_fork_callbacks)
    _fork_callbacks.append(fn)


def _run_fork_callbacks():
    for fn in _fork_callbacks:
        fn()
