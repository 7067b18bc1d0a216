"""nanoframe/ops/elementwise.py: forward against NumPy and float64 gradcheck over a grid of shapes."""
import numpy as np
import pytest

import nanoframe as nf

from .cases import ELEMENTWISE

from tests.helpers.ops import run_spec


@pytest.mark.parametrize("spec", ELEMENTWISE)
def test_gradcheck(spec):
    run_spec(spec)


def test_relu_abs_clip_gradient_conventions():
    x = nf.tensor(np.array([-1.0, 0.0, 0.5, 2.0]), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad_array, [0, 0, 1, 1])
    x.grad_array = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad_array, [-1, 0, 1, 1])
    x.grad_array = None
    x.clip(0.0, 0.5).sum().backward()  # the bounds themselves pass the gradient, as in torch
    np.testing.assert_array_equal(x.grad_array, [0, 1, 1, 0])


def test_where_with_scalar_branch_and_constant_branches():
    x = nf.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = nf.where(x > 0, x, 0.0)
    assert y.tolist() == [1.0, 0.0, 3.0]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad_array, [1, 0, 1])
    c = nf.where(np.array([True, False]), 1.0, 2.0)
    assert isinstance(c, nf.Tensor) and c.tolist() == [1.0, 2.0] and not c.requires_grad


def test_sigmoid_is_stable_at_extremes():
    y = nf.tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    assert y.tolist() == [0.0, 0.5, 1.0] and np.all(np.isfinite(y.array))


def test_pow_tensor_exponent_gradient_value():
    a = nf.tensor(np.array([2.0]), requires_grad=True)
    b = nf.tensor(np.array([3.0]), requires_grad=True)
    (a ** b).sum().backward()
    np.testing.assert_allclose(a.grad_array, [12.0])
    np.testing.assert_allclose(b.grad_array, [8.0 * np.log(2.0)])
