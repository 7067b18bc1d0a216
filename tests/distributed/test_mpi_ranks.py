"""What each rank does under `mpiexec -n 2`: only rank 0 writes the run folder; DDP's no_sync
accumulates locally and the next backward reduces the sum; broadcast and the JSON collectives."""
import sys
import time
from pathlib import Path

from tests.helpers.mpi import metrics, mpiexec, needs_mpi, words_corpus

pytestmark = needs_mpi
HERE = Path(__file__).resolve().parent


def test_only_rank_0_writes_the_run(tmp_path):
    """Rank 1 trains (its share of each batch) but never creates, writes, renames or removes
    anything in the run folder: config, tokenizer, data, metrics, checkpoints, best/ are rank 0's."""
    corpus = words_corpus(tmp_path / "words.txt", n_words=20000)
    log = tmp_path / "writes.log"
    args = ["train", "--data", corpus, "--out", tmp_path / "run", "--preset", "tiny", "--tokenizer", "char",
            "--n_layer", 1, "--n_head", 2, "--n_embd", 16, "--block_size", 16, "--max_iters", 12, "--eval_interval", 4,
            "--eval_iters", 2, "--checkpoint_interval", 4, "--keep_checkpoints", 1, "--batch_size", 2,
            "--no-sample", "--warmup_iters", 2]
    proc = mpiexec(2, HERE / "guarded_rank.py", log, tmp_path / "run", "--", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert log.is_file(), "the guard did not run on rank 1"
    assert log.read_text() == ""
    run = tmp_path / "run"
    assert [r["step"] for r in metrics(run) if "loss" in r] == list(range(12))     # one writer: no duplicate lines
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000012"]
    assert (run / "best" / "state.json").is_file() and (run / "data" / "meta.json").is_file()
    assert proc.stdout.count("done: 12 steps") == 1                                # rank 0 alone prints
    assert proc.stderr.count("training a char tokenizer") == 1 and proc.stderr.count("model: ") == 1


def test_the_write_guard_sees_writes(tmp_path):
    """The guard itself: as rank 1 (no MPI needed), a command that writes under the watched folder
    is recorded."""
    import subprocess

    from tests.helpers.mpi import env

    corpus = words_corpus(tmp_path / "words.txt", n_words=2000)
    watched, log = tmp_path / "w", tmp_path / "writes.log"
    watched.mkdir()
    subprocess.run([sys.executable, str(HERE / "guarded_rank.py"), str(log), str(watched), "--", "tokenizer",
                    "train", "--data", str(corpus), "--kind", "char", "--out", str(watched / "tok.json"),
                    "--no-progress"], env={**env(), "OMPI_COMM_WORLD_RANK": "1"}, check=True, capture_output=True)
    text = log.read_text()           # an atomic write: a temporary file, then its rename into place
    assert f"rank 1: open {watched}/.tok.json" in text and f"rank 1: os.rename {watched}/.tok.json" in text


DDP_SCRIPT = r'''
import sys
import numpy as np
import nanoframe as nf
from nanoframe import distributed as dist
from nanoframe.models import GPT, GPTConfig

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
nf.manual_seed(100 + rank)                       # different init on each rank: DDP broadcasts rank 0's
model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0))
ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.002)       # several buckets
assert len(ddp._buckets) > 3
digest = np.array([sum(float(p.array.sum()) for p in model.parameters())])
seen = dist.all_gather_json(float(digest[0]))
assert seen[0] == seen[1], seen                  # same weights everywhere after the broadcast

rng = np.random.default_rng(7)
micro = [(rng.integers(0, 40, (4, 8)), rng.integers(0, 40, (4, 8))) for _ in range(3)]   # global micro-batches
mine = [(x[2 * rank:2 * rank + 2], y[2 * rank:2 * rank + 2]) for x, y in micro]
reductions = []
real_wait = dist._wait
dist._wait = lambda reqs, what, timeout="default": (reductions.append(what), real_wait(reqs, what, timeout))
with ddp.no_sync():
    for x, y in mine[:2]:
        ddp(x, y)[1].backward()
assert reductions == [], reductions              # no_sync: nothing reduced
local = {n: p.grad_array.copy() for n, p in model.named_parameters()}
others = dist.all_gather_json(float(local["transformer.wte.weight"].sum()))
assert others[0] != others[1]                    # local gradients differ between the ranks
reductions.clear()
ddp(*mine[2])[1].backward()                     # synchronised: the accumulated sum is averaged
assert reductions == ["the gradient all-reduce"], reductions
dist._wait = real_wait
got = {n: p.grad_array.copy() for n, p in model.named_parameters()}

for h in ddp._handles:                          # reference: one process, the global batches
    h.remove()
for p in model.parameters():
    p.grad = None
for x, y in micro:
    model(x, y)[1].backward()
worst = max(float(np.abs(got[n] - p.grad_array).max()) for n, p in model.named_parameters())
assert worst < 1e-5, worst

a = np.arange(5, dtype=np.float64) * (rank + 1)
dist.all_reduce(a, op=dist.ReduceOp.SUM)
assert a.tolist() == [0.0, 3.0, 6.0, 9.0, 12.0]
b = np.full(3, float(rank))
dist.broadcast(b, src=1)
assert b.tolist() == [1.0, 1.0, 1.0]
assert dist.broadcast_json({"r": rank}) == {"r": 0}
dist.barrier()
print("OK", rank, worst)
'''


def test_ddp_no_sync_accumulates_and_the_next_backward_averages(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = mpiexec(2, script, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("OK") == 2


HANG_SCRIPT = r'''
import time
import numpy as np
from nanoframe import distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == 1:
    time.sleep(120)              # hung: alive, but never joins the collective
dist.all_reduce(np.ones(3))
print("never")
'''


def test_a_hung_rank_times_out_and_the_job_is_aborted(tmp_path, monkeypatch):
    """A collective that waits longer than NANOFRAME_DIST_TIMEOUT aborts the whole job with one
    line from the rank that waited (not a hang)."""
    script = tmp_path / "hang.py"
    script.write_text(HANG_SCRIPT)
    monkeypatch.setenv("NANOFRAME_DIST_TIMEOUT", "2")
    start = time.monotonic()
    proc = mpiexec(2, script, timeout=60)
    assert time.monotonic() - start < 30 and proc.returncode != 0 and "never" not in proc.stdout
    ours = [line for line in proc.stderr.splitlines() if line.startswith("nanoframe:")]
    assert "rank 0 waited 2 s for the other processes in all_reduce" in ours[0], proc.stderr
