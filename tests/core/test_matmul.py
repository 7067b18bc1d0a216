"""nanoframe/ops/matmul.py: forward against NumPy and float64 gradcheck over a grid of shapes."""
import numpy as np
import pytest

import nanoframe as nf

from .cases import MATMUL

from tests.helpers.ops import run_spec


@pytest.mark.parametrize("spec", MATMUL)
def test_gradcheck(spec):
    run_spec(spec)


@pytest.mark.parametrize("sa,sb,out", [
    ((3, 4), (4, 5), (3, 5)), ((4,), (4, 5), (5,)), ((3, 4), (4,), (3,)), ((4,), (4,), ()),
    ((2, 1, 3, 4), (5, 4, 2), (2, 5, 3, 2)), ((4,), (2, 4, 3), (2, 3)), ((2, 3, 4), (4,), (2, 3)),
])
def test_matmul_shapes_and_grad_shapes(sa, sb, out):
    a, b = nf.ones(*sa, requires_grad=True), nf.ones(*sb, requires_grad=True)
    y = a @ b
    assert y.shape == out and y.dtype == np.float32
    np.testing.assert_allclose(y.array, np.full(out, sa[-1], dtype=np.float32))
    y.sum().backward()
    assert a.grad_array.shape == sa and b.grad_array.shape == sb


def test_matmul_with_numpy_operand():
    w = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    x = nf.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    y = w @ x  # ndarray @ Tensor defers to Tensor.__rmatmul__
    assert isinstance(y, nf.Tensor) and y.tolist() == [[3.0, 3.0], [12.0, 12.0]]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad_array, np.repeat(w.sum(0)[:, None], 2, axis=1))
