"""Cases found by an adversarial pass over `mpiexec -n 2`: commands other than train/finetune run
on rank 0 alone (one writer), a Python exception or sys.exit on one rank ends the job within
seconds instead of hanging in MPI_Finalize, and a damaged newest checkpoint is set aside by rank 0
alone (one warning) while every rank resumes from the same earlier one; an interrupted rank 0
names the mpiexec command that resumes the job."""
import time

import numpy as np

from tests.helpers.mpi import metrics, mpiexec, nanoframe, needs_mpi, words_corpus

pytestmark = needs_mpi


def _base_and_adapter(tmp_path):
    """A tiny char-tokenizer run (best/ only) and a LoRA adapter file trained on nothing."""
    from nanoframe import data as D
    from nanoframe.io import file_sha256
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.random import manual_seed
    from nanoframe.training.lora import apply_lora, save_adapter
    from nanoframe.training.run import save_run

    tok = D.train_tokenizer("char", [D.Document("a", "the cat sat on the mat.\n")], show_progress=False)
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.0))
    save_run(tmp_path / "base", model, tok, kind="merge")
    apply_lora(model, r=2)
    for name, p in model.named_parameters():
        if name.endswith("lora_B"):
            p.array[...] = 0.01                                  # a visible change when merged
    adapter = save_adapter(model, tmp_path / "adapter.safetensors", {"r": 2},
                           base_sha256=file_sha256(tmp_path / "base" / "best" / "model.safetensors"))
    return tmp_path / "base", adapter


def test_sample_and_lora_merge_run_on_rank_0_alone(tmp_path):
    """Before: every rank merged into the same folder (the second failed on the lock, the job
    exited 2) and every rank printed its own sample."""
    base, adapter = _base_and_adapter(tmp_path)
    merged = nanoframe("lora", "merge", "--base", base, "--adapter", adapter, "--out", tmp_path / "merged", n=2)
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert merged.stdout.count("wrote ") == 1 and (tmp_path / "merged" / "best" / "model.safetensors").is_file()
    assert "`lora merge` runs in one process; rank 0 of the 2" in merged.stderr
    sample = nanoframe("sample", tmp_path / "merged", "--max-new-tokens", 4, "--seed", 0, n=2)
    assert sample.returncode == 0, sample.stderr[-2000:]
    assert sample.stderr.count("sampling from") == 1


RAISE_SCRIPT = r'''
import sys
import numpy as np
from nanoframe import distributed as dist

how = sys.argv[1]
if how == "script":                      # a user's own script: an uncaught exception on rank 1
    dist.init()
    if dist.get_rank() == 1:
        raise RuntimeError("uncaught on rank 1")
    dist.all_reduce(np.ones(3))
else:                                    # the CLI: sys.exit on rank 1 in the middle of `train`
    from nanoframe import cli

    def train(args, extra):
        if dist.get_rank() == 1:
            sys.exit(3)
        dist.all_reduce(np.ones(3))

    cli.cmd_train = train
    sys.exit(cli.main(["train", "--out", sys.argv[2]]))
print("never")
'''


def test_an_exception_or_exit_on_one_rank_ends_the_job_at_once(tmp_path, monkeypatch):
    """Before: the rank that raised (or exited) waited in MPI_Finalize for rank 0, which waited in
    its all-reduce for rank 1: a hang until NANOFRAME_DIST_TIMEOUT (900 s by default)."""
    script = tmp_path / "raise.py"
    script.write_text(RAISE_SCRIPT)
    monkeypatch.setenv("NANOFRAME_DIST_TIMEOUT", "100")      # longer than the test's own limit
    for how, code in (("script", 1), ("cli", 3)):
        start = time.monotonic()
        proc = mpiexec(2, script, how, tmp_path / "run", timeout=60)
        assert time.monotonic() - start < 40, how
        assert proc.returncode == code and "never" not in proc.stdout, (how, proc.stderr[-2000:])
        if how == "script":
            assert proc.stderr.count("RuntimeError: uncaught on rank 1") == 1, proc.stderr


def test_a_damaged_newest_checkpoint_is_set_aside_once(tmp_path):
    """Before: both ranks warned and both renamed the damaged folder (a race: the slower rank's
    rename could fail). Now rank 0 picks the checkpoint and the others load the same one."""
    corpus = words_corpus(tmp_path / "words.txt", n_words=6000)
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--tokenizer", "char", "--n_layer", 1, "--n_head", 2, "--n_embd", 16,
            "--block_size", 16, "--batch_size", 2, "--eval_interval", 5, "--eval_iters", 1,
            "--checkpoint_interval", 4, "--lr_decay_iters", 100, "--no-sample", "--no-progress"]
    first = nanoframe("train", "--data", corpus, "--out", run, *args, "--max_iters", 8, n=2)
    assert first.returncode == 0, first.stderr[-2000:]
    weights = run / "checkpoints" / "step_000008" / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[100:140] = b"x" * 40
    weights.write_bytes(bytes(damaged))
    again = nanoframe("train", "--out", run, "--resume", "--max_iters", 10, "--no-sample", "--no-progress", n=2)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("is damaged") == 1 and again.stderr.count("resuming from") == 1, again.stderr
    assert f"resuming {run} from step 4" in again.stderr
    assert (run / "checkpoints" / "step_000008.damaged").is_dir()
    losses = [r["step"] for r in metrics(run) if "loss" in r]
    assert losses == list(range(10)) and np.all(np.diff(losses) == 1)


def test_ctrl_c_on_rank_0_names_the_mpiexec_resume_command(tmp_path):
    """SIGINT to rank 0 alone (Ctrl-C in its terminal, `kill -INT`): the job ends and the line says
    how to resume it under mpiexec. Before: it said `nanoframe train --out RUN --resume`, which
    a one-process resume then refuses (the checkpoint holds 2 ranks' states)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers.mpi import MPIEXEC, env, rank_pid

    corpus = words_corpus(tmp_path / "words.txt", n_words=6000)
    run = tmp_path / "run"
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", sys.executable, "-m", "nanoframe", "train", "--data", corpus,
           "--out", run, "--preset", "tiny", "--tokenizer", "char", "--n_layer", 1, "--n_head", 2, "--n_embd", 16,
           "--block_size", 16, "--batch_size", 2, "--max_iters", 100000, "--checkpoint_interval", 3, "--no-sample",
           "--no-progress"]
    job = subprocess.Popen([str(c) for c in cmd], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = rank_pid(0, str(run))
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "step_000003" / "state.json").is_file():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-2000:]
        time.sleep(0.02)
    os.kill(victim, signal.SIGINT)
    _, err = job.communicate(timeout=60)
    ours = [line for line in err.splitlines() if line.startswith("nanoframe:")]
    assert len(ours) == 1 and "interrupted" in ours[0], err
    assert f"continue with `mpiexec -n 2 nanoframe train --out {run} --resume`" in ours[0]


def test_a_rank_that_cannot_see_the_run_folder_says_so(tmp_path):
    """Ranks on machines without the shared filesystem (here: rank 1 started in another working
    directory, so the relative --out is another folder). Before: `run is not a nanoframe run (no
    config.json)`, which does not say that rank 0 wrote it where this rank cannot look."""
    import subprocess
    import sys

    from tests.helpers.mpi import MPIEXEC, env

    corpus = words_corpus(tmp_path / "words.txt", n_words=3000)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    args = [sys.executable, "-m", "nanoframe", "train", "--data", str(corpus), "--out", "run", "--preset", "tiny",
            "--tokenizer", "char", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
            "--max_iters", "4", "--no-sample", "--no-progress"]
    cmd = [MPIEXEC, "--oversubscribe", "-n", "1", "--wdir", str(tmp_path / "a"), *args,
           ":", "-n", "1", "--wdir", str(tmp_path / "b"), *args]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("nanoframe:")]
    assert len(ours) == 1 and ours[0].startswith("nanoframe: rank 1: error: this machine"), proc.stderr
    assert "cannot see run/config.json, which rank 0 wrote" in ours[0] and "same path" in ours[0]
    assert not (tmp_path / "b" / "run").exists()                      # rank 1 wrote nothing


def test_an_error_every_rank_meets_at_init_is_printed_once(tmp_path, monkeypatch):
    """A bad NANOFRAME_DIST_TIMEOUT, and mpi4py missing under mpiexec (a stand-in package that
    fails to import): every rank fails alike; before, each printed the same line."""
    import os

    from tests.helpers.mpi import REPO

    fake = tmp_path / "fake" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.setenv("NANOFRAME_DIST_TIMEOUT", "soon")
    bad_timeout = nanoframe("train", "--out", tmp_path / "run", n=2, timeout=60)
    monkeypatch.delenv("NANOFRAME_DIST_TIMEOUT")
    monkeypatch.setenv("PYTHONPATH", str(fake.parent) + os.pathsep + str(REPO))
    no_mpi4py = nanoframe("train", "--out", tmp_path / "run", n=2, timeout=60)
    for proc, text in ((bad_timeout, "NANOFRAME_DIST_TIMEOUT must be a number of seconds, got 'soon'"),
                       (no_mpi4py, "distributed training needs mpi4py")):
        ours = [line for line in proc.stderr.splitlines() if line.startswith("nanoframe:")]
        assert proc.returncode == 2 and len(ours) == 1 and text in ours[0], proc.stderr
