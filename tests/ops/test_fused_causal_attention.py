"""causal_self_attention: the fused op on a packed (B, T, 3C) projection against the composed
split -> scaled_dot_product_attention(is_causal=True) -> merge path, float64 gradcheck, torch parity."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F
from nanoframe.ops import attention

from tests.helpers.fused import composed_match, gradcheck, parity, rand


def _composed(n_head, dropout_p=0.0):
    """The unfused twin: split into q, k, v, view as heads, causal SDPA, merge the heads."""

    def fn(qkv):
        B, T, C3 = qkv.shape
        C = C3 // 3
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.reshape(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        return y.transpose(1, 2).reshape(B, T, C)

    return fn


# (B, T, C, nh, block): one block, a partial last block, T not a multiple of the block, hs = 1
SHAPES = [(2, 5, 6, 2, 64), (2, 7, 6, 3, 3), (1, 9, 4, 1, 4), (3, 4, 8, 8, 2), (1, 1, 6, 2, 64)]


@pytest.mark.parametrize("B,T,C,nh,block", SHAPES)
def test_matches_composed_twin(B, T, C, nh, block, monkeypatch):
    monkeypatch.setattr(attention, "ATTN_BLOCK", block)
    qkv = rand(B, T, 3 * C)
    composed_match(lambda x: F.causal_self_attention(x, nh), _composed(nh), [qkv])


@pytest.mark.parametrize("B,T,C,nh,block", SHAPES[:4])
def test_gradcheck(B, T, C, nh, block, monkeypatch):
    monkeypatch.setattr(attention, "ATTN_BLOCK", block)
    gradcheck(lambda x: F.causal_self_attention(x, nh), [rand(B, T, 3 * C)])


def test_float32_matches_float64_and_keeps_dtype():
    qkv = rand(2, 70, 3 * 12, seed=3)                 # T = 70: two blocks of 64 and 6 rows
    a = nf.Tensor(qkv.astype(np.float32), requires_grad=True)
    y = F.causal_self_attention(a, 3)
    y.backward(np.ones(y.shape, np.float32))
    b = nf.Tensor(qkv, requires_grad=True)
    y64 = F.causal_self_attention(b, 3)
    y64.backward(np.ones(y64.shape))
    assert y.dtype == np.float32 and a.grad_array.dtype == np.float32
    np.testing.assert_allclose(y.array, y64.array, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.grad_array, b.grad_array, rtol=1e-3, atol=1e-4)


def test_torch_parity():
    torch = pytest.importorskip("torch")
    B, T, C, nh = 2, 70, 12, 3

    def tfn(qkv):
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).reshape(B, T, C)

    parity(lambda x: F.causal_self_attention(x, nh), tfn, [rand(B, T, 3 * C)], rtol=1e-10, atol=1e-12)
    parity(lambda x: F.causal_self_attention(x, nh), tfn, [rand(B, T, 3 * C).astype(np.float32)],
           rtol=1e-4, atol=1e-5)


def test_stable_for_huge_scores():
    qkv = rand(1, 6, 3 * 4, dtype=np.float32) * 1000
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        t = nf.Tensor(qkv, requires_grad=True)
        y = F.causal_self_attention(t, 2)
        y.sum().backward()
    assert np.isfinite(y.array).all() and np.isfinite(t.grad_array).all()


def test_dropout_determinism_and_gradcheck():
    qkv = rand(2, 6, 3 * 4)
    t = nf.Tensor(qkv)
    nf.manual_seed(0)
    a = F.causal_self_attention(t, 2, dropout_p=0.5).array
    nf.manual_seed(0)
    b = F.causal_self_attention(t, 2, dropout_p=0.5).array
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, F.causal_self_attention(t, 2).array)

    def fn(x):
        nf.manual_seed(3)                              # the same masks on every call
        return F.causal_self_attention(x, 2, dropout_p=0.3)

    gradcheck(fn, [qkv])


def test_gradient_accumulates_with_other_uses():
    qkv = rand(1, 5, 3 * 4)
    t = nf.Tensor(qkv, requires_grad=True)
    (F.causal_self_attention(t, 2).sum() + t.sum()).backward()
    u = nf.Tensor(qkv, requires_grad=True)
    (_composed(2)(u).sum() + u.sum()).backward()
    np.testing.assert_allclose(t.grad_array, u.grad_array, rtol=1e-10, atol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match=r"causal_self_attention: qkv must be \(B, T, 3C\), got shape \(2, 5\)"):
        F.causal_self_attention(nf.randn(2, 5), 1)
    with pytest.raises(ValueError, match=r"qkv must be \(B, T, 3C\), got shape \(2, 5, 7\)"):
        F.causal_self_attention(nf.randn(2, 5, 7), 1)
    with pytest.raises(ValueError, match="not divisible by n_head = 4"):
        F.causal_self_attention(nf.randn(2, 5, 18), 4)
    with pytest.raises(ValueError, match="n_head must be a positive int"):
        F.causal_self_attention(nf.randn(2, 5, 18), 0)
    with pytest.raises(ValueError, match="dropout_p must be in"):
        F.causal_self_attention(nf.randn(2, 5, 18), 2, dropout_p=1.5)
    with pytest.raises(ValueError, match="must be a float array"):
        F.causal_self_attention(np.ones((2, 5, 18), np.int64), 2)
