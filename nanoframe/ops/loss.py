"""Losses: cross_entropy (fused with log-softmax), nll_loss, mse_loss, binary_cross_entropy_with_logits.

Layout: the class dim is LAST. Logits / log-probs are (..., V) with targets (...), e.g. (B, T, V)
with (B, T). PyTorch's class-dim-1 layout (N, V, d1, ...) is not supported: for 2-D (N, V) input
the two agree; for more dims move the class dim last first.
"""
import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.parallel import parallel_for
from nanoframe.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _data(a):
    return a.array if isinstance(a, Tensor) else np.asarray(a)


def _check_class_targets(op, x, t, ignore_index):
    """Check logits (..., V) against int targets (...); return the targets as an int ndarray."""
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have a class dim (last), got shape {x.shape}")
    if t.dtype.kind not in "iu":
        raise ValueError(
            f"{op}: targets must be integer class ids, got dtype {t.dtype} with shape {t.shape} "
            "(class-probability targets are not supported)"
        )
    if t.shape != x.shape[:-1]:
        raise ValueError(
            f"{op}: targets shape {t.shape} does not match input shape {x.shape}: expected {x.shape[:-1]} "
            "(the class dim is last: input (..., V), targets (...))"
        )
    v = x.shape[-1]
    bad = (t != ignore_index) & ((t < 0) | (t >= v))
    if bad.any():
        tid = int(t[bad].flat[0])
        raise ValueError(f"{op}: target id {tid} is out of range [0, {v}) (ignore_index={ignore_index})")
    return t


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss_rows, valid, reduction, shape):
    """Reduce per-row losses (N,) (0 on ignored rows). Returns (out, n_valid)."""
    if reduction == "none":
        return loss_rows.reshape(shape), None
    total = loss_rows.sum()
    if reduction == "sum":
        return np.asarray(total, dtype=loss_rows.dtype), None
    n = int(np.count_nonzero(valid))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / n if n else np.nan, dtype=loss_rows.dtype), n   # all ignored: nan, like torch


def _row_scale(gy, valid, reduction, n_valid, dtype):
    """dL/dloss_row (N,): gy spread over the rows, 0 on ignored rows."""
    if reduction == "none":
        scale = gy.reshape(-1).astype(dtype, copy=True)
    else:
        g = gy.reshape(()).astype(dtype)
        if reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                g = g / n_valid if n_valid else g * np.nan
        scale = np.full(valid.shape, g, dtype=dtype)
    scale[~valid] = 0
    return scale


class CrossEntropy(Function):
    """logits (N, V), targets (N,) -> loss; log-softmax and NLL fused, no one-hot ever built.

    Per row: lse = m + log(sum_j exp(x_j - m)), m = max_j x_j (stable for logits of any size),
        loss = (1 - eps) * (lse - x_t) + eps * (lse - mean_j x_j)    (eps = label_smoothing;
        the second term is torch's -sum_j log p_j / V).
    Saves e = exp(x - m) (N, V) and 1 / sum(e) (N, 1): the softmax is e / sum(e), normalised only
    inside the backward's single scaling pass.
    dloss/dx_j = p_j - (1 - eps) [j == t] - eps / V.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        v = logits.shape[-1]
        x = logits.reshape(-1, v)                      # (N, V)
        t = targets.reshape(-1)                        # (N,)
        n = x.shape[0]
        valid = t != ignore_index                      # (N,)
        t_safe = np.where(valid, t, 0)
        rows = np.arange(n)
        m = np.empty((n, 1), dtype=x.dtype)            # (N, 1) row max
        e = np.empty_like(x)                           # (N, V) exp(x - m)
        s = np.empty((n, 1), dtype=x.dtype)            # (N, 1) sum(e) >= 1

        def softmax_rows(a, b):                        # the (N, V) passes, rows shared over threads
            np.max(x[a:b], axis=1, keepdims=True, out=m[a:b])
            np.subtract(x[a:b], m[a:b], out=e[a:b])
            np.exp(e[a:b], out=e[a:b])
            np.sum(e[a:b], axis=1, keepdims=True, out=s[a:b])

        parallel_for(softmax_rows, n, work_per_item=v)
        lse = np.log(s)
        lse += m                                       # (N, 1) logsumexp
        lse = lse[:, 0]
        loss = lse - x[rows, t_safe]                   # (N,) nll = lse - x_t
        if label_smoothing > 0.0:
            smooth = lse - x.mean(axis=1)              # -mean_j log p_j = lse - mean_j x_j
            loss *= 1.0 - label_smoothing
            smooth *= label_smoothing
            loss += smooth
        loss[~valid] = 0
        out, n_valid = _reduce(loss, valid, reduction, targets.shape)
        np.divide(1.0, s, out=s)                       # 1 / sum(e)
        ctx.save_for_backward(e, s, t_safe, valid)
        ctx.opts = (label_smoothing, reduction, n_valid)
        ctx.logits_shape = logits.shape
        return out

    @staticmethod
    def backward(ctx, gy):
        e, inv_s, t_safe, valid = ctx.saved_tensors
        label_smoothing, reduction, n_valid = ctx.opts
        n, v = e.shape
        scale = _row_scale(gy, valid, reduction, n_valid, e.dtype)       # (N,)
        # softmax times the row scale in one pass: g = e * (scale / sum(e))
        row_factor = inv_s * scale[:, None]            # (N, 1)
        g = np.empty_like(e)                           # (N, V)

        def grad_rows(a, b):
            np.multiply(e[a:b], row_factor[a:b], out=g[a:b])

        parallel_for(grad_rows, n, work_per_item=v)
        g[np.arange(n), t_safe] -= (1.0 - label_smoothing) * scale       # - (1 - eps) [j == t]
        if label_smoothing > 0.0:
            g -= (label_smoothing / v) * scale[:, None]                  # - eps / V
        return g.reshape(ctx.logits_shape), None


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """PyTorch's F.cross_entropy with the class dim LAST: logits (..., V), int targets (...).

    reduction "mean" divides by the number of non-ignored targets (nan if all are ignored, as in
    torch), "sum" adds, "none" returns per-target losses shaped like targets (0 where ignored).
    """
    x, t = _data(logits), _data(targets)
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = _check_class_targets("cross_entropy", x, t, ignore_index)
    return CrossEntropy.apply(logits, t, ignore_index=ignore_index,
                              label_smoothing=float(label_smoothing), reduction=reduction)


class NLLLoss(Function):
    """logp (N, V), targets (N,): loss_row = -logp[row, t]. Saves only the targets; the gradient is sparse."""

    @staticmethod
    def forward(ctx, logp, targets, ignore_index=-100, reduction="mean"):
        v = logp.shape[-1]
        x = logp.reshape(-1, v)
        t = targets.reshape(-1)
        valid = t != ignore_index
        t_safe = np.where(valid, t, 0)
        loss = -x[np.arange(x.shape[0]), t_safe]
        loss[~valid] = 0
        out, n_valid = _reduce(loss, valid, reduction, targets.shape)
        ctx.save_for_backward(t_safe, valid)
        ctx.opts = (reduction, n_valid)
        ctx.shape, ctx.dtype = logp.shape, logp.dtype
        return out

    @staticmethod
    def backward(ctx, gy):
        t_safe, valid = ctx.saved_tensors
        reduction, n_valid = ctx.opts
        v = ctx.shape[-1]
        scale = _row_scale(gy, valid, reduction, n_valid, ctx.dtype)
        g = np.zeros((t_safe.shape[0], v), dtype=ctx.dtype)
        g[np.arange(t_safe.shape[0]), t_safe] = -scale
        return g.reshape(ctx.shape), None


def nll_loss(input, targets, ignore_index=-100, reduction="mean"):
    """PyTorch's F.nll_loss on log-probabilities, class dim LAST: input (..., V), int targets (...)."""
    x, t = _data(input), _data(targets)
    _check_reduction("nll_loss", reduction)
    t = _check_class_targets("nll_loss", x, t, ignore_index)
    return NLLLoss.apply(input, t, ignore_index=ignore_index, reduction=reduction)


def _reduce_elementwise(loss, reduction):
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total, dtype=loss.dtype)
    return np.asarray(total / loss.size if loss.size else np.nan, dtype=loss.dtype)


def _elementwise_scale(gy, reduction, size, dtype):
    """dL/dloss_elem: gy itself ("none") or a scalar."""
    if reduction == "none":
        return gy
    g = gy.reshape(()).astype(dtype)
    return g / size if reduction == "mean" else g


class MSELoss(Function):
    """loss = (input - target)^2, reduced. Saves diff = input - target (broadcast shape)."""

    @staticmethod
    def forward(ctx, input, target, reduction="mean"):
        diff = np.subtract(input, target)
        ctx.save_for_backward(diff)
        ctx.opts = (reduction, input.shape, np.shape(target))
        return _reduce_elementwise(diff * diff, reduction)

    @staticmethod
    def backward(ctx, gy):
        (diff,) = ctx.saved_tensors
        reduction, in_shape, t_shape = ctx.opts
        g = diff * (2.0 * _elementwise_scale(gy, reduction, diff.size, diff.dtype))   # d/dinput = 2 diff
        need_in, need_t = ctx.needs_input_grad
        g_in = unbroadcast(g, in_shape) if need_in else None
        g_t = -unbroadcast(g, t_shape) if need_t else None
        return g_in, g_t


def mse_loss(input, target, reduction="mean"):
    """PyTorch's F.mse_loss(input, target, reduction)."""
    x, t = _data(input), _data(target)
    _check_reduction("mse_loss", reduction)
    if x.dtype.kind != "f":
        raise ValueError(f"mse_loss: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    try:
        np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {t.shape} do not broadcast") from None
    if t.dtype != x.dtype and not isinstance(target, Tensor):
        target = t.astype(x.dtype)
    return MSELoss.apply(input, target, reduction=reduction)


class BCEWithLogits(Function):
    """Stable binary cross-entropy on logits x with targets y:

        loss = (1 - y) x + lw * softplus(-x),  lw = 1 + (pos_weight - 1) y  (lw = 1 without pos_weight)
        softplus(-x) = log(1 + exp(-x)) = max(-x, 0) + log1p(exp(-|x|))   (never overflows)
    times `weight`, then reduced. Saves x, y and sigmoid(x).
        dloss/dx = (1 - y) - lw * (1 - sigmoid(x))       (= sigmoid(x) - y without pos_weight)
        dloss/dy = -x + (pos_weight - 1) softplus(-x)
    """

    @staticmethod
    def forward(ctx, x, y, weight=None, pos_weight=None, reduction="mean"):
        sp = np.negative(x)
        np.maximum(sp, 0, out=sp)
        a = np.abs(x)
        np.negative(a, out=a)
        np.exp(a, out=a)
        np.log1p(a, out=a)
        sp += a                                        # softplus(-x)
        loss = (1.0 - y) * x
        lw = None
        if pos_weight is not None:
            lw = 1.0 + (pos_weight - 1.0) * y
            loss = loss + lw * sp
        else:
            loss = loss + sp
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y, sp, lw, weight, pos_weight)
        ctx.opts = (reduction, loss.shape)
        return _reduce_elementwise(loss, reduction)

    @staticmethod
    def backward(ctx, gy):
        x, y, sp, lw, weight, pos_weight = ctx.saved_tensors
        reduction, loss_shape = ctx.opts
        need_x, need_y = ctx.needs_input_grad[:2]
        g = _elementwise_scale(gy, reduction, int(np.prod(loss_shape)), x.dtype)
        if weight is not None:
            g = g * weight
        g = np.broadcast_to(g, loss_shape)
        gx = gyt = None
        if need_x:
            sig = 0.5 * (1.0 + np.tanh(0.5 * x))       # sigmoid(x), overflow-free
            if lw is None:
                d = sig - y                            # sigmoid(x) - y
            else:
                d = (1.0 - y) - lw * (1.0 - sig)
            gx = unbroadcast(g * d, x.shape)
        if need_y:
            d = -x if pos_weight is None else -x + (pos_weight - 1.0) * sp
            gyt = unbroadcast(g * d, y.shape)
        return gx, gyt


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """PyTorch's F.binary_cross_entropy_with_logits, computed stably (no overflow for any logit).

    weight and pos_weight are constants (no gradient flows to them).
    """
    x, t = _data(input), _data(target)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if x.dtype.kind != "f":
        raise ValueError(f"binary_cross_entropy_with_logits: input must be a float array, got dtype {x.dtype}")
    if t.shape != x.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target shape {t.shape} must equal input shape {x.shape}"
        )
    if not isinstance(target, Tensor) and t.dtype != x.dtype:
        target = t.astype(x.dtype)
    elif isinstance(target, Tensor) and t.dtype != x.dtype:
        raise ValueError(f"binary_cross_entropy_with_logits: target dtype {t.dtype} must equal input dtype {x.dtype}")
    w = None if weight is None else _data(weight).astype(x.dtype, copy=False)
    pw = None if pos_weight is None else _data(pos_weight).astype(x.dtype, copy=False)
    for name, arr in (("weight", w), ("pos_weight", pw)):
        if arr is not None:
            try:
                np.broadcast_shapes(arr.shape, x.shape)
            except ValueError:
                raise ValueError(
                    f"binary_cross_entropy_with_logits: {name} shape {arr.shape} does not broadcast to input shape {x.shape}"
                ) from None
    return BCEWithLogits.apply(input, target, weight=w, pos_weight=pw, reduction=reduction)
