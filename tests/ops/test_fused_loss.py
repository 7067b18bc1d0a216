"""cross_entropy, nll_loss (torch's class-dim-1 layout), mse/l1/smooth_l1, binary_cross_entropy(_with_logits)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nanoframe as nf
import nanoframe.functional as F

from tests.helpers.fused import composed_match, gradcheck, parity, rand

REDUCTIONS = ["mean", "sum", "none"]
# input shapes in torch's layout: (C,), (N, C), (N, C, d1), (N, C, d1, d2)
LAYOUTS = [(7,), (5, 7), (2, 7, 3), (2, 7, 2, 2)]


def _target_shape(shape):
    return () if len(shape) == 1 else shape[:1] + shape[2:]


def _targets(shape, seed=0, ignore=True, ignore_index=-100):
    c = shape[0] if len(shape) == 1 else shape[1]
    t = np.asarray(np.random.default_rng(seed).integers(0, c, _target_shape(shape)))
    if ignore and t.size > 1:
        t.reshape(-1)[::3] = ignore_index      # every third target ignored
    return t


def _probs(shape, seed=3):
    p = np.random.default_rng(seed).random(shape) + 0.05
    return p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)


def _weight(shape, seed=4):
    c = shape[0] if len(shape) == 1 else shape[1]
    return np.random.default_rng(seed).random(c) + 0.25


def _torch_ce(torch, weight=None, **kw):
    def fn(x, t):
        w = None if weight is None else torch.as_tensor(weight, dtype=x.dtype)
        return torch.nn.functional.cross_entropy(x, torch.as_tensor(t), weight=w, **kw)
    return fn


@pytest.mark.parametrize("shape", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_ids_parity_and_gradcheck(shape, reduction, smoothing, weighted):
    torch = pytest.importorskip("torch")
    x, t = rand(*shape, scale=3.0), _targets(shape)
    w = _weight(shape) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    fn = lambda x_, t_: F.cross_entropy(x_, t_, weight=w, **kw)
    parity(fn, _torch_ce(torch, w, **kw), [x, t], (0,), rtol=1e-10, atol=1e-12)
    parity(fn, _torch_ce(torch, w, **kw), [x.astype(np.float32), t], (0,), rtol=1e-4, atol=1e-6)
    gradcheck(fn, [x, t], (0,))


@pytest.mark.parametrize("shape", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets_parity_and_gradcheck(shape, reduction, smoothing, weighted):
    torch = pytest.importorskip("torch")
    x, q = rand(*shape, scale=2.0, seed=1), _probs(shape)
    w = _weight(shape) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    fn = lambda x_, q_: F.cross_entropy(x_, q_, weight=w, **kw)
    parity(fn, _torch_ce(torch, w, **kw), [x, q], (0, 1), rtol=1e-10, atol=1e-12)   # gradient to q too
    parity(fn, _torch_ce(torch, w, **kw), [x.astype(np.float32), q.astype(np.float32)], (0, 1), rtol=1e-4, atol=1e-6)
    gradcheck(fn, [x, q], (0, 1))


def test_cross_entropy_custom_ignore_index_and_all_ignored():
    torch = pytest.importorskip("torch")
    x, t = rand(6, 5), np.array([0, 3, 3, 1, 3, 4])
    for w in (None, _weight((6, 5))):
        kw = dict(ignore_index=3)
        parity(lambda a, b: F.cross_entropy(a, b, weight=w, **kw), _torch_ce(torch, w, **kw), [x, t], (0,),
               rtol=1e-12, atol=1e-13)
    xt = nf.Tensor(x, requires_grad=True)
    with np.errstate(all="raise"):
        loss = F.cross_entropy(xt, np.full(6, -100))
        loss.backward()
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.full((6,), -100))
    assert np.isnan(loss.item()) and torch.isnan(ref)      # mean over zero targets: nan, like torch
    np.testing.assert_array_equal(xt.grad_array, 0.0)      # and zero gradients, like torch
    s = F.cross_entropy(nf.Tensor(x), np.full(6, -100), reduction="sum")
    assert s.item() == 0.0


def test_cross_entropy_class_dim_is_one_not_last():
    # (N, C, d) with C != d: the class dim is 1, as torch; the old class-last reading would differ
    torch = pytest.importorskip("torch")
    x, t = rand(2, 3, 4, seed=7), np.array([[0, 2, 1, 1], [2, 2, 0, 1]])
    ours = F.cross_entropy(nf.Tensor(x), t, reduction="none").array
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none")
    assert ours.shape == (2, 4)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)


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
    composed_match(lambda x_: F.nll_loss(F.log_softmax(x_, dim=1), t), composed, [x])


@pytest.mark.parametrize("shape", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_parity_and_gradcheck(shape, reduction, weighted):
    torch = pytest.importorskip("torch")
    x, t = rand(*shape), _targets(shape, seed=2)
    w = _weight(shape) if weighted else None

    def tfn(x_, t_):
        tw = None if w is None else torch.as_tensor(w, dtype=x_.dtype)
        return torch.nn.functional.nll_loss(x_, torch.as_tensor(t_), weight=tw, reduction=reduction)

    fn = lambda x_, t_: F.nll_loss(x_, t_, weight=w, reduction=reduction)
    parity(fn, tfn, [x, t], (0,), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [x.astype(np.float32), t], (0,), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [x, t], (0,))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), extra=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 2**16), smoothing=st.sampled_from([0.0, 0.3]),
       reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_any_layout_matches_torch(n, c, extra, seed, smoothing, reduction):
    torch = pytest.importorskip("torch")
    shape = (n, c, *extra)
    x, t = rand(*shape, seed=seed), _targets(shape, seed=seed)
    ours = F.cross_entropy(nf.Tensor(x), t, label_smoothing=smoothing, reduction=reduction).array
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t),
                                               label_smoothing=smoothing, reduction=reduction).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=3), tshape=st.lists(st.integers(0, 3), max_size=3),
       tkind=st.sampled_from(["int", "float", "big"]))
def test_cross_entropy_malformed_targets_raise_one_value_error(shape, tshape, tkind):
    x = np.zeros(shape)
    rng = np.random.default_rng(0)
    if tkind == "int":
        t = rng.integers(-1, 3, tshape)
    elif tkind == "big":
        t = np.full(tshape, 10**6)
    else:
        t = rng.random(tshape)
    try:
        F.cross_entropy(nf.Tensor(x), t)
    except ValueError as e:
        assert str(e).startswith("cross_entropy:") and "\n" not in str(e)


def test_legacy_size_average_and_reduce_map_to_reduction():
    x, t = rand(4, 3), np.array([0, 1, 2, 1])
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        s = F.cross_entropy(nf.Tensor(x), t, size_average=False)
    assert s.item() == pytest.approx(F.cross_entropy(nf.Tensor(x), t, reduction="sum").item())
    with pytest.warns(UserWarning):
        n = F.nll_loss(nf.Tensor(x), t, reduce=False)
    assert n.shape == (4,)


ELEMENTWISE_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (3, 4)), ((5,), (5,)), ((3, 1), (3, 4))]


def _reduce(t, reduction):
    return t.mean() if reduction == "mean" else t.sum() if reduction == "sum" else t


@pytest.mark.filterwarnings("ignore:.*different to the input size")
@pytest.mark.parametrize("shapes", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "smooth_l1_loss beta=0.3", "smooth_l1_loss beta=0"])
def test_pair_losses_parity_and_gradcheck(shapes, reduction, name):
    torch = pytest.importorskip("torch")
    a, b = rand(*shapes[0], seed=1), rand(*shapes[1], seed=2)
    fname, _, beta = name.partition(" beta=")
    kw = dict(reduction=reduction) if not beta else dict(reduction=reduction, beta=float(beta))
    fn = lambda x, y: getattr(F, fname)(x, y, **kw)
    tfn = lambda x, y: getattr(torch.nn.functional, fname)(*torch.broadcast_tensors(x, y), **kw)
    parity(fn, tfn, [a, b], (0, 1), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [a.astype(np.float32), b.astype(np.float32)], (0, 1), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [a, b], (0, 1))
    if fname == "mse_loss":
        composed_match(fn, lambda x, y: _reduce((x - y) * (x - y), reduction), [a, b], (0, 1))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_mse_and_l1_match_torch(name, reduction):
    torch = pytest.importorskip("torch")
    a, b, w = rand(3, 4, seed=1), rand(3, 4, seed=2), np.random.default_rng(3).random((3, 4))
    fn = lambda x, y, w_: getattr(F, name)(x, y, reduction=reduction, weight=w_)
    tfn = lambda x, y, w_: getattr(torch.nn.functional, name)(x, y, reduction=reduction, weight=w_)
    parity(fn, tfn, [a, b, w], (0, 1, 2), rtol=1e-12, atol=1e-13)
    gradcheck(fn, [a, b, w], (0, 1, 2))


def test_pair_loss_warns_on_broadcast_like_torch():
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(nf.Tensor(rand(3, 1)), rand(3, 4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_parity_and_gradcheck(reduction, weighted):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.random((3, 4)) * 0.9 + 0.05
    y = rng.random((3, 4))
    w = rng.random(4) + 0.5 if weighted else None

    def fn(x_, y_):
        return F.binary_cross_entropy(x_, y_, weight=w, reduction=reduction)

    def tfn(x_, y_):
        tw = None if w is None else torch.as_tensor(w, dtype=x_.dtype)
        return torch.nn.functional.binary_cross_entropy(x_, y_, weight=tw, reduction=reduction)

    parity(fn, tfn, [x, y], (0, 1), rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [x.astype(np.float32), y.astype(np.float32)], (0, 1), rtol=1e-5, atol=1e-6)
    gradcheck(fn, [x, y], (0, 1))


def test_binary_cross_entropy_at_0_and_1_is_clamped_like_torch():
    torch = pytest.importorskip("torch")
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    with np.errstate(all="raise"):
        parity(F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [x, y], (0,), rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should be between 0 and 1, got 1.5"):
        F.binary_cross_entropy(nf.Tensor(np.array([0.5, 1.5])), np.array([1.0, 0.0]))


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
    x = nf.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: targets shape \(2,\) does not match input shape \(2, 5, 3\): expected \(2, 3\)"):
        F.cross_entropy(x, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"cross_entropy: target id 5 is out of range \[0, 5\)"):
        F.cross_entropy(x, np.array([[0, 1, 5], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"cross_entropy: target id -3 is out of range \[0, 5\)"):
        F.cross_entropy(x, np.array([[0, 1, -3], [0, 1, 2]]))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        F.cross_entropy(x, np.zeros((2, 3), np.int64), reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: targets must be integer class ids of shape"):
        F.cross_entropy(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(5,\)"):
        F.cross_entropy(x, np.zeros((2, 3), np.int64), weight=np.ones(3))
    with pytest.raises(ValueError, match="cross_entropy: ignore_index=0 is not supported for class-probability targets"):
        F.cross_entropy(x, np.zeros((2, 5, 3)), ignore_index=0)
    with pytest.raises(ValueError, match=r"cross_entropy: input must be \(C,\), \(N, C\)"):
        F.cross_entropy(nf.Tensor(np.float32(1.0)), np.array(0))
    with pytest.raises(ValueError, match=r"nll_loss: target id 9 is out of range \[0, 5\)"):
        F.nll_loss(x, np.full((2, 3), 9))
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(2, 5, 3\) and target shape \(4,\) do not broadcast"):
        F.mse_loss(x, nf.randn(4))
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must be >= 0"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(3,\) must equal input shape \(2, 5, 3\)"):
        F.binary_cross_entropy_with_logits(x, nf.randn(3))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: weight shape \(4,\) does not broadcast"):
        F.binary_cross_entropy(nf.rand(2, 3), nf.rand(2, 3), weight=np.ones(4))
