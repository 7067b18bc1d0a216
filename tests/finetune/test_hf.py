"""GPT.from_hf / to_hf against transformers' reference outputs and a live GPT2LMHeadModel."""
import json

import numpy as np
import pytest

from nanoframe.autograd import no_grad
from nanoframe.models import GPT, GPTConfig
from nanoframe.models.hf import state_from_hf
from nanoframe.random import manual_seed

from tests.helpers import SHARED_DATA as DATA

HF_MODELS = ["tiny-gpt2", "fake-gpt2-lmbuddy"]


def _logits(model, ids):
    model.eval()
    with no_grad():
        return model(np.asarray(ids, np.int64).reshape(1, -1))[0].array[0]


@pytest.mark.parametrize("name", HF_MODELS)
def test_from_hf_matches_transformers_reference_outputs(name):
    folder = DATA / "gpt2" / name
    if not (folder / "reference_outputs.npz").is_file():
        pytest.skip(f"reference data {folder} is absent")
    ref = np.load(folder / "reference_outputs.npz")
    model = GPT.from_hf(folder)
    ids = ref["input_ids"]
    logits = _logits(model, ids)                                             # (T, V)
    np.testing.assert_allclose(logits[:, :512], ref["logits_first512"], rtol=1e-4, atol=1e-6)
    lse = np.log(np.exp(logits.astype(np.float64)).sum(-1))
    np.testing.assert_allclose(lse, ref["logsumexp"], rtol=1e-4)
    assert np.array_equal(logits.argmax(-1), ref["logits_argmax"])
    with no_grad():
        x = model.transformer.wte(ids[None]) + model.transformer.wpe(np.arange(len(ids)))
        for block in model.transformer.h:
            x = block(x)
        hidden = model.transformer.ln_f(x).array[0]
        _, loss = model(ids[None, :-1], ids[None, 1:])
    np.testing.assert_allclose(hidden, ref["final_hidden_after_ln_f"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), ref["loss_shifted_mean"], rtol=1e-5)


def _tiny_cfg(**kw):
    return GPTConfig(**{**dict(vocab_size=97, block_size=24, n_layer=2, n_head=2, n_embd=16), **kw})


def test_to_hf_from_hf_round_trip_is_exact_and_unprefixed_names_load(tmp_path):
    from nanoframe.io import load_safetensors, save_safetensors

    manual_seed(0)
    model = GPT(_tiny_cfg())
    model.to_hf(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["activation_function"] == "gelu_new" and cfg["n_positions"] == 24
    tensors = load_safetensors(tmp_path / "hf" / "model.safetensors")
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)    # Conv1D (in, out)
    back = GPT.from_hf(tmp_path / "hf")
    ours = dict(model.named_parameters())
    for name, p in back.named_parameters():
        assert np.array_equal(p.array, ours[name].array), name
    # no "transformer." prefix, plus the attention-mask buffers some files carry
    bare = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    bare["h.0.attn.bias"] = np.tril(np.ones((1, 1, 24, 24), np.float32))
    bare["h.1.attn.masked_bias"] = np.array(-1e4, np.float32)
    bare["lm_head.weight"] = tensors["transformer.wte.weight"]
    (tmp_path / "bare").mkdir()
    save_safetensors(bare, tmp_path / "bare" / "model.safetensors")
    (tmp_path / "bare" / "config.json").write_text(json.dumps(cfg))
    again = GPT.from_hf(tmp_path / "bare")
    np.testing.assert_array_equal(_logits(again, [1, 2, 3]), _logits(model, [1, 2, 3]))


def test_from_hf_names_missing_unexpected_and_bad_shapes():
    cfg = _tiny_cfg(n_layer=1)
    good = {k: np.zeros(v.shape, np.float32) for k, v in
            {**{n: p.array.T if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) else p.array
                for n, p in GPT(cfg).named_parameters()}}.items()}
    state_from_hf(good, cfg)
    bad = dict(good)
    del bad["transformer.h.0.ln_1.bias"]
    bad["transformer.h.0.extra.weight"] = np.zeros(3, np.float32)
    bad["transformer.h.0.mlp.c_fc.weight"] = np.zeros((64, 16), np.float32)  # stored (out, in): wrong
    with pytest.raises(ValueError) as e:
        state_from_hf(bad, cfg, "m.safetensors")
    msg = str(e.value)
    assert "transformer.h.0.ln_1.bias" in msg and "transformer.h.0.extra.weight" in msg
    assert "shape mismatch for transformer.h.0.mlp.c_fc.weight" in msg and msg.startswith("m.safetensors")


@pytest.mark.parametrize("key,value,words", [  # (layer_norm_epsilon, n_inner, llama and qwen2 are read now)
    ("activation_function", "relu", "activation_function 'relu'"),
    ("scale_attn_by_inverse_layer_idx", True, "attention scaling"),
    ("n_inner", 0, "n_inner"),
    ("model_type", "mistral", "model_type 'mistral' is not supported"),
])
def test_from_hf_refuses_what_nanoframe_gpt_is_not(tmp_path, key, value, words):
    manual_seed(0)
    GPT(_tiny_cfg()).to_hf(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=words):
        GPT.from_hf(tmp_path)


def test_parity_with_live_transformers_model_both_ways(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=24, n_layer=3, n_head=3,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    ref = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():  # random LayerNorm affine and biases too, so nothing is checked against 1s and 0s
        for name, p in ref.named_parameters():
            if "ln" in name or name.endswith(".bias"):
                p.normal_(0, 0.1 if name.endswith(".bias") else 1.0)
    ref.save_pretrained(tmp_path / "ref", safe_serialization=True)
    ids = np.random.default_rng(0).integers(0, 101, size=(2, 20))
    with torch.no_grad():
        out = ref(torch.tensor(ids), labels=torch.tensor(ids))
    model = GPT.from_hf(tmp_path / "ref")
    model.eval()
    with no_grad():
        logits = model(ids)[0].array
        _, loss = model(ids[:, :-1], ids[:, 1:])  # transformers shifts labels=input_ids internally
    np.testing.assert_allclose(logits, out.logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), out.loss.item(), rtol=1e-5)

    # ours -> to_hf -> transformers: same logits
    manual_seed(1)
    ours = GPT(_tiny_cfg(bias=False))  # bias=False is written as zero biases
    ours.to_hf(tmp_path / "ours")
    loaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    ids = np.random.default_rng(1).integers(0, 97, size=(2, 24))
    with torch.no_grad():
        theirs = loaded(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(_logits(ours, ids[0]), theirs[0], rtol=1e-4, atol=1e-5)
