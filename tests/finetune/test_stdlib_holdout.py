"""`nanoframe finetune --from RUN` without --data: the README's default fine-tune, on the stdlib
package that the default pretraining run held out (json), every file split by position."""
import json

import numpy as np

from nanoframe import data as D
from nanoframe.cli import main
from nanoframe.data.tokens import TokenData

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 30
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16", "--batch_size", "2",
        "--warmup_iters", "1", "--eval_iters", "1", "--no-progress", "--no-sample"]


def run(*args):
    return main([str(a) for a in args])


def test_finetune_without_data_uses_the_held_out_stdlib_package(tmp_path, capsys):
    (tmp_path / "c.txt").write_text(TEXT)
    # a byte-level BPE base: it can encode Python source it never saw
    assert run("train", "--data", tmp_path / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300,
               "--out", tmp_path / "base", "--max_iters", 2, *TINY) == 0
    assert run("finetune", "--from", tmp_path / "base", "--out", tmp_path / "ft", "--max_iters", 2,
               "--eval_interval", 1, *TINY[8:-1]) == 0
    out = capsys.readouterr().out
    assert "done: 2 steps (max_iters)" in out
    head, sample = out.split("\n--- sample ---\n")           # the sample after a text fine-tune
    assert "run " + str(tmp_path / "ft") in head and len(sample.strip()) > 0

    ft = tmp_path / "ft"
    config = json.loads((ft / "config.json").read_text())
    assert config["kind"] == "finetune" and config["finetune"]["mode"] == "full"
    assert config["finetune"]["val_fraction"] == 0.1
    assert config["data"]["kind"] == "tokens" and config["data"]["dir"] == "data"
    assert config["data"]["source"] == ("python stdlib package 'json' (held out of pretraining), "
                                        "split by position")
    # the token files hold exactly the held-out package, each file cut at a line break 90% in
    held = [d for d in D.documents(D.stdlib_files()[1], D.stdlib_dir())]
    assert sorted(d.name for d in held) == sorted(["json/__init__.py", "json/decoder.py", "json/encoder.py",
                                                   "json/scanner.py", "json/tool.py"])
    train, val = D.split_by_position(held, 0.1)
    for d, t, v in zip(held, train, val):
        assert t.text + v.text == d.text and t.text.endswith("\n")
        assert 0.8 < len(t.text) / len(d.text) <= 0.9
    tok = D.load_tokenizer(ft / "tokenizer.json")
    eot = tok.eot_id
    expected = {"train": [i for d in train for i in tok.encode_ordinary(d.text) + [eot]],
                "val": [i for d in val for i in tok.encode_ordinary(d.text) + [eot]]}
    meta = D.load_meta(ft / "data")
    assert (meta["train_documents"], meta["val_documents"]) == (5, 5)
    assert (meta["train_tokens"], meta["val_tokens"]) == (len(expected["train"]), len(expected["val"]))
    data = TokenData(ft / "data", 16, 2)
    for split in ("train", "val"):
        np.testing.assert_array_equal(np.asarray(data.splits[split]), expected[split])
    # the base was never trained on it: the fine-tune's first evaluation is its "before" loss
    vals = [json.loads(line) for line in (ft / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in vals if "val_loss" in r] == [0, 1, 2]


def test_finetune_on_instructions_prints_the_greedy_completion_of_the_first_prompt(tmp_path, capsys):
    from nanoframe.training.finetune import generate_completion
    from nanoframe.training.run import load_for_inference

    (tmp_path / "c.txt").write_text(TEXT)
    assert run("train", "--data", tmp_path / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300,
               "--out", tmp_path / "base", "--max_iters", 1, *TINY) == 0
    rows = [{"prompt": f"Speak {i}:", "completion": " speak."} for i in range(40)]
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run("finetune", "--from", tmp_path / "base", "--data", tmp_path / "i.jsonl", "--out", tmp_path / "ft",
               "--max_iters", 1, "--eval_interval", 1, *TINY[8:-1]) == 0
    out = capsys.readouterr().out
    model, tok = load_for_inference(tmp_path / "ft")[:2]       # best/: the weights the CLI ends with
    expected = "Speak 0:" + generate_completion(model.eval(), tok, "Speak 0:", 64)
    assert out.split("\n--- greedy completion of the first prompt ---\n")[1] == expected + "\n"
