"""max_pool1d/2d, avg_pool1d/2d and adaptive_avg_pool2d with hand-written backward passes.

Input (N, C, H, W) or (C, H, W) (1-D forms: (N, C, L) or (C, L), run as 2-D with H = 1). The
output size follows torch's pooling_output_shape:
    out = floor((H + 2 p - d (k - 1) - 1 + (s - 1 if ceil_mode else 0)) / s) + 1,
    minus 1 in ceil_mode when the last window would start beyond the input and its left padding.
The windows are walked offset by offset: k_h * k_w strided passes over output-sized arrays, no
window copy of the input.
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.errors import NanoframeError
from nanoframe.ops import shape as shape_ops
from nanoframe.tensor import Tensor, as_array



def _tuple(v, n, name, op):
    t = tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * n
    if len(t) != n:
        raise NanoframeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return t


def _stride(stride, kernel, nd, op):
    """stride=None (or empty) means kernel_size, as torch."""
    if stride is None or isinstance(stride, (list, tuple)) and not stride:
        return kernel
    return _tuple(stride, nd, "stride", op)


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _window(xp, i, j, stride, dilation, out_hw):
    """The (N, C, Ho, Wo) strided view of padded input element (ho * sh + i * dh, wo * sw + j * dw)."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    return xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _padded(x, padding, need_hw, fill):
    """x with `padding` on the top/left and `fill` up to need_hw (ceil_mode windows reach further)."""
    n, c, h, w = x.shape
    ph, pw = padding
    hp, wp = max(h + 2 * ph, need_hw[0]), max(w + 2 * pw, need_hw[1])
    if (hp, wp) == (h, w):
        return x
    xp = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _check_pool(op, x, kernel, stride, padding, dilation, ceil_mode):
    """Options checked and the output size (Ho, Wo); one line naming the op and the shapes."""
    if x.ndim != 4:
        raise NanoframeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise NanoframeError(f"{op}: input must be a float array, got dtype {x.dtype}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise NanoframeError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} must be >= 1 "
                             f"and padding {padding} >= 0")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise NanoframeError(f"{op}: padding {padding} should be at most half of kernel_size {kernel}")
    out = tuple(_out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2))
    if min(out) < 1:
        raise NanoframeError(f"{op}: input shape {x.shape} is too small for kernel_size {kernel}, stride {stride}, "
                             f"padding {padding}, dilation {dilation}: output size would be {out}")
    return out


# ---- max pooling ------------------------------------------------------------------------------------------
class MaxPool2dFunction(Function):
    """x (N, C, H, W) -> y (N, C, Ho, Wo): the max over each window of the -inf padded input.

    Scans the window offsets in row-major order and keeps the first maximum (a NaN wins, the last
    one seen), as torch's CPU kernel does; a window without an element above -inf reports its
    first in-bounds slot, as torch. The winning offset k = i * kw + j is kept in an int16 array,
    updated arithmetically (arg += take * (k - arg): masked stores were measured far slower).
    Saves it; the backward adds dy, offset by offset, into the strided view of the input that
    offset reads (overlapping windows that pick the same element add up) and crops the padding.
    torch's return_indices values (flat (H, W) indices) are built only when asked for.
    """

    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, dilation, out_hw, indices_out=None):
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = kernel, stride, padding, dilation, out_hw
        need = ((ho - 1) * sh + dh * (kh - 1) + 1, (wo - 1) * sw + dw * (kw - 1) + 1)
        xp = _padded(x, padding, need, -np.inf)
        best = _window(xp, 0, 0, stride, dilation, out_hw).copy()
        arg = np.zeros(best.shape, dtype=np.int16)     # window offset i * kw + j of the max
        take = np.empty(best.shape, dtype=bool)
        step = np.empty(best.shape, dtype=np.int16)
        has_nan = bool(np.isnan(x).any())
        for i in range(kh):
            for j in range(kw):
                if i == j == 0:
                    continue
                v = _window(xp, i, j, stride, dilation, out_hw)
                np.greater(v, best, out=take)
                if has_nan:
                    take |= np.isnan(v)
                np.subtract(i * kw + j, arg, out=step)
                step *= take
                arg += step                            # arg = k where take
                np.maximum(best, v, out=best)          # NaN propagates: torch's value too
        none = best == -np.inf                         # nothing above -inf (or only padding)
        if none.any():
            # torch's first in-bounds slot: while (ih0 < 0) ih0 += dilation, per output row / col
            i0 = -(np.minimum(np.arange(ho) * sh - ph, 0) // dh)
            j0 = -(np.minimum(np.arange(wo) * sw - pw, 0) // dw)
            np.copyto(arg, (i0[:, None] * kw + j0[None, :]).astype(np.int16), where=none)
        if indices_out is not None:
            # flat input index of the max: (ho sh - ph + i dh) * W + (wo sw - pw + j dw)
            base = (np.arange(ho)[:, None] * sh - ph) * w + (np.arange(wo)[None, :] * sw - pw)
            k = np.arange(max(kh * kw, int(arg.max()) + 1))     # (a padding-only window may point past the kernel)
            indices_out.append(base + ((k // kw) * dh * w + (k % kw) * dw)[arg])
        ctx.save_for_backward(arg)
        ctx.x_shape, ctx.xp_shape = x.shape, xp.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.dilation, ctx.out_hw = kernel, stride, padding, dilation, out_hw
        return best

    @staticmethod
    def backward(ctx, gy):
        (arg,) = ctx.saved_tensors
        (kh, kw), (ph, pw), (h, w) = ctx.kernel, ctx.padding, ctx.x_shape[2:]
        gxp = np.zeros(ctx.xp_shape, dtype=gy.dtype)
        hit = np.empty(arg.shape, dtype=bool)
        part = np.empty(arg.shape, dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                np.equal(arg, i * kw + j, out=hit)
                np.multiply(gy, hit, out=part)
                _window(gxp, i, j, ctx.stride, ctx.dilation, ctx.out_hw)[...] += part
        return np.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + w])


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """PyTorch's F.max_pool2d; stride defaults to kernel_size. return_indices=True also returns the
    int64 flat (H * W) index of each max, as torch."""
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """PyTorch's F.max_pool1d on (N, C, L) or (C, L); indices are positions along L."""
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def _max_pool(op, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    x4, restore = _as_4d(op, input, nd)
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = _stride(stride, kernel, nd, op)
    padding, dilation = _tuple(padding, nd, "padding", op), _tuple(dilation, nd, "dilation", op)
    if nd == 1:
        kernel, stride, padding, dilation = (1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation
    out_hw = _check_pool(op, as_array(x4), kernel, stride, padding, dilation, ceil_mode)
    indices = [] if return_indices else None
    out = MaxPool2dFunction.apply(x4, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                                  out_hw=out_hw, indices_out=indices)
    if not return_indices:
        return restore(out)
    return restore(out), restore(Tensor(indices[0]))


def _as_4d(op, input, nd):
    """input as (N, C, H, W) (a batch of 1 for unbatched input, H = 1 for the 1-D ops) and the
    function that reshapes a (N, C, Ho, Wo) result back to the input's own layout."""
    x = as_array(input)
    if x.ndim not in (nd + 1, nd + 2):
        dims = "(N, C, H, W) or (C, H, W)" if nd == 2 else "(N, C, L) or (C, L)"
        raise NanoframeError(f"{op}: expected a {nd + 1}-D or {nd + 2}-D input {dims}, got shape {x.shape}")
    batch = x.shape[:-nd - 1] or (1,)
    shape4 = batch + x.shape[-nd - 1:] if nd == 2 else batch + (x.shape[-2], 1, x.shape[-1])
    lead = x.shape[:-nd]                               # (N, C) or (C,)

    def restore(t):
        return shape_ops.reshape(t, lead + t.shape[4 - nd:])

    return (input if shape4 == x.shape else shape_ops.reshape(input, shape4)), restore


# ---- average pooling --------------------------------------------------------------------------------------
def _divisor(size, k, s, p, out, count_include_pad):
    """Per output position along one dim: how many elements its window averages (torch's rule:
    the window clipped to the padded input counts with count_include_pad, else to the input)."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


class AvgPool2dFunction(Function):
    """x (N, C, H, W) -> y (N, C, Ho, Wo): the sum over each zero-padded window / its divisor.

    The divisor factorises into rows times columns (torch's pool_size rule), or is divisor_override.
    The backward spreads dy / divisor back over each window, offset by offset.
    """

    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, out_hw, divisor):
        (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
        need = ((ho - 1) * sh + kh, (wo - 1) * sw + kw)
        xp = _padded(x, padding, need, 0.0)
        y = np.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += _window(xp, i, j, stride, (1, 1), out_hw)
        y /= divisor
        ctx.divisor, ctx.xp_shape, ctx.x_shape = divisor, xp.shape, x.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.out_hw = kernel, stride, padding, out_hw
        return y

    @staticmethod
    def backward(ctx, gy):
        g = gy / ctx.divisor
        gxp = np.zeros(ctx.xp_shape, dtype=gy.dtype)
        kh, kw = ctx.kernel
        for i in range(kh):
            for j in range(kw):
                _window(gxp, i, j, ctx.stride, (1, 1), ctx.out_hw)[...] += g
        (ph, pw), (h, w) = ctx.padding, ctx.x_shape[2:]
        return gxp[:, :, ph:ph + h, pw:pw + w]


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """PyTorch's F.avg_pool2d; stride defaults to kernel_size."""
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """PyTorch's F.avg_pool1d on (N, C, L) or (C, L)."""
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def _avg_pool(op, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nd):
    x4, restore = _as_4d(op, input, nd)
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = _stride(stride, kernel, nd, op)
    padding = _tuple(padding, nd, "padding", op)
    if nd == 1:
        kernel, stride, padding = (1,) + kernel, (1,) + stride, (0,) + padding
    x = as_array(x4)
    out_hw = _check_pool(op, x, kernel, stride, padding, (1, 1), ceil_mode)
    if divisor_override is not None:
        if int(divisor_override) == 0:
            raise NanoframeError(f"{op}: divisor_override must be non-zero")
        divisor = np.asarray(float(divisor_override), dtype=x.dtype)
    else:
        dh, dw = (_divisor(x.shape[2 + i], kernel[i], stride[i], padding[i], out_hw[i], count_include_pad)
                  for i in range(2))
        divisor = np.outer(dh, dw).astype(x.dtype)                        # (Ho, Wo)
    return restore(AvgPool2dFunction.apply(x4, kernel=kernel, stride=stride, padding=padding, out_hw=out_hw,
                                           divisor=divisor))


# ---- adaptive average pooling -----------------------------------------------------------------------------
def _adaptive_matrix(size, out, dtype):
    """(out, size): row i averages input [floor(i size / out), ceil((i + 1) size / out)), as torch."""
    a = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        a[i, start:end] = 1.0 / (end - start)
    return a


class AdaptiveAvgPool2dFunction(Function):
    """x (N, C, H, W) -> y = A_h x A_w^T (N, C, Ho, Wo): each window is a rectangle, so its mean
    is a row average then a column average (two small matmuls). dx = A_h^T dy A_w."""

    @staticmethod
    def forward(ctx, x, *, a_h, a_w):
        ctx.a_h, ctx.a_w = a_h, a_w
        return np.matmul(a_h, np.matmul(x, a_w.T))

    @staticmethod
    def backward(ctx, gy):
        return np.matmul(np.matmul(ctx.a_h.T, gy), ctx.a_w)


def adaptive_avg_pool2d(input, output_size):
    """PyTorch's F.adaptive_avg_pool2d: output_size an int or (Ho, Wo); None keeps that input size."""
    op = "adaptive_avg_pool2d"
    x4, restore = _as_4d(op, input, 2)
    x = as_array(x4)
    if x.dtype.kind != "f":
        raise NanoframeError(f"{op}: input must be a float array, got dtype {x.dtype}")
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) != 2:
        raise NanoframeError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    ho, wo = (x.shape[2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    if ho < 1 or wo < 1 or 0 in x.shape[2:]:
        raise NanoframeError(f"{op}: output size {(ho, wo)} and input shape {x.shape} must be non-empty")
    return restore(AdaptiveAvgPool2dFunction.apply(x4, a_h=_adaptive_matrix(x.shape[2], ho, x.dtype),
                                                   a_w=_adaptive_matrix(x.shape[3], wo, x.dtype)))
