"""Matrix product with NumPy's matmul semantics: 1-D operands, 2-D, and batched with broadcasting
of the batch dims; mm/bmm/mv/dot (matmul with torch's shape checks) and outer."""
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
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(a if nb else None, b if na else None)  # what each gradient needs, as torch
        ctx.shapes = (a.shape, b.shape)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        if len(sa) == 1 and len(sb) == 1:  # dot product: gy is a scalar
            return (gy * b if na else None), (gy * a if nb else None)
        # Promote 1-D operands to matrices (as matmul does) so one formula covers every case:
        # y = a @ b  =>  ga = gy @ b^T,  gb = a^T @ gy, then sum away broadcast batch dims.
        g2 = gy
        if len(sa) == 1:
            g2 = np.expand_dims(g2, -2)
        if len(sb) == 1:
            g2 = np.expand_dims(g2, -1)                # (..., M, N)
        ga = gb = None
        if na:
            b2 = b[:, None] if b.ndim == 1 else b      # (..., K, N)
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), (1,) * (len(sa) == 1) + sa).reshape(sa)
        if nb:
            a2 = a[None, :] if a.ndim == 1 else a      # (..., M, K)
            b2_shape = sb + (1,) * (len(sb) == 1)
            if len(b2_shape) == 2 and a2.ndim > 2:
                # weight-like b shared across the batch: one GEMM over the flattened batch
                K, N = b2_shape
                gb = a2.reshape(-1, K).T @ g2.reshape(-1, N)
            else:
                gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2_shape)
            gb = gb.reshape(sb)
        return ga, gb


def matmul(a, b):
    """torch.matmul: 1-D, 2-D and batched operands. Both must have one dtype (torch refuses
    float32 @ float64); a non-tensor operand takes the other's dtype."""
    if not isinstance(a, Tensor):
        a = Tensor(a, dtype=b.array.dtype)
    if not isinstance(b, Tensor):
        b = Tensor(b, dtype=a.array.dtype)
    if a.array.dtype != b.array.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}")
    return MatMul.apply(a, b)


def _need_dims(op, **tensors):
    for name, (t, ndim) in tensors.items():
        if t.ndim != ndim:
            raise ValueError(f"{op}: {name} must be a {ndim}-D tensor, got shape {tuple(t.shape)}")


def mm(a, b):
    """Matrix product of two 2-D tensors."""
    _need_dims("mm", self=(a, 2), mat2=(b, 2))
    return matmul(a, b)


def bmm(a, b):
    """Batched matrix product of (B, n, m) and (B, m, p) tensors (no broadcasting)."""
    _need_dims("bmm", self=(a, 3), mat2=(b, 3))
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: {a.shape[0]} and {b.shape[0]}")
    return matmul(a, b)


def mv(a, v):
    """Matrix (n, m) times vector (m,)."""
    _need_dims("mv", self=(a, 2), vec=(v, 1))
    return matmul(a, v)


def dot(a, b):
    """Inner product of two 1-D tensors of one length."""
    _need_dims("dot", self=(a, 1), tensor=(b, 1))
    return matmul(a, b)


def outer(a, b):
    """Outer product of two 1-D tensors: out[i, j] = a[i] * b[j]."""
    _need_dims("outer", self=(a, 1), vec2=(b, 1))
    return a.reshape(-1, 1) * b.reshape(1, -1)
