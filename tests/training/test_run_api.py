"""Run's lock where fcntl is missing (Windows), and the errors of the Python API that the CLI never
reaches: Run, save_run, open_checkpoint / load_for_inference, pretrain's checks, adapter files."""
import json
import os
import sys

import numpy as np
import pytest

from nanoframe import data as D
from nanoframe.errors import CheckpointError, ConfigError, DataError
from nanoframe.io import save_safetensors
from nanoframe.models import GPT, GPTConfig
from nanoframe.nn.lora import apply_lora
from nanoframe.random import manual_seed
from nanoframe.training import lora as L
from nanoframe.training.pretrain import pretrain
from nanoframe.training.run import LOCK, Run, RunLockedError, load_for_inference, open_checkpoint, save_run

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli


@pytest.fixture
def no_fcntl(monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)      # `import fcntl` now raises ImportError


def test_pid_lock_without_fcntl(tmp_path, no_fcntl):
    run = Run(tmp_path / "run")
    assert run.lock() is run and run.lock() is run and run.locked       # taking it twice is a no-op
    assert (tmp_path / "run" / LOCK).read_text() == f"{os.getpid()}\n"
    with pytest.raises(RunLockedError, match=f"in use by another nanoframe process \\(pid {os.getpid()}\\)"):
        Run(tmp_path / "run").lock()                   # our own pid is alive: held
    run.unlock()
    assert not (tmp_path / "run" / LOCK).exists() and not run.locked
    run.unlock()                                       # unlocking twice is harmless


@pytest.mark.parametrize("content", ["not a pid\n", "4194305\n"])    # garbage, a pid above Linux's pid_max
def test_pid_lock_takes_over_a_stale_lock_file(tmp_path, no_fcntl, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text(content)
    with Run(tmp_path / "run") as run:
        assert run.locked and (tmp_path / "run" / LOCK).read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / "run" / LOCK).exists()


def _tiny(tok):
    manual_seed(0)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))


@pytest.fixture
def char_tok():
    return D.train_tokenizer("char", [SHAKESPEAREISH])


def test_save_run_and_opening_what_is_not_a_run(tmp_path, char_tok):
    run, config = save_run(tmp_path / "saved", _tiny(char_tok), char_tok)
    assert repr(run) == f"Run({str(tmp_path / 'saved')!r})"
    assert config["kind"] == "merge" and (tmp_path / "saved" / "best" / "state.json").is_file()
    assert Run(tmp_path / "saved").trained_step() == 0         # protected: `train --out` there is refused
    with pytest.raises(CheckpointError, match="exists and is not empty; choose a new folder"):
        save_run(tmp_path / "saved", _tiny(char_tok), char_tok)
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="is neither a nanoframe run nor a checkpoint folder"):
        open_checkpoint(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="has no checkpoint to resume from"):
        Run(tmp_path / "saved").load_latest(_tiny(char_tok), None)
    # weights_folder falls back to the newest step checkpoint when there is no best/
    (tmp_path / "saved" / "checkpoints").mkdir()
    os.replace(tmp_path / "saved" / "best", tmp_path / "saved" / "checkpoints" / "step_000000")
    assert Run(tmp_path / "saved").weights_folder().name == "step_000000"
    os.replace(tmp_path / "saved" / "tokenizer.json", tmp_path / "tok.json")
    with pytest.raises(CheckpointError, match="has no tokenizer.json: the run cannot be sampled"):
        load_for_inference(tmp_path / "saved")


def test_a_checkpoint_outside_a_run_and_a_tokenizer_larger_than_the_model(tmp_path, char_tok):
    save_run(tmp_path / "saved", _tiny(char_tok), char_tok)
    (tmp_path / "saved" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="is not inside a run folder with its tokenizer.json"):
        load_for_inference(tmp_path / "saved" / "best")
    big = D.train_tokenizer("char", [SHAKESPEAREISH + "0123456789"])
    small = GPT(GPTConfig(vocab_size=char_tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    save_run(tmp_path / "mismatch", small, big)
    with pytest.raises(CheckpointError, match=f"has {big.vocab_size} tokens but the model only {char_tok.vocab_size}"):
        load_for_inference(tmp_path / "mismatch")


def test_a_lora_run_loads_with_adapters_or_merged(tmp_path, char_tok):
    model = _tiny(char_tok)
    apply_lora(model, targets=["c_attn"], r=2, alpha=4.0)
    for n, p in model.named_parameters():
        if n.endswith("lora_B"):
            p.array[...] = 0.1                          # a non-zero adapter
    save_run(tmp_path / "lora", model, char_tok)
    x = np.arange(6).reshape(1, 6)
    expected = model.eval()(x)[0].array
    with_adapters = load_for_inference(tmp_path / "lora")[0].eval()
    merged = load_for_inference(tmp_path / "lora", merge=True)[0].eval()
    assert any(n.endswith("lora_A") for n, _ in with_adapters.named_parameters())
    assert not any("lora" in n for n, _ in merged.named_parameters())
    np.testing.assert_allclose(with_adapters(x)[0].array, expected, rtol=1e-6)
    np.testing.assert_allclose(merged(x)[0].array, expected, rtol=1e-5, atol=1e-6)


def test_adapter_file_errors(tmp_path, char_tok):
    model = _tiny(char_tok)
    with pytest.raises(ValueError, match="the model has no LoRA adapters"):
        L.save_adapter(model, tmp_path / "a.safetensors", {"targets": ["c_attn"], "r": 2, "alpha": 4.0})
    save_safetensors({"w": np.zeros(2, np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="is not a nanoframe LoRA adapter file"):
        L.read_adapter(tmp_path / "plain.safetensors")
    save_safetensors({"w": np.zeros(2, np.float32)}, tmp_path / "corrupt.safetensors",
                     metadata={"format": L.ADAPTER_FORMAT, "lora_config": "{\"r\": -1"})
    with pytest.raises(CheckpointError, match="corrupt lora_config metadata"):
        L.read_adapter(tmp_path / "corrupt.safetensors")
    apply_lora(model, targets=["c_attn"], r=2, alpha=4.0)
    L.save_adapter(model, tmp_path / "r2.safetensors", {"targets": ["c_attn"], "r": 2, "alpha": 4.0})
    other = _tiny(char_tok)
    apply_lora(other, targets=["c_attn"], r=3, alpha=4.0)
    tensors = L.read_adapter(tmp_path / "r2.safetensors")[1]
    with pytest.raises(CheckpointError, match="shape mismatch for transformer.h.0.attn.c_attn.lora_A"):
        L.load_adapter_tensors(other, tensors, "r2")


def test_pretrain_api_checks(tmp_path, capsys):
    (tmp_path / "c.txt").write_text(SHAKESPEAREISH)
    assert cli("prepare", "--data", tmp_path / "c.txt", "--tokenizer", "char", "--out", tmp_path / "d",
               "--no-progress") == 0
    with pytest.raises(ConfigError, match="a prepared data folder carries its tokenizer"):
        pretrain(tmp_path / "r1", [tmp_path / "c.txt"], data_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="the tokenizer has 4 tokens but vocab_size is 2"):
        (tmp_path / "tiny.txt").write_text("abcd" * 200)
        pretrain(tmp_path / "r2", [tmp_path / "tiny.txt"], tokenizer="char", model_overrides={"vocab_size": 2},
                 show_progress=False, log=lambda m: None)
    # a data folder whose tokenizer file was swapped after meta.json was written
    (tmp_path / "d" / "tokenizer.json").write_text((tmp_path / "d" / "tokenizer.json").read_text().replace(" ", " ", 1)
                                                   + " ")
    with pytest.raises(DataError, match="its tokenizer file is not the one meta.json was written with"):
        pretrain(tmp_path / "r3", data_dir=tmp_path / "d")
    # a tokenizer file, and the default log (stderr)
    D.train_tokenizer("char", [SHAKESPEAREISH]).save(tmp_path / "tok.json")
    model_over = {k.lstrip("-"): int(v) for k, v in zip(TINY[:8:2], TINY[1:8:2])}
    s = pretrain(tmp_path / "r4", [tmp_path / "c.txt"], tokenizer=str(tmp_path / "tok.json"),
                 model_overrides=model_over, train_overrides={"max_iters": 1, "batch_size": 2, "eval_iters": 1},
                 show_progress=False)
    assert s["steps"] == 1 and s["tokenizer"].vocab_size == D.load_tokenizer(tmp_path / "tok.json").vocab_size
    assert json.loads((tmp_path / "r4" / "tokenizer.json").read_text()) == json.loads((tmp_path / "tok.json").read_text())
    assert "model: " in capsys.readouterr().err
