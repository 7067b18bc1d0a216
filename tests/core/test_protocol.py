"""The Tensor protocol (Python's special methods) and torch's small Tensor methods: __index__,
__format__, __bool__, __len__, __iter__, __contains__, Size, grad_fn, views, and errors that point
at the cause."""
import numpy as np
import pytest

import nanoframe as nf
from nanoframe.autograd import Function

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def test_index_protocol():
    i = nf.tensor(3)
    assert list(range(i)) == [0, 1, 2] and [10, 20, 30, 40][i] == 40 and "abcd"[nf.tensor([1])] == "b"
    assert nf.ones(5)[i].item() == 1.0 and np.arange(5)[i] == 3
    with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
        range(nf.tensor(3.0))
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][nf.tensor([0, 1])]


def test_format_of_0d_tensor():
    loss = nf.tensor(1.234567)
    assert f"{loss:.4f}" == "1.2346" and f"{nf.tensor(7):>3d}" == "  7" and f"{loss}" == str(loss.item())
    with pytest.raises(TypeError):
        f"{nf.ones(2):.3f}"
    assert f"{nf.ones(2)}" == str(nf.ones(2))


def test_bool_len_iter_contains_hash():
    assert bool(nf.tensor([2.0])) and not bool(nf.tensor(0)) and len(nf.zeros(4, 2)) == 4
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(nf.ones(2))
    rows = list(nf.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(nf.tensor(1.0))
    x = nf.tensor([1, 2, 3])
    assert 2 in x and 5 not in x and nf.tensor(3) in x
    with pytest.raises(RuntimeError, match="only supports Tensor or scalar"):
        "a" in x
    assert hash(x) == id(x) // 16 or hash(x) == hash(x)  # identity hash: stable, usable in sets
    assert len({x, nf.tensor([1, 2, 3])}) == 2
    assert (x == None) is False and (x != None) is True  # noqa: E711  (torch compares with None)
    assert [v for v in reversed(nf.tensor([1, 2, 3]))][0].item() == 3


def test_iterating_yields_views_with_gradients():
    x = nf.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    total = sum(row.sum() * (i + 1) for i, row in enumerate(x))
    total.backward()
    np.testing.assert_allclose(x.grad_array, [[1.0, 1.0], [2.0, 2.0]])


def test_size_and_shape():
    x = nf.zeros(2, 3)
    assert isinstance(x.shape, nf.Size) and isinstance(x.size(), tuple) and x.size() == (2, 3)
    assert x.size(-1) == 3 and x.shape[1:] == nf.Size([3]) and isinstance(x.shape[1:], nf.Size)
    assert repr(x.shape) == "nanoframe.Size([2, 3])" and str(x.shape) == "(2, 3)" and x.shape.numel() == 6
    B, T = x.shape
    assert (B, T) == (2, 3) and nf.zeros(x.shape).shape == (2, 3)
    if torch is not None:
        assert torch.Size(x.shape) == torch.Size([2, 3])


def test_grad_fn_and_leaf():
    x = nf.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert x.grad_fn is None and y.grad_fn.name() == "MulBackward" and repr(y.grad_fn) == "<MulBackward object>"
    assert "grad_fn=<MulBackward>" in repr(y) and "requires_grad=True" in repr(x)
    assert y.grad_fn.next_functions[0][0] is x and y.grad_fn.next_functions[1] == (None, 0)
    z = y.exp()
    assert z.grad_fn.next_functions[0][0] is y.grad_fn
    assert nf.zeros(2).grad_fn is None and (nf.zeros(2) * 2).grad_fn is None


def test_detach_requires_grad_retain():
    x = nf.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad_(False)
    y.detach_()
    assert y.is_leaf and not y.requires_grad
    v = (x * 1)[0:1]
    with pytest.raises(RuntimeError, match="Can't detach views in-place"):
        v.detach_()
    with pytest.raises(RuntimeError, match="retain_grad on Tensor that has requires_grad=False"):
        nf.zeros(2).retain_grad()
    assert (x * 1).is_contiguous() and not nf.zeros(2, 3).t().is_contiguous()
    assert nf.zeros(2, 3).t().contiguous().is_contiguous()


def test_numpy_refuses_requires_grad_like_torch():
    x = nf.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"detach\(\)\.numpy\(\)"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0] and x.numpy(force=True).tolist() == [1.0]


def test_views_share_memory_like_torch():
    x = nf.arange(12).reshape(3, 4).clone()
    for view in (x[1], x[:, 2], x.view(4, 3), x.t(), x.narrow(1, 1, 2), x.unbind(0)[2], x[..., None], x.T, x[0, 0]):
        assert np.shares_memory(view.array, x.array), view
        assert view._base is x
    x[1].fill_(0)
    assert x[1].tolist() == [0, 0, 0, 0] and x._version == 1
    assert not np.shares_memory(x[[0, 1]].array, x.array) and x[[0, 1]]._base is None  # advanced index: a copy
    assert not np.shares_memory(x.flip(0).array, x.array)


def test_view_refuses_a_copy_reshape_copies():
    x = nf.zeros(2, 3).t()
    with pytest.raises(RuntimeError, match=r"view size is not compatible.*Use \.reshape"):
        x.view(6)
    assert x.reshape(6).shape == (6,) and x.contiguous().view(6).shape == (6,)


def test_tensor_where_int_needed_names_the_argument():
    x = nf.zeros(6)
    with pytest.raises(TypeError, match=r"view\(\): argument 'shape' must be a tuple of ints, but found element of type Tensor at pos 0"):
        x.view(nf.tensor([2.0, 3.0]))
    assert x.view(nf.tensor(2), 3).shape == (2, 3)
    with pytest.raises(TypeError, match=r"permute\(\): argument 'shape'.*str at pos 1"):
        nf.zeros(2, 2).permute(0, "1")
    with pytest.raises(TypeError, match=r"ones\(\): argument 'size'.*Tensor at pos 0"):
        nf.ones(nf.tensor([2, 3]))


def test_misspelt_dtype_no_longer_suggests_log():
    assert nf.long is nf.int64 and nf.log is not nf.long


class Boom(Function):
    @staticmethod
    def forward(ctx, x):
        raise ValueError("bad thing")

    @staticmethod
    def backward(ctx, gy):
        return gy


def test_function_apply_chains_the_original_exception():
    with pytest.raises(ValueError, match=r"Boom: bad thing \(input shapes: \(2,\)\)") as info:
        Boom.apply(nf.zeros(2))
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "bad thing"


def test_function_apply_has_no_local_import():
    import inspect

    from nanoframe import autograd

    assert "import" not in inspect.getsource(autograd.Function.apply)


def test_out_of_range_indices_raise_index_error():
    x = nf.zeros(3, 4)
    for bad in (lambda: x[3], lambda: x[:, -5], lambda: x[nf.tensor([0, 3])], lambda: x.gather(0, nf.tensor([[3, 0, 0, 0]])),
                lambda: x.index_select(1, nf.tensor([4])), lambda: x.narrow(0, 2, 2), lambda: x.topk(5)):
        with pytest.raises(IndexError):
            bad()


def test_integer_tensors_as_indices():
    x = nf.arange(10.0)
    assert x[nf.tensor(3)].item() == 3.0 and x[nf.tensor([1, 1, 2])].tolist() == [1.0, 1.0, 2.0]
    assert x[nf.tensor([True] * 5 + [False] * 5)].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert x[nf.tensor([2], dtype=nf.int32)].tolist() == [2.0]
    m = nf.arange(6).reshape(2, 3)
    assert m[nf.tensor([1, 0]), nf.tensor([2, 0])].tolist() == [5, 0]


@needs_torch
def test_softmax_without_dim_follows_torch():
    import nanoframe.functional as F

    x = np.random.default_rng(0).standard_normal(48).astype(np.float32)
    for shape in [(4,), (3, 4), (2, 3, 4), (2, 2, 3, 4)]:
        a = x.reshape(-1)[: int(np.prod(shape))].reshape(shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            ours = F.softmax(nf.tensor(a))
        with pytest.warns(UserWarning):
            ref = torch.nn.functional.softmax(torch.tensor(a))
        np.testing.assert_allclose(ours.array, ref.numpy(), rtol=1e-6)
        with pytest.warns(UserWarning, match="log_softmax"):
            ours = F.log_softmax(nf.tensor(a))
        with pytest.warns(UserWarning):
            ref = torch.nn.functional.log_softmax(torch.tensor(a))
        np.testing.assert_allclose(ours.array, ref.numpy(), rtol=1e-5)
    with pytest.raises(TypeError):
        nf.ones(3).softmax()  # the method and nanoframe.softmax need dim, as torch's
    assert nf.softmax(nf.ones(2), 0).dtype == nf.float32 and nf.softmax(nf.ones(2), 0, dtype=nf.float64).dtype == nf.float64


@needs_torch
@pytest.mark.parametrize("values", [[[0, 1], [2, 0]], [0.0, 1.5, 0.0], 3, 0, []])
def test_nonzero_matches_torch(values):
    a, b = nf.tensor(values), torch.tensor(values)
    assert a.nonzero().tolist() == b.nonzero().tolist() and tuple(a.nonzero().shape) == tuple(b.nonzero().shape)
    if a.ndim:
        assert [t.tolist() for t in a.nonzero(as_tuple=True)] == [t.tolist() for t in b.nonzero(as_tuple=True)]
    assert nf.where(a != 0)[0].tolist() == torch.where(b != 0)[0].tolist() if a.ndim else True
