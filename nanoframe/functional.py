"""The public op names: `import nanoframe.functional as F` (PyTorch's torch.nn.functional names).

Fused ops (one Function each, hand-written backward) plus the activation primitives.
cross_entropy / nll_loss take torch's layout: input (N, C, d1, ...) with the class dim 1, targets (N, d1, ...).
"""
import numpy as _np

from nanoframe.ops.activation import gelu
from nanoframe.ops.activation import log_softmax
from nanoframe.ops.activation import silu
from nanoframe.ops.activation import softmax
from nanoframe.ops.attention import causal_attention
from nanoframe.ops.attention import causal_self_attention
from nanoframe.ops.batch_norm import batch_norm
from nanoframe.ops.attention import scaled_dot_product_attention
from nanoframe.ops.conv import conv1d
from nanoframe.ops.conv import conv2d
from nanoframe.ops.conv import pad
from nanoframe.ops.dropout import dropout
from nanoframe.ops.elementwise import relu
from nanoframe.ops.elementwise import sigmoid
from nanoframe.ops.elementwise import tanh
from nanoframe.ops.elementwise import where as _where
from nanoframe.ops.embedding import embedding
from nanoframe.ops.linear import linear
from nanoframe.ops.loss import binary_cross_entropy
from nanoframe.ops.loss import binary_cross_entropy_with_logits
from nanoframe.ops.loss import cross_entropy
from nanoframe.ops.loss import l1_loss
from nanoframe.ops.loss import mse_loss
from nanoframe.ops.loss import nll_loss
from nanoframe.ops.loss import smooth_l1_loss
from nanoframe.ops.norm import layer_norm
from nanoframe.ops.norm import rms_norm
from nanoframe.ops.pooling import adaptive_avg_pool2d
from nanoframe.ops.pooling import avg_pool1d
from nanoframe.ops.pooling import avg_pool2d
from nanoframe.ops.pooling import max_pool1d
from nanoframe.ops.pooling import max_pool2d
from nanoframe.ops.rope import rope
from nanoframe.ops.swiglu import swiglu
from nanoframe.tensor import Tensor as _Tensor

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "causal_attention",
    "causal_self_attention",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "l1_loss",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "rms_norm",
    "rope",
    "scaled_dot_product_attention",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "swiglu",
    "tanh",
]


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """PyTorch's F.leaky_relu: input where input > 0, negative_slope * input elsewhere (slope's
    gradient at 0, as torch). Composed from `where`; inplace=True computes out of place."""
    x = input.array if isinstance(input, _Tensor) else _np.asarray(input)
    return _where(x > 0, input, input * negative_slope)


def one_hot(tensor, num_classes=-1):
    """PyTorch's F.one_hot: int64 (*, num_classes) with a 1 at each class value; num_classes=-1
    means max + 1. Integer input only (torch asks for int64; any integer dtype is taken here)."""
    idx = tensor.array if isinstance(tensor, _Tensor) else _np.asarray(tensor)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to an integer index tensor, got dtype {idx.dtype}")
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if idx.size and idx.max() >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes ({num_classes}), got {int(idx.max())}.")
    out = _np.zeros(idx.shape + (int(num_classes),), dtype=_np.int64)
    _np.put_along_axis(out, idx[..., None].astype(_np.intp), 1, axis=-1)
    return _Tensor._make(out, False)
