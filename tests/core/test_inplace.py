"""In-place ops and item assignment with torch's semantics (nanoframe/ops/inplace.py): history
rewriting, views, version counters, torch's refusals. Each scenario runs in nanoframe and torch
(same code, `lib` is the module) and must give the same values, gradients, or kind of error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nanoframe as nf

try:
    import torch
except ImportError:  # the parity scenarios skip; the nanoframe-only tests still run
    torch = None


def _grads(*ts):
    return [None if t.grad is None else np.asarray(t.grad.tolist()) for t in ts]


def _run(lib, scenario):
    try:
        return "ok", scenario(lib)
    except Exception as e:  # noqa: BLE001  (the scenario's error is the result being compared)
        return type(e).__name__, str(e)


def _leaf(lib, values):
    return lib.tensor(values, requires_grad=True)


# ---- scenarios: each returns values to compare (or raises) ------------------------------------------
def setitem_on_non_leaf(lib):
    x, z = _leaf(lib, [1.0, 2.0, 3.0]), _leaf(lib, 5.0)
    y = x * 2
    y[0] = z
    y.sum().backward()
    return y.tolist(), _grads(x, z)


def setitem_into_zeros_records_value(lib):
    x, z = lib.zeros(3), _leaf(lib, 2.0)
    x[1] = z
    (x * x).sum().backward()
    return x.requires_grad, x.is_leaf, _grads(z)


def setitem_mask_and_int_tensor_index(lib):
    x, v = _leaf(lib, [1.0, 2.0, 3.0, 4.0]), _leaf(lib, [10.0, 20.0])
    y = x * 1
    y[y > 2.5] = v
    y[lib.tensor([0])] = 7.0
    (y * y).sum().backward()
    return y.tolist(), _grads(x, v)


def setitem_broadcast_value_grad(lib):
    x, v = _leaf(lib, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), _leaf(lib, [[1.0, 2.0]])
    y = x * 1
    y[:, 1:] = v
    (y * y).sum().backward()
    return _grads(x, v)


def add_on_leaf_refused(lib):
    x = _leaf(lib, [1.0, 2.0])
    x.add_(1)


def view_of_leaf_refused(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0])
    x[0:2].mul_(3)


def no_grad_leaf_update(lib):
    p = _leaf(lib, [1.0, 2.0, 3.0])
    (p * p).sum().backward()
    with lib.no_grad():
        p -= 0.1 * p.grad
        p.add_(p.grad, alpha=-0.1)
    return p.tolist(), p.is_leaf, p.requires_grad, p.grad_fn is None


def modified_saved_output(lib):
    y = _leaf(lib, [1.0, 2.0]).exp()
    y.add_(1)
    y.sum().backward()


def modified_input_not_saved(lib):
    x = _leaf(lib, [1.0, 2.0])
    a = x * 1
    y = a + 1  # add saves nothing
    a.add_(1)
    y.sum().backward()
    return _grads(x)


def modified_constant_saved_by_mul(lib):
    x, c = _leaf(lib, [1.0, 2.0]), lib.tensor([3.0, 4.0])
    y = (x * 1) * c  # c is saved for x's gradient
    c.add_(1)
    y.sum().backward()


def no_grad_change_of_unsaved(lib):
    x = _leaf(lib, [1.0, 2.0])
    y = x + 1
    with lib.no_grad():
        x.add_(1)
    y.sum().backward()
    return _grads(x)


def inplace_on_view_of_non_leaf(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0])
    y = x * 2
    y[0:2].mul_(3)
    y.sum().backward()
    return y.tolist(), _grads(x)


def overlapping_sibling_view_sees_change(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0])
    y = x * 2
    a, b = y[0:2], y[1:3]
    a.mul_(3)
    b.sum().backward()
    return b.tolist(), _grads(x)


def view_then_base_inplace(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0])
    y = x * 2
    v = y[0]
    y.mul_(3)
    v.backward()
    return v.item(), _grads(x)


def augmented_setitem_on_column(lib):
    x = _leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
    y = x.clone()
    y[:, 0] *= 2
    (y * y).sum().backward()
    return y.tolist(), _grads(x)


def inplace_on_transposed_view(lib):
    x = _leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
    y = x * 1
    y.t()[0] = 0.0
    (y * y).sum().backward()
    return y.tolist(), _grads(x)


def inplace_on_reshaped_view(lib):
    x = _leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
    y = x * 1
    y.reshape(4)[1:3] = 10.0
    (y * y).sum().backward()
    return y.tolist(), _grads(x)


def view_of_view_inplace(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0])
    y = x * 2
    y[:2][1:].mul_(5)
    y.sum().backward()
    return _grads(x)


def data_change_not_tracked(lib):
    x = _leaf(lib, [1.0, 2.0])
    y = x.exp()
    y.data.add_(1)  # torch: .data changes are not tracked (the gradient uses the changed values)
    y.sum().backward()
    return _grads(x)


def detach_change_tracked(lib):
    x = _leaf(lib, [1.0, 2.0])
    y = x.exp()
    y.detach().add_(1)  # shares the version counter
    y.sum().backward()


def retain_graph_then_inplace_on_saved(lib):
    x = _leaf(lib, [1.0, 2.0])
    y = x * 1
    z = y ** 2
    z.sum().backward(retain_graph=True)
    y.add_(1)
    z.sum().backward()


def retain_graph_then_inplace_unsaved(lib):
    x = _leaf(lib, [1.0, 2.0])
    z = (x ** 2) * 1
    z.sum().backward(retain_graph=True)
    z.add_(1)  # z was saved by nothing
    return _grads(x)


def zero_and_fill_on_non_leaf(lib):
    x, v = _leaf(lib, [1.0, 2.0, 3.0]), _leaf(lib, 4.0)
    y, w = x * 2, x * 3
    y.zero_()
    w.fill_(v)
    (y + w * w).sum().backward()
    return _grads(x, v)


def copy_from_grad_tensor(lib):
    x, s = lib.zeros(2, 3), _leaf(lib, [1.0, 2.0, 3.0])
    x.copy_(s)
    (x * x).sum().backward()
    return x.tolist(), _grads(s)


def retain_grad_follows_new_value(lib):
    x = _leaf(lib, [1.0, 2.0])
    h = x * 2
    h.retain_grad()
    h.add_(1)
    (h * h).sum().backward()
    return _grads(x, h)


def int_tensor_float_inplace(lib):
    lib.tensor([1, 2]).add_(0.5)


def inplace_broadcast_to_larger(lib):
    lib.ones(3).add_(lib.ones(2, 3))


def inplace_on_expanded(lib):
    lib.ones(3).expand(2, 3).add_(1)


def chained_inplace_methods(lib):
    x = _leaf(lib, [0.5, -1.5, 2.0])
    y = x * 1
    y.mul_(2).add_(1, alpha=3).clamp_(min=0.5).neg_().abs_().log1p_().sqrt_()
    y.sum().backward()
    return y.tolist(), _grads(x)


def masked_fill_inplace_non_leaf(lib):
    x = _leaf(lib, [1.0, -2.0, 3.0])
    y = x * 1
    y.masked_fill_(y < 0, 0.0)
    (y * y).sum().backward()
    return _grads(x)


def scatter_inplace_non_leaf(lib):
    x, src = _leaf(lib, [[1.0, 2.0], [3.0, 4.0]]), _leaf(lib, [[10.0, 20.0]])
    y = x * 1
    y.scatter_(0, lib.tensor([[1, 0]]), src)
    (y * y).sum().backward()
    return y.tolist(), _grads(x, src)


def negative_and_ellipsis_setitem(lib):
    x = lib.arange(12).reshape(3, 4)
    x[-1, -1] = 100
    x[0] = lib.tensor([7, 8, 9, 10])
    x[..., 1] = -1
    x[None, 1, :2] = 5
    x[lib.tensor([True, False, True]), 2] = 0
    x[lib.tensor(1), 3] = 42
    return x.tolist()


def float_value_into_int_tensor_truncates(lib):
    x = lib.zeros(3, dtype=lib.int64)
    x[0] = 2.7
    x[1:] = lib.tensor([-1.9, 5.5])
    return x.tolist()


def version_counter_shared_by_views(lib):
    x = lib.zeros(4)
    v = x[1:3]
    d = x.detach()
    before = (x._version, v._version)
    v.add_(1)
    d.mul_(2)
    x.data.add_(1)  # not counted
    return before, x._version, v._version, d._version, x.tolist()


def chunks_then_inplace(lib):
    x = _leaf(lib, [1.0, 2.0, 3.0, 4.0])
    y = x * 1
    for i, part in enumerate(y.split(2)):
        part.mul_(i + 2)
    (y * y).sum().backward()
    return _grads(x)


SCENARIOS = [setitem_on_non_leaf, setitem_into_zeros_records_value, setitem_mask_and_int_tensor_index,
             setitem_broadcast_value_grad, add_on_leaf_refused, view_of_leaf_refused, no_grad_leaf_update,
             modified_saved_output, modified_input_not_saved, modified_constant_saved_by_mul,
             no_grad_change_of_unsaved, inplace_on_view_of_non_leaf, overlapping_sibling_view_sees_change,
             view_then_base_inplace, augmented_setitem_on_column, inplace_on_transposed_view,
             inplace_on_reshaped_view, view_of_view_inplace, data_change_not_tracked, detach_change_tracked,
             retain_graph_then_inplace_on_saved, retain_graph_then_inplace_unsaved, zero_and_fill_on_non_leaf,
             copy_from_grad_tensor, retain_grad_follows_new_value, int_tensor_float_inplace,
             inplace_broadcast_to_larger, inplace_on_expanded, chained_inplace_methods,
             masked_fill_inplace_non_leaf, scatter_inplace_non_leaf, negative_and_ellipsis_setitem,
             float_value_into_int_tensor_truncates, version_counter_shared_by_views]
# chunks_then_inplace is nanoframe-only: torch refuses in-place ops on split()'s outputs


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a is None or b is None or isinstance(a, (bool, str)):
        return a == b
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-6)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_inplace_matches_torch(scenario):
    (kind_nf, out_nf), (kind_t, out_t) = _run(nf, scenario), _run(torch, scenario)
    assert kind_nf == kind_t, (out_nf, out_t)
    if kind_t == "ok":
        assert _same(out_nf, out_t), (out_nf, out_t)
    else:  # the same message, up to how the dtypes are named
        assert out_nf.split()[:2] == out_t.split()[:2], (out_nf, out_t)


def test_error_messages_name_the_problem():
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        add_on_leaf_refused(nf)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[float32 tensor of shape \(2,\)\] "
                                           r"saved by Exp is at version 1; expected version 0"):
        modified_saved_output(nf)
    with pytest.raises(RuntimeError, match=r"result type nanoframe.float32 can't be cast.*nanoframe.int64"):
        int_tensor_float_inplace(nf)


def test_inplace_after_an_op_that_saved_its_output_is_exact():
    """torch refuses `y.exp_(); y.add_(1)` before backward (exp_ saved y); nanoframe's exp_ keeps
    its own copy of the result, so the gradient is right and there is nothing to refuse."""
    x = nf.tensor([0.5, 1.0], dtype=nf.float64, requires_grad=True)
    y = x * 1
    y.exp_().add_(1)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad_array, 2 * (np.exp([0.5, 1.0]) + 1) * np.exp([0.5, 1.0]))


def test_chunks_then_inplace_gradients():
    """nanoframe allows in-place ops on split()'s views (torch refuses): the history is right."""
    (g,) = chunks_then_inplace(nf)
    np.testing.assert_allclose(g, 2 * np.array([1.0, 2.0, 3.0, 4.0]) * np.array([2, 2, 3, 3]) ** 2)


def test_classic_sgd_loop_trains():
    """The tutorial loop `p -= lr * p.grad` under no_grad updates p in place and learns."""
    nf.manual_seed(0)
    x = nf.randn(64, 3)
    w_true = nf.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w_true
    w = nf.zeros(3, 1, requires_grad=True)
    first = None
    for _ in range(200):
        loss = ((x @ w - y) ** 2).mean()
        first = loss.item() if first is None else first
        loss.backward()
        with nf.no_grad():
            w -= 0.1 * w.grad
            w.grad.zero_()
    assert loss.item() < 1e-6 * first
    np.testing.assert_allclose(w.array, w_true.array, atol=1e-3)
    assert w.is_leaf and w.requires_grad


def test_inplace_returns_self_and_bumps_version():
    x = nf.zeros(3)
    assert x.add_(1) is x and x.mul_(2) is x and x.zero_() is x and x.fill_(3) is x
    assert x._version == 4
    y = x
    y += 1
    assert y is x and x.tolist() == [4.0, 4.0, 4.0] and x._version == 5


def test_inplace_grad_through_every_method():
    """Each in-place method on a non-leaf gives the gradient of its out-of-place twin."""
    pairs = [("exp_", "exp"), ("log_", "log"), ("sqrt_", "sqrt"), ("abs_", "abs"), ("tanh_", "tanh"),
             ("sigmoid_", "sigmoid"), ("relu_", "relu"), ("sin_", "sin"), ("cos_", "cos"), ("log1p_", "log1p"),
             ("expm1_", "expm1"), ("square_", "square"), ("rsqrt_", "rsqrt"), ("reciprocal_", "reciprocal"),
             ("neg_", "neg"), ("floor_", "floor"), ("sign_", "sign")]
    for inplace_name, name in pairs:
        a = nf.tensor([0.5, 1.5, 2.5], dtype=nf.float64, requires_grad=True)
        b = nf.tensor([0.5, 1.5, 2.5], dtype=nf.float64, requires_grad=True)
        ya = a * 1
        getattr(ya, inplace_name)()
        yb = getattr(b * 1, name)()
        np.testing.assert_allclose(ya.array, yb.array, err_msg=name)
        (ya * ya).sum().backward()
        (yb * yb).sum().backward()
        np.testing.assert_allclose(a.grad_array, b.grad_array, err_msg=name)


def test_normal_uniform_fill_under_no_grad():
    p = nf.zeros(1000, requires_grad=True)
    with nf.no_grad():
        p.normal_(2.0, 0.5, generator=nf.Generator().manual_seed(1))
    assert abs(p.array.mean() - 2.0) < 0.1 and abs(p.array.std() - 0.5) < 0.05 and p.is_leaf
    with pytest.raises(RuntimeError, match="leaf Variable"):
        p.uniform_(-1, 1)
    with nf.no_grad():
        p.uniform_(-1, 1)
    assert p.array.min() >= -1 and p.array.max() < 1


def test_setitem_errors():
    x = nf.zeros(3)
    with pytest.raises(IndexError):
        x[3] = 1.0
    with pytest.raises(RuntimeError, match="shape mismatch"):
        x[0:2] = nf.ones(3)
    with pytest.raises(IndexError, match="integer or bool"):
        x[nf.tensor([0.5])] = 1.0


def test_hooks_on_leaf_and_non_leaf():
    x = nf.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.tolist()))
    handle = x.register_hook(lambda g: g * 10)
    (h * h).sum().backward()
    assert seen == [[6.0, 12.0]]
    np.testing.assert_allclose(x.grad_array, [180.0, 360.0])  # 3 * 2h * 10, summed once then hooked
    handle.remove()
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad_array, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        nf.zeros(2).register_hook(print)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_setitem_matches_numpy(data):
    """Random basic and advanced indices with scalar, array and tensor values: the same as NumPy,
    and the version counter moves exactly once."""
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    base = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    index = []
    for n in shape:
        index.append(data.draw(st.one_of(
            st.integers(-n, n - 1),
            st.slices(n),
            st.lists(st.integers(-n, n - 1), min_size=1, max_size=3).map(np.array),
        )))
    index = tuple(index)
    adv = sum(isinstance(i, np.ndarray) for i in index)
    if adv > 1 and len({i.shape for i in index if isinstance(i, np.ndarray)}) > 1:
        return  # NumPy would refuse to broadcast these arrays together
    expected = base.copy()
    value = data.draw(st.floats(-100, 100, width=32))
    expected[index] = value
    t = nf.tensor(base)
    t[tuple(nf.tensor(i) if isinstance(i, np.ndarray) else i for i in index)] = value
    np.testing.assert_array_equal(t.array, expected)
    assert t._version == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2), st.integers(1, 3), st.booleans())
def test_setitem_grad_matches_torch(row, width, through_view):
    if torch is None:
        pytest.skip("torch is not installed")
    values = np.arange(12.0).reshape(3, 4)
    out = []
    for lib in (nf, torch):
        x = lib.tensor(values, requires_grad=True)
        v = lib.tensor(np.full((width,), 0.5), requires_grad=True)
        y = x * 2
        if through_view:
            y[row][:width] = v
        else:
            y[row, :width] = v
        (y * y * y).sum().backward()
        out.append((y.tolist(), x.grad.tolist(), v.grad.tolist()))
    assert _same(out[0], out[1])


def test_backward_frees_saved_arrays_of_held_intermediates():
    """A held intermediate keeps its node; after backward the node holds no saved array (the
    version records included)."""
    import gc
    import weakref

    x = nf.tensor(np.ones(1000), requires_grad=True)
    h = x * 2
    y = h.exp()  # saves its output
    ref = weakref.ref(y.array)
    z = (y * 3).sum()
    z.backward()
    node = y._node
    del y
    gc.collect()
    assert ref() is None and node.freed and node.versions is None and h._node.ctx is None
