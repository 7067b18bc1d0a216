"""nanoframe/ops/reduce.py: forward against NumPy and float64 gradcheck over a grid of shapes."""
import numpy as np
import pytest

import nanoframe as nf

from .cases import REDUCE

from tests.helpers.ops import run_spec


@pytest.mark.parametrize("spec", REDUCE)
def test_gradcheck(spec):
    run_spec(spec)


def test_max_dim_returns_values_and_indices():
    x = nf.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]]), requires_grad=True)
    out = x.max(dim=1)
    values, indices = out
    assert out.values is values and out.indices is indices
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert indices.dtype == np.int64 and not indices.requires_grad and values.requires_grad
    values.sum().backward()  # the gradient goes to the returned index only (first of a tie)
    np.testing.assert_array_equal(x.grad_array, [[0, 1, 0], [1, 0, 0]])
    v, i = nf.min(x, -1, keepdim=True)
    assert v.shape == i.shape == (2, 1) and i.tolist() == [[0], [1]]


def test_max_without_dim_and_tuple_dim_return_tensors():
    x = nf.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert isinstance(x.max(), nf.Tensor) and x.max().item() == 23.0
    assert isinstance(x.max(dim=(0, 1)), nf.Tensor) and x.max(dim=(0, 1)).tolist() == [20.0, 21.0, 22.0, 23.0]
    assert x.min(dim=(2,), keepdim=True).shape == (2, 3, 1)


def test_argmax_argmin():
    x = nf.tensor([[1.0, 9.0, 3.0], [4.0, -2.0, 8.0]])
    assert nf.argmax(x).item() == 1 and x.argmin().item() == 4
    assert x.argmax(dim=1).tolist() == [1, 2] and x.argmin(dim=0, keepdim=True).tolist() == [[0, 1, 0]]


def test_var_std_values_and_float32():
    x = nf.tensor([1.0, 2.0, 3.0, 4.0])
    assert x.var().item() == pytest.approx(5 / 3) and x.var(correction=0).item() == pytest.approx(1.25)
    assert x.std().item() == pytest.approx(np.sqrt(5 / 3), rel=1e-6)
    assert x.var().dtype == np.float32 and x.mean().dtype == np.float32


def test_reduce_gradient_values():
    x = nf.tensor(np.ones((2, 3)), requires_grad=True)
    x.mean(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad_array, np.full((2, 3), 1 / 3))
