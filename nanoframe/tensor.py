"""`Tensor`: a NumPy array with a gradient and torch's Tensor API.

The ops themselves live in `nanoframe/ops/`; the methods here and in tensor_methods.py only route
to them, so each op's forward and backward stay side by side in one place. In-place methods
(`add_`, `x += y`, `x[i] = v`, ...) go through `nanoframe/ops/inplace.py`, which gives them torch's
semantics (version counters, history rewriting, the leaf refusal). The factories (`zeros`,
`randn`, ...) are in `nanoframe/factories.py`.
"""
import numpy as np

from nanoframe import autograd, dtypes
from nanoframe.device import CPU, check_cpu
from nanoframe.tensor_methods import TensorMethods

float16, float32, float64 = dtypes.float16, dtypes.float32, dtypes.float64
int32, int64, uint8, bool_ = dtypes.int32, dtypes.int64, dtypes.uint8, dtypes.bool_


def _to_array(data, dtype=None):
    """ndarray from anything array-like (dtype: a NumPy dtype or None). Python floats take the
    default float dtype; NumPy arrays and scalars keep theirs."""
    if isinstance(data, Tensor):
        data = data.array
    numpy_input = isinstance(data, (np.ndarray, np.generic))
    try:
        arr = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise TypeError(f"cannot make a tensor from {type(data).__name__}: {e}") from None
    if arr.dtype not in dtypes.SUPPORTED_NUMPY:
        raise TypeError(f"tensor data must be numeric (bool, integer or 16/32/64-bit float), got dtype {arr.dtype}")
    if dtype is None and not numpy_input and arr.dtype == np.float64 and dtypes.default_float() != np.float64:
        arr = arr.astype(dtypes.default_float())
    return arr


class Size(tuple):
    """torch.Size: the tuple of ints that `.shape` and `.size()` return. repr is torch's
    (`nanoframe.Size([2, 3])`); str stays the plain tuple, so messages read "shape (2, 3)"."""

    def __getitem__(self, i):
        out = super().__getitem__(i)
        return Size(out) if isinstance(i, slice) else out

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"nanoframe.Size({list(self)})"

    __str__ = tuple.__repr__


def legacy_array(args, np_dtype, name):
    """The array of torch's legacy constructors (`torch.Tensor(...)`, `torch.LongTensor(...)`):
    no argument -> empty (0,); ints or a Size -> uninitialised memory of that shape; one sequence
    or array -> its values converted to np_dtype (floats cut toward zero for integer types)."""
    if not args:
        return np.empty((0,), np_dtype)
    shape = args[0] if len(args) == 1 and isinstance(args[0], Size) else args
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in shape):
        for n in shape:
            if n < 0:
                raise RuntimeError(f"Trying to create tensor with negative dimension {n}: {[int(a) for a in shape]}")
        return np.empty(tuple(int(a) for a in shape), np_dtype)
    if len(args) != 1:
        raise TypeError(f"{name}() takes sizes (ints) or one sequence of data, got {len(args)} arguments")
    data = args[0]
    if isinstance(data, (int, float, bool, complex, np.generic)):
        raise TypeError(f"{name}(): data must be a sequence (got {type(data).__name__})")
    try:
        arr = np.array(data.array if isinstance(data, Tensor) else data)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"dtype {arr.dtype}")
    except (ValueError, TypeError, OverflowError) as e:
        raise TypeError(f"cannot make a tensor from {type(data).__name__}: {e}") from None
    if np_dtype.kind in "iu" and arr.size and arr.dtype.kind in "iuf":
        info = np.iinfo(np_dtype)  # torch refuses a value outside the integer type rather than wrap it
        if not (np.isfinite(arr).all() and info.min - 1 < arr.min() and arr.max() < info.max + 1):
            raise RuntimeError(f"value cannot be converted to type {np_dtype} without overflow")
    return arr.astype(np_dtype)


def _is_dtype(x):
    return isinstance(x, (dtypes.dtype, np.dtype)) or (
        isinstance(x, type) and (issubclass(x, np.generic) or x in (float, int, bool)))


def parse_to(args, kwargs):
    """The arguments of `Tensor.to` / `Module.to`: (dtype, device=None, ...), (device, dtype, ...),
    (other_tensor, ...) or keywords. Returns (NumPy dtype or None, copy); a device other than the
    CPU raises UnsupportedError."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    args = list(args)
    if args and isinstance(args[0], Tensor):
        dtype = args.pop(0).array.dtype
    elif args and _is_dtype(args[0]):
        dtype = args.pop(0)
    elif args:
        device = args.pop(0)
        if args and (_is_dtype(args[0]) or args[0] is None):
            dtype = args.pop(0)
    if args:
        args.pop(0)  # non_blocking: nothing is asynchronous on the CPU
    if args:
        copy = args.pop(0)
    if args:
        raise TypeError("to() received too many positional arguments")
    check_cpu(device)
    return (None if dtype is None else dtypes.to_numpy(dtype)), bool(copy)


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
               "uint8": "ByteTensor", "bool": "BoolTensor"}


def as_array(a):
    """The ndarray behind a Tensor, or np.asarray(a): how ops read an argument that may be either."""
    return a.array if isinstance(a, Tensor) else np.asarray(a)


class Tensor(TensorMethods):
    """An n-dimensional array that can record the ops applied to it and backpropagate through them.

    This class holds the storage, conversions, Python's protocol and the operators; the method
    forms of the ops (`x.sum()`, `x.add_()`, ...) come from TensorMethods (tensor_methods.py)."""

    __array_priority__ = 1000  # so `ndarray * Tensor` defers to Tensor.__rmul__

    # State most tensors never set lives on the class, so making an op's output stays cheap.
    grad_array = None      # the accumulated gradient (an ndarray) or None
    _grad_tensor = None    # the Tensor `.grad` returns, wrapping grad_array
    _node = None           # the op that made this tensor (autograd.Node; None for leaves)
    _retains_grad = False
    _hooks = None          # a leaf's gradient hooks {id: fn}
    _base = None           # for a view: the tensor owning the memory
    _view_chain = ()       # for a view: the view ops that make it from _base
    _view_version = 0      # for a view: the version its history was derived at
    _vc = None             # the version counter (autograd.VersionCounter), made on first need

    def __init__(self, *data, requires_grad=False, dtype=None):
        """Tensor(data): an ndarray, NumPy scalar, Tensor or Python float/bool keeps its dtype (a
        Python float takes the default float dtype); torch's legacy forms follow torch.Tensor:
        Tensor(), Tensor(2, 3) / Tensor(Size) (uninitialised) and Tensor(list) in the default float dtype."""
        if len(data) == 1 and (dtype is not None or isinstance(data[0], (np.ndarray, np.generic, Tensor, float, bool))):
            self.array = _to_array(data[0], None if dtype is None else dtypes.to_numpy(dtype))
        else:
            self.array = legacy_array(data, dtypes.default_float(), "Tensor")
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad):
        """Wrap an op's output array without conversion."""
        t = cls.__new__(cls)
        t.array = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.requires_grad = requires_grad
        return t

    # ---- storage: `array` and `grad_array` are the ndarrays; `data` and `grad` are Tensors over them
    @property
    def data(self):
        """A detached Tensor sharing this tensor's memory (as torch's `.data`: changes made through
        it are not tracked by the version counter)."""
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

    def _counter(self):
        """This tensor's version counter (shared with its views), made on first use."""
        if self._vc is None:
            self._vc = autograd.VersionCounter()
        return self._vc

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has had (torch's `_version`)."""
        return 0 if self._vc is None else self._vc.value

    # ---- properties ----------------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self.array.shape)

    @property
    def dtype(self):
        return dtypes.from_numpy(self.array.dtype)

    @property
    def device(self):
        return CPU

    is_cuda = False
    is_cpu = True
    is_mps = False

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        """The op that made this tensor (an object with `name()`), None for leaves."""
        if self._base is not None and autograd.is_grad_enabled():
            autograd.refresh_view(self)
        return self._node

    @property
    def retains_grad(self):
        return self._retains_grad and self._node is not None

    @property
    def itemsize(self):
        return self.array.itemsize

    @property
    def nbytes(self):
        return self.array.nbytes

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        """Transpose of the last two dims."""
        return shape_ops.transpose(self, -2, -1)

    def size(self, dim=None):
        return Size(self.array.shape) if dim is None else self.array.shape[dim]

    def numel(self):
        return self.array.size

    nelement = numel

    def dim(self):
        return self.array.ndim

    ndimension = dim

    def element_size(self):
        return self.array.itemsize

    def is_floating_point(self):
        return self.array.dtype.kind == "f"

    def is_complex(self):
        return False

    def is_contiguous(self):
        return self.array.flags.c_contiguous

    # ---- conversion ----------------------------------------------------------------------------
    def numpy(self, force=False):
        """The ndarray itself (shared memory). As torch, refused on a tensor that requires grad
        unless force=True (then a copy of the values)."""
        if self.requires_grad:
            if not force:
                raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                                   "Use tensor.detach().numpy() instead.")
            return self.array.copy()
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
        dt = self.array.dtype
        default = dt in (dtypes.default_float(), np.int64, np.bool_)
        extra = "" if default else f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.name()}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __format__(self, spec):
        """f"{loss:.4f}" formats a one-element 0-d tensor's value (as torch)."""
        if self.array.ndim == 0:
            return format(self.array.item(), spec)
        return object.__format__(self, spec)

    __hash__ = object.__hash__

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.array)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        """A one-element integer tensor where Python needs an int (range(t), seq[t])."""
        if self.array.size != 1 or self.array.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors of a single element can be converted to an index "
                            f"(got a {self.array.dtype} tensor of shape {tuple(self.shape)})")
        return int(self.array.item())

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(shape_ops.unbind(self, 0))

    def __reversed__(self):
        return self if self.array.ndim == 0 else self.flip(0)

    def __contains__(self, element):
        if not isinstance(element, (Tensor, int, float, bool, np.number)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element).__name__}.")
        return bool(logical.eq(self, element).array.any())

    def to(self, *args, **kwargs):
        """to(dtype), to(device), to(device, dtype), to(other_tensor); copy=True forces a new tensor.
        Returns self when nothing changes (as torch). Only the CPU exists."""
        dtype, copy = parse_to(args, kwargs)
        if dtype is None or dtype == self.array.dtype:
            return elementwise.clone(self) if copy else self
        return elementwise.cast(self, dtype)

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking=False):
        check_cpu("cuda" if device is None else device)
        return self

    def pin_memory(self, device=None):
        """self: a CPU tensor already lives in ordinary host memory, and nothing is copied
        asynchronously (torch without an accelerator raises here instead)."""
        check_cpu(device)
        return self

    def is_pinned(self, device=None):
        return False

    def type(self, dtype=None, non_blocking=False):
        """Without dtype: the type name ('nanoframe.FloatTensor'); with one: the tensor cast to it
        (dtype objects, or names like 'torch.LongTensor')."""
        if dtype is None:
            return f"nanoframe.{_TYPE_NAMES[self.dtype.name]}"
        if isinstance(dtype, str):
            name = dtype.rpartition(".")[2]
            match = [k for k, v in _TYPE_NAMES.items() if v == name]
            if not match:
                raise ValueError(f"invalid type: {dtype!r}")
            dtype = dtypes.by_name(match[0])
        return self.to(dtypes.to_numpy(dtype))

    def type_as(self, other):
        return self.to(other.array.dtype)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def short(self):
        return self.to(np.int16)

    def char(self):
        return self.to(np.int8)

    def byte(self):
        return self.to(np.uint8)

    def bool(self):
        return self.to(np.bool_)

    def clone(self):
        return elementwise.clone(self)

    def contiguous(self):
        return self if self.array.flags.c_contiguous else elementwise.clone(self)

    # ---- new tensors like this one --------------------------------------------------------------
    def _like_kw(self, dtype):
        return self.array.dtype if dtype is None else dtype

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return factories.zeros(*size, dtype=self._like_kw(dtype), device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return factories.ones(*size, dtype=self._like_kw(dtype), device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return factories.empty(*size, dtype=self._like_kw(dtype), device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return factories.full(size, fill_value, dtype=self._like_kw(dtype), device=device,
                              requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return factories.tensor(data, dtype=self._like_kw(dtype), device=device, requires_grad=requires_grad)

    # ---- autograd -------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. Use detach() "
                               "to get a tensor that does not require grad.")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        self._retains_grad = True
        if self._node is not None:
            self._node.retained = self

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; a non-None result replaces the
        gradient. Returns a handle whose remove() unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn
        if node is None:
            if self._hooks is None:
                self._hooks = {}
            hooks = self._hooks
        else:
            if node.hooks is None:
                node.hooks = {}
            hooks = node.hooks
        handle = autograd.RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def detach(self):
        """A tensor sharing this one's memory and version counter, outside the graph."""
        out = Tensor._make(self.array, False)
        out._vc = self._counter()
        return out

    def detach_(self):
        if self._base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._node, self.requires_grad = None, False
        return self

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
            gradient = np.array(gradient.array if isinstance(gradient, Tensor) else gradient, dtype=self.array.dtype)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward(): gradient has shape {gradient.shape}, tensor has shape {self.shape}")
        with autograd.enable_grad():  # a view's history may need re-deriving, also under no_grad
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

    def __floordiv__(self, other):
        return elementwise.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return elementwise.floor_divide(other, self)

    def __mod__(self, other):
        return elementwise.remainder(self, other)

    def __rmod__(self, other):
        return elementwise.remainder(other, self)

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

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise.abs(self)

    def __invert__(self):
        return logical.bitwise_not(self)

    def __and__(self, other):
        return logical.bitwise_and(self, other)

    __rand__ = __and__

    def __or__(self, other):
        return logical.bitwise_or(self, other)

    __ror__ = __or__

    def __xor__(self, other):
        return logical.bitwise_xor(self, other)

    __rxor__ = __xor__

    def __getitem__(self, index):
        return shape_ops.getitem(self, index)

    def __setitem__(self, index, value):
        inplace.setitem(self, index, value)

    def _compare(self, fn, other):
        """An elementwise comparison; other types than tensors and numbers compare unequal (as torch)."""
        if other is None or isinstance(other, str):
            return NotImplemented
        return fn(self, other)

    def __eq__(self, other):
        return self._compare(logical.eq, other)

    def __ne__(self, other):
        return self._compare(logical.ne, other)

    def __lt__(self, other):
        return self._compare(logical.lt, other)

    def __le__(self, other):
        return self._compare(logical.le, other)

    def __gt__(self, other):
        return self._compare(logical.gt, other)

    def __ge__(self, other):
        return self._compare(logical.ge, other)

    # ---- in-place operators and methods (torch semantics: see nanoframe/ops/inplace.py) ----------
    def __iadd__(self, other):
        return inplace.apply_inplace(self, elementwise.add, other)

    def __isub__(self, other):
        return inplace.apply_inplace(self, elementwise.sub, other)

    def __imul__(self, other):
        return inplace.apply_inplace(self, elementwise.mul, other)

    def __itruediv__(self, other):
        return inplace.apply_inplace(self, elementwise.div, other)

    def __ifloordiv__(self, other):
        return inplace.apply_inplace(self, elementwise.floor_divide, other)

    def __imod__(self, other):
        return inplace.apply_inplace(self, elementwise.remainder, other)

    def __ipow__(self, other):
        return inplace.apply_inplace(self, elementwise.pow, other)

    def __iand__(self, other):
        return inplace.apply_inplace(self, logical.bitwise_and, other)

    def __ior__(self, other):
        return inplace.apply_inplace(self, logical.bitwise_or, other)

    def __ixor__(self, other):
        return inplace.apply_inplace(self, logical.bitwise_xor, other)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(t):
    return t.is_floating_point()


def numel(t):
    return t.numel()


autograd.Tensor = Tensor  # Function.apply wraps outputs in Tensors (this module imports autograd)

# The op modules import Tensor from this module, so they are bound after the class exists.
from nanoframe.ops import elementwise, inplace, logical  # noqa: E402
from nanoframe.ops import shape as shape_ops, matmul as matmul_ops  # noqa: E402
from nanoframe import factories  # noqa: E402
from nanoframe.factories import (  # noqa: E402,F401  (the factories' historical home)
    arange, full, ones, ones_like, rand, randint, randn, tensor, zeros, zeros_like,
)
