"""Ops that copy elements into a new arrangement: flip, roll, repeat, repeat_interleave, tril/triu,
diag. Each backward sends every output gradient back to the element it was copied from."""
import operator

import numpy as np

from nanoframe.autograd import Function
from nanoframe.ops.reduce import normalize_dims
from nanoframe.tensor import Tensor


def _dims(dims):
    return (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, *, axes):
        ctx.axes = axes
        return np.flip(x, axes).copy()  # a copy, as torch.flip (NumPy would return a view)

    @staticmethod
    def backward(ctx, gy):
        return np.flip(gy, ctx.axes)


def flip(x, dims):
    return Flip.apply(x, axes=normalize_dims(_dims(dims), x.ndim, "flip"))


class Roll(Function):
    @staticmethod
    def forward(ctx, x, *, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return np.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, gy):
        return np.roll(gy, tuple(-s for s in ctx.shifts), ctx.axes)


def roll(x, shifts, dims=None):
    """Shift elements along dims, wrapping around; without dims, over the flattened tensor."""
    shifts = tuple(int(s) for s in _dims(shifts))
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: without dims, shifts must be one int, got {shifts}")
        return Roll.apply(x.reshape(-1), shifts=shifts, axes=(0,)).reshape(x.shape)
    dims = _dims(dims)
    if len(dims) != len(shifts):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    axes = tuple(normalize_dims(d, x.ndim, "roll")[0] for d in dims)
    return Roll.apply(x, shifts=shifts, axes=axes)


class Repeat(Function):
    """torch.repeat (NumPy's tile): sizes[i] copies along dim i; extra leading sizes add dims."""

    @staticmethod
    def forward(ctx, x, *, sizes):
        ctx.shape, ctx.sizes = x.shape, sizes
        return np.tile(x.reshape((1,) * (len(sizes) - x.ndim) + x.shape), sizes)

    @staticmethod
    def backward(ctx, gy):
        full = (1,) * (len(ctx.sizes) - len(ctx.shape)) + ctx.shape
        split = [n for pair in zip(ctx.sizes, full) for n in pair]  # (s0, d0, s1, d1, ...)
        g = gy.reshape(split).sum(axis=tuple(range(0, 2 * len(full), 2)))
        return g.reshape(ctx.shape)


def repeat(x, *sizes):
    sizes = tuple(operator.index(s) for s in (sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes))
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than "
                         f"the number of tensor dims ({x.ndim})")
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: sizes must be non-negative, got {sizes}")
    return Repeat.apply(x, sizes=sizes)


class RepeatInterleave(Function):
    @staticmethod
    def forward(ctx, x, *, repeats, axis):
        ctx.shape, ctx.axis = x.shape, axis
        ctx.source = np.repeat(np.arange(x.shape[axis]), repeats)  # output position -> input position
        return np.repeat(x, repeats, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.shape, gy.dtype)
        np.add.at(np.moveaxis(gx, ctx.axis, 0), ctx.source, np.moveaxis(gy, ctx.axis, 0))
        return gx


def repeat_interleave(x, repeats, dim=None):
    """Each element repeated `repeats` times (an int, or one count per element) along dim; without
    dim, over the flattened tensor."""
    if dim is None:
        x, axis = x.reshape(-1), 0
    else:
        (axis,) = normalize_dims(dim, x.ndim, "repeat_interleave")
    reps = repeats.array if isinstance(repeats, Tensor) else np.asarray(repeats)
    if reps.dtype.kind not in "iu" or reps.ndim > 1 or np.any(reps < 0):
        raise ValueError(f"repeat_interleave: repeats must be non-negative integers, got {repeats!r}")
    if reps.ndim == 1 and reps.shape[0] not in (1, x.shape[axis]):
        raise ValueError(f"repeat_interleave: repeats has {reps.shape[0]} counts for a dim of size {x.shape[axis]}")
    return RepeatInterleave.apply(x, repeats=reps, axis=axis)


class Triangle(Function):
    """The lower (tril) or upper (triu) triangle of the last two dims; the rest is 0."""

    @staticmethod
    def forward(ctx, x, *, diagonal, upper):
        ctx.diagonal, ctx.fn = diagonal, np.triu if upper else np.tril
        return ctx.fn(x, diagonal)

    @staticmethod
    def backward(ctx, gy):
        return ctx.fn(gy, ctx.diagonal)


def tril(x, diagonal=0):
    if x.ndim < 2:
        raise ValueError(f"tril: input tensor must have at least 2 dimensions, got shape {x.shape}")
    return Triangle.apply(x, diagonal=operator.index(diagonal), upper=False)


def triu(x, diagonal=0):
    if x.ndim < 2:
        raise ValueError(f"triu: input tensor must have at least 2 dimensions, got shape {x.shape}")
    return Triangle.apply(x, diagonal=operator.index(diagonal), upper=True)


class Diag(Function):
    """1-D x -> a square matrix with x on diagonal k; 2-D x -> its diagonal k (a copy)."""

    @staticmethod
    def forward(ctx, x, *, k):
        ctx.shape, ctx.k = x.shape, k
        return np.diag(x, k).copy()

    @staticmethod
    def backward(ctx, gy):
        if len(ctx.shape) == 1:
            return np.diagonal(gy, ctx.k).copy()
        gx = np.zeros(ctx.shape, gy.dtype)
        gx[_diag_index(ctx.shape, ctx.k)] = gy
        return gx


def _diag_index(shape, k):
    n = np.diag(np.empty(shape, bool), k).shape[0]
    rows = np.arange(n) + max(-k, 0)
    return rows, rows + k


def diag(x, diagonal=0):
    if x.ndim not in (1, 2):
        raise ValueError(f"diag: expected a 1-D or 2-D tensor, got shape {x.shape}")
    return Diag.apply(x, k=operator.index(diagonal))
