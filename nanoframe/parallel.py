"""Intra-op threads: the fused ops split their rows over a small thread pool, as PyTorch does.

NumPy runs elementwise work (exp, the softmax passes, GELU, layer norm) on one core, and its
batched matmul over many small matrices (attention's (B, nh) stack) calls a multi-threaded BLAS
once per matrix, where thread start-up dominates. PyTorch instead splits such ops over its
intra-op threads, each running single-threaded kernels. `parallel_for` does the same with plain
Python threads: NumPy releases the GIL inside ufuncs and BLAS calls, so the chunks really run
side by side. Each chunk does the same arithmetic on its own rows, and a sum over rows is taken
whole in one chunk or over fixed blocks in block order, so results do not depend on which thread
ran a chunk: a run repeats bit for bit at the same thread count. Across thread counts they agree
to rounding, and bit for bit on the training shapes measured (benchmarks/RESULTS.md); the
exception is a GEMM chunk of a few rows, which the BLAS may round differently from the same rows
inside a larger product (OpenBLAS's small-matrix kernels).

The thread contract (tests/core/test_runtime.py checks each point):

- Importing nanoframe does nothing to threads. NumPy's BLAS is looked up (nanoframe.runtime) at
  the first parallel region, or at the first get_num_threads / set_num_threads.
- A parallel region (the body of one fused op) sets the process's BLAS thread count to 1 and, when
  it ends, back to the count it found. Outside regions nanoframe leaves the count alone, except
  in set_num_threads. Why a one-thread BLAS: after a multi-threaded call, OpenBLAS's idle workers
  spin on the cores that the region's chunks need (benchmarks/RESULTS.md, "Threads and the BLAS").
- The count is process-wide, so another Python thread's NumPy calls during a region also run a
  one-thread BLAS (same results; a large GEMM there is slower). Change the count (threadpoolctl,
  set_num_threads) only while no nanoframe op runs in another thread: a region ending afterwards
  puts back the count it found.
- One region at a time: an op whose region would start while another thread's region runs does
  its whole work on its own thread, leaving the BLAS count to the running region.
- set_num_threads(n) sets nanoframe's threads and the BLAS count to n (torch.set_num_threads).
  To turn the threads off: set_num_threads(1), or OPENBLAS_NUM_THREADS=1 (or OMP_NUM_THREADS=1)
  before Python starts. The ops then run serially and never touch the BLAS count.
- Where nanoframe cannot set the BLAS count, nanoframe.runtime.find_blas decides: Accelerate keeps
  the pool and is never touched; any other BLAS out of reach keeps the ops serial and says so once
  in a RuntimeWarning.

    nanoframe.get_num_threads()      # default: the BLAS thread count, capped by the usable cores and 8
    nanoframe.set_num_threads(1)     # serial ops and a one-thread BLAS (like torch.set_num_threads)
"""
import threading
import warnings

from nanoframe import runtime

_local = threading.local()    # .in_region: this thread is running a chunk of a parallel region


class _Task:
    """One chunk fn(a, b) of a region. Whoever takes `claim` first runs it: the worker it was posted
    to, or the caller once its own chunk is done and the worker has not started (still waking, or
    not given a core or the GIL by a busy machine). A worker that has not started never holds a
    region up; on a quiet machine it takes its chunk long before the caller is done."""

    __slots__ = ("fn", "a", "b", "claim", "done", "outcome")

    def __init__(self, fn, a, b):
        self.fn, self.a, self.b = fn, a, b
        self.claim = threading.Lock()
        self.done = threading.Lock()                   # held until the worker has run the chunk
        self.done.acquire()
        self.outcome = None

    def run(self):
        """(True, result) or (False, exception) of fn(a, b)."""
        try:
            return True, self.fn(self.a, self.b)
        except BaseException as e:                     # handed to the caller
            return False, e

    def wait(self):
        """The outcome of a chunk the worker took. Waits for it to finish even through a
        KeyboardInterrupt (re-raised afterwards): a chunk left running would still write into the
        op's arrays during the next region."""
        interrupted = None
        while True:
            try:
                self.done.acquire()
                break
            except BaseException as e:                 # e.g. Ctrl-C while waiting
                interrupted = e
        if interrupted is not None:
            raise interrupted
        return self.outcome


_STOP = object()   # the task that ends a worker's thread


class _Worker:
    """A daemon thread that runs posted chunks. The hand-over is plain locks, cheaper than a round
    trip through concurrent.futures (Future, queue, condition): benchmarks/bench_threads.py --handoff."""

    def __init__(self):
        self._go = threading.Lock()                    # released to wake the thread
        self._go.acquire()
        self._idle = threading.Lock()                  # held from a wake-up call until the thread took it
        self._task = None                              # the newest task posted
        threading.Thread(target=self._loop, daemon=True, name="nanoframe-worker").start()

    def _loop(self):
        _local.in_region = True
        while True:
            self._go.acquire()
            task = self._task
            if task is _STOP:
                return
            if task.claim.acquire(blocking=False):     # not run by the caller meanwhile
                task.outcome = task.run()
                self._idle.release()                   # ready before the caller is woken below
                task.done.release()
            else:
                self._idle.release()

    def post(self, task):
        """Hand task over. A thread that has not woken up yet for an earlier task (which the caller
        then ran itself) takes this newest one when it does."""
        self._task = task
        if self._idle.acquire(blocking=False):         # else a wake-up call is still pending
            self._go.release()

    def stop(self):
        self._idle.acquire()                           # no wake-up call pending: it waits for the next
        self._task = _STOP
        self._go.release()


# Set by _start(), at the first region or get/set_num_threads (never at import):
_started = False
_start_lock = threading.Lock()
_blas = None                 # runtime.BlasThreads when nanoframe sets the BLAS count, else None
_num_threads = 1
_workers = []                # _num_threads - 1 of them, started on first use
_region = threading.Lock()   # one parallel region at a time; a nested or concurrent call runs serially

# Work is counted in elementwise units: one float32 element through one ufunc, and GEMM_UNIT
# multiply-adds of a one-thread BLAS GEMM (a rough exchange rate). A chunk with less work than
# MIN_PARALLEL_SIZE is not worth a thread hand-off, and a sleeping worker starts on its chunk
# about WAKE_UNITS late. benchmarks/bench_threads.py --handoff measures all three on a machine.
MIN_PARALLEL_SIZE = 1 << 14
GEMM_UNIT = 64
WAKE_UNITS = 20000


_blas_outside = None         # the BLAS thread count to restore when the current region ends


def _start(quiet=False):
    """Look up NumPy's BLAS (nanoframe.runtime.blas_info) and take its default thread count; warn
    once, unless quiet, when the ops must stay serial on a machine with several cores."""
    global _started, _blas, _num_threads
    with _start_lock:
        if _started:
            return
        info = runtime.blas_info()
        _blas, _num_threads = info.control, (info.default_threads if info.pool else 1)
        runtime.at_fork_in_child(_forget_workers)
        _started = True
    if not info.pool and not quiet and runtime.usable_cores() > 1:
        warnings.warn(f"nanoframe: {info.note} (nanoframe.set_num_threads(1) silences this)",
                      RuntimeWarning, stacklevel=3)


def _forget_workers():
    """In a forked child the worker threads do not exist: start new ones when needed (and if the
    fork happened inside a region, put the BLAS thread count back, since no one else will)."""
    global _workers, _region
    if _region.locked() and _blas is not None and _blas_outside is not None:
        _blas.set(_blas_outside)
    _workers, _region = [], threading.Lock()


def get_num_threads():
    """Threads the fused ops use (1 = serial)."""
    if not _started:
        _start()
    return _num_threads


def set_num_threads(n):
    """Use n threads in the fused ops and in the BLAS (PyTorch's torch.set_num_threads).

    Where nanoframe cannot run its pool (see nanoframe.runtime.find_blas) the ops stay serial: a
    warning says why and the BLAS keeps its own setting. Where it runs the pool but cannot set
    the BLAS count (Accelerate), n sets the pool only.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    if getattr(_local, "in_region", False):
        raise RuntimeError("set_num_threads: cannot be called from inside a parallel region "
                           "(from a function run by nanoframe.parallel.parallel_for)")
    if not _started:
        _start(quiet=True)
    info = runtime.blas_info()
    if not info.pool:
        if n != 1:
            warnings.warn(f"set_num_threads: {info.note}; ignoring n={n}", RuntimeWarning, stacklevel=2)
        return
    with _region:
        if _blas is not None:
            _blas.set(n)
        _num_threads = n
        while len(_workers) > n - 1:
            _workers.pop().stop()


def parallel_for(fn, n, work_per_item=1):
    """Call fn(start, stop) on contiguous chunks covering range(n), one chunk per thread.

    The chunks run concurrently (chunk 0 on the calling thread) with the BLAS on one thread;
    returns the results in chunk order. Uses only as many threads as give every chunk at least
    MIN_PARALLEL_SIZE of work (n * work_per_item in all). With too little work for two chunks,
    fn(0, n) runs on the calling thread, still with a one-thread BLAS: a small multi-threaded BLAS
    call gains little and leaves OpenBLAS's workers spinning on the cores that the next op's
    chunks need. Inside another parallel region, or with threads off, fn(0, n) just runs.
    fn must write only to its own rows (or return its results) and must not draw random numbers.
    """
    global _blas_outside
    if not _started:
        _start()
    if _num_threads <= 1 or not _region.acquire(blocking=False):
        return [fn(0, n)]
    try:
        k = min(_num_threads, n, n * work_per_item // max(1, MIN_PARALLEL_SIZE))   # chunks >= MIN_PARALLEL_SIZE
        if _blas is not None:
            _blas_outside = _blas.get()
            _blas.set(1)
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
            tasks = [_Task(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
            for w, task in zip(_workers, tasks):
                w.post(task)
            try:
                first = fn(bounds[0], bounds[1])
            except BaseException:
                for task in tasks:
                    if task.claim.acquire(blocking=False):   # not started by a worker: cancelled
                        task.done.release()
                _wait_all(tasks)                       # and the started ones finish first
                raise
            for task in tasks:
                if task.claim.acquire(blocking=False):  # no worker took it (yet): run it here
                    task.outcome = task.run()
                    task.done.release()
            outcomes = _wait_all(tasks)
        finally:
            _local.in_region = False
            if _blas is not None:
                _blas.set(_blas_outside)
        for ok, value in outcomes:
            if not ok:
                raise value
        return [first] + [value for _, value in outcomes]
    finally:
        _region.release()


def _wait_all(tasks):
    """The outcomes of every task, in order, waiting for those a worker runs; an interrupt while
    waiting is re-raised only after all of them have finished."""
    outcomes, interrupt = [], None
    for task in tasks:
        try:
            outcomes.append(task.wait())
        except BaseException as e:                     # an interrupt while waiting: after all chunks
            interrupt = interrupt or e
    if interrupt is not None:
        raise interrupt
    return outcomes


def parallel(n, work_per_item=1):
    """parallel_for as a decorator that runs at once: one line above the math, the way llm.c writes
    `#pragma omp parallel for` above a loop.

        @parallel(B, work_per_item=T * C)
        def _(b0, b1):                    # rows [b0, b1) of this chunk
            np.multiply(x[b0:b1], w, out=y[b0:b1])
    """
    def run(fn):
        parallel_for(fn, n, work_per_item)

    return run


def parallel_blocks(n, block, work_per_elem=1):
    """@parallel for elementwise chains over n elements in cache-sized blocks: the body gets
    element ranges [i, j) made of whole blocks (of `block` elements; the last one may be short)."""
    def run(fn):
        parallel_for(lambda k0, k1: fn(k0 * block, min(k1 * block, n)), -(-n // block),
                     work_per_item=block * work_per_elem)

    return run
