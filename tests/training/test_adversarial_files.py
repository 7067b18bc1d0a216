"""Hostile and unlucky files a fine-tune, a LoRA merge or a sampler reads, numbers that overflow to
NaN, and the command line's edges: each must end in one `nanoframe: error:` line (exit code 2)
naming the file or option, never a traceback, and nothing non-finite may be written."""
import json
import math
import shutil

import numpy as np
import pytest

from nanoframe.io import load_safetensors, load_safetensors_metadata, save_safetensors

from run_helpers import SHAKESPEAREISH, TINY, cli, one_error_line

FT = ["--max_iters", 2, "--eval_interval", 2, "--eval_iters", 1, "--batch_size", 2, "--checkpoint_interval", 2,
      "--no-progress", "--no-sample"]
RESUME_FT = ["--resume", "--max_iters", 4, "--no-progress", "--no-sample"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char run and a full fine-tune of it; a BPE run and a LoRA fine-tune of it on instruction data."""
    root = tmp_path_factory.mktemp("adv_files")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(10, 30) for b in (3, 7)]
    (root / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "char", "--out", root / "char", "--max_iters", 4,
               "--checkpoint_interval", 2, *TINY) == 0
    assert cli("finetune", "--from", root / "char", "--data", root / "c.txt", "--out", root / "full", *FT) == 0
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "bpe", "--vocab-size", 300, "--out", root / "bpe",
               "--max_iters", 2, *TINY, "--block_size", 32) == 0
    assert cli("finetune", "--from", root / "bpe", "--data", root / "inst.jsonl", "--out", root / "lora", "--lora",
               "--lora-r", 2, "--lora-targets", "c_attn,c_fc", *FT) == 0
    return root


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def edit_json(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))        # json.dumps writes NaN as the bare token NaN, as a hostile file may


def edit_safetensors(path, change):
    tensors, meta = load_safetensors(path), load_safetensors_metadata(path)
    change(tensors, meta)
    save_safetensors(tensors, path, metadata=meta)


# ---- config.json and state.json of fine-tunes --------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="a NaN in a config.json field the schema does not check (an extra key, "
                                       "finetune.base.step/path) passes read_config, then write_config's "
                                       "json.dumps(allow_nan=False) raises ValueError: a traceback on --resume")
@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_nan_in_an_unchecked_config_field(runs, tmp_path, capsys, kind):
    if kind == "pretrain":
        run = copy(runs / "char", tmp_path / "run")
        edit_json(run / "config.json", lambda c: c.update(notes=math.nan))
        msg = one_error_line(capsys, "train", "--out", run, "--resume", "--max_iters", 6, *TINY)
    else:
        run = copy(runs / "lora", tmp_path / "run")
        edit_json(run / "config.json", lambda c: c["finetune"]["base"].update(step=math.nan))
        msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "config.json" in msg


@pytest.mark.xfail(strict=True, reason="config.json of kind 'finetune' with \"finetune\": null or without it passes "
                                       "the schema; finetune --resume then fails with AttributeError / KeyError")
@pytest.mark.parametrize("change", [lambda c: c.update(finetune=None), lambda c: c.pop("finetune")],
                         ids=["null", "missing"])
def test_finetune_config_without_its_finetune_section(runs, tmp_path, capsys, change):
    run = copy(runs / "full", tmp_path / "run")
    edit_json(run / "config.json", change)
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "config.json" in msg and "finetune" in msg


@pytest.mark.xfail(strict=True, reason="finetune.frozen must be a list, but its items are never checked: [5], "
                                       "[null], [[\"a\"]] reach fnmatch and end in TypeError")
@pytest.mark.parametrize("frozen", [[5], [None], [["a"]]], ids=["int", "null", "list"])
def test_frozen_names_of_a_finetune_config_are_checked(runs, tmp_path, capsys, frozen):
    run = tmp_path / "frozen"
    assert cli("finetune", "--from", runs / "char", "--data", runs / "c.txt", "--out", run, "--freeze-layers", 1,
               *FT) == 0
    edit_json(run / "config.json", lambda c: c["finetune"].update(frozen=frozen))
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "config.json" in msg and "frozen" in msg


@pytest.mark.xfail(strict=True, reason="the packed instruction rows are checked for shape and ids but not against "
                                       "the model's block_size: 64-token rows for a 32-position model end in "
                                       "GPT.forward's ValueError (a traceback)")
def test_packed_instructions_wider_than_the_context(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "run")
    edit_safetensors(run / "data" / "instructions.safetensors",
                     lambda t, m: t.update({k: np.concatenate([v, v], axis=1) for k, v in t.items()}))
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "instructions.safetensors" in msg


# ---- non-finite numbers ---------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="a NaN validation loss is never checked: log_metrics' json.dumps("
                                       "allow_nan=False) raises ValueError, a traceback (the train loss and the "
                                       "gradient norm are checked, the val loss is not)")
@pytest.mark.parametrize("how", ["lr_1e10", "val_rows_without_targets"])
def test_a_nan_validation_loss_stops_with_one_line(runs, tmp_path, capsys, how):
    if how == "lr_1e10":                   # a user's typo: the weights overflow after one step
        msg = one_error_line(capsys, "train", "--data", runs / "c.txt", "--tokenizer", "char", "--out",
                             tmp_path / "r", "--max_iters", 10, "--eval_interval", 1, "--lr", "1e10",
                             "--warmup_iters", 0, "--grad_clip", 0, *TINY)
    else:                                  # every validation target is IGNORE_INDEX: a mean over nothing
        run = copy(runs / "lora", tmp_path / "run")
        edit_safetensors(run / "data" / "instructions.safetensors", lambda t, m: t["y_val"].fill(-100))
        msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "step" in msg and ("nan" in msg.lower() or "inf" in msg.lower())


def _huge_weights(run):
    def change(t, m):
        t["transformer.wte.weight"][:] = 3e38          # finite float32, but every logit overflows to inf

    edit_safetensors(run / "best" / "model.safetensors", change)


@pytest.mark.xfail(strict=True, reason="sampling weights that are finite but overflow (3e38) ends in generate's "
                                       "ValueError 'NaN or inf logits' as a traceback, not one line")
def test_sampling_weights_that_overflow(runs, tmp_path, capsys):
    run = copy(runs / "char", tmp_path / "run")
    _huge_weights(run)
    msg = one_error_line(capsys, "sample", run, "--max-new-tokens", 2, "--seed", 0)
    assert "NaN or inf" in msg


@pytest.mark.xfail(strict=True, reason="a LoRA alpha of 1e308 is finite and accepted; lora merge folds B A * alpha/r "
                                       "into inf weights and writes them (exit 0): the merged run cannot be read")
def test_lora_merge_never_writes_non_finite_weights(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "lora")
    edit_json(run / "best" / "state.json", lambda s: s["lora"].update(alpha=1e308))
    code = cli("lora", "merge", "--base", runs / "bpe", "--adapter", run, "--out", tmp_path / "m")
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("nanoframe: error:")
    assert not (tmp_path / "m" / "best").exists()


# ---- lora merge reading adapters ------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="an adapter whose tensors do not fit its own LoRA config (run state.json or "
                                       "adapter metadata) ends in load_adapter_tensors' ValueError: a traceback")
@pytest.mark.parametrize("source", ["run", "file"])
def test_lora_merge_adapter_that_does_not_fit_its_config(runs, tmp_path, capsys, source):
    run = copy(runs / "lora", tmp_path / "lora")
    if source == "run":
        edit_json(run / "best" / "state.json", lambda s: s["lora"].update(targets=["c_attn"]))
        adapter = run
    else:
        adapter = run / "adapter.safetensors"
        edit_safetensors(adapter, lambda t, m: m.update(lora_config=json.dumps(
            {"targets": ["c_attn"], "r": 2, "alpha": 16, "dropout": 0})))
    msg = one_error_line(capsys, "lora", "merge", "--base", runs / "bpe", "--adapter", adapter, "--out", tmp_path / "m")
    assert "does not fit" in msg


@pytest.mark.xfail(strict=True, reason="state.json's \"base\" is never type-checked: a string there makes lora merge "
                                       "fail with AttributeError ('str' object has no attribute 'get')")
def test_lora_merge_with_a_base_entry_that_is_not_an_object(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "lora")
    edit_json(run / "best" / "state.json", lambda s: s.update(base="elsewhere"))
    msg = one_error_line(capsys, "lora", "merge", "--base", runs / "bpe", "--adapter", run, "--out", tmp_path / "m")
    assert "state.json" in msg and "base" in msg


@pytest.mark.xfail(strict=True, reason="LoRA on lm_head (tied to wte) is accepted; merging unties it, and the runs "
                                       "written from the merged model (lora merge, finetune --from) hold an "
                                       "'unexpected lm_head.weight' that nothing can load")
def test_lora_on_the_tied_lm_head_merges_into_a_loadable_run(runs, tmp_path, capsys):
    lora = tmp_path / "lora"
    assert cli("finetune", "--from", runs / "bpe", "--data", runs / "inst.jsonl", "--out", lora, "--lora",
               "--lora-r", 2, "--lora-targets", "lm_head", *FT) == 0
    merged = tmp_path / "m"
    assert cli("lora", "merge", "--base", runs / "bpe", "--adapter", lora, "--out", merged) == 0
    capsys.readouterr()
    assert cli("sample", merged, "--max-new-tokens", 2, "--seed", 0) == 0, capsys.readouterr().err
    assert cli("finetune", "--from", lora, "--data", runs / "c.txt", "--out", tmp_path / "ft", *FT) == 0


# ---- Hugging Face tokenizer files -------------------------------------------------------------------------
@pytest.fixture
def hf_folder(runs, tmp_path):
    """A Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt) of the BPE run."""
    from nanoframe.training.run import load_for_inference

    model, tok, _, _ = load_for_inference(runs / "bpe")
    folder = tmp_path / "hf"
    model.to_hf(folder, eot_id=tok.eot_id)
    tok.save_gpt2_files(folder / "vocab.json", folder / "merges.txt")
    return folder


@pytest.mark.xfail(strict=True, reason="malformed vocab.json / merges.txt raise a plain ValueError from the GPT-2 "
                                       "file reader: finetune --from-hf ends in a traceback")
@pytest.mark.parametrize("damage", ["bad_merge", "not_an_object", "not_utf8"])
def test_malformed_hf_tokenizer_files(runs, hf_folder, tmp_path, capsys, damage):
    if damage == "bad_merge":
        with open(hf_folder / "merges.txt", "a") as f:
            f.write("zz qq\n")
    elif damage == "not_an_object":
        (hf_folder / "vocab.json").write_text('{"a": "b"}')
    else:
        (hf_folder / "vocab.json").write_bytes(b"\xff\xfe{}")
    msg = one_error_line(capsys, "finetune", "--from-hf", hf_folder, "--data", runs / "c.txt", "--out",
                         tmp_path / "o", *FT)
    assert "vocab.json" in msg or "merges.txt" in msg


def test_a_well_formed_hf_folder_fine_tunes(runs, hf_folder, tmp_path):
    assert cli("finetune", "--from-hf", hf_folder, "--data", runs / "c.txt", "--out", tmp_path / "o", *FT) == 0


# ---- the command line's edges ---------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="--seed is parsed as any int (numpy refuses negatives) and a prompt or text "
                                       "the tokenizer cannot encode / ids it cannot decode raise a plain "
                                       "ValueError: tracebacks instead of one line naming the option")
@pytest.mark.parametrize("args, option", [
    (["sample", "{char}", "--seed", "-1"], "--seed"),
    (["sample", "{char}", "--prompt", "日本"], "--prompt"),
    (["tokenizer", "encode", "--tokenizer", "{char}/tokenizer.json", "--text", "日本"], "--text"),
    (["tokenizer", "decode", "--tokenizer", "{char}/tokenizer.json", "99999"], "99999"),
], ids=["negative_seed", "prompt_outside_the_vocabulary", "encode_outside_the_vocabulary", "decode_unknown_id"])
def test_cli_values_are_refused_naming_the_option(runs, capsys, args, option):
    msg = one_error_line(capsys, *[a.replace("{char}", str(runs / "char")) for a in args])
    assert option in msg


@pytest.mark.xfail(strict=True, reason="plot draws every logged step: a run that logged 100,000 steps gets a 2.4 MB "
                                       "SVG (3M steps: 71 MB, 38 s, 3.3 GB of RAM for a 300 MB metrics.jsonl, which "
                                       "is read whole, as --resume also does)")
def test_plot_of_a_long_run_is_a_bounded_svg(runs, tmp_path):
    run = copy(runs / "char", tmp_path / "run")
    line = '{"step": %d, "loss": %.4f, "lr": 0.001, "grad_norm": 1.0, "tokens_per_sec": 1000.0, "mfu": 0.01}\n'
    with open(run / "metrics.jsonl", "w") as f:
        f.writelines(line % (i, 3 + math.sin(i / 500)) for i in range(100_000))
    assert cli("plot", run) == 0
    assert (run / "loss.svg").stat().st_size < 1_000_000
