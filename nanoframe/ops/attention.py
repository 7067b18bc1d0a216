"""scaled_dot_product_attention: softmax(q k^T * scale + mask) v with a hand-written backward."""
import math

import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.ops.dropout import dropout_mask
from nanoframe.tensor import Tensor


def _data(a):
    return a.data if isinstance(a, Tensor) else np.asarray(a)


_causal_cache = {}


def _causal_keep(t, s):
    """(T, S) bool, True where query i may attend key j (j <= i; top-left aligned like torch)."""
    key = (t, s)
    if key not in _causal_cache:
        if len(_causal_cache) > 32:
            _causal_cache.clear()
        m = np.tril(np.ones((t, s), dtype=bool))
        m.flags.writeable = False
        _causal_cache[key] = m
    return _causal_cache[key]


class ScaledDotProductAttention(Function):
    """q (..., T, hs), k (..., S, hs), v (..., S, hv) -> y (..., T, hv); e.g. (B, nh, T, hs).

    att = softmax(q k^T * scale + mask) (..., T, S); y = att v. One batched matmul per product.
    Saves q * scale, k, v and the probabilities `att` (as llm.c saves att), plus the scaled
    dropout mask when dropout_p > 0. A query row whose keys are all masked gets att = 0 (so output 0
    and zero gradients), which is what torch 2.x returns on CPU (math and flash backends alike).
    """

    @staticmethod
    def forward(ctx, q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None):
        hs = q.shape[-1]
        scale = 1.0 / math.sqrt(hs) if scale is None else scale
        # numpy's batched matmul only reaches BLAS when every operand is C-contiguous (a transposed
        # view of k costs ~70x on (8, 6, 256, 64)), so the small operands are made contiguous once.
        qs = np.multiply(q, scale, order="C")         # (..., T, hs): scale the small operand
        k = np.ascontiguousarray(k)
        v = np.ascontiguousarray(v)
        kt = np.ascontiguousarray(np.swapaxes(k, -1, -2))   # (..., hs, S)
        att = np.matmul(qs, kt)                        # (..., T, S) one batched GEMM
        t, s = att.shape[-2], att.shape[-1]
        keep = None
        if is_causal:
            keep = _causal_keep(t, s)
        elif attn_mask is not None and attn_mask.dtype == np.bool_:
            keep = attn_mask
        elif attn_mask is not None:
            att += attn_mask                           # float mask: additive (may hold -inf)
        if keep is not None:
            np.copyto(att, -np.inf, where=~keep)       # masked scores -> -inf
        # softmax over keys, in place on att
        m = att.max(axis=-1, keepdims=True)            # (..., T, 1)
        dead = None
        if keep is not None or attn_mask is not None:
            dead = np.isneginf(m)                      # rows with every key masked
            if dead.any():
                m[dead] = 0.0                          # so exp(-inf - 0) = 0, no NaN from -inf - -inf
            else:
                dead = None
        att -= m
        np.exp(att, out=att)
        den = att.sum(axis=-1, keepdims=True)          # (..., T, 1)
        if dead is not None:
            den[dead] = 1.0                            # all-zero row stays zero: torch's output
        att /= den                                     # probabilities
        att_d = att
        dmask = None
        if dropout_p > 0.0:
            dmask = dropout_mask(att.shape, dropout_p, att.dtype)
            att_d = att * dmask                        # dropped and rescaled probabilities
        y = np.matmul(att_d, v)                        # (..., T, hv) one batched GEMM
        ctx.save_for_backward(qs, k, v, att, dmask)
        ctx.scale, ctx.q_shape = scale, q.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        qs, k, v, att, dmask = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        gy = np.ascontiguousarray(gy)
        att_d = att if dmask is None else att * dmask
        gq = gk = gv = None
        if need_v:
            # dv = att^T gy, computed as (gy^T att)^T so that the big (T, S) operand is not transposed
            gv = _t(np.matmul(_t(gy), att_d))                                    # (..., S, hv)
            gv = unbroadcast(gv, v.shape)
        if need_q or need_k:
            datt = np.matmul(gy, _t(v))                # (..., T, S) = gy v^T
            if dmask is not None:
                datt *= dmask
            # softmax backward: dpre = att * (datt - sum_j(datt * att))
            tmp = datt * att
            rowdot = tmp.sum(axis=-1, keepdims=True)   # (..., T, 1)
            del tmp
            datt -= rowdot
            datt *= att                                # masked entries have att = 0 -> no gradient
            if need_q:
                gq = np.matmul(datt, k)                # (..., T, hs) = dpre k
                gq *= ctx.scale
                gq = unbroadcast(gq, ctx.q_shape)
            if need_k:
                gk = _t(np.matmul(_t(qs), datt))       # (..., S, hs) = dpre^T (q * scale)
                gk = unbroadcast(gk, k.shape)
        return gq, gk, gv


def _t(a):
    """Contiguous transpose of the last two dims (cheap for the small (.., T, hs) operands)."""
    return np.ascontiguousarray(np.swapaxes(a, -1, -2))


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None):
    """PyTorch's F.scaled_dot_product_attention on (..., T, hs) inputs, e.g. (B, nh, T, hs).

    attn_mask: bool (True = take part, as torch) or float (added to the scores), broadcastable to
    (..., T, S); not together with is_causal (torch refuses that too). is_causal masks j > i.
    dropout_p > 0 drops attention probabilities with the library's seeded generator (pass
    dropout_p=0 in eval, as with torch). scale defaults to 1 / sqrt(hs).
    """
    qd, kd, vd = _data(q), _data(k), _data(v)
    op = "scaled_dot_product_attention"
    if qd.ndim < 2 or kd.ndim < 2 or vd.ndim < 2:
        raise ValueError(f"{op}: q, k, v need at least 2 dims (..., T, hs), got {qd.shape}, {kd.shape}, {vd.shape}")
    if qd.shape[-1] != kd.shape[-1]:
        raise ValueError(f"{op}: q shape {qd.shape} and k shape {kd.shape} must share the head size (last dim)")
    if kd.shape[-2] != vd.shape[-2]:
        raise ValueError(f"{op}: k shape {kd.shape} and v shape {vd.shape} must have the same length (dim -2)")
    if qd.dtype.kind != "f" or not (qd.dtype == kd.dtype == vd.dtype):
        raise ValueError(f"{op}: q, k, v must share one float dtype, got {qd.dtype}, {kd.dtype}, {vd.dtype}")
    try:
        lead = np.broadcast_shapes(qd.shape[:-2], kd.shape[:-2], vd.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: leading dims of q {qd.shape}, k {kd.shape}, v {vd.shape} do not broadcast") from None
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    mask = None
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both")
        mask = _data(attn_mask)
        if mask.dtype != np.bool_:
            if mask.dtype.kind != "f":
                raise ValueError(f"{op}: attn_mask must be bool or float, got dtype {mask.dtype}")
            mask = mask.astype(qd.dtype, copy=False)
        scores = lead + (qd.shape[-2], kd.shape[-2])
        try:
            fits = np.broadcast_shapes(mask.shape, scores) == scores
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{op}: attn_mask shape {mask.shape} does not broadcast to the scores' shape {scores}")
    out = ScaledDotProductAttention.apply(q, k, v, attn_mask=mask, is_causal=bool(is_causal),
                                          dropout_p=float(dropout_p), scale=scale)
    return out
