"""layer_norm and rms_norm: torch parity, gradcheck, composed twins, errors."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F

from tests.helpers.fused import composed_match, gradcheck, parity, rand

CASES = [((6,), (6,)), ((3, 5), (5,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4))]


@pytest.mark.parametrize("shape,ns", CASES)
@pytest.mark.parametrize("affine", ["wb", "w", "none"])
def test_layer_norm_parity_and_gradcheck(shape, ns, affine):
    torch = pytest.importorskip("torch")
    x, w, b = rand(*shape, seed=1, scale=2.0) + 0.5, rand(*ns, seed=2), rand(*ns, seed=3)
    args, idx = [x], [0]
    if "w" in affine:
        args.append(w)
        idx.append(1)
    if "b" in affine:
        args.append(b)
        idx.append(2)
    fn = lambda *a: F.layer_norm(a[0], ns, *a[1:], eps=1e-5)
    tfn = lambda *a: torch.nn.functional.layer_norm(a[0], ns, *a[1:], eps=1e-5)
    parity(fn, tfn, args, tuple(idx), rtol=1e-10, atol=1e-12)
    parity(fn, tfn, [a.astype(np.float32) for a in args], tuple(idx), rtol=1e-4, atol=1e-5)
    gradcheck(fn, args, tuple(idx))


@pytest.mark.parametrize("shape,ns", CASES)
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_parity_and_gradcheck(shape, ns, eps, affine):
    torch = pytest.importorskip("torch")
    x, w = rand(*shape, seed=1, scale=2.0), rand(*ns, seed=2)
    args, idx = ([x, w], (0, 1)) if affine else ([x], (0,))
    fn = lambda *a: F.rms_norm(a[0], ns, *a[1:], eps=eps)
    tfn = lambda *a: torch.nn.functional.rms_norm(a[0], ns, *a[1:], eps=eps)
    parity(fn, tfn, args, idx, rtol=1e-10, atol=1e-12)
    parity(fn, tfn, [a.astype(np.float32) for a in args], idx, rtol=1e-4, atol=1e-5)
    gradcheck(fn, args, idx)


def test_norm_composed_twins():
    x, w, b = rand(2, 3, 8, seed=1), rand(8, seed=2), rand(8, seed=3)

    def composed_ln(x_, w_, b_):
        mean = x_.mean(dim=-1, keepdim=True)
        var = ((x_ - mean) * (x_ - mean)).mean(dim=-1, keepdim=True)
        return (x_ - mean) / (var + 1e-5).sqrt() * w_ + b_

    def composed_rms(x_, w_):
        return x_ / ((x_ * x_).mean(dim=-1, keepdim=True) + 1e-6).sqrt() * w_

    composed_match(lambda *a: F.layer_norm(a[0], (8,), *a[1:]), composed_ln, [x, w, b], (0, 1, 2))
    composed_match(lambda *a: F.rms_norm(a[0], 8, *a[1:], eps=1e-6), composed_rms, [x, w], (0, 1))


def test_layer_norm_float32_stays_float32_and_handles_big_offsets():
    x = nf.Tensor((np.random.default_rng(0).standard_normal((4, 16)) + 1e4).astype(np.float32), requires_grad=True)
    w, b = nf.ones(16, requires_grad=True), nf.zeros(16, requires_grad=True)
    y = F.layer_norm(x, (16,), w, b)
    y.backward(gradient=np.ones((4, 16), np.float32))
    for a in (y.array, x.grad_array, w.grad_array, b.grad_array):
        assert a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(y.array.mean(-1), 0, atol=1e-2)


def test_norm_errors():
    x = nf.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"layer_norm: input shape \(2, 3, 4\) does not end with normalized_shape \(3,\)"):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match=r"layer_norm: weight shape \(5,\) does not match normalized_shape \(4,\)"):
        F.layer_norm(x, 4, nf.randn(5))
    with pytest.raises(ValueError, match=r"layer_norm: bias shape \(3,\) does not match normalized_shape \(4,\)"):
        F.layer_norm(x, 4, nf.randn(4), nf.randn(3))
    with pytest.raises(ValueError, match=r"rms_norm: weight shape \(3, 4\) does not match normalized_shape \(4,\)"):
        F.rms_norm(x, (4,), nf.randn(3, 4))
