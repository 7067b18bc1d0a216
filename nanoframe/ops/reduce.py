"""Reductions: sum, mean, max/min (and amax/amin), var/std, argmax/argmin.

`dim` is an int, a tuple of ints (negative allowed) or None (all dims); `keepdim` keeps the reduced
dims as size 1. NumPy's `axis=` / `keepdims=` are accepted as aliases, as in PyTorch.
"""
from collections import namedtuple

import numpy as np

from nanoframe.autograd import Function
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
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return np.sum(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = _expand_back(gy, ctx.axes, ctx.keepdim)
        return np.broadcast_to(gy, ctx.shape), None, None


def sum(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("sum", x.ndim, dim, keepdim, kw)
    return Sum.apply(x, axes, keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.n = int(np.prod([x.shape[a] for a in axes]))
        return np.mean(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = _expand_back(gy, ctx.axes, ctx.keepdim) / ctx.n
        return np.broadcast_to(gy, ctx.shape), None, None


def mean(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("mean", x.ndim, dim, keepdim, kw)
    return Mean.apply(x, axes, keepdim)


class AMax(Function):
    """max over axes; the gradient is shared evenly among tied maxima (PyTorch's amax rule)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, largest=True):
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
        return gy * hit / count.astype(gy.dtype), None, None, None


class MaxDim(Function):
    """max along one dim with indices; the gradient goes to the returned index only."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, largest=True):
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
        return gx, None, None, None


def max(x, dim=None, keepdim=False, **kw):
    """max(x) -> tensor; max(x, dim) -> (values, indices) like PyTorch; a tuple dim acts as amax."""
    return _reduce_extreme(x, dim, keepdim, kw, largest=True)


def min(x, dim=None, keepdim=False, **kw):
    """min(x) -> tensor; min(x, dim) -> (values, indices) like PyTorch; a tuple dim acts as amin."""
    return _reduce_extreme(x, dim, keepdim, kw, largest=False)


def _reduce_extreme(x, dim, keepdim, kw, largest):
    op = "max" if largest else "min"
    if x.array.size == 0:
        raise ValueError(f"{op}() of an empty tensor of shape {x.shape}")
    dim = kw.get("axis", dim)
    axes, keepdim = _args(op, x.ndim, dim, keepdim, kw)
    if dim is None or not isinstance(dim, (int, np.integer)) or x.ndim == 0:
        return AMax.apply(x, axes, keepdim, largest)
    axis = axes[0]
    values = MaxDim.apply(x, axis, keepdim, largest)
    idx = (np.argmax if largest else np.argmin)(x.array, axis=axis)
    indices = Tensor._make(np.expand_dims(idx, axis) if keepdim else idx, False)
    return values_indices(values, indices)


def amax(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("amax", x.ndim, dim, keepdim, kw)
    return AMax.apply(x, axes, keepdim, True)


def amin(x, dim=None, keepdim=False, **kw):
    axes, keepdim = _args("amin", x.ndim, dim, keepdim, kw)
    return AMax.apply(x, axes, keepdim, False)


class Var(Function):
    """Variance with Bessel's correction (`correction=1`, PyTorch's default)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, correction):
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
        return gy * (2.0 / ctx.denom) * xc, None, None, None  # d/dx sum((x-mu)^2) = 2(x-mu)


def var(x, dim=None, keepdim=False, correction=1, unbiased=None, **kw):
    axes, keepdim = _args("var", x.ndim, dim, keepdim, kw)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(x, axes, keepdim, correction)


def std(x, dim=None, keepdim=False, correction=1, unbiased=None, **kw):
    return var(x, dim, keepdim, correction, unbiased, **kw).sqrt()


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
