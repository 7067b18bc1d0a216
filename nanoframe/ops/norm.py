"""Normalisation: layer_norm (saves mean and rstd, as llm.c does) and rms_norm (saves rstd)."""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.tensor import Tensor


def _data(a):
    return a.data if isinstance(a, Tensor) else np.asarray(a)


def _check_norm_args(op, x, normalized_shape, weight, bias=None):
    """normalized_shape as a tuple; raise ValueError naming the op and the shapes on mismatch."""
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(int(n) for n in normalized_shape)
    k = len(normalized_shape)
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    if k == 0 or x.ndim < k or x.shape[x.ndim - k:] != normalized_shape:
        raise ValueError(
            f"{op}: input shape {x.shape} does not end with normalized_shape {normalized_shape}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            pd = _data(p)
            if pd.shape != normalized_shape:
                raise ValueError(f"{op}: {name} shape {pd.shape} does not match normalized_shape {normalized_shape}")
            if pd.dtype != x.dtype:
                raise ValueError(f"{op}: {name} dtype {pd.dtype} must equal input dtype {x.dtype}")
    return normalized_shape


_SCRATCH_ELEMS = 65536  # a 256 KiB float32 scratch block: stays in L2, allocated without page faults


class LayerNorm(Function):
    """x (..., *normalized_shape) viewed as (N, C) rows, C = prod(normalized_shape).

    y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) (biased variance).
    Saves w, xhat = (x - mean) * rstd (N, C) and rstd (N, 1); llm.c saves mean and rstd and
    recomputes xhat, but keeping xhat (the same size as the x it replaces) spares the backward a
    pass and an (N, C) allocation. Row reductions are matrix-vector products (one BLAS call each)
    and every (N, C) pass after the first writes into the array it reads.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, normalized_shape=None, eps=1e-5):
        c = int(np.prod(normalized_shape))
        x2 = x.reshape(-1, c)                          # (N, C)
        inv_c = np.full(c, 1.0 / c, dtype=x.dtype)
        mean = x2 @ inv_c                              # (N,) BLAS gemv
        xhat = x2 - mean[:, None]                      # (N, C) xc, owned: becomes xhat in place
        var = np.einsum("nc,nc->n", xhat, xhat)        # (N,) sum of squares, no (N, C) temporary
        var *= 1.0 / c
        var += eps
        rstd = np.sqrt(var, out=var)
        np.divide(1.0, rstd, out=rstd)
        rstd = rstd[:, None]                           # (N, 1) 1 / sqrt(var + eps)
        xhat *= rstd
        if weight is None and bias is None:
            y = xhat.copy()                            # xhat is saved: the output must not alias it
        elif weight is not None:
            y = xhat * weight.reshape(-1)
        else:
            y = xhat.copy()
        if bias is not None:
            y += bias.reshape(-1)
        ctx.save_for_backward(weight, xhat, rstd)
        ctx.has_bias, ctx.x_shape, ctx.norm_shape = bias is not None, x.shape, normalized_shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        weight, xhat, rstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c = xhat.shape
        gy2 = gy.reshape(n, c)                         # (N, C)
        gx = gw = gb = None
        if need_w and weight is not None:
            gw = np.einsum("nc,nc->c", gy2, xhat).reshape(ctx.norm_shape)  # dw = sum_n gy * xhat
        if need_b and ctx.has_bias:
            gb = gy2.sum(axis=0).reshape(ctx.norm_shape)                   # db = sum_n gy
        if need_x:
            # dnorm = dL/dxhat = gy * w
            dnorm = gy2 * weight.reshape(-1) if weight is not None else gy2.copy()
            # dx = rstd * (dnorm - mean_c(dnorm) - xhat * mean_c(dnorm * xhat))
            #   term 1: dnorm, the direct path through xhat
            #   term 2: -mean_c(dnorm), through the mean of x
            #   term 3: -xhat * mean_c(dnorm * xhat), through the variance
            #   final scale: * rstd
            inv_c = np.full(c, 1.0 / c, dtype=dnorm.dtype)
            m1 = (dnorm @ inv_c)[:, None]                                  # (N, 1) BLAS gemv
            m2 = np.einsum("nc,nc->n", dnorm, xhat)[:, None]               # (N, 1)
            m2 *= 1.0 / c
            dnorm -= m1                                                    # term 1 + term 2
            # + term 3, in row blocks through one small scratch (xhat is saved: it stays unchanged)
            rows = max(1, _SCRATCH_ELEMS // c)
            scratch = np.empty((min(rows, n), c), dtype=dnorm.dtype)
            for i in range(0, n, rows):
                j = min(i + rows, n)
                s = np.multiply(xhat[i:j], m2[i:j], out=scratch[: j - i])
                dnorm[i:j] -= s
            dnorm *= rstd                                                  # final scale
            gx = dnorm.reshape(ctx.x_shape)
        return gx, gw, gb


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """PyTorch's F.layer_norm: normalise over the trailing dims given by normalized_shape."""
    shape = _check_norm_args("layer_norm", _data(x), normalized_shape, weight, bias)
    return LayerNorm.apply(x, weight, bias, normalized_shape=shape, eps=float(eps))


class RMSNorm(Function):
    """x (..., *normalized_shape) viewed as (N, C): y = x * rstd * w, rstd = 1 / sqrt(mean_c(x^2) + eps).

    Saves x, w and rstd (N, 1).
    """

    @staticmethod
    def forward(ctx, x, weight=None, normalized_shape=None, eps=None):
        c = int(np.prod(normalized_shape))
        x2 = x.reshape(-1, c)                          # (N, C)
        ms = np.einsum("nc,nc->n", x2, x2)[:, None]    # (N, 1) sum of squares
        ms /= c
        ms += eps
        rstd = np.sqrt(ms, out=ms)
        np.divide(1.0, rstd, out=rstd)                 # (N, 1)
        y = x2 * rstd                                  # xhat
        if weight is not None:
            y *= weight.reshape(-1)
        ctx.save_for_backward(x2, weight, rstd)
        ctx.x_shape, ctx.norm_shape = x.shape, normalized_shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        x2, weight, rstd = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        n, c = x2.shape
        gy2 = gy.reshape(n, c)
        xhat = x2 * rstd                               # (N, C)
        gx = gw = None
        if need_w and weight is not None:
            gw = np.einsum("nc,nc->c", gy2, xhat).reshape(ctx.norm_shape)  # dw = sum_n gy * xhat
        if need_x:
            dnorm = gy2 * weight.reshape(-1) if weight is not None else gy2.copy()   # dL/dxhat
            # dx = rstd * (dnorm - xhat * mean_c(dnorm * xhat)); no mean term: x is not centred
            m2 = np.einsum("nc,nc->n", dnorm, xhat)[:, None]
            m2 /= c
            xhat *= m2
            dnorm -= xhat
            dnorm *= rstd
            gx = dnorm.reshape(ctx.x_shape)
        return gx, gw


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """PyTorch's F.rms_norm: eps=None means torch.finfo(x.dtype).eps."""
    xd = _data(x)
    shape = _check_norm_args("rms_norm", xd, normalized_shape, weight)
    eps = float(np.finfo(xd.dtype).eps) if eps is None else float(eps)
    return RMSNorm.apply(x, weight, normalized_shape=shape, eps=eps)
