"""`Tensor`: a numpy array with a gradient, the operators, and the factory functions.

The ops themselves live in `nanoframe/ops/`; the methods here only route to them, so each op's
forward and backward stay side by side in one place.
"""
import numpy as np

from nanoframe import autograd
from nanoframe.random import default_generator

float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, uint8, bool_ = np.int32, np.int64, np.uint8, np.bool_


def _to_array(data, dtype=None):
    """ndarray from anything array-like. Python floats become float32; numpy arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.array
    from_numpy = isinstance(data, (np.ndarray, np.generic))
    try:
        arr = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise TypeError(f"cannot make a tensor from {type(data).__name__}: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor data must be numeric (bool, int or float), got dtype {arr.dtype}")
    if dtype is None and not from_numpy and arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate through them."""

    __array_priority__ = 1000  # so `ndarray * Tensor` defers to Tensor.__rmul__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.array = _to_array(data, dtype)
        self.grad_array = None
        self._grad_tensor = None
        self._node = None  # the op that made this tensor (None for leaves)
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad):
        """Wrap an op's output array without conversion."""
        t = cls.__new__(cls)
        t.array = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.grad_array = t._grad_tensor = t._node = None
        t._retains_grad, t.requires_grad = False, requires_grad
        return t

    # ---- storage: `array` and `grad_array` are the ndarrays; `data` and `grad` are Tensors over them
    @property
    def data(self):
        """A detached Tensor sharing this tensor's memory (as torch's `.data`)."""
        return Tensor._make(self.array, False)

    @data.setter
    def data(self, value):
        self.array = value.array if isinstance(value, Tensor) else _to_array(value)

    @property
    def grad(self):
        """The accumulated gradient as a Tensor sharing memory with `grad_array`, or None."""
        g = self.grad_array
        if g is None:
            return None
        if self._grad_tensor is None or self._grad_tensor.array is not g:
            self._grad_tensor = Tensor._make(g, False)
        return self._grad_tensor

    @grad.setter
    def grad(self, value):
        if value is None:
            self.grad_array = None
            return
        g = value.array if isinstance(value, Tensor) else np.asarray(value)
        if g.shape != self.array.shape:
            raise RuntimeError(f"assigned grad has shape {g.shape}, but the tensor has shape {self.array.shape}")
        self.grad_array = g

    # ---- properties and conversion -------------------------------------------------------------
    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.array.shape if dim is None else self.array.shape[dim]

    def numel(self):
        return self.array.size

    def dim(self):
        return self.array.ndim

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def numpy(self):
        return self.array

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.array.dtype:
            return self.array.astype(dtype)
        return self.array.copy() if copy else self.array

    def __repr__(self):
        body = np.array2string(self.array, separator=", ", prefix="tensor(")
        extra = "" if self.dtype == np.float32 or self.dtype == np.int64 else f", dtype={self.dtype}"
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra}{grad})"

    __hash__ = object.__hash__

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.array)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- autograd -------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retains_grad = True

    def detach(self):
        return Tensor._make(self.array, False)

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no grad_fn")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar output, got shape {self.shape}; "
                    "pass gradient=... of the same shape"
                )
            gradient = np.ones_like(self.array)
        else:
            # a copy: the engine may hand this array to a leaf's .grad, which is updated in place
            gradient = np.array(gradient.array if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward(): gradient has shape {gradient.shape}, tensor has shape {self.shape}")
        autograd.run_backward(self, gradient, retain_graph=retain_graph)

    # ---- operators ------------------------------------------------------------------------------
    def __add__(self, other):
        return elementwise.add(self, other)

    def __radd__(self, other):
        return elementwise.add(other, self)

    def __sub__(self, other):
        return elementwise.sub(self, other)

    def __rsub__(self, other):
        return elementwise.sub(other, self)

    def __mul__(self, other):
        return elementwise.mul(self, other)

    def __rmul__(self, other):
        return elementwise.mul(other, self)

    def __truediv__(self, other):
        return elementwise.div(self, other)

    def __rtruediv__(self, other):
        return elementwise.div(other, self)

    def __pow__(self, other):
        return elementwise.pow(self, other)

    def __rpow__(self, other):
        return elementwise.pow(other, self)

    def __matmul__(self, other):
        return matmul_ops.matmul(self, other)

    def __rmatmul__(self, other):
        return matmul_ops.matmul(other, self)

    def __neg__(self):
        return elementwise.neg(self)

    def __getitem__(self, index):
        return shape_ops.getitem(self, index)

    def _compare(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor._make(op(self.array, other), False)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    # ---- method forms of the ops (PyTorch names) -------------------------------------------------
    def add(self, other):
        return elementwise.add(self, other)

    def sub(self, other):
        return elementwise.sub(self, other)

    def mul(self, other):
        return elementwise.mul(self, other)

    def div(self, other):
        return elementwise.div(self, other)

    def pow(self, exponent):
        return elementwise.pow(self, exponent)

    def neg(self):
        return elementwise.neg(self)

    def exp(self):
        return elementwise.exp(self)

    def log(self):
        return elementwise.log(self)

    def sqrt(self):
        return elementwise.sqrt(self)

    def abs(self):
        return elementwise.abs(self)

    def tanh(self):
        return elementwise.tanh(self)

    def sigmoid(self):
        return elementwise.sigmoid(self)

    def relu(self):
        return elementwise.relu(self)

    def softmax(self, dim=-1):
        return activation.softmax(self, dim)

    def log_softmax(self, dim=-1):
        return activation.log_softmax(self, dim)

    def maximum(self, other):
        return elementwise.maximum(self, other)

    def minimum(self, other):
        return elementwise.minimum(self, other)

    def clip(self, min=None, max=None):
        return elementwise.clip(self, min, max)

    clamp = clip

    def masked_fill(self, mask, value):
        return elementwise.masked_fill(self, mask, value)

    def where(self, condition, other):
        return elementwise.where(condition, self, other)

    def matmul(self, other):
        return matmul_ops.matmul(self, other)

    def sum(self, dim=None, keepdim=False, **kw):
        return reduce_ops.sum(self, dim, keepdim, **kw)

    def mean(self, dim=None, keepdim=False, **kw):
        return reduce_ops.mean(self, dim, keepdim, **kw)

    def max(self, dim=None, keepdim=False, **kw):
        return reduce_ops.max(self, dim, keepdim, **kw)

    def min(self, dim=None, keepdim=False, **kw):
        return reduce_ops.min(self, dim, keepdim, **kw)

    def amax(self, dim=None, keepdim=False, **kw):
        return reduce_ops.amax(self, dim, keepdim, **kw)

    def amin(self, dim=None, keepdim=False, **kw):
        return reduce_ops.amin(self, dim, keepdim, **kw)

    def var(self, dim=None, keepdim=False, correction=1, **kw):
        return reduce_ops.var(self, dim, keepdim, correction=correction, **kw)

    def std(self, dim=None, keepdim=False, correction=1, **kw):
        return reduce_ops.std(self, dim, keepdim, correction=correction, **kw)

    def argmax(self, dim=None, keepdim=False):
        return reduce_ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return reduce_ops.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return shape_ops.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return shape_ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return shape_ops.transpose(self, dim0, dim1)

    swapaxes = transpose

    def permute(self, *dims):
        return shape_ops.permute(self, *dims)

    def expand(self, *shape):
        return shape_ops.expand(self, *shape)

    def broadcast_to(self, shape):
        return shape_ops.broadcast_to(self, shape)

    def squeeze(self, dim=None):
        return shape_ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return shape_ops.unsqueeze(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return shape_ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return shape_ops.chunk(self, chunks, dim)

    def to(self, dtype):
        return elementwise.cast(self, dtype)

    def float(self):
        return elementwise.cast(self, np.float32)

    def double(self):
        return elementwise.cast(self, np.float64)

    def long(self):
        return elementwise.cast(self, np.int64)

    def clone(self):
        return elementwise.clone(self)

    def contiguous(self):
        return self


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of `data` (floats default to float32; numpy float64 is kept)."""
    t = Tensor(data, requires_grad=requires_grad, dtype=dtype)
    if isinstance(data, (np.ndarray, Tensor)):
        t.array = t.array.copy()
    return t


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, fill_value, dtype=np.float32, requires_grad=False):
    return Tensor(np.full(_shape((shape,)), fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False):
    """Standard normal samples from the library's seeded generator."""
    data = default_generator().standard_normal(_shape(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False):
    """Uniform [0, 1) samples from the library's seeded generator."""
    data = default_generator().random(_shape(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low, high, size, dtype=np.int64):
    return Tensor(default_generator().integers(low, high, size=_shape((size,)), dtype=dtype))


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if is_int else np.float32
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


# The op modules import Tensor from this module, so they are bound after the class exists.
from nanoframe.ops import elementwise, shape as shape_ops, reduce as reduce_ops  # noqa: E402
from nanoframe.ops import matmul as matmul_ops  # noqa: E402
from nanoframe.ops import activation  # noqa: E402
