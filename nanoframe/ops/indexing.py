"""Index-driven ops: gather, scatter / scatter_add, index_select, and IndexPut (what `x[index] = v`
records when autograd needs it). Index tensors are integers; an index out of range is an IndexError
naming the dim and its size."""
import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.ops.reduce import normalize_dims
from nanoframe.tensor import Tensor


def _index_array(op, index):
    idx = index.array if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}(): expected an integer index tensor, got dtype {idx.dtype}")
    return idx


def _check_range(op, idx, n, dim):
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx.min() if idx.min() < -n else idx.max()
        raise IndexError(f"{op}(): index {bad} is out of bounds for dimension {dim} with size {n}")


def _along(idx, axis):
    """Full index tuple addressing x[..., idx[pos], ...] at every position of idx (dim `axis`)."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return tuple(grid)


def _check_shapes(op, idx, axis, **others):
    """torch's rule: index.size(d) <= other.size(d) for every d (except `axis` for the input)."""
    for name, (shape, skip_axis) in others.items():
        if len(shape) != idx.ndim:
            raise ValueError(f"{op}(): index has {idx.ndim} dims but {name} has {len(shape)}")
        for d, (i, s) in enumerate(zip(idx.shape, shape)):
            if i > s and not (skip_axis and d == axis):
                raise ValueError(f"{op}(): index {idx.shape} is larger than {name} {shape} at dim {d}")


class Gather(Function):
    @staticmethod
    def forward(ctx, x, idx, *, axis):
        ctx.shape, ctx.where = x.shape, _along(idx, axis)
        return x[ctx.where]

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.shape, gy.dtype)
        np.add.at(gx, ctx.where, gy)  # repeated indices add up
        return gx, None


def gather(x, dim, index):
    """out[i][j] = x[index[i][j]][j] for dim 0 (torch.gather); index has x's number of dims."""
    idx = _index_array("gather", index)
    (axis,) = normalize_dims(dim, max(x.ndim, 1), "gather")
    _check_shapes("gather", idx, axis, input=(x.shape, True))
    _check_range("gather", idx, x.shape[axis] if x.ndim else 1, dim)
    return Gather.apply(x, idx, axis=axis)


class Scatter(Function):
    """x with src written (or added, `add=True`) at index along axis."""

    @staticmethod
    def forward(ctx, x, src, idx, *, axis, add):
        where = _along(idx, axis)
        ctx.where, ctx.add, ctx.src_shape = where, add, np.shape(src)
        ctx.used = tuple(slice(0, n) for n in idx.shape)  # the part of src that is written
        src = np.broadcast_to(src, idx.shape) if np.ndim(src) == 0 else src[ctx.used]
        y = x.copy()
        if add:
            np.add.at(y, where, src)
        else:
            y[where] = src
        return y

    @staticmethod
    def backward(ctx, gy):
        nx, ns = ctx.needs_input_grad[:2]
        gx = gs = None
        if nx:
            gx = gy
            if not ctx.add:
                gx = gy.copy()
                gx[ctx.where] = 0  # overwritten elements do not reach the output
        if ns:
            gs = np.zeros(ctx.src_shape, gy.dtype)
            gs[ctx.used] = gy[ctx.where]
        return gx, gs, None


def _scatter(op, x, dim, index, src, value, add):
    idx = _index_array(op, index)
    (axis,) = normalize_dims(dim, max(x.ndim, 1), op)
    if (src is None) == (value is None):
        raise TypeError(f"{op}(): pass exactly one of src (a tensor) and value (a number)")
    shapes = {"self": (x.shape, True)}
    if src is not None:
        shapes["src"] = (src.shape, False)
    _check_shapes(op, idx, axis, **shapes)
    _check_range(op, idx, x.shape[axis] if x.ndim else 1, dim)
    if src is None:
        src = np.asarray(value, dtype=x.array.dtype)
    elif src.array.dtype != x.array.dtype:
        raise TypeError(f"{op}(): expected self and src to have the same dtype, got {x.dtype} and {src.dtype}")
    return Scatter.apply(x, src, idx, axis=axis, add=add)


def scatter(x, dim, index, src=None, *, value=None):
    """A copy of x with src[i][j] (or value) written at x[index[i][j]][j] for dim 0 (torch.scatter).
    A number in src's place is the value, as in `x.scatter(1, index, 1.0)`."""
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src
    return _scatter("scatter", x, dim, index, src, value, add=False)


def scatter_add(x, dim, index, src):
    """A copy of x with src added at index along dim; repeated indices add up."""
    return _scatter("scatter_add", x, dim, index, src, None, add=True)


def nonzero(x, *, as_tuple=False):
    """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one 1-D tensor per dim."""
    idx = np.nonzero(np.atleast_1d(x.array))
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64), False) for i in idx)
    if x.ndim == 0:  # a 0-d tensor: one empty index row if it is nonzero, as torch
        return Tensor._make(np.zeros((len(idx[0]), 0), np.int64), False)
    return Tensor._make(np.stack(idx, axis=1).astype(np.int64), False)


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, idx, *, axis):
        ctx.shape, ctx.idx, ctx.axis = x.shape, idx, axis
        return np.take(x, idx, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.shape, gy.dtype)
        np.add.at(np.moveaxis(gx, ctx.axis, 0), ctx.idx, np.moveaxis(gy, ctx.axis, 0))
        return gx, None


def index_select(x, dim, index):
    """x's entries at the 1-D integer `index` along dim."""
    idx = _index_array("index_select", index)
    if idx.ndim > 1:
        raise ValueError(f"index_select(): index must be 0-D or 1-D, got shape {idx.shape}")
    (axis,) = normalize_dims(dim, max(x.ndim, 1), "index_select")
    _check_range("index_select", idx, x.shape[axis] if x.ndim else 1, dim)
    return IndexSelect.apply(x, idx.reshape(-1), axis=axis)


class IndexPut(Function):
    """x with `value` written at `index` (any NumPy index): the recorded form of `x[index] = value`.
    The gradient of x is 0 where it was overwritten; value gets the gradient of where it went."""

    @staticmethod
    def forward(ctx, x, value, index):
        y = x.copy()
        y[index] = value
        ctx.index, ctx.value_shape = index, np.shape(value)
        return y

    @staticmethod
    def backward(ctx, gy):
        nx, nv = ctx.needs_input_grad[:2]
        gx = gv = None
        if nx:
            gx = gy.copy()
            gx[ctx.index] = 0
        if nv:
            g = gy[ctx.index]
            shape = ctx.value_shape
            while len(shape) > g.ndim and shape[0] == 1:  # value may carry extra leading 1s
                shape = shape[1:]
            gv = unbroadcast(g, shape).reshape(ctx.value_shape)
        return gx, gv, None
