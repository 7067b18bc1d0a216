"""Hostile and unlucky files a fine-tune, a LoRA merge or a sampler reads, numbers that overflow to
NaN, and the command line's edges: each must end in one `nanoframe: error:` line (exit code 2)
naming the file or option, never a traceback, and nothing non-finite may be written."""
import json
import math
import shutil

import numpy as np
import pytest

from nanoframe.io import load_safetensors, load_safetensors_metadata, save_safetensors

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli, one_error_line

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


@pytest.mark.parametrize("change", [lambda c: c.update(finetune=None), lambda c: c.pop("finetune")],
                         ids=["null", "missing"])
def test_finetune_config_without_its_finetune_section(runs, tmp_path, capsys, change):
    run = copy(runs / "full", tmp_path / "run")
    edit_json(run / "config.json", change)
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "config.json" in msg and "finetune" in msg


@pytest.mark.parametrize("frozen", [[5], [None], [["a"]]], ids=["int", "null", "list"])
def test_frozen_names_of_a_finetune_config_are_checked(runs, tmp_path, capsys, frozen):
    run = tmp_path / "frozen"
    assert cli("finetune", "--from", runs / "char", "--data", runs / "c.txt", "--out", run, "--freeze-layers", 1,
               *FT) == 0
    edit_json(run / "config.json", lambda c: c["finetune"].update(frozen=frozen))
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "config.json" in msg and "frozen" in msg


def test_packed_instructions_wider_than_the_context(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "run")
    edit_safetensors(run / "data" / "instructions.safetensors",
                     lambda t, m: t.update({k: np.concatenate([v, v], axis=1) for k, v in t.items()}))
    msg = one_error_line(capsys, "finetune", "--out", run, *RESUME_FT)
    assert "instructions.safetensors" in msg


# ---- non-finite numbers ---------------------------------------------------------------------------------
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


def test_sampling_weights_that_overflow(runs, tmp_path, capsys):
    """Huge finite weights: the logits either stay finite (then it samples) or overflow, and then the
    command ends with one line saying so, never a traceback or token 0 forever."""
    run = copy(runs / "char", tmp_path / "run")
    _huge_weights(run)
    code = cli("sample", run, "--max-new-tokens", 2, "--seed", 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 2) and "Traceback" not in "\n".join(err)
    if code == 2:
        assert err[-1].startswith("nanoframe: error:") and "NaN or inf" in err[-1]


def test_lora_merge_never_writes_non_finite_weights(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "lora")
    edit_json(run / "best" / "state.json", lambda s: s["lora"].update(alpha=1e308))
    code = cli("lora", "merge", "--base", runs / "bpe", "--adapter", run, "--out", tmp_path / "m")
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("nanoframe: error:")
    assert not (tmp_path / "m" / "best").exists()


# ---- lora merge reading adapters ------------------------------------------------------------------------
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


def test_lora_merge_with_a_base_entry_that_is_not_an_object(runs, tmp_path, capsys):
    run = copy(runs / "lora", tmp_path / "lora")
    edit_json(run / "best" / "state.json", lambda s: s.update(base="elsewhere"))
    msg = one_error_line(capsys, "lora", "merge", "--base", runs / "bpe", "--adapter", run, "--out", tmp_path / "m")
    assert "state.json" in msg and "base" in msg


def test_lora_on_the_tied_lm_head_is_refused_before_training(runs, tmp_path, capsys):
    """An adapter on lm_head, whose weight is the token embedding's, could never be merged back into
    one tied weight: refused at once instead of writing runs nothing can load."""
    lora = tmp_path / "lora"
    msg = one_error_line(capsys, "finetune", "--from", runs / "bpe", "--data", runs / "inst.jsonl", "--out", lora,
                         "--lora", "--lora-r", 2, "--lora-targets", "lm_head", *FT)
    assert "lm_head" in msg and "shared" in msg
    assert not (lora / "checkpoints").exists()


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
@pytest.mark.parametrize("args, option", [
    (["sample", "{char}", "--seed", "-1"], "--seed"),
    (["sample", "{char}", "--prompt", "日本"], "--prompt"),
    (["tokenizer", "encode", "--tokenizer", "{char}/tokenizer.json", "--text", "日本"], "--text"),
    (["tokenizer", "decode", "--tokenizer", "{char}/tokenizer.json", "99999"], "99999"),
], ids=["negative_seed", "prompt_outside_the_vocabulary", "encode_outside_the_vocabulary", "decode_unknown_id"])
def test_cli_values_are_refused_naming_the_option(runs, capsys, args, option):
    msg = one_error_line(capsys, *[a.replace("{char}", str(runs / "char")) for a in args])
    assert option in msg


def test_plot_of_a_long_run_is_a_bounded_svg(runs, tmp_path):
    run = copy(runs / "char", tmp_path / "run")
    line = '{"step": %d, "loss": %.4f, "lr": 0.001, "grad_norm": 1.0, "tokens_per_sec": 1000.0, "mfu": 0.01}\n'
    with open(run / "metrics.jsonl", "w") as f:
        f.writelines(line % (i, 3 + math.sin(i / 500)) for i in range(100_000))
    assert cli("plot", run) == 0
    assert (run / "loss.svg").stat().st_size < 1_000_000
