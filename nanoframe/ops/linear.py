"""linear: y = x @ W^T + b with W stored (out, in) as in PyTorch; one GEMM per product."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.parallel import GEMM_UNIT, parallel
from nanoframe.tensor import as_array



def linear_forward(x, weight, bias=None):
    """The Linear kernel on ndarrays: x (..., C_in) @ weight.T (C_in, C_out) + bias -> (..., C_out).

    Leading dims are flattened to N rows; the rows are split over nanoframe.parallel's threads,
    each a one-thread GEMM. One row (token-by-token decoding, memory-bound on W) goes through an
    einsum sum-of-products, which streams W faster than a one-row BLAS gemv on W^T
    (benchmarks/bench_generate.py).
    """
    c_out, c_in = weight.shape
    x2 = x.reshape(-1, c_in)                           # (N, C_in), a view when x is contiguous
    if x2.shape[0] == 1:
        y = np.einsum("oi,i->o", weight, x2[0])[None, :]
        if bias is not None:
            y += bias
    else:
        y = np.empty((x2.shape[0], c_out), dtype=x2.dtype)

        @parallel(x2.shape[0], work_per_item=c_in * c_out // GEMM_UNIT)
        def _(a, b):
            np.matmul(x2[a:b], weight.T, out=y[a:b])   # (n, C_out): W^T is a strided view
            if bias is not None:
                y[a:b] += bias

    return y.reshape(*x.shape[:-1], c_out)


class LinearOp(Function):
    """x (..., C_in), weight (C_out, C_in), bias (C_out,) or None -> y (..., C_out).

    Saves x and weight. Leading dims are flattened to N = prod(...) rows so that each product,
    forward and backward, is a 2-D GEMM (dW in particular is (C_out, N) @ (N, C_in)). The GEMMs are
    split over nanoframe.parallel's threads (rows of y and dx, output channels of dW and db), each
    running a one-thread BLAS: as fast as a two-thread BLAS call on the big products, and it keeps
    BLAS's own worker threads idle, so they do not spin on the cores the other ops need.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x.reshape(-1, weight.shape[1]), weight)
        ctx.has_bias = bias is not None
        ctx.x_shape = x.shape
        return linear_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, gy):
        x2, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        need_b = need_b and ctx.has_bias
        c_out, c_in = weight.shape
        n = x2.shape[0]
        gy2 = gy.reshape(n, c_out)                     # (N, C_out)
        gx = np.empty_like(x2) if need_x else None
        gw = np.empty_like(weight) if need_w else None
        gb = np.empty(c_out, dtype=weight.dtype) if need_b else None
        ones = np.ones(n, dtype=gy2.dtype) if need_b else None  # gemv sums beat np.sum(axis=0) (bench_ops)

        @parallel(n, work_per_item=2 * c_in * c_out // GEMM_UNIT)
        def _(a, b):
            # rows [a, b) of dx, and the same share [o0, o1) of the output channels for dW
            o0, o1 = (c_out * a // n, c_out * b // n) if n else (0, c_out)   # no rows: dW, db = 0
            if need_x:
                np.matmul(gy2[a:b], weight, out=gx[a:b])               # (n, C_out) @ (C_out, C_in)
            if need_w:
                np.matmul(gy2[:, o0:o1].T, x2, out=gw[o0:o1])          # (o, N) @ (N, C_in)
            if need_b and a == 0:
                # db whole, in the first chunk: a gemv over a column slice rounds differently from
                # one over all columns, and results must not depend on the thread count
                np.matmul(ones, gy2, out=gb)                           # (C_out,): column sums as a gemv

        return (None if gx is None else gx.reshape(ctx.x_shape)), gw, gb


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, PyTorch's F.linear: x (..., in), weight (out, in), bias (out,)."""
    xd, wd = as_array(x), as_array(weight)
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
        bd = as_array(bias)
        if bd.shape != (wd.shape[0],):
            raise ValueError(f"linear: bias shape {bd.shape} does not match weight shape {wd.shape}; expected ({wd.shape[0]},)")
        if bd.dtype != wd.dtype:
            raise ValueError(f"linear: bias dtype {bd.dtype} must equal weight dtype {wd.dtype}")
    return LinearOp.apply(x, weight, bias)
