"""Fine-tunes resume exactly like pretraining: full, frozen and LoRA, in process and after kill -9;
Ctrl-C before the first checkpoint; options --resume would ignore; lora merge checks its base."""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from nanoframe.training.run import Run

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli, losses, one_error_line

FT = ["--max_iters", 12, "--eval_interval", 4, "--eval_iters", 2, "--batch_size", 4, "--checkpoint_interval", 3,
      "--keep_checkpoints", 10, "--early_stop_patience", 0, "--no-progress", "--no-sample"]
MODES = {"full": [], "frozen": ["--freeze-layers", 1, "--freeze-embeddings"],
         "lora": ["--lora", "--lora-r", 2, "--lora-targets", "c_attn,c_fc", "--lora-dropout", 0.1]}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftr")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(10, 40) for b in (3, 7)]
    (root / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300, "--out", root / "base",
               "--max_iters", 6, *TINY, "--block_size", 32, "--dropout", 0.1) == 0
    return root


def _finetune(base, out, mode, *extra):
    data = base / ("inst.jsonl" if mode == "lora" else "c.txt")
    return cli("finetune", "--from", base / "base", "--data", data, "--out", out, *MODES[mode], *FT, *extra)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_finetune_resume_equals_uninterrupted(base, tmp_path, mode):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert _finetune(base, ref, mode) == 0
    assert _finetune(base, cut, mode, "--max_iters", 7) == 0     # stops at 7 (checkpoint), like an interruption
    shutil.rmtree(cut / "checkpoints" / "step_000007")          # continue from step 6, as after a crash
    moved = tmp_path / "moved"
    shutil.move(cut, moved)                                      # and from another place
    assert cli("finetune", "--out", moved, "--resume", "--max_iters", 12, "--no-progress", "--no-sample") == 0
    assert losses(moved) == losses(ref), f"{mode}: resumed losses differ"
    config = json.loads((moved / "config.json").read_text())
    assert config["kind"] == "finetune" and config["finetune"]["mode"] == mode
    assert config["finetune"]["base"]["weights_sha256"]
    if mode == "lora":
        assert (moved / "adapter.safetensors").is_file() and config["data"]["kind"] == "instructions"


def _kill_after_checkpoint(args, out):
    proc = subprocess.Popen([sys.executable, "-m", "nanoframe", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(Run(out).list_checkpoints()) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert Run(out).list_checkpoints(), "no checkpoint was written before the kill"


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_finetune_resume_after_kill_9_equals_uninterrupted(base, tmp_path, mode):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    long = ["--max_iters", 40, "--checkpoint_interval", 2]
    assert _finetune(base, ref, mode, *long) == 0
    data = base / ("inst.jsonl" if mode == "lora" else "c.txt")
    _kill_after_checkpoint(["finetune", "--from", base / "base", "--data", data, "--out", out, *MODES[mode], *FT,
                            *long], out)
    assert cli("finetune", "--out", out, "--resume", "--no-progress", "--no-sample") == 0
    assert losses(out) == losses(ref)


def test_ctrl_c_before_the_first_checkpoint_says_run_again_and_a_fresh_start_truncates(base, tmp_path):
    out = tmp_path / "early"
    args = [sys.executable, "-m", "nanoframe", "finetune", "--from", str(base / "base"), "--data",
            str(base / "c.txt"), "--out", str(out), "--max_iters", "100000", "--checkpoint_interval", "100000",
            "--eval_interval", "1", "--eval_iters", "1", "--batch_size", "2", "--no-progress", "--no-sample"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not ((out / "metrics.jsonl").is_file()
                                          and (out / "metrics.jsonl").stat().st_size > 200):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert "before the first checkpoint" in err and "run the same command again" in err
    stale = (out / "metrics.jsonl").read_text()
    assert stale
    resumed = subprocess.run(args[:4] + ["--out", str(out), "--resume", "--no-progress"], capture_output=True, text=True)
    assert resumed.returncode == 2 and "has no step checkpoint yet" in resumed.stderr
    assert cli("finetune", "--from", base / "base", "--data", base / "c.txt", "--out", out, *FT,
               "--max_iters", 3) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3 and steps.count(0) == 2            # only this run's lines: loss and val at step 0


def test_ctrl_c_after_a_checkpoint_says_how_to_resume(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(SHAKESPEAREISH)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nanoframe", "train", "--data", str(corpus), "--tokenizer", "char",
                             "--out", str(out), "--max_iters", "100000", "--checkpoint_interval", "2",
                             *map(str, TINY)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not Run(out).list_checkpoints() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert f"nanoframe train --out {out} --resume" in err and "last checkpoint" in err


def test_resume_refuses_options_it_would_ignore(base, tmp_path, capsys):
    out = tmp_path / "r"
    assert _finetune(base, out, "full", "--max_iters", 3) == 0
    capsys.readouterr()
    for extra in (["--data", base / "c.txt"], ["--from", base / "base"], ["--lora"], ["--freeze-layers", 1],
                  ["--tokenizer", base / "base" / "tokenizer.json"], ["--val-fraction", 0.2]):
        msg = one_error_line(capsys, "finetune", "--out", out, "--resume", *extra)
        assert "cannot be given with it" in msg and extra[0] in msg
    for extra in (["--data", base / "c.txt"], ["--tokenizer", "char"], ["--preset", "tiny"], ["--vocab-size", 300]):
        msg = one_error_line(capsys, "train", "--out", base / "base", "--resume", *extra)
        assert "cannot be given with it" in msg and extra[0] in msg


def test_runs_of_the_other_kind_are_refused_with_the_right_command(base, tmp_path, capsys):
    out = tmp_path / "ft"
    assert _finetune(base, out, "full", "--max_iters", 3) == 0
    capsys.readouterr()
    msg = one_error_line(capsys, "train", "--out", out, "--resume", "--no-progress")   # was KeyError: 'data_dir'
    assert "is a finetune run: resume it as a fine-tune" in msg
    msg = one_error_line(capsys, "finetune", "--out", base / "base", "--resume", "--no-progress")
    assert "is a pretrain run: resume it as a pretraining run" in msg


def test_lora_merge_checks_the_base(base, tmp_path, capsys):
    lora, other = tmp_path / "lora", tmp_path / "other"
    assert _finetune(base, lora, "lora", "--max_iters", 3) == 0
    assert cli("train", "--data", base / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300, "--out", other,
               "--max_iters", 2, *TINY, "--block_size", 32, "--seed", 7) == 0
    capsys.readouterr()
    for adapter in (lora, lora / "adapter.safetensors"):
        msg = one_error_line(capsys, "lora", "merge", "--base", other, "--adapter", adapter, "--out", tmp_path / "m")
        assert "is not the base" in msg and "force the merge" in msg
        assert not (tmp_path / "m" / "config.json").exists()
    assert cli("lora", "merge", "--base", other, "--adapter", lora, "--out", tmp_path / "m", "--force") == 0
    assert cli("lora", "merge", "--base", base / "base", "--adapter", lora, "--out", tmp_path / "ok") == 0
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["kind"] == "merge"
    capsys.readouterr()
    # the same merge again is the same result (a killed merge may be run again); another one is refused
    assert cli("lora", "merge", "--base", base / "base", "--adapter", lora, "--out", tmp_path / "ok") == 0
    capsys.readouterr()
    assert "not empty" in one_error_line(capsys, "lora", "merge", "--base", other, "--adapter", lora,
                                         "--out", tmp_path / "ok", "--force")
