"""Exact resume: losses after resuming equal an uninterrupted run's, bit for bit."""
import json
import signal
import subprocess
import sys
import time

import pytest

from nanoframe import data as D
from nanoframe.cli import main
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.checkpoint import read_state
from nanoframe.training.run import Run
from nanoframe.training.config import TrainConfig
from nanoframe.training.trainer import Trainer, TrainingError

from tests.helpers.runs import TINY


def _losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def _setup(tmp_path, corpus, name, **over):
    tok = D.train_tokenizer("char", [D.Document("c", corpus.read_text())])
    data_dir = tmp_path / "data"
    if not (data_dir / "meta.json").exists():
        train, val = D.split_documents([D.Document("c", corpus.read_text())])
        D.prepare(train, val, tok, data_dir, show_progress=False)
    cfg = TrainConfig(**{**dict(batch_size=4, max_iters=24, eval_interval=8, eval_iters=2, warmup_iters=2,
                                checkpoint_interval=6, keep_checkpoints=10, lr=3e-3), **over})
    manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    data = D.TokenData(data_dir, 16, cfg.batch_size, seed=cfg.seed)
    return Trainer(model, data, cfg, tmp_path / name, show_progress=False, tokenizer=tok)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, corpus):
    full = _setup(tmp_path, corpus, "full")
    full.train()
    ref = _losses(tmp_path / "full")
    # a fresh process-like start: new model, new optimizer, different global RNG state
    resumed = _setup(tmp_path, corpus, "full")
    manual_seed(999)
    resumed.resume(tmp_path / "full" / "checkpoints" / "step_000012")
    assert resumed.step == 12
    resumed.train()
    again = _losses(tmp_path / "full")
    assert sorted(again) == list(range(24))
    assert all(again[s] == ref[s] for s in range(24)), "resumed losses differ from the uninterrupted run"


def test_resume_after_kill_9_equals_uninterrupted(tmp_path, corpus):
    args = ["train", "--data", str(corpus), "--tokenizer", "char", "--max_iters", "60",
            "--checkpoint_interval", "5", "--keep_checkpoints", "20", "--dropout", "0.1", *TINY]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    ref = _losses(tmp_path / "ref")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nanoframe", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not Run(out).list_checkpoints() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert Run(out).list_checkpoints(), "the run wrote no checkpoint before it was killed"
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--no-sample"]) == 0
    assert _losses(out) == ref


def test_non_finite_loss_stops_naming_the_step_and_keeps_checkpoint(tmp_path, corpus):
    trainer = _setup(tmp_path, corpus, "nan", checkpoint_interval=2)
    forward = trainer.model.forward

    def poisoned(idx, targets=None, **kw):
        logits, loss = forward(idx, targets, **kw)
        if trainer.step == 5:
            loss = loss * float("nan")
        return logits, loss

    trainer.model.forward = poisoned
    with pytest.raises(TrainingError, match="at step 5"):
        trainer.train()
    last = Run(tmp_path / "nan").list_checkpoints()[-1]
    assert last.name == "step_000004" and read_state(last)["step"] == 4
