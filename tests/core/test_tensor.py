"""The Tensor API (nanoframe/tensor.py): attributes, conversions, operators, factories, dtypes."""
import numpy as np
import pytest

import nanoframe as nf


# ---- attributes and conversion -----------------------------------------------------------------
def test_attributes():
    x = nf.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert isinstance(x.array, np.ndarray)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == np.float32
    assert x.requires_grad and x.grad_array is None and x.is_leaf
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6 and x.dim() == 2 and len(x) == 2


def test_numpy_item_array():
    x = nf.tensor([[1.5, 2.0]])
    assert isinstance(x.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.numpy(), [[1.5, 2.0]])
    np.testing.assert_array_equal(np.asarray(x), [[1.5, 2.0]])
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert nf.tensor(3.25).item() == 3.25 and isinstance(nf.tensor(3.25).item(), float)
    assert nf.tensor([[7]]).item() == 7 and isinstance(nf.tensor([7]).item(), int)
    assert float(nf.tensor(2.5)) == 2.5 and int(nf.tensor(4)) == 4
    assert x.tolist() == [[1.5, 2.0]]
    with pytest.raises(ValueError, match=r"item\(\).*shape \(1, 2\)"):
        x.item()


def test_repr_mentions_dtype_and_grad():
    r = repr(nf.tensor([1.0, 2.0], dtype=nf.float64, requires_grad=True))
    assert r.startswith("tensor(") and "float64" in r and "requires_grad=True" in r


def test_tensor_copies_numpy_input():
    a = np.ones(3, dtype=np.float32)
    x = nf.tensor(a)
    a[0] = 5.0
    assert x.array[0] == 1.0


def test_detach_shares_data_without_grad():
    x = nf.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.array, [2.0, 4.0])
    z = x.detach()
    assert z.array is x.array or np.shares_memory(z.array, x.array)
    (z * 3).sum()  # no graph: nothing to backward
    with pytest.raises(RuntimeError, match="does not require grad"):
        (z * 3).sum().backward()


def test_bool_and_len_of_scalar():
    assert bool(nf.tensor(1.0)) and not bool(nf.tensor(0.0))
    with pytest.raises(RuntimeError, match=r"ambiguous"):
        bool(nf.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="0-d"):
        len(nf.tensor(1.0))


def test_iteration_yields_rows():
    rows = list(nf.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]


# ---- dtypes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("data,dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2]], np.int64), ([True, False], np.bool_),
    (np.float64(1.5), np.float64), (np.zeros(3, np.float64), np.float64), (np.zeros(2, np.float16), np.float16),
    (np.zeros(2, np.int32), np.int32),
])
def test_default_dtypes(data, dtype):
    assert nf.tensor(data).dtype == dtype


def test_explicit_dtype():
    assert nf.tensor([1, 2], dtype=nf.float64).dtype == np.float64
    assert nf.tensor([1.0], dtype=np.float16).dtype == np.float16
    assert nf.Tensor(np.zeros(2), dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("op", [
    lambda x: x + 1, lambda x: 1 + x, lambda x: x - 2.5, lambda x: 2.5 - x, lambda x: x * 0.5, lambda x: 0.5 * x,
    lambda x: x / 3, lambda x: 3.0 / x, lambda x: x ** 2, lambda x: x ** 0.5, lambda x: 2 ** x, lambda x: -x,
    lambda x: x.maximum(0.0), lambda x: x.clip(0.0, 1.0), lambda x: x.masked_fill(np.array([True, False]), 1e30),
    lambda x: x + np.float64(1.0), lambda x: x * np.int64(2), lambda x: x + [1, 2], lambda x: x * [0.5, 1.5],
    lambda x: x.sum(), lambda x: x.mean(), lambda x: x.var(), lambda x: x.max(), lambda x: x.exp().log(),
])
def test_python_scalars_do_not_upcast_float32(op):
    x = nf.tensor([1.0, 2.0], requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad_array.dtype == np.float32


def test_float64_is_kept():
    x = nf.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * 0.5 + 1).exp().sum()
    assert x.dtype == y.dtype == np.float64
    y.backward()
    assert x.grad_array.dtype == np.float64


def test_mixed_float_dtypes_give_each_leaf_its_own_dtype_grad():
    a = nf.tensor([1.0, 2.0], requires_grad=True)
    b = nf.tensor(np.array([3.0, 4.0]), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad_array.dtype == np.float32 and b.grad_array.dtype == np.float64
    np.testing.assert_allclose(a.grad_array, [3.0, 4.0])
    np.testing.assert_allclose(b.grad_array, [1.0, 2.0])


def test_int_tensor_arithmetic():
    x = nf.tensor([1, 2, 3])
    assert (x + 1).dtype == np.int64 and (x + 1).tolist() == [2, 3, 4]
    assert (x * 0.5).dtype == np.float32 and (x * 0.5).tolist() == [0.5, 1.0, 1.5]


def test_to_float_double_long_clone():
    x = nf.tensor([1.5, 2.5], requires_grad=True)
    d = x.double()
    assert d.dtype == np.float64 and d.requires_grad
    (d * 2).sum().backward()
    assert x.grad_array.dtype == np.float32 and x.grad_array.tolist() == [2.0, 2.0]
    assert x.long().dtype == np.int64 and not x.long().requires_grad and x.long().tolist() == [1, 2]
    assert x.to(nf.float32) is x and x.float() is x
    c = x.clone()
    c.array[0] = 9.0
    assert x.array[0] == 1.5


# ---- operators ---------------------------------------------------------------------------------
def test_arithmetic_operators():
    a, b = nf.tensor([1.0, 2.0, 4.0]), nf.tensor([2.0, 2.0, 0.5])
    np.testing.assert_allclose((a + b).array, [3.0, 4.0, 4.5])
    np.testing.assert_allclose((a - b).array, [-1.0, 0.0, 3.5])
    np.testing.assert_allclose((a * b).array, [2.0, 4.0, 2.0])
    np.testing.assert_allclose((a / b).array, [0.5, 1.0, 8.0])
    np.testing.assert_allclose((a ** b).array, [1.0, 4.0, 2.0])
    np.testing.assert_allclose((-a).array, [-1.0, -2.0, -4.0])
    np.testing.assert_allclose((a @ b).array, 8.0)
    np.testing.assert_allclose((np.array([1.0, 1.0, 1.0], np.float32) * a).array, [1.0, 2.0, 4.0])
    assert isinstance(np.ones(3, np.float32) + a, nf.Tensor)


@pytest.mark.parametrize("op,expected", [
    (lambda a, b: a == b, [False, True, False]), (lambda a, b: a != b, [True, False, True]),
    (lambda a, b: a < b, [True, False, False]), (lambda a, b: a <= b, [True, True, False]),
    (lambda a, b: a > b, [False, False, True]), (lambda a, b: a >= b, [False, True, True]),
    (lambda a, b: a > 1.5, [False, True, True]), (lambda a, b: a == 3.0, [False, False, True]),
])
def test_comparisons_are_not_differentiable(op, expected):
    a = nf.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = nf.tensor([2.0, 2.0, 2.0], requires_grad=True)
    c = op(a, b)
    assert c.dtype == np.bool_ and not c.requires_grad and c.is_leaf
    assert c.tolist() == expected


def test_getitem_operator_and_backward():
    x = nf.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    y = x[1:, ::2]
    assert y.tolist() == [[4.0, 6.0], [8.0, 10.0]]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad_array, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])


def test_tensors_hash_by_identity():
    a, b = nf.tensor([1.0]), nf.tensor([1.0])
    assert len({a, b}) == 2 and {a: 1}[a] == 1


# ---- factories ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,args,shape,value", [
    (nf.zeros, (2, 3), (2, 3), 0.0), (nf.zeros, ((2, 3),), (2, 3), 0.0), (nf.ones, (4,), (4,), 1.0),
    (nf.ones, ([2, 2],), (2, 2), 1.0), (nf.zeros, (), (), 0.0),
])
def test_zeros_ones(fn, args, shape, value):
    t = fn(*args)
    assert t.shape == shape and t.dtype == np.float32 and not t.requires_grad
    assert np.all(t.array == value)


def test_factory_dtype_and_requires_grad():
    t = nf.zeros(2, dtype=nf.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad
    assert nf.ones(3, dtype=nf.int64).dtype == np.int64
    assert nf.full((2, 2), 7.0).tolist() == [[7.0, 7.0], [7.0, 7.0]]


def test_like_factories():
    x = nf.tensor(np.ones((2, 3)), requires_grad=True)
    z, o = nf.zeros_like(x), nf.ones_like(x)
    assert z.shape == o.shape == (2, 3) and z.dtype == o.dtype == np.float64
    assert not z.requires_grad and np.all(z.array == 0) and np.all(o.array == 1)
    assert nf.zeros_like(x, dtype=nf.float32).dtype == np.float32
    assert nf.ones_like(x, requires_grad=True).requires_grad


def test_arange():
    assert nf.arange(5).tolist() == [0, 1, 2, 3, 4] and nf.arange(5).dtype == np.int64
    assert nf.arange(2, 8, 3).tolist() == [2, 5]
    f = nf.arange(0, 1, 0.25)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert nf.arange(3, dtype=nf.float64).dtype == np.float64


def test_randn_rand_shapes_and_stats():
    nf.manual_seed(0)
    r = nf.randn(200, 50)
    assert r.shape == (200, 50) and r.dtype == np.float32
    assert abs(float(r.array.mean())) < 0.05 and abs(float(r.array.std()) - 1) < 0.05
    u = nf.rand(1000)
    assert u.dtype == np.float32 and u.array.min() >= 0 and u.array.max() < 1 and abs(u.array.mean() - 0.5) < 0.05
    assert nf.randn((2, 3), dtype=nf.float64).dtype == np.float64
    assert nf.randn(3, requires_grad=True).requires_grad


def test_manual_seed_reproducible():
    nf.manual_seed(123)
    a, u = nf.randn(3, 4), nf.rand(5)
    nf.manual_seed(123)
    b, v = nf.randn(3, 4), nf.rand(5)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(u.array, v.array)
    c = nf.randn(3, 4)  # the generator advances
    assert not np.array_equal(a.array, c.array)
    nf.manual_seed(124)
    assert not np.array_equal(nf.randn(3, 4).array, a.array)


def test_rng_state_roundtrip():
    nf.manual_seed(5)
    state = nf.get_rng_state()
    a = nf.randn(4)
    nf.set_rng_state(state)
    np.testing.assert_array_equal(nf.randn(4).array, a.array)


def test_data_and_grad_are_tensors_sharing_memory():
    """`.data` and `.grad` are Tensors over the same memory as `array` / `grad_array`, as in torch."""
    p = nf.tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = p.data
    assert isinstance(d, nf.Tensor) and not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.array, p.array)
    (p * p).sum().backward()
    g = p.grad
    assert isinstance(g, nf.Tensor) and g is p.grad          # one wrapper while the array is the same
    assert g.array is p.grad_array
    np.testing.assert_array_equal(g.array, [2.0, 4.0, 6.0])
    (p * 1.0).sum().backward()                              # accumulates in place: the held g sees it
    np.testing.assert_array_equal(g.array, [3.0, 5.0, 7.0])
    p.data = np.zeros(5, np.float32)                        # rebinding .data may change the shape
    assert p.shape == (5,)
    p.grad = None
    assert p.grad is None and p.grad_array is None
    with pytest.raises(RuntimeError, match="assigned grad has shape"):
        p.grad = nf.zeros(3)
    p.grad = nf.ones(5)
    np.testing.assert_array_equal(p.grad_array, np.ones(5))
