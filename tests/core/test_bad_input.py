"""Bad input raises a clear ValueError / RuntimeError / TypeError / IndexError naming the op and the
shapes, never a bare NumPy error."""
import numpy as np
import pytest

import nanoframe as nf


def x3():
    return nf.tensor([1.0, 2.0, 3.0], requires_grad=True)


def m23():
    return nf.ones(2, 3, requires_grad=True)


BAD = [  # id, thunk, exception type, regex the message must match
    ("add-shapes", lambda: x3() + nf.ones(4), ValueError, r"Add.*\(3,\).*\(4,\)"),
    ("sub-shapes", lambda: x3() - nf.ones(2, 4), ValueError, r"Sub.*\(3,\).*\(2, 4\)"),
    ("mul-ndarray-shapes", lambda: x3() * np.ones(4, np.float32), ValueError, r"Mul.*\(3,\).*\(4,\)"),
    ("div-shapes", lambda: m23() / nf.ones(3, 2), ValueError, r"Div.*\(2, 3\).*\(3, 2\)"),
    ("pow-shapes", lambda: m23() ** nf.ones(2), ValueError, r"Pow.*\(2, 3\).*\(2,\)"),
    ("maximum-shapes", lambda: x3().maximum(nf.ones(4)), ValueError, r"Maximum.*\(3,\).*\(4,\)"),
    ("where-shapes", lambda: nf.where(np.array([True, False]), x3(), x3()), ValueError, r"Where.*\(2,\).*\(3,\)"),
    ("masked_fill-shapes", lambda: x3().masked_fill(np.array([True, False]), 0.0), ValueError,
     r"MaskedFill.*\(3,\).*\(2,\)"),
    ("matmul-2d", lambda: nf.ones(2, 3) @ nf.ones(4, 5), ValueError, r"matmul.*\(2, 3\).*\(4, 5\)"),
    ("matmul-1d", lambda: nf.ones(3) @ nf.ones(4), ValueError, r"matmul.*\(3,\).*\(4,\)"),
    ("matmul-batched", lambda: nf.ones(2, 3, 4) @ nf.ones(3, 3, 4), ValueError, r"matmul.*\(2, 3, 4\).*\(3, 3, 4\)"),
    ("matmul-batch-dims", lambda: nf.ones(2, 3, 4) @ nf.ones(3, 4, 5), ValueError, r"MatMul.*\(2, 3, 4\).*\(3, 4, 5\)"),
    ("matmul-scalar", lambda: nf.tensor(2.0) @ nf.ones(4), ValueError, r"matmul.*at least 1 dim"),
    ("reshape", lambda: x3().reshape(2, 2), ValueError, r"reshape.*\(3,\).*\(2, 2\)"),
    ("view", lambda: m23().view(4, -1), ValueError, r"reshape.*\(2, 3\)"),
    ("expand", lambda: x3().expand(4), ValueError, r"expand.*\(3,\).*\(4,\)"),
    ("broadcast_to", lambda: x3().broadcast_to((2, 4)), ValueError, r"\(3,\).*\(2, 4\)"),
    ("cat-shapes", lambda: nf.cat([nf.ones(2, 3), nf.ones(2, 2)]), ValueError, r"Cat.*\(2, 3\).*\(2, 2\)"),
    ("cat-ndim", lambda: nf.cat([x3(), nf.ones(2, 2)]), ValueError, r"Cat.*\(3,\).*\(2, 2\)"),
    ("cat-empty", lambda: nf.cat([]), ValueError, r"cat.*non-empty"),
    ("stack-shapes", lambda: nf.stack([x3(), nf.ones(2)]), ValueError, r"Stack.*\(3,\).*\(2,\)"),
    ("stack-empty", lambda: nf.stack([]), ValueError, r"stack.*non-empty"),
    ("split-sections", lambda: x3().split([1, 1]), ValueError, r"split.*\[1, 1\].*size 3"),
    ("split-size0", lambda: x3().split(0), ValueError, r"split.*positive"),
    ("chunk0", lambda: x3().chunk(0), ValueError, r"chunk.*positive"),
    ("clip-none", lambda: x3().clip(), ValueError, r"clip.*min.*max"),
    ("max-empty", lambda: nf.tensor(np.zeros((0, 2))).max(), ValueError, r"max.*empty.*\(0, 2\)"),
    ("reduce-kwarg", lambda: x3().sum(foo=1), TypeError, r"sum.*foo"),
    # out-of-range dims
    ("sum-dim", lambda: x3().sum(dim=1), ValueError, r"sum: dim 1 out of range.*1 dims"),
    ("sum-negdim", lambda: m23().sum(dim=-3), ValueError, r"sum: dim -3 out of range.*2 dims"),
    ("mean-tuple", lambda: m23().mean(dim=(0, 2)), ValueError, r"mean: dim 2 out of range"),
    ("mean-repeat", lambda: m23().mean(dim=(1, -1)), ValueError, r"mean.*repeats"),
    ("max-dim", lambda: x3().max(dim=3), ValueError, r"max: dim 3 out of range"),
    ("min-dim", lambda: x3().min(-2), ValueError, r"min: dim -2 out of range"),
    ("amax-dim", lambda: x3().amax(dim=1), ValueError, r"amax: dim 1 out of range"),
    ("var-dim", lambda: x3().var(dim=4), ValueError, r"var: dim 4 out of range"),
    ("argmax-dim", lambda: x3().argmax(dim=2), ValueError, r"argmax: dim 2 out of range"),
    ("scalar-dim", lambda: nf.tensor(1.0).sum(dim=1), ValueError, r"sum: dim 1 out of range.*0 dims"),
    ("transpose-dim", lambda: x3().transpose(0, 1), ValueError, r"transpose: dim 1 out of range"),
    ("permute-count", lambda: x3().permute(1, 0), ValueError, r"permute.*\(1, 0\).*\(3,\)"),
    ("permute-repeat", lambda: m23().permute(0, 0), ValueError, r"permute.*repeats"),
    ("permute-range", lambda: m23().permute(0, 2), ValueError, r"permute: dim 2 out of range"),
    ("unsqueeze-dim", lambda: x3().unsqueeze(3), ValueError, r"unsqueeze: dim 3 out of range"),
    ("squeeze-dim", lambda: x3().squeeze(2), ValueError, r"squeeze: dim 2 out of range"),
    ("flatten-dim", lambda: x3().flatten(2), ValueError, r"flatten: dim 2 out of range"),
    ("flatten-order", lambda: nf.ones(2, 3, 4).flatten(2, 1), ValueError, r"flatten.*start_dim"),
    ("cat-dim", lambda: nf.cat([x3(), x3()], dim=1), ValueError, r"cat: dim 1 out of range"),
    ("stack-dim", lambda: nf.stack([x3(), x3()], dim=3), ValueError, r"stack: dim 3 out of range"),
    ("split-dim", lambda: x3().split(1, dim=1), ValueError, r"split: dim 1 out of range"),
    # indexing
    ("getitem-range", lambda: x3()[5], IndexError, r"GetItem.*5.*size 3.*\(3,\)"),
    ("getitem-too-many", lambda: x3()[0, 0], IndexError, r"GetItem.*too many indices.*\(3,\)"),
    ("getitem-array-range", lambda: x3()[np.array([0, 3])], IndexError, r"GetItem.*3.*\(3,\)"),
    ("getitem-float-array", lambda: x3()[np.array([0.5])], IndexError, r"integer or bool.*float64"),
    ("getitem-mask-shape", lambda: x3()[np.array([True, False])], IndexError, r"GetItem.*\(3,\)"),
    # backward misuse
    ("backward-nonscalar", lambda: (x3() * 2).backward(), RuntimeError, r"scalar output.*shape \(3,\)"),
    ("backward-grad-shape", lambda: (x3() * 2).backward(np.ones(4)), RuntimeError,
     r"gradient has shape \(4,\).*shape \(3,\)"),
    ("backward-no-grad", lambda: nf.zeros(2, 2).sum().backward(), RuntimeError, r"does not require grad"),
    # construction
    ("str", lambda: nf.tensor("abc"), TypeError, r"numeric"),
    ("str-list", lambda: nf.tensor(["a", "b"]), TypeError, r"numeric"),
    ("object", lambda: nf.tensor([object()]), TypeError, r"numeric.*object"),
    ("none", lambda: nf.tensor(None), TypeError, r"numeric"),
    ("ragged", lambda: nf.tensor([[1.0, 2.0], [3.0]]), TypeError, r"cannot make a tensor from list"),
    ("dict", lambda: nf.Tensor({"a": 1}), TypeError, r"numeric|cannot make"),
    ("add-str", lambda: x3() + "x", TypeError, r"str"),
    ("int-requires-grad", lambda: nf.tensor([1, 2], requires_grad=True), RuntimeError,
     r"floating point.*int64"),
    ("bool-requires-grad", lambda: nf.tensor([True]).requires_grad_(), RuntimeError, r"floating point.*bool"),
    ("int-zeros-requires-grad", lambda: nf.zeros(2, dtype=nf.int32, requires_grad=True), RuntimeError,
     r"floating point.*int32"),
    ("item-many", lambda: x3().item(), ValueError, r"item.*one element.*\(3,\)"),
    ("bool-many", lambda: bool(x3()), RuntimeError, r"\(3,\) is ambiguous"),
]


@pytest.mark.parametrize("thunk,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(thunk, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        thunk()
    assert type(info.value).__module__ == "builtins"  # ValueError etc., not a numpy subclass


def test_second_backward_through_freed_graph():
    x = x3()
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_error_leaves_grad_mode_and_inputs_intact():
    x = x3()
    with pytest.raises(ValueError):
        x + nf.ones(4)
    assert nf.is_grad_enabled() and x.grad_array is None and x.tolist() == [1.0, 2.0, 3.0]
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad_array, [2.0, 2.0, 2.0])


def test_gradcheck_rejects_float32():
    from nanoframe.testing import gradcheck

    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda t: t * 2, [nf.tensor([1.0], requires_grad=True)])


def test_gradcheck_catches_a_wrong_backward():
    from nanoframe.autograd import Function
    from nanoframe.testing import GradcheckError, gradcheck

    class WrongExp(Function):
        @staticmethod
        def forward(ctx, x):
            return np.exp(x)

        @staticmethod
        def backward(ctx, gy):
            return gy  # missing the factor exp(x)

    x = nf.tensor(np.array([0.5, 1.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 of shape \(2,\)"):
        gradcheck(WrongExp.apply, [x])
