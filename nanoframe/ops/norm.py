"""Normalisation: layer_norm (saves mean and rstd, as llm.c does) and rms_norm (saves rstd)."""
import math

import numpy as np

from nanoframe.autograd import Function
from nanoframe.parallel import parallel, parallel_blocks
from nanoframe.tensor import as_array



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
            pd = as_array(p)
            if pd.shape != normalized_shape:
                raise ValueError(f"{op}: {name} shape {pd.shape} does not match normalized_shape {normalized_shape}")
            if pd.dtype != x.dtype:
                raise ValueError(f"{op}: {name} dtype {pd.dtype} must equal input dtype {x.dtype}")
    return normalized_shape


LN_BLOCK_ELEMS = 131072  # elements per block, at most: fewer, larger numpy calls
LN_DIRECT_ELEMS = 8192   # inputs this small run on the calling thread without entering a region


def layer_norm_forward(x, weight, bias, normalized_shape, eps):
    """The LayerNorm kernel on ndarrays: (y, xhat (N, C), rstd (N, 1)), x viewed as (N, C) rows.

    Rows are processed in fixed blocks of ~LN_BLOCK_ELEMS elements that stay in cache through all
    the passes (one trip to memory instead of ~8), and the blocks are shared out over
    nanoframe.parallel's threads. Inference calls it too and drops xhat and rstd.
    """
    c = math.prod(normalized_shape)
    x2 = x.reshape(-1, c)                              # (N, C)
    n = x2.shape[0]
    w = None if weight is None else weight.reshape(-1)
    b = None if bias is None else bias.reshape(-1)
    inv_c = np.full(c, 1.0 / c, dtype=x.dtype)
    xhat = np.empty_like(x2)                           # (N, C) saved for the backward
    y = np.empty_like(x2)
    rstd = np.empty((n, 1), dtype=x.dtype)             # (N, 1) 1 / sqrt(var + eps)
    rows = _block_rows(n, c)

    def blocks(r0, r1):
        for i in range(r0, r1, rows):
            j = min(i + rows, r1)
            xh, r = xhat[i:j], rstd[i:j, 0]
            np.matmul(x2[i:j], inv_c, out=r)           # mean (BLAS gemv)
            np.subtract(x2[i:j], r[:, None], out=xh)   # xc
            np.einsum("nc,nc->n", xh, xh, out=r)       # sum of squares, no temporary
            r *= 1.0 / c
            r += eps
            np.sqrt(r, out=r)
            np.divide(1.0, r, out=r)
            xh *= r[:, None]                           # xhat
            if w is not None:
                np.multiply(xh, w, out=y[i:j])
            else:
                y[i:j] = xh                            # xhat is saved: the output must not alias it
            if b is not None:
                y[i:j] += b

    if n * c <= LN_DIRECT_ELEMS:
        blocks(0, n)            # decoding's few rows: no thread region (and its BLAS switch) to set up
    else:
        parallel_blocks(n, rows, work_per_elem=c)(blocks)
    return y.reshape(x.shape), xhat, rstd


class LayerNormOp(Function):
    """x (..., *normalized_shape) viewed as (N, C) rows, C = prod(normalized_shape).

    y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) (biased variance).
    Saves w, xhat = (x - mean) * rstd (N, C) and rstd (N, 1); llm.c saves mean and rstd and
    recomputes xhat, but keeping xhat (the same size as the x it replaces) spares the backward a
    pass and an (N, C) allocation.
    The forward is layer_norm_forward. In the backward, dw and db are summed per block, then over
    blocks in block order, so the result does not depend on the thread count.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, normalized_shape, eps=1e-5):
        y, xhat, rstd = layer_norm_forward(x, weight, bias, normalized_shape, eps)
        ctx.save_for_backward(weight, xhat, rstd)
        ctx.has_bias, ctx.x_shape, ctx.norm_shape = bias is not None, x.shape, normalized_shape
        return y

    @staticmethod
    def backward(ctx, gy):
        weight, xhat, rstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        need_w = need_w and weight is not None
        need_b = need_b and ctx.has_bias
        n, c = xhat.shape
        gy2 = gy.reshape(n, c)                         # (N, C)
        w = None if weight is None else weight.reshape(-1)
        # mean_c(dnorm) = gy @ (w / c): a gemv on gy, so dnorm = gy * w is not read for it
        w_c = np.full(c, 1.0 / c, dtype=xhat.dtype) if w is None else w * (1.0 / c)
        rows = _block_rows(n, c)
        n_blocks = -(-n // rows)
        gx = np.empty_like(xhat) if need_x else None
        gw_part = np.empty((n_blocks, c), dtype=xhat.dtype) if need_w else None  # per-block sums
        gb_part = np.empty((n_blocks, c), dtype=xhat.dtype) if need_b else None
        ones = np.ones(rows, dtype=xhat.dtype) if need_b else None

        @parallel(n_blocks, work_per_item=rows * c)
        def _(k0, k1):
            if need_x:                                 # scratch, reused by every block
                tmp = np.empty((rows, c), dtype=xhat.dtype)
                m1, m2 = np.empty(rows, dtype=xhat.dtype), np.empty(rows, dtype=xhat.dtype)
            for k in range(k0, k1):
                i, j = k * rows, min(k * rows + rows, n)
                g, xh, r, out = gy2[i:j], xhat[i:j], j - i, None if gx is None else gx[i:j]
                if need_w:
                    np.einsum("nc,nc->c", g, xh, out=gw_part[k])          # dw = sum_n gy * xhat
                if need_b:
                    np.matmul(ones[:r], g, out=gb_part[k])                 # db = sum_n gy (a gemv)
                if not need_x:
                    continue
                # dx = rstd * (dnorm - mean_c(dnorm) - xhat * mean_c(dnorm * xhat)), dnorm = gy * w:
                #   the direct path through xhat, then through the mean of x, then through the variance
                np.matmul(g, w_c, out=m1[:r])                              # mean_c(dnorm) (gemv)
                d = out                                                    # dnorm, built in dx's rows
                if w is not None:
                    np.multiply(g, w, out=d)
                else:
                    d[...] = g
                np.einsum("nc,nc->n", d, xh, out=m2[:r])
                m2[:r] *= 1.0 / c                                          # mean_c(dnorm * xhat)
                d -= m1[:r, None]
                d -= np.multiply(xh, m2[:r, None], out=tmp[:r])
                d *= rstd[i:j]

        gw = None if gw_part is None else gw_part.sum(axis=0).reshape(ctx.norm_shape)
        gb = None if gb_part is None else gb_part.sum(axis=0).reshape(ctx.norm_shape)
        return (None if gx is None else gx.reshape(ctx.x_shape)), gw, gb


def _block_rows(n, c):
    """Rows per LayerNorm block: equal blocks of at most ~LN_BLOCK_ELEMS elements (>= 1 row)."""
    n_blocks = max(1, -(-(n * c) // LN_BLOCK_ELEMS))
    return max(1, -(-n // n_blocks))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """PyTorch's F.layer_norm: normalise over the trailing dims given by normalized_shape."""
    shape = _check_norm_args("layer_norm", as_array(x), normalized_shape, weight, bias)
    return LayerNormOp.apply(x, weight, bias, normalized_shape=shape, eps=float(eps))


RMS_BLOCK_ELEMS = 131072  # elements per block of the RMSNorm kernel: the passes stay in cache


def rms_norm_forward(x, weight, normalized_shape, eps):
    """The RMSNorm kernel on ndarrays: (y, xhat (N, C), rstd (N, 1)), x viewed as (N, C) rows,
    xhat = x * rstd, rstd = 1 / sqrt(mean_c(x^2) + eps), y = xhat * w.

    Rows go in blocks of ~RMS_BLOCK_ELEMS elements that stay in cache through the passes, the
    blocks shared out over nanoframe.parallel's threads. Inference (cached decoding) calls it too
    and drops xhat and rstd.
    """
    c = int(np.prod(normalized_shape))
    x2 = x.reshape(-1, c)                              # (N, C)
    n = x2.shape[0]
    w = None if weight is None else weight.reshape(-1)
    xhat = np.empty_like(x2)
    y = np.empty_like(x2) if w is not None else xhat   # no weight: y is xhat itself (never written to)
    rstd = np.empty((n, 1), dtype=x.dtype)
    rows = max(1, RMS_BLOCK_ELEMS // max(c, 1))

    @parallel(-(-n // rows), work_per_item=rows * c)
    def _(k0, k1):
        for i in range(k0 * rows, min(k1 * rows, n), rows):
            j = min(i + rows, n)
            r = rstd[i:j, 0]
            np.einsum("nc,nc->n", x2[i:j], x2[i:j], out=r)   # sum of squares, no temporary
            r *= 1.0 / c
            r += eps
            np.sqrt(r, out=r)
            np.divide(1.0, r, out=r)
            np.multiply(x2[i:j], r[:, None], out=xhat[i:j])
            if w is not None:
                np.multiply(xhat[i:j], w, out=y[i:j])

    return y.reshape(x.shape), xhat, rstd


class RMSNormOp(Function):
    """x (..., *normalized_shape) viewed as (N, C): y = x * rstd * w, rstd = 1 / sqrt(mean_c(x^2) + eps).

    The forward is rms_norm_forward; saves w, xhat (N, C) and rstd (N, 1).
    """

    @staticmethod
    def forward(ctx, x, weight=None, *, normalized_shape, eps):
        y, xhat, rstd = rms_norm_forward(x, weight, normalized_shape, eps)
        ctx.save_for_backward(xhat, weight, rstd)
        ctx.x_shape, ctx.norm_shape = x.shape, normalized_shape
        return y if weight is not None else y.copy()   # the output must not alias the saved xhat

    @staticmethod
    def backward(ctx, gy):
        xhat, weight, rstd = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        n, c = xhat.shape
        gy2 = gy.reshape(n, c)
        gx = gw = None
        if need_w and weight is not None:
            gw = np.einsum("nc,nc->c", gy2, xhat).reshape(ctx.norm_shape)  # dw = sum_n gy * xhat
        if need_x:
            gx = np.empty_like(xhat)
            w = None if weight is None else weight.reshape(-1)
            rows = max(1, RMS_BLOCK_ELEMS // max(c, 1))

            @parallel(-(-n // rows), work_per_item=rows * c)
            def _(k0, k1):
                for i in range(k0 * rows, min(k1 * rows, n), rows):
                    j = min(i + rows, n)
                    d = gx[i:j]
                    if w is not None:
                        np.multiply(gy2[i:j], w, out=d)                # dnorm = dL/dxhat
                    else:
                        d[...] = gy2[i:j]
                    # dx = rstd * (dnorm - xhat * mean_c(dnorm * xhat)); no mean term: x is not centred
                    m2 = np.einsum("nc,nc->n", d, xhat[i:j])[:, None]
                    m2 *= 1.0 / c
                    d -= xhat[i:j] * m2
                    d *= rstd[i:j]
            gx = gx.reshape(ctx.x_shape)
        return gx, gw


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """PyTorch's F.rms_norm: eps=None means torch.finfo(x.dtype).eps."""
    xd = as_array(x)
    shape = _check_norm_args("rms_norm", xd, normalized_shape, weight)
    eps = float(np.finfo(xd.dtype).eps) if eps is None else float(eps)
    return RMSNormOp.apply(x, weight, normalized_shape=shape, eps=eps)
