"""Shape ops: reshape/view, flatten, transpose/permute, expand, squeeze/unsqueeze, indexing,
narrow/unbind, cat/stack, split/chunk. Their backwards move gradients back to where the values
came from. Reshape, permute, expand and basic indexing return views (`view = True`): they share
the input's memory, as in torch, so in-place ops on them change the base (see nanoframe/autograd.py).
"""
import operator

import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.dtypes import result_type
from nanoframe.ops.elementwise import cast
from nanoframe.ops.reduce import normalize_dims
from nanoframe.tensor import Tensor


def _shape_arg(shape, op="reshape"):
    """Accept reshape(2, 3) and reshape((2, 3)) alike; each size must be an int (or a one-element
    integer tensor), else a TypeError naming the argument and position."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = []
    for i, s in enumerate(shape):
        try:
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(f"{op}(): argument 'shape' must be a tuple of ints, but found element of "
                            f"type {type(s).__name__} at pos {i}") from None
    return tuple(out)


class Reshape(Function):
    view = True

    @staticmethod
    def forward(ctx, x, *, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {shape}") from None

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.shape)


def reshape(x, *shape):
    """x with a new shape (one dim may be -1); a view when the memory layout allows, else a copy."""
    return Reshape.apply(x, shape=_shape_arg(shape))


def view(x, *shape):
    """reshape that never copies: an error where the layout needs a copy (after a transpose), as torch."""
    shape = _shape_arg(shape, "view")
    probe = x.array.view()
    try:
        probe.shape = shape  # NumPy refuses to set a shape that needs a copy
    except AttributeError:
        raise RuntimeError(f"view size is not compatible with input tensor's size and stride: shape "
                           f"{x.shape} cannot be viewed as {shape} without a copy. Use .reshape(...) "
                           "instead.") from None
    except ValueError:
        pass  # a size mismatch: Reshape reports it
    return Reshape.apply(x, shape=shape)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim (inclusive) into one."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = (normalize_dims(d, x.ndim, "flatten")[0] for d in (start_dim, end_dim))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
    return reshape(x, shape)


class Permute(Function):
    view = True

    @staticmethod
    def forward(ctx, x, *, dims):
        ctx.inverse = tuple(np.argsort(dims))
        return np.transpose(x, dims)

    @staticmethod
    def backward(ctx, gy):
        return np.transpose(gy, ctx.inverse)


def permute(x, *dims):
    dims = _shape_arg(dims, "permute")
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor of shape {x.shape}")
    axes = tuple(d % x.ndim for d in dims)
    normalize_dims(dims, x.ndim, "permute")  # range and repeat checks
    return Permute.apply(x, dims=axes)


def transpose(x, dim0, dim1):
    """Swap two dims (PyTorch's transpose; NumPy calls it swapaxes)."""
    a, b = (normalize_dims(d, x.ndim, "transpose")[0] for d in (dim0, dim1))
    dims = list(range(x.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(x, dims=tuple(dims))


swapaxes = transpose


class Expand(Function):
    view = True

    @staticmethod
    def forward(ctx, x, *, shape):
        ctx.shape = x.shape
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: shape {x.shape} cannot be broadcast to {shape}") from None

    @staticmethod
    def backward(ctx, gy):
        return unbroadcast(gy, ctx.shape)


def expand(x, *shape):
    """Broadcast x to `shape`; -1 keeps a dim as it is (PyTorch's expand)."""
    shape = list(_shape_arg(shape, "expand"))
    lead = len(shape) - x.ndim
    for i in range(x.ndim):
        if shape[lead + i] == -1:
            shape[lead + i] = x.shape[i]
    return Expand.apply(x, shape=tuple(shape))


def broadcast_to(x, shape):
    return Expand.apply(x, shape=tuple(shape))


def squeeze(x, dim=None):
    """Drop size-1 dims (all of them, or the given ones; a non-1 dim is left as PyTorch does)."""
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = normalize_dims(dim, x.ndim, "squeeze")
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return reshape(x, shape)


def unsqueeze(x, dim):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} out of range for a tensor with {x.ndim} dims")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def _normalize_index(index):
    """Tensors become arrays, lists become arrays, boolean masks become their nonzero() indices,
    and a 0-d integer tensor becomes an int (as torch: x[t] is then a view, like x[1]).

    Returns (index, advanced, raw) where advanced means integer-array indexing (ids may repeat) and
    raw keeps the masks as they are, so numpy checks their shapes in the forward."""
    items = index if isinstance(index, tuple) else (index,)
    out, raw, advanced = [], [], False
    for it in items:
        if isinstance(it, Tensor):
            it = it.array
        if isinstance(it, list):
            it = np.asarray(it)
        if isinstance(it, np.ndarray):
            if it.dtype == bool:
                out.extend(np.nonzero(it))
                raw.append(it)
                advanced = True
                continue
            if it.dtype.kind not in "iu":
                raise IndexError(f"tensors used as indices must be integer or bool tensors, got dtype {it.dtype}")
            if it.ndim == 0:
                it = int(it)
            else:
                advanced = True
        out.append(it)
        raw.append(it)
    return tuple(out), advanced, tuple(raw)


class GetItem(Function):
    view = True

    @staticmethod
    def forward(ctx, x, *, index, advanced, raw_index):
        ctx.shape, ctx.dtype, ctx.index, ctx.advanced = x.shape, x.dtype, index, advanced
        if not advanced and not any(i is Ellipsis for i in raw_index):
            raw_index = raw_index + (Ellipsis,)  # x[0] of a vector: a 0-d view, not a NumPy scalar copy
        return x[raw_index]  # masks as given: numpy rejects one whose shape does not match

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.shape, dtype=gy.dtype)
        if ctx.advanced:
            np.add.at(gx, ctx.index, gy)  # repeated indices add up
        else:
            gx[ctx.index] = gy
        return gx


def getitem(x, index):
    index, advanced, raw = _normalize_index(index)
    return GetItem.apply(x, index=index, advanced=advanced, raw_index=raw)


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return tuple(np.split(gy, ctx.bounds, axis=ctx.axis))


def _common_dtype(tensors):
    """The tensors cast to torch's common dtype (cat of int64 and float32 is float32)."""
    dtype = result_type(*tensors)
    return [t if not isinstance(t, Tensor) or t.array.dtype == dtype else cast(t, dtype) for t in tensors]


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    (axis,) = normalize_dims(dim, tensors[0].ndim, "cat")
    return Cat.apply(*_common_dtype(tensors), axis=axis)


concatenate = cat


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return tuple(np.moveaxis(gy, ctx.axis, 0))


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    ndim = tensors[0].ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim {dim} out of range for {ndim} dims")
    return Stack.apply(*_common_dtype(tensors), axis=dim % ndim)


def hstack(tensors):
    """cat along dim 1 (dim 0 for 1-D tensors), as torch.hstack."""
    tensors = [t if t.ndim else t.reshape(1) for t in tensors]
    return cat(tensors, 0 if tensors and tensors[0].ndim == 1 else 1)


def vstack(tensors):
    """cat along dim 0 after making 0-d/1-D tensors rows (1, n), as torch.vstack."""
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


def narrow(x, dim, start, length):
    """x's elements start..start+length-1 along dim (a view)."""
    (axis,) = normalize_dims(dim, x.ndim, "narrow")
    n = x.shape[axis]
    start, length = operator.index(start), operator.index(length)
    if start < 0:
        start += n
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise IndexError(f"narrow: start {start} and length {length} are out of range for dim {dim} of size {n}")
    return getitem(x, (slice(None),) * axis + (slice(start, start + length),))


def unbind(x, dim=0):
    """The slices of x along dim, as a tuple of views."""
    (axis,) = normalize_dims(dim, x.ndim, "unbind")
    return tuple(getitem(x, (slice(None),) * axis + (i,)) for i in range(x.shape[axis]))


def t(x):
    """Transpose of a matrix; 0-d and 1-D tensors come back as they are (torch.t)."""
    if x.ndim > 2:
        raise ValueError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return x if x.ndim < 2 else transpose(x, 0, 1)


def split(x, split_size_or_sections, dim=0):
    """Pieces of x along dim: of size `split_size` each (last may be smaller) or of the given sizes."""
    (axis,) = normalize_dims(dim, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - i) for i in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, but dim {dim} has size {n}")
    pieces, start = [], 0
    for s in sizes:
        index = (slice(None),) * axis + (slice(start, start + s),)
        pieces.append(getitem(x, index))
        start += s
    return tuple(pieces)


def chunk(x, chunks, dim=0):
    """Split into `chunks` pieces of ceil(n / chunks) (PyTorch's chunk)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    (axis,) = normalize_dims(dim, x.ndim, "chunk")
    n = x.shape[axis]
    return split(x, max(-(-n // chunks), 1), dim)
