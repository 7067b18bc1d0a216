"""nn.init (fans, gains, in place, seeded) and nn.utils.clip_grad_norm_ against torch."""
import math

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.nn import init
from nanoframe.nn.utils import clip_grad_norm_
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")


def _param(*shape, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


def test_fans_and_gains_match_torch():
    for shape in [(3, 5), (8, 4, 3), (6, 2, 3, 3)]:
        ours = init._calculate_fan_in_and_fan_out(_param(*shape))
        assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError):
        init._calculate_fan_in_and_fan_out(_param(4))
    for nl, param in [("linear", None), ("relu", None), ("tanh", None), ("leaky_relu", None),
                      ("leaky_relu", math.sqrt(5)), ("selu", None), ("sigmoid", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


@pytest.mark.parametrize(
    "fn,kwargs,expected_std",
    [
        (init.normal_, dict(mean=0.5, std=0.02), 0.02),
        (init.uniform_, dict(a=-0.3, b=0.3), 0.3 / math.sqrt(3)),
        (init.xavier_uniform_, dict(gain=2.0), 2.0 * math.sqrt(2.0 / (200 + 300))),
        (init.xavier_normal_, {}, math.sqrt(2.0 / (200 + 300))),
        (init.kaiming_uniform_, dict(a=math.sqrt(5)), 1 / math.sqrt(3 * 300)),
        (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2.0 / 200)),
    ],
)
def test_random_inits_in_place_with_expected_spread(fn, kwargs, expected_std):
    p = _param(200, 300)
    arr = p.array
    nanoframe.manual_seed(0)
    assert fn(p, **kwargs) is p
    assert p.array is arr and arr.dtype == np.float32  # in place, dtype kept
    assert abs(arr.std() - expected_std) < 0.02 * expected_std
    nanoframe.manual_seed(0)
    again = _param(200, 300)
    fn(again, **kwargs)
    np.testing.assert_array_equal(again.array, arr)  # same seed, same values


def test_uniform_bounds_and_constant_inits():
    p = _param(50, 40)
    init.kaiming_uniform_(p, a=math.sqrt(5))
    assert np.abs(p.array).max() <= 1 / math.sqrt(40)
    init.constant_(p, 0.25)
    assert (p.array == 0.25).all()
    init.ones_(p)
    assert (p.array == 1).all()
    init.zeros_(p)
    assert not p.array.any()
    assert p._node is None and p.grad_array is None  # no graph recorded


def _grads(seed):
    rng = np.random.default_rng(seed)
    shapes = [(4, 5), (5,), (3, 3, 2)]
    return [rng.standard_normal(s) * 3 for s in shapes]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    grads = _grads(0)
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads] + [nn.Parameter(np.zeros(2))]  # last: no grad
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad_array, q.grad = g.copy(), torch.tensor(g)
    held = ours[0].grad_array
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, Tensor) and total.shape == () and total.dtype == np.float64  # a 0-d tensor, as torch
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-10)
    assert ours[0].grad_array is held  # clipped in place
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad_array, q.grad.numpy(), rtol=1e-10)


def test_clip_grad_norm_float32_single_tensor_and_empty():
    g = np.random.default_rng(1).standard_normal((100, 100)).astype(np.float32)
    p = nn.Parameter(np.zeros_like(g))
    p.grad_array = g.copy()
    total = clip_grad_norm_(p, 1.0)
    assert total.dtype == np.float32
    assert float(total) == pytest.approx(float(np.linalg.norm(g.astype(np.float64))), rel=1e-5)
    assert p.grad_array.dtype == np.float32
    assert np.linalg.norm(p.grad_array) == pytest.approx(1.0, rel=1e-4)
    assert float(clip_grad_norm_([nn.Parameter(np.zeros(3))], 1.0)) == 0.0
    q = nn.Parameter(np.zeros(2))
    q.grad_array = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([q], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_on_model():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = Tensor(np.random.default_rng(2).standard_normal((16, 4)).astype(np.float32))
    (m(x) * 100.0).sum().backward()
    total = clip_grad_norm_(m.parameters(), 0.1)
    assert float(total) > 0.1
    after = math.sqrt(sum(float((p.grad_array.astype(np.float64) ** 2).sum()) for p in m.parameters()))
    assert after == pytest.approx(0.1, rel=1e-4)
