"""Rotary position embeddings (RoPE, Su et al. 2021), laid out as Llama in Hugging Face applies them.

A head vector x (hs values) is split in halves x1 = x[:hs/2], x2 = x[hs/2:] (transformers'
`rotate_half` layout, not interleaved pairs) and pair i at position t is rotated by the angle
t * theta^(-2i/hs):

    y1 = x1 cos - x2 sin        y2 = x2 cos + x1 sin

The rotation is orthogonal, so its gradient is the inverse rotation: the same kernel with sin
negated. The angles are computed as transformers computes them (inverse frequencies, positions and
their products in float32, cos and sin in float32, then cast to the model's dtype), so that a
checkpoint trained there sees the very same rotations here.

    rope_tables(length, head_size, theta, dtype)   cos, sin (length, hs/2), cached, read-only
    rope_rotate(x, cos, sin, out=None)             the kernel on ndarrays (..., T, hs)
    rope(x, theta=10000.0, offset=0)               the differentiable op

The fused causal attention (ops/attention.py) rotates q and k with rope_rotate inside its own
passes (measured faster than this op on q and k before the attention: benchmarks/RESULTS.md), and
cached decoding rotates each new position with it too.
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.parallel import parallel
from nanoframe.tensor import as_array

_tables = {}


def rope_tables(length, head_size, theta, dtype=np.float32):
    """(cos, sin), each (length, head_size // 2), for positions 0 .. length - 1: read-only and cached
    per (head_size, theta, dtype), grown when a longer length is asked for."""
    key = (int(head_size), float(theta), np.dtype(dtype).str)
    have = _tables.get(key)
    if have is None or have[0].shape[0] < length:
        if len(_tables) > 32:
            _tables.clear()
        n = max(int(length), 2 * have[0].shape[0] if have is not None else 0)
        # float32 values, as transformers' LlamaRotaryEmbedding: inv_freq = 1 / theta^(2i / hs) and
        # angles t * inv_freq rounded to float32. pow, cos and sin are evaluated in float64 and then
        # rounded: that gives libm's (and torch's) float32 results, where NumPy's own float32 pow
        # was measured 1-2 ulp off (angles off by 1e-5 at position 300).
        exponents = np.arange(0, head_size, 2, dtype=np.float32) / np.float32(head_size)
        pows = (np.float64(theta) ** exponents.astype(np.float64)).astype(np.float32)
        inv_freq = np.float32(1.0) / pows                                                # (hs/2,)
        angles = (np.arange(n, dtype=np.float32)[:, None] * inv_freq[None, :]).astype(np.float64)  # (n, hs/2)
        cos = np.cos(angles).astype(np.float32).astype(dtype)
        sin = np.sin(angles).astype(np.float32).astype(dtype)
        cos.flags.writeable = sin.flags.writeable = False
        have = _tables[key] = (cos, sin)
    return have[0][:length], have[1][:length]


def rope_rotate(x, cos, sin, out=None):
    """Rotate x (..., T, hs) by cos, sin (T, hs/2) (broadcast over the leading dims) into `out`
    (a new array, or a given one that is not x). The inverse rotation: pass -sin. Scaling cos and
    sin by s rotates and scales in the same passes (the attention folds 1/sqrt(hs) in this way)."""
    h = x.shape[-1] // 2
    out = np.empty(x.shape, dtype=x.dtype) if out is None else out
    x1, x2 = x[..., :h], x[..., h:]
    y1, y2 = out[..., :h], out[..., h:]
    tmp = np.multiply(x2, sin)                          # (..., T, hs/2) scratch
    np.multiply(x1, cos, out=y1)
    y1 -= tmp                                           # y1 = x1 cos - x2 sin
    np.multiply(x1, sin, out=tmp)
    np.multiply(x2, cos, out=y2)
    y2 += tmp                                           # y2 = x2 cos + x1 sin
    return out


def _rotate_rows(x, cos, sin):
    """rope_rotate over the rows of x viewed as (N, T, hs), the rows split over the threads."""
    T, hs = x.shape[-2:]
    x3 = x.reshape(-1, T, hs)
    y = np.empty(x3.shape, dtype=x.dtype)

    @parallel(x3.shape[0], work_per_item=4 * T * hs)
    def _(a, b):
        rope_rotate(x3[a:b], cos, sin, out=y[a:b])

    return y.reshape(x.shape)


class RoPEOp(Function):
    """x (..., T, hs) -> the rotated x; position offset + t for row t. Saves nothing but the tables
    (cos, sin), which are shared and cached: the backward is the inverse rotation of gy."""

    @staticmethod
    def forward(ctx, x, *, theta, offset):
        T, hs = x.shape[-2:]
        cos, sin = rope_tables(offset + T, hs, theta, x.dtype)
        ctx.cos, ctx.sin = cos[offset:], sin[offset:]
        return _rotate_rows(x, ctx.cos, ctx.sin)

    @staticmethod
    def backward(ctx, gy):
        return _rotate_rows(gy, ctx.cos, -ctx.sin)      # R(t)^T gy = R(-t) gy


def rope(x, *, theta=10000.0, offset=0):
    """Rotary position embedding of x (..., T, hs), e.g. queries or keys (B, nh, T, hs): row t is
    rotated for position offset + t with base `theta` (transformers' Llama layout and angles)."""
    xd = as_array(x)
    if xd.dtype.kind != "f" or xd.ndim < 2 or xd.shape[-1] % 2 != 0 or xd.shape[-1] == 0:
        raise ValueError(f"rope: x must be a float array (..., T, hs) with an even head size hs, "
                         f"got dtype {xd.dtype} and shape {xd.shape}")
    if isinstance(theta, bool) or not isinstance(theta, (int, float, np.integer, np.floating)) \
            or not np.isfinite(theta) or theta <= 1.0:
        raise ValueError(f"rope: theta must be a finite number > 1, got {theta!r}")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"rope: offset must be an int >= 0, got {offset!r}")
    return RoPEOp.apply(x, theta=float(theta), offset=int(offset))
