"""Intra-op threads: the fused ops split their rows over a small thread pool, as PyTorch does.

NumPy runs elementwise work (exp, the softmax passes, GELU, layer norm) on one core, and its
batched matmul over many small matrices (attention's (B, nh) stack) calls a multi-threaded BLAS
once per matrix, where thread start-up dominates. PyTorch instead splits such ops over its
intra-op threads, each running single-threaded kernels. `parallel_for` does the same with plain
Python threads: NumPy releases the GIL inside ufuncs and BLAS calls, so the chunks really run
side by side. While a parallel region runs, the BLAS is switched to one thread (so that the two
levels of threading do not fight over the cores) and restored afterwards.

The BLAS thread count is reached through the OpenBLAS shared library that NumPy loaded (found in
/proc/self/maps: Linux only). Where it cannot be found, or the BLAS has one thread (e.g. under
OPENBLAS_NUM_THREADS=1), every op runs serially, exactly as before. Results do not depend on the
thread count: each chunk does the same arithmetic on its own rows.

    nanoframe.get_num_threads()      # default: the BLAS thread count, capped by the usable cores and 8
    nanoframe.set_num_threads(1)     # serial ops and a one-thread BLAS (like torch.set_num_threads)
"""
import ctypes
import os
import threading
import warnings


def _find_openblas():
    """(set_num_threads, get_num_threads) ctypes functions of NumPy's OpenBLAS, or None."""
    try:
        import numpy  # noqa: F401  (loads the BLAS library into the process)
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths, key=lambda p: ("numpy" not in p, p)):   # NumPy's own copy first
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            try:
                set_n = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                get_n = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            set_n.argtypes, set_n.restype = (ctypes.c_int,), None
            get_n.argtypes, get_n.restype = (), ctypes.c_int
            return set_n, get_n
    return None


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_local = threading.local()    # .in_region: this thread is running a chunk of a parallel region


class _Worker:
    """A daemon thread that runs one chunk at a time. The hand-over is two plain locks: a round
    trip costs ~13 us here against ~36 us through concurrent.futures (Future, queue, condition)."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task = self._outcome = None
        threading.Thread(target=self._loop, daemon=True, name="nanoframe-worker").start()

    def _loop(self):
        _local.in_region = True
        while True:
            self._go.acquire()
            task, self._task = self._task, None
            if task is None:                           # stop()
                return
            fn, a, b = task
            try:
                self._outcome = (True, fn(a, b))
            except BaseException as e:                 # handed to the caller by wait()
                self._outcome = (False, e)
            self._done.release()

    def start(self, fn, a, b):
        self._task = (fn, a, b)
        self._go.release()

    def wait(self):
        """(ok, result or exception) of the started chunk. Waits for it to finish even through a
        KeyboardInterrupt (re-raised afterwards): a chunk left running would still write into the
        op's arrays, and the two locks would fall out of step for the next region."""
        interrupted = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as e:                 # e.g. Ctrl-C while waiting
                interrupted = e
        outcome, self._outcome = self._outcome, None
        if interrupted is not None:
            raise interrupted
        return outcome

    def stop(self):
        self._task = None
        self._go.release()


_blas = _find_openblas()
# Default cap: the Python threads contend for the GIL between NumPy calls, so returns shrink with
# every thread added (only 2 cores were measured here); set_num_threads(n) goes past it.
DEFAULT_MAX_THREADS = 8
_num_threads = 1 if _blas is None else max(1, min(_blas[1](), _usable_cores(), DEFAULT_MAX_THREADS))
_workers = []                # _num_threads - 1 of them, started on first use
_region = threading.Lock()   # one parallel region at a time; a nested or concurrent call runs serially

# Work is counted in elementwise units: one float32 element through one ufunc (~1 ns), which is
# about GEMM_UNIT multiply-adds of a one-thread BLAS GEMM. A chunk with less work than
# MIN_PARALLEL_SIZE (~15 us) is not worth a thread hand-off (~15-40 us on a 2-core VM).
MIN_PARALLEL_SIZE = 1 << 14
GEMM_UNIT = 64
WAKE_UNITS = 20000  # ~20 us: how late a sleeping worker starts on a chunk (measured 15-40 us)


_blas_outside = None         # the BLAS thread count to restore when the current region ends


def _forget_workers():
    """In a forked child the worker threads do not exist: start new ones when needed (and if the
    fork happened inside a region, put the BLAS thread count back, since no one else will)."""
    global _workers, _region
    if _region.locked() and _blas is not None and _blas_outside is not None:
        _blas[0](_blas_outside)
    _workers, _region = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def get_num_threads():
    """Threads the fused ops use (1 = serial)."""
    return _num_threads


def set_num_threads(n):
    """Use n threads in the fused ops and in the BLAS (PyTorch's torch.set_num_threads).

    Without a BLAS nanoframe can control (non-Linux, or not OpenBLAS) the ops stay serial: a
    warning says so and the BLAS keeps its own setting (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS...).
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    if getattr(_local, "in_region", False):
        raise RuntimeError("set_num_threads: cannot be called from inside a parallel region "
                           "(from a function run by nanoframe.parallel.parallel_for)")
    if _blas is None:
        if n != 1:
            warnings.warn("set_num_threads: nanoframe cannot control this NumPy's BLAS (OpenBLAS "
                          f"not found), so its ops stay serial; ignoring n={n}", RuntimeWarning, stacklevel=2)
        return
    with _region:
        _blas[0](n)
        _num_threads = n
        while len(_workers) > n - 1:
            _workers.pop().stop()


def parallel_for(fn, n, work_per_item=1):
    """Call fn(start, stop) on contiguous chunks covering range(n), one chunk per thread.

    The chunks run concurrently (chunk 0 on the calling thread) with the BLAS on one thread;
    returns the results in chunk order. Uses only as many threads as give every chunk at least
    MIN_PARALLEL_SIZE of work (n * work_per_item in all). With too little work for two chunks,
    fn(0, n) runs on the calling thread, still with a one-thread BLAS: a small multi-threaded BLAS
    call gains little and leaves OpenBLAS's workers spinning for ~0.1 s on the cores that the next
    op's chunks need. Inside another parallel region, or with threads off, fn(0, n) just runs.
    fn must write only to its own rows (or return its results) and must not draw random numbers.
    """
    global _blas_outside
    if _num_threads <= 1 or not _region.acquire(blocking=False):
        return [fn(0, n)]
    try:
        k = min(_num_threads, n, n * work_per_item // max(1, MIN_PARALLEL_SIZE))   # chunks >= MIN_PARALLEL_SIZE
        _blas_outside = _blas[1]()
        _blas[0](1)
        _local.in_region = True
        try:
            if k <= 1:
                return [fn(0, n)]
            while len(_workers) < k - 1:
                _workers.append(_Worker())
            bounds = [n * i // k for i in range(k + 1)]
            if k == 2 and WAKE_UNITS:
                # the worker starts ~WAKE_UNITS of work late: hand the caller that much more
                share = 0.5 + WAKE_UNITS / (2.0 * n * work_per_item)
                bounds[1] = min(n - 1, max(1, round(n * min(share, 0.75))))
            started, outcomes = [], []
            try:
                for i in range(1, k):
                    _workers[i - 1].start(fn, bounds[i], bounds[i + 1])
                    started.append(_workers[i - 1])
                first = fn(bounds[0], bounds[1])
            finally:
                interrupt = None
                for w in started:                      # wait for every started chunk, even on an error
                    try:
                        outcomes.append(w.wait())
                    except BaseException as e:         # an interrupt while waiting: after all chunks
                        interrupt = interrupt or e
                if interrupt is not None:
                    raise interrupt
        finally:
            _local.in_region = False
            _blas[0](_blas_outside)
        for ok, value in outcomes:
            if not ok:
                raise value
        return [first] + [value for _, value in outcomes]
    finally:
        _region.release()
