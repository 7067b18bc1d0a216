"""Matrix product with NumPy's matmul semantics: 1-D operands, 2-D, and batched with broadcasting
of the batch dims."""
import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.tensor import Tensor


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both operands need at least 1 dim (use * for scalars)")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # dot product: gy is a scalar
            return (gy * b if na else None), (gy * a if nb else None)
        # Promote 1-D operands to matrices (as matmul does) so one formula covers every case:
        # y = a @ b  =>  ga = gy @ b^T,  gb = a^T @ gy, then sum away broadcast batch dims.
        a2 = a[None, :] if a.ndim == 1 else a          # (..., M, K)
        b2 = b[:, None] if b.ndim == 1 else b          # (..., K, N)
        g2 = gy
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)                # (..., M, N)
        ga = gb = None
        if na:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if nb:
            if b2.ndim == 2 and a2.ndim > 2:
                # weight-like b shared across the batch: one GEMM over the flattened batch
                K, N = b2.shape
                gb = a2.reshape(-1, K).T @ g2.reshape(-1, N)
            else:
                gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


def matmul(a, b):
    if not isinstance(a, Tensor):
        a = Tensor(a, dtype=b.dtype)
    if not isinstance(b, Tensor):
        b = Tensor(b, dtype=a.dtype)
    return MatMul.apply(a, b)
