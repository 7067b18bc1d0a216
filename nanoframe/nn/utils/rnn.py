"""torch.nn.utils.rnn's padding helpers: `pad_sequence` and `unpad_sequence`.

Both are composed from differentiable ops (cat, stack, narrow), so gradients flow back to each
sequence as in torch. PackedSequence (pack_padded_sequence) does not exist in nanoframe: the RNN
layers take padded (T, B, C) or (B, T, C) input.
"""
from nanoframe.ops.shape import cat, narrow, stack
from nanoframe.tensor import Tensor


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
