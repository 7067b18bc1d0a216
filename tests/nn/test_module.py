"""Module: registration, traversal, shared-weight de-duplication, train/eval, state_dict, repr."""
from collections import OrderedDict

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.tensor import Tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)
        self.register_buffer("mask", np.tril(np.ones((2, 2), np.float32)))
        self.register_buffer("cache", np.zeros(3, np.float32), persistent=False)

    def forward(self, x):
        return self.drop(self.fc(x))


class Tiny(nn.Module):
    """wte and head share one weight, as GPT-2's lm_head does."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.h = nn.ModuleList([Block(), Block()])
        self.ln_f = nn.LayerNorm(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.wte.weight
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x)) * self.scale


def test_registration_and_named_parameters_dedup():
    m = Tiny()
    names = [n for n, _ in m.named_parameters()]
    assert names == [
        "scale", "wte.weight", "h.0.fc.weight", "h.0.fc.bias", "h.1.fc.weight", "h.1.fc.bias",
        "ln_f.weight", "ln_f.bias",
    ]
    assert "head.weight" not in names  # the tied weight is listed once
    assert len(list(m.parameters())) == 8
    all_names = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    assert "head.weight" in all_names
    assert m.num_parameters() == 1 + 40 + 2 * 20 + 8
    m.scale.requires_grad_(False)
    assert m.num_parameters(trainable_only=True) == 40 + 2 * 20 + 8
    assert isinstance(m.wte.weight, nn.Parameter) and m.wte.weight.requires_grad
    assert m.get_parameter("h.1.fc.bias") is m.h[1].fc.bias
    assert m.get_submodule("h.0.drop") is m.h[0].drop


def test_children_modules_buffers():
    m = Tiny()
    assert [n for n, _ in m.named_children()] == ["wte", "h", "ln_f", "head"]
    mods = [n for n, _ in m.named_modules()]
    assert mods == ["", "wte", "h", "h.0", "h.0.fc", "h.0.drop", "h.1", "h.1.fc", "h.1.drop", "ln_f", "head"]
    assert len(list(m.modules())) == len(mods)
    assert [n for n, _ in m.named_buffers()] == ["h.0.mask", "h.0.cache", "h.1.mask", "h.1.cache"]
    assert isinstance(m.h[0].mask, Tensor) and not m.h[0].mask.requires_grad
    m.h[0].mask = np.zeros((2, 2), np.float32)  # assigning to a buffer name updates the buffer
    assert isinstance(m.h[0].mask, Tensor) and "mask" in m.h[0]._buffers


def test_setattr_rules():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError):
        m.weight = Tensor(np.zeros((3, 2), np.float32))
    m.bias = None
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = nn.Parameter(np.zeros(2, np.float32))
    assert "extra" in m._parameters
    del m.extra
    assert "extra" not in m._parameters and not hasattr(m, "extra")
    with pytest.raises(AttributeError):
        _ = m.nope


def test_train_eval_propagate():
    m = Tiny()
    assert m.training and m.h[1].drop.training
    assert m.eval() is m
    assert all(not mod.training for mod in m.modules())
    assert m.train() is m
    assert all(mod.training for mod in m.modules())
    m.h.eval()
    assert m.training and not m.h[0].fc.training


def test_zero_grad_and_apply_and_requires_grad():
    m = Tiny()
    for p in m.parameters():
        p.grad_array = np.ones_like(p.array)
    g = m.ln_f.weight.grad_array
    m.zero_grad(set_to_none=False)
    assert m.ln_f.weight.grad_array is g and not g.any()
    m.zero_grad()
    assert all(p.grad_array is None for p in m.parameters())
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen[-1] == "Tiny" and seen.count("Linear") == 3
    m.requires_grad_(False)
    assert m.num_parameters(trainable_only=True) == 0


def test_state_dict_shares_data_and_round_trips():
    m = Tiny()
    sd = m.state_dict()
    assert list(sd) == [
        "scale", "wte.weight", "h.0.mask", "h.0.fc.weight", "h.0.fc.bias", "h.1.mask", "h.1.fc.weight",
        "h.1.fc.bias", "ln_f.weight", "ln_f.bias", "head.weight",
    ]  # torch's order (own params, own buffers, then children); tied weights under both names;
    # the non-persistent buffer is left out
    assert isinstance(sd, OrderedDict)
    assert sd["wte.weight"].array is m.wte.weight.array and not sd["wte.weight"].requires_grad

    nanoframe.manual_seed(123)
    m2 = Tiny()
    arrays = {id(p): p.array for p in m2.parameters()}
    result = m2.load_state_dict({k: (v.array.copy() if i % 2 else v) for i, (k, v) in enumerate(sd.items())})
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        np.testing.assert_array_equal(a.array, b.array, err_msg=k)
    assert all(p.array is arrays[id(p)] for p in m2.parameters())  # copied in place


def test_state_dict_through_io(tmp_path):
    m = Tiny()
    nanoframe.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = Tiny()
    m2.load_state_dict(nanoframe.load(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(m2.h[1].fc.weight.array, m.h[1].fc.weight.array)


def test_load_state_dict_errors():
    m = Tiny()
    sd = dict(m.state_dict())
    del sd["ln_f.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    before = Tiny()
    snapshot = {k: v.array.copy() for k, v in before.state_dict().items()}
    with pytest.raises(RuntimeError) as e:
        before.load_state_dict(sd)
    assert '"ln_f.bias"' in str(e.value) and '"extra.weight"' in str(e.value)
    assert "Missing" in str(e.value) and "Unexpected" in str(e.value)
    for k, v in before.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(v.array, snapshot[k])

    res = before.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["ln_f.bias"] and res.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(before.h[0].fc.weight.array, m.h[0].fc.weight.array)

    bad = dict(m.state_dict())
    bad["h.1.fc.weight"] = np.zeros((4, 5), np.float32)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"h\.1\.fc\.weight.*\(4, 5\).*\(4, 4\)"):
            Tiny().load_state_dict(bad, strict=strict)


def test_repr_nested():
    m = nn.Sequential(nn.Linear(2, 8), nn.GELU(approximate="tanh"), nn.ModuleList([nn.LayerNorm(8), nn.Dropout(0.2)]))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=8, bias=True)\n"
        "  (1): GELU(approximate='tanh')\n"
        "  (2): ModuleList(\n"
        "    (0): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
        "    (1): Dropout(p=0.2)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.Embedding(5, 3)) == "Embedding(5, 3)"
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Parameter(np.zeros(1, np.float32))).startswith("Parameter containing:")


def test_containers():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    seq.append(nn.Tanh())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    del seq[1]
    assert [type(x).__name__ for x in seq] == ["Linear", "Linear", "Tanh"]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    named = nn.Sequential(OrderedDict(inp=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["inp.weight", "inp.bias"]

    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh())
    ml += [nn.SiLU()]
    ml.insert(0, nn.Identity())
    assert [type(x).__name__ for x in ml] == ["Identity", "ReLU", "Tanh", "SiLU"]
    ml[1] = nn.GELU()
    assert isinstance(ml[1], nn.GELU) and len(ml[1:]) == 3
    with pytest.raises(IndexError):
        ml[4]

    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    md["c"] = nn.Linear(2, 1, bias=False)
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight"]
    md.pop("b")
    assert list(md.keys()) == ["a", "c"]


def test_module_without_forward():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_to_double():
    m = nn.Linear(3, 2).double()
    assert m.weight.dtype == np.float64 and m.bias.dtype == np.float64
