"""LoRA adapters (identity at init, gradients, merge, adapter files) and freezing helpers."""
import numpy as np
import pytest

from nanoframe import nn
from nanoframe.autograd import no_grad
from nanoframe.io import load_safetensors, load_safetensors_metadata
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.finetune import freeze
from nanoframe.training.lora import (
    LoRALinear,
    apply_lora,
    load_adapter,
    lora_state_dict,
    merge_lora,
    save_adapter,
)

CFG = dict(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=16)
TARGETS = ("c_attn", "c_proj", "c_fc")


def _model(seed=0, **kw):
    manual_seed(seed)
    return GPT(GPTConfig(**{**CFG, **kw}))


def _ids(seed=0, shape=(2, 12)):
    return np.random.default_rng(seed).integers(0, CFG["vocab_size"], size=shape)


def _logits(model, ids):
    model.eval()
    with no_grad():
        return model(ids)[0].array.copy()


def _perturb_adapters(model, seed=1):
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith(".lora_B"):
            p.array[...] = rng.normal(0, 0.2, p.array.shape)


def test_lora_starts_as_identity_and_only_adapters_get_gradients():
    model = _model()
    ids = _ids()
    before = _logits(model, ids)
    wrapped = apply_lora(model, targets=TARGETS, r=4, alpha=8)
    assert len(wrapped) == 2 * 4 and "transformer.h.1.mlp.c_proj" in wrapped
    np.testing.assert_array_equal(_logits(model, ids), before)  # B = 0: the update is exactly zero
    layer = model.transformer.h[0].attn.c_attn
    assert isinstance(layer, LoRALinear) and layer.lora_A.shape == (4, 16) and layer.lora_B.shape == (48, 4)
    bound = 1 / np.sqrt(16)  # kaiming_uniform(a=sqrt(5)) on A (r, in), as peft
    assert np.abs(layer.lora_A.array).max() <= bound and np.abs(layer.lora_A.array).std() > bound / 4
    model.train()
    _, loss = model(ids, np.roll(ids, -1, axis=1))
    loss.backward()
    for name, p in model.named_parameters():
        is_adapter = name.endswith((".lora_A", ".lora_B"))
        assert p.requires_grad == is_adapter, name
        assert (p.grad_array is not None) == is_adapter, name
    assert np.abs(model.transformer.h[0].attn.c_attn.lora_B.grad_array).sum() > 0
    # names of the base weights are unchanged: a base checkpoint still loads
    assert "transformer.h.0.attn.c_attn.weight" in model.state_dict()


def test_lora_forward_formula_and_dropout_only_in_training():
    manual_seed(0)
    base = nn.Linear(5, 7)
    lin = LoRALinear(base, r=3, alpha=6, dropout=0.5)
    lin.lora_B.array[...] = np.random.default_rng(0).normal(size=(7, 3))
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    lin.eval()
    with no_grad():
        y = lin(x).array
    expected = x @ base.weight.array.T + base.bias.array + x @ lin.lora_A.array.T @ lin.lora_B.array.T * 2.0
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    lin.train()
    with no_grad():
        assert not np.allclose(lin(x).array, y)


def test_merge_equals_unmerged_and_gives_plain_linears():
    model = _model()
    apply_lora(model, targets=TARGETS, r=4, alpha=16)
    _perturb_adapters(model)
    ids = _ids()
    unmerged = _logits(model, ids)
    assert np.abs(unmerged - _logits(_model(), ids)).max() > 1e-3  # the adapters do something
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert type(model.transformer.h[0].attn.c_attn) is nn.Linear
    np.testing.assert_allclose(_logits(model, ids), unmerged, rtol=1e-5, atol=1e-6)
    assert sorted(model.state_dict()) == sorted(_model().state_dict())


def test_adapter_file_holds_only_adapters_and_reloads(tmp_path):
    model = _model()
    cfg = {"targets": ["c_attn", "mlp.c_proj"], "r": 2, "alpha": 4, "dropout": 0.0}
    apply_lora(model, **cfg)
    _perturb_adapters(model)
    ids = _ids()
    expected = _logits(model, ids)
    save_adapter(model, tmp_path / "a.safetensors", cfg)
    tensors = load_safetensors(tmp_path / "a.safetensors")
    assert sorted(tensors) == sorted(lora_state_dict(model))
    assert set(tensors) == {f"transformer.h.{i}.{m}.lora_{ab}" for i in range(2)
                            for m in ("attn.c_attn", "mlp.c_proj") for ab in "AB"}
    assert "lora_config" in load_safetensors_metadata(tmp_path / "a.safetensors")
    fresh = _model()
    assert load_adapter(fresh, tmp_path / "a.safetensors")["r"] == 2
    np.testing.assert_array_equal(_logits(fresh, ids), expected)
    with pytest.raises(ValueError, match="no Linear layer matches"):
        apply_lora(_model(), targets=["q_proj"])


def test_freeze_by_pattern_first_n_layers_and_embeddings():
    model = _model()
    names = freeze(model, patterns=["*.ln_*"])
    assert names and all(".ln_" in n for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "transformer.h.0.attn.c_attn.weight" in trainable and "transformer.ln_f.weight" not in trainable
    opt = model.configure_optimizer(0.1, 1e-3)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in model.parameters() if p.requires_grad}

    model = _model()
    names = freeze(model, first_n_layers=1, embeddings=True)
    assert all(n.startswith(("transformer.h.0.", "transformer.wte", "transformer.wpe")) for n in names)
    assert model.lm_head.weight.requires_grad is False  # tied to wte
    ids = _ids()
    _, loss = model(ids, ids)
    loss.backward()
    assert model.transformer.h[0].mlp.c_fc.weight.grad_array is None
    assert model.transformer.h[1].mlp.c_fc.weight.grad_array is not None
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze(_model(), patterns=["nothing.*"])
    with pytest.raises(ValueError, match="no trainable parameter"):
        freeze(_model(), patterns=["*"])
    with pytest.raises(ValueError, match="has 2"):
        freeze(_model(), first_n_layers=3)
