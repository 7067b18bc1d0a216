"""Reductions: sum, mean, prod, max/min (and amax/amin), var/std, logsumexp, norm, all/any,
argmax/argmin.

`dim` is an int, a tuple of ints (negative allowed) or None (all dims); `keepdim` keeps the reduced
dims as size 1. NumPy's `axis=` / `keepdims=` are accepted as aliases, as in PyTorch. Dtypes as
torch: sum/prod of integers or bools give int64; mean/var/std of integers are errors.
"""
import math
from collections import namedtuple

import numpy as np

from nanoframe.autograd import Function
from nanoframe.dtypes import to_numpy
from nanoframe.ops.elementwise import _floating, cast, maximum, minimum
from nanoframe.tensor import Tensor

values_indices = namedtuple("values_indices", ["values", "indices"])


def normalize_dims(dim, ndim, op="reduce"):
    """dim (None, int or sequence) -> sorted tuple of non-negative axes, checked against ndim."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
        if not lo <= d <= hi:
            raise ValueError(f"{op}: dim {d} out of range for a tensor with {ndim} dims "
                             f"(expected in [{lo}, {hi}])")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return tuple(sorted(out)) if ndim else ()


def _args(op, ndim, dim, keepdim, kw):
    """Resolve torch-style dim/keepdim with numpy-style axis/keepdims aliases."""
    if "axis" in kw:
        dim = kw.pop("axis")
    if "keepdims" in kw:
        keepdim = kw.pop("keepdims")
    if kw:
        raise TypeError(f"{op}() got unexpected keyword arguments {sorted(kw)}")
    return normalize_dims(dim, ndim, op), bool(keepdim)


def _expand_back(gy, axes, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input."""
    if not keepdim and axes:
        gy = np.expand_dims(gy, axes)
    return gy


class Sum(Function):
    @staticmethod
    def forward(ctx, x, *, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return np.sum(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = _expand_back(gy, ctx.axes, ctx.keepdim)
        return np.broadcast_to(gy, ctx.shape)


def _with_dtype(x, dtype):
    """x cast to `dtype=` if given; integer/bool input of sum/prod becomes int64, as torch."""
    if dtype is not None:
        return cast(x, to_numpy(dtype))
    if x.array.dtype.kind in "biu" and x.array.dtype != np.int64:
        return cast(x, np.dtype(np.int64))
    return x


def _float_only(op, x):
    if x.array.dtype.kind != "f":
        raise TypeError(f"{op}(): could not infer output dtype. Input dtype must be a floating point "
                        f"dtype, got {x.dtype}; convert with .float() first or pass dtype=")


def sum(x, dim=None, keepdim=False, *, dtype=None, **kw):
    axes, keepdim = _args("sum", x.ndim, dim, keepdim, kw)
    return Sum.apply(_with_dtype(x, dtype), axes=axes, keepdim=keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, *, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.n = int(np.prod([x.shape[a] for a in axes]))
        return np.mean(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = _expand_back(gy, ctx.axes, ctx.keepdim) / ctx.n
        return np.broadcast_to(gy, ctx.shape)


def mean(x, dim=None, keepdim=False, *, dtype=None, **kw):
    axes, keepdim = _args("mean", x.ndim, dim, keepdim, kw)
    if dtype is not None:
        x = cast(x, to_numpy(dtype))
    _float_only("mean", x)
    return Mean.apply(x, axes=axes, keepdim=keepdim)


class AMax(Function):
    """max over axes; the gradient is shared evenly among tied maxima (PyTorch's amax rule)."""

    @staticmethod
    def forward(ctx, x, *, axes, keepdim, largest=True):
        y = (np.max if largest else np.min)(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        hit = x == y
        count = np.sum(hit, axis=ctx.axes, keepdims=True)
        gy = _expand_back(gy, ctx.axes, ctx.keepdim)
        return gy * hit / count.astype(gy.dtype)


class MaxDim(Function):
    """max along one dim with indices; the gradient goes to the returned index only."""

    @staticmethod
    def forward(ctx, x, *, axis, keepdim, largest=True):
        idx = (np.argmax if largest else np.argmin)(x, axis=axis)
        idx = np.expand_dims(idx, axis)
        ctx.shape, ctx.axis, ctx.keepdim, ctx.idx = x.shape, axis, keepdim, idx
        y = np.take_along_axis(x, idx, axis=axis)
        return y if keepdim else np.squeeze(y, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.shape, dtype=gy.dtype)
        gy = gy if ctx.keepdim else np.expand_dims(gy, ctx.axis)
        np.put_along_axis(gx, ctx.idx, gy, axis=ctx.axis)
        return gx


def max(x, dim=None, keepdim=False, **kw):
    """max(x) -> tensor; max(x, dim) -> (values, indices) like PyTorch; a tuple dim acts as amax;
    max(x, other_tensor) is the elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return _reduce_extreme(x, dim, keepdim, kw, largest=True)


def min(x, dim=None, keepdim=False, **kw):
    """min(x) -> tensor; min(x, dim) -> (values, indices) like PyTorch; a tuple dim acts as amin;
    min(x, other_tensor) is the elementwise minimum."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return _reduce_extreme(x, dim, keepdim, kw, largest=False)


def _reduce_extreme(x, dim, keepdim, kw, largest):
    op = "max" if largest else "min"
    if x.array.size == 0:
        raise ValueError(f"{op}() of an empty tensor of shape {x.shape}")
    dim = kw.get("axis", dim)
    axes, keepdim = _args(op, x.ndim, dim, keepdim, kw)
    if dim is None or not isinstance(dim, (int, np.integer)) or x.ndim == 0:
        return AMax.apply(x, axes=axes, keepdim=keepdim, largest=largest)
    axis = axes[0]
    values = MaxDim.apply(x, axis=axis, keepdim=keepdim, largest=largest)
    idx = (np.argmax if largest else np.argmin)(x.array, axis=axis)
    indices = Tensor._make(np.expand_dims(idx, axis) if keepdim else idx, False)
    return values_indices(values, indices)


def amax(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("amax", x.ndim, dim, keepdim, kw)
    return AMax.apply(x, axes=axes, keepdim=keepdim, largest=True)


def amin(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("amin", x.ndim, dim, keepdim, kw)
    return AMax.apply(x, axes=axes, keepdim=keepdim, largest=False)


class Var(Function):
    """Variance with Bessel's correction (`correction=1`, PyTorch's default)."""

    @staticmethod
    def forward(ctx, x, *, axes, keepdim, correction):
        mu = np.mean(x, axis=axes, keepdims=True)
        xc = x - mu
        n = int(np.prod([x.shape[a] for a in axes]))
        ctx.save_for_backward(xc)
        ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, n - correction
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(xc * xc, axis=axes, keepdims=keepdim) / (n - correction)

    @staticmethod
    def backward(ctx, gy):
        (xc,) = ctx.saved_tensors
        gy = _expand_back(gy, ctx.axes, ctx.keepdim)
        return gy * (2.0 / ctx.denom) * xc  # d/dx sum((x-mu)^2) = 2(x-mu)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
    """torch.var: var(dim, unbiased, keepdim) or var(dim, *, correction, keepdim); Bessel's
    correction (1) by default. `var(True)` reads the bool as `unbiased`, as torch."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    axes, keepdim = _args("var", x.ndim, dim, keepdim, kw)
    _float_only("var", x)
    if unbiased is not None and correction is not None:
        raise TypeError("var(): pass either unbiased or correction, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    return Var.apply(x, axes=axes, keepdim=keepdim, correction=correction)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
    """torch.std: the square root of var (same arguments)."""
    return var(x, dim, unbiased, keepdim, correction=correction, **kw).sqrt()


class Prod(Function):
    """Product along one axis. The gradient of each element is the product of the others, computed
    from exclusive cumulative products from both sides, so zeros need no division."""

    @staticmethod
    def forward(ctx, x, *, axis, keepdim):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdim = axis, keepdim
        return np.prod(x, axis=axis, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        axis, n = ctx.axis, x.shape[ctx.axis]
        if n == 0:
            return np.zeros_like(x)
        one = np.ones_like(np.take(x, [0], axis=axis))
        left = np.concatenate([one, np.cumprod(np.take(x, range(n - 1), axis=axis), axis=axis)], axis=axis)
        rest = np.flip(np.take(x, range(1, n), axis=axis), axis)
        right = np.concatenate([np.flip(np.cumprod(rest, axis=axis), axis), one], axis=axis)
        gy = gy if ctx.keepdim else np.expand_dims(gy, axis)
        return gy * left * right  # left[i] = prod(x[:i]), right[i] = prod(x[i+1:])


def prod(x, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements, or along one dim (torch takes a single int dim)."""
    x = _with_dtype(x, dtype)
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"prod(): argument 'dim' must be int, not {type(dim).__name__}")
    axes = normalize_dims(dim, x.ndim, "prod")
    if dim is None or x.ndim == 0:
        y = Prod.apply(x.reshape(-1), axis=0, keepdim=False)
        return y.reshape((1,) * x.ndim) if keepdim and dim is not None else y
    return Prod.apply(x, axis=axes[0], keepdim=keepdim)


class LogSumExp(Function):
    """y = m + log(sum(exp(x - m))) with m the max (0 where the max is infinite); dy/dx = exp(x - y)."""

    @staticmethod
    def forward(ctx, x, *, axes, keepdim):
        m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((1,) * x.ndim, x.dtype)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
        with np.errstate(divide="ignore"):
            y = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        with np.errstate(invalid="ignore"):
            return _expand_back(gy, ctx.axes, ctx.keepdim) * np.exp(x - y)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over dim, computed without overflow (torch requires dim)."""
    x = _floating(x)
    return LogSumExp.apply(x, axes=normalize_dims(dim, x.ndim, "logsumexp"), keepdim=bool(keepdim))


class Norm(Function):
    """The vector p-norm over axes: (sum |x|^p)^(1/p); p = inf/-inf: max/min |x|; p = 0: the count of
    nonzeros. Gradient as torch: 0 where the norm is 0; ties of an inf-norm share it evenly."""

    @staticmethod
    def forward(ctx, x, *, p, axes, keepdim):
        a = np.abs(x)
        if p == math.inf or p == -math.inf:
            y = (np.max if p > 0 else np.min)(a, axis=axes, keepdims=True)
        elif p == 0:
            y = np.sum(a != 0, axis=axes, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = np.sum(a, axis=axes, keepdims=True)
        elif p == 2:
            y = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
        else:
            y = np.sum(a ** p, axis=axes, keepdims=True) ** (1.0 / p)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.axes, ctx.keepdim = p, axes, keepdim
        return y if keepdim else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        p = ctx.p
        gy = _expand_back(gy, ctx.axes, ctx.keepdim)
        if p == 0:
            return np.zeros_like(x)
        if p == 1:
            return gy * np.sign(x)
        if p == math.inf or p == -math.inf:
            hit = np.abs(x) == y
            share = hit / np.sum(hit, axis=ctx.axes, keepdims=True)
            return gy * np.sign(x) * share.astype(x.dtype)
        safe = np.where(y == 0, 1, y)
        if p == 2:
            g = x / safe                                  # d||x||/dx = x / ||x||
        else:
            g = np.sign(x) * np.abs(x) ** (p - 1) / safe ** (p - 1)
        return gy * np.where(y == 0, 0, g)


def norm(x, p="fro", dim=None, keepdim=False, *, dtype=None):
    """torch.norm as a vector norm: p = 'fro' (2 over all the given dims), a number, inf or -inf."""
    if dtype is not None:
        x = cast(x, to_numpy(dtype))
    _float_only("norm", x)
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str) or not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be 'fro' or a number, got {p!r} (nuclear norms are not supported)")
    return Norm.apply(x, p=float(p), axes=normalize_dims(dim, x.ndim, "norm"), keepdim=bool(keepdim))


def all(x, dim=None, keepdim=False):
    """True where every element along dim is nonzero (a bool tensor; not differentiable)."""
    axes = normalize_dims(dim, x.ndim, "all")
    return Tensor._make(np.asarray(np.all(x.array, axis=axes, keepdims=keepdim)), False)


def any(x, dim=None, keepdim=False):
    """True where some element along dim is nonzero (a bool tensor; not differentiable)."""
    axes = normalize_dims(dim, x.ndim, "any")
    return Tensor._make(np.asarray(np.any(x.array, axis=axes, keepdims=keepdim)), False)


def argmax(x, dim=None, keepdim=False):
    if dim is None:
        return Tensor._make(np.asarray(np.argmax(x.array)), False)
    (axis,) = normalize_dims(dim, x.ndim, "argmax")
    return Tensor._make(np.argmax(x.array, axis=axis, keepdims=keepdim), False)


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return Tensor._make(np.asarray(np.argmin(x.array)), False)
    (axis,) = normalize_dims(dim, x.ndim, "argmin")
    return Tensor._make(np.argmin(x.array, axis=axis, keepdims=keepdim), False)
