"""dtypes the PyTorch way: `nanoframe.float32`, `nanoframe.long`, ... and torch's type promotion.

A `dtype` object wraps a NumPy dtype. It compares equal (and hashes equal) to that NumPy dtype,
so `t.dtype == np.float32` and `np.zeros(3, dtype=nanoframe.float32)` keep working (NumPy reads
an object's `.dtype` attribute). `bfloat16` exists so that it can be named (nanoGPT builds a dict
of dtypes), but nanoframe computes on the CPU in float32/float64 (float16 for storage): using it
raises one clear error.

Type promotion follows torch, not NumPy (they differ: NumPy gives float64 for int64 * 0.5 and
for float32 + a 0-d float64 array; torch gives float32): operands are ranked dimensioned tensors >
zero-dim tensors > Python scalars, and a lower rank only decides the result when it is of a
higher category (bool < integer < floating). Python floats take the default dtype.
"""
import numpy as np

from nanoframe.errors import UnsupportedError

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # bool < integer < floating (torch's categories)


class dtype:
    """One tensor element type (`nanoframe.float32`, ...). Compares equal to its NumPy dtype."""

    __slots__ = ("name", "_numpy", "itemsize", "is_floating_point", "is_signed", "is_complex")

    def __init__(self, name, numpy_dtype, itemsize):
        self.name = name
        self._numpy = None if numpy_dtype is None else np.dtype(numpy_dtype)
        self.itemsize = itemsize
        self.is_floating_point = name in ("float16", "bfloat16", "float32", "float64")
        self.is_signed = name != "bool" and not name.startswith("uint")
        self.is_complex = False

    @property
    def dtype(self):
        """The NumPy dtype (the attribute NumPy reads in `np.dtype(obj)`); bfloat16 has none."""
        if self._numpy is None:
            raise UnsupportedError(
                f"nanoframe computes on the CPU in float32 or float64 (float16 for storage); "
                f"{self!r} is not supported: use nanoframe.float32"
            )
        return self._numpy

    @property
    def kind(self):
        """NumPy's kind letter ('b', 'i', 'u', 'f'), for code written against NumPy dtypes."""
        return "f" if self._numpy is None else self._numpy.kind

    def __eq__(self, other):
        if isinstance(other, dtype):
            return self is other
        if isinstance(other, np.dtype) or (isinstance(other, type) and issubclass(other, np.generic)):
            return self._numpy is not None and self._numpy == np.dtype(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._numpy) if self._numpy is not None else hash(self.name)

    def __repr__(self):
        return f"nanoframe.{self.name}"

    def __reduce__(self):  # pickling and deepcopy give back the one instance
        return by_name, (self.name,)


def by_name(name):
    """The dtype called `name` ('float32', 'bool', ...)."""
    return _ALL[name]


bool_ = dtype("bool", np.bool_, 1)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 2)
int32 = dtype("int32", np.int32, 4)
int64 = dtype("int64", np.int64, 8)
uint16 = dtype("uint16", np.uint16, 2)
uint32 = dtype("uint32", np.uint32, 4)
uint64 = dtype("uint64", np.uint64, 8)
float16 = dtype("float16", np.float16, 2)
bfloat16 = dtype("bfloat16", None, 2)
float32 = dtype("float32", np.float32, 4)
float64 = dtype("float64", np.float64, 8)

_ALL = {d.name: d for d in (bool_, uint8, int8, int16, int32, int64, uint16, uint32, uint64,
                            float16, bfloat16, float32, float64)}
_FROM_NUMPY = {d._numpy: d for d in _ALL.values() if d._numpy is not None}
SUPPORTED_NUMPY = frozenset(_FROM_NUMPY)

_default_float = np.dtype(np.float32)


def get_default_dtype():
    """The dtype of Python floats and of float factories (float32 unless set_default_dtype)."""
    return _FROM_NUMPY[_default_float]


def set_default_dtype(d):
    """Set the default floating dtype: float32 or float64 (as torch.set_default_dtype)."""
    global _default_float
    npd = to_numpy(d)
    if npd not in (np.float32, np.float64):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported, got {d!r}")
    _default_float = npd


def default_float():
    """The default floating dtype as a NumPy dtype."""
    return _default_float


def from_numpy(npd):
    """The nanoframe dtype of a NumPy dtype."""
    return _FROM_NUMPY[npd]


def to_numpy(d):
    """A dtype argument (nanoframe dtype, NumPy dtype or scalar type, Python float/int/bool) as a
    NumPy dtype nanoframe supports; anything else is a TypeError naming it."""
    if isinstance(d, dtype):
        return d.dtype
    if d is None or isinstance(d, str):  # np.dtype(None) is float64; strings are not dtypes in torch
        raise TypeError(f"dtype must be a nanoframe dtype such as nanoframe.float32, got {d!r}")
    try:
        npd = np.dtype(d)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be a nanoframe dtype such as nanoframe.float32, got {d!r}") from None
    if npd not in SUPPORTED_NUMPY:
        raise TypeError(f"unsupported dtype {npd} (nanoframe supports bool, integers, float16/32/64)")
    return npd


def can_cast(src, dst):
    """torch.can_cast: no floating -> integer or bool, no integer -> bool."""
    return _CATEGORY[np.dtype(src).kind] <= _CATEGORY[np.dtype(dst).kind]


def promote_types(type1, type2):
    """torch.promote_types: the dtype of an op on tensors of these two dtypes."""
    return from_numpy(_promote(to_numpy(type1), to_numpy(type2)))


def _promote(a, b):
    """promote_types on NumPy dtypes (None: absent): within a category as NumPy; an integer or
    bool with a float gives that float (NumPy would widen int64 + float32 to float64)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    fa, fb = a.kind == "f", b.kind == "f"
    if fa != fb:
        return a if fa else b
    return np.promote_types(a, b)


def _combine(higher, lower):
    """torch's combine_categories: the lower-ranked operands decide only with a higher category."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return _promote(higher, lower)
    return higher


def result_type(*operands):
    """The NumPy dtype torch gives an op on `operands` (Tensors, ndarrays, Python/NumPy scalars)."""
    dims = zero = scalars = None
    for x in operands:
        arr = getattr(x, "array", x)  # a Tensor's ndarray
        if isinstance(arr, np.ndarray):
            if arr.ndim:
                dims = _promote(dims, arr.dtype)
            else:
                zero = _promote(zero, arr.dtype)
        elif isinstance(x, (bool, np.bool_)):
            scalars = _promote(scalars, np.dtype(np.bool_))
        elif isinstance(x, (int, np.integer)):
            scalars = _promote(scalars, np.dtype(np.int64))
        elif isinstance(x, (float, np.floating)):
            scalars = _promote(scalars, _default_float)
        else:
            raise TypeError(f"unsupported operand type {type(x).__name__} (expected a Tensor or a number)")
    return _combine(dims, _combine(zero, scalars))
