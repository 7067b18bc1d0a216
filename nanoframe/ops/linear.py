"""linear: y = x @ W^T + b with W stored (out, in) as in PyTorch; one GEMM per product."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.tensor import Tensor


def _data(a):
    return a.data if isinstance(a, Tensor) else np.asarray(a)


class Linear(Function):
    """x (..., C_in), weight (C_out, C_in), bias (C_out,) or None -> y (..., C_out).

    Saves x and weight. Leading dims are flattened to N = prod(...) rows so that each product,
    forward and backward, is a single 2-D GEMM (dW in particular is one (C_out, N) @ (N, C_in)).
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        c_in, c_out = weight.shape[1], weight.shape[0]
        x2 = x.reshape(-1, c_in)                       # (N, C_in), a view when x is contiguous
        if x2.shape[0] == 1:
            # one row (token-by-token decoding is memory-bound on W): einsum's single-threaded
            # sum-of-products streams W (C_out, C_in) at ~21 GB/s here, OpenBLAS's gemv on W^T at
            # ~11 GB/s on one thread and far less with two threads on a busy machine
            y = np.einsum("oi,i->o", weight, x2[0])[None, :]
        else:
            y = x2 @ weight.T                          # (N, C_out): one GEMM (W^T is a strided view)
        if bias is not None:
            y += bias                                  # in place on the array we own
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        ctx.x_shape = x.shape
        return y.reshape(*x.shape[:-1], c_out)

    @staticmethod
    def backward(ctx, gy):
        x2, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        gy2 = gy.reshape(-1, weight.shape[0])          # (N, C_out)
        gx = (gy2 @ weight).reshape(ctx.x_shape) if need_x else None   # (N, C_out) @ (C_out, C_in)
        gw = gy2.T @ x2 if need_w else None            # (C_out, N) @ (N, C_in): one GEMM
        gb = gy2.sum(axis=0) if (need_b and ctx.has_bias) else None    # (C_out,)
        return gx, gw, gb


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, PyTorch's F.linear: x (..., in), weight (out, in), bias (out,)."""
    xd, wd = _data(x), _data(weight)
    if wd.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {wd.shape}")
    if xd.ndim < 1 or xd.shape[-1] != wd.shape[1]:
        raise ValueError(
            f"linear: input shape {xd.shape} does not match weight shape {wd.shape}: "
            f"the last dim of the input must equal in_features={wd.shape[1]}"
        )
    if xd.dtype.kind != "f" or xd.dtype != wd.dtype:
        raise ValueError(f"linear: input dtype {xd.dtype} and weight dtype {wd.dtype} must be the same float dtype")
    if bias is not None:
        bd = _data(bias)
        if bd.shape != (wd.shape[0],):
            raise ValueError(f"linear: bias shape {bd.shape} does not match weight shape {wd.shape}; expected ({wd.shape[0]},)")
        if bd.dtype != wd.dtype:
            raise ValueError(f"linear: bias dtype {bd.dtype} must equal weight dtype {wd.dtype}")
    return Linear.apply(x, weight, bias)
