"""Run `nanoframe ARGS` as an MPI rank that records every write it makes under a folder.

    mpiexec -n 2 python guarded_rank.py LOG WATCHED -- train --out WATCHED/run ...

On ranks > 0 an audit hook (sys.addaudithook) appends to LOG each file opened for writing, created,
renamed, removed or truncated under WATCHED; rank 0 is not watched. The test reads LOG.
"""
import os
import sys

log_path, watched = sys.argv[1], os.path.realpath(sys.argv[2])
argv = sys.argv[sys.argv.index("--") + 1:]
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
busy = False


def _under(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(watched)
    except (TypeError, ValueError):
        return False


def hook(event, args):
    global busy
    if busy:
        return
    writes = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink"}
    hit = None
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1] or "", args[2] or 0
        if any(c in mode for c in "wax+") or flags & WRITE_FLAGS:
            hit = args[0]
    elif event in writes and args and not isinstance(args[0], int):
        hit = args[0]
    if hit is not None and _under(hit):
        busy = True
        try:
            with open(log_path, "a") as f:
                f.write(f"rank {rank}: {event} {os.fsdecode(hit)}\n")
        finally:
            busy = False


if rank > 0:
    open(log_path, "a").close()
    sys.addaudithook(hook)

from nanoframe.cli import main  # noqa: E402  (after the hook: imports are not writes, but be thorough)

sys.exit(main(argv))
