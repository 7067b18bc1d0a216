"""The run folder and its owner, Run: layout, relocation, the lock, never writing into a folder
that is not a run, atomic metrics, crash recovery of best/, stray and damaged checkpoints."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from nanoframe.training.run import Run, RunWarning

from tests.helpers.runs import TINY, cli, losses, one_error_line

TRAIN = ["--tokenizer", "char", "--max_iters", 8, "--checkpoint_interval", 2, "--keep_checkpoints", 10,
         "--eval_interval", 4, *TINY]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """A finished 8-step char run with checkpoints at steps 2, 4, 6, 8 (copy it before changing it)."""
    root = tmp_path_factory.mktemp("runs")
    corpus = root / "input.txt"
    from tests.helpers.runs import SHAKESPEAREISH

    corpus.write_text(SHAKESPEAREISH)
    assert cli("train", "--data", corpus, "--out", root / "run", *TRAIN) == 0
    return root / "run"


def copy(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def test_layout_and_one_config_schema(trained):
    assert sorted(p.name for p in trained.iterdir()) == [
        ".nanoframe.lock", "best", "checkpoints", "config.json", "data", "metrics.jsonl", "tokenizer.json"]
    config = json.loads((trained / "config.json").read_text())
    assert (config["format"], config["version"], config["kind"]) == ("nanoframe.run", 1, "pretrain")
    assert config["data"]["dir"] == "data" and "dir_absolute" not in config["data"]   # relative to the run
    assert config["tokenizer"]["file"] == "tokenizer.json" and len(config["tokenizer"]["sha256"]) == 64
    assert [p.name for p in Run(trained).list_checkpoints()] == [f"step_00000{i}" for i in (2, 4, 6, 8)]
    # no path the run uses is absolute ("source" is a provenance note, never opened)
    config["data"].pop("source")
    text = json.dumps(config) + (trained / "best" / "state.json").read_text()
    assert str(trained.parent) not in text, "a path outside the run was stored"


def test_moved_run_samples_resumes_and_finetunes(trained, tmp_path, capsys):
    moved = copy(trained, tmp_path, "elsewhere")
    capsys.readouterr()
    assert cli("sample", moved, "--prompt", "First", "--max-new-tokens", 5, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("First")
    assert cli("train", "--out", moved, "--resume", "--max_iters", 10, "--no-progress", "--no-sample") == 0
    assert sorted(losses(moved)) == list(range(10))
    assert cli("finetune", "--from", moved, "--out", tmp_path / "ft", "--data", trained.parent / "input.txt",
               "--max_iters", 2, "--eval_interval", 2, "--eval_iters", 1, "--batch_size", 2, "--no-progress",
               "--no-sample") == 0


def test_second_writer_is_refused_at_once(trained, tmp_path):
    run = copy(trained, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nanoframe.training.run import Run; "
                               "r = Run(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(str(p) + str(p.stat().st_mtime_ns) for p in run.rglob("*"))
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "nanoframe", "train", "--out", str(run), "--resume", *map(str, TINY)],
                             capture_output=True, text=True)
        assert time.perf_counter() - t0 < 20
        assert res.returncode == 2 and f"in use by another nanoframe process (pid {holder.pid})" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert sorted(str(p) + str(p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with the killed process: no stale lock blocks the next run
    assert cli("train", "--out", run, "--resume", "--max_iters", 9, "--no-progress", "--no-sample") == 0


def test_folder_that_is_not_a_run_is_never_written(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    corpus = tmp_path / "c.txt"
    from tests.helpers.runs import SHAKESPEAREISH

    corpus.write_text(SHAKESPEAREISH)
    for args in (["train", "--data", corpus, *TRAIN], ["finetune", "--from", tmp_path / "none", "--no-progress"]):
        msg = one_error_line(capsys, *args, "--out", mine)
        assert "is not empty and is not a nanoframe run" in msg or "no such run" in msg
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    (tmp_path / "afile").write_text("x")
    assert "is a file" in one_error_line(capsys, "train", "--data", corpus, "--out", tmp_path / "afile", *TRAIN)


def test_partial_metrics_line_is_dropped_with_a_warning_and_resume_goes_on(trained, tmp_path):
    run = copy(trained, tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "loss": 1.2')             # what a full disk leaves
    with pytest.warns(RunWarning, match=r"metrics.jsonl:\d+: dropped a partial last line"):
        records = Run(run).read_metrics()
    assert all(r["step"] < 8 or "val_loss" in r for r in records)
    with pytest.warns(RunWarning):
        assert cli("train", "--out", run, "--resume", "--max_iters", 10, "--no-progress", "--no-sample") == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)     # every line parses again
    assert sorted(losses(run)) == list(range(10))


def test_resume_truncates_metrics_atomically(trained, tmp_path, monkeypatch):
    run = copy(trained, tmp_path)
    original = (run / "metrics.jsonl").read_bytes()
    import nanoframe.training.run as run_module

    def crash(path, text):                              # the process dies while rewriting the history
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        Run(run).truncate_metrics(4)
    assert (run / "metrics.jsonl").read_bytes() == original          # never half-written
    monkeypatch.undo()
    Run(run).truncate_metrics(4)
    assert max(r["step"] for r in Run(run).read_metrics()) == 3 or all(
        r["step"] < 4 for r in Run(run).read_metrics())


@pytest.mark.parametrize("crash_point", ["after_old", "after_tmp"])
def test_best_swap_interrupted_at_any_point_leaves_a_best(trained, tmp_path, crash_point, capsys):
    run = copy(trained, tmp_path)
    best, old, tmp = run / "best", run / "best.old", run / "best.tmp"
    shutil.copytree(best, tmp)
    os.replace(best, old)                               # the first of the swap's two renames
    if crash_point == "after_tmp":
        os.replace(tmp, best)                           # the second: only the .old removal is left
    capsys.readouterr()
    # a reader (no lock) still finds the weights
    assert cli("sample", run, "--max-new-tokens", 3, "--seed", 0) == 0
    assert "sampling from" in capsys.readouterr().err
    # the next writer repairs the folder under its lock
    Run(run).lock().unlock()
    assert (best / "state.json").is_file() and not old.exists() and not tmp.exists()


def test_stray_checkpoint_folders_are_ignored(trained, tmp_path):
    run = copy(trained, tmp_path)
    ck = run / "checkpoints"
    shutil.copytree(ck / "step_000008", ck / "step_000008 (copy)")
    shutil.copytree(ck / "step_000006", ck / "step_000030.bak")
    (ck / "notes.txt").write_text("mine")
    (ck / "step_000099").mkdir()                        # incomplete: no state.json
    assert [p.name for p in Run(run).list_checkpoints()][-1] == "step_000008"
    assert cli("train", "--out", run, "--resume", "--max_iters", 9, "--no-progress", "--no-sample") == 0
    assert (ck / "step_000008 (copy)").is_dir() and (ck / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("damage", ["truncated_weights", "bad_state", "no_optimizer", "nan_weights", "nan_moments"])
def test_damaged_latest_checkpoint_falls_back_with_a_warning_naming_both(trained, tmp_path, damage):
    run = copy(trained, tmp_path)
    ref = copy(trained, tmp_path, "ref")
    latest = run / "checkpoints" / "step_000008"
    if damage == "truncated_weights":
        data = (latest / "model.safetensors").read_bytes()
        (latest / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "bad_state":
        (latest / "state.json").write_text('{"step": "eight"}')
    elif damage == "no_optimizer":
        (latest / "optimizer.safetensors").unlink()
    elif damage == "nan_moments":
        from nanoframe.io import load_safetensors, load_safetensors_metadata, save_safetensors

        path = latest / "optimizer.safetensors"
        t = load_safetensors(path)
        name = next(k for k in t if "exp_avg_sq" in k)
        t[name].reshape(-1)[0] = float("nan")
        save_safetensors(t, path, metadata=load_safetensors_metadata(path))
    else:
        from nanoframe.io import load_safetensors, save_safetensors

        t = load_safetensors(latest / "model.safetensors")
        t["transformer.wpe.weight"][0, 0] = float("nan")
        save_safetensors(t, latest / "model.safetensors")
    with pytest.warns(RunWarning) as record:
        assert cli("train", "--out", run, "--resume", "--max_iters", 8, "--no-progress", "--no-sample") == 0
    text = " ".join(str(w.message) for w in record)
    assert "step_000008 is damaged" in text and "resuming from" in text and "step_000006" in text
    # resumed from step 6: steps 6 and 7 are redone exactly as the uninterrupted run did them
    assert losses(run) == losses(ref)


def test_shared_data_dir_reprepared_with_another_tokenizer_is_refused(tmp_path, capsys):
    from tests.helpers.runs import SHAKESPEAREISH

    corpus = tmp_path / "c.txt"
    corpus.write_text(SHAKESPEAREISH)
    shared = tmp_path / "shared-data"
    assert cli("prepare", "--data", corpus, "--tokenizer", "char", "--out", shared, "--no-progress") == 0
    assert cli("train", "--data-dir", shared, "--out", tmp_path / "run", "--max_iters", 4, "--checkpoint_interval", 2,
               *TINY) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["dir"] == os.path.relpath(shared, tmp_path / "run") and config["data"]["dir_absolute"]
    # someone re-prepares the shared folder with a BPE tokenizer
    assert cli("prepare", "--data", corpus, "--tokenizer", "bpe", "--vocab-size", 300, "--out", shared,
               "--no-progress") == 0
    msg = one_error_line(capsys, "train", "--out", tmp_path / "run", "--resume", *TINY)
    assert "prepared with another tokenizer" in msg and "meta.json" in msg
    # sampling still uses the run's own tokenizer copy: text, not garbage
    assert cli("sample", tmp_path / "run", "--prompt", "First", "--max-new-tokens", 5, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("First")


def test_moved_shared_data_dir_is_given_again_on_resume(tmp_path, capsys):
    from tests.helpers.runs import SHAKESPEAREISH

    corpus = tmp_path / "c.txt"
    corpus.write_text(SHAKESPEAREISH)
    shared = tmp_path / "d1"
    assert cli("prepare", "--data", corpus, "--tokenizer", "char", "--out", shared, "--no-progress") == 0
    assert cli("train", "--data-dir", shared, "--out", tmp_path / "run", "--max_iters", 4,
               "--checkpoint_interval", 2, *TINY) == 0
    shutil.move(shared, tmp_path / "d2")
    capsys.readouterr()
    assert "is gone; give the data folder's new place" in one_error_line(capsys, "train", "--out", tmp_path / "run", "--resume", *TINY)
    assert cli("train", "--out", tmp_path / "run", "--resume", "--data-dir", tmp_path / "d2", "--max_iters", 6,
               *TINY) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["dir"] == os.path.join("..", "d2")


def test_sample_into_a_closed_pipe_exits_quietly(trained):
    proc = subprocess.Popen([sys.executable, "-m", "nanoframe", "sample", str(trained), "--num-samples", "200",
                             "--max-new-tokens", "30", "--seed", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()                # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first and proc.returncode == 0
    assert "Traceback" not in err and "Broken pipe" not in err and "error" not in err


def _as_written_by_0_1(run):
    """Rewrite a run the way nanoframe 0.1 laid it out: absolute paths, no format versions."""
    config = json.loads((run / "config.json").read_text())
    tok = str((run / "data" / "tokenizer.json").resolve())
    legacy = {"model": config["model"], "train": config["train"], "data_dir": str((run / "data").resolve()),
              "tokenizer": tok}
    (run / "config.json").write_text(json.dumps(legacy))
    (run / "tokenizer.json").unlink()
    (run / ".nanoframe.lock").unlink()
    for state_path in run.glob("**/state.json"):
        state = json.loads(state_path.read_text())
        for key in ("format", "version", "tokenizer_sha256", "data_meta_sha256"):
            state.pop(key, None)
        state["tokenizer"] = tok
        state_path.write_text(json.dumps(state))


def test_runs_written_by_nanoframe_0_1_sample_and_resume(trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    _as_written_by_0_1(run)
    capsys.readouterr()
    assert cli("sample", run, "--prompt", "First", "--max-new-tokens", 4, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("First")
    assert cli("train", "--out", run, "--resume", "--max_iters", 10, "--no-progress", "--no-sample") == 0
    config = json.loads((run / "config.json").read_text())       # migrated under the lock
    assert config["format"] == "nanoframe.run" and (run / "tokenizer.json").is_file()
    assert sorted(losses(run)) == list(range(10))
