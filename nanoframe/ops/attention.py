"""scaled_dot_product_attention: softmax(q k^T * scale + mask) v with a hand-written backward."""
import math

import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.ops.activation import softmax_, softmax_backward_
from nanoframe.ops.dropout import dropout_mask
from nanoframe.parallel import get_num_threads, parallel_for
from nanoframe.ops.rope import rope_rotate, rope_tables
from nanoframe.tensor import as_array



_mask_cache = {}


def causal_mask(t, s=None, dtype=np.float32):
    """(t, s) additive causal mask, read-only and cached: 0 where key j <= query i, -inf above.

    Top-left aligned, as torch's is_causal. The fused attention adds its square (t, t) form to the
    diagonal block of each query block, cached decoding to its new queries' diagonal block, and
    scaled_dot_product_attention(is_causal=True) the rectangular form to its scores."""
    s = t if s is None else s
    key = (t, s, np.dtype(dtype).str)
    m = _mask_cache.get(key)
    if m is None:
        if len(_mask_cache) > 64:
            _mask_cache.clear()
        m = np.triu(np.full((t, s), -np.inf, dtype=dtype), k=1)
        m.flags.writeable = False
        _mask_cache[key] = m
    return m


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
        # The small (..., T, hs) operands are made contiguous once: cheap next to the (T, S) work,
        # and it keeps batched matmul on BLAS for any input layout (older NumPy versions ran a
        # transposed k through a far slower non-BLAS loop; numpy 2.4 does not).
        qs = np.multiply(q, scale, order="C")         # (..., T, hs): scale the small operand
        k = np.ascontiguousarray(k)
        v = np.ascontiguousarray(v)
        kt = np.ascontiguousarray(np.swapaxes(k, -1, -2))   # (..., hs, S)
        att = np.matmul(qs, kt)                        # (..., T, S) one batched GEMM
        t, s = att.shape[-2], att.shape[-1]
        if is_causal:
            att += causal_mask(t, s, att.dtype)
        elif attn_mask is not None and attn_mask.dtype == np.bool_:
            np.copyto(att, -np.inf, where=~attn_mask)  # masked scores -> -inf
        elif attn_mask is not None:
            att += attn_mask                           # float mask: additive (may hold -inf)
        softmax_(att, empty_rows_zero=attn_mask is not None)    # probabilities, in place
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
            softmax_backward_(datt, att)               # dpre; masked entries have att = 0
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
    qd, kd, vd = as_array(q), as_array(k), as_array(v)
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
        mask = as_array(attn_mask)
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


# ---- fused causal attention: packed or split projections, grouped-query heads, RoPE ----------------
ATTN_BLOCK = 64  # query rows per block: (B, nh, 64, <=T) score blocks; measured best of 32/64/128 on T=256


class CausalSelfAttentionOp(Function):
    """Causal attention of nh query heads over nkv <= nh key/value heads, optionally rotary.

    Inputs: one packed qkv (B, T, (nh + 2 nkv) hs) holding [q | k | v] (GPT-2's c_attn output when
    nkv = nh), or three arrays q (B, T, nh hs), k and v (B, T, nkv hs) (Llama's q_proj, k_proj,
    v_proj). Output y (B, T, nh hs), heads side by side. Query head h reads K/V head h // g,
    g = nh / nkv (transformers' repeat_kv): nkv = nh is multi-head, nkv = 1 multi-query. With
    rope_theta, q and k are rotated (ops/rope.py) inside the op's own passes.

    The same math as viewing q, k, v as (B, heads, T, hs), rotating q and k, repeating each K/V
    head g times and calling scaled_dot_product_attention(q, k, v, is_causal=True), but:
    - no split, repeat, reshape or transpose nodes: q, k, v are strided views of the inputs (BLAS
      takes their row stride), the output is written straight into (B, T, C) through a head view,
      and the backward returns one gradient per input (ONE (B, T, W) array when packed);
    - grouped-query heads are never repeated: the g query heads of one K/V head are stacked into
      one (g * bt, hs) operand, so each K/V head costs one GEMM per block, and dk, dv come out
      summed over the group by the same GEMMs;
    - causal blocks: queries are processed in row blocks [r0, r1) that only see keys [0, r1), so
      the masked upper triangle is mostly never computed (T=256, blocks of 64: 62.5% of the
      score FLOPs, exp and softmax passes), and each block's scores stay cache-sized;
    - the batch (or, below one sequence per thread, the K/V heads) is split over
      nanoframe.parallel's threads, each running single-threaded BLAS on its slab.
    Saves the inputs (for the v and, without rope, k views), the scaled (rotated) queries of each
    block (B, nkv, g, r1 - r0, hs), the rotated keys (B, nkv, T, hs) with rope, each block's
    probabilities `att` (B, nkv, g, r1 - r0, r1) and the scaled dropout masks when dropout_p > 0.
    """

    @staticmethod
    def forward(ctx, q, k=None, v=None, *, n_head, n_kv_head, rope_theta=None, dropout_p=0.0):
        q4, k4, v4 = _head_views(q, k, v, n_head, n_kv_head)
        B, nh, T, hs = q4.shape
        nkv, g = n_kv_head, n_head // n_kv_head
        dtype = q.dtype
        scale = 1.0 / math.sqrt(hs)
        spans = _blocks(T)
        # every random draw happens here, on the calling thread, in a fixed order; (B, nh, bt, r1)
        # viewed as the (B, nkv, g * bt, r1) stacked scores
        masks = [dropout_mask((B, nh, r1 - r0, r1), dropout_p, dtype).reshape(B, nkv, g * (r1 - r0), r1)
                 for r0, r1 in spans] if dropout_p > 0.0 else []
        qs = [np.empty((B, nkv, g, r1 - r0, hs), dtype=dtype) for r0, r1 in spans]   # q * scale (rotated)
        atts = [np.empty((B, nkv, g, r1 - r0, r1), dtype=dtype) for r0, r1 in spans]
        kr = np.empty((B, nkv, T, hs), dtype=dtype) if rope_theta else None           # rotated keys
        cos, sin = rope_tables(T, hs, rope_theta, dtype) if rope_theta else (None, None)
        y = np.empty((B, T, nh * hs), dtype=dtype)

        def slab(ix):  # (sequences, K/V heads) slab ix: writes only its part of y, qs, kr and atts
            q5 = _groups(q4, nkv)[ix]                                  # (b, h, g, T, hs) view
            kk, vv = k4[ix], v4[ix]
            if rope_theta:
                kk = rope_rotate(kk, cos, sin, out=kr[ix])
            y5 = _groups(_heads_view(y, nh), nkv)[ix]                 # (b, h, g, T, hs) view of y
            for i, (r0, r1) in enumerate(spans):
                qb = qs[i][ix]
                if rope_theta:                                         # rotate and scale in one pass
                    rope_rotate(q5[..., r0:r1, :], cos[r0:r1] * scale, sin[r0:r1] * scale, out=qb)
                else:
                    np.multiply(q5[..., r0:r1, :], scale, out=qb)
                att = causal_scores(_stack(qb), kk[:, :, :r1], r0, groups=g, out=_stack(atts[i][ix]))
                att_d = att * masks[i][ix] if masks else att           # dropped, rescaled probabilities
                np.matmul(_unstack(att_d, g), vv[:, :, None, :r1], out=y5[..., r0:r1, :])

        _over_sequences_or_heads(slab, B, nkv, T, g)
        ctx.save_for_backward(q, k, v, qs, kr, atts, masks)
        ctx.n_head, ctx.n_kv_head, ctx.rope_theta = n_head, n_kv_head, rope_theta
        return y

    @staticmethod
    def backward(ctx, gy):
        q, k, v, qs, kr, atts, masks = ctx.saved_tensors
        nh, nkv, theta = ctx.n_head, ctx.n_kv_head, ctx.rope_theta
        packed = k is None
        grads = (np.empty_like(q),) if packed else (np.empty_like(q), np.empty_like(k), np.empty_like(v))
        _, k4, v4 = _head_views(q, k, v, nh, nkv)
        gq4, gk4, gv4 = _head_views(*(grads if not packed else (grads[0], None, None)), nh, nkv)  # views written
        B, _, T, hs = gq4.shape
        g = nh // nkv
        scale = 1.0 / math.sqrt(hs)
        spans = _blocks(T)
        cos, sin = rope_tables(T, hs, theta, q.dtype) if theta else (None, None)
        gk_rot = np.empty((B, nkv, T, hs), dtype=q.dtype) if theta else None   # dk before the inverse rotation

        def slab(ix):  # (sequences, K/V heads) slab ix: writes only its part of the gradients
            kk = kr[ix] if theta else k4[ix]
            vv = v4[ix]
            gq5 = _groups(gq4, nkv)[ix]
            gk = gk_rot[ix] if theta else gk4[ix]                      # views that the GEMMs write
            gv = gv4[ix]
            gy5 = _groups(_heads_view(gy, nh), nkv)[ix]               # (b, h, g, T, hs)
            part = np.empty(kk.shape, dtype=kk.dtype)                  # per-block dk / dv partial sums
            # last block first: it sees every key, so it initialises gk and gv; earlier blocks add to a prefix
            for i, (r0, r1) in reversed(list(enumerate(spans))):
                att = _stack(atts[i][ix])                              # (b, h, g * bt, r1)
                att_d = att * masks[i][ix] if masks else att
                gyb = _stack(gy5[..., r0:r1, :])                       # (b, h, g * bt, hs) (a copy if g > 1)
                att_t = np.swapaxes(att_d, -1, -2)
                if r1 == T:
                    np.matmul(att_t, gyb, out=gv)                      # dv = att^T gy, summed over the group
                else:
                    np.matmul(att_t, gyb, out=part[:, :, :r1])
                    gv[:, :, :r1] += part[:, :, :r1]
                datt = np.matmul(gyb, np.swapaxes(vv[:, :, :r1], -1, -2))  # (b, h, g * bt, r1) = gy v^T
                if masks:
                    datt *= masks[i][ix]
                softmax_backward_(datt, att)                           # dpre; masked keys have att = 0
                dq = _unstack(np.matmul(datt, kk[:, :, :r1]), g)       # d(scaled, rotated q) = dpre k
                if theta:                                              # inverse rotation, times scale
                    rope_rotate(dq, cos[r0:r1] * scale, sin[r0:r1] * -scale, out=gq5[..., r0:r1, :])
                else:
                    np.multiply(dq, scale, out=gq5[..., r0:r1, :])
                dpre_t = np.swapaxes(datt, -1, -2)
                if r1 == T:
                    np.matmul(dpre_t, _stack(qs[i][ix]), out=gk)       # dk = dpre^T (q * scale)
                else:
                    np.matmul(dpre_t, _stack(qs[i][ix]), out=part[:, :, :r1])
                    gk[:, :, :r1] += part[:, :, :r1]
            if theta:
                rope_rotate(gk, cos, -sin, out=gk4[ix])               # back through the key rotation

        _over_sequences_or_heads(slab, B, nkv, T, g)
        return grads if not packed else grads[0]


def causal_scores(qs, k, t0, groups=1, out=None):
    """The attention probabilities of queries at positions t0 .. t0 + bt - 1 over keys 0 .. s - 1
    (s = t0 + bt, every key a query may see): softmax(qs k^T + causal mask), qs already scaled.

    qs (..., groups * bt, hs): the queries of `groups` heads that share the keys, stacked;
    k (..., s, hs) -> (..., groups * bt, s). Keys before t0 are all visible; the mask covers each
    head's (bt, bt) diagonal block. The fused op calls this per query block, cached decoding per
    step, so the attention math is written once. Every row keeps its diagonal key: none is all
    -inf."""
    bt = qs.shape[-2] // groups
    att = np.matmul(qs, np.swapaxes(k, -1, -2), out=out)
    if bt > 1:
        _unstack(att, groups)[..., t0:] += causal_mask(bt, bt, att.dtype)
    return softmax_(att)


def cached_causal_attention(q, k, v, k_cache, v_cache, t0, *, n_head, rope_theta=None):
    """Inference attention for new positions t0 .. t0 + Tn - 1 given the cached keys and values.

    q (B, Tn, nh hs), k and v (B, Tn, nkv hs) (views of a packed projection, or three arrays) ->
    y (B, Tn, nh hs). k_cache, v_cache: (B, nkv, capacity, hs) arrays whose first t0 positions hold
    earlier (rotated) keys and values: only the nkv K/V heads are stored. This call writes positions
    t0 .. t0 + Tn - 1 first. NumPy only: no graph, no dropout.
    """
    B, Tn, _ = q.shape
    nkv, hs = k_cache.shape[1], k_cache.shape[3]
    nh, g, t1 = n_head, n_head // nkv, t0 + Tn
    scale = 1.0 / math.sqrt(hs)
    q5 = _groups(_heads_view(q, nh), nkv)              # (B, nkv, g, Tn, hs) view
    if rope_theta:
        cos, sin = rope_tables(t1, hs, rope_theta, q.dtype)
        cos, sin = cos[t0:], sin[t0:]
        rope_rotate(_heads_view(k, nkv), cos, sin, out=k_cache[:, :, t0:t1])
        qs = rope_rotate(q5, cos * scale, sin * scale)                 # contiguous (B, nkv, g, Tn, hs)
    else:
        k_cache[:, :, t0:t1] = _heads_view(k, nkv)
        qs = np.multiply(q5, scale, order="C")
    v_cache[:, :, t0:t1] = _heads_view(v, nkv)
    att = causal_scores(_stack(qs), k_cache[:, :, :t1], t0, groups=g)    # (B, nkv, g * Tn, t1)
    y = np.empty((B, Tn, nh * hs), dtype=q.dtype)      # heads written side by side
    if Tn == 1:                                        # one position: y is (B, nkv, g, hs), one GEMM per K/V head
        np.matmul(att, v_cache[:, :, :t1], out=y.reshape(B, nkv, g, hs))
    else:
        np.matmul(_unstack(att, g), v_cache[:, :, None, :t1], out=_groups(_heads_view(y, nh), nkv))
    return y


def _over_sequences_or_heads(slab, B, nkv, T, g):
    """Run slab(ix) over the threads, ix = (sequence slice, K/V head slice) of the (B, nkv) stack.

    Split over the sequences, or over the K/V heads when there are fewer sequences than threads
    (batch-1 generation without the cache); every (sequence, K/V head) pair is independent.
    """
    work = 4 * g * T * T                               # per pair: ~4 passes over g (T, T) score blocks
    if B >= get_num_threads():
        parallel_for(lambda b0, b1: slab((slice(b0, b1), slice(None))), B, work_per_item=nkv * work)
    else:
        parallel_for(lambda h0, h1: slab((slice(None), slice(h0, h1))), nkv, work_per_item=B * work)


def _blocks(T):
    """Query row blocks [(r0, r1), ...] of at most ATTN_BLOCK rows covering range(T)."""
    return [(r0, min(r0 + ATTN_BLOCK, T)) for r0 in range(0, T, ATTN_BLOCK)]


def _heads_view(x, nh):
    """(B, nh, T, hs) view of a (B, T, nh * hs) array whose last dim holds the nh heads side by side."""
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _groups(x4, nkv):
    """(B, nkv, g, T, hs) view of (B, nh, T, hs) heads: the g = nh / nkv query heads of each K/V head."""
    B, nh, T, hs = x4.shape
    return x4.reshape(B, nkv, nh // nkv, T, hs)


def _stack(x5):
    """(..., g, bt, hs) -> (..., g * bt, hs): a view when the last three dims are contiguous (the
    op's own buffers), else a copy (fine for an operand that is only read)."""
    *lead, g, bt, hs = x5.shape
    return x5.reshape(*lead, g * bt, hs)


def _unstack(x4, g):
    """(..., g * bt, s) -> (..., g, bt, s): the inverse of _stack (a view)."""
    *lead, rows, s = x4.shape
    return x4.reshape(*lead, g, rows // g, s)


def split_packed(qkv, n_head, n_kv_head=None):
    """Views q (B, T, nh hs), k and v (B, T, nkv hs) of a packed (B, T, (nh + 2 nkv) hs) projection."""
    nkv = n_head if n_kv_head is None else n_kv_head
    hs = qkv.shape[-1] // (n_head + 2 * nkv)
    a, b = n_head * hs, (n_head + nkv) * hs
    return qkv[..., :a], qkv[..., a:b], qkv[..., b:]


def _head_views(q, k, v, n_head, n_kv_head):
    """(B, heads, T, hs) views q4, k4, v4 of the packed qkv (k and v None) or of q, k, v."""
    if k is None:
        q, k, v = split_packed(q, n_head, n_kv_head)
    return _heads_view(q, n_head), _heads_view(k, n_kv_head), _heads_view(v, n_kv_head)


def _check_heads(op, n_head, n_kv_head):
    for name, n in (("n_head", n_head), ("n_kv_head", n_kv_head)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"{op}: {name} must be a positive int, got {n!r}")
    if n_head % n_kv_head != 0:
        raise ValueError(f"{op}: n_head = {n_head} must be a multiple of n_kv_head = {n_kv_head}")


def _check_options(op, hs, rope_theta, dropout_p):
    if rope_theta is not None:
        if isinstance(rope_theta, bool) or not isinstance(rope_theta, (int, float, np.number)) \
                or not math.isfinite(rope_theta) or rope_theta <= 0:
            raise ValueError(f"{op}: rope_theta must be None or a finite number > 0, got {rope_theta!r}")
        if hs % 2 != 0:
            raise ValueError(f"{op}: RoPE needs an even head size, got {hs}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")


def causal_self_attention(qkv, n_head, dropout_p=0.0, *, n_kv_head=None, rope_theta=None):
    """Fused causal self-attention on a packed projection: qkv (B, T, (nh + 2 nkv) hs) -> (B, T, nh hs).

    qkv holds [q | k | v] along the last dim, each with its heads side by side (GPT-2's c_attn
    output, where nkv = nh and the width is 3C). n_kv_head (default n_head) < n_head is
    grouped-query attention; rope_theta rotates q and k (RoPE). Equal to splitting qkv, rotating,
    repeating each K/V head n_head / n_kv_head times, calling
    scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p) on the
    (B, heads, T, hs) views and merging the heads, at a fraction of the cost (see CausalSelfAttentionOp).
    """
    x = as_array(qkv)
    op = "causal_self_attention"
    nkv = n_head if n_kv_head is None else n_kv_head
    _check_heads(op, n_head, nkv)
    units = int(n_head) + 2 * int(nkv)
    if nkv == n_head:
        if x.ndim != 3 or x.shape[-1] % 3 != 0:
            raise ValueError(f"{op}: qkv must be (B, T, 3C), got shape {x.shape}")
        if (x.shape[-1] // 3) % n_head != 0:
            raise ValueError(f"{op}: C = {x.shape[-1] // 3} (qkv shape {x.shape}) is not divisible by "
                             f"n_head = {n_head}")
    elif x.ndim != 3 or x.shape[-1] % units != 0:
        raise ValueError(f"{op}: qkv must be (B, T, (n_head + 2 n_kv_head) * hs) = (B, T, {units} * hs), "
                         f"got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: qkv must be a float array, got dtype {x.dtype}")
    _check_options(op, x.shape[-1] // units, rope_theta, dropout_p)
    return CausalSelfAttentionOp.apply(qkv, n_head=int(n_head), n_kv_head=int(nkv),
                                       rope_theta=None if rope_theta is None else float(rope_theta),
                                       dropout_p=float(dropout_p))


def causal_attention(q, k, v, *, n_head, rope_theta=None, dropout_p=0.0):
    """The fused causal attention on separate projections: q (B, T, nh hs), k and v (B, T, nkv hs)
    -> (B, T, nh hs) (Llama's q_proj, k_proj, v_proj outputs). The number of K/V heads nkv follows
    from k's width and must divide n_head (grouped-query attention). Otherwise as
    causal_self_attention."""
    qd, kd, vd = (as_array(a) for a in (q, k, v))
    op = "causal_attention"
    _check_heads(op, n_head, 1)
    if any(a.ndim != 3 or a.dtype.kind != "f" or a.dtype != qd.dtype or a.shape[:2] != qd.shape[:2]
           for a in (qd, kd, vd)) or kd.shape != vd.shape:
        raise ValueError(f"{op}: q, k, v must be float arrays (B, T, width) of one dtype, B and T, k and v of one "
                         f"shape, got q {qd.dtype} {qd.shape}, k {kd.dtype} {kd.shape}, v {vd.dtype} {vd.shape}")
    hs = qd.shape[-1] // n_head
    if hs == 0 or qd.shape[-1] % n_head != 0 or kd.shape[-1] % hs != 0 or kd.shape[-1] == 0 \
            or n_head % (kd.shape[-1] // hs) != 0:
        raise ValueError(f"{op}: q's width {qd.shape[-1]} must be n_head = {n_head} heads and k's width "
                         f"{kd.shape[-1]} a number of heads of that size dividing n_head")
    _check_options(op, hs, rope_theta, dropout_p)
    return CausalSelfAttentionOp.apply(q, k, v, n_head=int(n_head), n_kv_head=kd.shape[-1] // hs,
                                       rope_theta=None if rope_theta is None else float(rope_theta),
                                       dropout_p=float(dropout_p))
