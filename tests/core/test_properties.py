"""Hypothesis property tests: random broadcastable shapes, random dims, shape-op round trips."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nanoframe as nf
from nanoframe.autograd import unbroadcast

SETTINGS = settings(max_examples=30, deadline=None)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


def _arrays(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, size=s) for s in shapes]


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: a.maximum(b) if isinstance(a, nf.Tensor) else __import__("torch").maximum(a, b),
}


@SETTINGS
@given(shapes=pairs, op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_broadcast_binary_grads_match_torch(shapes, op, seed):
    torch = pytest.importorskip("torch")
    a, b = _arrays(shapes.input_shapes, seed)
    fn = BINARY[op]
    na, nb = nf.tensor(a, requires_grad=True), nf.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y, ty = fn(na, nb), fn(ta, tb)
    assert y.shape == tuple(ty.shape) == shapes.result_shape
    np.testing.assert_allclose(y.array, ty.detach().numpy(), rtol=1e-5)
    w = np.random.default_rng(seed).standard_normal(y.shape)
    (y * nf.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    assert na.grad_array.shape == a.shape and nb.grad_array.shape == b.shape
    np.testing.assert_allclose(na.grad_array, ta.grad.numpy(), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(nb.grad_array, tb.grad.numpy(), rtol=1e-5, atol=1e-10)


@SETTINGS
@given(shapes=pairs)
def test_add_grad_counts_broadcast_copies(shapes):
    """d(sum(a + b))/da is how many times each element of a was broadcast: size(out) / size(a)."""
    sa, sb = shapes.input_shapes
    a = nf.tensor(np.zeros(sa), requires_grad=True)
    b = nf.tensor(np.zeros(sb), requires_grad=True)
    (a + b).sum().backward()
    out_size = int(np.prod(shapes.result_shape))
    np.testing.assert_array_equal(a.grad_array, np.full(sa, out_size / max(int(np.prod(sa)), 1)))
    np.testing.assert_array_equal(b.grad_array, np.full(sb, out_size / max(int(np.prod(sb)), 1)))


@SETTINGS
@given(shapes=pairs)
def test_unbroadcast_matches_sum_of_broadcast(shapes):
    sa, _ = shapes.input_shapes
    g = np.random.default_rng(0).standard_normal(shapes.result_shape)
    out = unbroadcast(g, sa)
    assert out.shape == sa
    # <unbroadcast(g), v> == <g, broadcast(v)> for every v: the adjoint of broadcasting
    v = np.random.default_rng(1).standard_normal(sa)
    np.testing.assert_allclose(np.sum(out * v), np.sum(g * np.broadcast_to(v, g.shape)), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(shape=shapes, data=st.data())
def test_permute_round_trip(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    x = nf.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    y = x.permute(*perm) if perm else x.permute()
    assert y.shape == tuple(shape[p] for p in perm)
    back = y.permute(*np.argsort(perm).tolist()) if perm else y
    np.testing.assert_array_equal(back.array, x.array)
    w = np.random.default_rng(1).standard_normal(shape)
    (back * nf.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad_array, w)


@SETTINGS
@given(shape=shapes, data=st.data())
def test_reshape_round_trip(shape, data):
    n = int(np.prod(shape))
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    d = data.draw(st.sampled_from(divisors))
    x = nf.tensor(np.arange(n, dtype=np.float64).reshape(shape), requires_grad=True)
    y = x.reshape(d, -1)
    assert y.shape == (d, n // d)
    np.testing.assert_array_equal(y.array.ravel(), np.arange(n))
    back = y.reshape(shape)
    w = np.random.default_rng(2).standard_normal(shape)
    (back * nf.tensor(w)).sum().backward()
    assert back.shape == tuple(shape)
    np.testing.assert_array_equal(x.grad_array, w)


@SETTINGS
@given(shape=shapes, data=st.data(), keepdim=st.booleans(),
       op=st.sampled_from(["sum", "mean", "amax", "var"]))
def test_reductions_over_random_dims(shape, data, keepdim, op):
    ndim = len(shape)
    dims = data.draw(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda d: d % ndim, max_size=ndim)) if ndim else []
    dim = tuple(dims) if dims else None
    a = np.random.default_rng(3).standard_normal(shape)
    x = nf.tensor(a, requires_grad=True)
    y = getattr(x, op)(dim=dim, keepdim=keepdim) if op != "var" else x.var(dim=dim, keepdim=keepdim, correction=0)
    npf = {"sum": np.sum, "mean": np.mean, "amax": np.max, "var": np.var}[op]
    expected = npf(a, axis=dim, keepdims=keepdim)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.array, expected, rtol=1e-12, atol=1e-12)
    y.sum().backward()
    assert x.grad_array.shape == a.shape
    if op == "sum":
        np.testing.assert_array_equal(x.grad_array, np.ones(shape))
    if op == "mean":
        np.testing.assert_allclose(x.grad_array.sum(), np.size(expected), rtol=1e-12)


@SETTINGS
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), data=st.data())
def test_getitem_integer_arrays_scatter_add(shape, data):
    idx = data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=8))
    x = nf.tensor(np.random.default_rng(4).standard_normal(shape), requires_grad=True)
    x[np.array(idx)].sum().backward()
    counts = np.bincount(idx, minlength=shape[0]).astype(float)
    np.testing.assert_array_equal(x.grad_array, np.repeat(counts[:, None], shape[1], axis=1))
