"""sort, argsort, topk. The order comes from NumPy's stable sort (ties keep their order, NaN sorts
as the largest value, as torch); the values are a `gather` of the input, so they differentiate
through it."""
from collections import namedtuple

import numpy as np

from nanoframe.ops.indexing import gather
from nanoframe.ops.reduce import normalize_dims
from nanoframe.tensor import Tensor

sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])


def _order(a, axis, descending):
    """Stable argsort along axis; descending keeps ties in their original order too."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    reversed_order = np.argsort(np.flip(a, axis), axis=axis, kind="stable")  # ties: last first
    return n - 1 - np.flip(reversed_order, axis)


def _axis(op, x, dim):
    return normalize_dims(dim, x.ndim, op)[0] if x.ndim else None


def argsort(x, dim=-1, descending=False, stable=False):
    axis = _axis("argsort", x, dim)
    if axis is None:
        return Tensor._make(np.zeros((), np.int64), False)
    return Tensor._make(_order(x.array, axis, descending).astype(np.int64), False)


def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along dim."""
    idx = argsort(x, dim, descending)
    if x.ndim == 0:
        return sort_result(x.clone(), idx)
    return sort_result(gather(x, dim, idx), idx)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) entries along dim and their indices, in sorted order."""
    axis = _axis("topk", x, dim)
    n = 1 if axis is None else x.shape[axis]
    k = int(k)
    if not 0 <= k <= n:
        raise IndexError(f"topk: k ({k}) is out of range for a dim of size {n}")
    if axis is None:
        return topk_result(x.clone(), Tensor._make(np.zeros((), np.int64), False))
    order = _order(x.array, axis, descending=largest)
    idx = Tensor._make(np.take(order, np.arange(k), axis=axis).astype(np.int64), False)
    return topk_result(gather(x, dim, idx), idx)
