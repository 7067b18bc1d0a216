"""nanoframe.runtime: importing nanoframe changes nothing in the process; the thread contract written
in nanoframe.parallel's docstring, point by point; BLAS discovery on each kind of platform; the
opt-in malloc tuning; files that follow the umask."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import types
import warnings

import numpy as np
import pytest

import nanoframe
import nanoframe.functional as F
import nanoframe.parallel as par
from nanoframe import io as nfio
from nanoframe import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINUX_GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
needs_blas = pytest.mark.skipif(runtime.blas_info().control is None,
                                reason="nanoframe cannot set this NumPy's BLAS threads")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")


def _python(code, args=(), **env):
    """Run code in a fresh interpreter that imports this clone's nanoframe; its stdout's last line as JSON."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, **env}
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                         env=full_env, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---- importing nanoframe changes nothing ---------------------------------------------------------
# A 24 MiB malloc is served by mmap under glibc's default thresholds (its dynamic threshold only
# rises to the size of an mmapped block freed earlier, and a fresh interpreter frees none that
# big) and from the heap once tune_malloc() raised M_MMAP_THRESHOLD to 32 MiB: mallinfo2's hblkhd
# (bytes in mmapped blocks) tells which. glibc has no getter for the thresholds themselves.
MMAP_PROBE = """
    import ctypes
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                   "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    def malloc_mmaps_24_mib():
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
        libc.free.argtypes = (ctypes.c_void_p,)
        before = libc.mallinfo2().hblkhd
        p = libc.malloc(24 << 20)
        mmapped = libc.mallinfo2().hblkhd - before >= 24 << 20
        libc.free(p)
        return mmapped
"""

IMPORT_SPY = """
    import builtins, ctypes, json, os, sys
    import numpy                                    # NumPy's own import is not under test
    with open("/proc/self/status") as f:
        umask_before = [line for line in f if line.startswith("Umask:")]
    calls = []
    def spy(owner, name, record):
        real = getattr(owner, name)
        def wrapper(*args, **kwargs):
            what = record(*args, **kwargs)
            if what:
                calls.append(f"{name}: {what}")
            return real(*args, **kwargs)
        setattr(owner, name, wrapper)
        return real
    spy(os, "umask", lambda mask: oct(mask))
    # the standard library registers its own hooks (random, ...): count only nanoframe's
    spy(os, "register_at_fork", lambda **hooks: ", ".join(
        f.__module__ for f in hooks.values() if f.__module__.startswith("nanoframe")))
    real_open = spy(builtins, "open",                # what would read /proc/self/maps
                    lambda file, *args, **kwargs: str(file) if str(file).startswith("/proc") else None)
    real_cdll_init = ctypes.CDLL.__init__            # what dlopens a library, or libc for mallopt
    def cdll_init(self, name, *args, **kwargs):
        calls.append(f"CDLL({name})")
        real_cdll_init(self, name, *args, **kwargs)
    ctypes.CDLL.__init__ = cdll_init
    import nanoframe, nanoframe.cli, nanoframe.io, nanoframe.models, nanoframe.tokenizer
    import nanoframe.training.trainer
    ctypes.CDLL.__init__, builtins.open = real_cdll_init, real_open
    with open("/proc/self/status") as f:
        umask_after = [line for line in f if line.startswith("Umask:")]
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_import_sets_no_umask_opens_no_library_and_registers_no_fork_hook():
    out = _python(IMPORT_SPY + """
    print(json.dumps({"calls": calls, "umask": umask_before == umask_after,
                      "threadpoolctl": "threadpoolctl" in sys.modules,
                      "blas_looked_up": nanoframe.runtime._blas_info is not None,
                      "pool_started": nanoframe.parallel._started,
                      "malloc_tuned": nanoframe.runtime.malloc_tuned()}))
    """)
    assert out == {"calls": [], "umask": True, "threadpoolctl": False, "blas_looked_up": False,
                   "pool_started": False, "malloc_tuned": False}


@pytest.mark.skipif(not LINUX_GLIBC, reason="glibc's mallinfo2")
def test_import_leaves_malloc_alone_and_tune_malloc_is_what_changes_it():
    # one probe per process: freeing the probe's mmapped block raises glibc's dynamic threshold
    probe = MMAP_PROBE + """
    import json, sys
    import nanoframe
    from nanoframe import runtime
    tuned = runtime.tune_malloc() if sys.argv[1:] == ["tune"] else None
    print(json.dumps({"tuned": tuned, "state": runtime.malloc_tuned(), "mmapped": malloc_mmaps_24_mib()}))
    """
    assert _python(probe) == {"tuned": None, "state": False, "mmapped": True}
    # the probe can fail: after tune_malloc() the same allocation comes from the heap
    assert _python(probe, args=["tune"]) == {"tuned": True, "state": True, "mmapped": False}
    assert _python(probe, args=["tune"], NANOFRAME_MALLOC_TUNING="0") == {"tuned": False, "state": False,
                                                                          "mmapped": True}


@pytest.mark.skipif(not LINUX_GLIBC, reason="glibc's mallinfo2")
def test_the_cli_turns_malloc_tuning_on():
    out = _python(MMAP_PROBE + """
    import json
    import nanoframe.cli
    try:
        nanoframe.cli.main(["--help"])
    except SystemExit:
        pass
    print(json.dumps({"tuned": nanoframe.runtime.malloc_tuned(), "mmapped": malloc_mmaps_24_mib()}))
    """)
    assert out == {"tuned": True, "mmapped": False}


def test_trainer_train_turns_malloc_tuning_on_first(monkeypatch):
    from nanoframe.training.trainer import Trainer
    calls = []
    monkeypatch.setattr(runtime, "tune_malloc", lambda: calls.append("tune_malloc"))
    with pytest.raises(AttributeError):               # a stand-in without a config stops train() right after
        Trainer.train(types.SimpleNamespace())
    assert calls == ["tune_malloc"]


def test_import_leaves_the_blas_thread_count():
    pytest.importorskip("threadpoolctl")
    out = _python("""
    import json
    import numpy
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(3, user_api="blas")          # a count that no default would give on most machines
    before = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    import nanoframe, nanoframe.tokenizer
    print(json.dumps({"before": before,
                      "after": [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]}))
    """)
    assert out["before"] and out["after"] == out["before"]


def test_the_blas_is_looked_up_at_the_first_parallel_region():
    out = _python("""
    import json
    import nanoframe, nanoframe.functional as F
    from nanoframe import parallel, runtime
    before = (runtime._blas_info is not None, parallel._started)
    F.gelu(nanoframe.randn(4, 8))
    print(json.dumps({"before": before, "after": (runtime._blas_info is not None, parallel._started)}))
    """)
    assert out == {"before": [False, False], "after": [True, True]}


# ---- the thread contract -------------------------------------------------------------------------
@pytest.fixture
def pool(monkeypatch):
    """Two threads, chunks on even the tiny test shapes, and the BLAS at its own count afterwards."""
    blas = runtime.blas_info().control
    threads_before, blas_before = nanoframe.get_num_threads(), blas.get()
    monkeypatch.setattr(par, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(par, "WAKE_UNITS", 0)
    nanoframe.set_num_threads(2)
    yield blas
    nanoframe.set_num_threads(threads_before)
    blas.set(blas_before)


@needs_blas
def test_a_region_runs_a_one_thread_blas_and_puts_back_the_count_it_found(pool):
    pool.set(3)                                       # the user's own count, set between regions
    assert par.parallel_for(lambda a, b: pool.get(), 4) == [1, 1]
    assert pool.get() == 3
    pool.set(2)
    assert par.parallel_for(lambda a, b: pool.get(), 4) == [1, 1]
    assert pool.get() == 2


@needs_blas
def test_the_fused_ops_leave_the_blas_count_alone_between_regions(pool):
    pool.set(3)
    rng = np.random.default_rng(0)
    x = nanoframe.tensor(rng.standard_normal((4, 9, 12)).astype(np.float32), requires_grad=True)
    w = nanoframe.tensor(rng.standard_normal((12, 12)).astype(np.float32), requires_grad=True)
    h = F.linear(x, w)
    assert pool.get() == 3
    h = F.layer_norm(F.gelu(h), (12,))
    assert pool.get() == 3
    F.causal_self_attention(h, 2).sum().backward()
    assert pool.get() == 3 and x.grad_array.shape == (4, 9, 12)


@needs_blas
def test_another_thread_calling_numpy_sees_a_one_thread_blas_during_a_region(pool):
    in_region, done = threading.Event(), threading.Event()
    seen = {}

    def chunk(a, b):
        if a == 0:                                    # the caller's chunk holds the region open
            in_region.set()
            assert done.wait(10)
        return a

    def other_thread():
        assert in_region.wait(10)
        seen["count"] = pool.get()
        ones = np.ones((64, 64), np.float32)
        seen["matmul"] = ones @ ones                  # runs, on one BLAS thread, with the same result
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    assert par.parallel_for(chunk, 4) == [0, 2]
    t.join()
    assert seen["count"] == 1
    np.testing.assert_array_equal(seen["matmul"], np.full((64, 64), 64, np.float32))
    assert pool.get() == 2                            # and after the region, the count it found


@needs_blas
def test_a_region_started_while_another_threads_region_runs_does_its_work_serially(pool):
    in_region, done = threading.Event(), threading.Event()
    seen = {}

    def chunk(a, b):
        if a == 0:
            in_region.set()
            assert done.wait(10)

    def other_thread():
        assert in_region.wait(10)
        me = threading.current_thread()
        seen["chunks"] = par.parallel_for(lambda a, b: (a, b, threading.current_thread() is me), 4)
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    par.parallel_for(chunk, 4)
    t.join()
    assert seen["chunks"] == [(0, 4, True)]           # one chunk, on its own thread
    assert pool.get() == 2


@needs_blas
def test_set_num_threads_one_turns_the_pool_off_and_regions_never_touch_the_blas(pool):
    nanoframe.set_num_threads(1)
    assert pool.get() == 1                            # torch.set_num_threads: the BLAS too
    pool.set(2)                                       # the user's choice afterwards is kept, even inside
    main = threading.main_thread()
    assert par.parallel_for(lambda a, b: (a, b, pool.get(), threading.current_thread() is main), 4) == [(0, 4, 2, True)]
    assert pool.get() == 2


@needs_blas
def test_openblas_num_threads_one_turns_the_pool_off():
    out = _python("""
    import json
    import nanoframe
    from nanoframe import parallel
    print(json.dumps({"threads": nanoframe.get_num_threads(),
                      "chunks": parallel.parallel_for(lambda a, b: (a, b), 10**6, work_per_item=10**6)}))
    """, OPENBLAS_NUM_THREADS="1")
    assert out == {"threads": 1, "chunks": [[0, 10**6]]}


@needs_blas
@needs_fork
def test_a_forked_child_starts_new_workers_and_gets_the_blas_count_back(pool):
    """Forked inside a region (the BLAS at 1 thread, a worker busy): the child has no workers, so it
    starts new ones, and it puts back the count the region found, since no one else will."""
    def in_child():
        ok = pool.get() == 2
        ok = ok and par.parallel_for(lambda a, b: (a, b), 4) == [(0, 2), (2, 4)]
        return ok and pool.get() == 2

    par.parallel_for(lambda a, b: None, 4)            # the pool's worker exists in the parent
    statuses = []

    def chunk(a, b):
        if a == 0:
            pid = os.fork()
            if pid == 0:                              # the child: report through the exit status only
                code = 1
                try:
                    code = 0 if in_child() else 2
                finally:
                    os._exit(code)
            statuses.append(_wait(pid))

    par.parallel_for(chunk, 4)
    assert statuses == [0]
    assert pool.get() == 2


def _wait(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


# ---- BLAS discovery on each kind of platform -----------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps")
def test_threadpoolctl_and_proc_self_maps_find_the_same_openblas(monkeypatch):
    pytest.importorskip("threadpoolctl")
    through_threadpoolctl = runtime.find_blas()
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)        # as if it were not installed
    through_maps = runtime.find_blas()
    assert "threadpoolctl" in through_threadpoolctl.note and "/proc/self/maps" in through_maps.note
    if through_threadpoolctl.control is None:
        assert through_maps.control is None
    else:
        assert through_maps.control.path == through_threadpoolctl.control.path
        assert through_maps.control.get() == through_threadpoolctl.control.get()
        assert through_maps.default_threads == through_threadpoolctl.default_threads


class _FakeBlas:
    path = "/opt/lib/libopenblas.so"

    def get(self):
        return 6

    def set(self, n):
        raise AssertionError("not to be called")


def _platform(monkeypatch, name, files=(), source="threadpoolctl", layer=None, cores=4):
    monkeypatch.setattr(runtime, "_numpy_blas_name", lambda: name)
    monkeypatch.setattr(runtime, "_openblas_files", lambda: (list(files), source))
    monkeypatch.setattr(runtime, "_bind_openblas", lambda path: (_FakeBlas(), layer))
    monkeypatch.setattr(runtime, "usable_cores", lambda: cores)
    return runtime.find_blas()


def test_pthreads_openblas_is_set_by_nanoframe_and_gives_the_default(monkeypatch):
    info = _platform(monkeypatch, "scipy-openblas", ["/opt/lib/libopenblas.so"], layer=1)
    assert info.pool and isinstance(info.control, _FakeBlas)
    assert info.default_threads == 4                  # its 6 threads, capped by the usable cores


def test_sequential_openblas_keeps_the_pool_and_is_never_set(monkeypatch):
    info = _platform(monkeypatch, "openblas", ["/opt/lib/libopenblas.so"], layer=0)
    assert (info.pool, info.control, info.default_threads) == (True, None, 4)


def test_openmp_openblas_keeps_the_ops_serial(monkeypatch):
    info = _platform(monkeypatch, "openblas", ["/opt/lib/libopenblas.so"], layer=2)
    assert (info.pool, info.control, info.default_threads) == (False, None, 1)
    assert "OpenMP" in info.note


def test_accelerate_keeps_the_pool_beside_its_own_threads(monkeypatch):
    info = _platform(monkeypatch, "accelerate", cores=12)
    assert (info.pool, info.control, info.default_threads) == (True, None, runtime.DEFAULT_MAX_THREADS)
    monkeypatch.setenv("VECLIB_MAXIMUM_THREADS", "2")
    assert runtime.find_blas().default_threads == 2


def test_openblas_out_of_reach_says_to_install_threadpoolctl(monkeypatch):
    info = _platform(monkeypatch, "scipy-openblas", source=None)   # macOS / Windows without threadpoolctl
    assert (info.pool, info.control, info.default_threads) == (False, None, 1)
    assert "pip install threadpoolctl" in info.note


def test_a_blas_nanoframe_cannot_set_keeps_the_ops_serial(monkeypatch):
    info = _platform(monkeypatch, "mkl")
    assert (info.pool, info.control, info.default_threads) == (False, None, 1)
    assert "'mkl'" in info.note


@pytest.fixture
def unstarted_pool_on_serial_mkl(monkeypatch):
    """A 2-core machine whose BLAS (MKL) nanoframe cannot set, before the pool's first region."""
    serial = runtime.BlasInfo("mkl", None, False, 1, "NumPy's BLAS is 'mkl', whose threads nanoframe cannot set")
    monkeypatch.setattr(runtime, "_blas_info", serial)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.setattr(runtime, "at_fork_in_child", lambda fn: None)
    monkeypatch.setattr(par, "_started", False)
    monkeypatch.setattr(par, "_blas", par._blas)
    monkeypatch.setattr(par, "_num_threads", par._num_threads)


def test_serial_ops_on_a_multicore_machine_warn_once_at_the_first_region(unstarted_pool_on_serial_mkl):
    with pytest.warns(RuntimeWarning, match="'mkl'.*set_num_threads\\(1\\) silences this"):
        assert par.parallel_for(lambda a, b: (a, b), 10**6, work_per_item=10**6) == [(0, 10**6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert par.parallel_for(lambda a, b: (a, b), 8) == [(0, 8)]   # once


def test_set_num_threads_one_before_the_first_region_is_quiet(unstarted_pool_on_serial_mkl):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nanoframe.set_num_threads(1)
        assert par.parallel_for(lambda a, b: (a, b), 8) == [(0, 8)]


# ---- files follow the umask ------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_get_0666_minus_the_umask_without_touching_it(tmp_path, monkeypatch, umask):
    previous = os.umask(umask)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_open read or set the umask"))
        nfio.atomic_write_text(tmp_path / "a.txt", "x\n")
        nfio.atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]   # no temporary file left behind
