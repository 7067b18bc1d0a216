"""torch.nn.utils' gradient and parameter helpers: `clip_grad_norm_` (= `get_total_norm` +
`clip_grads_with_norm_`), `clip_grad_value_`, `parameters_to_vector`, `vector_to_parameters`;
`nanoframe.nn.utils.rnn` has padding and packing (pad_sequence, PackedSequence, pack_padded_sequence, ...).

They work on the raw gradient arrays (`p.grad_array`, which `p.grad = t` sets), in place, and skip
parameters whose gradient is None. `foreach` is accepted for torch's signature: one implementation
runs either way.
"""
import math

import numpy as np

from nanoframe.ops.shape import cat
from nanoframe.parallel import parallel
from nanoframe.tensor import Tensor
from nanoframe.nn.utils import rnn  # noqa: F401  torch.nn.utils.rnn (padding, packing)


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _norm_type(norm_type):
    norm_type = float(norm_type)  # also accepts "inf", as torch
    if not (norm_type > 0):
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type}")
    return norm_type


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The `norm_type`-norm of all `tensors` (Tensors or ndarrays) taken together, as a 0-d Tensor
    of their dtype (float32 for none). Accumulated in float64; `float("inf")` is the max-abs norm."""
    arrays = [t.array if isinstance(t, Tensor) else np.asarray(t) for t in _as_list(tensors)]
    norm_type = _norm_type(norm_type)
    if not arrays:
        return Tensor(np.array(0.0, np.float32))
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    elif norm_type == 2.0:
        squares = np.empty(len(arrays))                 # float64 sum of squares per array

        @parallel(len(arrays), work_per_item=_mean_size(arrays))
        def _(a, b):
            for i in range(a, b):
                flat = arrays[i].reshape(-1)
                squares[i] = np.dot(flat, flat)         # one BLAS call, no temporary
        total = math.sqrt(math.fsum(squares))           # the same value for any thread count
    else:
        total = sum(float(np.sum(np.abs(a, dtype=np.float64) ** norm_type)) for a in arrays) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients anyway, set error_if_nonfinite=False"
        )
    return Tensor(np.array(total, dtype=np.result_type(*arrays)))


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale every gradient in place by min(1, max_norm / (total_norm + 1e-6)) (torch's formula)."""
    grads = [p.grad_array for p in _as_list(parameters) if p.grad_array is not None]
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = float(max_norm) / (total + 1e-6)
    if grads and not coef >= 1.0:  # clamped to 1 (a no-op); a NaN norm spreads NaN, as in torch
        @parallel(len(grads), work_per_item=_mean_size(grads))
        def _(a, b):
            for g in grads[a:b]:
                g *= np.asarray(coef, dtype=g.dtype)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients in place so that their joint `norm_type`-norm is at most `max_norm`.

    `parameters` is an iterable of Tensors or a single Tensor. Returns the total norm before
    clipping as a 0-d Tensor, as torch (`float(norm)`, `norm.item()`); with no gradients, 0.
    """
    parameters = _as_list(parameters)
    total = get_total_norm([p.grad_array for p in parameters if p.grad_array is not None], norm_type,
                           error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad_array is not None:
            np.clip(p.grad_array, -clip_value, clip_value, out=p.grad_array)


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D Tensor (differentiable, as torch)."""
    return cat([p.reshape(-1) for p in _as_list(parameters)])


def vector_to_parameters(vec, parameters):
    """Make each parameter's data the next slice of the 1-D Tensor `vec` (a view: the parameters
    share vec's memory afterwards, as in torch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected a Tensor, but got: {type(vec).__name__}")
    parameters = _as_list(parameters)
    needed = sum(p.array.size for p in parameters)
    if vec.array.ndim != 1 or vec.array.size != needed:
        raise ValueError(f"vec must be a 1-D Tensor of {needed} elements (the parameters' total), "
                         f"got shape {tuple(vec.array.shape)}")
    pointer = 0
    for p in parameters:
        n = p.array.size
        p.array = vec.array[pointer:pointer + n].reshape(p.array.shape)
        pointer += n


def _mean_size(arrays):
    return sum(a.size for a in arrays) // max(1, len(arrays))
