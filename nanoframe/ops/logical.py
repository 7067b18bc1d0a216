"""Comparisons and logic: eq/ne/lt/le/gt/ge, logical_and/or/xor/not, bitwise &, |, ^, ~,
isclose/allclose/equal, isnan/isinf/isfinite. None of them is differentiable; all return bool
tensors (bitwise ops on integers return integers)."""
import numpy as np

from nanoframe.dtypes import result_type
from nanoframe.tensor import Tensor, _to_array, as_array


def _arrays(a, b):
    """Both operands as arrays of torch's common dtype (a float32 tensor compared with 0.1 compares
    in float32, as torch)."""
    a, b = (_to_array(x) if isinstance(x, (list, tuple)) else x for x in (a, b))
    dtype = result_type(a, b)
    return tuple(np.asarray(x.array if isinstance(x, Tensor) else x, dtype=dtype) for x in (a, b))


def _compare(ufunc, a, b):
    return Tensor._make(np.asarray(ufunc(*_arrays(a, b))), False)


def eq(a, b):
    return _compare(np.equal, a, b)


def ne(a, b):
    return _compare(np.not_equal, a, b)


def lt(a, b):
    return _compare(np.less, a, b)


def le(a, b):
    return _compare(np.less_equal, a, b)


def gt(a, b):
    return _compare(np.greater, a, b)


def ge(a, b):
    return _compare(np.greater_equal, a, b)



def logical_and(a, b):
    return Tensor._make(np.logical_and(as_array(a), as_array(b)), False)


def logical_or(a, b):
    return Tensor._make(np.logical_or(as_array(a), as_array(b)), False)


def logical_xor(a, b):
    return Tensor._make(np.logical_xor(as_array(a), as_array(b)), False)


def logical_not(a):
    return Tensor._make(np.logical_not(as_array(a)), False)


def _bitwise(ufunc, a, b):
    x, y = _arrays(a, b)
    if x.dtype.kind == "f":
        raise TypeError(f"{ufunc.__name__} is only defined for bool and integer tensors, got {x.dtype}")
    return Tensor._make(np.asarray(ufunc(x, y)), False)


def bitwise_and(a, b):
    """a & b: logical for bool tensors, bitwise for integers (floats are refused, as torch)."""
    return _bitwise(np.bitwise_and, a, b)


def bitwise_or(a, b):
    return _bitwise(np.bitwise_or, a, b)


def bitwise_xor(a, b):
    return _bitwise(np.bitwise_xor, a, b)


def bitwise_not(a):
    """~a: logical not for bool tensors, bitwise for integers."""
    x = as_array(a)
    if x.dtype.kind == "f":
        raise TypeError(f"bitwise_not is only defined for bool and integer tensors, got {x.dtype}")
    return Tensor._make(np.invert(x), False)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| elementwise (torch.isclose)."""
    x, y = _arrays(a, b)
    return Tensor._make(np.asarray(np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)), False)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True if isclose holds everywhere (a Python bool)."""
    return bool(isclose(a, b, rtol, atol, equal_nan).array.all())


def equal(a, b):
    """True if a and b have the same shape and the same elements (a Python bool)."""
    x, y = as_array(a), as_array(b)
    return x.shape == y.shape and bool(np.array_equal(x, y))


def isnan(x):
    return Tensor._make(np.isnan(as_array(x)), False)


def isinf(x):
    return Tensor._make(np.isinf(as_array(x)), False)


def isfinite(x):
    return Tensor._make(np.isfinite(as_array(x)), False)
