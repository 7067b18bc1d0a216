"""More unary math: sin/cos, log1p/expm1, log2/log10, square, rsqrt, reciprocal, and the
piecewise-constant sign/floor/ceil/round/trunc (gradient 0, as torch's).

As exp/log in elementwise.py: integer and bool tensors are computed in the default float dtype,
except where torch keeps integers (square, sign, and the rounding ops, which copy an integer tensor).
"""
import math

import numpy as np

from nanoframe.autograd import Function
from nanoframe.ops.elementwise import Rounded, _floating, clone, ieee
from nanoframe.tensor import Tensor


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * np.cos(x)


def sin(x):
    return Sin.apply(_floating(x))


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return -gy * np.sin(x)


def cos(x):
    return Cos.apply(_floating(x))


class Log1p(Function):
    """log(1 + x), accurate for small x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with ieee():
            return np.log1p(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / (1 + x)


def log1p(x):
    return Log1p.apply(_floating(x))


class Expm1(Function):
    """exp(x) - 1, accurate for small x; d/dx = exp(x) = y + 1."""

    @staticmethod
    def forward(ctx, x):
        with ieee():
            y = np.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (y + 1)


def expm1(x):
    return Expm1.apply(_floating(x))


class LogBase(Function):
    """log(x) / log(base) for log2 / log10; d/dx = 1 / (x log(base))."""

    @staticmethod
    def forward(ctx, x, *, base):
        ctx.save_for_backward(x)
        ctx.ln_base = math.log(base)
        with ieee():
            return np.log2(x) if base == 2 else np.log10(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / (x * ctx.ln_base)


def log2(x):
    return LogBase.apply(_floating(x), base=2)


def log10(x):
    return LogBase.apply(_floating(x), base=10)


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return 2 * gy * x


def square(x):
    """x * x (an integer tensor stays integer, as torch)."""
    if x.array.dtype == np.bool_:
        x = Tensor._make(x.array.astype(np.int64), False)  # torch squares bool as int64
    return Square.apply(x)


class Rsqrt(Function):
    """y = 1 / sqrt(x); dy/dx = -y^3 / 2."""

    @staticmethod
    def forward(ctx, x):
        with ieee():
            y = 1 / np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -0.5 * gy * y * y * y


def rsqrt(x):
    return Rsqrt.apply(_floating(x))


class Reciprocal(Function):
    """y = 1 / x; dy/dx = -y^2."""

    @staticmethod
    def forward(ctx, x):
        with ieee():
            y = 1 / x
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -gy * y * y


def reciprocal(x):
    return Reciprocal.apply(_floating(x))


def sign(x):
    """-1, 0 or 1 (the dtype of x; gradient 0)."""
    if x.array.dtype == np.bool_:
        return clone(x)
    return Rounded.apply(x, ufunc=np.sign)


def _whole(x, ufunc):
    """A rounding ufunc on a float tensor (gradient 0); an integer tensor is already whole: a copy."""
    if x.array.dtype.kind != "f":
        return clone(x)
    return Rounded.apply(x, ufunc=ufunc)


def floor(x):
    return _whole(x, np.floor)


def ceil(x):
    return _whole(x, np.ceil)


def trunc(x):
    return _whole(x, np.trunc)


def round(x, *, decimals=0):
    """Round half to even (as torch.round), to `decimals` places; gradient 0."""
    return _whole(x, np.round if decimals == 0 else lambda a: np.round(a, decimals))
