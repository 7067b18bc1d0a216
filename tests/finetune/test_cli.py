"""`nanoframe finetune` / `nanoframe lora merge` end to end, and their user errors."""
import json

import numpy as np
import pytest

from nanoframe.cli import main
from nanoframe.io import load_safetensors
from nanoframe.training.run import load_for_inference as _load


def load_run(path):
    return _load(path)

from tests.helpers.runs import SHAKESPEAREISH, TINY
from tests.helpers import SHARED_DATA as DATA

FT = ["--max_iters", "12", "--eval_interval", "4", "--eval_iters", "2", "--batch_size", "4",
      "--no-progress", "--no-sample"]


def run(*args):
    return main([str(a) for a in args])


def _error(capsys, *args):
    code = run(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in "\n".join(err)
    errors = [line for line in err if line.startswith("nanoframe: error:")]
    assert len(errors) == 1 and err[-1] == errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny BPE-tokenized pretrained run (BPE has the end-of-text token instruction data needs)."""
    root = tmp_path_factory.mktemp("ft")
    (root / "c.txt").write_text(SHAKESPEAREISH + "".join(f"{a}+{b}={a + b}\n" for a in range(10, 40) for b in (3, 7)))
    assert run("train", "--data", root / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300, "--out", root / "base",
               "--max_iters", 10, *TINY, "--block_size", 32) == 0
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(10, 40) for b in (3, 7)]
    rows.append({"messages": [{"role": "user", "content": "Speak"}, {"role": "assistant", "content": "speak."}]})
    (root / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_finetune_full_and_lora_then_sample_info_and_merge(base, capsys):
    full, lora, merged = base / "full", base / "lora", base / "merged"
    assert run("finetune", "--from", base / "base", "--data", base / "inst.jsonl", "--out", full, *FT) == 0
    assert run("finetune", "--from", base / "base", "--data", base / "inst.jsonl", "--out", lora, "--lora",
               "--lora-r", 2, "--lora-targets", "c_attn", *FT) == 0
    out = capsys.readouterr().out
    assert out.count("before ->") == 2
    for r in (full, lora):
        state = json.loads((r / "best" / "state.json").read_text())
        assert state["base"]["kind"] == "nanoframe" and state["model_config"]["block_size"] == 32
        vals = [json.loads(x)["val_loss"] for x in (r / "metrics.jsonl").read_text().splitlines() if "val_loss" in x]
        assert len(vals) >= 2
    assert json.loads((lora / "best" / "state.json").read_text())["lora"]["r"] == 2
    adapter = load_safetensors(lora / "adapter.safetensors")
    assert adapter and all(k.endswith((".lora_A", ".lora_B")) for k in adapter)

    for r in (full, lora):
        assert run("sample", r, "--prompt", "12+3=", "--max-new-tokens", 5, "--seed", 0) == 0
        assert capsys.readouterr().out.startswith("12+3=")
    assert run("info", lora) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["lora"]["targets"] == ["c_attn"] and 0 < info["trainable_parameters"] < info["parameters"]

    assert run("lora", "merge", "--base", base / "base", "--adapter", lora, "--out", merged) == 0
    assert run("lora", "merge", "--base", base / "base", "--adapter", lora / "adapter.safetensors",
               "--out", base / "merged2") == 0
    ids = np.arange(1, 20).reshape(1, -1)
    unmerged = load_run(lora)[0].eval()
    for m in (merged, base / "merged2"):
        plain = load_run(m)[0].eval()
        assert not any(k.endswith("lora_A") for k in plain.state_dict())
        np.testing.assert_allclose(plain(ids)[0].array, unmerged(ids)[0].array, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert run("sample", merged, "--prompt", "12+3=", "--max-new-tokens", 5, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("12+3=")

    # plain-text continued pretraining with freezing, from a step checkpoint folder
    step = sorted((base / "base" / "checkpoints").iterdir())[-1]
    assert run("finetune", "--from", step, "--data", base / "c.txt", "--out", base / "frozen",
               "--freeze-embeddings", "--freeze-layers", 1, *FT) == 0
    config = json.loads((base / "frozen" / "config.json").read_text())
    frozen = config["finetune"]["frozen"]
    assert config["finetune"]["mode"] == "frozen"
    assert "transformer.wte.weight" in frozen and "transformer.h.0.attn.c_attn.weight" in frozen


def test_finetune_from_hf_folder(tmp_path, capsys):
    folder = DATA / "gpt2" / "fake-gpt2-lmbuddy"
    if not (folder / "model.safetensors").is_file() or not (DATA / "gpt2" / "encoder.json").is_file():
        pytest.skip("shared GPT-2 test data is absent")
    jsonl = tmp_path / "i.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": f"Say {w}:", "completion": f" {w}"}) + "\n"
                             for w in ["yes", "no", "cat", "dog", "red", "sun"]))
    out = tmp_path / "hf-lora"
    assert run("finetune", "--from-hf", folder, "--tokenizer", DATA / "gpt2", "--data", jsonl, "--out", out,
               "--lora", "--lora-r", 1, "--block_size", 16, "--max_iters", 3, "--eval_interval", 3,
               "--eval_iters", 1, "--batch_size", 2, "--no-progress", "--no-sample") == 0
    state = json.loads((out / "best" / "state.json").read_text())
    assert state["base"]["kind"] == "hf" and state["model_config"]["block_size"] == 16
    assert (out / "tokenizer.json").is_file() and state["tokenizer_sha256"]
    capsys.readouterr()
    assert run("sample", out, "--prompt", "Say yes:", "--max-new-tokens", 2, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("Say yes:")


def test_finetune_user_errors_exit_2_with_one_line(base, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    b = base / "base"
    assert "bad.jsonl:2: missing key" in _error(capsys, "finetune", "--from", b, "--data", bad,
                                                "--out", tmp_path / "x", *FT)
    assert "exactly one starting point" in _error(capsys, "finetune", "--data", bad, "--out", tmp_path / "y", *FT)
    assert "no such run" in _error(capsys, "finetune", "--from", tmp_path / "nope", "--out", tmp_path / "z", *FT)
    assert "cannot change ['n_layer']" in _error(capsys, "finetune", "--from", b, "--data", base / "inst.jsonl",
                                                 "--out", tmp_path / "w", "--n_layer", 3, *FT)
    assert "unknown option --lr_max" in _error(capsys, "finetune", "--from", b, "--out", tmp_path / "v", "--lr_max", 1)
    assert "matches no parameter" in _error(capsys, "finetune", "--from", b, "--data", base / "c.txt",
                                            "--out", tmp_path / "u", "--freeze", "foo*", *FT)
    assert "no Linear layer matches" in _error(capsys, "finetune", "--from", b, "--data", base / "inst.jsonl",
                                               "--out", tmp_path / "t", "--lora", "--lora-targets", "q_proj", *FT)
    assert "not a LoRA run" in _error(capsys, "lora", "merge", "--base", b, "--adapter", b, "--out", tmp_path / "m")
    assert "config.json" in _error(capsys, "finetune", "--from-hf", tmp_path, "--out", tmp_path / "s", *FT)


def test_lora_log_names_the_layers_it_wrapped(base, tmp_path, capsys):
    """The default targets cover GPT-2 and Llama names; the log lists only those that matched."""
    capsys.readouterr()
    assert run("finetune", "--from", base / "base", "--data", base / "inst.jsonl", "--out", tmp_path / "l",
               "--lora", "--max_iters", 2, "--eval_interval", 2, "--eval_iters", 1, "--batch_size", 2,
               "--no-progress", "--no-sample") == 0
    out = capsys.readouterr()
    line = next(x for x in (out.out + out.err).splitlines() if x.startswith("LoRA r="))
    n_layer = json.loads((base / "base" / "best" / "state.json").read_text())["model_config"]["n_layer"]
    assert line.endswith(f"on {4 * n_layer} layers (c_attn, c_proj, c_fc)"), line
