"""Non-finite numbers never pass: options and constructors refuse NaN and inf, the trainer stops
before an update with a non-finite gradient and never saves non-finite weights, and generation
refuses NaN sampling settings and NaN weights."""
import math

import numpy as np
import pytest

from nanoframe import data as D
from nanoframe.errors import ConfigError, TrainingError
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.checkpoint import load_checkpoint
from nanoframe.training.config import TrainConfig
from nanoframe.training.lora import apply_lora
from nanoframe.training.run import Run
from nanoframe.training.trainer import Trainer

from tests.helpers.runs import SHAKESPEAREISH, TINY, one_error_line

BAD = ["nan", "inf", "-inf", "NaN"]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("option", ["--lr", "--min_lr", "--weight_decay", "--grad_clip", "--beta1", "--beta2",
                                    "--dropout", "--max_time"])
def test_training_options_refuse_non_finite(tmp_path, capsys, option, value):
    corpus = tmp_path / "c.txt"
    corpus.write_text(SHAKESPEAREISH)
    msg = one_error_line(capsys, "train", "--data", corpus, "--tokenizer", "char", "--out", tmp_path / "r", *TINY,
                         option, value)
    assert option.lstrip("-") in msg


@pytest.mark.parametrize("args", [["--temperature", "nan"], ["--temperature", "inf"], ["--top-p", "nan"],
                                  ["--top-k", "2.5"], ["--max-new-tokens", "-1"], ["--num-samples", "0"],
                                  ["--num-samples", "-2"], ["--top-p", "0"]])
def test_sample_options_refuse_bad_values(tmp_path, capsys, args):
    msg = one_error_line(capsys, "sample", tmp_path, *args)
    assert args[0] in msg


@pytest.mark.parametrize("args", [["--lora-alpha", "nan"], ["--lora-dropout", "inf"], ["--lora-r", "0"],
                                  ["--val-fraction", "nan"]])
def test_finetune_options_refuse_bad_values(tmp_path, capsys, args):
    msg = one_error_line(capsys, "finetune", "--from", tmp_path, "--lora", *args)
    assert args[0] in msg


def test_constructors_refuse_non_finite():
    for kw in (dict(lr=math.nan), dict(lr=math.inf), dict(weight_decay=-math.inf), dict(grad_clip=math.nan),
               dict(beta2=math.nan), dict(max_time=math.inf)):
        with pytest.raises(ConfigError, match=next(iter(kw))):
            TrainConfig(**kw)
    with pytest.raises(ConfigError, match="dropout"):
        GPTConfig(dropout=math.nan)
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4))
    for kw, name in ((dict(alpha=math.nan), "alpha"), (dict(alpha=math.inf), "alpha"), (dict(dropout=math.nan), "dropout"),
                     (dict(r=2.5), "r")):
        with pytest.raises(ConfigError, match=f"LoRA {name}"):
            apply_lora(model, **kw)


def test_generate_refuses_bad_sampling_settings():
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4))
    for kw, field in ((dict(temperature=math.nan), "temperature"), (dict(temperature=-1.0), "temperature"),
                      (dict(top_k=2.5), "top_k"), (dict(top_k=True), "top_k"), (dict(top_p=math.nan), "top_p"),
                      (dict(top_p=0.0), "top_p")):
        with pytest.raises(ConfigError, match=field):
            model.generate([[1]], 2, **kw)
    for n in (2.0, "3", -1):
        with pytest.raises(ConfigError, match="max_new_tokens"):
            model.generate([[1]], n)
    assert model.generate([[1]], np.int64(2), top_k=np.int32(3), seed=0).shape == (1, 3)


def test_sampling_from_nan_weights_is_an_error_not_token_0():
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4))
    model.transformer.h[0].mlp.c_fc.weight.array[0, 0] = np.nan
    for cache in (True, False):
        with pytest.raises(ValueError, match="NaN or inf logits"):
            model.generate([[1, 2]], 3, temperature=0.8, seed=0, use_cache=cache)


def _trainer(tmp_path, **over):
    corpus = SHAKESPEAREISH
    tok = D.train_tokenizer("char", [D.Document("c", corpus)])
    train, val = D.split_documents([D.Document("c", corpus)])
    D.prepare(train, val, tok, tmp_path / "data", show_progress=False)
    cfg = TrainConfig(**{**dict(batch_size=4, max_iters=10, eval_interval=5, eval_iters=2, warmup_iters=2,
                                checkpoint_interval=2, keep_checkpoints=10), **over})
    manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    data = D.TokenData(tmp_path / "data", 16, cfg.batch_size, seed=cfg.seed)
    return Trainer(model, data, cfg, tmp_path / "run", show_progress=False, tokenizer=tok)


def test_non_finite_loss_stops_and_the_last_checkpoint_is_good(tmp_path):
    trainer = _trainer(tmp_path)
    forward = trainer.model.forward

    def forward_then_poison(idx, targets=None, **kw):
        logits, loss = forward(idx, targets, **kw)
        if trainer.step == 5 and trainer.model.training:
            return logits, loss * np.float32(1e30) * np.float32(1e30)   # the loss overflows to inf
        return logits, loss

    trainer.model.forward = forward_then_poison
    with pytest.raises(TrainingError, match="loss is inf at step 5"):
        trainer.train()
    last = Run(tmp_path / "run").list_checkpoints()[-1]
    assert last.name == "step_000004"
    model, _ = load_checkpoint(last)
    assert all(np.isfinite(p.array).all() for p in model.parameters())


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_non_finite_gradient_stops_before_the_update(tmp_path, monkeypatch, grad_clip):
    """With clipping on or off, the norm is checked before the optimizer step."""
    trainer = _trainer(tmp_path, grad_clip=grad_clip)
    w = trainer.model.transformer.h[0].mlp.c_fc.weight
    stepped = []
    optimizer_step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (stepped.append(trainer.step), optimizer_step())
    import nanoframe.training.trainer as trainer_module

    real_clip = trainer_module.clip_grad_norm_

    def clip(params, max_norm):
        if trainer.step == 3:
            w.grad_array[0, 0] = np.nan        # a gradient that went NaN in backward
        return real_clip(params, max_norm)

    monkeypatch.setattr(trainer_module, "clip_grad_norm_", clip)
    with pytest.raises(TrainingError, match="gradient norm is nan at step 3"):
        trainer.train()
    assert stepped == [0, 1, 2]                # no optimizer step with the NaN gradient
    assert np.isfinite(w.array).all()


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = _trainer(tmp_path)
    orig = trainer.optimizer.step

    def corrupting_step():
        orig()
        if trainer.step == 3:
            trainer.model.transformer.wpe.weight.array[0, 0] = np.inf

    trainer.optimizer.step = corrupting_step
    with pytest.raises(TrainingError, match="weights became non-finite at step 4"):
        trainer.train()
    assert [p.name for p in Run(tmp_path / "run").list_checkpoints()] == ["step_000002"]
