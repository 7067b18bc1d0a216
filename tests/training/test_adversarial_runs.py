"""Run folders as a new user (and a careless one) treats them: `--out .`, other working
directories, unicode and spaces, symlinks, read-only folders, copies, concurrent fine-tunes,
resuming with other options; and what a run must never do: overwrite a folder (or a run) that is
not its own to replace, or write outside --out through a planted link."""
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from nanoframe.training.run import Run

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli, losses, one_error_line

TRAIN = ["--tokenizer", "char", "--max_iters", 4, "--checkpoint_interval", 2, "--keep_checkpoints", 10,
         "--eval_interval", 2, *TINY]
FT = ["--max_iters", 2, "--eval_interval", 2, "--eval_iters", 1, "--batch_size", 2, "--checkpoint_interval", 2,
      "--no-progress", "--no-sample"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char run (checkpoints 2, 4), a BPE run, a LoRA fine-tune of it and their merge."""
    root = tmp_path_factory.mktemp("adv_runs")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    assert cli("train", "--data", root / "c.txt", "--out", root / "char", *TRAIN) == 0
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300, "--out", root / "bpe",
               "--max_iters", 2, *TINY) == 0
    assert cli("finetune", "--from", root / "bpe", "--data", root / "c.txt", "--out", root / "lora", "--lora",
               "--lora-r", 2, *FT) == 0
    assert cli("lora", "merge", "--base", root / "bpe", "--adapter", root / "lora", "--out", root / "merged") == 0
    return root


def copy(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def tree(folder):
    """Every file under `folder` with its bytes (to prove that nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- what a user does ---------------------------------------------------------------------------------
def test_out_dot_from_inside_and_resume_from_another_working_directory(runs, tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert cli("train", "--data", runs / "c.txt", "--out", ".", *TRAIN) == 0
    assert json.loads((here / "config.json").read_text())["data"]["dir"] == "data"
    monkeypatch.chdir(here / "data")
    assert cli("train", "--out", "..", "--resume", "--max_iters", 6, *TINY) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli("sample", "here", "--prompt", "First", "--max-new-tokens", 3, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("First")
    assert sorted(losses(here)) == list(range(6))


def test_unicode_and_spaces_in_paths_moved_and_resumed(runs, tmp_path, capsys):
    first = tmp_path / "mes runs ü" / "日本 run 1"
    first.parent.mkdir()
    assert cli("train", "--data", runs / "c.txt", "--out", first, *TRAIN) == 0
    moved = tmp_path / "ailleurs é" / "run 2 ✓"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert cli("train", "--out", moved, "--resume", "--max_iters", 6, *TINY) == 0
    capsys.readouterr()
    assert cli("sample", moved, "--prompt", "All", "--max-new-tokens", 3, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("All")


def test_symlinked_run_folder_samples_and_resumes_through_the_link(runs, tmp_path, capsys):
    real = copy(runs / "char", tmp_path / "disk2" / "run")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "run"
    link.symlink_to(real, target_is_directory=True)
    assert cli("train", "--out", link, "--resume", "--max_iters", 6, *TINY) == 0
    assert link.is_symlink() and (real / "checkpoints" / "step_000006" / "state.json").is_file()
    capsys.readouterr()
    assert cli("sample", link, "--max-new-tokens", 3, "--seed", 0) == 0


def _as_unprivileged(*args):
    """`nanoframe *args` in a forked child that can write only what the files' modes allow (root
    drops to nobody, since root writes through any mode); returns (exit code, stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            sys.stderr = os.fdopen(write_end, "w", buffering=1)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            code = cli(*args)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        err = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_read_only_run_samples_and_training_says_why_it_cannot(runs):
    top = Path(tempfile.mkdtemp(prefix="nf-readonly-"))      # world-readable: the child may be nobody
    try:
        top.chmod(0o755)
        run = copy(runs / "char", top / "run")
        for p in [run, *run.rglob("*")]:
            p.chmod((p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0)) & ~0o222)
        before = tree(run)
        code, err = _as_unprivileged("sample", run, "--max-new-tokens", 3, "--seed", 0)
        assert code == 0, err
        code, err = _as_unprivileged("train", "--out", run, "--resume", "--max_iters", 6, *TINY)
        last = (err.strip().splitlines() or [f"exit {code}, no stderr"])[-1]
        assert code == 2 and last.startswith("nanoframe: error:") and "Permission denied" in last, err
        assert str(run) in last, err
        assert tree(run) == before
    finally:
        for p in top.rglob("*"):
            p.chmod(0o755)
        shutil.rmtree(top)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_two_finetunes_from_the_same_base_at_once(runs, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    pids = []
    for out in outs:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                code = cli("finetune", "--from", runs / "char", "--data", runs / "c.txt", "--out", out, *FT)
            finally:
                os._exit(code)
        pids.append(pid)
    assert [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids] == [0, 0]
    assert losses(outs[0]) == losses(outs[1])                   # the same seed, the same base: the same run


# ---- never replace what is not a run to replace ----------------------------------------------------
@pytest.mark.parametrize("command", ["train", "finetune", "finetune_into_its_own_base"])
def test_a_merged_run_is_never_overwritten(runs, tmp_path, capsys, command):
    merged = copy(runs / "merged", tmp_path / "merged")
    before = tree(merged)
    args = {"train": ["train", "--data", runs / "c.txt", "--out", merged, *TRAIN],
            "finetune": ["finetune", "--from", runs / "bpe", "--data", runs / "c.txt", "--out", merged, *FT],
            "finetune_into_its_own_base": ["finetune", "--from", merged, "--data", runs / "c.txt", "--out", merged,
                                           *FT]}[command]
    msg = one_error_line(capsys, *args)
    assert "already holds" in msg
    assert {k: v for k, v in tree(merged).items() if k != ".nanoframe.lock"} == \
        {k: v for k, v in before.items() if k != ".nanoframe.lock"}


def test_starting_over_never_deletes_trained_weights(runs, tmp_path, capsys):
    run = copy(runs / "char", tmp_path / "copy")
    for folder in Run(run).list_checkpoints():                  # the copy caught them mid-rotation
        (folder / "state.json").unlink()
    trained = tree(run / "best")
    assert json.loads((run / "best" / "state.json").read_text())["step"] == 4
    msg = one_error_line(capsys, "train", "--out", run, "--resume", *TINY)
    assert "has no step checkpoint yet" in msg and "start it again" in msg
    with pytest.warns(Warning, match="best.interrupted"):
        assert cli("train", "--data", runs / "c.txt", "--out", run, *TRAIN, "--max_iters", 2) == 0   # as it says
    assert tree(run / "best.interrupted") == trained, "the weights trained to step 4 were deleted by a fresh start"


@pytest.mark.parametrize("target", ["a_run", "a_user_folder"])
def test_prepare_never_overwrites_a_folder_it_does_not_own(runs, tmp_path, capsys, target):
    if target == "a_run":
        out = copy(runs / "char", tmp_path / "run")
    else:
        out = tmp_path / "mine"
        out.mkdir()
        (out / "meta.json").write_text('{"my": "settings"}')
        (out / "thesis.tex").write_text("precious")
    before = tree(out)
    msg = one_error_line(capsys, "prepare", "--data", runs / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300,
                         "--out", out, "--no-progress")
    assert str(out) in msg
    assert tree(out) == before


def test_a_planted_lock_symlink_never_writes_outside_the_run(runs, tmp_path):
    run = copy(runs / "char", tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious user data\n")
    (run / ".nanoframe.lock").unlink()
    (run / ".nanoframe.lock").symlink_to(victim)
    cli("train", "--out", run, "--resume", "--max_iters", 5, *TINY)
    assert victim.read_text() == "precious user data\n"


def test_a_lock_that_is_not_a_regular_file_is_named(runs, tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    run = copy(runs / "char", tmp_path / "run")
    (run / ".nanoframe.lock").unlink()
    os.mkfifo(run / ".nanoframe.lock")
    msg = one_error_line(capsys, "train", "--out", run, "--resume", "--max_iters", 5, *TINY)
    assert ".nanoframe.lock" in msg


# ---- resuming in another world of options -----------------------------------------------------------
def test_keep_checkpoints_1_never_deletes_the_only_good_checkpoint(runs, tmp_path, capsys):
    run = copy(runs / "char", tmp_path / "run")
    (run / "checkpoints" / "step_000004" / "state.json").write_text('{"step": "four"}')
    with pytest.warns(Warning):
        assert cli("train", "--out", run, "--resume", "--max_iters", 3, "--keep_checkpoints", 1, *TINY) == 0
    assert (run / "checkpoints" / "step_000004.damaged").is_dir()      # set aside, never latest again
    assert cli("train", "--out", run, "--resume", "--max_iters", 6, *TINY) == 0


def test_resume_with_max_iters_below_the_checkpoint_is_refused(runs, tmp_path, capsys):
    run = copy(runs / "char", tmp_path / "run")
    before = tree(run / "checkpoints")
    msg = one_error_line(capsys, "train", "--out", run, "--resume", "--max_iters", 2, *TINY)
    assert "max_iters 2" in msg and "step 4" in msg
    assert tree(run / "checkpoints") == before


def test_resume_refuses_a_seed_it_would_ignore(runs, tmp_path, capsys):
    run = copy(runs / "char", tmp_path / "run")
    msg = one_error_line(capsys, "train", "--out", run, "--resume", "--max_iters", 6, "--seed", 5, *TINY)
    assert "seed" in msg and "ignored" in msg


def test_copied_run_finds_its_own_shared_data_not_a_namesake(runs, tmp_path, capsys):
    for project, text in (("p1", SHAKESPEAREISH), ("p2", SHAKESPEAREISH[:3000])):
        (tmp_path / project / "runs").mkdir(parents=True)
        (tmp_path / project / "c.txt").write_text(text)
        assert cli("prepare", "--data", tmp_path / project / "c.txt", "--tokenizer", "char", "--out",
                   tmp_path / project / "data", "--no-progress") == 0
    assert cli("train", "--data-dir", tmp_path / "p1" / "data", "--out", tmp_path / "p1" / "runs" / "a",
               "--max_iters", 2, "--checkpoint_interval", 2, *TINY) == 0
    copied = copy(tmp_path / "p1" / "runs" / "a", tmp_path / "p2" / "runs" / "a")
    capsys.readouterr()
    assert cli("train", "--out", copied, "--resume", "--max_iters", 4, *TINY) == 0, capsys.readouterr().err


# ---- info on each kind of run ---------------------------------------------------------------------------
def test_info_of_a_frozen_finetune_counts_its_trainable_parameters(runs, tmp_path, capsys):
    out = tmp_path / "frozen"
    assert cli("finetune", "--from", runs / "char", "--data", runs / "c.txt", "--out", out, "--freeze-layers", 1,
               "--freeze-embeddings", *FT) == 0
    capsys.readouterr()
    assert cli("info", out) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["finetune"] == "frozen"
    assert info["trainable_parameters"] < info["parameters"]


def test_info_of_each_kind_of_run(runs, capsys):
    kinds = {"char": None, "lora": "lora", "merged": None}
    for name, finetune in kinds.items():
        capsys.readouterr()
        assert cli("info", runs / name) == 0, name
        info = json.loads(capsys.readouterr().out)
        assert info.get("finetune") == finetune and info["parameters"] > 0
    capsys.readouterr()
    assert cli("info", runs / "lora") == 0
    info = json.loads(capsys.readouterr().out)
    assert 0 < info["trainable_parameters"] < info["parameters"] and info["lora"]["r"] == 2


# ---- messages --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["before_a_checkpoint", "after_a_checkpoint"])
def test_ctrl_c_of_a_finetune_with_the_default_out_says_what_to_do(runs, tmp_path, monkeypatch, capsys, mode):
    import nanoframe.training.trainer as trainer_module

    calls = []
    train_step = trainer_module.Trainer.train_step

    def interrupted_step(self):                        # Ctrl-C arrives during the third step
        calls.append(self.step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_step(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", interrupted_step)
    monkeypatch.chdir(tmp_path)
    interval = 100 if mode == "before_a_checkpoint" else 1
    assert cli("finetune", "--from", runs / "char", "--data", runs / "c.txt", "--max_iters", 10,
               "--checkpoint_interval", interval, "--eval_iters", 1, "--batch_size", 2, "--no-progress",
               "--no-sample") == 130
    err = capsys.readouterr().err
    expected = "run the same command again" if mode == "before_a_checkpoint" else "--out runs/finetune --resume"
    assert expected in err, err.strip().splitlines()[-1]


def test_out_that_is_a_dangling_symlink(runs, tmp_path, capsys):
    link = tmp_path / "run"
    link.symlink_to(tmp_path / "nowhere")
    msg = one_error_line(capsys, "train", "--data", runs / "c.txt", "--out", link, *TRAIN)
    assert str(link) in msg and "symbolic link" in msg
