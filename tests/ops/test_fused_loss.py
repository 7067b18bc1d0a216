"""cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F

try:
    from .fused_helpers import composed_match, gradcheck, parity, rand
except ImportError:
    from fused_helpers import composed_match, gradcheck, parity, rand

REDUCTIONS = ["mean", "sum", "none"]


def _targets(lead, v, seed=0, ignore=True):
    t = np.random.default_rng(seed).integers(0, v, lead)
    if ignore and t.size > 1:
        t.reshape(-1)[:: 3] = -100           # every third target ignored
    return t


def _torch_ce(torch, **kw):
    # torch wants the class dim at 1: move our last dim there
    def fn(x, t):
        if x.dim() > 2:
            x = x.movedim(-1, 1)
        return torch.nn.functional.cross_entropy(x, torch.as_tensor(t), **kw)
    return fn


@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 3, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_parity_and_gradcheck(lead, reduction, smoothing):
    torch = pytest.importorskip("torch")
    v = 7
    x, t = rand(*lead, v, scale=3.0), _targets(lead, v)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    fn = lambda x_, t_: F.cross_entropy(x_, t_, **kw)
    parity(fn, _torch_ce(torch, **kw), [x, t], (0,), rtol=1e-10, atol=1e-12)
    parity(fn, _torch_ce(torch, **kw), [x.astype(np.float32), t], (0,), rtol=1e-4, atol=1e-6)
    gradcheck(fn, [x, t], (0,))


def test_cross_entropy_custom_ignore_index_and_all_ignored():
    torch = pytest.importorskip("torch")
    x, t = rand(6, 5), np.array([0, 3, 3, 1, 3, 4])
    kw = dict(ignore_index=3)
    parity(lambda a, b: F.cross_entropy(a, b, **kw), _torch_ce(torch, **kw), [x, t], (0,), rtol=1e-12, atol=1e-13)
    xt = nf.Tensor(x, requires_grad=True)
    with np.errstate(all="raise"):
        loss = F.cross_entropy(xt, np.full(6, -100))
        loss.backward()
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.full((6,), -100))
    assert np.isnan(loss.item()) and torch.isnan(ref)      # mean over zero targets: nan, like torch
    np.testing.assert_array_equal(xt.grad_array, 0.0)            # and zero gradients, like torch
    s = F.cross_entropy(nf.Tensor(x), np.full(6, -100), reduction="sum")
    assert s.item() == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_stable_for_pm_1e4_logits(dtype, smoothing):
    torch = pytest.importorskip("torch")
    x = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, -1e4, -1e4], [-1e4, 1e4, 1e4, 0.0]], dtype=dtype)
    t = np.array([1, 2, 0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        xt = nf.Tensor(x.copy(), requires_grad=True)
        loss = F.cross_entropy(xt, t, label_smoothing=smoothing)
        loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(xt.grad_array).all()
    kw = dict(label_smoothing=smoothing)
    parity(lambda a, b: F.cross_entropy(a, b, **kw), _torch_ce(torch, **kw), [x, t], (0,), rtol=1e-6, atol=1e-6)


def test_cross_entropy_composed_twin():
    x, t = rand(4, 6), np.array([0, 5, 2, 2])

    def composed(x_):
        s = x_ - x_.amax(dim=-1, keepdim=True).detach()
        logp = s - s.exp().sum(dim=-1, keepdim=True).log()
        return -(logp[np.arange(4), t]).mean()

    composed_match(lambda x_: F.cross_entropy(x_, t), composed, [x])
    composed_match(lambda x_: F.nll_loss(F.log_softmax(x_, -1), t), composed, [x])


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_parity_and_gradcheck(lead, reduction):
    torch = pytest.importorskip("torch")
    v = 6
    x, t = rand(*lead, v), _targets(lead, v, seed=2)

    def tfn(x_, t_):
        if x_.dim() > 2:
            x_ = x_.movedim(-1, 1)
        return torch.nn.functional.nll_loss(x_, torch.as_tensor(t_), reduction=reduction)

    fn = lambda x_, t_: F.nll_loss(x_, t_, reduction=reduction)
    parity(fn, tfn, [x, t], (0,), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [x.astype(np.float32), t], (0,), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [x, t], (0,))


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (3, 4)), ((5,), (5,)), ((3, 1), (3, 4))])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_parity_and_gradcheck(shapes, reduction):
    torch = pytest.importorskip("torch")
    a, b = rand(*shapes[0], seed=1), rand(*shapes[1], seed=2)
    fn = lambda x, y: F.mse_loss(x, y, reduction=reduction)
    tfn = lambda x, y: torch.nn.functional.mse_loss(*torch.broadcast_tensors(x, y), reduction=reduction)
    parity(fn, tfn, [a, b], (0, 1), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [a.astype(np.float32), b.astype(np.float32)], (0, 1), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [a, b], (0, 1))
    composed_match(fn, lambda x, y: _reduce((x - y) * (x - y), reduction), [a, b], (0, 1))


def _reduce(t, reduction):
    return t.mean() if reduction == "mean" else t.sum() if reduction == "sum" else t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits_parity_and_gradcheck(reduction, weights):
    torch = pytest.importorskip("torch")
    x = rand(3, 4, seed=1, scale=3.0)
    y = np.random.default_rng(2).random((3, 4))
    w = np.random.default_rng(3).random((4,)) + 0.5 if weights in ("weight", "both") else None
    pw = np.random.default_rng(4).random((4,)) * 3 if weights in ("pos_weight", "both") else None

    def fn(x_, y_):
        return F.binary_cross_entropy_with_logits(x_, y_, weight=w, pos_weight=pw, reduction=reduction)

    def tfn(x_, y_):
        tw = None if w is None else torch.as_tensor(w, dtype=x_.dtype)
        tpw = None if pw is None else torch.as_tensor(pw, dtype=x_.dtype)
        return torch.nn.functional.binary_cross_entropy_with_logits(x_, y_, weight=tw, pos_weight=tpw, reduction=reduction)

    parity(fn, tfn, [x, y], (0, 1), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [x.astype(np.float32), y.astype(np.float32)], (0, 1), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [x, y], (0, 1))


def test_bce_with_logits_stable_and_composed():
    torch = pytest.importorskip("torch")
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=np.float32)
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        parity(F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits,
               [x, y], (0, 1), rtol=1e-6, atol=1e-6)
    xs, ys = rand(6, seed=5), np.random.default_rng(6).random(6)
    composed = lambda a, b: (-(b * a.sigmoid().log() + (1.0 - b) * (1.0 - a.sigmoid()).log())).mean()
    composed_match(F.binary_cross_entropy_with_logits, composed, [xs, ys], (0, 1), rtol=1e-9, atol=1e-12)


def test_loss_errors():
    x = nf.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"cross_entropy: targets shape \(2,\) does not match input shape \(2, 3, 5\): expected \(2, 3\)"):
        F.cross_entropy(x, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"cross_entropy: target id 5 is out of range \[0, 5\)"):
        F.cross_entropy(x, np.array([[0, 1, 5], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"cross_entropy: target id -3 is out of range \[0, 5\)"):
        F.cross_entropy(x, np.array([[0, 1, -3], [0, 1, 2]]))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        F.cross_entropy(x, np.zeros((2, 3), np.int64), reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: targets must be integer class ids"):
        F.cross_entropy(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"nll_loss: target id 9 is out of range \[0, 5\)"):
        F.nll_loss(x, np.full((2, 3), 9))
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(2, 3, 5\) and target shape \(4,\) do not broadcast"):
        F.mse_loss(x, nf.randn(4))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(3,\) must equal input shape \(2, 3, 5\)"):
        F.binary_cross_entropy_with_logits(x, nf.randn(3))
