"""Tiny random Hugging Face checkpoints built locally (no network), for from_hf / finetune tests."""
import pytest


def tiny_hf_folder(folder, family, text, vocab_size, **config):
    """Save a 2-layer, hidden-32 `family` ("llama" or "qwen2") model with random weights (torch seed
    0) and a byte-level BPE tokenizer.json trained on `text` into `folder`; returns the folder.
    config: fields over the defaults (4 heads, 2 K/V heads, intermediate 48, 64 positions)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from nanoframe.tokenizer import BPETokenizer

    config_cls, model_cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
                             "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[family]
    tok = BPETokenizer().train(text, vocab_size=vocab_size, pattern="gpt4", special_tokens=["<|endoftext|>"])
    torch.manual_seed(0)
    cfg = config_cls(**{"vocab_size": tok.vocab_size, "hidden_size": 32, "intermediate_size": 48,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "max_position_embeddings": 64, **config})
    model_cls(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_tokenizer_json(folder / "tokenizer.json")
    return folder


def assert_export_matches_transformers(model, folder, ids=((1, 5, 9, 2, 7, 3),)):
    """model.to_hf(folder), then transformers' AutoModelForCausalLM loads it and gives the same
    logits as model on ids (rtol 1e-4); returns those logits."""
    import numpy as np

    import nanoframe as nf

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ids = np.array(ids)
    model.to_hf(folder)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = theirs(torch.tensor(ids)).logits.numpy()
    with nf.no_grad():
        np.testing.assert_allclose(model.eval()(ids)[0].array, ref, rtol=1e-4, atol=1e-5)
    return ref
