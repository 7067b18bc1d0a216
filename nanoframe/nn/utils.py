"""Gradient utilities: `clip_grad_norm_`."""
import math

import numpy as np

from nanoframe.parallel import parallel_for
from nanoframe.tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their joint norm is at most `max_norm` (torch's formula).

    The total norm is the `norm_type`-norm of all gradients concatenated (`float("inf")` for the
    max-abs norm). Gradients are multiplied by `min(1, max_norm / (total_norm + 1e-6))`.
    Parameters whose .grad is None are skipped.

    Returns the total norm (before clipping) as a `numpy.float64` scalar: it is a Python float
    (formats with `f"{norm:.4f}"`, compares, adds) and also has `.item()`, like the 0-d tensor
    torch returns. With no gradients at all it returns 0.0.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad_array for p in parameters if p.grad_array is not None]
    norm_type = float(norm_type)
    if not grads:
        return np.float64(0.0)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        squares = np.empty(len(grads))                 # float64 sum of squares per gradient

        def sum_squares(a, b):
            for i in range(a, b):
                flat = grads[i].reshape(-1)
                squares[i] = np.dot(flat, flat)        # one BLAS call, no temporary

        parallel_for(sum_squares, len(grads), work_per_item=_mean_size(grads))
        total = math.sqrt(math.fsum(squares))          # the same value for any thread count
    else:
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    total = np.float64(total)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients anyway, set error_if_nonfinite=False"
        )
    coef = float(max_norm) / (float(total) + 1e-6)
    if not coef >= 1.0:  # clamped to 1 (multiplying by 1 is a no-op); a NaN norm spreads NaN, as in torch
        def scale(a, b):
            for g in grads[a:b]:
                g *= np.asarray(coef, dtype=g.dtype)

        parallel_for(scale, len(grads), work_per_item=_mean_size(grads))
    return total


def _mean_size(arrays):
    return sum(a.size for a in arrays) // max(1, len(arrays))
