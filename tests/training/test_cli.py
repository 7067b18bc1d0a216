"""The `nanoframe` command end to end on a few KB of text, and its error messages."""
import json
import subprocess
import sys


from nanoframe.cli import main

from tests.helpers.runs import TINY


def run(*args):
    return main([str(a) for a in args])


def test_train_sample_info_plot_end_to_end(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert run("train", "--data", corpus, "--tokenizer", "char", "--out", out, "--max_iters", 30,
               "--eval_interval", 10, "--checkpoint_interval", 10, "--lr", 1e-2, *TINY) == 0
    assert (out / "config.json").is_file() and (out / "best" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "step_000030" / "state.json").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(losses) == 30 and len(vals) == 4
    assert losses[-1] < losses[0] - 0.4  # it learns: char loss starts near ln(vocab)
    capsys.readouterr()

    assert run("sample", out, "--prompt", "First", "--max-new-tokens", 20, "--seed", 1) == 0
    text = capsys.readouterr().out
    assert text.startswith("First") and len(text.strip()) >= 20

    assert run("info", out) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_config"]["n_layer"] == 1 and info["parameters"] > 0 and info["val_loss"] == min(vals)

    assert run("plot", out) == 0
    svg = (out / "loss.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 3


def test_tokenizer_commands(tmp_path, corpus, capsys):
    tok = tmp_path / "tok.json"
    assert run("tokenizer", "train", "--data", corpus, "--vocab-size", 300, "--out", tok, "--no-progress") == 0
    capsys.readouterr()
    assert run("tokenizer", "encode", "--tokenizer", tok, "--text", "Speak, speak.") == 0
    ids = capsys.readouterr().out.split()
    assert run("tokenizer", "decode", "--tokenizer", tok, *ids) == 0
    assert capsys.readouterr().out == "Speak, speak.\n"


def _error(capsys, *args):
    code = run(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in "\n".join(err)
    errors = [line for line in err if line.startswith("nanoframe: error:")]
    assert len(errors) == 1 and err[-1] == errors[0]  # one error line, and it ends the output
    return errors[0]


def test_user_errors_exit_2_with_one_line(tmp_path, corpus, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("   \n")
    out = tmp_path / "r"
    assert "no such file or folder" in _error(capsys, "train", "--data", tmp_path / "missing.txt", "--out", out, *TINY)
    assert "corpus is empty" in _error(capsys, "train", "--data", empty, "--out", out, *TINY)
    assert "--vocab-size: must be >= 257" in _error(capsys, "tokenizer", "train", "--data", corpus, "--vocab-size", 100,
                                 "--out", tmp_path / "t.json", "--no-progress")
    assert "unknown option --n_layers" in _error(capsys, "train", "--data", corpus, "--n_layers", 2, "--out", out)
    assert "expected int" in _error(capsys, "train", "--data", corpus, "--n_layer", "two", "--out", out)
    assert "fewer than block_size" in _error(capsys, "train", "--data", corpus, "--tokenizer", "char",
                                             "--out", tmp_path / "r2", *TINY, "--block_size", 5000)
    assert "no such tokenizer file" in _error(capsys, "tokenizer", "encode", "--tokenizer", tmp_path / "no.json",
                                              "--text", "x")
    assert "no such run" in _error(capsys, "sample", tmp_path / "nowhere")


def test_existing_run_needs_resume_and_resume_refuses_another_config(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", corpus, "--tokenizer", "char", "--out", out, "--max_iters", 4,
            "--checkpoint_interval", 2, *TINY]
    assert run(*args) == 0
    assert "already holds a run" in _error(capsys, *args)
    assert "another model config" in _error(capsys, "train", "--out", out, "--resume", *TINY, "--n_layer", 3)
    assert "is not a nanoframe run" in _error(capsys, "train", "--out", tmp_path / "new", "--resume", *TINY)


def test_module_entry_point_help():
    res = subprocess.run([sys.executable, "-m", "nanoframe", "train", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--resume" in res.stdout and "--preset" in res.stdout
