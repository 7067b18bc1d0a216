"""MultiheadAttention and the Transformer family against torch.nn with torch's weights loaded:
outputs, attention weights and every gradient, masks of each kind, both layouts, train (dropout
0) and eval (dropout > 0), torch's nested-tensor zeros, state dict names and init."""
import math
import warnings

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")
E, NH, L, S, B = 8, 2, 5, 4, 3


def _load(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def _randomize(theirs):
    with torch.no_grad():                  # non-zero biases and norm weights, so every path is exercised
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.1)


def _run(ours, theirs, inputs, kwargs, rtol, grad=True):
    """Call both with the same inputs (arrays; same object repeated -> same tensor), compare every
    output and the gradients of the float inputs and of all parameters."""
    tn, tt, seen = [], [], {}
    for a in inputs:
        if id(a) not in seen:
            seen[id(a)] = (Tensor(a.copy(), requires_grad=grad), torch.tensor(a, requires_grad=grad))
        tn.append(seen[id(a)][0])
        tt.append(seen[id(a)][1])
    kn = {k: (v if not isinstance(v, np.ndarray) else Tensor(v) if v.dtype != np.bool_ else v) for k, v in kwargs.items()}
    kt = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    on, ot = ours(*tn, **kn), theirs(*tt, **kt)
    on = list(on) if isinstance(on, tuple) else [on]
    ot = list(ot) if isinstance(ot, tuple) else [ot]
    rng = np.random.default_rng(9)
    total_n = total_t = 0
    for a, b in zip(on, ot):
        if b is None:
            assert a is None
            continue
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.array, b.detach().numpy(), rtol=rtol, atol=rtol)
        w = rng.standard_normal(a.shape).astype(a.dtype)
        total_n = total_n + (a * Tensor(w)).sum()
        total_t = total_t + (b * torch.tensor(w)).sum()
    if not grad:
        return
    total_n.backward()
    total_t.backward()
    for x, y in seen.values():
        np.testing.assert_allclose(x.grad_array, y.grad.numpy(), rtol=rtol, atol=rtol)
    theirs_p = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad_array, theirs_p[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


def _mha_pair(dtype=torch.float64, **kw):
    theirs = torch.nn.MultiheadAttention(E, NH, dtype=dtype, **kw)
    ours = nn.MultiheadAttention(E, NH, dtype=np.float64 if dtype == torch.float64 else np.float32,
                                 **{k: v for k, v in kw.items()})
    _randomize(theirs)
    _load(ours, theirs)
    return ours, theirs


rng0 = np.random.default_rng(0)
CAUSAL = np.triu(np.ones((L, L), dtype=bool), 1)
MASKS = {
    "none": {},
    "bool attn_mask": dict(attn_mask=rng0.random((L, S)) < 0.3),
    "float attn_mask": dict(attn_mask=rng0.standard_normal((L, S))),
    "3d attn_mask": dict(attn_mask=rng0.standard_normal((B * NH, L, S))),
    "key_padding_mask": dict(key_padding_mask=np.array([[False] * S, [False, False, True, True], [False, True, False, True]])),
    "both float": dict(attn_mask=rng0.standard_normal((L, S)), key_padding_mask=rng0.standard_normal((B, S))),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_cross_attention_matches_torch(mask, need_weights, average, batch_first):
    ours, theirs = _mha_pair(batch_first=batch_first)
    rng = np.random.default_rng(1)
    shape = lambda n: (B, n, E) if batch_first else (n, B, E)      # noqa: E731
    q, k, v = rng.standard_normal(shape(L)), rng.standard_normal(shape(S)), rng.standard_normal(shape(S))
    _run(ours, theirs, [q, k, v], dict(MASKS[mask], need_weights=need_weights, average_attn_weights=average), 1e-10)


@pytest.mark.parametrize("kw", [dict(), dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True),
                                dict(kdim=5, vdim=3), dict(add_bias_kv=True, add_zero_attn=True, bias=False)],
                         ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_options_match_torch(kw, need_weights):
    ours, theirs = _mha_pair(**kw)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((L, B, E))
    k = rng.standard_normal((S, B, kw.get("kdim", E)))
    v = rng.standard_normal((S, B, kw.get("vdim", E)))
    masks = dict(attn_mask=rng.random((L, S)) < 0.3, key_padding_mask=np.array([[False] * S] * 2 + [[False, True, False, False]]))
    _run(ours, theirs, [q, k, v], dict(masks, need_weights=need_weights), 1e-10)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_self_attention_causal_unbatched_and_float32(need_weights):
    ours, theirs = _mha_pair()
    x = np.random.default_rng(3).standard_normal((L, B, E))
    _run(ours, theirs, [x, x, x], dict(attn_mask=CAUSAL, is_causal=True, need_weights=need_weights), 1e-10)
    xu = x[:, 0]
    _run(ours, theirs, [xu, xu, xu], dict(attn_mask=CAUSAL, key_padding_mask=np.array([False, False, True, False, False]),
                                          need_weights=need_weights), 1e-10)
    ours32, theirs32 = _mha_pair(dtype=torch.float32)
    x32 = x.astype(np.float32)
    _run(ours32, theirs32, [x32, x32, x32], dict(need_weights=need_weights), 2e-5)


def test_mha_eval_ignores_dropout_and_matches_torch_fast_path():
    ours, theirs = _mha_pair(dropout=0.5, batch_first=True)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(4).standard_normal((B, L, E))
    _run(ours, theirs, [x, x, x], {}, 1e-10)
    with torch.no_grad(), nanoframe.no_grad():     # torch takes its native fused path here
        _run(ours, theirs, [x, x, x], dict(key_padding_mask=np.array([[False] * L] * 2 + [[False] * 3 + [True] * 2])),
             1e-10, grad=False)


def test_mha_dropout_in_training_drops_weights():
    nanoframe.manual_seed(0)
    mha = nn.MultiheadAttention(E, NH, dropout=0.5)
    x = Tensor(np.random.default_rng(5).standard_normal((L, B, E)).astype(np.float32))
    _, w = mha(x, x, x, average_attn_weights=False)
    kept = w.array[w.array > 0]
    assert 0.3 < (w.array == 0).mean() < 0.7            # about half the probabilities dropped
    assert np.all(kept <= 2.0 + 1e-6)                   # kept ones scaled by 1 / (1 - p)


def test_mha_errors():
    mha = nn.MultiheadAttention(E, NH)
    x = Tensor(np.zeros((L, B, E), np.float32))
    with pytest.raises(ValueError, match="MultiheadAttention: embed_dim=7 must be positive and divisible by num_heads=2"):
        nn.MultiheadAttention(7, 2)
    with pytest.raises(ValueError, match=r"MultiheadAttention: attn_mask must have shape \(5, 5\) or \(6, 5, 5\), got \(4, 4\)"):
        mha(x, x, x, attn_mask=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match=r"MultiheadAttention: expected key_padding_mask of shape \(3, 5\), got \(5, 3\)"):
        mha(x, x, x, key_padding_mask=np.zeros((5, 3), bool))
    with pytest.raises(ValueError, match="MultiheadAttention: is_causal=True needs attn_mask"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match=r"MultiheadAttention: expected last dims embed_dim=8"):
        mha(Tensor(np.zeros((L, B, 4), np.float32)), x, x)


def _layer_pair(cls, dtype=torch.float64, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torch.nn, cls)(E, NH, dim_feedforward=16, dtype=dtype, **kw)
    ours = getattr(nn, cls)(E, NH, dim_feedforward=16, dtype=np.float64 if dtype == torch.float64 else np.float32, **kw)
    _randomize(theirs)
    _load(ours, theirs)
    return ours, theirs


LAYER_CFGS = [dict(dropout=0.0), dict(dropout=0.0, norm_first=True, activation="gelu"),
              dict(dropout=0.0, batch_first=True, bias=False), dict(dropout=0.3, eval=True, activation="gelu")]


@pytest.mark.parametrize("cfg", LAYER_CFGS, ids=lambda c: "-".join(f"{a}={b}" for a, b in c.items()))
@pytest.mark.parametrize("masks", ["none", "causal", "padding"])
def test_encoder_layer_matches_torch(cfg, masks):
    cfg = dict(cfg)
    evaluate = cfg.pop("eval", False)
    ours, theirs = _layer_pair("TransformerEncoderLayer", **cfg)
    if evaluate:
        ours.eval()
        theirs.eval()
    bf = cfg.get("batch_first", False)
    x = np.random.default_rng(6).standard_normal((B, L, E) if bf else (L, B, E))
    kw = {"none": {}, "causal": dict(src_mask=CAUSAL, is_causal=True),
          "padding": dict(src_key_padding_mask=np.array([[False] * L] * 2 + [[False] * 3 + [True] * 2]))}[masks]
    _run(ours, theirs, [x], kw, 1e-10)


@pytest.mark.parametrize("cfg", LAYER_CFGS, ids=lambda c: "-".join(f"{a}={b}" for a, b in c.items()))
def test_decoder_layer_matches_torch(cfg):
    cfg = dict(cfg)
    evaluate = cfg.pop("eval", False)
    ours, theirs = _layer_pair("TransformerDecoderLayer", **cfg)
    if evaluate:
        ours.eval()
        theirs.eval()
    bf = cfg.get("batch_first", False)
    rng = np.random.default_rng(7)
    tgt = rng.standard_normal((B, L, E) if bf else (L, B, E))
    mem = rng.standard_normal((B, S, E) if bf else (S, B, E))
    kw = dict(tgt_mask=CAUSAL, tgt_is_causal=True, memory_key_padding_mask=np.array([[False] * S] * 2 + [[False, False, True, True]]))
    _run(ours, theirs, [tgt, mem], kw, 1e-10)


def test_encoder_decoder_stacks_and_transformer_match_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.Transformer(E, NH, 2, 2, 16, dropout=0.0, dtype=torch.float64)
    ours = nn.Transformer(E, NH, 2, 2, 16, dropout=0.0, dtype=np.float64)
    _randomize(theirs)
    _load(ours, theirs)
    rng = np.random.default_rng(8)
    src, tgt = rng.standard_normal((S, B, E)), rng.standard_normal((L, B, E))
    mask = nn.Transformer.generate_square_subsequent_mask(L).array.astype(np.float64)
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64).numpy())
    _run(ours, theirs, [src, tgt], dict(tgt_mask=mask, src_key_padding_mask=np.array([[False] * S] * 2 + [[False] * 3 + [True]])), 1e-10)
    assert [n for n, _ in ours.named_parameters()][:3] == ["encoder.layers.0.self_attn.in_proj_weight",
                                                            "encoder.layers.0.self_attn.in_proj_bias",
                                                            "encoder.layers.0.self_attn.out_proj.weight"]


def test_encoder_zeroes_padded_positions_like_torchs_nested_path():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer_t = torch.nn.TransformerEncoderLayer(E, NH, 16, batch_first=True, dtype=torch.float64)
        theirs = torch.nn.TransformerEncoder(layer_t, 2, norm=torch.nn.LayerNorm(E, dtype=torch.float64))
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, NH, 16, batch_first=True, dtype=np.float64), 2,
                                 norm=nn.LayerNorm(E, dtype=np.float64))
    _randomize(theirs)
    _load(ours, theirs)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(9).standard_normal((B, L, E))
    kpm = np.array([[False] * L] * 2 + [[False] * 3 + [True] * 2])
    with torch.no_grad(), nanoframe.no_grad():
        _run(ours, theirs, [x], dict(src_key_padding_mask=kpm), 1e-10, grad=False)
        out = ours(Tensor(x), src_key_padding_mask=kpm).array
    np.testing.assert_allclose(out[2, 3:], ours.norm(Tensor(np.zeros((2, E)))).array)   # zeros, then the norm
    _run(ours, theirs, [x], dict(src_key_padding_mask=kpm), 1e-10)                      # with grad: no zeros


def test_encoder_warns_like_torch_when_nested_tensors_cannot_be_used():
    with pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is False because "
                                         "encoder_layer.self_attn.batch_first was not True"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, NH, 16), 2)


def test_init_distributions_and_deep_copies():
    nanoframe.manual_seed(0)
    mha = nn.MultiheadAttention(64, 4)
    bound = math.sqrt(6.0 / (64 + 3 * 64))                        # xavier over the packed (3E, E) weight
    w = mha.in_proj_weight.array
    assert np.abs(w).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert not mha.in_proj_bias.array.any() and not mha.out_proj.bias.array.any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 3)
    ws = [layer.linear1.weight for layer in enc.layers]
    assert all(np.array_equal(ws[0].array, w.array) and w is not ws[0] for w in ws[1:])   # copies, not shared
    t = nn.Transformer(16, 2, 1, 1, 32)
    lin = t.encoder.layers[0].linear1.weight.array                 # re-drawn xavier_uniform_
    assert np.abs(lin).max() <= math.sqrt(6.0 / (16 + 32))
