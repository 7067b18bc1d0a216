"""Tensor factories with torch's names and keywords: tensor, as_tensor, from_numpy, zeros/ones/full/
empty/eye/arange/linspace/logspace, the *_like forms, and the random ones (rand, randn, randint,
randperm, multinomial).

Every factory takes `dtype=` (default: the default float dtype for floats, int64 for integers),
`device=` (the CPU only) and `requires_grad=`; the random ones take `generator=` (a
nanoframe.Generator; default: the library's seeded generator).
"""
import operator

import numpy as np

from nanoframe.device import check_cpu
from nanoframe.dtypes import SUPPORTED_NUMPY, default_float, to_numpy
from nanoframe.random import rng_of
from nanoframe.tensor import Tensor, _to_array


def _size(args, op):
    """zeros(2, 3), zeros((2, 3)), zeros([2, 3]) and zeros(t.shape) alike, checked."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    out = []
    for i, s in enumerate(args):
        try:
            n = operator.index(s)
        except TypeError:
            raise TypeError(f"{op}(): argument 'size' must be a tuple of ints, but found element of type "
                            f"{type(s).__name__} at pos {i}") from None
        if n < 0:
            raise RuntimeError(f"{op}(): Trying to create tensor with negative dimension {n}: {list(args)}")
        out.append(n)
    return tuple(out)


def _dtype(dtype, default=None):
    return (default if default is not None else default_float()) if dtype is None else to_numpy(dtype)


def _float_dtype(op, dtype):
    d = _dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"{op}(): dtype must be a floating point dtype, got {dtype!r}")
    return d


def _new(arr, requires_grad):
    t = Tensor._make(arr, False)
    if requires_grad:
        t.requires_grad_(True)
    return t


# ---- from data -------------------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data`. Python floats take the default float dtype, Python
    ints int64, bools bool; NumPy arrays and tensors keep their dtype."""
    check_cpu(device)
    arr = _to_array(data, None if dtype is None else to_numpy(dtype))
    if isinstance(data, (np.ndarray, Tensor)) and np.may_share_memory(arr, data.array if isinstance(data, Tensor) else data):
        arr = arr.copy()
    return _new(arr, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """`data` as a tensor without a copy when it already is one (a Tensor, or an ndarray of the
    requested dtype: memory is shared); otherwise a new tensor."""
    check_cpu(device)
    want = None if dtype is None else to_numpy(dtype)
    if isinstance(data, Tensor):
        return data if want is None or want == data.array.dtype else data.to(want)
    if isinstance(data, np.ndarray) and data.dtype in SUPPORTED_NUMPY and want in (None, data.dtype):
        return Tensor._make(data, False)
    return tensor(data, dtype=dtype)


def from_numpy(array):
    """A tensor sharing `array`'s memory (changes to one show in the other), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects an np.ndarray, got {type(array).__name__}")
    if array.dtype not in SUPPORTED_NUMPY:
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype} (bool, integers, float16/32/64)")
    return Tensor._make(array, False)


# ---- filled ----------------------------------------------------------------------------------
def zeros(*size, dtype=None, device=None, requires_grad=False):
    check_cpu(device)
    return _new(np.zeros(_size(size, "zeros"), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    check_cpu(device)
    return _new(np.ones(_size(size, "ones"), _dtype(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """Uninitialised memory, as torch.empty: fill it before reading."""
    check_cpu(device)
    return _new(np.empty(_size(size, "empty"), _dtype(dtype)), requires_grad)


def _fill_dtype(value):
    """torch.full's dtype for a fill value: bool, int64 or the default float."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    return default_float()


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    check_cpu(device)
    value = fill_value.item() if isinstance(fill_value, Tensor) else fill_value
    shape = _size((size,) if not isinstance(size, (tuple, list)) else (size,), "full")
    return _new(np.full(shape, value, _dtype(dtype, _fill_dtype(value))), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    check_cpu(device)
    n, m = _size((n, n if m is None else m), "eye")
    return _new(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def _like(fill, t, dtype, device, requires_grad):
    check_cpu(device)
    d = t.array.dtype if dtype is None else to_numpy(dtype)
    return _new(fill(t.shape, d), requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like(np.zeros, input, dtype, device, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like(np.ones, input, dtype, device, requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like(np.empty, input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(lambda s, d: np.full(s, fill_value, d), input, dtype, device, requires_grad)


# ---- ranges ----------------------------------------------------------------------------------
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """start, start + step, ... below end (int64 when all three are ints, else the default float)."""
    check_cpu(device)
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v) for v in vals):
        raise RuntimeError(f"arange(): unsupported range: start, end and step must be finite numbers, got {vals}")
    if vals[2] == 0:
        raise RuntimeError("arange(): step must be nonzero")
    if (vals[1] - vals[0]) * vals[2] < 0:
        raise RuntimeError(f"arange(): upper bound {vals[1]} and lower bound {vals[0]} inconsistent with step sign {vals[2]}")
    is_int = all(isinstance(v, (int, np.integer)) for v in vals)
    d = _dtype(dtype, np.dtype(np.int64) if is_int else None)
    return _new(np.arange(*vals, dtype=np.float64 if d.kind == "f" else d).astype(d), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end inclusive."""
    check_cpu(device)
    steps = operator.index(steps)
    if steps < 0:
        raise RuntimeError(f"linspace(): number of steps must be non-negative, got {steps}")
    return _new(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps)."""
    check_cpu(device)
    steps = operator.index(steps)
    if steps < 0:
        raise RuntimeError(f"logspace(): number of steps must be non-negative, got {steps}")
    return _new(np.power(base, np.linspace(start, end, steps)).astype(_dtype(dtype)), requires_grad)


# ---- random ----------------------------------------------------------------------------------
def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples (drawn in float64, then cast: one stream for every dtype)."""
    check_cpu(device)
    d = _float_dtype("randn", dtype)
    return _new(rng_of(generator).standard_normal(_size(size, "randn")).astype(d), requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    check_cpu(device)
    d = _float_dtype("rand", dtype)
    return _new(rng_of(generator).random(_size(size, "rand")).astype(d), requires_grad)


def randn_like(input, generator=None, dtype=None, device=None, requires_grad=False):
    return randn(input.shape, generator=generator, dtype=input.dtype if dtype is None else dtype,
                 device=device, requires_grad=requires_grad)


def rand_like(input, generator=None, dtype=None, device=None, requires_grad=False):
    return rand(input.shape, generator=generator, dtype=input.dtype if dtype is None else dtype,
                device=device, requires_grad=requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """randint(high, size) or randint(low, high, size): integers in [low, high), int64 by default."""
    check_cpu(device)
    if size is None and args:
        args, size = args[:-1], args[-1]
    if size is None or len(args) not in (1, 2):
        raise TypeError("randint() expects (high, size) or (low, high, size)")
    low, high = (0, args[0]) if len(args) == 1 else args
    low, high = operator.index(low), operator.index(high)
    if low >= high:
        raise RuntimeError(f"randint(): random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    shape = _size(size if isinstance(size, (tuple, list)) else (size,), "randint")
    d = _dtype(dtype, np.dtype(np.int64))
    draws = rng_of(generator).integers(low, high, size=shape, dtype=np.int64)
    return _new(draws.astype(d), requires_grad)


def randint_like(input, low=0, high=None, generator=None, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, generator=generator,
                   dtype=input.dtype if dtype is None else dtype, device=device)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1."""
    check_cpu(device)
    n = operator.index(n)
    if n < 0:
        raise RuntimeError(f"randperm(): n must be non-negative, got {n}")
    return _new(rng_of(generator).permutation(n).astype(_dtype(dtype, np.dtype(np.int64))), requires_grad)


def multinomial(input, num_samples, replacement=False, generator=None):
    """Category indices drawn from each row of non-negative weights (1-D or 2-D input); without
    replacement, each row yields num_samples distinct categories."""
    p = np.asarray(input.array if isinstance(input, Tensor) else input, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise ValueError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {p.shape}")
    num_samples = operator.index(num_samples)
    if num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be positive, got {num_samples}")
    rows = p.reshape(-1, p.shape[-1])
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise ValueError("multinomial: probability tensor contains either inf, nan or element < 0")
    sums = rows.sum(axis=1)
    if np.any(sums <= 0):
        raise ValueError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > int(np.min(np.count_nonzero(rows, axis=1))):
        raise ValueError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                         f"(num_samples={num_samples}, nonzero categories per row >= "
                         f"{int(np.min(np.count_nonzero(rows, axis=1)))})")
    rng = rng_of(generator)
    out = np.stack([rng.choice(rows.shape[1], size=num_samples, replace=replacement, p=r / s)
                    for r, s in zip(rows, sums)]).astype(np.int64)
    return Tensor._make(out.reshape(p.shape[:-1] + (num_samples,)), False)
