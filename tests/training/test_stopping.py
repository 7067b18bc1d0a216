"""The trainer's two other ways to stop besides max_iters: early stopping on the validation loss
(early_stop_patience) and a wall-clock budget (max_time). Both end with a checkpoint that resumes."""
import json

import numpy as np
import pytest

from nanoframe import data as D
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.config import TrainConfig
from nanoframe.training.run import Run
from nanoframe.training.trainer import Trainer

from tests.helpers.runs import SHAKESPEAREISH


@pytest.fixture
def token_dir(tmp_path):
    tok = D.train_tokenizer("char", [D.Document("c", SHAKESPEAREISH)])
    train, val = D.split_documents([D.Document("c", SHAKESPEAREISH)])
    D.prepare(train, val, tok, tmp_path / "data", show_progress=False)
    return tmp_path / "data", tok


def _trainer(token_dir, out, trainer_class=Trainer, **train):
    data_dir, tok = token_dir
    cfg = TrainConfig(**{**dict(batch_size=2, max_iters=20, eval_interval=2, eval_iters=1, warmup_iters=1,
                                lr=1e-2, min_lr=1e-3, checkpoint_interval=100), **train})
    manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    data = D.TokenData(data_dir, 8, 2, seed=cfg.seed)
    return trainer_class(model, data, cfg, out, show_progress=False, tokenizer=tok)


def test_early_stopping_stops_after_patience_evals_without_a_new_best(token_dir, tmp_path):
    # the validation losses the trainer sees, one per evaluation (every 2 steps)
    scripted = [3.0, 2.0, 2.5, 2.0, 2.4, 9.0, 9.0]

    class Scripted(Trainer):
        def evaluate(self):
            return scripted[self.step // self.cfg.eval_interval]

    trainer = _trainer(token_dir, tmp_path / "run", Scripted, early_stop_patience=3)
    summary = trainer.train()
    # best 2.0 at step 2; 2.5, 2.0 (not better), 2.4 are three evals without a new best: stop at step 8
    assert summary["stopped"] == "early_stop"
    assert summary["steps"] == 8
    assert summary["best_val_loss"] == 2.0 and summary["val_loss"] == 2.4
    run = Run(tmp_path / "run")
    vals = [(r["step"], r["val_loss"]) for r in run.read_metrics() if "val_loss" in r]
    assert vals == [(0, 3.0), (2, 2.0), (4, 2.5), (6, 2.0), (8, 2.4)]      # no extra eval after the stop
    assert max(r["step"] for r in run.read_metrics() if "loss" in r) == 7
    best = json.loads((run.best_dir / "state.json").read_text())
    assert best["step"] == 2 and best["val_loss"] == 2.0
    last = json.loads((run.checkpoint_dir(8) / "state.json").read_text())
    assert last["evals_since_best"] == 3 and last["best_val_loss"] == 2.0


def test_patience_zero_never_stops_early(token_dir, tmp_path):
    class Worse(Trainer):
        def evaluate(self):
            return 1.0 + self.step               # never a new best after the first eval

    summary = _trainer(token_dir, tmp_path / "run", Worse, max_iters=6, early_stop_patience=0).train()
    assert summary["stopped"] == "max_iters" and summary["steps"] == 6 and summary["best_val_loss"] == 1.0


def test_max_time_stops_after_the_step_that_passed_it_and_resumes_exactly(token_dir, tmp_path):
    # a budget every step overruns: the run stops after its first step, evaluates and checkpoints it
    summary = _trainer(token_dir, tmp_path / "cut", max_iters=6, max_time=1e-9).train()
    assert summary["stopped"] == "max_time" and summary["steps"] == 1
    cut = Run(tmp_path / "cut")
    assert cut.last_step() == 1
    assert [r["step"] for r in cut.read_metrics() if "val_loss" in r] == [0, 1]
    # resumed without the budget it ends where an uninterrupted run ends, loss for loss
    resumed = _trainer(token_dir, tmp_path / "cut", max_iters=6, max_time=0.0)
    assert resumed.resume()["step"] == 1
    assert resumed.train()["stopped"] == "max_iters"
    whole = _trainer(token_dir, tmp_path / "whole", max_iters=6)
    assert whole.train()["steps"] == 6

    def losses(run):
        return {r["step"]: r["loss"] for r in Run(run).read_metrics() if "loss" in r}

    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    assert sorted(losses(tmp_path / "whole")) == list(range(6))
    for a, b in zip(resumed.model.parameters(), whole.model.parameters()):
        np.testing.assert_array_equal(a.array, b.array)
