"""kill -9 at every filesystem step of a run, and a disk that fills up.

A forked child runs the `nanoframe` command in-process and dies with os._exit (what kill -9 does:
no finally blocks, no atexit, the kernel drops its flock) at the k-th rename (every atomic write and
folder swap) or deletion, for every k until the command completes. After each death the run must still sample whenever it held a
complete checkpoint, and the user's next command (`--resume`, or the same command again when
nothing was checkpointed) must finish with metrics equal to an uninterrupted run's. A file-size
rlimit (RLIMIT_FSIZE: writes past it fail with EFBIG, Python ignores SIGXFSZ) stands in for a full
disk at each kind of write.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from nanoframe.training.run import Run

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# os.replace: every atomic write and every swap of a checkpoint folder; os.unlink / os.rmdir: what
# shutil.rmtree does file by file (rotation of old checkpoints, removal of best.old), metrics resets.
CRASH_OPS = ("replace", "unlink", "rmdir")
CRASHED = 77
TRAIN = ["--tokenizer", "char", "--max_iters", 2, "--checkpoint_interval", 1, "--keep_checkpoints", 1,
         "--eval_interval", 1, *TINY]
FT = ["--max_iters", 2, "--eval_interval", 1, "--eval_iters", 1, "--batch_size", 2, "--checkpoint_interval", 1,
      "--keep_checkpoints", 1, "--early_stop_patience", 0, "--no-progress", "--no-sample"]


def crash_at(k, *args, ops=CRASH_OPS):
    """Run `nanoframe *args` in a forked child that dies like kill -9 at its k-th filesystem step
    (a call of one of `ops`); True when it died there, False when the command finished before."""
    import nanoframe.training.trainer as trainer

    trainer.GEMM_PEAK.measure()        # measured once in the parent, inherited by every child
    pid = os.fork()
    if pid == 0:                       # the child: never returns into pytest
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            count = [0]
            for name in ops:
                real = getattr(os, name)

                def op(*a, _real=real, **kw):
                    count[0] += 1
                    if count[0] == k:
                        os._exit(CRASHED)
                    return _real(*a, **kw)

                setattr(os, name, op)
            cli(*args)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == CRASHED


def records(run):
    """metrics.jsonl without the timing fields (they differ between two identical runs)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("tokens_per_sec", "mfu")} for line in lines]


def continue_after_crash(capsys, out, resume_args, fresh_args):
    """What the user does next: resume; when nothing was checkpointed yet, the same command again."""
    capsys.readouterr()
    code = cli(*resume_args)
    err = capsys.readouterr().err
    if code == 2 and ("has no step checkpoint yet" in err or "is not a nanoframe run" in err):
        code = cli(*fresh_args)
        err = capsys.readouterr().err
    assert code == 0, err


def can_sample(capsys, out):
    capsys.readouterr()
    code = cli("sample", out, "--max-new-tokens", 2, "--seed", 0)
    return code == 0, capsys.readouterr().err


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(SHAKESPEAREISH)
    return p


def test_kill_9_at_every_step_of_a_fresh_train_and_of_a_resume(tmp_path, corpus, capsys):
    fresh = ["train", "--data", corpus, *TRAIN]
    assert cli(*fresh, "--out", tmp_path / "ref") == 0
    expected_fresh = records(tmp_path / "ref")
    k = 1
    while crash_at(k, *fresh, "--out", tmp_path / f"f{k}", ops=("replace", "rmdir")):
        out = tmp_path / f"f{k}"
        if Run(out).list_checkpoints():
            ok, err = can_sample(capsys, out)
            assert ok, f"crash at step {k}: {err}"
        continue_after_crash(capsys, out, ["train", "--out", out, "--resume", *TRAIN[2:]], [*fresh, "--out", out])
        assert records(out) == expected_fresh, f"crash at step {k}"
        shutil.rmtree(out)
        k += 1
    assert k > 20, "the crash points were not reached"
    assert cli("train", "--out", tmp_path / "ref", "--resume", "--max_iters", 3, *TINY) == 0
    expected = records(tmp_path / "ref")
    # and at every step of a resume from step 2 to 3 (metrics truncation, config rewrite, rotation)
    base = tmp_path / "f_done"
    assert cli(*fresh, "--out", base) == 0
    resume = ["train", "--resume", "--max_iters", 3, *TINY]
    k = 1
    while True:
        out = tmp_path / f"r{k}"
        shutil.copytree(base, out)
        if not crash_at(k, *resume, "--out", out):
            break
        ok, err = can_sample(capsys, out)
        assert ok, f"crash at step {k} of the resume: {err}"
        continue_after_crash(capsys, out, [*resume, "--out", out], None)
        assert records(out) == expected, f"crash at step {k} of the resume"
        shutil.rmtree(out)
        k += 1
    assert k > 8


def test_kill_9_at_every_step_of_a_lora_finetune(tmp_path, corpus, capsys):
    assert cli("train", "--data", corpus, "--tokenizer", "bpe", "--vocab-size", 300, "--out", tmp_path / "base",
               "--max_iters", 2, *TINY) == 0
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(10, 30) for b in (3, 7)]
    (tmp_path / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fresh = ["finetune", "--from", tmp_path / "base", "--data", tmp_path / "inst.jsonl", "--lora", "--lora-r", 2, *FT]
    assert cli(*fresh, "--out", tmp_path / "ref") == 0
    expected = records(tmp_path / "ref")
    k = 1
    while crash_at(k, *fresh, "--out", tmp_path / f"f{k}", ops=("replace",)):
        out = tmp_path / f"f{k}"
        continue_after_crash(capsys, out, ["finetune", "--out", out, "--resume", "--no-progress", "--no-sample"],
                             [*fresh, "--out", out])
        assert records(out) == expected, f"crash at step {k}"
        assert (out / "adapter.safetensors").is_file()
        shutil.rmtree(out)
        k += 1
    assert k > 15


def test_kill_9_during_lora_merge_then_the_same_command_succeeds(tmp_path, corpus, capsys):
    assert cli("train", "--data", corpus, "--tokenizer", "bpe", "--vocab-size", 300, "--out", tmp_path / "base",
               "--max_iters", 2, *TINY) == 0
    assert cli("finetune", "--from", tmp_path / "base", "--data", corpus, "--out", tmp_path / "lora", "--lora",
               "--lora-r", 2, *FT) == 0
    failures = []
    k = 1
    while True:
        out = tmp_path / f"m{k}"
        merge = ["lora", "merge", "--base", tmp_path / "base", "--adapter", tmp_path / "lora", "--out", out]
        if not crash_at(k, *merge):
            break
        capsys.readouterr()
        if cli(*merge) != 0:
            failures.append((k, capsys.readouterr().err.strip()[-150:]))
        elif not can_sample(capsys, out)[0]:
            failures.append((k, "merged run does not sample"))
        k += 1
    assert k > 4
    assert not failures, failures


# ---- a full disk -----------------------------------------------------------------------------------
def _run_with_file_size_limit(limit, args, cwd):
    """`nanoframe *args` in a subprocess whose files cannot grow past `limit` bytes (EFBIG)."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0})); "
            "from nanoframe.cli import main; sys.exit(main(sys.argv[1:]))").format(limit)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


# The sizes of the tiny run's files: train.bin 9,450 B; model.safetensors 17,920 B; optimizer 40,496 B.
DISK_FULL = {"data preparation (train.bin)": 5000, "a checkpoint save (optimizer.safetensors)": 30000}


@pytest.mark.parametrize("where", sorted(DISK_FULL))
def test_disk_full_leaves_a_run_that_resumes_or_restarts(tmp_path, corpus, capsys, where):
    fresh = ["train", "--data", corpus, "--out", tmp_path / "r", *TRAIN]
    res = _run_with_file_size_limit(DISK_FULL[where], fresh, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-500:]
    assert res.stderr.strip().splitlines()[-1].startswith("nanoframe: error:")
    continue_after_crash(capsys, tmp_path / "r", ["train", "--out", tmp_path / "r", "--resume", *TRAIN[2:]], fresh)
    assert len(records(tmp_path / "r")) > 0


@pytest.mark.parametrize("where", sorted(DISK_FULL))
def test_disk_full_error_names_the_file(tmp_path, corpus, where):
    res = _run_with_file_size_limit(DISK_FULL[where], ["train", "--data", corpus, "--out", tmp_path / "r", *TRAIN],
                                    tmp_path)
    line = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and line.startswith("nanoframe: error:")
    assert str(tmp_path / "r") in line or "train.bin" in line or ".safetensors" in line, line
