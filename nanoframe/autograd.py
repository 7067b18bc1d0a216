"""The autograd machinery: `Function` (forward and backward on ndarrays), grad mode, `unbroadcast`.

An op is a `Function` subclass with two static methods side by side:

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):            # ndarrays in, ndarray out
            y = np.exp(x)
            ctx.save_for_backward(y)    # save exactly what backward needs
            return y

        @staticmethod
        def backward(ctx, gy):          # gradient of the output in
            (y,) = ctx.saved_tensors
            return gy * y               # one gradient per input (None where not needed)

    def exp(x): return Exp.apply(x)

`Function.apply` unwraps Tensor arguments to their arrays, passes every other argument through
unchanged (as a constant), runs `forward`, and records a graph node when grad mode is on and an
input requires grad. Backward functions must never write into `gy` or any saved array in place:
gradients may be shared between several inputs.
"""
import functools

import numpy as np

_grad_enabled = True


def is_grad_enabled():
    """True unless inside `no_grad()`."""
    return _grad_enabled


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the previous mode on exit."""

    mode = True

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """`with nanoframe.no_grad():` (or `@nanoframe.no_grad()`) records no graph."""

    mode = False


class enable_grad(_GradMode):
    """Turn grad mode back on inside a `no_grad` block."""

    mode = True


def unbroadcast(grad, shape):
    """Sum `grad` (shaped like a broadcast result) back down to `shape`.

    The one place broadcasting is undone: leading dims numpy added are summed away, and dims that
    were 1 in `shape` but larger in `grad` are summed with keepdims.
    """
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Context:
    """Per-call scratch space of a Function: saved arrays plus any attributes forward sets."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        return self._saved


class Node:
    """One recorded op: the Function, its context, and the input Tensors (None for constants)."""

    __slots__ = ("fn", "ctx", "parents", "freed")

    def __init__(self, fn, ctx, parents):
        self.fn, self.ctx, self.parents, self.freed = fn, ctx, parents, False

    def free(self):
        """Drop saved arrays and inputs so the graph's memory can be released."""
        self.ctx, self.parents, self.freed = None, (), True


class Function:
    """Base class of every differentiable op. Subclasses define `forward` and `backward`."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError  # abstract: every subclass overrides it

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError  # abstract: every subclass overrides it

    @classmethod
    def apply(cls, *args, **kwargs):
        from nanoframe.tensor import Tensor

        arrays = [a.array if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = _grad_enabled and any(needs)
        ctx = Context(needs)
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except (ValueError, IndexError, TypeError) as e:
            shapes = ", ".join(str(tuple(np.shape(a))) for a in arrays if isinstance(a, np.ndarray))
            raise type(e)(f"{cls.__name__}: {e} (input shapes: {shapes})") from None
        out = Tensor._make(out, record)
        if record:
            parents = tuple(a if n else None for a, n in zip(args, needs))
            out._node = Node(cls, ctx, parents)
        return out


def run_backward(root, grad, retain_graph=False):
    """The engine: propagate `grad` (ndarray shaped like root) from `root` to every leaf.

    Walks the graph in reverse topological order with an explicit stack (no recursion limit),
    sums gradients arriving along several paths, checks every gradient's shape, accumulates into
    leaf `.grad`, and frees each node after use unless `retain_graph`.
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:  # iterative post-order DFS: inputs land in `order` before the ops that use them
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in visited or t._node is None:
            continue
        visited.add(id(t))
        if t._node.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or after its saved arrays "
                "were freed); call backward(retain_graph=True) the first time if you need to."
            )
        stack.append((t, True))
        stack.extend((p, False) for p in t._node.parents if p is not None and id(p) not in visited)

    grads = {id(root): grad}
    handed_to_leaves = set()  # ids of arrays stored as a leaf's .grad during this call
    if root._node is None:
        order = []
        _accumulate_leaf(root, grad, handed_to_leaves)
    for t in reversed(order):
        gy = grads.pop(id(t), None)
        node = t._node
        if t._retains_grad and gy is not None:
            t.grad_array = gy.copy() if t.grad_array is None else t.grad_array + gy  # own memory: gy may go on to a leaf
        if gy is None:
            if not retain_graph:
                node.free()
            continue
        gxs = node.fn.backward(node.ctx, gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(node.parents):
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned {len(gxs)} gradients for {len(node.parents)} inputs"
            )
        for p, gx in zip(node.parents, gxs):
            if p is None or gx is None:
                continue
            gx = np.asarray(gx)
            if gx.shape != p.array.shape:
                raise RuntimeError(
                    f"{node.fn.__name__}.backward returned a gradient of shape {gx.shape} "
                    f"for an input of shape {p.array.shape}"
                )
            if gx.dtype != p.array.dtype:
                gx = gx.astype(p.array.dtype)
            if p._node is None:
                _accumulate_leaf(p, gx, handed_to_leaves)
            else:
                prev = grads.get(id(p))
                grads[id(p)] = gx if prev is None else prev + gx
        if not retain_graph:
            node.free()


def _accumulate_leaf(leaf, g, handed):
    """Add g into leaf.grad_array (PyTorch semantics: grads accumulate across backward calls).

    A leaf's .grad must own its memory (optimizers and clip_grad_norm_ update it in place), so a
    view, or an array already given to another leaf, is copied first.
    """
    if not leaf.requires_grad:
        return
    if leaf.grad_array is None:
        if g.base is not None or id(g) in handed or not g.flags.writeable:
            g = g.copy()
        handed.add(id(g))
        leaf.grad_array = g
    elif leaf.grad_array.flags.writeable and leaf.grad_array.dtype == g.dtype:
        leaf.grad_array += g                       # in place, as torch: a held `p.grad` sees the sum
    else:
        leaf.grad_array = leaf.grad_array + g
