"""`default_collate` and `default_convert`: torch's rules for turning samples into batches.

    Tensor                 -> stacked along a new dim 0 (nanoframe.stack)
    NumPy array / scalar   -> a Tensor of its dtype (arrays stacked)
    float / int / bool     -> a float64 / int64 / bool Tensor, as torch.tensor makes them
    str / bytes            -> the list, unchanged
    dict (Mapping)         -> the same kind of mapping, each key collated
    namedtuple             -> the same namedtuple, each field collated
    tuple / list           -> a list (a list of the same type for lists) of each position collated
"""
import collections
import copy
import re

import numpy as np

from nanoframe.ops.shape import stack
from nanoframe.tensor import Tensor

_STRINGY = re.compile(r"[SaUO]")  # dtype kinds that cannot become tensors: bytes, str, object
_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def default_collate(batch):
    """Collate a list of samples into a batch (see the module docstring)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if _STRINGY.search(elem.dtype.str):
            raise TypeError(_ERROR.format(elem.dtype))
        return Tensor(np.stack(batch))
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.array(batch))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):  # bools too: all bools give a bool tensor, as torch.tensor([True, ...])
        return Tensor(np.array(batch, dtype=np.bool_ if all(type(b) is bool for b in batch) else np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        return _same_kind(elem, collated)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        collated = [default_collate(samples) for samples in zip(*batch)]  # strs stay a tuple, as torch
        if isinstance(elem, tuple):
            return collated  # a list, as torch (backwards compatibility there)
        return _same_kind(elem, collated)
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data):
    """NumPy arrays and scalars (also inside containers) become Tensors; everything else stays
    (the collate_fn of a DataLoader with batch_size=None)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.bool_, np.number)):
        return data if _STRINGY.search(data.dtype.str) else Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _same_kind(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _same_kind(data, [default_convert(d) for d in data])
    return data


def _same_kind(container, values):
    """`values` (a dict or list) in a container of `container`'s type where torch keeps it."""
    try:
        if isinstance(container, (collections.abc.MutableMapping, collections.abc.MutableSequence)):
            clone = copy.copy(container)
            if isinstance(clone, collections.abc.MutableMapping):
                clone.update(values)
            else:
                clone[:] = values
            return clone
        return type(container)(values)
    except TypeError:
        return values
