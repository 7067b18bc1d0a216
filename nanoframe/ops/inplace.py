"""In-place ops with torch's semantics: `x.add_(y)`, `x += y`, `x[i] = v`, `x.zero_()`...

An in-place op runs its out-of-place Function, writes the result into the tensor's memory (so views
and other aliases see it), bumps the tensor's version counter, and, when autograd records the op,
makes it the tensor's history: a tensor's node is replaced (the old value's node stays an input of
the new one); for a view, its base gets a `CopySlices` node (the base's old value with the view's
region replaced by the new value) and the view's other aliases re-derive their history on use.

torch's refusals: an in-place op on a leaf that requires grad (or a view of one) while grad mode is
on; a dtype the result cannot be cast to (`int_tensor.add_(0.5)`); a result broadcast to a larger
shape; writing into an expanded tensor whose elements share memory.
"""
import numpy as np

from nanoframe import autograd
from nanoframe.autograd import Context, Function
from nanoframe.dtypes import can_cast, from_numpy
from nanoframe.ops.elementwise import cast
from nanoframe.ops.indexing import IndexPut
from nanoframe.ops.shape import _normalize_index
from nanoframe.tensor import Tensor


def check_writable(t):
    """Raise torch's errors for an in-place change of t."""
    if autograd.is_grad_enabled():
        if t.requires_grad and t._node is None and t._base is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        base = t._base
        if base is not None and base.requires_grad and base._node is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if not t.array.flags.writeable:
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers "
                           "to a single memory location (an expanded tensor?). Please clone() the tensor "
                           "before performing the operation.")


def apply_inplace(t, fn, *args, **kwargs):
    """t <- fn(t, *args, **kwargs) in place; returns t."""
    check_writable(t)
    new = fn(t, *args, **kwargs)
    if new.shape != t.shape:
        raise RuntimeError(f"output with shape {list(t.shape)} doesn't match the broadcast shape {list(new.shape)}")
    if new.array.dtype != t.array.dtype:
        if not can_cast(new.array.dtype, t.array.dtype):
            raise RuntimeError(f"result type {from_numpy(new.array.dtype)} can't be cast to the desired "
                               f"output type {t.dtype}")
        new = cast(new, t.array.dtype)
    if new._node is not None and new._node.versions:
        _keep_overwritten(new._node, t)
    np.copyto(t.array, new.array)
    _commit(t, new)
    return t


def _keep_overwritten(node, t):
    """The op saved t's memory for its backward (log_ needs the old x): give it a copy of the old
    values before they are overwritten, as torch saves the original self."""
    vc = t._vc
    if not any(counter is vc for counter, _, _ in node.versions):
        return
    owner = autograd._owner(t.array)
    node.ctx._saved = tuple(s.copy() if isinstance(s, np.ndarray) and autograd._owner(s) is owner else s
                            for s in node.ctx._saved)
    node.versions = [v for v in node.versions if v[0] is not vc] or None


def _commit(t, new):
    """Bump t's version; if autograd recorded `new`, make it t's history (and its base's)."""
    vc = t._counter()
    vc.value += 1
    if not autograd.is_grad_enabled():
        return
    base = t._base
    if base is None:
        if new.requires_grad or t.requires_grad:
            if t._retains_grad and t._node is not None:
                t._node.retained = None  # .grad is the gradient of the new value (as torch)
            t._node, t.requires_grad = new._node, new.requires_grad
            if t._retains_grad and t._node is not None:
                t._node.retained = t
        return
    if new.requires_grad or base.requires_grad:
        res = CopySlices.apply(base, new, chain=t._view_chain)
        base._node, base.requires_grad = res._node, True
    t._node, t.requires_grad, t._view_version = new._node, new.requires_grad, vc.value


class CopySlices(Function):
    """The history of an in-place op on a view: the base's old value with the view's region
    replaced by `value`. `chain` re-makes the view from the base (see Function.apply)."""

    @staticmethod
    def forward(ctx, base, value, chain):
        ctx.chain = chain
        return base  # already written in place

    @staticmethod
    def backward(ctx, gy):
        nb, nv = ctx.needs_input_grad[:2]
        region, _ = _through_chain(ctx.chain, gy)
        g_value = np.array(region) if nv else None
        g_base = None
        if nb:  # the overwritten region does not reach the output from the old base
            g_base = gy.copy()
            target, ctxs = _through_chain(ctx.chain, g_base)
            if np.may_share_memory(target, g_base):
                target[...] = 0
            else:  # the chain copied (a reshape of a strided layout): subtract the region instead
                g_base -= _back_through(ctxs, region)
        return g_base, g_value


def _through_chain(chain, a):
    """The view ops of `chain` applied to an array (views of `a` where NumPy can), with their contexts."""
    ctxs = []
    for cls, rest, kwargs in chain:
        ctx = Context((True,) + (False,) * len(rest))
        a = cls.forward(ctx, a, *rest, **kwargs)
        ctxs.append((cls, ctx))
    return a, ctxs


def _back_through(ctxs, g):
    """A region's gradient placed back into the base's shape (zeros elsewhere)."""
    for cls, ctx in reversed(ctxs):
        g = cls.backward(ctx, g)[0]
    return g


class Fill(Function):
    """Every element set to `value` (a number or a 0-d tensor, or a full array of random draws):
    the old value gets gradient 0, a 0-d value tensor the sum."""

    @staticmethod
    def forward(ctx, x, value):
        return np.broadcast_to(np.asarray(value, dtype=x.dtype), x.shape).copy()

    @staticmethod
    def backward(ctx, gy):
        nx, nv = ctx.needs_input_grad
        return (np.zeros_like(gy) if nx else None), (gy.sum() if nv else None)


class Copy(Function):
    """x's elements replaced by src (broadcast to x's shape, cast to x's dtype)."""

    @staticmethod
    def forward(ctx, x, src):
        ctx.src_shape = np.shape(src)
        return np.broadcast_to(src, x.shape).astype(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        nx, ns = ctx.needs_input_grad
        return (np.zeros_like(gy) if nx else None), (autograd.unbroadcast(gy, ctx.src_shape) if ns else None)


def fill_(t, value):
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions.")
    return apply_inplace(t, Fill.apply, value)


def copy_(t, src):
    src = src if isinstance(src, Tensor) else Tensor(src)
    if np.broadcast_shapes(src.shape, t.shape) != t.shape:
        raise RuntimeError(f"copy_: the source of shape {tuple(src.shape)} does not broadcast to {tuple(t.shape)}")
    return apply_inplace(t, Copy.apply, src)


def setitem(t, index, value):
    """`t[index] = value`: value (a number, array or Tensor) broadcast and cast to t's dtype; recorded
    by autograd when t or value needs a gradient."""
    raw = _normalize_index(index)[2]
    check_writable(t)
    base = t._base
    needs_graph = autograd.is_grad_enabled() and t.array.dtype.kind == "f" and (
        (isinstance(value, Tensor) and value.requires_grad) or t.requires_grad
        or (base is not None and base.requires_grad))
    try:
        if not needs_graph:
            t.array[raw] = value.array if isinstance(value, Tensor) else value
            t._counter().value += 1
            return
        if isinstance(value, Tensor) and value.array.dtype != t.array.dtype:
            value = cast(value, t.array.dtype) if value.array.dtype.kind == "f" else value.array.astype(t.array.dtype)
        apply_inplace(t, IndexPut.apply, value, raw)
    except ValueError as e:
        raise RuntimeError(f"shape mismatch in index assignment: {e}") from e
