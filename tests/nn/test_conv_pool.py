"""Conv1d/Conv2d and the pooling layers against torch.nn: copied weights, values and gradients,
reprs, parameter names, padding modes and init distributions."""
import math

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")


def _copy_from_torch(ours, theirs):
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def _check(ours, theirs, x, rtol):
    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    out_n, out_t = ours(xn), theirs(xt)
    np.testing.assert_allclose(out_n.array, out_t.detach().numpy(), rtol=rtol, atol=rtol)
    gy = np.random.default_rng(5).standard_normal(out_n.shape).astype(x.dtype)
    out_n.backward(gy)
    out_t.backward(torch.tensor(gy))
    np.testing.assert_allclose(xn.grad_array, xt.grad.numpy(), rtol=rtol, atol=rtol)
    named = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad_array, named[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


CONVS = [
    ("Conv2d", (3, 4, 3), {}),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=2, padding=1, dilation=(1, 2), groups=2, bias=False)),
    ("Conv2d", (3, 4, 3), dict(padding="same", padding_mode="reflect")),
    ("Conv2d", (3, 4, 4), dict(padding="same", padding_mode="circular")),
    ("Conv2d", (3, 2, 3), dict(padding=(2, 1), padding_mode="replicate", stride=(1, 2))),
    ("Conv2d", (3, 4, 2), dict(padding="valid")),
    ("Conv1d", (3, 4, 3), dict(padding=1)),
    ("Conv1d", (4, 4, 5), dict(padding="same", padding_mode="reflect", groups=4)),
    ("Conv1d", (2, 3, 2), dict(stride=2, dilation=2)),
]


@pytest.mark.parametrize("name,args,kw", CONVS)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_conv_layer_matches_torch(name, args, kw, dtype, rtol):
    theirs = getattr(torch.nn, name)(*args, **kw, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    ours = getattr(nn, name)(*args, **kw, dtype=dtype)
    _copy_from_torch(ours, theirs)
    assert repr(ours) == repr(theirs)
    shape = (2, args[0], 7, 8) if name == "Conv2d" else (2, args[0], 9)
    _check(ours, theirs, np.random.default_rng(0).standard_normal(shape).astype(dtype), rtol)
    assert ours(Tensor(np.zeros(shape[1:], dtype))).shape == tuple(theirs(torch.zeros(shape[1:], dtype=theirs.weight.dtype)).shape)


def test_conv_init_matches_torch_distribution():
    nanoframe.manual_seed(0)
    ours = nn.Conv2d(16, 64, 3, groups=2)
    bound = 1 / math.sqrt(8 * 9)                    # fan_in = in / groups * kh * kw
    for p in (ours.weight.array, ours.bias.array):
        assert np.abs(p).max() <= bound
    w = ours.weight.array
    assert abs(w.mean()) < 0.05 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    t = torch.nn.Conv2d(16, 64, 3, groups=2).weight.detach().numpy()
    assert abs(t.std() - w.std()) < 0.03 * bound and w.dtype == np.float32


def test_conv_layer_errors():
    with pytest.raises(ValueError, match="Conv2d: in_channels=3 and out_channels=4 must be divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv1d: padding='same' is not supported for strided convolutions"):
        nn.Conv1d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"conv2d: input shape \(2, 5, 8, 8\) has 5 channels, but weight shape \(4, 3, 3, 3\)"):
        nn.Conv2d(3, 4, 3)(nanoframe.randn(2, 5, 8, 8))


POOLS = [
    ("MaxPool2d", (3,), dict(stride=2, padding=1)),
    ("MaxPool2d", ((2, 3),), dict(stride=1, padding=1, dilation=2, ceil_mode=True)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("AvgPool2d", (2,), dict(divisor_override=3)),
    ("AdaptiveAvgPool2d", ((3, None),), {}),
    ("AdaptiveAvgPool2d", (1,), {}),
    ("MaxPool1d", (3,), dict(stride=2, ceil_mode=True)),
    ("AvgPool1d", (3,), dict(stride=1, padding=1)),
]


@pytest.mark.parametrize("name,args,kw", POOLS)
def test_pool_layer_matches_torch(name, args, kw):
    ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(ours) == repr(theirs)
    shape = (2, 3, 7, 8) if "2d" in name else (2, 3, 9)
    _check(ours, theirs, np.random.default_rng(1).standard_normal(shape), 1e-12)


def test_max_pool_layer_return_indices():
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    out, idx = nn.MaxPool2d(2, return_indices=True)(Tensor(x))
    tout, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(idx.array, tidx.numpy())
    np.testing.assert_array_equal(out.array, tout.numpy())


def test_a_small_cnn_trains_like_torch():
    # conv -> relu -> pool -> conv -> adaptive pool -> flatten -> linear, three SGD steps, same weights
    def build(m):
        return m.Sequential(m.Conv2d(1, 4, 3, padding=1), m.ReLU(), m.MaxPool2d(2), m.Conv2d(4, 8, 3),
                            m.AdaptiveAvgPool2d(1), m.Flatten(), m.Linear(8, 3))

    theirs = build(torch.nn).double()
    ours = build(nn).double()
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((5, 1, 8, 8)), rng.integers(0, 3, 5)
    opt, topt = nanoframe.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    for _ in range(3):
        loss = nn.CrossEntropyLoss()(ours(Tensor(x)), y)
        tloss = torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
        opt.zero_grad()
        topt.zero_grad()
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
