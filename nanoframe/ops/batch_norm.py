"""batch_norm: per-channel normalisation over the batch (and spatial) dims, hand-written backward.

Input (N, C) or (N, C, d1, ...), viewed as (N, C, M) with M = prod(d...); statistics are taken
per channel over the m = N * M values. In training the batch mean and biased variance normalise,
and the running statistics (when given) move toward the batch's, with the UNBIASED variance
(m / (m - 1)), as torch does; in eval the running statistics normalise.
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.errors import NanoframeError
from nanoframe.tensor import as_array



class BatchNormFunction(Function):
    """x (N, C, *), weight (C,) or None, bias (C,) or None -> y = xhat * w + b,
    xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), mean and var given per channel (C,).

    training=True: mean and var are the batch's own, so they depend on x:
        dx = rstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),  dxhat = dy * w
    (the direct path, then through the mean, then through the variance; sums over N and M).
    training=False: mean and var are constants (running stats): dx = dy * w * rstd.
    dw = sum(dy * xhat), db = sum(dy). Saves xhat (x's size), rstd (C,) and the weight.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, mean, var, eps, training):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)                       # (N, C, M)
        rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)                  # (C,)
        xhat = x3 - mean.astype(x.dtype)[:, None]
        xhat *= rstd[:, None]
        y = xhat * weight[:, None] if weight is not None else xhat.copy()
        if bias is not None:
            y += bias[:, None]
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.training, ctx.has_bias, ctx.x_shape = training, bias is not None, x.shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        xhat, rstd, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c, m = xhat.shape
        g3 = gy.reshape(n, c, m)
        gx = gw = gb = None
        sum_g = g3.sum(axis=(0, 2))                    # (C,)
        sum_gx = np.einsum("ncm,ncm->c", g3, xhat)     # (C,) sum(dy * xhat)
        if need_w and weight is not None:
            gw = sum_gx.astype(xhat.dtype)
        if need_b and ctx.has_bias:
            gb = sum_g.astype(xhat.dtype)
        if need_x:
            scale = rstd if weight is None else rstd * weight                # (C,) w * rstd
            if ctx.training:
                count = n * m
                # dxhat = dy * w, so sum(dxhat) = w sum(dy) and sum(dxhat * xhat) = w sum(dy * xhat)
                gx = xhat * (sum_gx / count)[:, None]
                gx += (sum_g / count)[:, None]
                np.subtract(g3, gx, out=gx)
                gx *= scale[:, None]
            else:
                gx = g3 * scale[:, None]
            gx = gx.reshape(ctx.x_shape)
        return gx, gw, gb


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """PyTorch's F.batch_norm. training=True normalises with the batch statistics and, when
    running_mean / running_var are given, updates them in place:
        running = (1 - momentum) * running + momentum * batch    (variance: the unbiased one)
    training=False normalises with running_mean / running_var (both required)."""
    op = "batch_norm"
    x = as_array(input)
    if x.ndim < 2 or x.dtype.kind != "f":
        raise NanoframeError(f"{op}: expected a float input (N, C) or (N, C, ...), got shape {x.shape} dtype {x.dtype}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and as_array(t).shape != (c,):
            raise NanoframeError(f"{op}: {name} must have shape ({c},) for input shape {x.shape}, got {as_array(t).shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and as_array(t).dtype != x.dtype:
            raise NanoframeError(f"{op}: {name} dtype {as_array(t).dtype} must equal input dtype {x.dtype}")
    if training:
        count = x.size // c if c else 0
        if count <= 1:
            raise NanoframeError(f"{op}: expected more than 1 value per channel when training, "
                                 f"got input shape {x.shape}")
        x3 = x.reshape(x.shape[0], c, -1)
        mean = x3.mean(axis=(0, 2), dtype=np.float64)                       # accumulate in float64
        xc = x3 - mean.astype(x.dtype)[:, None]
        var = np.square(xc).mean(axis=(0, 2), dtype=np.float64)           # biased: normalises
        del xc
        for t, batch in ((running_mean, mean), (running_var, var * count / (count - 1))):
            if t is not None:
                r = as_array(t)
                r *= 1.0 - momentum
                r += (momentum * batch).astype(r.dtype)
    else:
        if running_mean is None or running_var is None:
            raise NanoframeError(f"{op}: running_mean and running_var are required when training=False")
        mean = as_array(running_mean).astype(np.float64)
        var = as_array(running_var).astype(np.float64)
    return BatchNormFunction.apply(input, weight, bias, mean=mean, var=var, eps=float(eps), training=bool(training))
