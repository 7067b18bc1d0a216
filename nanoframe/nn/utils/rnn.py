"""torch.nn.utils.rnn: padding (`pad_sequence`, `unpad_sequence`) and packing (`PackedSequence`,
`pack_padded_sequence`, `pad_packed_sequence`, `pack_sequence`, `unpack_sequence`).

A PackedSequence holds a batch of sequences of different lengths without padding, as torch lays
it out: `data` (N, *) is time-major (the step-0 rows of every sequence, then the step-1 rows of
those that have one, ...), with the sequences sorted by decreasing length; `batch_sizes` (T,)
counts the sequences that have each step; `sorted_indices` / `unsorted_indices` map between the
caller's order and the sorted one (None when the caller's batch was sorted already). The RNN,
LSTM and GRU modules take one and return one, skipping each sequence's padding (nn/rnn.py).
Everything here is composed from differentiable ops (cat, stack, narrow, indexing), so gradients
flow back to each sequence as in torch.
"""
from collections import namedtuple

import numpy as np

from nanoframe.errors import NanoframeError, bounded
from nanoframe.ops.shape import cat, narrow, stack
from nanoframe.tensor import Tensor, as_array


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors of shapes (L_i, *) into one (T, B, *) tensor, or (B, T, *) with batch_first,
    T = max L_i, filling with padding_value on the right (or the left). Every sequence is in the
    first one's dtype, as in torch; the result is contiguous."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'right' or 'left', got {padding_side!r}")
    try:
        sequences = tuple(sequences)
    except TypeError:
        raise TypeError(f"pad_sequence: expected an iterable of Tensors, got {type(sequences).__name__}") from None
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequences[{i}] is a {type(s).__name__}, expected a Tensor")
        if s.dim() == 0:
            raise ValueError(f"pad_sequence: sequences[{i}] is a 0-d tensor; each needs a length dimension")
    first = sequences[0]
    trailing = tuple(first.shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != trailing:
            raise ValueError(f"pad_sequence: sequences[{i}] has trailing shape {tuple(s.shape[1:])}, "
                             f"sequences[0] has {trailing}; they must match")
    T = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        s = s if s.dtype == first.dtype else s.to(first.dtype)
        pad = first.new_full((T - s.shape[0],) + trailing, padding_value)
        rows.append(cat([s, pad] if padding_side == "right" else [pad, s]))
    return stack(rows, dim=0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The inverse of pad_sequence (right padding): a list of B tensors (lengths[b], *)."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    lengths = [int(n) for n in lengths]
    if len(lengths) != padded_sequences.shape[0]:
        raise ValueError(f"unpad_sequence: {len(lengths)} lengths for a batch of {padded_sequences.shape[0]}")
    T = padded_sequences.shape[1]
    for b, n in enumerate(lengths):
        if not 0 <= n <= T:
            raise ValueError(f"unpad_sequence: lengths[{b}] = {n} is outside [0, {T}]")
    return [narrow(padded_sequences[b], 0, 0, n) for b, n in enumerate(lengths)]


def _is_permutation(order, b):
    """order is a 1-D integer ndarray holding each of 0 .. b - 1 once."""
    return order.shape == (b,) and order.dtype.kind in "iu" and np.array_equal(np.sort(order), np.arange(b))


def _inverse(order):
    """The inverse permutation of order, as int64."""
    inverse = np.empty(order.size, dtype=np.int64)
    inverse[order] = np.arange(order.size)
    return inverse


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """torch.nn.utils.rnn.PackedSequence: data (N, *), batch_sizes (T,) int64, sorted_indices and
    unsorted_indices (B,) int64 or None. Build one with pack_padded_sequence or pack_sequence; built
    by hand, as in torch, unsorted_indices defaults to the inverse of sorted_indices."""
    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            order = np.asarray(as_array(sorted_indices))
            if _is_permutation(order, order.size):                      # else _check_packed says what is wrong
                unsorted_indices = Tensor(_inverse(order))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """The same packing with data.to(...) (a dtype or a device); the indices stay int64."""
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else self._replace(data=data)

    def cpu(self):
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    @property
    def is_cuda(self):
        return False


def _lengths_array(lengths, batch, op):
    """lengths as a 1-D int64 ndarray of B values >= 1 (a list, ndarray or integer Tensor)."""
    try:
        arr = np.asarray(as_array(lengths) if isinstance(lengths, Tensor) else lengths)
    except (TypeError, ValueError):                  # ragged or not numbers
        raise NanoframeError(f"{op}: lengths must be a 1-D sequence of ints, got {bounded(repr(lengths))}") from None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise NanoframeError(f"{op}: lengths must be a 1-D sequence of ints, got {arr.dtype} of shape {arr.shape}")
    if arr.shape[0] != batch:
        raise NanoframeError(f"{op}: {arr.shape[0]} lengths for a batch of {batch} sequences")
    if batch and arr.min() < 1:
        raise NanoframeError(f"{op}: every length must be at least 1, got {int(arr.min())}")
    return arr.astype(np.int64)


def _positions(batch_sizes):
    """(time step, sorted row) of every row of packed data, in packed order."""
    steps = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    rows = np.concatenate([np.arange(n) for n in batch_sizes]) if len(batch_sizes) else np.zeros(0, np.int64)
    return steps, rows


def _grid(batch_sizes, t):
    """Between packed rows and a (t, B) grid in sorted order, B = batch_sizes[0]: (where (t B,), the
    packed row at each grid place or N, the padding row past the data; flat (N,), each packed row's
    grid place)."""
    b, n = int(batch_sizes[0]), int(batch_sizes.sum())
    steps, rows = _positions(batch_sizes)
    flat = steps * b + rows
    where = np.full(t * b, n, dtype=np.int64)
    where[flat] = np.arange(n)
    return where, flat


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) ((B, T, *) with batch_first) whose sequence b has lengths[b]
    steps. enforce_sorted=True requires the lengths in decreasing order (as torch does);
    enforce_sorted=False sorts them (stably) and records the permutation."""
    op = "pack_padded_sequence"
    if not isinstance(input, Tensor) or input.dim() < 2:
        raise NanoframeError(f"{op}: input must be a Tensor of at least 2 dims (T, B, *), got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
    if batch_first:
        input = input.transpose(0, 1)
    T, B = input.shape[0], input.shape[1]
    lens = _lengths_array(lengths, B, op)
    if B == 0:
        raise NanoframeError(f"{op}: the batch is empty")
    if lens.max() > T:
        raise NanoframeError(f"{op}: a length of {int(lens.max())} is longer than the input's {T} steps")
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise NanoframeError(f"{op}: lengths must be in decreasing order when enforce_sorted=True "
                                 "(pass enforce_sorted=False to have them sorted)")
        order, sorted_indices, unsorted_indices = np.arange(B), None, None
    else:
        order = np.argsort(-lens, kind="stable")
        sorted_indices, unsorted_indices = Tensor(order.astype(np.int64)), Tensor(_inverse(order))
    sorted_lens = lens[order]
    batch_sizes = (sorted_lens[None, :] > np.arange(int(sorted_lens[0]))[:, None]).sum(axis=1)
    steps, rows = _positions(batch_sizes)
    flat = input.reshape(T * B, *input.shape[2:])
    data = flat[steps * B + order[rows]]                               # (N, *)
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)), sorted_indices, unsorted_indices)


def _permutation(indices, b, name, op):
    """indices (B,) as an int64 ndarray holding a permutation of range(B), or None."""
    if indices is None:
        return None
    order = np.asarray(as_array(indices))
    if not _is_permutation(order, b):
        raise NanoframeError(f"{op}: {name} must be a permutation of the {b} sequences' indices, got "
                             f"{bounded(str(order.tolist()))} ({order.dtype})")
    return order.astype(np.int64)


def _check_packed(sequence, op):
    """(batch_sizes, sorted_indices, unsorted_indices) of a well-formed PackedSequence as int64
    ndarrays (the indices None when absent); NanoframeError otherwise."""
    if not isinstance(sequence, PackedSequence):
        raise NanoframeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    data = sequence.data
    if not isinstance(data, Tensor) or data.dim() < 1:
        raise NanoframeError(f"{op}: a PackedSequence's data must be a Tensor (N, *), got "
                             f"{type(data).__name__} {getattr(data, 'shape', '')}")
    try:
        bs = np.asarray(as_array(sequence.batch_sizes))
    except (TypeError, ValueError):
        bs = np.zeros(0)
    if (bs.ndim != 1 or bs.size == 0 or bs.dtype.kind not in "iu" or bs.min() < 1 or np.any(np.diff(bs) > 0)
            or int(bs.sum()) != data.shape[0]):
        raise NanoframeError(f"{op}: batch_sizes must be positive, non-increasing and sum to data's first dim "
                             f"({data.shape[0]}), got {bounded(str(bs.tolist()))}")
    b = int(bs[0])
    return (bs.astype(np.int64), _permutation(sequence.sorted_indices, b, "sorted_indices", op),
            _permutation(sequence.unsorted_indices, b, "unsorted_indices", op))


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """(padded (T, B, *) or (B, T, *), lengths (B,) int64), both in the order the batch had before
    packing; T is the longest length, or total_length when given (not shorter)."""
    op = "pad_packed_sequence"
    bs, _, unsorted = _check_packed(sequence, op)
    T, B = len(bs), int(bs[0])
    if isinstance(padding_value, bool) or not isinstance(padding_value, (int, float, np.number)):
        raise NanoframeError(f"{op}: padding_value must be a number, got {bounded(repr(padding_value))}")
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, (int, np.integer)):
            raise NanoframeError(f"{op}: total_length must be an int, got {bounded(repr(total_length))}")
        if int(total_length) < T:
            raise NanoframeError(f"{op}: total_length = {total_length} is shorter than the longest sequence ({T})")
        T = int(total_length)
    data = sequence.data
    where, _ = _grid(bs, T)
    if unsorted is not None:                                          # sorted row j -> the caller's order
        where = where.reshape(T, B)[:, unsorted].reshape(-1)
    pad = data.new_full((1,) + tuple(data.shape[1:]), padding_value)
    padded = cat([data, pad])[where].reshape(T, B, *data.shape[1:])
    lengths = (bs[None, :] > np.arange(B)[:, None]).sum(axis=1)       # sorted order
    if unsorted is not None:
        lengths = lengths[unsorted]
    return (padded.transpose(0, 1) if batch_first else padded), Tensor(lengths.astype(np.int64))


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *): pad_sequence, then pack_padded_sequence."""
    sequences = list(sequences)
    if not sequences:
        raise NanoframeError("pack_sequence: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor) or s.dim() == 0:
            raise NanoframeError(f"pack_sequence: sequences[{i}] must be a Tensor (L, *), got {type(s).__name__} "
                                 f"{getattr(s, 'shape', '')}")
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The inverse of pack_sequence: the list of tensors (L_i, *), in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences)
    return unpad_sequence(padded, lengths.tolist())
