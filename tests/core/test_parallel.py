"""nanoframe.parallel: chunking, fallbacks, errors, and ops that give the same numbers on 1 or 2 threads."""
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import nanoframe
import nanoframe.functional as F
import nanoframe.parallel as par
from nanoframe import runtime
from nanoframe.nn.utils import clip_grad_norm_
from nanoframe.optim import AdamW
from nanoframe.testing import gradcheck

needs_blas = pytest.mark.skipif(runtime.blas_info().control is None,
                                reason="nanoframe cannot set this NumPy's BLAS threads")


def _workers_idle():
    """Wait until every worker has taken up its last task (one the caller ran itself because the
    worker woke late is taken up, and skipped, when the worker next gets the GIL)."""
    for w in par._workers:
        assert w._idle.acquire(timeout=10)
        w._idle.release()


@pytest.fixture
def threads():
    """Yields a setter for the thread count; restores the count (and the BLAS's) afterwards."""
    before = nanoframe.get_num_threads()
    blas_before = par._blas.get() if par._blas is not None else None
    yield nanoframe.set_num_threads
    if par._blas is not None:
        nanoframe.set_num_threads(blas_before)
    par._num_threads = before


@pytest.fixture
def always_parallel(monkeypatch):
    """Thread even the tiny test shapes, in equal chunks."""
    monkeypatch.setattr(par, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(par, "WAKE_UNITS", 0)


def _record():
    seen = []

    def fn(a, b):
        seen.append((a, b, threading.current_thread() is threading.main_thread()))
        return (a, b)

    return seen, fn


@needs_blas
@pytest.mark.parametrize("n", [2, 3, 7, 1000])
def test_chunks_cover_the_range_in_order(threads, always_parallel, n):
    threads(2)
    seen, fn = _record()
    out = par.parallel_for(fn, n)
    assert out == [(0, n // 2), (n // 2, n)]                  # results in chunk order
    assert sorted((a, b) for a, b, _ in seen) == out
    assert [main for a, b, main in seen if a == 0] == [True]  # chunk 0 runs on the caller


@needs_blas
def test_the_worker_runs_its_chunk_while_the_caller_runs_its_own(threads, always_parallel):
    threads(2)
    _workers_idle()
    worker_started = threading.Event()
    seen = {}

    def fn(a, b):
        if a == 0:                                    # the caller's chunk outlasts the worker's wake-up
            assert worker_started.wait(10)
        else:
            worker_started.set()
        seen[a] = threading.current_thread() is threading.main_thread()
        return a

    assert par.parallel_for(fn, 4) == [0, 2]
    assert seen == {0: True, 2: False}


class _LateWorker:
    """A worker that accepts a task and never gets a core: what a busy machine does to a sleeping one."""

    def __init__(self):
        self.posted = []

    def post(self, task):
        self.posted.append(task)
        return True


@needs_blas
def test_the_caller_runs_a_chunk_whose_worker_has_not_started(threads, always_parallel, monkeypatch):
    threads(2)
    late = _LateWorker()
    monkeypatch.setattr(par, "_workers", [late])
    seen, fn = _record()
    assert par.parallel_for(fn, 4) == [(0, 2), (2, 4)]        # the region does not wait for the worker
    assert seen == [(0, 2, True), (2, 4, True)]
    assert not late.posted[0].claim.acquire(blocking=False)   # a worker waking now finds it taken


def test_a_worker_that_woke_late_takes_the_newest_task():
    """A worker whose wake-up call is still pending when the next region posts (the caller ran the
    earlier chunk itself) runs the newest chunk when it wakes, instead of nothing."""
    worker = par._Worker()
    ran = {}

    def chunk(name):
        def fn(a, b):
            ran[name] = threading.current_thread() is not threading.main_thread()
        return fn

    first, second = par._Task(chunk("first"), 0, 1), par._Task(chunk("second"), 1, 2)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)                     # the worker cannot take the GIL from us meanwhile
    try:
        worker.post(first)
        assert first.claim.acquire(blocking=False)    # the caller runs it: the worker has not woken
        first.outcome = first.run()
        worker.post(second)                           # while the first wake-up call is still pending
    finally:
        sys.setswitchinterval(interval)
    assert second.wait() == (True, None)
    assert ran == {"first": False, "second": True}
    worker.stop()


@needs_blas
def test_blas_runs_single_threaded_inside_and_is_restored(threads, always_parallel):
    threads(2)
    inside = par.parallel_for(lambda a, b: par._blas.get(), 4)
    assert inside == [1, 1]
    assert par._blas.get() == 2


def test_small_work_runs_serially_on_the_caller():
    seen, fn = _record()
    assert par.parallel_for(fn, 10, work_per_item=1) == [(0, 10)]
    assert seen == [(0, 10, True)]


@needs_blas
def test_small_work_still_runs_with_a_one_thread_blas(threads):
    threads(2)
    assert par.parallel_for(lambda a, b: par._blas.get(), 10) == [1]   # no spinning BLAS workers after
    assert par._blas.get() == 2


def test_zero_items_call_fn_once_with_an_empty_range():
    assert par.parallel_for(lambda a, b: (a, b), 0) == [(0, 0)]


@needs_blas
def test_nested_region_runs_serially(threads, always_parallel):
    threads(2)

    def outer(a, b):
        return par.parallel_for(lambda c, d: (c, d), 10)

    assert par.parallel_for(outer, 4) == [[(0, 10)], [(0, 10)]]


@needs_blas
@pytest.mark.parametrize("failing_chunk", [0, 1])
def test_error_in_a_chunk_propagates_and_state_is_restored(threads, always_parallel, failing_chunk):
    threads(2)

    def fn(a, b):
        if (a != 0) == bool(failing_chunk):
            raise ValueError(f"chunk starting at {a} failed")
        return a

    with pytest.raises(ValueError, match="failed"):
        par.parallel_for(fn, 4)
    assert par._blas.get() == 2
    assert par.parallel_for(lambda a, b: (a, b), 4) == [(0, 2), (2, 4)]   # the region is free again


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="positive int"):
        nanoframe.set_num_threads(bad)


@needs_blas
def test_set_num_threads_sets_the_blas_too(threads):
    threads(1)
    assert nanoframe.get_num_threads() == 1 and par._blas.get() == 1
    threads(2)
    assert nanoframe.get_num_threads() == 2 and par._blas.get() == 2


# ---- the threaded ops: same numbers on 1 and 2 threads, and correct gradients through the threads ----
def _grads(fn, arrays, seed=0):
    ts = [nanoframe.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    w = np.random.default_rng(seed).standard_normal(out.shape).astype(out.array.dtype)
    (out * nanoframe.tensor(w)).sum().backward()
    return [out.array.copy()] + [t.grad_array.copy() for t in ts]


def _ops(dtype):
    rng = np.random.default_rng(1)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    targets = nanoframe.tensor(rng.integers(0, 11, (30,)))
    return {
        "linear": (lambda x, w, b: F.linear(x, w, b), [r(6, 5, 8), r(7, 8), r(7)]),
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (8,), w, b), [r(6, 5, 8), r(8), r(8)]),
        "gelu": (lambda x: F.gelu(x, approximate="tanh"), [r(6, 5, 8)]),
        "causal_self_attention": (lambda qkv: F.causal_self_attention(qkv, 2), [r(4, 9, 12)]),
        "attention_batch_1": (lambda qkv: F.causal_self_attention(qkv, 3), [r(1, 9, 18)]),  # split by heads
        "cross_entropy": (lambda x: F.cross_entropy(x, targets, reduction="none"), [r(30, 11)]),
    }


@needs_blas
@pytest.mark.parametrize("name", ["linear", "layer_norm", "gelu", "causal_self_attention", "attention_batch_1", "cross_entropy"])
def test_threaded_op_equals_serial(threads, always_parallel, monkeypatch, name):
    from nanoframe.ops import activation, norm
    monkeypatch.setattr(activation, "CHUNK", 16)      # several chunks / blocks even on small shapes
    monkeypatch.setattr(norm, "LN_BLOCK_ELEMS", 32)
    fn, arrays = _ops(np.float32)[name]
    threads(1)
    serial = _grads(fn, arrays)
    threads(2)
    threaded = _grads(fn, arrays)
    for s, t in zip(serial, threaded):
        np.testing.assert_allclose(t, s, rtol=1e-6, atol=1e-6)


@needs_blas
@pytest.mark.parametrize("name", ["linear", "layer_norm", "gelu", "causal_self_attention", "attention_batch_1", "cross_entropy"])
def test_gradcheck_through_the_threads(threads, always_parallel, monkeypatch, name):
    from nanoframe.ops import activation, norm
    monkeypatch.setattr(activation, "CHUNK", 16)
    monkeypatch.setattr(norm, "LN_BLOCK_ELEMS", 32)
    threads(2)
    fn, arrays = _ops(np.float64)[name]
    gradcheck(fn, [nanoframe.tensor(a, requires_grad=True) for a in arrays])


@needs_blas
def test_adamw_and_clipping_equal_serial(threads, always_parallel, monkeypatch):
    from nanoframe.optim import adam
    monkeypatch.setattr(adam, "CHUNK", 8)
    rng = np.random.default_rng(2)
    shapes = [(5, 7), (7,), (3, 4, 2), (1,)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) * 3 for s in shapes] for _ in range(3)]

    def run(n):
        threads(n)
        params = [nanoframe.tensor(a.copy(), requires_grad=True) for a in start]
        opt = AdamW(params, lr=0.1, weight_decay=0.1)
        norms = []
        for step in grads:
            for p, g in zip(params, step):
                p.grad_array = g.copy()
            norms.append(float(clip_grad_norm_(params, 1.0)))
            opt.step()
        return norms, [p.array for p in params]

    norms1, params1 = run(1)
    norms2, params2 = run(2)
    assert norms1 == norms2
    for a, b in zip(params1, params2):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(params1[0], start[0])


@needs_blas
def test_threads_only_when_every_chunk_gets_enough_work(threads, monkeypatch):
    threads(2)
    monkeypatch.setattr(par, "MIN_PARALLEL_SIZE", 10)
    monkeypatch.setattr(par, "WAKE_UNITS", 0)
    assert par.parallel_for(lambda a, b: (a, b), 15) == [(0, 15)]          # 2 chunks of 7.5 < 10
    assert par.parallel_for(lambda a, b: (a, b), 20) == [(0, 10), (10, 20)]
    assert par.parallel_for(lambda a, b: (a, b), 4, work_per_item=5) == [(0, 2), (2, 4)]


@needs_blas
def test_caller_takes_a_larger_share_for_the_workers_wake_up(threads, always_parallel, monkeypatch):
    threads(2)
    monkeypatch.setattr(par, "WAKE_UNITS", 100)
    assert par.parallel_for(lambda a, b: (a, b), 100, work_per_item=1) == [(0, 75), (75, 100)]   # capped at 3/4
    assert par.parallel_for(lambda a, b: (a, b), 1000, work_per_item=1) == [(0, 550), (550, 1000)]
    assert par.parallel_for(lambda a, b: (a, b), 2, work_per_item=1) == [(0, 1), (1, 2)]         # >= 1 item each


@needs_blas
def test_set_num_threads_inside_a_region_raises_instead_of_deadlocking(threads, always_parallel):
    threads(2)

    def fn(a, b):
        nanoframe.set_num_threads(2)

    with pytest.raises(RuntimeError, match="inside a parallel region"):
        par.parallel_for(fn, 4)
    assert par.parallel_for(lambda a, b: (a, b), 4) == [(0, 2), (2, 4)]


class _Interrupt(Exception):
    pass


@needs_blas
def test_interrupt_while_waiting_still_waits_for_the_worker(threads, always_parallel):
    """A Ctrl-C while the caller waits must not leave the worker's chunk running into the next region."""
    threads(2)
    _workers_idle()
    out = np.zeros(4)

    worker_started = threading.Event()
    interrupt = [True]

    def fill(a, b):
        if a > 0:
            worker_started.set()
            if interrupt[0]:                           # the caller is hit while the worker's chunk runs
                threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
            time.sleep(0.2)
        else:
            assert worker_started.wait(10)             # (the worker took its chunk: the caller waits for it)
        out[a:b] += 1.0

    def on_signal(signum, frame):
        raise _Interrupt

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with pytest.raises(_Interrupt):
            par.parallel_for(fill, 4)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    np.testing.assert_array_equal(out, [1, 1, 1, 1])   # the interrupted region finished every chunk
    out[:] = 0
    worker_started.clear()
    interrupt[0] = False
    _workers_idle()
    par.parallel_for(fill, 4)                          # and the next region is in step again
    np.testing.assert_array_equal(out, [1, 1, 1, 1])


def test_linear_backward_with_zero_rows(threads):
    x = nanoframe.tensor(np.zeros((0, 4), np.float32), requires_grad=True)
    w = nanoframe.randn(3, 4, requires_grad=True)
    b = nanoframe.randn(3, requires_grad=True)
    F.linear(x, w, b).sum().backward()
    np.testing.assert_array_equal(w.grad_array, np.zeros((3, 4)))
    np.testing.assert_array_equal(b.grad_array, np.zeros(3))
    assert x.grad_array.shape == (0, 4)


def test_without_a_usable_blas_set_num_threads_warns_and_stays_serial(monkeypatch):
    nanoframe.get_num_threads()                        # started: the fakes below are what it uses
    serial = runtime.BlasInfo("mkl", None, False, 1, "NumPy's BLAS is 'mkl', whose threads nanoframe cannot set")
    monkeypatch.setattr(runtime, "_blas_info", serial)
    monkeypatch.setattr(par, "_blas", None)
    monkeypatch.setattr(par, "_num_threads", 1)
    with pytest.warns(RuntimeWarning, match="'mkl', whose threads nanoframe cannot set; ignoring n=2"):
        nanoframe.set_num_threads(2)
    assert nanoframe.get_num_threads() == 1
    seen, fn = _record()
    assert par.parallel_for(fn, 10**6, work_per_item=10**6) == [(0, 10**6)]
