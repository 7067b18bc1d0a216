"""pad, conv1d and conv2d (im2col + one GEMM per product), with hand-written backward passes.

Layout as torch: input (N, C, H, W), weight (O, C / groups, kh, kw), output (N, O, Ho, Wo) with
    Ho = (H + pad_top + pad_bottom - dilation_h * (kh - 1) - 1) // stride_h + 1   (Wo alike).
conv1d runs as conv2d on (N, C, 1, L). Unbatched inputs ((C, H, W) / (C, L)) get a batch dim of 1.
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.errors import NanoframeError
from nanoframe.ops import shape as shape_ops
from nanoframe.parallel import GEMM_UNIT, parallel
from nanoframe.tensor import as_array

_PAD_MODES = ("constant", "reflect", "replicate", "circular")



# ---- pad ----------------------------------------------------------------------------------------------
def _source_index(n, left, right, mode):
    """For each output position along a padded dim of size n, the input position it copies."""
    i = np.arange(-left, n + right)
    if mode == "reflect":                              # ... 2 1 | 0 1 2 3 | 2 1 ...  (edge not repeated)
        i = np.abs(i)
        i = np.where(i > n - 1, 2 * (n - 1) - i, i)
    elif mode == "replicate":                          # 0 0 | 0 1 2 3 | 3 3
        i = np.clip(i, 0, n - 1)
    else:                                              # circular: 2 3 | 0 1 2 3 | 0 1
        i = i % n
    return i


class PadFunction(Function):
    """x (...) -> x padded by pads[d] = (before, after) on each dim d (all dims listed, front first).

    constant: the input is copied into a block of `value`s (a negative pad crops); its backward
    slices the gradient back. reflect / replicate / circular: each padded dim gathers x through an
    index map (output position -> input position); the backward copies the gradient's middle and
    adds each padded edge position onto the input position it came from (pads are narrow).
    """

    @staticmethod
    def forward(ctx, x, *, pads, mode, value):
        ctx.pads, ctx.mode, ctx.x_shape = pads, mode, x.shape
        if mode == "constant":
            out_shape = tuple(n + a + b for n, (a, b) in zip(x.shape, pads))
            y = np.full(out_shape, value, dtype=x.dtype)
            y[_dst(x.shape, pads)] = x[_src(x.shape, pads)]
            return y
        y = x
        for d, (a, b) in enumerate(pads):
            if a or b:
                y = np.take(y, _source_index(x.shape[d], a, b, mode), axis=d)
        return y

    @staticmethod
    def backward(ctx, gy):
        pads, shape = ctx.pads, ctx.x_shape
        if ctx.mode == "constant":
            gx = np.zeros(shape, dtype=gy.dtype)
            gx[_src(shape, pads)] = gy[_dst(shape, pads)]
            return gx
        g = gy
        for d in reversed(range(len(pads))):           # undo the dims in reverse order of padding
            a, b = pads[d]
            if not (a or b):
                continue
            n = shape[d]
            idx = _source_index(n, a, b, ctx.mode)
            gm = np.moveaxis(g, d, 0)
            out = gm[a:a + n].copy()                   # the middle: position i came from input i
            for o in list(range(a)) + list(range(a + n, gm.shape[0])):
                out[idx[o]] += gm[o]                   # each padded position adds to its source
            g = np.moveaxis(out, 0, d)
        return g


def _src(shape, pads):
    """Slices of the input that survive a constant pad (negative pads crop)."""
    return tuple(slice(max(-a, 0), n - max(-b, 0)) for n, (a, b) in zip(shape, pads))


def _dst(shape, pads):
    """Where those input slices land in the output."""
    return tuple(slice(max(a, 0), max(a, 0) + max(n - max(-a, 0) - max(-b, 0), 0))
                 for n, (a, b) in zip(shape, pads))


def pad(input, pad, mode="constant", value=None):
    """PyTorch's F.pad: `pad` lists (left, right) pairs from the LAST dim backwards,
    e.g. (1, 1, 2, 0) pads W by 1 on both sides and H by 2 on top.

    mode "constant" fills with value (default 0; a negative pad crops); "reflect", "replicate" and
    "circular" pad the last 1, 2 or 3 dims of an input with one or two more dims (batch, channels),
    as torch.
    """
    x = as_array(input)
    pad = tuple(int(p) for p in pad)
    if mode not in _PAD_MODES:
        raise NanoframeError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    if len(pad) % 2:
        raise NanoframeError(f"pad: the pad tuple needs (left, right) pairs, got {len(pad)} values {pad}")
    k = len(pad) // 2
    if k > x.ndim:
        raise NanoframeError(f"pad: {len(pad)} pad values pad {k} dims, but the input has shape {x.shape}")
    pads = [(0, 0)] * (x.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    if mode == "constant":
        for n, (a, b) in zip(x.shape, pads):
            if n - max(-a, 0) - max(-b, 0) < 0:
                raise NanoframeError(f"pad: pad {pad} crops more than the input shape {x.shape} holds")
        value = 0.0 if value is None else value
        return PadFunction.apply(input, pads=pads, mode=mode, value=value)
    if value is not None:
        raise NanoframeError(f'pad: mode "{mode}" does not take a value argument')
    if not k + 1 <= x.ndim <= k + 2 or k > 3:
        raise NanoframeError(f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of an input with one or two more "
                             f"dims; got {len(pad)} pad values for input shape {x.shape}")
    for n, (a, b) in zip(x.shape, pads):
        if a < 0 or b < 0:
            raise NanoframeError(f"pad: negative padding (cropping) is only supported in constant mode, got {pad}")
        if mode == "reflect" and (a >= n or b >= n) or mode == "circular" and (a > n or b > n) or n == 0 and (a or b):
            raise NanoframeError(f"pad: {mode} padding {pad} is too large for input shape {x.shape} "
                                 f"({'each pad must be smaller than' if mode == 'reflect' else 'at most'} the dim it pads)")
    return PadFunction.apply(input, pads=pads, mode=mode, value=None)


# ---- conv2d ---------------------------------------------------------------------------------------------
class Conv2dFunction(Function):
    """x (N, C, H, W), weight (O, C/g, kh, kw), bias (O,) or None -> y (N, O, Ho, Wo).

    im2col: the zero-padded input is gathered once into cols (g, K, N*L), K = (C/g) kh kw,
    L = Ho Wo, rows ordered (c, i, j) like the weight's flattening and columns (n, ho, wo); then
        y    = W (g, O/g, K) @ cols                         one GEMM per group, -> (O, N, L)
        dW   = dy (g, O/g, N*L) @ cols^T                     one GEMM per group
        dcol = W^T @ dy,  dx = col2im(dcol)                  one GEMM, then kh * kw strided adds
    Putting N inside the columns makes each product a single large GEMM (instead of one small one
    per image); it costs a transposing copy of y and dy, which are K times smaller than cols.
    Each GEMM is split by columns over nanoframe.parallel's threads, each on a one-thread BLAS:
    measured faster than one call on the BLAS's own threads (which lost badly on a busy machine),
    and a channels-last variant (rows = output positions) was measured no faster, and slower for
    depthwise convolutions. Saves cols and the weight.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, padding
        if pt or pb or pl or pr:
            xp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=x.dtype)
            xp[:, :, pt:pt + h, pl:pl + w] = x
        else:
            xp = np.ascontiguousarray(x)
        ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
        wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
        s_n, s_c, s_h, s_w = xp.strides
        # (C, kh, kw, N, Ho, Wo) view of every input element each output position reads
        view = np.lib.stride_tricks.as_strided(
            xp, (c, kh, kw, n, ho, wo), (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw), writeable=False)
        cols = np.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
        np.copyto(cols, view)
        cols = cols.reshape(groups, cg * kh * kw, n * ho * wo)          # (g, K, N*L)
        wmat = weight.reshape(groups, o // groups, cg * kh * kw)          # (g, O/g, K)
        y = _group_gemm(wmat, cols)                                       # (g, O/g, N*L)
        y = y.reshape(o, n, ho * wo).transpose(1, 0, 2)                   # (N, O, L) view
        out = np.empty((n, o, ho * wo), dtype=x.dtype)
        np.copyto(out, y)
        if bias is not None:
            out += bias[:, None]
        ctx.save_for_backward(cols, weight)
        ctx.has_bias, ctx.x_shape, ctx.xp_shape = bias is not None, x.shape, xp.shape
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return out.reshape(n, o, ho, wo)

    @staticmethod
    def backward(ctx, gy):
        cols, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        n, o, ho, wo = gy.shape
        _, cg, kh, kw = weight.shape
        g = ctx.groups
        gyt = np.empty((o, n, ho * wo), dtype=gy.dtype)
        np.copyto(gyt, gy.reshape(n, o, ho * wo).transpose(1, 0, 2))      # (O, N, L)
        gyt = gyt.reshape(g, o // g, n * ho * wo)                          # (g, O/g, N*L)
        gx = gw = gb = None
        if need_b and ctx.has_bias:
            gb = gyt.reshape(o, -1).sum(axis=1)
        if need_w:
            gw = _group_gemm(gyt, cols.transpose(0, 2, 1)).reshape(weight.shape)   # (g, O/g, K)
        if need_x:
            wmat = weight.reshape(g, o // g, cg * kh * kw)
            gcols = _group_gemm(wmat.transpose(0, 2, 1), gyt)             # (g, K, N*L)
            gx = _col2im(gcols.reshape(g * cg, kh, kw, n, ho, wo), ctx)
        return gx, gw, gb


def _group_gemm(a, b):
    """a (g, m, k) @ b (g, k, n) -> (g, m, n); each group's GEMM split over threads by columns of b."""
    g, m, k = a.shape
    cols = b.shape[2]
    out = np.empty((g, m, cols), dtype=np.result_type(a, b))

    @parallel(cols, work_per_item=max(1, g * m * k // GEMM_UNIT))
    def _(c0, c1):
        for i in range(g):
            np.matmul(a[i], b[i, :, c0:c1], out=out[i, :, c0:c1])
    return out


def _col2im(gcols, ctx):
    """Scatter-add gcols (C, kh, kw, N, Ho, Wo) back onto the padded input, then crop the padding.

    The sums run in gcols' own (C, N, ...) order, so both sides of each strided add walk memory
    alike (measured slightly faster than adding into an (N, C, ...) array); one transposing copy
    at the end.
    """
    c, kh, kw, n, ho, wo = gcols.shape
    (sh, sw), (dh, dw), (pt, _, pl, _) = ctx.stride, ctx.dilation, ctx.padding
    gxp = np.zeros((c, n) + ctx.xp_shape[2:], dtype=gcols.dtype)
    for i in range(kh):
        for j in range(kw):
            # every output position (ho, wo) read input (ho * sh + i * dh, wo * sw + j * dw)
            gxp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += gcols[:, i, j]
    h, w = ctx.x_shape[2:]
    gx = np.empty(ctx.x_shape, dtype=gcols.dtype)
    np.copyto(gx, gxp[:, :, pt:pt + h, pl:pl + w].transpose(1, 0, 2, 3))
    return gx


def _pair(v, n, name, op):
    t = tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * n
    if len(t) != n:
        raise NanoframeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return t


def _conv_padding(padding, kernel, dilation, stride, op):
    """(before, after) per spatial dim from an int, a tuple, "valid" or "same" (torch puts the odd
    extra on the after side)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        if padding != "same":
            raise NanoframeError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise NanoframeError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    p = _pair(padding, n, "padding", op)
    if any(v < 0 for v in p):
        raise NanoframeError(f"{op}: padding must be >= 0, got {padding!r}")
    return [(v, v) for v in p]


def _conv_checks(op, x, w, b, stride, dilation, groups, spatial):
    """Shapes, dtypes and options of a convolution; raises one line naming the op and the shapes."""
    nd = spatial + 2
    if x.ndim not in (nd - 1, nd):
        dims = "(N, C, H, W) or (C, H, W)" if spatial == 2 else "(N, C, L) or (C, L)"
        raise NanoframeError(f"{op}: expected a {nd - 1}-D or {nd}-D input {dims}, got shape {x.shape}")
    if w.ndim != nd:
        raise NanoframeError(f"{op}: weight must be {nd}-D (out_channels, in_channels / groups, *kernel), "
                             f"got shape {w.shape}")
    if x.dtype.kind != "f" or x.dtype != w.dtype:
        raise NanoframeError(f"{op}: input dtype {x.dtype} and weight dtype {w.dtype} must be the same float dtype")
    if groups < 1 or w.shape[0] % groups:
        raise NanoframeError(f"{op}: groups={groups} must be >= 1 and divide out_channels={w.shape[0]}")
    c = x.shape[-spatial - 1]
    if c != w.shape[1] * groups:
        raise NanoframeError(f"{op}: input shape {x.shape} has {c} channels, but weight shape {w.shape} with "
                             f"groups={groups} expects {w.shape[1] * groups}")
    if b is not None:
        bd = as_array(b)
        if bd.shape != (w.shape[0],) or bd.dtype != w.dtype:
            raise NanoframeError(f"{op}: bias must be ({w.shape[0]},) of dtype {w.dtype}, "
                                 f"got shape {bd.shape} dtype {bd.dtype}")
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise NanoframeError(f"{op}: stride {stride} and dilation {dilation} must be >= 1")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch's F.conv2d: input (N, C, H, W) or (C, H, W), weight (O, C/groups, kh, kw).

    padding: an int, (ph, pw), "valid" (none) or "same" (output size = input size; stride 1 only).
    """
    op = "conv2d"
    x, w = as_array(input), as_array(weight)
    stride, dilation = _pair(stride, 2, "stride", op), _pair(dilation, 2, "dilation", op)
    _conv_checks(op, x, w, bias, stride, dilation, int(groups), 2)
    (pt, pb), (pl, pr) = _conv_padding(padding, w.shape[2:], dilation, stride, op)
    hp, wp = x.shape[-2] + pt + pb, x.shape[-1] + pl + pr
    eh, ew = dilation[0] * (w.shape[2] - 1) + 1, dilation[1] * (w.shape[3] - 1) + 1
    if hp < eh or wp < ew:
        raise NanoframeError(f"{op}: padded input size ({hp} x {wp}) is smaller than the dilated kernel "
                             f"({eh} x {ew}) for input shape {x.shape} and weight shape {w.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        input = shape_ops.unsqueeze(input, 0)
    out = Conv2dFunction.apply(input, weight, bias, stride=stride, padding=(pt, pb, pl, pr),
                               dilation=dilation, groups=int(groups))
    return shape_ops.squeeze(out, 0) if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch's F.conv1d: input (N, C, L) or (C, L), weight (O, C/groups, k); runs as conv2d on (N, C, 1, L)."""
    op = "conv1d"
    x, w = as_array(input), as_array(weight)
    stride, dilation = _pair(stride, 1, "stride", op), _pair(dilation, 1, "dilation", op)
    _conv_checks(op, x, w, bias, stride, dilation, int(groups), 1)
    ((pl, pr),) = _conv_padding(padding, w.shape[2:], dilation, stride, op)
    if x.shape[-1] + pl + pr < dilation[0] * (w.shape[2] - 1) + 1:
        raise NanoframeError(f"{op}: padded input length {x.shape[-1] + pl + pr} is smaller than the dilated kernel "
                             f"({dilation[0] * (w.shape[2] - 1) + 1}) for input shape {x.shape} and weight shape {w.shape}")
    unbatched = x.ndim == 2
    x4 = shape_ops.unsqueeze(input, 1 if unbatched else 2)                # (N, C, 1, L) / (C, 1, L)
    if unbatched:
        x4 = shape_ops.unsqueeze(x4, 0)
    out = Conv2dFunction.apply(x4, shape_ops.unsqueeze(weight, 2), bias, stride=(1,) + stride,
                               padding=(0, 0, pl, pr), dilation=(1,) + dilation, groups=int(groups))
    out = shape_ops.squeeze(out, 2)                                        # (N, O, Lo)
    return shape_ops.squeeze(out, 0) if unbatched else out
