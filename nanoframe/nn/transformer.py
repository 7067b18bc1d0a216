"""MultiheadAttention and the Transformer family with torch's arguments, parameter names (so torch
state dicts load), masks, layouts and forward semantics. Composed from F.linear, the fused
scaled_dot_product_attention (or, when the weights are asked for, matmul + softmax), layer_norm,
dropout and the activations.

Masks follow torch: a bool mask is True where attention is NOT allowed (it becomes -inf), a float
mask is added to the scores. attn_mask is (L, S) or (B * num_heads, L, S); key_padding_mask (B, S).
"""
import copy
import math
import warnings

import numpy as np

from nanoframe import functional as F
from nanoframe.autograd import is_grad_enabled
from nanoframe.errors import NanoframeError
from nanoframe.nn import init
from nanoframe.nn.layers import Dropout, LayerNorm, Linear, _float_dtype
from nanoframe.nn.module import Module, ModuleList, Parameter
from nanoframe.ops import shape as shape_ops
from nanoframe.ops.matmul import matmul
from nanoframe.tensor import Tensor, as_array



def _canonical_mask(mask, name, dtype):
    """A float mask of `dtype`: bool True -> -inf (not allowed), False -> 0; float masks pass through."""
    if mask is None:
        return None
    m = as_array(mask)
    if m.dtype == np.bool_:
        return np.where(m, -np.inf, 0.0).astype(dtype)
    if m.dtype.kind != "f":
        raise NanoframeError(f"MultiheadAttention: only bool and floating types of {name} are supported, got {m.dtype}")
    return m.astype(dtype, copy=False)


class NonDynamicallyQuantizableLinear(Linear):
    """torch's name for MultiheadAttention.out_proj (a plain Linear)."""


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: attention over num_heads heads of size embed_dim / num_heads.

    Parameters as torch: in_proj_weight (3E, E) and in_proj_bias (3E,) (or q_proj_weight,
    k_proj_weight (E, kdim), v_proj_weight (E, vdim) when kdim / vdim differ from E), out_proj,
    and bias_k / bias_v (1, 1, E) with add_bias_kv. Init: xavier_uniform_ projections, zero biases.
    forward returns (output, weights): weights (B, L, S) averaged over heads (or (B, nh, L, S)),
    after dropout as torch returns them, or None with need_weights=False (the fused path).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise NanoframeError(f"MultiheadAttention: embed_dim={embed_dim} must be positive and divisible by "
                                 f"num_heads={num_heads}")
        dtype = _float_dtype(dtype, device)
        self.embed_dim, self.num_heads, self.dropout = int(embed_dim), int(num_heads), float(dropout)
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.batch_first, self.head_dim, self.add_zero_attn = batch_first, embed_dim // num_heads, add_zero_attn
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * e, e), dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(np.empty((e, e), dtype=dtype))
            self.k_proj_weight = Parameter(np.empty((e, self.kdim), dtype=dtype))
            self.v_proj_weight = Parameter(np.empty((e, self.vdim), dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * e, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(e, e, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, e), dtype=dtype))
            self.bias_v = Parameter(np.empty((1, 1, e), dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _projections(self, query, key, value):
        """q, k, v (B, L|S, E): one GEMM for self-attention on the packed weight, as torch packs it."""
        e, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if not self._qkv_same_embed_dim:
            return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                    F.linear(value, self.v_proj_weight, bv))
        w = self.in_proj_weight
        if query is key and key is value:
            qkv = F.linear(query, w, b)                                   # (B, L, 3E)
            return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
        return F.linear(query, w[:e], bq), F.linear(key, w[e:2 * e], bk), F.linear(value, w[2 * e:], bv)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        qd, kd, vd = as_array(query), as_array(key), as_array(value)
        batched = qd.ndim == 3
        self._check_shapes(qd, kd, vd, batched)
        same = query is key and key is value
        if batched and not self.batch_first:                              # work batch-first: (B, L, E)
            query, key, value = (shape_ops.transpose(t, 0, 1) for t in (query, key, value))
        elif not batched:
            query, key, value = (shape_ops.unsqueeze(t, 0) for t in (query, key, value))
        if same:
            key = value = query
        bsz, tgt_len, e = query.shape
        src_len, nh, hd = key.shape[1], self.num_heads, self.head_dim
        dtype = qd.dtype
        if key_padding_mask is not None and attn_mask is not None and (
                (as_array(key_padding_mask).dtype == np.bool_) != (as_array(attn_mask).dtype == np.bool_)):
            warnings.warn("Support for mismatched key_padding_mask and attn_mask is deprecated. "
                          "Use same type for both instead.", UserWarning, stacklevel=2)
        kpm = _canonical_mask(key_padding_mask, "key_padding_mask", dtype)
        if is_causal and attn_mask is None:
            raise NanoframeError("MultiheadAttention: is_causal=True needs attn_mask (the hint says the mask is "
                                 "causal); Transformer.generate_square_subsequent_mask makes one")
        causal = bool(is_causal) and kpm is None and not need_weights     # torch hands the hint to SDPA
        mask = None if causal else _canonical_mask(attn_mask, "attn_mask", dtype)
        if kpm is not None and not batched:
            kpm = kpm[None]
        mask = self._check_mask(mask, kpm, bsz, tgt_len, src_len, batched)
        q, k, v = self._projections(query, key, value)                   # (B, L|S, E)
        if self.bias_k is not None:                                       # one more key/value position
            k = shape_ops.cat([k, shape_ops.expand(self.bias_k, bsz, 1, e)], dim=1)
            v = shape_ops.cat([v, shape_ops.expand(self.bias_v, bsz, 1, e)], dim=1)
            mask, kpm = _pad_last(mask), _pad_last(kpm)
        q, k, v = (shape_ops.transpose(shape_ops.reshape(t, bsz, -1, nh, hd), 1, 2) for t in (q, k, v))
        if self.add_zero_attn:                                            # a zero key/value position
            zeros = Tensor(np.zeros((bsz, nh, 1, hd), dtype=dtype))
            k, v = shape_ops.cat([k, zeros], dim=2), shape_ops.cat([v, zeros], dim=2)
            mask, kpm = _pad_last(mask), _pad_last(kpm)
        if kpm is not None:                                               # (B, S) -> (B, 1, 1, S), merged
            kpm = kpm[:, None, None, :]
            mask = kpm if mask is None else mask + kpm
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = matmul(q * (1.0 / math.sqrt(hd)), shape_ops.transpose(k, -2, -1))   # (B, nh, L, S)
            if mask is not None:
                scores = scores + mask
            weights = F.dropout(F.softmax(scores, dim=-1), p, True) if p > 0 else F.softmax(scores, dim=-1)
            out = matmul(weights, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=p)
            weights = None
        out = shape_ops.reshape(shape_ops.transpose(out, 1, 2), bsz, tgt_len, e)   # (B, L, E)
        out = self.out_proj(out)
        if batched and not self.batch_first:
            out = shape_ops.transpose(out, 0, 1)
        elif not batched:
            out = shape_ops.squeeze(out, 0)
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(dim=1)
            if not batched:
                weights = shape_ops.squeeze(weights, 0)
        return out, weights

    def _check_shapes(self, q, k, v, batched):
        name, e = type(self).__name__, self.embed_dim
        if q.ndim not in (2, 3) or k.ndim != q.ndim or v.ndim != q.ndim:
            raise NanoframeError(f"{name}: query, key and value must all be 3-D (batched) or 2-D (unbatched), "
                                 f"got shapes {q.shape}, {k.shape}, {v.shape}")
        if q.shape[-1] != e or k.shape[-1] != self.kdim or v.shape[-1] != self.vdim:
            raise NanoframeError(f"{name}: expected last dims embed_dim={e}, kdim={self.kdim}, vdim={self.vdim}; "
                                 f"got query {q.shape}, key {k.shape}, value {v.shape}")
        if k.shape[:-1] != v.shape[:-1] or (batched and q.shape[1 - self.batch_first] != k.shape[1 - self.batch_first]):
            raise NanoframeError(f"{name}: query {q.shape}, key {k.shape} and value {v.shape} disagree on the batch "
                                 "or key/value sequence dims")
        if q.dtype.kind != "f" or not q.dtype == k.dtype == v.dtype == self.out_proj.weight.dtype:
            raise NanoframeError(f"{name}: query, key, value dtypes {q.dtype}, {k.dtype}, {v.dtype} must equal the "
                                 f"parameters' {self.out_proj.weight.dtype}")

    def _check_mask(self, mask, kpm, bsz, tgt_len, src_len, batched):
        """attn_mask as (1, 1, L, S) or (B, nh, L, S); key_padding_mask checked against (B, S)."""
        name, nh = type(self).__name__, self.num_heads
        if kpm is not None and kpm.shape != (bsz, src_len):
            want = (bsz, src_len) if batched else (src_len,)
            got = kpm.shape if batched else kpm.shape[1:]
            raise NanoframeError(f"{name}: expected key_padding_mask of shape {want}, got {got}")
        if mask is None:
            return None
        if mask.ndim == 2 and mask.shape == (tgt_len, src_len):
            return mask[None, None]
        if mask.ndim == 3 and mask.shape == (bsz * nh, tgt_len, src_len):
            return mask.reshape(bsz, nh, tgt_len, src_len)
        want = f"({tgt_len}, {src_len}) or ({bsz * nh if batched else nh}, {tgt_len}, {src_len})"
        raise NanoframeError(f"{name}: attn_mask must have shape {want}, got {mask.shape}")

def _pad_last(mask):
    """A mask with one more (allowed) key position at the end."""
    if mask is None:
        return None
    return np.concatenate([mask, np.zeros(mask.shape[:-1] + (1,), dtype=mask.dtype)], axis=-1)


def _activation(activation):
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise NanoframeError(f"activation should be relu/gelu, not {activation}")
    return activation


def _get_seq_len(src, batch_first):
    d = as_array(src)
    return d.shape[0] if d.ndim == 2 else d.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask, is_causal=None, size=None):
    """torch's hint: True if is_causal is True, or (is_causal None) the mask equals the square causal mask."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        m = as_array(mask)
        sz = size if size is not None else m.shape[-2]
        if m.dtype == np.bool_:                        # torch builds its reference in the mask's dtype
            ref = np.triu(np.ones((sz, sz), dtype=bool), k=1)
        else:
            ref = as_array(Transformer.generate_square_subsequent_mask(sz, dtype=m.dtype))
        make_causal = m.shape == ref.shape and bool(np.all(m == ref))
    return make_causal


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual and LayerNorm
    (after, or before with norm_first=True). activation: "relu", "gelu" or a callable."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        activation = _activation(activation)
        self.activation_relu_or_gelu = 1 if activation is F.relu else 2 if activation is F.gelu else 0
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's memory, then a feed-forward block; each with
    dropout, a residual and LayerNorm (after, or before with norm_first=True)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _get_clones(module, n):
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class TransformerEncoder(Module):
    """num_layers deep copies of encoder_layer ("layers.0", ...), then the optional norm.

    As torch, in eval mode without gradients (no_grad, or frozen weights), a batch-first, left-aligned
    src_key_padding_mask and no mask, torch runs its nested-tensor path, whose output is 0 at the
    padded positions (before the final norm); the same conditions give the same zeros here.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check
        why_not = _why_not_nested(encoder_layer)
        if enable_nested_tensor and why_not:
            warnings.warn(f"enable_nested_tensor is True, but self.use_nested_tensor is False because {why_not}",
                          UserWarning, stacklevel=2)
        self.use_nested_tensor = enable_nested_tensor and not why_not

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        first = self.layers[0]
        zero_padded = self._zeroes_padding(first, src, mask, src_key_padding_mask)
        is_causal = _detect_is_causal_mask(mask, is_causal, _get_seq_len(src, first.self_attn.batch_first))
        output = src
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if zero_padded:
            keep = ~as_array(src_key_padding_mask).astype(bool)
            output = output * keep[:, :, None].astype(as_array(src).dtype)
        if self.norm is not None:
            output = self.norm(output)
        return output

    def _zeroes_padding(self, first, src, mask, kpm):
        """torch's nested-tensor conditions (see the class docstring)."""
        if not self.use_nested_tensor or first.training or as_array(src).ndim != 3 or kpm is None or mask is not None:
            return False
        pad = as_array(kpm)
        if pad.dtype != np.bool_:
            pad = pad != 0
        if self.mask_check and np.any(pad[:, :-1] & ~pad[:, 1:]):            # not left-aligned
            return False
        sa = first.self_attn
        args = [src, sa.in_proj_weight, sa.in_proj_bias, sa.out_proj.weight, sa.out_proj.bias, first.norm1.weight,
                first.norm1.bias, first.norm2.weight, first.norm2.bias, first.linear1.weight, first.linear1.bias,
                first.linear2.weight, first.linear2.bias]
        return not (is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args))


def _why_not_nested(layer):
    if not isinstance(layer, TransformerEncoderLayer):
        return "encoder_layer was not TransformerEncoderLayer"
    if layer.norm_first:
        return "encoder_layer.norm_first was True"
    if not layer.self_attn.batch_first:
        return "encoder_layer.self_attn.batch_first was not True(use batch_first for better inference performance)"
    if not layer.self_attn._qkv_same_embed_dim:
        return "encoder_layer.self_attn._qkv_same_embed_dim was not True"
    if layer.self_attn.in_proj_bias is None:
        return "encoder_layer.self_attn was passed bias=False"
    if not layer.activation_relu_or_gelu:
        return "encoder_layer.activation_relu_or_gelu was not True"
    if layer.norm1.eps != layer.norm2.eps:
        return "encoder_layer.norm1.eps was not equal to encoder_layer.norm2.eps"
    if layer.self_attn.num_heads % 2 == 1:
        return "encoder_layer.self_attn.num_heads is odd"
    return ""


class TransformerDecoder(Module):
    """num_layers deep copies of decoder_layer ("layers.0", ...), then the optional norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        output = tgt
        seq_len = _get_seq_len(tgt, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq_len)
        for mod in self.layers:
            output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            output = self.norm(output)
        return output


class Transformer(Module):
    """Encoder-decoder Transformer (Vaswani et al. 2017) as torch.nn.Transformer: every parameter
    with more than one dim is re-drawn xavier_uniform_ after construction."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation=F.relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        dtype = _float_dtype(dtype, device)      # checked here too: custom encoder and decoder build nothing
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, device=device, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device,
                                                        dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, device=device, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device,
                                                        dtype=dtype))
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        s, t = as_array(src), as_array(tgt)
        bdim = 0 if self.batch_first else 1
        if s.ndim == 3 and s.shape[bdim] != t.shape[bdim]:
            raise NanoframeError(f"Transformer: the batch number of src {s.shape} and tgt {t.shape} must be equal")
        if s.shape[-1] != self.d_model or t.shape[-1] != self.d_model:
            raise NanoframeError(f"Transformer: the feature number of src {s.shape} and tgt {t.shape} must be equal "
                                 f"to d_model={self.d_model}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: -inf above the diagonal (future positions), 0 elsewhere."""
        dtype = _float_dtype(dtype, device)
        return Tensor(np.triu(np.full((sz, sz), -np.inf, dtype=dtype), k=1))
