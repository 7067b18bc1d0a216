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
import weakref

import numpy as np

_grad_enabled = True


def is_grad_enabled():
    """True unless inside `no_grad()`, `inference_mode()` or after `set_grad_enabled(False)`."""
    return _grad_enabled


_inference = False


def is_inference_mode_enabled():
    return _inference


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the previous mode on exit."""

    mode = True

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if len(args) == 1 and not kwargs and callable(args[0]):  # bare `@no_grad` on a function
            self.__init__()
            return self(args[0])
        return self

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def _fresh(self):
        """A new instance with the same settings: each decorated call gets its own saved state."""
        return self.__class__()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


_arrays_in_layers = False


class array_inference:
    """Inside `with array_inference():` the layers (Linear, LayerNorm, GELU, Dropout, LoRALinear)
    called on a plain ndarray run their op's kernel on it and return an ndarray: no Tensor, no
    graph, no dropout. Cached decoding runs the model's own forward this way (models/generate.py).
    Outside it, a layer given an ndarray wraps it in a Tensor as always."""

    def __enter__(self):
        global _arrays_in_layers
        self._prev, _arrays_in_layers = _arrays_in_layers, True
        return self

    def __exit__(self, *exc):
        global _arrays_in_layers
        _arrays_in_layers = self._prev
        return False


def arrays_in_layers(x):
    """True when a layer should run its kernel on x: x is an ndarray inside array_inference()."""
    return _arrays_in_layers and type(x) is np.ndarray


class no_grad(_GradMode):
    """`with nanoframe.no_grad():` (or `@nanoframe.no_grad()`) records no graph."""

    mode = False


class enable_grad(_GradMode):
    """Turn grad mode back on inside a `no_grad` block."""

    mode = True


class inference_mode(_GradMode):
    """torch.inference_mode: here the same as no_grad (`inference_mode(False)` changes nothing)."""

    def __init__(self, mode=True):
        self._inference_arg = bool(mode)

    def __enter__(self):
        global _inference
        self._prev_inference, _inference = _inference, _inference or self._inference_arg
        self.mode = False if self._inference_arg else _grad_enabled
        return super().__enter__()

    def __exit__(self, *exc):
        global _inference
        _inference = self._prev_inference
        return super().__exit__(*exc)

    def _fresh(self):
        return inference_mode(self._inference_arg)


class set_grad_enabled(_GradMode):
    """`set_grad_enabled(False)` switches grad mode at once (a function call); as a context manager
    it restores the previous mode on exit; as a decorator it sets the mode for each call only."""

    def __init__(self, mode):
        global _grad_enabled
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled() expects a bool, got {type(mode).__name__}")
        self.mode = mode
        self._prev, _grad_enabled = _grad_enabled, mode

    def __enter__(self):
        return self  # already set by the constructor

    def __call__(self, fn):
        global _grad_enabled
        _grad_enabled = self._prev  # decorating must not change the mode
        return super().__call__(fn)

    def _fresh(self):
        return set_grad_enabled(self.mode)  # sets the mode now and restores it on __exit__


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


# ---- the graph ------------------------------------------------------------------------------------
# A recorded op is a Node (a tensor's grad_fn). Its `parents` are edges, one per forward argument:
# None (a constant, or no gradient needed), the Node that made a non-leaf input, or the leaf Tensor
# itself (its gradient is accumulated into .grad). Edges point at Nodes rather than Tensors so that
# an in-place op can give a tensor a new history while the ops that used its old value keep theirs.
#
# In-place ops and versions (torch's rules): every tensor has a version counter, shared with its
# views, that each in-place change bumps. A Node records the versions of the input/output tensors
# whose memory it saved for backward; backward refuses to run on a changed one. Views: the output
# of a `view = True` Function that shares the input's memory records its base (the tensor owning
# the memory) and how to re-make it from the base (`_view_chain`); after an in-place change of the
# base or of any of its views, a view re-derives its history from the base's new one when used.

class VersionCounter:
    """How many in-place changes a tensor's memory has had (one counter per base and its views)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class Context:
    """Per-call scratch space of a Function: saved arrays plus any attributes forward sets."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save_for_backward(self, *arrays):
        """Save what backward needs (None entries allowed). Inputs and outputs saved here are
        version-checked: changing them in place before backward is an error, as in torch."""
        self._saved = arrays

    @property
    def saved_tensors(self):
        return self._saved


class Node:
    """One recorded op (a tensor's `grad_fn`): the Function, its context and the edges to its inputs.

    `shape`/`dtype` describe the output (the gradient arriving here must match), `versions` the
    saved tensors' (counter, version) pairs, `hooks` the hooks registered on the output tensor,
    `retained` the output tensor if it called retain_grad().
    """

    __slots__ = ("fn", "ctx", "parents", "shape", "dtype", "versions", "hooks", "retained", "freed")

    def __init__(self, fn, ctx, parents, out):
        self.fn, self.ctx, self.parents = fn, ctx, parents
        self.shape, self.dtype = out.shape, out.dtype
        self.versions = self.hooks = self.retained = None
        self.freed = False

    def name(self):
        return f"{self.fn.__name__.removesuffix('Op')}Backward"

    def __repr__(self):
        return f"<{self.name()} object>"

    @property
    def next_functions(self):
        """(node, 0) per input as torch: a Node, or the leaf Tensor accumulating the gradient, or None."""
        return tuple((p, 0) for p in self.parents)

    def free(self):
        """Drop saved arrays (also those referenced by `versions`) and inputs so the graph's memory
        can be released."""
        self.ctx, self.parents, self.versions, self.retained, self.freed = None, (), None, None, True


class Function:
    """Base class of every differentiable op. Subclasses define `forward` and `backward`.

    `view = True` marks ops whose output can share the first input's memory (reshape, permute,
    basic indexing, expand): such an output is a view for in-place ops and version counting.
    """

    view = False

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError  # abstract: every subclass overrides it

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError  # abstract: every subclass overrides it

    @classmethod
    def apply(cls, *args, **kwargs):
        arrays, needs = [], []
        for a in args:
            if isinstance(a, Tensor):
                if a._base is not None and _grad_enabled:
                    refresh_view(a)
                arrays.append(a.array)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                needs.append(False)
        record = _grad_enabled and any(needs)
        ctx = Context(tuple(needs))
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except (ValueError, IndexError, TypeError) as e:
            shapes = ", ".join(str(tuple(np.shape(a))) for a in arrays if isinstance(a, np.ndarray))
            raise type(e)(f"{cls.__name__}: {e} (input shapes: {shapes})") from e
        out = Tensor._make(out, record)
        if cls.view and isinstance(args[0], Tensor):
            _link_view(out, args[0], (cls, args[1:], kwargs))
        if record:
            parents = tuple((a._node or a) if n else None for a, n in zip(args, needs))
            node = out._node = Node(cls, ctx, parents, out.array)
            if ctx._saved:
                node.versions = _saved_versions(ctx._saved, args, out)
        return out


def _owner(a):
    """The array owning a's memory (NumPy points every view's .base at it)."""
    return a if a.base is None else a.base


def _link_view(out, x, step):
    """Make `out` a view of x's base if it shares x's memory (reshape may copy)."""
    if not np.may_share_memory(out.array, x.array):
        return
    out._base = x if x._base is None else x._base
    out._vc = x._counter()
    out._view_version = out._vc.value
    out._view_chain = x._view_chain + (step,)


def _saved_versions(saved, args, out):
    """(counter, version, array) of each input/output tensor whose memory forward saved."""
    owners = [id(_owner(s)) for s in saved if type(s) is np.ndarray]
    found = []
    for t in (*args, out):
        if isinstance(t, Tensor) and id(_owner(t.array)) in owners:
            vc = t._vc or t._counter()
            found.append((vc, vc.value, t.array))
    return found or None


def refresh_view(t):
    """Re-derive a view's history from its base after an in-place change (torch does the same)."""
    vc = t._vc
    if t._view_version == vc.value:
        return
    t._view_version = vc.value
    r = t._base
    with enable_grad():
        for cls, rest, kwargs in t._view_chain:
            r = cls.apply(r, *rest, **kwargs)
    t._node, t.requires_grad = r._node, r.requires_grad


def _check_versions(node):
    for vc, version, a in node.versions:
        if vc.value != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{a.dtype} tensor of shape {a.shape}] saved by {node.fn.__name__} "
                f"is at version {vc.value}; "
                f"expected version {version} instead. Hint: use an out-of-place op (x = x + 1, not "
                "x += 1) or clone() the tensor before changing it."
            )


class RemovableHandle:
    """What register_hook returns: `handle.remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks):
        self._hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self._hooks.pop(self.id, None)


def _run_hooks(hooks, g):
    """Call each hook with the gradient (a Tensor); a hook's non-None result replaces it."""
    for hook in list(hooks.values()):
        out = hook(Tensor._make(g, False))
        if out is not None:
            new = out.array if isinstance(out, Tensor) else np.asarray(out)
            if new.shape != g.shape:
                raise RuntimeError(f"hook returned a gradient of shape {new.shape}, expected {g.shape}")
            g = new.astype(g.dtype, copy=False)
    return g


def run_backward(root, grad, retain_graph=False):
    """The engine: propagate `grad` (ndarray shaped like root) from `root` to every leaf.

    Walks the graph's Nodes in reverse topological order with an explicit stack (no recursion
    limit), sums gradients arriving along several paths, checks every gradient's shape and the
    saved tensors' versions, runs tensor hooks, accumulates into leaf `.grad`, and frees each node
    after use unless `retain_graph`.
    """
    if root._base is not None:
        refresh_view(root)
    top = root._node
    handed = set()  # ids of arrays stored as a leaf's .grad during this call
    if top is None:
        _accumulate_leaf(root, _run_hooks(root._hooks, grad) if root._hooks else grad, handed)
        if _post_accumulate_hooks:
            _PendingLeaves([]).finish({id(root): root})
        return
    order, visited, stack = [], set(), [(top, False)]
    while stack:  # iterative post-order DFS: inputs land in `order` before the ops that use them
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        if node.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or after its saved arrays "
                "were freed); call backward(retain_graph=True) the first time if you need to."
            )
        stack.append((node, True))
        stack.extend((p, False) for p in node.parents if type(p) is Node and id(p) not in visited)

    grads = {id(top): grad}
    hooked = {}  # leaves with hooks: their gradient is summed first, then hooked, then accumulated
    pending = _PendingLeaves(order) if _post_accumulate_hooks else None
    # Gradients are IEEE's, silently, as torch's (d log(x) at 0 = inf, inf * 0 = nan): one errstate
    # for the whole walk costs less than one per node. The user's NumPy settings are untouched.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for node in reversed(order):
            gy = grads.pop(id(node), None)
            if gy is not None:
                _backward_node(node, gy, grads, hooked, handed, pending)
            if not retain_graph:
                node.free()
    for leaf, g in hooked.values():
        _accumulate_leaf(leaf, _run_hooks(leaf._hooks, g), handed)
    if pending is not None:
        pending.finish({id(leaf): leaf for leaf, _ in hooked.values()})


def _backward_node(node, gy, grads, hooked, handed, pending=None):
    """Run one node's backward and send each input's gradient on along its edge."""
    if node.hooks:
        gy = _run_hooks(node.hooks, gy)
    if node.retained is not None and node.retained._retains_grad:
        t = node.retained  # own memory: gy may go on to a leaf
        t.grad_array = gy.copy() if t.grad_array is None else t.grad_array + gy
    if node.versions:
        _check_versions(node)
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
        is_node = type(p) is Node
        shape, dtype = (p.shape, p.dtype) if is_node else (p.array.shape, p.array.dtype)
        if gx.shape != shape:
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned a gradient of shape {gx.shape} "
                f"for an input of shape {shape}"
            )
        if gx.dtype != dtype:
            gx = gx.astype(dtype)
        if is_node:
            prev = grads.get(id(p))
            grads[id(p)] = gx if prev is None else prev + gx
        elif p._hooks:
            prev = hooked.get(id(p))
            hooked[id(p)] = (p, gx if prev is None else prev[1] + gx)
        else:
            _accumulate_leaf(p, gx, handed)
            if pending is not None:
                pending.contributed(p)


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


# ---- post-accumulate-grad hooks ---------------------------------------------------------------------
# torch.Tensor.register_post_accumulate_grad_hook: hook(leaf) runs once per backward call, after every
# contribution of that call has been added into leaf.grad. Data-parallel training
# (nanoframe.distributed) starts a bucket's all-reduce from them while the backward pass is still
# producing earlier layers' gradients. Without any registered hook the engine pays one dict check.
_post_accumulate_hooks = {}  # id(leaf) -> (weakref to the leaf, {handle id: hook})


def register_post_accumulate_grad_hook(tensor, hook):
    """Call hook(tensor) after each backward call has accumulated all of its gradient into
    tensor.grad (a leaf that requires grad). Returns a handle whose remove() unregisters it."""
    if not tensor.requires_grad or tensor._node is not None:
        raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors that require grad")
    entry = _post_accumulate_hooks.get(id(tensor))
    if entry is None or entry[0]() is not tensor:      # a dead leaf's id may be reused
        entry = _post_accumulate_hooks[id(tensor)] = (weakref.ref(tensor, _forget_post_hooks(id(tensor))), {})
    handle = RemovableHandle(entry[1])
    entry[1][handle.id] = hook
    return handle


def _forget_post_hooks(key):
    def forget(ref):
        entry = _post_accumulate_hooks.get(key)
        if entry is not None and entry[0] is ref:
            del _post_accumulate_hooks[key]
    return forget


class _PendingLeaves:
    """Counts, for one backward call, the edges still to deliver into each leaf with post-accumulate
    hooks; the hooks run when a leaf's count reaches 0 (or at the end, for a leaf some of whose
    edges carried no gradient)."""

    def __init__(self, order):
        self.left, self.fired, self.touched = {}, set(), {}
        for node in order:
            for p in node.parents:
                if p is not None and type(p) is not Node and id(p) in _post_accumulate_hooks:
                    self.left[id(p)] = self.left.get(id(p), 0) + 1

    def contributed(self, leaf):
        key = id(leaf)
        if key not in self.left:
            return
        self.touched[key] = leaf
        self.left[key] -= 1
        if self.left[key] == 0:
            self._fire(leaf)

    def finish(self, accumulated):
        """After the walk: fire the leaves accumulated at the end (tensor hooks) and the rest."""
        for key, leaf in {**self.touched, **accumulated}.items():
            if key not in self.fired:
                self._fire(leaf)

    def _fire(self, leaf):
        self.fired.add(id(leaf))
        entry = _post_accumulate_hooks.get(id(leaf))
        if entry is not None and entry[0]() is leaf and leaf.requires_grad:
            for hook in list(entry[1].values()):
                hook(leaf)


Tensor = None  # nanoframe.tensor binds the Tensor class here once it exists (it imports this module)
