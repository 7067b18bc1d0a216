"""gelu (erf and tanh), silu, softmax, log_softmax, relu/tanh/sigmoid re-exports, erf, dropout."""
import math

import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F
from nanoframe.ops.activation import erf

from tests.helpers.fused import composed_match, gradcheck, parity, rand

SHAPES = [(), (7,), (3, 5), (2, 3, 4)]


# ---- erf -----------------------------------------------------------------------------------------
def test_erf_float64_matches_math_erf_to_a_few_ulp():
    x = np.concatenate([np.linspace(-7, 7, 20001), np.geomspace(1e-300, 1e-3, 50), [0.0, -0.0, 0.84375, 1.25, 6.0]])
    ref = np.array([math.erf(v) for v in x])
    got = erf(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=4e-16, atol=1e-300)
    assert erf(np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert np.isnan(erf(np.array([np.nan]))[0])


def test_erf_float32_is_float32_and_accurate():
    x = np.linspace(-6, 6, 10001).astype(np.float32)
    got = erf(x)
    assert got.dtype == np.float32
    ref = np.array([math.erf(float(v)) for v in x])
    np.testing.assert_allclose(got, ref, rtol=0, atol=5e-7)


# ---- gelu / silu ---------------------------------------------------------------------------------
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_parity_and_gradcheck(approximate, shape):
    torch = pytest.importorskip("torch")
    x = rand(*shape, scale=3.0)
    fn = lambda t: F.gelu(t, approximate=approximate)
    tfn = lambda t: torch.nn.functional.gelu(t, approximate=approximate)
    parity(fn, tfn, [x], rtol=1e-12, atol=1e-14)
    parity(fn, tfn, [x.astype(np.float32)], rtol=1e-4, atol=1e-6)
    gradcheck(fn, [x])


@pytest.mark.parametrize("shape", SHAPES)
def test_silu_parity_and_gradcheck(shape):
    torch = pytest.importorskip("torch")
    x = rand(*shape, scale=3.0)
    parity(F.silu, torch.nn.functional.silu, [x], rtol=1e-12, atol=1e-14)
    parity(F.silu, torch.nn.functional.silu, [x.astype(np.float32)], rtol=1e-4, atol=1e-6)
    gradcheck(F.silu, [x])


def test_gelu_silu_composed_twins():
    x = rand(4, 6, scale=2.0)
    c = math.sqrt(2 / math.pi)
    composed_tanh = lambda t: 0.5 * t * (1.0 + (c * (t + 0.044715 * t * t * t)).tanh())
    composed_match(lambda t: F.gelu(t, approximate="tanh"), composed_tanh, [x])
    composed_match(F.silu, lambda t: t * t.sigmoid(), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stable_for_huge_inputs(dtype):
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for fn in (F.gelu, lambda t: F.gelu(t, approximate="tanh"), F.silu, lambda t: F.softmax(t, -1),
                   lambda t: F.log_softmax(t, -1)):
            t = nf.Tensor(x.copy(), requires_grad=True)
            y = fn(t)
            y.backward(gradient=np.ones_like(x))
            assert y.dtype == dtype and t.grad_array.dtype == dtype
            assert np.isfinite(y.array).all() and np.isfinite(t.grad_array).all()
    np.testing.assert_allclose(F.gelu(nf.Tensor(x)).array, np.where(x > 0, x, 0), atol=1e-6)
    np.testing.assert_allclose(F.silu(nf.Tensor(x)).array, np.where(x > 0, x, 0), atol=1e-6)


# ---- softmax / log_softmax -----------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((7,), -1), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -1)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_parity_and_gradcheck(shape, dim, name):
    torch = pytest.importorskip("torch")
    fn = lambda t: getattr(F, name)(t, dim=dim)
    tfn = lambda t: getattr(torch.nn.functional, name)(t, dim=dim)
    x = rand(*shape, scale=3.0)
    parity(fn, tfn, [x], rtol=1e-12, atol=1e-14)
    parity(fn, tfn, [x.astype(np.float32)], rtol=1e-4, atol=1e-6)
    gradcheck(fn, [x])


def test_softmax_composed_twins():
    x = rand(3, 4, 5)

    def composed_softmax(t):
        e = (t - t.amax(dim=-1, keepdim=True).detach()).exp()
        return e / e.sum(dim=-1, keepdim=True)

    def composed_log_softmax(t):
        s = t - t.amax(dim=-1, keepdim=True).detach()
        return s - s.exp().sum(dim=-1, keepdim=True).log()

    composed_match(lambda t: F.softmax(t, dim=-1), composed_softmax, [x])
    composed_match(lambda t: F.log_softmax(t, dim=-1), composed_log_softmax, [x])


def test_softmax_of_pm_1e4_logits():
    torch = pytest.importorskip("torch")
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    parity(lambda t: F.softmax(t, -1), lambda t: torch.softmax(t, -1), [x], rtol=1e-6, atol=1e-7)
    parity(lambda t: F.log_softmax(t, -1), lambda t: torch.log_softmax(t, -1), [x], rtol=1e-6, atol=1e-3)


def test_primitives_reexported():
    from nanoframe.ops import elementwise

    assert F.relu is elementwise.relu and F.tanh is elementwise.tanh and F.sigmoid is elementwise.sigmoid


def test_activation_errors():
    with pytest.raises(ValueError, match="gelu: approximate"):
        F.gelu(nf.randn(3), approximate="fast")
    with pytest.raises(ValueError, match=r"softmax: dim 2 is out of range for input of shape \(3, 4\)"):
        F.softmax(nf.randn(3, 4), dim=2)
    with pytest.raises(ValueError, match="silu: input must be a float"):
        F.silu(nf.tensor([1, 2, 3]))


# ---- dropout -------------------------------------------------------------------------------------
def test_dropout_statistics_scale_and_gradient():
    nf.manual_seed(0)
    x = nf.ones(400, 500, requires_grad=True)
    y = F.dropout(x, p=0.3)
    kept = y.array != 0
    assert y.dtype == np.float32
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(y.array[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.array.mean() - 1.0) < 0.01
    y.backward(gradient=np.full(y.shape, 2.0, np.float32))
    np.testing.assert_allclose(x.grad_array, np.where(kept, 2 / 0.7, 0.0), rtol=1e-6)


def test_dropout_determinism_under_manual_seed():
    x = nf.randn(64, 64)
    nf.manual_seed(123)
    a = F.dropout(x, 0.5).array
    nf.manual_seed(123)
    b = F.dropout(x, 0.5).array
    c = F.dropout(x, 0.5).array
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dropout_identity_cases_and_errors():
    x = nf.randn(5, 5, requires_grad=True)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).array, np.zeros((5, 5), np.float32))
    d = F.dropout(nf.randn(4, dtype=np.float64), 0.5)
    assert d.dtype == np.float64
    with pytest.raises(ValueError, match=r"dropout: probability p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
