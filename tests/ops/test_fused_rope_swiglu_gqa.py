"""The Llama ops: rope, swiglu, and the fused causal attention with grouped-query heads and RoPE
(packed and split projections): float64 gradcheck, torch parity (transformers' own RoPE and
repeat_kv where installed), the composed twin, the decoding kernel against the training op."""
import math

import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F
from nanoframe.ops import attention
from nanoframe.ops.attention import cached_causal_attention, split_packed
from nanoframe.ops.rope import rope, rope_rotate, rope_tables
from nanoframe.ops.swiglu import swiglu, swiglu_forward

from tests.helpers.fused import composed_match, gradcheck, parity, rand


# ---- torch references ------------------------------------------------------------------------------
def torch_rope_tables(T, hs, theta):
    """cos, sin (T, hs) exactly as transformers' LlamaRotaryEmbedding computes them (float32)."""
    torch = pytest.importorskip("torch")
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float) / hs))
    freqs = torch.arange(T, dtype=torch.float)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def torch_rotate(x, cos, sin):
    """transformers' apply_rotary_pos_emb on one tensor (..., T, hs)."""
    torch = pytest.importorskip("torch")
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos.to(x.dtype) + rot * sin.to(x.dtype)


def torch_attention(nh, nkv, theta=None, packed=True):
    """Split (or take) q, k, v, rotate, repeat_kv, SDPA(is_causal), merge: the unfused reference."""
    torch = pytest.importorskip("torch")

    def heads(t, n):
        B, T, W = t.shape
        return t.view(B, T, n, W // n).transpose(1, 2)

    def fn(*xs):
        if packed:
            (qkv,) = xs
            hs = qkv.shape[-1] // (nh + 2 * nkv)
            q, k, v = qkv.split([nh * hs, nkv * hs, nkv * hs], dim=2)
        else:
            q, k, v = xs
        q, k, v = heads(q, nh), heads(k, nkv), heads(v, nkv)
        if theta:
            cos, sin = torch_rope_tables(q.shape[2], q.shape[3], theta)
            q, k = torch_rotate(q, cos, sin), torch_rotate(k, cos, sin)
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        B, _, T, hs = y.shape
        return y.transpose(1, 2).reshape(B, T, nh * hs)

    return fn


# ---- rope --------------------------------------------------------------------------------------------
def test_rope_tables_match_transformers():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    for hs, theta in [(8, 10000.0), (64, 100000.0), (16, 1e6)]:
        cfg = transformers.LlamaConfig(hidden_size=hs * 2, num_attention_heads=2, rope_theta=theta,
                                       max_position_embeddings=300)
        rot = LlamaRotaryEmbedding(cfg)
        cos_t, sin_t = rot(torch.zeros(1, dtype=torch.float32), torch.arange(300)[None])
        cos, sin = rope_tables(300, hs, theta, np.float32)
        np.testing.assert_allclose(cos, cos_t[0, :, : hs // 2].numpy(), rtol=0, atol=2e-7)
        np.testing.assert_allclose(sin, sin_t[0, :, : hs // 2].numpy(), rtol=0, atol=2e-7)
        np.testing.assert_array_equal(cos_t[0, :, hs // 2:].numpy(), cos_t[0, :, : hs // 2].numpy())


def test_rope_tables_cached_grow_and_read_only():
    a = rope_tables(5, 8, 500.0, np.float64)[0]
    b = rope_tables(50, 8, 500.0, np.float64)[0]
    np.testing.assert_array_equal(a, b[:5])
    with pytest.raises(ValueError):
        b[0, 0] = 1.0


@pytest.mark.parametrize("shape,offset", [((2, 3, 5, 4), 0), ((1, 7, 8), 3), ((2, 2, 1, 6), 10)])
def test_rope_gradcheck(shape, offset):
    gradcheck(lambda x: rope(x, theta=100.0, offset=offset), [rand(*shape)])


def test_rope_torch_parity_and_inverse():
    pytest.importorskip("torch")
    x = rand(2, 3, 9, 8, seed=1)
    cos, sin = torch_rope_tables(9 + 4, 8, 1e4)
    parity(lambda t: rope(t, theta=1e4, offset=4), lambda t: torch_rotate(t, cos[4:].double(), sin[4:].double()),
           [x], rtol=1e-6, atol=1e-7)
    parity(lambda t: rope(t, theta=1e4), lambda t: torch_rotate(t, *torch_rope_tables(9, 8, 1e4)),
           [x.astype(np.float32)], rtol=1e-5, atol=1e-6)
    c, s = rope_tables(9, 8, 1e4, np.float64)
    back = rope_rotate(rope_rotate(x, c, s), c, -s)            # rotation then its inverse: cos and sin are
    np.testing.assert_allclose(back, x, rtol=0, atol=3e-7)     # float32 values (as HF), so cos^2 + sin^2 = 1 +- 1e-7
    assert rope(nf.tensor(x[..., :1, :]), theta=1e4).array.tolist() == x[..., :1, :].tolist()   # position 0: identity


def test_rope_errors():
    with pytest.raises(ValueError, match="even head size"):
        rope(nf.randn(2, 3, 5), theta=1e4)
    with pytest.raises(ValueError, match="theta"):
        rope(nf.randn(2, 3, 4), theta=float("nan"))
    with pytest.raises(ValueError, match="offset"):
        rope(nf.randn(2, 3, 4), theta=1e4, offset=-1)


# ---- swiglu ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 5), (1,)])
def test_swiglu_gradcheck(shape):
    gradcheck(lambda g, u: swiglu(g, u), [rand(*shape, scale=3.0), rand(*shape, seed=1)], grad_idx=(0, 1))


def test_swiglu_torch_parity_composed_and_extremes():
    torch = pytest.importorskip("torch")
    g, u = rand(4, 70000, seed=2, scale=4.0), rand(4, 70000, seed=3)      # more than one CHUNK per row block
    tfn = lambda a, b: torch.nn.functional.silu(a) * b
    parity(lambda a, b: swiglu(a, b), tfn, [g, u], grad_idx=(0, 1), rtol=1e-10, atol=1e-12)
    parity(lambda a, b: swiglu(a, b), tfn, [g.astype(np.float32), u.astype(np.float32)], grad_idx=(0, 1),
           rtol=1e-5, atol=1e-6)
    composed_match(lambda a, b: swiglu(a, b), lambda a, b: F.silu(a) * b, [g[:, :100], u[:, :100]], grad_idx=(0, 1))
    big = np.array([-1e4, -80.0, 0.0, 80.0, 1e4], np.float32)
    with np.errstate(all="raise"):
        y, d_up, d_gate = swiglu_forward(big, np.ones_like(big))
    np.testing.assert_allclose(y, [0.0, -80.0 / (1 + math.exp(80.0)), 0.0, 80.0, 1e4], rtol=1e-6, atol=1e-30)
    assert np.isfinite(d_gate).all() and d_gate[0] == 0.0 and d_gate[-1] == 1.0
    y2, none, none2 = swiglu_forward(g, u, with_grad=False)
    assert none is None and none2 is None
    np.testing.assert_array_equal(y2, swiglu_forward(g, u)[0])


def test_swiglu_errors():
    with pytest.raises(ValueError, match="one shape"):
        swiglu(nf.randn(2, 3), nf.randn(3, 2))
    with pytest.raises(ValueError, match="float"):
        swiglu(np.ones(3, np.int64), np.ones(3, np.int64))


# ---- grouped-query causal attention with RoPE -----------------------------------------------------------
# (B, T, nh, nkv, hs, block): MHA, GQA, MQA; one block, partial blocks, T = 1
GQA_SHAPES = [(2, 5, 4, 2, 2, 64), (2, 7, 6, 2, 4, 3), (1, 9, 4, 1, 2, 4), (3, 4, 2, 2, 2, 2), (1, 1, 4, 2, 2, 64)]


def _packed_width(nh, nkv, hs):
    return (nh + 2 * nkv) * hs


@pytest.mark.parametrize("B,T,nh,nkv,hs,block", GQA_SHAPES)
@pytest.mark.parametrize("theta", [None, 50.0])
def test_gqa_packed_gradcheck(B, T, nh, nkv, hs, block, theta, monkeypatch):
    monkeypatch.setattr(attention, "ATTN_BLOCK", block)
    gradcheck(lambda x: F.causal_self_attention(x, nh, n_kv_head=nkv, rope_theta=theta),
              [rand(B, T, _packed_width(nh, nkv, hs))])


@pytest.mark.parametrize("B,T,nh,nkv,hs,block", GQA_SHAPES[:4])
@pytest.mark.parametrize("theta", [None, 50.0])
def test_gqa_split_gradcheck(B, T, nh, nkv, hs, block, theta, monkeypatch):
    monkeypatch.setattr(attention, "ATTN_BLOCK", block)
    xs = [rand(B, T, nh * hs), rand(B, T, nkv * hs, seed=1), rand(B, T, nkv * hs, seed=2)]
    gradcheck(lambda q, k, v: F.causal_attention(q, k, v, n_head=nh, rope_theta=theta), xs, grad_idx=(0, 1, 2))


@pytest.mark.parametrize("nh,nkv", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("theta", [None, 10000.0])
def test_gqa_torch_parity_packed_and_split(nh, nkv, theta):
    pytest.importorskip("torch")
    B, T, hs = 2, 70, 4                                  # T = 70: blocks of 64 and 6 rows
    qkv = rand(B, T, _packed_width(nh, nkv, hs), seed=4)
    op = lambda x: F.causal_self_attention(x, nh, n_kv_head=nkv, rope_theta=theta)
    tol64 = dict(rtol=1e-6, atol=1e-7) if theta else dict(rtol=1e-10, atol=1e-12)  # float32 RoPE angles, as HF
    parity(op, torch_attention(nh, nkv, theta), [qkv], **tol64)
    parity(op, torch_attention(nh, nkv, theta), [qkv.astype(np.float32)], rtol=1e-4, atol=1e-5)
    q, k, v = (np.ascontiguousarray(a) for a in split_packed(qkv, nh, nkv))
    parity(lambda a, b, c: F.causal_attention(a, b, c, n_head=nh, rope_theta=theta),
           torch_attention(nh, nkv, theta, packed=False), [q, k, v], grad_idx=(0, 1, 2), **tol64)


def test_gqa_equals_mha_with_repeated_heads():
    """GQA is MHA whose K/V heads are repeated: same output, and each K/V gradient is the sum over its group."""
    B, T, nh, nkv, hs = 2, 11, 6, 2, 4
    q, k, v = rand(B, T, nh * hs), rand(B, T, nkv * hs, seed=1), rand(B, T, nkv * hs, seed=2)
    rep = lambda a: a.reshape(B, T, nkv, 1, hs).repeat(nh // nkv, axis=3).reshape(B, T, nh * hs)
    ts = [nf.Tensor(a, requires_grad=True) for a in (q, k, v)]
    y = F.causal_attention(*ts, n_head=nh, rope_theta=30.0)
    gy = rand(*y.shape, seed=5)
    y.backward(gy)
    tr = [nf.Tensor(a, requires_grad=True) for a in (q, rep(k), rep(v))]
    y2 = F.causal_attention(*tr, n_head=nh, rope_theta=30.0)
    y2.backward(gy)
    np.testing.assert_allclose(y.array, y2.array, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts[0].grad_array, tr[0].grad_array, rtol=1e-12, atol=1e-12)
    for t, r in zip(ts[1:], tr[1:]):
        summed = r.grad_array.reshape(B, T, nkv, nh // nkv, hs).sum(axis=3).reshape(B, T, nkv * hs)
        np.testing.assert_allclose(t.grad_array, summed, rtol=1e-10, atol=1e-12)


def test_gqa_dropout_deterministic_and_gradcheck():
    qkv = rand(2, 6, _packed_width(4, 2, 2))

    def fn(x):
        nf.manual_seed(3)                              # the same masks on every call
        return F.causal_self_attention(x, 4, 0.3, n_kv_head=2, rope_theta=10.0)

    np.testing.assert_array_equal(fn(nf.tensor(qkv)).array, fn(nf.tensor(qkv)).array)
    assert not np.allclose(fn(nf.tensor(qkv)).array, F.causal_self_attention(nf.tensor(qkv), 4, n_kv_head=2,
                                                                             rope_theta=10.0).array)
    gradcheck(fn, [qkv])


@pytest.mark.parametrize("theta", [None, 1e4])
@pytest.mark.parametrize("nh,nkv", [(4, 2), (4, 4), (4, 1)])
def test_cached_attention_equals_training_op(theta, nh, nkv):
    """Prefill 5 positions, then one at a time: the decoding kernel reproduces the op's rows, and the
    cache holds only the nkv K/V heads."""
    B, T, hs = 2, 9, 4
    qkv = rand(B, T, _packed_width(nh, nkv, hs), seed=7)
    ref = F.causal_self_attention(nf.tensor(qkv), nh, n_kv_head=nkv, rope_theta=theta).array
    k_cache, v_cache = np.zeros((B, nkv, 12, hs)), np.zeros((B, nkv, 12, hs))
    out = [cached_causal_attention(*split_packed(qkv[:, :5], nh, nkv), k_cache, v_cache, 0, n_head=nh,
                                   rope_theta=theta)]
    for t in range(5, T):
        out.append(cached_causal_attention(*split_packed(qkv[:, t:t + 1], nh, nkv), k_cache, v_cache, t,
                                           n_head=nh, rope_theta=theta))
    np.testing.assert_allclose(np.concatenate(out, axis=1), ref, rtol=1e-12, atol=1e-12)
    assert not k_cache[:, :, T:].any()


def test_threads_do_not_change_results():
    qkv = rand(4, 70, _packed_width(6, 2, 4), seed=8)
    runs = []
    for n in (1, 2):
        prev = nf.get_num_threads()
        nf.set_num_threads(n)
        try:
            t = nf.Tensor(qkv, requires_grad=True)
            y = F.causal_self_attention(t, 6, n_kv_head=2, rope_theta=1e4)
            y.backward(np.ones(y.shape))
            runs.append((y.array, t.grad_array))
        finally:
            nf.set_num_threads(prev)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_gqa_errors():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        F.causal_self_attention(nf.randn(2, 5, 24), 4, n_kv_head=3)
    with pytest.raises(ValueError, match=r"\(n_head \+ 2 n_kv_head\)"):
        F.causal_self_attention(nf.randn(2, 5, 13), 4, n_kv_head=2)
    with pytest.raises(ValueError, match="even head size"):
        F.causal_self_attention(nf.randn(2, 5, 24), 4, n_kv_head=2, rope_theta=1e4)   # hs = 3
    with pytest.raises(ValueError, match="rope_theta"):
        F.causal_self_attention(nf.randn(2, 5, 12), 2, rope_theta=-1.0)
    with pytest.raises(ValueError, match="k's width"):
        F.causal_attention(nf.randn(2, 5, 8), nf.randn(2, 5, 6), nf.randn(2, 5, 6), n_head=4)
    with pytest.raises(ValueError, match="one shape"):
        F.causal_attention(nf.randn(2, 5, 8), nf.randn(2, 5, 4), nf.randn(2, 5, 2), n_head=4)
