"""Nothing read from disk is trusted: state.json, config.json, meta.json, the token files,
metrics.jsonl, tokenizer files, instruction JSONL and Hugging Face config.json are validated before
use. Each bad file ends in exit code 2 and one line that names the file and the field."""
import json
import resource
import shutil

import numpy as np
import pytest

from nanoframe.io import save_safetensors
from nanoframe.training.run import Run, RunWarning

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli, one_error_line
from tests.helpers import SHARED_DATA as DATA



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "char", "--out", root / "run", "--max_iters", 4,
               "--checkpoint_interval", 2, "--eval_interval", 2, *TINY) == 0
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _edit_json(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


RESUME = ["--resume", "--no-progress", "--no-sample"]
STATE_CASES = [
    ("step", lambda s: s.update(step="eight"), "field 'step' must be an integer"),
    ("step", lambda s: s.update(step=-3), "field 'step' must be >= 0"),
    ("step", lambda s: s.pop("step"), "missing field 'step'"),
    ("model_config", lambda s: s.update(model_config=[1, 2]), "field 'model_config' must be an object"),
    ("model_config", lambda s: s["model_config"].update(n_layr=2), "unknown key(s) ['n_layr']"),
    ("model_config", lambda s: s["model_config"].update(n_head=3), "divisible"),
    ("train_config", lambda s: s["train_config"].update(lr="fast"), "field 'train_config'"),
    ("best_val_loss", lambda s: s.update(best_val_loss="low"), "field 'best_val_loss' must be a finite number"),
    ("lora", lambda s: s.update(lora={"targets": [], "r": 2}), "field 'lora'"),
    ("lora", lambda s: s.update(lora={"targets": ["c_attn"], "r": 0}), "LoRA r must be >= 1"),
    ("tokenizer_sha256", lambda s: s.update(tokenizer_sha256=5), "field 'tokenizer_sha256' must be a string"),
]


@pytest.mark.parametrize("name, change, expected", STATE_CASES, ids=[c[0] + str(i) for i, c in enumerate(STATE_CASES)])
def test_bad_state_json_is_one_line_naming_file_and_field(run, capsys, name, change, expected):
    path = run / "best" / "state.json"
    _edit_json(path, change)
    msg = one_error_line(capsys, "sample", run, "--max-new-tokens", 2)
    assert str(path) in msg and expected in msg


def test_state_json_nan_is_refused(run, capsys):
    path = run / "best" / "state.json"
    path.write_text(path.read_text().replace('"val_loss": ', '"val_loss": NaN, "x": ', 1))
    assert "field 'val_loss' must be a finite number" in one_error_line(capsys, "sample", run)


def test_huge_model_config_is_refused_before_anything_is_allocated(run, capsys):
    path = run / "best" / "state.json"
    _edit_json(path, lambda s: s["model_config"].update(n_embd=1 << 15, n_layer=2000, vocab_size=1 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = one_error_line(capsys, "sample", run)
    assert "does not fit the model_config" in msg and len(msg) < 700
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak RSS grew by {grown_mb:.0f} MB"


def test_resume_state_without_rng_and_with_garbage_rng(run, capsys):
    ck = Run(run).list_checkpoints()[-1]
    _edit_json(ck / "state.json", lambda s: s.update(rng={"bit_generator": "PCG64", "state": "x"}))
    _edit_json(Run(run).list_checkpoints()[0] / "state.json", lambda s: s.pop("rng"))
    with pytest.warns(RunWarning):
        msg = one_error_line(capsys, "train", "--out", run, *RESUME)
    assert "step_000002/state.json has no 'rng' state" in msg


CONFIG_CASES = [
    (lambda c: c.update(format="other"), "field 'format' must be one of"),
    (lambda c: c.update(version=99), "field 'version' must be one of"),
    (lambda c: c.update(kind="bogus"), "field 'kind' must be one of"),
    (lambda c: c.pop("tokenizer"), "missing field 'tokenizer'"),
    (lambda c: c["data"].update(dir=7), "data: field 'dir' must be a string"),
    (lambda c: c["train"].update(max_iters=-5), "field 'train': max_iters must be >= 1"),
    (lambda c: c["model"].update(dropout=2.0), "field 'model'"),
]


@pytest.mark.parametrize("change, expected", CONFIG_CASES)
def test_bad_config_json(run, capsys, change, expected):
    _edit_json(run / "config.json", change)
    msg = one_error_line(capsys, "train", "--out", run, *RESUME)
    assert str(run / "config.json") in msg and expected in msg


def test_config_json_not_json_or_not_an_object(run, capsys):
    (run / "config.json").write_text("[1, 2")
    assert "config.json is not valid JSON" in one_error_line(capsys, "train", "--out", run, *RESUME)
    (run / "config.json").write_text("[1, 2]")
    assert "expected a JSON object" in one_error_line(capsys, "train", "--out", run, *RESUME)
    (run / "config.json").write_text("[" * 100000 + "]" * 100000)
    assert "config.json" in one_error_line(capsys, "train", "--out", run, *RESUME)


META_CASES = [
    (lambda m: m.update(dtype="O"), "field 'dtype' must be one of ['uint16', 'uint32']"),
    (lambda m: m.update(dtype="float32"), "field 'dtype' must be one of"),
    (lambda m: m.update(vocab_size=3_000_000), "field 'vocab_size' must be <= 2097152"),
    (lambda m: m.update(vocab_size=70000), "dtype uint16 cannot hold the ids of a 70,000-token vocabulary"),
    (lambda m: m.update(vocab_size=0), "field 'vocab_size' must be >= 1"),
    (lambda m: m.update(train_tokens=10**12), "meta.json says"),
    (lambda m: m.update(train_tokens="many"), "field 'train_tokens' must be an integer"),
]


@pytest.mark.parametrize("change, expected", META_CASES)
def test_bad_meta_json(run, capsys, change, expected):
    meta = run / "data" / "meta.json"
    _edit_json(meta, change)
    config = run / "config.json"                      # the run's record of meta.json must not mask the check
    _edit_json(config, lambda c: c["data"].pop("meta_sha256"))
    msg = one_error_line(capsys, "train", "--out", run, *RESUME)
    assert "meta.json" in msg or "train.bin" in msg
    assert expected in msg


def test_token_file_with_ids_outside_the_vocabulary(run, capsys):
    tokens = np.fromfile(run / "data" / "train.bin", dtype=np.uint16)
    tokens[len(tokens) // 2] = 60000
    tokens.tofile(run / "data" / "train.bin")
    msg = one_error_line(capsys, "train", "--out", run, *RESUME)
    assert "train.bin: token id 60000 is outside the vocabulary" in msg


def test_reprepared_data_meta_is_refused(run, capsys):
    _edit_json(run / "data" / "meta.json", lambda m: m.update(source="someone else"))
    assert "changed since this run started" in one_error_line(capsys, "train", "--out", run, *RESUME)


def test_metrics_malformed_middle_line_is_skipped_with_a_warning(run, capsys):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = '{"step": "one", "loss": 2}'
    lines.insert(2, "garbage")
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(RunWarning, match=r"metrics.jsonl:2: skipped a malformed line"):
        assert cli("plot", run) == 0
    assert (run / "loss.svg").read_text().startswith("<svg")


def test_tokenizer_changed_or_damaged(run, capsys):
    tok = run / "tokenizer.json"
    obj = json.loads(tok.read_text())
    obj["chars"] = obj["chars"][::-1]                 # another (valid) tokenizer: ids would decode as garbage
    tok.write_text(json.dumps(obj))
    msg = one_error_line(capsys, "sample", run)
    assert "tokenizer.json is not the tokenizer this run was trained with" in msg
    tok.write_text("{")
    _edit_json(run / "best" / "state.json", lambda s: s.update(tokenizer_sha256=None))
    assert "tokenizer.json" in one_error_line(capsys, "sample", run)


def test_bad_instruction_jsonl(run, tmp_path, capsys):
    cases = {
        "utf8.jsonl": (b'{"prompt": "a", "completion": "b"}\n\xff\xfe\n', "utf8.jsonl:2: not UTF-8"),
        "deep.jsonl": (b"[" * 100000 + b"]" * 100000 + b"\n", "deep.jsonl:1: invalid JSON"),
        "types.jsonl": (b'{"prompt": 5, "completion": "b"}\n', 'types.jsonl:1: "prompt" must be a string'),
        "msgs.jsonl": (b'{"messages": [{"role": "user"}]}\n', "msgs.jsonl:1: messages[0]"),
        "empty.jsonl": (b"\n\n", "empty.jsonl: no records"),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        msg = one_error_line(capsys, "finetune", "--from", run, "--data", tmp_path / name, "--out", tmp_path / name[:-6],
                             "--no-progress")
        assert expected in msg, msg


@pytest.fixture
def hf_folder(tmp_path):
    src = DATA / "gpt2" / "fake-gpt2-lmbuddy"
    if not (src / "model.safetensors").is_file():
        pytest.skip("shared GPT-2 test data is absent")
    dst = tmp_path / "hf"
    shutil.copytree(src, dst)
    return dst


HF_CASES = [
    (lambda c: c.update(n_embd="big"), "field 'n_embd' must be an integer"),
    (lambda c: c.update(n_embd=1 << 40), "field 'n_embd' must be <= 65536"),
    (lambda c: c.update(vocab_size=3_000_000), "field 'vocab_size' must be <="),
    (lambda c: c.update(n_layer=4000), "shape mismatch" if False else "missing key(s)"),
    (lambda c: c.update(model_type="x" * 100_000_000), "model_type"),
    (lambda c: c.update(activation_function=["relu"]), "field 'activation_function' must be a string"),
    (lambda c: c.update(layer_norm_epsilon=float("nan")), "field 'layer_norm_epsilon' must be a finite number"),
    (lambda c: c.pop("n_head"), "missing field 'n_head'"),
]


@pytest.mark.parametrize("change, expected", HF_CASES)
def test_bad_hf_config(hf_folder, tmp_path, capsys, change, expected):
    _edit_json(hf_folder / "config.json", change)
    msg = one_error_line(capsys, "finetune", "--from-hf", hf_folder, "--tokenizer", DATA / "gpt2", "--out",
                         tmp_path / "o", "--no-progress")
    assert expected in msg and len(msg) < 1000


def test_hf_weights_with_nan_are_refused(hf_folder, tmp_path, capsys):
    from nanoframe.io import load_safetensors

    t = load_safetensors(hf_folder / "model.safetensors")
    name = next(k for k in t if k.endswith("wpe.weight"))
    t[name][0, 0] = np.inf
    save_safetensors(t, hf_folder / "model.safetensors")
    msg = one_error_line(capsys, "finetune", "--from-hf", hf_folder, "--tokenizer", DATA / "gpt2", "--out",
                         tmp_path / "o", "--no-progress")
    assert "holds NaN or inf" in msg and "wpe.weight" in msg
