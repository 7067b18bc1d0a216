"""The CLI's remaining paths: option parsing errors, printed samples, warnings as one line, and what
the top level does with an interrupt, an out-of-memory, a user error under NANOFRAME_DEBUG and a bug."""
import json
import shutil
import subprocess
import sys

import pytest

import nanoframe.cli as cli_module
from nanoframe.errors import DataError

from tests.helpers.runs import TINY, cli, one_error_line


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny char-level run trained for 4 steps (no sample printed)."""
    from tests.helpers.runs import SHAKESPEAREISH

    root = tmp_path_factory.mktemp("cli")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    assert cli("train", "--data", root / "c.txt", "--out", root / "run", "--max_iters", 4, *TINY) == 0
    return root


@pytest.mark.parametrize("args,words", [
    (["--bias", "maybe"], "--bias: expected bool, got 'maybe'"),
    (["--lr", "fast"], "--lr: expected float, got 'fast'"),
    (["stray"], "unexpected argument 'stray'"),
    (["--lr"], "--lr needs a value"),
])
def test_config_override_errors(tmp_path, capsys, args, words):
    msg = one_error_line(capsys, "train", "--data", tmp_path / "none.txt", "--out", tmp_path / "run", *args)
    assert words in msg
    assert not (tmp_path / "run").exists()


def test_bool_override_spellings_reach_the_model_config(trained, tmp_path, capsys):
    assert cli("train", "--data", trained / "c.txt", "--out", tmp_path / "run", "--max_iters", 1, *TINY,
               "--bias", "No") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["bias"] is False


@pytest.mark.parametrize("args,words", [
    (["sample", "RUN", "--top-k", "x"], "argument --top-k: expected an integer, got 'x'"),
    (["sample", "RUN", "--top-k", "0"], "argument --top-k: must be >= 1, got 0"),
    (["sample", "RUN", "--temperature", "nan"], "argument --temperature: must be a finite number, got nan"),
    (["sample", "RUN", "--top-p", "2"], "argument --top-p: must be in [1e-09, 1.0], got 2.0"),
    (["sample", "RUN", "--temperature", "hot"], "argument --temperature: expected a number, got 'hot'"),
    (["info", "RUN", "--lr", "1"], "unrecognized arguments: --lr 1"),
    (["finetune", "--resume"], "--resume needs --out RUN"),
    (["finetune", "--from", "RUN", "--lora-r", "2"], "--lora-r, --lora-alpha and --lora-dropout need --lora"),
])
def test_argument_errors_are_one_line(trained, capsys, args, words):
    args = [trained / "run" if a == "RUN" else a for a in args]
    assert words in one_error_line(capsys, *args)


def test_train_prints_a_sample_and_sample_separates_several(trained, tmp_path, capsys):
    args = [a for a in TINY if a != "--no-sample"]
    assert cli("train", "--data", trained / "c.txt", "--out", tmp_path / "run", "--max_iters", 1, *args) == 0
    out = capsys.readouterr().out
    head, sample = out.split("\n--- sample ---\n")
    assert head.startswith("done: 1 steps")
    assert len(sample) > 0 and set(sample) <= set(trained.joinpath("c.txt").read_text())
    assert cli("sample", trained / "run", "--num-samples", 3, "--max-new-tokens", 4, "--seed", 5, "--prompt", "Al") == 0
    texts = capsys.readouterr().out.split("\n---\n")
    assert len(texts) == 3 and all(t.startswith("Al") for t in texts)
    assert cli("sample", trained / "run", "--max-new-tokens", 4, "--seed", 6, "--prompt", "Al") == 0
    assert capsys.readouterr().out.strip() == texts[1].strip()          # sample k uses seed + k


def test_plot_of_a_run_without_metrics_and_a_warning_on_one_line(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "has no metrics.jsonl" in one_error_line(capsys, "plot", tmp_path / "empty")
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / "metrics.jsonl").write_text("{not json\n" + (run / "metrics.jsonl").read_text())
    # in a process of its own: pytest records warnings instead of printing them
    proc = subprocess.run([sys.executable, "-m", "nanoframe", "plot", str(run), "--out", str(tmp_path / "loss.svg")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"nanoframe: warning: {run / 'metrics.jsonl'}:1: skipped a malformed line"]
    assert proc.stdout.strip() == str(tmp_path / "loss.svg")
    assert (tmp_path / "loss.svg").read_text().startswith("<svg")


def test_tokenizer_train_on_empty_files_and_decode_of_an_unknown_id(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("  \n")
    msg = one_error_line(capsys, "tokenizer", "train", "--data", tmp_path / "d", "--kind", "char", "--out",
                         tmp_path / "tok.json")
    assert msg == "nanoframe: error: the corpus is empty: no non-empty text files"
    (tmp_path / "a.txt").write_text("abc")
    assert cli("tokenizer", "train", "--data", tmp_path / "a.txt", "--kind", "char", "--out", tmp_path / "tok.json",
               "--no-progress") == 0
    assert one_error_line(capsys, "tokenizer", "decode", "--tokenizer", tmp_path / "tok.json", "99") == \
        "nanoframe: error: decode: invalid token id 99"
    assert "decode expects integer ids" in one_error_line(capsys, "tokenizer", "decode", "--tokenizer",
                                                          tmp_path / "tok.json", "1", "x")


def _raise(exc):
    def command(args):
        raise exc
    return command


def test_interrupt_out_of_memory_debug_and_bugs(trained, monkeypatch, capsys):
    monkeypatch.setattr(cli_module, "cmd_info", _raise(KeyboardInterrupt()))
    assert cli("info", trained / "run") == 130
    assert capsys.readouterr().err == "\nnanoframe: interrupted\n"

    monkeypatch.setattr(cli_module, "cmd_info", _raise(MemoryError()))
    assert "out of memory: the model, batch or data is too large" in one_error_line(capsys, "info", trained / "run")

    monkeypatch.setattr(cli_module, "cmd_info", _raise(DataError("bad data")))
    assert one_error_line(capsys, "info", trained / "run") == "nanoframe: error: bad data"
    monkeypatch.setenv("NANOFRAME_DEBUG", "1")
    with pytest.raises(DataError, match="bad data"):      # the traceback, on request
        cli("info", trained / "run")
    monkeypatch.delenv("NANOFRAME_DEBUG")

    monkeypatch.setattr(cli_module, "cmd_info", _raise(KeyError("a bug")))
    with pytest.raises(KeyError, match="a bug"):           # a bug is not posed as a user error
        cli("info", trained / "run")
