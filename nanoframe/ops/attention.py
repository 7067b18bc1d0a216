"""scaled_dot_product_attention: softmax(q k^T * scale + mask) v with a hand-written backward."""
import math

import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.ops.activation import softmax_, softmax_backward_
from nanoframe.ops.dropout import dropout_mask
from nanoframe.parallel import get_num_threads, parallel_for
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
        # and it keeps batched matmul on BLAS for any input layout (a transposed k was once measured
        # ~70x slower here; numpy 2.4 handles it, older versions may not).
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


# ---- fused causal self-attention on the packed qkv projection ------------------------------------
ATTN_BLOCK = 64  # query rows per block: (B, nh, 64, <=T) score blocks; measured best of 32/64/128 on T=256


class CausalSelfAttentionOp(Function):
    """qkv (B, T, 3C) packed [q | k | v] (GPT-2's c_attn output) -> y (B, T, C), heads side by side.

    The same math as splitting qkv into q, k, v, viewing each as (B, nh, T, hs) and calling
    scaled_dot_product_attention(q, k, v, is_causal=True), then merging the heads, but:
    - no split, reshape or transpose nodes: q, k, v are strided views of qkv (BLAS takes a row
      stride of 3C), the output is written straight into (B, T, C) through a (B, nh, T, hs) view,
      and the backward returns ONE (B, T, 3C) gradient (no three zero-filled slices to add up);
    - causal blocks: queries are processed in row blocks [r0, r1) that only see keys [0, r1), so
      the masked upper triangle is mostly never computed (T=256, blocks of 64: 62.5% of the
      score FLOPs, exp and softmax passes), and each block's scores stay cache-sized;
    - the batch (or, below one sequence per thread, the heads) is split over nanoframe.parallel's
      threads, each running single-threaded BLAS on its slab of the (B, nh) stack (small GPT,
      2 cores: 230 -> 94 ms per step).
    Saves q * scale (B, nh, T, hs), qkv (for the k and v views) and each block's probabilities
    `att` (B, nh, r1 - r0, r1), plus the scaled dropout masks when dropout_p > 0.
    """

    @staticmethod
    def forward(ctx, qkv, n_head, dropout_p=0.0):
        B, T, C3 = qkv.shape
        nh, hs = n_head, C3 // 3 // n_head
        scale = 1.0 / math.sqrt(hs)
        spans = _blocks(T)
        # every random draw happens here, on the calling thread, in a fixed order
        masks = [dropout_mask((B, nh, r1 - r0, r1), dropout_p, qkv.dtype) for r0, r1 in spans] \
            if dropout_p > 0.0 else []
        qs = np.empty((B, nh, T, hs), dtype=qkv.dtype)                 # q * scale, for the backward
        atts = [np.empty((B, nh, r1 - r0, r1), dtype=qkv.dtype) for r0, r1 in spans]
        y = np.empty((B, T, C3 // 3), dtype=qkv.dtype)

        def slab(ix):  # (sequences, heads) slab ix: writes only its part of y, qs and atts
            q, k, v = (a[ix] for a in _split_heads(qkv, nh))           # 3 x (b, h, T, hs) views
            qsb = qs[ix]
            np.multiply(q, scale, out=qsb)                             # scale the small operand once
            y4 = _heads_view(y, nh)[ix]                                # (b, h, T, hs) view of y
            for i, (r0, r1) in enumerate(spans):
                att = causal_scores(qsb[:, :, r0:r1], k[:, :, :r1], r0, out=atts[i][ix])   # (b, h, bt, r1)
                att_d = att * masks[i][ix] if masks else att           # dropped, rescaled probabilities
                np.matmul(att_d, v[:, :, :r1], out=y4[:, :, r0:r1])    # straight into (B, T, C)

        _over_sequences_or_heads(slab, B, nh, T)
        ctx.save_for_backward(qkv, qs, atts, masks)
        ctx.n_head = nh
        return y

    @staticmethod
    def backward(ctx, gy):
        qkv, qs, atts, masks = ctx.saved_tensors
        nh = ctx.n_head
        B, T, _ = qkv.shape
        scale = 1.0 / math.sqrt(qs.shape[-1])
        spans = _blocks(T)
        gqkv = np.empty_like(qkv)                                      # the one gradient (B, T, 3C)

        def slab(ix):  # (sequences, heads) slab ix: writes only its part of gqkv
            _, k, v = (a[ix] for a in _split_heads(qkv, nh))
            gq, gk, gv = (a[ix] for a in _split_heads(gqkv, nh))       # views that the GEMMs write
            gy4 = _heads_view(gy, nh)[ix]                              # (b, h, T, hs) view
            qsb = qs[ix]
            part = np.empty(qsb.shape, dtype=qsb.dtype)                # per-block dk / dv partial sums
            # last block first: it sees every key, so it initialises gk and gv; earlier blocks add to a prefix
            for i, (r0, r1) in reversed(list(enumerate(spans))):
                att = atts[i][ix]                                      # (b, h, bt, r1)
                gyb = gy4[:, :, r0:r1]                                 # (b, h, bt, hs)
                att_d = att * masks[i][ix] if masks else att
                att_t = np.swapaxes(att_d, -1, -2)
                if r1 == T:
                    np.matmul(att_t, gyb, out=gv)                      # dv = att^T gy
                else:
                    np.matmul(att_t, gyb, out=part[:, :, :r1])
                    gv[:, :, :r1] += part[:, :, :r1]
                datt = np.matmul(gyb, np.swapaxes(v[:, :, :r1], -1, -2))   # (b, h, bt, r1) = gy v^T
                if masks:
                    datt *= masks[i][ix]
                softmax_backward_(datt, att)                           # dpre; masked keys have att = 0
                np.matmul(datt, k[:, :, :r1], out=gq[:, :, r0:r1])     # dq = dpre k * scale
                gq[:, :, r0:r1] *= scale
                dpre_t = np.swapaxes(datt, -1, -2)
                if r1 == T:
                    np.matmul(dpre_t, qsb[:, :, r0:r1], out=gk)        # dk = dpre^T (q * scale)
                else:
                    np.matmul(dpre_t, qsb[:, :, r0:r1], out=part[:, :, :r1])
                    gk[:, :, :r1] += part[:, :, :r1]

        _over_sequences_or_heads(slab, B, nh, T)
        return gqkv


def causal_scores(qs, k, t0, out=None):
    """The attention probabilities of queries at positions t0 .. t0 + bt - 1 over keys 0 .. s - 1
    (s = t0 + bt, every key a query may see): softmax(qs k^T + causal mask), qs already scaled.

    qs (..., bt, hs), k (..., s, hs) -> (..., bt, s). Keys before t0 are all visible; the mask
    covers the (bt, bt) diagonal block. The fused op calls this per query block, cached decoding
    per step, so the attention math is written once. Every row keeps its diagonal key: none is
    all -inf."""
    bt = qs.shape[-2]
    att = np.matmul(qs, np.swapaxes(k, -1, -2), out=out)
    if bt > 1:
        att[..., t0:] += causal_mask(bt, bt, att.dtype)
    return softmax_(att)


def cached_causal_attention(qkv, k_cache, v_cache, t0, n_head):
    """Inference attention for new positions t0 .. t0 + Tn - 1 given the cached keys and values.

    qkv (B, Tn, 3C) packed [q | k | v] (c_attn's output) -> y (B, Tn, C). k_cache, v_cache:
    (B, n_kv_head, block_size, hs) arrays whose first t0 positions hold earlier keys and values;
    this call writes positions t0 .. t0 + Tn - 1 first. NumPy only: no graph, no dropout.
    """
    B, Tn, C3 = qkv.shape
    nh, hs, t1 = n_head, C3 // 3 // n_head, t0 + Tn
    q, k, v = _split_heads(qkv, nh)                    # (B, nh, Tn, hs) views
    k_cache[:, :, t0:t1] = k
    v_cache[:, :, t0:t1] = v
    att = causal_scores(q * (1.0 / math.sqrt(hs)), k_cache[:, :, :t1], t0)   # (B, nh, Tn, t1)
    y = np.empty((B, Tn, C3 // 3), dtype=qkv.dtype)    # heads written side by side
    np.matmul(att, v_cache[:, :, :t1], out=_heads_view(y, nh))
    return y


def _over_sequences_or_heads(slab, B, nh, T):
    """Run slab(ix) over the threads, ix = (sequence slice, head slice) of the (B, nh) stack.

    Split over the sequences, or over the heads when there are fewer sequences than threads
    (batch-1 generation without the cache); every (sequence, head) pair is independent.
    """
    work = 4 * T * T                                   # per pair: ~4 passes over the (T, T) scores
    if B >= get_num_threads():
        parallel_for(lambda b0, b1: slab((slice(b0, b1), slice(None))), B, work_per_item=nh * work)
    else:
        parallel_for(lambda h0, h1: slab((slice(None), slice(h0, h1))), nh, work_per_item=B * work)


def _blocks(T):
    """Query row blocks [(r0, r1), ...] of at most ATTN_BLOCK rows covering range(T)."""
    return [(r0, min(r0 + ATTN_BLOCK, T)) for r0 in range(0, T, ATTN_BLOCK)]


def _heads_view(x, nh):
    """(B, nh, T, hs) view of a (B, T, C) array whose last dim holds the nh heads side by side."""
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _split_heads(qkv, nh):
    """Views q, k, v (B, nh, T, hs) of a packed (B, T, 3C) array (no copy)."""
    B, T, C3 = qkv.shape
    hs = C3 // 3 // nh
    x = qkv.reshape(B, T, 3, nh, hs)
    return tuple(x[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def causal_self_attention(qkv, n_head, dropout_p=0.0):
    """Fused multi-head causal self-attention on a packed projection: qkv (B, T, 3C) -> (B, T, C).

    qkv holds [q | k | v] along the last dim, each (B, T, C) with the nh heads side by side (the
    layout of GPT-2's c_attn output). Equal to splitting it, calling
    scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p) on the (B, nh, T, hs)
    views and merging the heads back to (B, T, C), at a fraction of the cost (see CausalSelfAttention).
    """
    x = as_array(qkv)
    op = "causal_self_attention"
    if x.ndim != 3 or x.shape[-1] % 3 != 0:
        raise ValueError(f"{op}: qkv must be (B, T, 3C), got shape {x.shape}")
    if isinstance(n_head, bool) or not isinstance(n_head, (int, np.integer)) or n_head <= 0:
        raise ValueError(f"{op}: n_head must be a positive int, got {n_head!r}")
    if (x.shape[-1] // 3) % n_head != 0:
        raise ValueError(f"{op}: C = {x.shape[-1] // 3} (qkv shape {x.shape}) is not divisible by n_head = {n_head}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: qkv must be a float array, got dtype {x.dtype}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    return CausalSelfAttentionOp.apply(qkv, n_head=int(n_head), dropout_p=float(dropout_p))
