"""Data-parallel training over MPI (mpi4py), on one machine or several: torch.distributed's shape.

    pip install 'nanoframe[distributed]'          # mpi4py and Open MPI's wheel (it brings mpiexec)
    mpiexec -n 2 nanoframe train --out runs/x      # every rank trains; rank 0 alone writes the run

    from nanoframe import distributed as dist
    dist.init()                                    # under mpiexec; a plain process is rank 0 of 1
    model = dist.DistributedDataParallel(model)    # rank 0's weights everywhere; gradients averaged
    with model.no_sync():                          # a gradient-accumulation micro-step: no reduction
        model(x, y)[1].backward()

Each process (a rank) holds the whole model and trains on its own rows of the global batch. The
gradients are averaged with Allreduce over flat buckets of at most 25 MB (torch's default; the
trainer asks for 1 MB), each started from a post-accumulate-grad hook as soon as backward has
produced its last gradient, so a bucket travels while backward computes earlier layers; every
rank then takes the same step. init_process_group("mpi"), destroy_process_group and ReduceOp are
torch's names; nanoframe.nn.parallel.DistributedDataParallel is torch's import path for DDP.

Every collective here is a non-blocking MPI call waited on by polling (yielding the core, then
short sleeps), not a blocking one:
  - Python signal handlers run while a rank waits (they cannot inside a blocking MPI call), so
    when mpiexec stops the job because one rank died (kill -9 included), a survivor says so in
    one line instead of being killed mid-call in silence;
  - a wait longer than the timeout (NANOFRAME_DIST_TIMEOUT seconds, default 900) aborts the whole
    job with one line: a hung rank or a lost network never hangs the others forever (the one
    wait without a limit: ranks > 0 waiting for rank 0 to prepare the data, see wait_for_leader);
  - it costs no speed: polled and blocking all-reduces were within each other's noise here, and
    out of place (as all_reduce and DDP reduce) as fast or faster than in place at 17-43 MB
    (`benchmarks/bench_distributed.py --collectives`, benchmarks/RESULTS.md).
Objects (RNG states, a leader's verdict) travel as JSON, never pickle.

An exception that nothing catches on one rank prints its traceback and ends that process without
MPI_Finalize (init() sets sys.excepthook), so mpiexec stops the job instead of the others waiting.

Nothing imports mpi4py before init(): `import nanoframe` costs nothing, and a process that is not
under mpiexec is rank 0 of 1, where every collective returns its input and DDP is a pass-through.
"""
import contextlib
import json
import os
import signal
import socket
import sys
import time

import numpy as np

from nanoframe.autograd import register_post_accumulate_grad_hook
from nanoframe.errors import NanoframeError
from nanoframe.nn.module import Module

DEFAULT_TIMEOUT = 900.0         # seconds a rank waits in one collective before the job is aborted
BUCKET_CAP_MB = 25              # torch DDP's default bucket size
SPIN_SECONDS = 0.02             # a collective is polled without sleeping this long, then with naps
_LAUNCHER_ENV = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS")
_LAUNCHER_RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")     # Open MPI's, then MPICH's (Hydra)
_LAUNCHER_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")

_comm = None                    # MPI.COMM_WORLD once init() ran
_MPI = None                     # the mpi4py.MPI module once init() ran
_timeout = DEFAULT_TIMEOUT
_peers = []                     # [(hostname, pid)] of every rank, in rank order
_stop_message = None            # callable -> str: what a stopped rank tells the user (set by the CLI)
_leader_state = {"released": False}


class PeerError(NanoframeError):
    """Raised on the other ranks when rank 0 failed (it prints the reason; they stay quiet)."""

    quiet = True


# ---- the process group ------------------------------------------------------------------------------
def launched_by_mpiexec():
    """True when this process was started by an MPI launcher (Open MPI's or MPICH's mpiexec)."""
    return any(k in os.environ for k in _LAUNCHER_ENV)


def launcher_rank_and_size():
    """(rank, size) that the MPI launcher gave this process, read from its environment without
    joining the job ((0, 1) outside mpiexec): for commands that run on one rank only."""
    def first(names, default):
        for name in names:
            try:
                return int(os.environ[name])
            except (KeyError, ValueError):
                continue
        return default

    return first(_LAUNCHER_RANK, 0), first(_LAUNCHER_SIZE, 1)


def init(timeout=None):
    """Join the MPI job (idempotent); returns the world size.

    Imports mpi4py (NanoframeError with the install command when it is missing). With several
    ranks on one machine, each gets its share of the cores (nanoframe.set_num_threads) and a
    SIGTERM handler that reports a stopped job in one line. timeout: seconds a collective may
    wait (default NANOFRAME_DIST_TIMEOUT or 900)."""
    global _comm, _MPI, _timeout, _peers
    if _comm is not None:
        return _comm.Get_size()
    try:
        import mpi4py
    except ImportError:
        error = NanoframeError("distributed training needs mpi4py and an MPI: pip install 'nanoframe[distributed]'")
        error.quiet = launcher_rank_and_size()[0] > 0          # every rank fails alike: rank 0 says it
        raise error from None
    mpi4py.rc.thread_level = "funneled"        # only the main thread calls MPI (ops' threads never do)
    from mpi4py import MPI

    _MPI, _comm = MPI, MPI.COMM_WORLD
    try:
        _timeout = _read_timeout(timeout)
    except NanoframeError as e:                 # the same environment on every rank: reported once
        raise collective_error(e) from None
    _peers = [tuple(p) for p in all_gather_json([socket.gethostname(), os.getpid()])]
    if _comm.Get_size() > 1:
        _share_cores()
        signal.signal(signal.SIGTERM, _on_sigterm)
        sys.excepthook = _exit_on_uncaught
    return _comm.Get_size()


def _exit_on_uncaught(kind, value, tb):
    """An exception nothing caught, on one rank of several: its traceback, then leave without
    MPI_Finalize. Python's normal exit would finalize, which waits for the other ranks while they
    wait in a collective for this one: a hang until the timeout. Leaving at once makes mpiexec stop
    the job within seconds."""
    sys.__excepthook__(kind, value, tb)
    exit_now(1)


def init_process_group(backend="mpi", timeout=None):
    """torch.distributed.init_process_group's name for init(); the one backend is "mpi"."""
    if backend not in ("mpi", None):
        raise ValueError(f"init_process_group: nanoframe's only backend is 'mpi', got {backend!r}")
    return init(timeout)


def destroy_process_group(group=None):
    """torch.distributed.destroy_process_group: forget the process group (is_initialized() turns
    False; init() may join again). MPI itself is finalized by mpi4py when the process exits."""
    global _comm, _MPI, _peers
    if group is not None:
        raise ValueError("destroy_process_group: nanoframe has one process group, the world; pass no group")
    if _comm is None:
        raise ValueError("destroy_process_group: no process group to destroy; call init_process_group() first")
    _comm, _MPI, _peers = None, None, []


def _read_timeout(timeout):
    if timeout is None:
        text = os.environ.get("NANOFRAME_DIST_TIMEOUT", str(DEFAULT_TIMEOUT))
        try:
            timeout = float(text)
        except ValueError:
            raise NanoframeError(f"NANOFRAME_DIST_TIMEOUT must be a number of seconds, got {text[:40]!r}") from None
    if not timeout > 0:
        raise NanoframeError(f"the collective timeout must be > 0 seconds, got {timeout}")
    return float(timeout)


def _share_cores():
    """Ranks on one machine split its cores: ops and BLAS threads = usable cores // local ranks."""
    from nanoframe.parallel import set_num_threads
    from nanoframe.runtime import usable_cores

    local = sum(host == _peers[get_rank()][0] for host, _ in _peers)
    if local > 1:
        set_num_threads(max(1, usable_cores() // local))


def hostname():
    """This machine's name, as the ranks told each other at init()."""
    return _peers[get_rank()][0] if _peers else socket.gethostname()


def is_available():
    """True when mpi4py can be imported (the `distributed` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_initialized():
    return _comm is not None


def get_rank():
    return 0 if _comm is None else _comm.Get_rank()


def get_world_size():
    return 1 if _comm is None else _comm.Get_size()


def is_distributed():
    """True when there are other ranks to talk to."""
    return get_world_size() > 1


# ---- collectives on NumPy arrays ------------------------------------------------------------------------
def _wait(requests, what, timeout="default"):
    """Poll the requests until all are done: yielding the core between polls for the first 20 ms
    (each poll moves a non-blocking collective on: MPI has no progress thread), then sleeping up to
    1 ms. Abort the job with one line after `timeout` seconds (None: wait forever)."""
    timeout = _timeout if timeout == "default" else timeout
    start, nap = time.monotonic(), 1e-5
    while not _MPI.Request.Testall(requests):
        waited = time.monotonic() - start
        if timeout is not None and waited > timeout:
            _say(f"rank {get_rank()} waited {timeout:.0f} s for the other processes in {what}; one of them "
                 "hung or the network failed: aborting the job")
            _comm.Abort(1)
        if waited < SPIN_SECONDS:
            time.sleep(0)
        else:
            time.sleep(nap)
            nap = min(1e-3, 2 * nap)


def _buffer(array):
    arr = array.array if hasattr(array, "array") else array
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise TypeError("collectives work in place on a writeable C-contiguous NumPy array (or a Tensor holding one)")
    return arr


class ReduceOp:
    """torch.distributed.ReduceOp's names for all_reduce's `op` (plain strings work too)."""
    SUM, MAX, MIN, PRODUCT = "sum", "max", "min", "product"


_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN", "product": "PROD"}


def all_reduce(array, op=ReduceOp.SUM):
    """Reduce `array` (ndarray or Tensor) over all ranks, in place on every rank; returns it.

    Reduced into a second buffer, then copied back: Open MPI's in-place Iallreduce of 17-43 MB was
    never faster here, and often 1.5-3x slower, than the out-of-place one plus the copy."""
    arr = _buffer(array)
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {sorted(_OPS)}, got {op!r}")
    if is_distributed():
        out = np.empty_like(arr)
        _wait([_comm.Iallreduce(arr, out, getattr(_MPI, _OPS[op]))], "all_reduce")
        arr[...] = out
    return array


def broadcast(array, src=0):
    """Overwrite `array` on every rank with rank `src`'s, in place; returns it."""
    arr = _buffer(array)
    if is_distributed():
        _wait([_comm.Ibcast(arr, root=src)], "broadcast")
    return array


def barrier(timeout="default"):
    """Wait until every rank got here (timeout in seconds, None for no limit)."""
    if is_distributed():
        _wait([_comm.Ibarrier()], "barrier", timeout)


def broadcast_json(obj, src=0, timeout="default"):
    """Rank `src`'s JSON-serialisable `obj`, on every rank (sent as UTF-8 JSON bytes, never pickle)."""
    if not is_distributed():
        return obj
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8) if get_rank() == src else None
    size = np.array([0 if data is None else data.size], np.int64)
    _wait([_comm.Ibcast(size, root=src)], "broadcast", timeout)
    buf = data.copy() if data is not None else np.empty(int(size[0]), np.uint8)
    _wait([_comm.Ibcast(buf, root=src)], "broadcast", timeout)
    return json.loads(buf.tobytes().decode())


def all_gather_json(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank (JSON, padded to the longest)."""
    if get_world_size() == 1:
        return [obj]
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    longest = np.array([data.size], np.int64)
    all_reduce(longest, "max")
    mine = np.zeros(int(longest[0]), np.uint8)
    mine[:data.size] = data
    out = np.empty((get_world_size(), mine.size), np.uint8)
    _wait([_comm.Iallgather(mine, out)], "all_gather")
    return [json.loads(row.tobytes().rstrip(b"\0").decode()) for row in out]


def collective_error(error):
    """`error`, raised by every rank at the same point (a non-finite loss after the all-reduce, a
    checkpoint every rank read): marked quiet on ranks other than 0, so the job reports it once."""
    if get_rank() != 0:
        error.quiet = True
    return error


# ---- rank 0 prepares, the others follow ----------------------------------------------------------------
def release_followers(payload=None):
    """On rank 0, once it has prepared the run (data, tokenizer, config.json): let the other ranks
    go on (they wait in `wait_for_leader`), handing them `payload` (JSON)."""
    if is_distributed() and get_rank() == 0 and not _leader_state["released"]:
        _leader_state["released"] = True
        broadcast_json({"ok": payload})            # the others already wait: the usual timeout


@contextlib.contextmanager
def leading():
    """Rank 0's preparation of a job: an error raised inside before `release_followers` is handed
    to the waiting ranks (they raise PeerError), so they never wait for a release that won't come."""
    _leader_state["released"] = False
    try:
        yield
    except BaseException as e:
        if is_distributed() and not _leader_state["released"]:
            _leader_state["released"] = True
            broadcast_json({"error": str(e)[:300] or type(e).__name__})
        raise


def wait_for_leader():
    """On ranks > 0: wait (as long as preparing takes: tokenizing a corpus has no bound worth
    guessing, and a rank 0 that dies meanwhile still ends the job through mpiexec) for rank 0's
    payload; PeerError when rank 0 failed (rank 0 reports the error itself)."""
    verdict = broadcast_json(None, timeout=None)
    if "error" in verdict:
        raise PeerError(f"rank 0 failed: {verdict['error']}")
    return verdict["ok"]


# ---- ending the job ---------------------------------------------------------------------------------------
def set_stop_message(fn):
    """fn() -> str: the line a rank prints when mpiexec stops the job (the CLI says how to resume)."""
    global _stop_message
    _stop_message = fn


def _say(line):
    sys.stderr.write(f"nanoframe: error: {line}\n")
    sys.stderr.flush()


def _reports_stop():
    """Rank 0 reports a stopped job; rank 1 does when rank 0 (on this machine) is the one gone."""
    rank = get_rank()
    if rank == 0:
        return True
    if rank != 1 or _peers[0][0] != socket.gethostname():
        return False
    try:
        with open(f"/proc/{_peers[0][1]}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _on_sigterm(signum, frame):
    """mpiexec sends SIGTERM to every rank when one of them died: one line, then exit at once
    (the run's files are written atomically, so the last checkpoint stays good)."""
    if _reports_stop():
        why = "mpiexec stopped the job: one of its processes died, was killed, aborted or interrupted"
        try:
            extra = _stop_message() if _stop_message is not None else ""
        except Exception:                  # a report must never turn into a traceback
            extra = ""
        _say(why + (f"; {extra}" if extra else ""))
    exit_now(143)


def exit_now(code):
    """Leave at once without MPI_Finalize (which would wait for ranks stuck in a collective);
    mpiexec then stops the others within a few seconds."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---- DistributedDataParallel ------------------------------------------------------------------------------
class _Bucket:
    """Parameters whose gradients travel in one flat buffer (one dtype, about bucket_cap bytes)."""

    def __init__(self, params):
        self.params = params
        self.offsets = np.cumsum([0] + [p.array.size for p in params])
        self.flat = np.empty(int(self.offsets[-1]), params[0].array.dtype)     # this rank's gradients
        self.summed = np.empty_like(self.flat)                                  # everyone's (out of place: faster)
        self.ready = set()
        self.request = None


class DistributedDataParallel(Module):
    """torch.nn.parallel.DistributedDataParallel on MPI: wraps `module`, broadcasts rank 0's
    parameters and buffers at construction, and makes every backward (outside `no_sync`) leave
    each trainable parameter's .grad averaged over the ranks.

    The parameters that require grad are split, last registered first (the order backward
    produces them), into buckets of at most bucket_cap_mb MB of one dtype. When backward has
    accumulated a bucket's last gradient its all-reduce starts (non-blocking); after the last
    bucket, backward waits for all and writes the averages back. Every trainable parameter must
    get a gradient in every synchronised backward. With one process it is a pass-through.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=BUCKET_CAP_MB):
        # torch's argument order; device_ids/output_device must be None for a CPU module (as in torch)
        if device_ids or output_device is not None:
            raise ValueError("DistributedDataParallel: device_ids and output_device must be None: nanoframe "
                             f"runs on the CPU (got device_ids={device_ids!r}, output_device={output_device!r})")
        if dim != 0 or process_group is not None:
            raise ValueError("DistributedDataParallel: nanoframe supports dim=0 and the world process group only")
        super().__init__()
        self.module = module
        self.require_backward_grad_sync = True
        self._buckets, self._bucket_of, self._handles, self._launched = [], {}, [], 0
        if not is_distributed():
            return
        self._broadcast_state(broadcast_buffers)
        cap = int(bucket_cap_mb * 2**20)
        params = list({id(p): p for p in module.parameters() if p.requires_grad}.values())[::-1]
        group, size = [], 0
        for p in params:
            if group and (size + p.array.nbytes > cap or p.array.dtype != group[0].array.dtype):
                self._buckets.append(_Bucket(group))
                group, size = [], 0
            group.append(p)
            size += p.array.nbytes
        if group:
            self._buckets.append(_Bucket(group))
        for i, bucket in enumerate(self._buckets):
            for p in bucket.params:
                self._bucket_of[id(p)] = i
                self._handles.append(register_post_accumulate_grad_hook(p, self._grad_ready))

    def _broadcast_state(self, with_buffers):
        seen = set()
        tensors = list(self.module.parameters()) + (list(self.module.buffers()) if with_buffers else [])
        for t in tensors:
            arr = t.array
            if id(arr) in seen:
                continue
            seen.add(id(arr))
            buf = arr if arr.flags.c_contiguous and arr.flags.writeable else np.ascontiguousarray(arr)
            broadcast(buf)
            if buf is not arr:
                arr[...] = buf

    def forward(self, *args, **kwargs):
        if any(b.ready for b in self._buckets):
            waiting = [n for n, p in self.module.named_parameters()
                       if p.requires_grad and id(p) in self._bucket_of
                       and id(p) not in self._buckets[self._bucket_of[id(p)]].ready]
            raise RuntimeError("DistributedDataParallel: the previous backward left parameters without a "
                               f"gradient, so their all-reduce never started: {waiting[:5]}; every trainable "
                               "parameter must take part in the loss")
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward inside accumulates local gradients only; the next one outside reduces the sum."""
        before, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = before

    # ---- the reduction, driven by the engine's post-accumulate-grad hooks -----------------------------
    def _grad_ready(self, param):
        if not self.require_backward_grad_sync:
            return
        bucket = self._buckets[self._bucket_of[id(param)]]
        bucket.ready.add(id(param))
        if len(bucket.ready) == len(bucket.params):
            for p, lo, hi in zip(bucket.params, bucket.offsets[:-1], bucket.offsets[1:]):
                bucket.flat[lo:hi] = p.grad_array.reshape(-1)
            bucket.request = _comm.Iallreduce(bucket.flat, bucket.summed, _MPI.SUM)
            self._launched += 1
        pending = [b.request for b in self._buckets if b.request is not None]
        _MPI.Request.Testall(pending)      # drive the transfers in flight (MPI has no progress thread)
        if self._launched == len(self._buckets):
            self._finish()

    def _finish(self):
        _wait([b.request for b in self._buckets], "the gradient all-reduce")
        world = get_world_size()
        for bucket in self._buckets:
            np.divide(bucket.summed, world, out=bucket.summed)
            for p, lo, hi in zip(bucket.params, bucket.offsets[:-1], bucket.offsets[1:]):
                p.grad_array[...] = bucket.summed[lo:hi].reshape(p.grad_array.shape)
            bucket.ready.clear()
            bucket.request = None
        self._launched = 0
