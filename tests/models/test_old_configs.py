"""Runs written before GPTConfig had its Llama fields (state.json and config.json model configs with
only the seven GPT-2 keys) still sample and resume, twice, although the new checkpoints spell
every field out."""
import json

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli

OLD_KEYS = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias"}


def _strip(path, key):
    d = json.loads(path.read_text())
    d[key] = {k: v for k, v in d[key].items() if k in OLD_KEYS}
    path.write_text(json.dumps(d))


def test_a_run_from_before_the_new_fields_samples_and_resumes(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(SHAKESPEAREISH)
    out = tmp_path / "run"
    assert cli("train", "--data", text, "--tokenizer", "char", "--out", out, *TINY, "--max_iters", 4,
               "--checkpoint_interval", 2, "--eval_interval", 2) == 0
    _strip(out / "config.json", "model")
    for state in out.glob("**/state.json"):
        _strip(state, "model_config")
    capsys.readouterr()
    assert cli("sample", out, "--max-new-tokens", 4, "--seed", 0) == 0
    assert cli("train", "--out", out, "--resume", "--max_iters", 6, "--no-progress", "--no-sample") == 0
    assert cli("train", "--out", out, "--resume", "--max_iters", 8, "--no-progress", "--no-sample") == 0
    newest = json.loads((out / "checkpoints" / "step_000008" / "state.json").read_text())["model_config"]
    assert set(newest) > OLD_KEYS and newest["positions"] == "learned"
