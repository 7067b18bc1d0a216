"""nanoframe/ops/shape.py: forward against NumPy and float64 gradcheck over a grid of shapes."""
import numpy as np
import pytest

import nanoframe as nf

from .cases import SHAPE

from tests.helpers.ops import run_spec


@pytest.mark.parametrize("spec", SHAPE)
def test_gradcheck(spec):
    run_spec(spec)


def test_getitem_repeated_indices_scatter_add():
    x = nf.tensor(np.arange(4.0), requires_grad=True)
    x[[0, 0, 3, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad_array, [3.0, 0.0, 0.0, 1.0])
    y = nf.tensor(np.zeros((2, 3)), requires_grad=True)
    (y[np.array([1, 1]), np.array([2, 2])] * nf.tensor([2.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(y.grad_array, [[0, 0, 0], [0, 0, 7.0]])


def test_getitem_boolean_mask_gradient():
    x = nf.tensor(np.array([-1.0, 2.0, -3.0, 4.0]), requires_grad=True)
    x[x > 0].sum().backward()
    np.testing.assert_array_equal(x.grad_array, [0.0, 1.0, 0.0, 1.0])


def test_split_chunk_sizes():
    x = nf.tensor(np.arange(10.0))
    assert [p.shape for p in x.split(4)] == [(4,), (4,), (2,)]
    assert [p.shape for p in x.split([3, 7])] == [(3,), (7,)]
    assert [p.shape for p in x.chunk(3)] == [(4,), (4,), (2,)]
    assert [p.shape for p in nf.tensor(np.ones((2, 6))).chunk(4, dim=-1)] == [(2, 2), (2, 2), (2, 2)]
    assert [p.tolist() for p in x.split(5)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_cat_stack_gradients_route_to_each_input():
    a = nf.tensor(np.zeros((2, 2)), requires_grad=True)
    b = nf.tensor(np.zeros((1, 2)), requires_grad=True)
    w = nf.tensor(np.arange(6.0).reshape(3, 2))
    (nf.cat([a, b]) * w).sum().backward()
    np.testing.assert_array_equal(a.grad_array, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(b.grad_array, [[4, 5]])
    c = nf.tensor(np.zeros(3), requires_grad=True)
    d = nf.tensor(np.zeros(3), requires_grad=True)
    (nf.stack([c, d], dim=1) * nf.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(c.grad_array, [0, 2, 4])
    np.testing.assert_array_equal(d.grad_array, [1, 3, 5])


def test_shape_results():
    x = nf.ones(2, 3, 4)
    assert x.reshape(-1).shape == (24,) and x.view(4, 6).shape == (4, 6)
    assert x.transpose(0, -1).shape == (4, 3, 2) and x.permute(1, 2, 0).shape == (3, 4, 2)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).squeeze(-1).shape == (2, 3, 4)
    assert x.flatten(1).shape == (2, 12) and x[..., None, 0].shape == (2, 3, 1)
    assert nf.ones(1, 3).expand(2, -1).shape == (2, 3)
