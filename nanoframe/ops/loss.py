"""Losses with PyTorch's signatures, layouts and reductions.

cross_entropy / nll_loss take torch's layout: the class dim is 1. Input (N, C) with targets (N,),
(N, C, d1, ..., dk) with targets (N, d1, ..., dk), or (C,) with a 0-d target; cross_entropy also
takes class probabilities shaped like the input. The fused ops work on rows: (N, C) is used as it
is (the common case keeps its speed), a (C,) input is one row, and for more dims the wrapper moves
the class dim last (one transposing copy, undone by the backward) and flattens to rows.

Elementwise losses: mse_loss, l1_loss, smooth_l1_loss, binary_cross_entropy and
binary_cross_entropy_with_logits. Every function takes torch's deprecated size_average / reduce
arguments too (mapped to `reduction` with torch's warning), so positional calls line up.
"""
import warnings

import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.errors import NanoframeError
from nanoframe.ops import elementwise, reduce as reduce_ops, shape as shape_ops
from nanoframe.parallel import parallel
from nanoframe.tensor import Tensor, as_array

_REDUCTIONS = ("mean", "sum", "none")
IGNORE_INDEX = -100   # the target that carries no loss (torch's default ignore_index)



def reduction_from_args(op, size_average, reduce, reduction):
    """The reduction to use, checked; torch's _Reduction.legacy_get_string: the deprecated
    size_average / reduce flags, when given, decide (with torch's warning)."""
    if size_average is not None or reduce is not None:
        warnings.warn("size_average and reduce args will be deprecated, please use reduction='"
                      f"{'none' if reduce is False else 'mean' if size_average in (None, True) else 'sum'}"
                      "' instead.", UserWarning, stacklevel=3)
        if reduce is False:
            reduction = "none"
        else:
            reduction = "mean" if size_average in (None, True) else "sum"
    if reduction not in _REDUCTIONS:
        raise NanoframeError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


# ---- class-dim layout -----------------------------------------------------------------------------
def _class_rows(input, x):
    """input as (N, C) rows with the class dim last: a view for 1-D and 2-D, a transpose for more."""
    if x.ndim == 1:
        return shape_ops.reshape(input, (1, x.shape[0]))
    if x.ndim == 2:
        return input
    dims = (0,) + tuple(range(2, x.ndim)) + (1,)
    n = x.shape[0] * int(np.prod(x.shape[2:]))
    return shape_ops.reshape(shape_ops.permute(input, *dims), (n, x.shape[1]))


def _check_input(op, x):
    if x.dtype.kind != "f":
        raise NanoframeError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    if x.ndim < 1:
        raise NanoframeError(f"{op}: input must be (C,), (N, C) or (N, C, d1, ...), got a 0-d input")


def _check_weight(op, weight, c, dtype):
    if weight is None:
        return None
    w = as_array(weight)
    if w.ndim != 1 or w.shape[0] != c:
        raise NanoframeError(f"{op}: weight must have shape ({c},), one entry per class, got shape {w.shape}")
    if w.dtype.kind != "f":
        raise NanoframeError(f"{op}: weight must be a float array, got dtype {w.dtype}")
    return w.astype(dtype, copy=False)


def _check_class_targets(op, x, t, ignore_index):
    """Int targets of shape (N, d1, ...) (or () for a (C,) input) with ids in [0, C) or ignore_index."""
    expected = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    if t.dtype.kind not in "iu":
        raise NanoframeError(
            f"{op}: targets must be integer class ids of shape {expected}"
            f"{' or class probabilities of the input shape ' + str(x.shape) if op == 'cross_entropy' else ''}, "
            f"got dtype {t.dtype} with shape {t.shape}"
        )
    if t.shape != expected:
        raise NanoframeError(
            f"{op}: targets shape {t.shape} does not match input shape {x.shape}: expected {expected} "
            "(the class dim is 1: input (N, C, d1, ...), targets (N, d1, ...))"
        )
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        tid = int(t[bad].flat[0])
        raise NanoframeError(f"{op}: target id {tid} is out of range [0, {c}) (ignore_index={ignore_index})")
    return t.reshape(-1)


def _reduce_rows(loss_rows, reduction, shape, denom):
    """Reduce per-row losses (N,) (0 on ignored rows); mean divides by denom (nan if 0, as torch)."""
    if reduction == "none":
        return loss_rows.reshape(shape)
    total = loss_rows.sum()
    if reduction == "sum":
        return np.asarray(total, dtype=loss_rows.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / denom if denom else np.nan, dtype=loss_rows.dtype)


def _row_scale(gy, reduction, denom, n, dtype, valid=None):
    """dL/dloss_row (N,): gy spread over the rows ("mean" divides by denom), 0 on ignored rows."""
    if reduction == "none":
        scale = gy.reshape(-1).astype(dtype, copy=True)
    else:
        g = gy.reshape(()).astype(dtype)
        if reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                g = g / denom if denom else g * np.nan
        scale = np.full(n, g, dtype=dtype)
    if valid is not None:
        scale[~valid] = 0
    return scale


def _softmax_parts(x):
    """Row max m (N, 1), e = exp(x - m) (N, C) and s = sum(e) (N, 1) >= 1, rows shared over threads."""
    n, c = x.shape
    m = np.empty((n, 1), dtype=x.dtype)
    e = np.empty_like(x)
    s = np.empty((n, 1), dtype=x.dtype)

    if not c:                                          # no classes: nothing to normalise (lse = 0)
        m[...], s[...] = 0, 1
        return m, e, s

    @parallel(n, work_per_item=c)
    def _(a, b):
        np.max(x[a:b], axis=1, keepdims=True, out=m[a:b])
        np.subtract(x[a:b], m[a:b], out=e[a:b])
        np.exp(e[a:b], out=e[a:b])
        np.sum(e[a:b], axis=1, keepdims=True, out=s[a:b])

    return m, e, s


class CrossEntropy(Function):
    """logits (N, C), int targets (N,), weight (C,) or None -> loss; log-softmax and NLL fused.

    Per row, with lse = m + log(sum_j exp(x_j - m)) (stable for logits of any size), eps the label
    smoothing, w_t the target's class weight (1 without weights) and W = sum_j w_j:
        loss = (1 - eps) w_t (lse - x_t) + eps / C * sum_j w_j (lse - x_j)
    (torch's formula; the second term is -sum_j w_j log p_j / C). "mean" divides the sum of the
    rows by sum of w_t over non-ignored rows (their count without weights).
    Saves e = exp(x - m) (N, C) and 1 / sum(e) (N, 1): the softmax p = e / sum(e) is normalised
    only inside the backward's single scaling pass.
        dloss/dx_j = p_j A - (1 - eps) w_t [j == t] - eps / C w_j,  A = (1 - eps) w_t + eps W / C
    """

    @staticmethod
    def forward(ctx, x, t, weight=None, *, ignore_index, label_smoothing, reduction, out_shape):
        n, c = x.shape
        valid = t != ignore_index                      # (N,)
        t_safe = np.where(valid, t, 0)
        rows = np.arange(n)
        m, e, s = _softmax_parts(x)
        lse = np.log(s)
        lse += m                                       # (N, 1) logsumexp
        lse = lse[:, 0]
        loss = lse - x[rows, t_safe]                   # (N,) nll = lse - x_t
        w_t = None if weight is None else weight[t_safe]
        if w_t is not None:
            loss *= w_t
        if label_smoothing > 0.0:
            if weight is None:
                smooth = lse - x.mean(axis=1)          # sum_j (lse - x_j) / C
            else:
                smooth = (weight.sum() * lse - x @ weight) / c
            loss *= 1.0 - label_smoothing
            smooth *= label_smoothing
            loss += smooth
        loss[~valid] = 0
        denom = float(w_t[valid].sum()) if w_t is not None else int(np.count_nonzero(valid))
        out = _reduce_rows(loss, reduction, out_shape, denom)
        np.divide(1.0, s, out=s)                       # 1 / sum(e)
        ctx.save_for_backward(e, s, t_safe, valid, weight, w_t)
        ctx.label_smoothing, ctx.reduction, ctx.denom = label_smoothing, reduction, denom
        return out

    @staticmethod
    def backward(ctx, gy):
        e, inv_s, t_safe, valid, weight, w_t = ctx.saved_tensors
        eps = ctx.label_smoothing
        n, c = e.shape
        scale = _row_scale(gy, ctx.reduction, ctx.denom, n, e.dtype, valid)     # (N,)
        a = scale if w_t is None else scale * ((1.0 - eps) * w_t + eps * weight.sum() / c)
        row_factor = inv_s * a[:, None]               # (N, 1): p_j A in one pass, g = e * A / sum(e)
        g = np.empty_like(e)                           # (N, C)

        @parallel(n, work_per_item=c)
        def _(i, j):
            np.multiply(e[i:j], row_factor[i:j], out=g[i:j])

        hit = (1.0 - eps) * scale if w_t is None else (1.0 - eps) * scale * w_t
        g[np.arange(n), t_safe] -= hit                                        # - (1 - eps) w_t [j == t]
        if eps > 0.0:
            g -= (eps / c) * (scale[:, None] if weight is None else np.outer(scale, weight))   # - eps w_j / C
        return g, None, None


class SoftTargetCrossEntropy(Function):
    """logits (N, C), class probabilities q (N, C), weight (C,) or None -> loss.

    With q' = (1 - eps) q + eps / C (label smoothing eps) and log p = x - lse:
        loss = -sum_j w_j q'_j log p_j;  "mean" divides by N (torch: numel / C), not by weights.
        dloss/dx_j = p_j sum_k w_k q'_k - w_j q'_j;   dloss/dq_j = -(1 - eps) w_j log p_j
    Saves log p and w q'.
    """

    @staticmethod
    def forward(ctx, x, q, weight=None, *, label_smoothing, reduction, out_shape):
        n, c = x.shape
        m, e, s = _softmax_parts(x)
        lse = np.log(s)
        lse += m
        logp = x - lse                                 # (N, C)
        wq = q * (1.0 - label_smoothing) + label_smoothing / c if label_smoothing > 0.0 else q.copy()
        if weight is not None:
            wq *= weight
        loss = -np.einsum("nc,nc->n", wq, logp)        # (N,)
        out = _reduce_rows(loss, reduction, out_shape, n)
        ctx.save_for_backward(logp, wq, weight)
        ctx.label_smoothing, ctx.reduction = label_smoothing, reduction
        return out

    @staticmethod
    def backward(ctx, gy):
        logp, wq, weight = ctx.saved_tensors
        need_x, need_q = ctx.needs_input_grad[:2]
        n = logp.shape[0]
        scale = _row_scale(gy, ctx.reduction, n, n, logp.dtype)[:, None]       # (N, 1)
        gx = gq = None
        if need_x:
            gx = np.exp(logp)                          # p
            gx *= wq.sum(axis=1, keepdims=True)
            gx -= wq
            gx *= scale
        if need_q:
            gq = logp * (-(1.0 - ctx.label_smoothing) * scale)
            if weight is not None:
                gq *= weight
        return gx, gq, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=IGNORE_INDEX, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """PyTorch's F.cross_entropy: log_softmax over dim 1 (dim 0 for a (C,) input) and NLL.

    target: class ids (N, d1, ...) (ignore_index skips a target), or class probabilities shaped
    like the input (a float array). weight (C,) rescales each class. reduction "mean" divides by
    the summed weight of the non-ignored targets (nan if there are none, as torch), "sum" adds,
    "none" returns per-target losses shaped like the class-id target (0 where ignored).
    """
    op = "cross_entropy"
    x, t = as_array(input), as_array(target)
    reduction = reduction_from_args(op, size_average, reduce, reduction)
    _check_input(op, x)
    if not 0.0 <= label_smoothing <= 1.0:
        raise NanoframeError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = _check_weight(op, weight, c, x.dtype)
    if t.dtype.kind == "f" and t.shape == x.shape:
        if ignore_index >= 0:
            raise NanoframeError(f"{op}: ignore_index={ignore_index} is not supported for class-probability targets")
        if t.dtype != x.dtype:
            target = elementwise.cast(target if isinstance(target, Tensor) else Tensor(t), x.dtype)
        return SoftTargetCrossEntropy.apply(_class_rows(input, x), _class_rows(target, x), w,
                                            label_smoothing=float(label_smoothing), reduction=reduction,
                                            out_shape=x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())
    t_rows = _check_class_targets(op, x, t, ignore_index)
    return CrossEntropy.apply(_class_rows(input, x), t_rows, w, ignore_index=ignore_index,
                              label_smoothing=float(label_smoothing), reduction=reduction, out_shape=t.shape)


class NLL(Function):
    """log-probabilities (N, C), int targets (N,), weight (C,) or None: loss_row = -w_t logp[row, t].

    "mean" divides by the summed w_t of the non-ignored rows. Saves only the targets and their
    weights; the gradient is sparse (one entry per row).
    """

    @staticmethod
    def forward(ctx, logp, t, weight=None, *, ignore_index, reduction, out_shape):
        n = logp.shape[0]
        valid = t != ignore_index
        t_safe = np.where(valid, t, 0)
        loss = -logp[np.arange(n), t_safe]
        w_t = None if weight is None else weight[t_safe]
        if w_t is not None:
            loss *= w_t
        loss[~valid] = 0
        denom = float(w_t[valid].sum()) if w_t is not None else int(np.count_nonzero(valid))
        ctx.save_for_backward(t_safe, valid, w_t)
        ctx.reduction, ctx.denom, ctx.shape = reduction, denom, logp.shape
        return _reduce_rows(loss, reduction, out_shape, denom)

    @staticmethod
    def backward(ctx, gy):
        t_safe, valid, w_t = ctx.saved_tensors
        n = t_safe.shape[0]
        scale = _row_scale(gy, ctx.reduction, ctx.denom, n, gy.dtype, valid)
        if w_t is not None:
            scale *= w_t
        g = np.zeros(ctx.shape, dtype=gy.dtype)
        g[np.arange(n), t_safe] = -scale
        return g, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=IGNORE_INDEX, reduce=None, reduction="mean"):
    """PyTorch's F.nll_loss on log-probabilities: input (N, C, d1, ...) / (C,), int target (N, d1, ...) / ()."""
    op = "nll_loss"
    x, t = as_array(input), as_array(target)
    reduction = reduction_from_args(op, size_average, reduce, reduction)
    _check_input(op, x)
    w = _check_weight(op, weight, x.shape[0] if x.ndim == 1 else x.shape[1], x.dtype)
    t_rows = _check_class_targets(op, x, t, ignore_index)
    return NLL.apply(_class_rows(input, x), t_rows, w, ignore_index=ignore_index, reduction=reduction,
                     out_shape=t.shape)


# ---- elementwise losses -----------------------------------------------------------------------------
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


def _pair_grads(ctx, g):
    """(d/dinput, d/dtarget) of a loss of diff = input - target, from g = dL/ddiff (broadcast shape)."""
    need_in, need_t = ctx.needs_input_grad[:2]
    return (unbroadcast(g, ctx.in_shape) if need_in else None,
            -unbroadcast(g, ctx.t_shape) if need_t else None)


class MSE(Function):
    """loss = (input - target)^2, reduced. Saves diff = input - target (broadcast shape)."""

    @staticmethod
    def forward(ctx, input, target, *, reduction):
        diff = np.subtract(input, target)
        ctx.save_for_backward(diff)
        ctx.reduction, ctx.in_shape, ctx.t_shape = reduction, input.shape, np.shape(target)
        return _reduce_elementwise(diff * diff, reduction)

    @staticmethod
    def backward(ctx, gy):
        (diff,) = ctx.saved_tensors
        return _pair_grads(ctx, diff * (2.0 * _elementwise_scale(gy, ctx.reduction, diff.size, diff.dtype)))


class L1(Function):
    """loss = |input - target|, reduced. Saves sign(input - target) (0 where equal, as torch)."""

    @staticmethod
    def forward(ctx, input, target, *, reduction):
        diff = np.subtract(input, target)
        ctx.save_for_backward(np.sign(diff))
        ctx.reduction, ctx.in_shape, ctx.t_shape = reduction, input.shape, np.shape(target)
        return _reduce_elementwise(np.abs(diff, out=diff), reduction)

    @staticmethod
    def backward(ctx, gy):
        (sign,) = ctx.saved_tensors
        return _pair_grads(ctx, sign * _elementwise_scale(gy, ctx.reduction, sign.size, sign.dtype))


class SmoothL1(Function):
    """Huber-like loss with threshold beta > 0, d = input - target:
        loss = 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere
        dloss/dd = d / beta where |d| < beta, sign(d) elsewhere
    Saves d/dd itself (one array)."""

    @staticmethod
    def forward(ctx, input, target, *, reduction, beta):
        d = np.subtract(input, target)
        ad = np.abs(d)
        small = ad < beta
        loss = np.where(small, (0.5 / beta) * d * d, ad - 0.5 * beta)
        ctx.save_for_backward(np.where(small, d / beta, np.sign(d)))
        ctx.reduction, ctx.in_shape, ctx.t_shape = reduction, input.shape, np.shape(target)
        return _reduce_elementwise(loss, reduction)

    @staticmethod
    def backward(ctx, gy):
        (dd,) = ctx.saved_tensors
        return _pair_grads(ctx, dd * _elementwise_scale(gy, ctx.reduction, dd.size, dd.dtype))


def _check_pair(op, input, target):
    """Float input; target broadcastable (torch warns when the sizes differ); target cast to the input dtype."""
    x, t = as_array(input), as_array(target)
    if x.dtype.kind != "f":
        raise NanoframeError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    try:
        np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise NanoframeError(f"{op}: input shape {x.shape} and target shape {t.shape} do not broadcast") from None
    if t.shape != x.shape:
        warnings.warn(f"{op}: using a target size {t.shape} that is different to the input size {x.shape}. "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)
    if t.dtype != x.dtype:
        target = elementwise.cast(target, x.dtype) if isinstance(target, Tensor) else t.astype(x.dtype)
    return target


def _weighted(op, loss, input, weight, reduction):
    """torch's weighted mse/l1: elementwise loss * weight; "mean" divides by sum(weight). Composed
    from Tensor ops, so weight gets a gradient too when it requires one."""
    w = as_array(weight)
    if w.shape != as_array(input).shape:
        raise NanoframeError(f"{op}: weight shape {w.shape} must equal input shape {as_array(input).shape}")
    loss = loss * (weight if isinstance(weight, Tensor) else w.astype(as_array(input).dtype))
    if reduction == "none":
        return loss
    total = reduce_ops.sum(loss)
    return total if reduction == "sum" else total / (reduce_ops.sum(weight) if isinstance(weight, Tensor) else w.sum())


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """PyTorch's F.mse_loss: (input - target)^2; weight (input's shape) scales each element."""
    reduction = reduction_from_args("mse_loss", size_average, reduce, reduction)
    target = _check_pair("mse_loss", input, target)
    if weight is not None:
        diff = elementwise.sub(input, target)
        return _weighted("mse_loss", diff * diff, input, weight, reduction)
    return MSE.apply(input, target, reduction=reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """PyTorch's F.l1_loss: |input - target|; weight (input's shape) scales each element."""
    reduction = reduction_from_args("l1_loss", size_average, reduce, reduction)
    target = _check_pair("l1_loss", input, target)
    if weight is not None:
        return _weighted("l1_loss", elementwise.abs(elementwise.sub(input, target)), input, weight, reduction)
    return L1.apply(input, target, reduction=reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """PyTorch's F.smooth_l1_loss; beta=0 is the L1 loss (as torch)."""
    reduction = reduction_from_args("smooth_l1_loss", size_average, reduce, reduction)
    if beta < 0:
        raise NanoframeError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    target = _check_pair("smooth_l1_loss", input, target)
    if beta == 0.0:
        return L1.apply(input, target, reduction=reduction)
    return SmoothL1.apply(input, target, reduction=reduction, beta=float(beta))


_BCE_EPS = float(np.float32(1e-12))   # torch's EPSILON is the float literal 1e-12f (9.99999996e-13)


class BCE(Function):
    """Binary cross-entropy on probabilities x in [0, 1] with targets y, as torch computes it:
        loss = -w (y max(log x, -100) + (1 - y) max(log(1 - x), -100))   (the clamp keeps it finite)
        dloss/dx = w (x - y) / max(x (1 - x), 1e-12)
        dloss/dy = w (log(1 - x) - log x)                                  (torch: -logit(x))
    Saves x, y and w."""

    @staticmethod
    def forward(ctx, x, y, weight=None, *, reduction):
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100.0)
            log_1mx = np.maximum(np.log1p(-x), -100.0)
        loss = (y - 1.0) * log_1mx - y * log_x
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y, weight)
        ctx.reduction = reduction
        return _reduce_elementwise(loss, reduction)

    @staticmethod
    def backward(ctx, gy):
        x, y, weight = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[:2]
        g = _elementwise_scale(gy, ctx.reduction, x.size, x.dtype)
        if weight is not None:
            g = g * weight
        gx = gyt = None
        if need_x:
            gx = np.broadcast_to(g * (x - y) / np.maximum(x * (1.0 - x), _BCE_EPS), x.shape)
        if need_y:
            with np.errstate(divide="ignore"):
                gyt = np.broadcast_to(g * (np.log1p(-x) - np.log(x)), y.shape)
        return gx, gyt, None


def _check_binary(op, input, target, weight):
    x, t = as_array(input), as_array(target)
    if x.dtype.kind != "f":
        raise NanoframeError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")
    if t.shape != x.shape:
        raise NanoframeError(f"{op}: target shape {t.shape} must equal input shape {x.shape}")
    if t.dtype != x.dtype:
        if isinstance(target, Tensor) and t.dtype.kind == "f":
            target = elementwise.cast(target, x.dtype)
        else:
            target = t.astype(x.dtype)
    w = None
    if weight is not None:
        w = as_array(weight).astype(x.dtype, copy=False)
        try:
            fits = np.broadcast_shapes(w.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise NanoframeError(f"{op}: weight shape {w.shape} does not broadcast to input shape {x.shape}")
    return target, w


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """PyTorch's F.binary_cross_entropy on probabilities in [0, 1]; weight is a constant (no gradient)."""
    op = "binary_cross_entropy"
    reduction = reduction_from_args(op, size_average, reduce, reduction)
    target, w = _check_binary(op, input, target, weight)
    x = as_array(input)
    if not ((x >= 0) & (x <= 1)).all():
        bad = x[~((x >= 0) & (x <= 1))].flat[0]
        raise NanoframeError(f"{op}: all elements of input should be between 0 and 1, got {bad}")
    return BCE.apply(input, target, w, reduction=reduction)


class BCEWithLogits(Function):
    """Stable binary cross-entropy on logits x with targets y:

        loss = (1 - y) x + lw * softplus(-x),  lw = 1 + (pos_weight - 1) y  (lw = 1 without pos_weight)
        softplus(-x) = log(1 + exp(-x)) = max(-x, 0) + log1p(exp(-|x|))   (never overflows)
    times `weight`, then reduced. Saves x, y and softplus(-x) (and lw, the weights).
        dloss/dx = (1 - y) - lw * (1 - sigmoid(x))       (= sigmoid(x) - y without pos_weight)
        dloss/dy = -x + (pos_weight - 1) softplus(-x)
    """

    @staticmethod
    def forward(ctx, x, y, weight=None, pos_weight=None, *, reduction):
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
        ctx.reduction, ctx.loss_shape = reduction, loss.shape
        return _reduce_elementwise(loss, reduction)

    @staticmethod
    def backward(ctx, gy):
        x, y, sp, lw, weight, pos_weight = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[:2]
        g = _elementwise_scale(gy, ctx.reduction, int(np.prod(ctx.loss_shape)), x.dtype)
        if weight is not None:
            g = g * weight
        g = np.broadcast_to(g, ctx.loss_shape)
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
        return gx, gyt, None, None


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """PyTorch's F.binary_cross_entropy_with_logits, computed stably (no overflow for any logit).

    weight and pos_weight are constants (no gradient flows to them); pos_weight broadcasts
    against the input (e.g. (C,) for one weight per class in the last dim, as torch).
    """
    op = "binary_cross_entropy_with_logits"
    reduction = reduction_from_args(op, size_average, reduce, reduction)
    target, w = _check_binary(op, input, target, weight)
    pw = None
    if pos_weight is not None:
        x = as_array(input)
        pw = as_array(pos_weight).astype(x.dtype, copy=False)
        try:
            fits = np.broadcast_shapes(pw.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise NanoframeError(f"{op}: pos_weight shape {pw.shape} does not broadcast to input shape {x.shape}")
    return BCEWithLogits.apply(input, target, w, pw, reduction=reduction)
