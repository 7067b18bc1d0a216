"""dropout: zero elements with probability p, scale the rest by 1 / (1 - p) (inverted dropout)."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.random import default_generator
from nanoframe.tensor import as_array



def dropout_mask(shape, p, dtype):
    """keep / (1 - p) as an array of `dtype`: 0 where dropped, 1/(1-p) where kept.

    Drawn from the library's seeded generator (nanoframe.manual_seed), uniform in the mask's own
    float dtype (float32 for float32 inputs) and turned into the scaled mask in place.
    """
    gen_dtype = np.float64 if dtype == np.float64 else np.float32
    m = default_generator().random(shape, dtype=gen_dtype)
    np.greater_equal(m, p, out=m)                      # 1.0 where kept, 0.0 where dropped
    m *= 0.0 if p >= 1.0 else 1.0 / (1.0 - p)          # p == 1 drops everything (torch: zeros)
    return m if m.dtype == dtype else m.astype(dtype)


class DropoutOp(Function):
    """y = x * m, m = keep / (1 - p). Saves m (one array, already scaled)."""

    @staticmethod
    def forward(ctx, x, p=0.5):
        m = dropout_mask(x.shape, p, x.dtype)
        ctx.save_for_backward(m)
        return np.multiply(x, m)

    @staticmethod
    def backward(ctx, gy):
        (m,) = ctx.saved_tensors
        return gy * m


def dropout(x, p=0.5, training=True):
    """PyTorch's F.dropout. p=0 or training=False returns x itself (no copy, no graph node)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    xd = as_array(x)
    if xd.dtype.kind != "f":
        raise ValueError(f"dropout: input must be a float array, got dtype {xd.dtype} with shape {xd.shape}")
    return DropoutOp.apply(x, p=float(p))
