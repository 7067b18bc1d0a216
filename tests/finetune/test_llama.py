"""Llama-style models through the `nanoframe` command: `train --arch llama` (and resume, sample),
`finetune --from-hf` on a tiny random Hugging Face llama folder with LoRA on q_proj, k_proj, v_proj,
o_proj, gate_proj, up_proj, down_proj, then `lora merge` and the merged model back out to_hf,
which transformers opens with the same logits."""
import json

import numpy as np
import pytest

from nanoframe.io import load_safetensors

from tests.helpers.hf import assert_export_matches_transformers, tiny_hf_folder
from tests.helpers.runs import SHAKESPEAREISH, TINY, cli, one_error_line

LLAMA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def test_train_arch_llama_resume_and_sample(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(SHAKESPEAREISH)
    out = tmp_path / "run"
    args = ["train", "--data", text, "--tokenizer", "char", "--out", out, "--arch", "llama", *TINY,
            "--n_kv_head", "1", "--eval_interval", "4", "--checkpoint_interval", "4"]
    assert cli(*args, "--max_iters", 8) == 0
    model_cfg = json.loads((out / "config.json").read_text())["model"]
    assert (model_cfg["positions"], model_cfg["norm"], model_cfg["mlp"], model_cfg["qkv_proj"],
            model_cfg["n_kv_head"], model_cfg["bias"]) == ("rope", "rmsnorm", "swiglu", "split", 1, False)
    names = load_safetensors(out / "best" / "model.safetensors")
    assert "transformer.h.0.attn.k_proj.weight" in names and "transformer.wpe.weight" not in names
    assert names["transformer.h.0.attn.k_proj.weight"].shape == (8, 16)        # one K/V head of 8
    assert cli("train", "--out", out, "--resume", "--max_iters", 12, "--no-progress", "--no-sample") == 0
    assert json.loads((out / "checkpoints" / "step_000012" / "state.json").read_text())["step"] == 12
    capsys.readouterr()
    assert cli("sample", out, "--prompt", "First", "--max-new-tokens", 5, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("First")
    assert "--arch" in one_error_line(capsys, "train", "--out", out, "--resume", "--arch", "gpt2")
    assert "invalid choice" in one_error_line(capsys, "train", "--out", tmp_path / "x", "--arch", "mamba")


@pytest.fixture
def llama_folder(tmp_path):
    """A tiny random Hugging Face llama (GQA, untied head) with a tokenizer.json trained here."""
    return tiny_hf_folder(tmp_path / "hf-llama", "llama", SHAKESPEAREISH, 300, rope_theta=10000.0,
                          tie_word_embeddings=False)


def test_finetune_from_hf_llama_with_lora_on_every_projection_then_merge_and_export(llama_folder, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import nanoframe as nf
    from nanoframe.models import GPT
    from nanoframe.training.run import load_for_inference

    jsonl = tmp_path / "i.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": f"All: {w}", "completion": " speak."}) + "\n"
                             for w in ["First", "Citizen", "Before", "proceed", "further", "hear"]))
    out = tmp_path / "lora"
    assert cli("finetune", "--from-hf", llama_folder, "--data", jsonl, "--out", out, "--lora", "--lora-r", 2,
               "--lora-targets", LLAMA_TARGETS, "--block_size", 16, "--max_iters", 4, "--eval_interval", 2,
               "--eval_iters", 1, "--batch_size", 2, "--no-progress", "--no-sample") == 0
    state = json.loads((out / "best" / "state.json").read_text())
    assert state["base"]["kind"] == "hf" and state["lora"]["targets"] == LLAMA_TARGETS.split(",")
    adapter = load_safetensors(out / "adapter.safetensors")
    assert len(adapter) == 2 * 7 * 2                                          # A and B, 7 projections, 2 layers
    assert adapter["transformer.h.1.attn.k_proj.lora_B"].shape == (16, 2)     # 2 K/V heads of 8
    assert any(np.abs(a).max() > 0 for n, a in adapter.items() if n.endswith("lora_B"))   # they trained

    merged = tmp_path / "merged"
    assert cli("lora", "merge", "--base", llama_folder, "--adapter", out, "--out", merged) == 0
    model, _, _, _ = load_for_inference(merged)
    ref = assert_export_matches_transformers(model, tmp_path / "exported")
    base = GPT.from_hf(llama_folder)
    with nf.no_grad():
        assert not np.allclose(base(np.array([[1, 5, 9, 2, 7, 3]]))[0].array, ref, atol=1e-4)             # the adapters changed the model
    capsys.readouterr()
    assert cli("sample", merged, "--prompt", "All:", "--max-new-tokens", 3, "--seed", 0) == 0
    assert capsys.readouterr().out.startswith("All:")


def test_finetune_from_hf_llama_refusals_are_one_line(llama_folder, tmp_path, capsys):
    cfg = json.loads((llama_folder / "config.json").read_text())
    (llama_folder / "config.json").write_text(json.dumps({**cfg, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}))
    msg = one_error_line(capsys, "finetune", "--from-hf", llama_folder, "--out", tmp_path / "o", "--no-progress")
    assert "rope_scaling of type 'llama3' is not supported" in msg and "config.json" in msg
    (llama_folder / "config.json").write_text(json.dumps(cfg))
    msg = one_error_line(capsys, "finetune", "--from-hf", llama_folder, "--out", tmp_path / "p", "--lora",
                         "--lora-targets", "c_attn", "--no-progress")
    assert "no Linear layer matches" in msg and "q_proj" in msg
