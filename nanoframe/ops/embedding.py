"""embedding: rows of a (V, C) table picked by integer ids; the backward scatter-adds repeated ids."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.tensor import as_array



def scatter_add_rows(ids, rows, num_rows):
    """dW (num_rows, C) with dW[v] = sum of rows[i] over all i with ids[i] == v.

    ids (N,) int, rows (N, C). The fastest of np.add.at, sort + np.add.reduceat over all segments,
    a one-hot matmul and a flat np.bincount (benchmarks/bench_ops.py; the timings are in
    benchmarks/RESULTS.md, "Embedding backward"). Sort the ids once (stable, so the sum order is deterministic), assign the
    ids that occur once with one fancy-index copy, and sum only the repeated ids' rows with a single
    np.add.reduceat over their (contiguous, sorted) segments.
    """
    n = ids.shape[0]
    dw = np.zeros((num_rows, rows.shape[1]), dtype=rows.dtype)
    if n == 0:
        return dw
    order = np.argsort(ids, kind="stable")
    s = ids[order]                                     # sorted ids
    new_seg = np.empty(n, dtype=bool)
    new_seg[0] = True
    np.not_equal(s[1:], s[:-1], out=new_seg[1:])
    starts = np.flatnonzero(new_seg)                   # first position of each distinct id
    lens = np.diff(starts, append=n)                   # how often each id occurs
    single = lens == 1
    one = starts[single]
    dw[s[one]] = rows[order[one]]                      # ids seen once: a plain copy, no sum
    if not single.all():
        multi = ~single
        in_multi = np.repeat(multi, lens)              # sorted positions that belong to repeated ids
        m_order, m_ids, m_lens = order[in_multi], s[in_multi], lens[multi]
        m_starts = np.zeros(m_lens.shape[0], dtype=np.intp)
        np.cumsum(m_lens[:-1], out=m_starts[1:])
        dw[m_ids[m_starts]] = np.add.reduceat(rows[m_order], m_starts, axis=0)
    return dw


class EmbeddingOp(Function):
    """idx (...) int, weight (V, C) -> out (..., C) = weight[idx]. Saves idx (flattened). The row
    padding_idx (None: no such row) gets no gradient, as in torch."""

    @staticmethod
    def forward(ctx, idx, weight, *, padding_idx=None):
        flat = idx.reshape(-1)                         # (N,) with N = prod(idx.shape)
        out = np.take(weight, flat, axis=0)            # (N, C): faster than weight[flat]
        ctx.save_for_backward(flat)
        ctx.num_embeddings = weight.shape[0]
        ctx.padding_idx = padding_idx
        return out.reshape(*idx.shape, weight.shape[1])

    @staticmethod
    def backward(ctx, gy):
        (flat,) = ctx.saved_tensors
        if not ctx.needs_input_grad[1]:
            return None, None
        gy2 = gy.reshape(-1, gy.shape[-1])             # (N, C)
        dw = scatter_add_rows(flat, gy2, ctx.num_embeddings)
        if ctx.padding_idx is not None:
            dw[ctx.padding_idx] = 0
        return None, dw


class EmbeddingIndexError(IndexError, ValueError):
    """An id outside the table: torch's IndexError, and a ValueError as nanoframe's other input errors."""


def embedding(idx, weight, padding_idx=None):
    """PyTorch's F.embedding(input, weight, padding_idx): idx int array/Tensor of any shape, weight
    (V, C). The row padding_idx (negative counts from the end) gets no gradient."""
    ids, wd = as_array(idx), as_array(weight)
    if wd.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {wd.shape}")
    padding_idx = check_padding_idx(padding_idx, wd.shape[0])
    if ids.dtype.kind not in "iu":
        raise ValueError(f"embedding: indices must be integers, got dtype {ids.dtype} with shape {ids.shape}")
    if ids.size:
        lo, hi = ids.min(), ids.max()
        if lo < 0 or hi >= wd.shape[0]:
            bad = int(lo) if lo < 0 else int(hi)
            raise EmbeddingIndexError(
                f"embedding: index {bad} is out of range [0, {wd.shape[0]}) for weight of shape {wd.shape}"
            )
    return EmbeddingOp.apply(ids, weight, padding_idx=padding_idx)


def check_padding_idx(padding_idx, num_embeddings):
    """padding_idx in [-V, V) as an index in [0, V), or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"embedding: padding_idx must be an int or None, got {type(padding_idx).__name__}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"embedding: padding_idx {padding_idx} must be within num_embeddings ({num_embeddings})")
    return int(padding_idx) % num_embeddings
