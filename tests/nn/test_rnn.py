"""RNN / LSTM / GRU and their cells against torch.nn with copied weights: outputs, final states and
every gradient (input, initial state, all parameters) in float64 and float32; float64 gradchecks
of the fused sequence ops; parameter names, init range, dropout placement, errors."""
import math

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.ops.rnn import GRULayerFunction, LSTMLayerFunction, RNNLayerFunction
from nanoframe.tensor import Tensor

from tests.helpers.fused import gradcheck

torch = pytest.importorskip("torch")


def _copy(ours, theirs):
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def _flat(out):
    """(output, h_n) or (output, (h_n, c_n)) -> list of tensors."""
    first, rest = out
    return [first] + (list(rest) if isinstance(rest, tuple) else [rest])


def _compare(ours, theirs, x, hx, rtol):
    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    if hx is None:
        hn = ht = None
    elif isinstance(hx, tuple):
        hn = tuple(Tensor(h.copy(), requires_grad=True) for h in hx)
        ht = tuple(torch.tensor(h, requires_grad=True) for h in hx)
    else:
        hn, ht = Tensor(hx.copy(), requires_grad=True), torch.tensor(hx, requires_grad=True)
    outs_n, outs_t = ours(xn, hn), theirs(xt, ht)
    outs_n = _flat(outs_n) if isinstance(outs_n, tuple) and not isinstance(ours, nn.LSTMCell) else (
        list(outs_n) if isinstance(outs_n, tuple) else [outs_n])
    outs_t = _flat(outs_t) if isinstance(outs_t, tuple) and not isinstance(theirs, torch.nn.LSTMCell) else (
        list(outs_t) if isinstance(outs_t, tuple) else [outs_t])
    rng = np.random.default_rng(3)
    total_n, total_t = 0, 0
    for a, b in zip(outs_n, outs_t):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.array, b.detach().numpy(), rtol=rtol, atol=rtol)
        w = rng.standard_normal(a.shape).astype(x.dtype)
        total_n = total_n + (a * Tensor(w)).sum()
        total_t = total_t + (b * torch.tensor(w)).sum()
    total_n.backward()
    total_t.backward()
    np.testing.assert_allclose(xn.grad_array, xt.grad.numpy(), rtol=rtol, atol=rtol)
    for a, b in zip(hn if isinstance(hn, tuple) else [hn], ht if isinstance(ht, tuple) else [ht]):
        if a is not None:
            np.testing.assert_allclose(a.grad_array, b.grad.numpy(), rtol=rtol, atol=rtol)
    theirs_p = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad_array, theirs_p[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


CONFIGS = [dict(), dict(num_layers=2), dict(bidirectional=True), dict(num_layers=2, bidirectional=True, batch_first=True),
           dict(bias=False, batch_first=True), dict(num_layers=3, dropout=0.3)]


@pytest.mark.parametrize("cls,extra", [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", dict(nonlinearity="relu"))])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_recurrent_layer_matches_torch(cls, extra, cfg, with_hx, dtype, rtol):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    theirs = getattr(torch.nn, cls)(3, 5, **extra, **cfg, dtype=tdt)
    ours = getattr(nn, cls)(3, 5, **extra, **cfg, dtype=dtype)
    _copy(ours, theirs)
    assert repr(ours) == repr(theirs)
    if cfg.get("dropout"):                 # dropout acts only in training: compare in eval
        ours.eval()
        theirs.eval()
    rng = np.random.default_rng(1)
    t, b = 4, 2
    x = rng.standard_normal((b, t, 3) if cfg.get("batch_first") else (t, b, 3)).astype(dtype)
    hx = None
    if with_hx:
        shape = (ours.num_layers * (2 if ours.bidirectional else 1), b, 5)
        h0 = rng.standard_normal(shape).astype(dtype)
        hx = (h0, rng.standard_normal(shape).astype(dtype)) if cls == "LSTM" else h0
    _compare(ours, theirs, x, hx, rtol)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_unbatched_input_matches_torch(cls):
    theirs = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    ours = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    _copy(ours, theirs)
    rng = np.random.default_rng(2)
    h0 = rng.standard_normal((4, 4))
    hx = (h0, rng.standard_normal((4, 4))) if cls == "LSTM" else h0
    _compare(ours, theirs, rng.standard_normal((5, 3)), hx, 1e-10)


@pytest.mark.parametrize("cls,extra", [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")),
                                       ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
def test_cells_match_torch(cls, extra, batched, with_hx):
    theirs = getattr(torch.nn, cls)(3, 4, **extra, dtype=torch.float64)
    ours = getattr(nn, cls)(3, 4, **extra, dtype=np.float64)
    _copy(ours, theirs)
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(4)
    lead = (2,) if batched else ()
    hx = None
    if with_hx:
        h = rng.standard_normal(lead + (4,))
        hx = (h, rng.standard_normal(lead + (4,))) if cls == "LSTMCell" else h
    _compare(ours, theirs, rng.standard_normal(lead + (3,)), hx, 1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_sequence_ops_gradcheck(reverse):
    rng = np.random.default_rng(5)
    t, b, h = 3, 2, 2
    r = lambda *s: rng.standard_normal(s)      # noqa: E731
    gradcheck(lambda *a: LSTMLayerFunction.apply(*a, reverse=reverse),
              [r(t, b, 4 * h), r(4 * h, h), r(4 * h), r(b, h), r(b, h)], (0, 1, 2, 3, 4))
    gradcheck(lambda *a: GRULayerFunction.apply(*a, reverse=reverse), [r(t, b, 3 * h), r(3 * h, h), r(3 * h), r(b, h)],
              (0, 1, 2, 3))
    for nl in ("tanh", "relu"):
        gradcheck(lambda *a: RNNLayerFunction.apply(*a, reverse=reverse, nonlinearity=nl),
                  [r(t, b, h), r(h, h), r(h), r(b, h)], (0, 1, 2, 3))


def test_dropout_acts_between_layers_only_in_training():
    # p = 1 drops every output of layer 0 (deterministic), so layer 1 sees zeros, as in torch;
    # the last layer's output is never dropped
    theirs = torch.nn.GRU(3, 4, num_layers=2, dropout=1.0, dtype=torch.float64)
    ours = nn.GRU(3, 4, num_layers=2, dropout=1.0, dtype=np.float64)
    _copy(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(6).standard_normal((3, 2, 3)), None, 1e-10)


def test_init_range_and_parameter_names():
    nanoframe.manual_seed(0)
    lstm = nn.LSTM(10, 64, num_layers=2, bidirectional=True)
    names = [n for n, _ in lstm.named_parameters()]
    assert names == [n for n, _ in torch.nn.LSTM(10, 64, num_layers=2, bidirectional=True).named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"]
    assert lstm.weight_ih_l1.shape == (256, 128) and lstm.weight_ih_l0.dtype == np.float32
    bound = 1 / math.sqrt(64)
    w = np.concatenate([p.array.ravel() for p in lstm.parameters()])
    assert np.abs(w).max() <= bound and abs(w.mean()) < 0.02 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound          # U(-b, b) has std b / sqrt(3)


def test_recurrent_errors():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM: input shape \(5, 2, 4\) dtype float32 does not match input_size=3"):
        lstm(nanoframe.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"LSTM: expected h_0 of shape \(2, 2, 4\) and dtype float32, got shape \(1, 2, 4\)"):
        lstm(nanoframe.randn(5, 2, 3), (nanoframe.randn(1, 2, 4), nanoframe.randn(2, 2, 4)))
    with pytest.raises(ValueError, match="LSTM: hx must be a tuple"):
        lstm(nanoframe.randn(5, 2, 3), nanoframe.randn(2, 2, 4))
    with pytest.raises(ValueError, match="LSTM: proj_size=2 is not supported"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match=r"GRUCell: expected input \(B, 3\) or \(3,\)"):
        nn.GRUCell(3, 4)(nanoframe.randn(2, 5))
    with pytest.raises(ValueError, match="RNN: unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
