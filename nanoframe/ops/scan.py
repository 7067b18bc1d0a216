"""Cumulative ops along one dim: cumsum and cumprod (integer and bool inputs give int64, as torch)."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.ops.reduce import _with_dtype, normalize_dims


def _reverse_cumsum(a, axis):
    """s[i] = sum(a[i:]) along axis."""
    return np.flip(np.cumsum(np.flip(a, axis), axis=axis), axis)


class CumSum(Function):
    @staticmethod
    def forward(ctx, x, *, axis):
        ctx.axis = axis
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return _reverse_cumsum(gy, ctx.axis)  # x[i] feeds every y[j], j >= i


class CumProd(Function):
    """y[i] = prod(x[:i+1]); dL/dx[k] = sum_{i>=k} gy[i] prod_{j<=i, j!=k} x[j].

    Without zeros that is reverse_cumsum(gy * y) / x. With zeros (division impossible) it is
    prod(x[:k]) * S[k] with S[k] = gy[k] + x[k+1] S[k+1], one pass from the end.
    """

    @staticmethod
    def forward(ctx, x, *, axis):
        y = np.cumprod(x, axis=axis)
        ctx.save_for_backward(x, y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        axis = ctx.axis
        if np.all(x != 0):
            return _reverse_cumsum(gy * y, axis) / x
        xs, gs = np.moveaxis(x, axis, 0), np.moveaxis(gy, axis, 0)
        s = np.empty_like(gs)
        s[-1] = gs[-1]
        for k in range(len(xs) - 2, -1, -1):
            s[k] = gs[k] + xs[k + 1] * s[k + 1]
        before = np.concatenate([np.ones_like(xs[:1]), np.cumprod(xs[:-1], axis=0)], axis=0)  # prod(x[:k])
        return np.moveaxis(before * s, 0, axis)


def _axis(op, x, dim):
    if dim is None or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}(): argument 'dim' must be an int, got {dim!r}")
    if x.ndim == 0:
        normalize_dims(dim, 0, op)
        return None
    return normalize_dims(dim, x.ndim, op)[0]


def cumsum(x, dim, *, dtype=None):
    x = _with_dtype(x, dtype)
    axis = _axis("cumsum", x, dim)
    return CumSum.apply(x.reshape(1), axis=0).reshape(()) if axis is None else CumSum.apply(x, axis=axis)


def cumprod(x, dim, *, dtype=None):
    x = _with_dtype(x, dtype)
    axis = _axis("cumprod", x, dim)
    return CumProd.apply(x.reshape(1), axis=0).reshape(()) if axis is None else CumProd.apply(x, axis=axis)
