"""The backward engine (autograd.run_backward, Tensor.backward) and grad mode."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import nanoframe as nf
from nanoframe.autograd import Function, unbroadcast


def leaf(values, dtype=nf.float64):
    return nf.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---- order and accumulation ----------------------------------------------------------------
def test_long_chain_is_iterative():
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.backward()
    np.testing.assert_allclose(x.grad_array, 1.0001 ** 10_000, rtol=1e-9)


def test_long_chain_of_distinct_ops():
    x = leaf([0.5, -0.25])
    y = x
    for i in range(3_000):
        y = (y.tanh() if i % 3 == 0 else y * 0.999 if i % 3 == 1 else y + 0.001)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad_array)) and x.grad_array.shape == (2,)


def test_same_tensor_twice():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad_array, [2.0, 4.0, 6.0])
    z = leaf([1.0, -2.0])
    (z + z + z).sum().backward()
    np.testing.assert_allclose(z.grad_array, [3.0, 3.0])


def test_diamond():
    x = leaf([1.0, 2.0])
    a = x * 3          # da/dx = 3
    b = x.exp()        # db/dx = e^x
    c = a * b          # d = a*b: dd/dx = 3 e^x + 3x e^x
    c.sum().backward()
    np.testing.assert_allclose(x.grad_array, 3 * np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])))


def test_shared_intermediate_used_many_times():
    x = leaf([2.0])
    h = x ** 2                      # used by three consumers
    y = h * h + h.exp() + h.sum()   # d/dh = 2h + e^h + 1
    y.sum().backward()
    h_val = 4.0
    np.testing.assert_allclose(x.grad_array, (2 * h_val + np.exp(h_val) + 1) * 2 * 2.0)


def test_deep_diamond_lattice():
    """x -> (a, b) -> (a+b, a*b) -> ... gradients must be complete before a node runs."""
    x = leaf(0.3)
    a, b = x * 1.0, x * 1.0
    for _ in range(20):
        a, b = a + b, a * 0.5
    a.backward()
    # a_n, b_n are linear in x: compute slope by finite difference in float64
    def f(v):
        a, b = v, v
        for _ in range(20):
            a, b = a + b, a * 0.5
        return a
    np.testing.assert_allclose(x.grad_array, (f(1.0) - f(0.0)), rtol=1e-12)


def test_backward_with_gradient_argument():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    y.backward(np.array([1.0, 0.5, -1.0]))
    np.testing.assert_allclose(x.grad_array, [2.0, 1.0, -2.0])
    x.grad_array = None
    (x * 3).backward(nf.tensor([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(x.grad_array, [3.0, 3.0, 6.0])


def test_backward_on_leaf():
    x = leaf(2.0)
    x.backward()
    assert x.grad_array == 1.0


def test_scalar_shaped_one_element_output():
    x = leaf([[2.0]])
    (x * 3).backward()  # one element: implicit gradient of ones
    np.testing.assert_allclose(x.grad_array, [[3.0]])


def test_leaf_grad_accumulates_across_calls():
    x = leaf([1.0, 2.0])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad_array, [5.0, 5.0])
    x.grad_array = None
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad_array, [4.0, 4.0])


def test_leaf_grads_do_not_alias():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad_array += 100.0
    np.testing.assert_allclose(b.grad_array, [1.0, 1.0])
    assert not np.shares_memory(a.grad_array, b.grad_array)


@pytest.mark.parametrize("make", [
    lambda a, b: (a + b).sum(),
    lambda a, b: (a - b).sum(),
    lambda a, b: nf.cat([a, b]).sum(),
    lambda a, b: nf.stack([a, b]).sum(),
    lambda a, b: (a.reshape(2, 1) + b.reshape(2, 1)).sum(),
    lambda a, b: (a.clone() + b.clone()).sum(),
])
def test_leaf_grads_own_writable_memory(make):
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    make(a, b).backward()
    for g in (a.grad_array, b.grad_array):
        assert g.flags.writeable and g.flags.owndata
    a.grad_array *= 0.0
    assert np.all(b.grad_array != 0.0)


def test_leaf_grad_does_not_alias_user_gradient():
    x = leaf([1.0, 2.0])
    g = np.array([1.0, 1.0])
    (x + 0.0).backward(g)
    x.grad_array *= 5
    np.testing.assert_array_equal(g, [1.0, 1.0])


def test_grad_shapes_match_inputs_under_broadcast():
    a, b, c = leaf(np.ones((3, 1))), leaf(np.ones(4)), leaf(2.0)
    (a * b + c).sum().backward()
    assert a.grad_array.shape == (3, 1) and b.grad_array.shape == (4,) and c.grad_array.shape == ()
    np.testing.assert_allclose(a.grad_array, 4.0)
    np.testing.assert_allclose(b.grad_array, 3.0)
    np.testing.assert_allclose(c.grad_array, 12.0)


def test_inputs_without_requires_grad_get_no_grad():
    x, w = leaf([1.0, 2.0]), nf.tensor([3.0, 4.0], dtype=nf.float64)
    (x * w).sum().backward()
    assert w.grad_array is None
    np.testing.assert_allclose(x.grad_array, [3.0, 4.0])


def test_retain_grad_on_intermediate():
    x = leaf([1.0, 2.0])
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad_array, [6.0, 12.0])
    np.testing.assert_allclose(x.grad_array, [18.0, 36.0])


def test_intermediates_keep_no_grad_by_default():
    x = leaf([1.0])
    h = x * 2
    (h * 2).sum().backward()
    assert h.grad_array is None and not h.is_leaf


# ---- graph lifetime --------------------------------------------------------------------------
def test_second_backward_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_second_backward_through_shared_subgraph_raises():
    x = leaf([1.0, 2.0])
    h = x.exp()
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 3).sum().backward()


def test_retain_graph_allows_second_backward_and_doubles_grads():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad_array.copy()
    y.backward()
    np.testing.assert_allclose(x.grad_array, 2 * first)
    np.testing.assert_allclose(first, np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])))
    with pytest.raises(RuntimeError):
        y.backward()


def test_graph_nodes_are_freed():
    x = leaf([1.0, 2.0])
    h = x.exp()
    y = (h * x).sum()
    node_y, node_h = y._node, h._node
    assert node_y.parents and node_h.parents
    y.backward()
    assert node_y.parents == () and node_h.parents == () and node_y.ctx is None and node_h.ctx is None


def test_retained_graph_keeps_nodes():
    x = leaf([1.0, 2.0])
    h = x.exp()
    y = (h * x).sum()
    y.backward(retain_graph=True)
    assert y._node.parents and h._node.parents and h._node.ctx.saved_tensors


def test_freed_intermediate_is_garbage_collected():
    x = leaf(np.ones(10))
    h = x * 2
    ref = weakref.ref(h.array)
    y = (h * h).sum()  # Mul saves both operands' arrays
    del h
    gc.collect()
    assert ref() is not None  # the graph holds the saved array until backward
    y.backward()
    gc.collect()
    assert ref() is None


def test_backward_releases_saved_arrays_memory():
    x = nf.tensor(np.ones(250_000), requires_grad=True)  # 2 MB per float64 array
    tracemalloc.start()
    try:
        y = ((x * 2).exp() * 3).tanh().sum()  # saves exp's and tanh's 2 MB outputs for backward
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        y.backward()
        del y
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the graph held 2 big arrays; afterwards only x.grad_array (2 MB) is new
    assert before > 4_000_000
    assert after < before - 1_500_000, (before, after)


# ---- grad mode -------------------------------------------------------------------------------
def test_no_grad_context():
    x = leaf([1.0, 2.0])
    with nf.no_grad():
        y = x * 2 + x.exp()
        assert not nf.is_grad_enabled()
    assert nf.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    np.testing.assert_allclose(y.array, [2.0, 4.0] + np.exp([1.0, 2.0]))
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_no_grad_decorator():
    @nf.no_grad()
    def f(t):
        return (t * 3).sum()

    x = leaf([1.0])
    y = f(x)
    assert not y.requires_grad and y._node is None and y.item() == 3.0
    assert nf.is_grad_enabled()
    assert f.__name__ == "f"


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(ZeroDivisionError):
        with nf.no_grad():
            1 / 0
    assert nf.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf([1.0])
    with nf.no_grad():
        with nf.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad


def test_nested_no_grad():
    with nf.no_grad():
        with nf.no_grad():
            pass
        assert not nf.is_grad_enabled()
    assert nf.is_grad_enabled()


def test_ops_on_non_grad_tensors_record_nothing():
    a, b = nf.tensor([1.0]), nf.tensor([2.0])
    c = a * b
    assert not c.requires_grad and c._node is None


def test_requires_grad_flag_propagates():
    a, b = nf.tensor([1.0]), nf.tensor([2.0], requires_grad=True)
    assert (a * b).requires_grad and (b.sum()).requires_grad and not (a + 1).requires_grad


# ---- gradient checks inside the engine -------------------------------------------------------
class _BadShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, gy):
        return gy.sum(keepdims=True)  # wrong: shape (1,) for an input of shape (3,)


class _TooMany(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


def test_engine_checks_gradient_shape():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"_BadShape.*\(1,\).*\(3,\)"):
        _BadShape.apply(x).sum().backward()


def test_engine_checks_gradient_count():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"_TooMany.*2 gradients for 1 input"):
        _TooMany.apply(x).sum().backward()


def test_constant_arguments_pass_through_apply():
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, gy):
            return gy * ctx.k, None

    x = leaf([1.0, 2.0])
    y = Scale.apply(x, 5.0)
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad_array, [5.0, 5.0])


@pytest.mark.parametrize("grad,shape,expected", [
    (np.ones((2, 3)), (2, 3), np.ones((2, 3))),
    (np.ones((2, 3)), (3,), np.full(3, 2.0)),
    (np.ones((2, 3)), (1, 3), np.full((1, 3), 2.0)),
    (np.ones((2, 3)), (2, 1), np.full((2, 1), 3.0)),
    (np.ones((2, 3)), (), np.array(6.0)),
    (np.ones((4, 2, 3)), (2, 1), np.full((2, 1), 12.0)),
    (np.ones((4, 1, 3)), (1, 1, 3), np.full((1, 1, 3), 4.0)),
])
def test_unbroadcast(grad, shape, expected):
    out = unbroadcast(grad, shape)
    assert out.shape == shape
    np.testing.assert_array_equal(out, expected)


def test_retained_grad_does_not_alias_leaf_grad():
    a = leaf([1.0, 2.0])
    h = a.clone()  # Clone's backward passes gy straight through to the leaf
    h.retain_grad()
    (h * nf.tensor([3.0, 4.0], dtype=nf.float64)).sum().backward()
    a.grad_array *= 0.0
    np.testing.assert_array_equal(h.grad_array, [3.0, 4.0])
    assert h.grad_array.flags.writeable
