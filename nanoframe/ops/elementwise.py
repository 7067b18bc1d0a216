"""Elementwise ops: arithmetic, exp/log/sqrt/abs, tanh/sigmoid/relu, maximum/minimum, clip, where.

Binary ops broadcast like numpy; `unbroadcast` sums each gradient back to its input's shape.
Python scalars take the tensor's dtype, so `x * 0.5` stays float32.
"""
import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.tensor import Tensor


def _operands(a, b):
    """Turn the non-Tensor side of a binary op into an array of the Tensor side's dtype."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a, b
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("expected at least one Tensor operand")
    t, other = (a, b) if isinstance(a, Tensor) else (b, a)
    dtype = t.dtype
    if dtype.kind != "f" and isinstance(other, float):
        dtype = np.float32  # int tensor (never requires grad) with a python float -> float32, as torch
        t = Tensor._make(t.array.astype(dtype), False)
    if isinstance(other, (int, float, bool, np.number)):
        other = np.asarray(other, dtype=dtype)
    elif isinstance(other, np.ndarray):
        pass
    else:  # python lists act like python scalars: they take a float tensor's dtype
        other = Tensor(other, dtype=dtype if dtype.kind == "f" else None).array
    return (t, other) if isinstance(a, Tensor) else (other, t)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a + b

    @staticmethod
    def backward(ctx, gy):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy, ctx.shapes[0]) if na else None,
                unbroadcast(gy, ctx.shapes[1]) if nb else None)


def add(a, b):
    return Add.apply(*_operands(a, b))


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, gy):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy, ctx.shapes[0]) if na else None,
                unbroadcast(-gy, ctx.shapes[1]) if nb else None)


def sub(a, b):
    return Sub.apply(*_operands(a, b))


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy * b, np.shape(a)) if na else None,
                unbroadcast(gy * a, np.shape(b)) if nb else None)


def mul(a, b):
    return Mul.apply(*_operands(a, b))


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        y = a / b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(gy / b, np.shape(a)) if na else None
        gb = unbroadcast(-gy * y / b, np.shape(b)) if nb else None  # d(a/b)/db = -a/b^2 = -y/b
        return ga, gb


def div(a, b):
    return Div.apply(*_operands(a, b))


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:  # d(a^b)/da = b a^(b-1); written without a^(b-1)/a so a = 0 works
            ga = unbroadcast(gy * b * a ** (b - 1), np.shape(a))
        if nb:  # d(a^b)/db = a^b log a
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(gy * y * np.log(a), np.shape(b))
        return ga, gb


def pow(a, b):
    return Pow.apply(*_operands(a, b))


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, gy):
        return -gy


def neg(x):
    return Neg.apply(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


def exp(x):
    return Exp.apply(x)


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / x


def log(x):
    return Log.apply(x)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


def sqrt(x):
    return Sqrt.apply(x)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * np.sign(x)  # 0 at x = 0, as in PyTorch


def abs(x):
    return Abs.apply(x)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (1 - y * y)


def tanh(x):
    return Tanh.apply(x)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = 0.5 * (1 + np.tanh(0.5 * x))  # = 1/(1+exp(-x)) without overflow
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y * (1 - y)


def sigmoid(x):
    return Sigmoid.apply(x)


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (y > 0)


def relu(x):
    return ReLU.apply(x)


class Maximum(Function):
    """maximum(a, b); at ties each input gets half the gradient, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        share_a = (a > b) + 0.5 * (a == b)
        return _split_grad(ctx, gy, share_a.astype(gy.dtype), np.shape(a), np.shape(b))


class Minimum(Function):
    """minimum(a, b); at ties each input gets half the gradient, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        share_a = (a < b) + 0.5 * (a == b)
        return _split_grad(ctx, gy, share_a.astype(gy.dtype), np.shape(a), np.shape(b))


def _split_grad(ctx, gy, share_a, shape_a, shape_b):
    na, nb = ctx.needs_input_grad
    return (unbroadcast(gy * share_a, shape_a) if na else None,
            unbroadcast(gy * (1 - share_a), shape_b) if nb else None)


def maximum(a, b):
    return Maximum.apply(*_operands(a, b))


def minimum(a, b):
    return Minimum.apply(*_operands(a, b))


class Clip(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        inside = np.ones(x.shape, dtype=bool)  # gradient passes where lo <= x <= hi, as in PyTorch
        if ctx.lo is not None:
            inside &= x >= ctx.lo
        if ctx.hi is not None:
            inside &= x <= ctx.hi
        return gy * inside, None, None


def clip(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(x, min, max)


clamp = clip


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = np.asarray(cond, dtype=bool)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.where(ctx.cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        _, na, nb = ctx.needs_input_grad
        zero = np.zeros((), dtype=gy.dtype)
        return (None,
                unbroadcast(np.where(ctx.cond, gy, zero), ctx.shapes[0]) if na else None,
                unbroadcast(np.where(ctx.cond, zero, gy), ctx.shapes[1]) if nb else None)


def where(condition, a, b):
    """Elementwise `a if condition else b` (condition is not differentiated)."""
    cond = condition.array if isinstance(condition, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return Tensor(np.where(cond, a, b))
    a, b = _operands(a, b)
    return Where.apply(cond, a, b)


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        mask = np.asarray(mask, dtype=bool)
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to {x.shape}")
        ctx.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, gy):
        return np.where(ctx.mask, np.zeros((), dtype=gy.dtype), gy), None, None


def masked_fill(x, mask, value):
    """x with `value` wherever mask (broadcast to x) is True."""
    mask = mask.array if isinstance(mask, Tensor) else mask
    return MaskedFill.apply(x, mask, value)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy.astype(ctx.dtype), None


def cast(x, dtype):
    """x converted to dtype; differentiable between float dtypes."""
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f":
        return Tensor._make(x.array.astype(dtype), False)
    return Cast.apply(x, dtype)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return gy


def clone(x):
    return Clone.apply(x)
