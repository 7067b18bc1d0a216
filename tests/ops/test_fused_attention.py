"""scaled_dot_product_attention: torch parity over masks and shapes, gradcheck, composed twin."""
import math

import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F

from tests.helpers.fused import composed_match, gradcheck, parity, rand

SDPA = F.scaled_dot_product_attention

# (q lead + (T, hs), S): odd T, 2-D, 3-D, 4-D (B, nh, T, hs), T != S
SHAPES = [((5, 4), 5), ((3, 5, 4), 5), ((2, 3, 5, 4), 5), ((2, 2, 3, 4), 6), ((1, 2, 7, 3), 4)]


def _qkv(qshape, s, hv=None, seed=0):
    hs = qshape[-1]
    kshape = qshape[:-2] + (s, hs)
    vshape = qshape[:-2] + (s, hv or hs)
    return rand(*qshape, seed=seed), rand(*kshape, seed=seed + 1), rand(*vshape, seed=seed + 2)


def _masks(t, s, kind):
    rng = np.random.default_rng(7)
    if kind == "bool":
        m = rng.random((t, s)) < 0.7
        m[:, 0] = True                     # every row keeps at least one key
        return m
    if kind == "float":
        m = rng.standard_normal((t, s))
        m[rng.random((t, s)) < 0.2] = -np.inf
        m[:, 0] = 0.0
        return m
    return None


@pytest.mark.parametrize("qshape,s", SHAPES)
@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float"])
def test_sdpa_parity_and_gradcheck(qshape, s, mask):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(qshape, s, hv=qshape[-1] + 1)
    t = qshape[-2]
    m = _masks(t, s, mask)
    causal = mask == "causal"

    def fn(q_, k_, v_, dtype=np.float64):
        mm = None if m is None else (m if m.dtype == bool else m.astype(dtype))
        return SDPA(q_, k_, v_, attn_mask=mm, is_causal=causal)

    def tfn(q_, k_, v_):
        mm = None if m is None else torch.as_tensor(m if m.dtype == bool else m.astype(q_.numpy(force=True).dtype))
        return torch.nn.functional.scaled_dot_product_attention(q_, k_, v_, attn_mask=mm, is_causal=causal)

    parity(fn, tfn, [q, k, v], (0, 1, 2), rtol=1e-10, atol=1e-12)
    parity(lambda *a: fn(*a, dtype=np.float32), tfn, [a.astype(np.float32) for a in (q, k, v)], (0, 1, 2),
           rtol=1e-4, atol=1e-5)
    if len(qshape) <= 3:
        gradcheck(fn, [q, k, v], (0, 1, 2))


def test_sdpa_custom_scale_and_broadcast_mask():
    torch = pytest.importorskip("torch")
    q, k, v = _qkv((2, 3, 5, 4), 5)
    m = np.random.default_rng(1).random((2, 1, 5, 5)) < 0.6
    m[..., 0] = True
    fn = lambda *a: SDPA(*a, attn_mask=m, scale=0.3)
    tfn = lambda *a: torch.nn.functional.scaled_dot_product_attention(*a, attn_mask=torch.as_tensor(m), scale=0.3)
    parity(fn, tfn, [q, k, v], (0, 1, 2), rtol=1e-10, atol=1e-12)


def test_sdpa_broadcast_leading_dims_gradcheck():
    q, k, v = rand(2, 3, 4, 3), rand(1, 3, 5, 3, seed=1), rand(1, 3, 5, 2, seed=2)
    gradcheck(lambda *a: SDPA(*a, is_causal=True), [q, k, v], (0, 1, 2))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_match_torch(kind):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv((2, 4, 3), 4)
    m = np.ones((4, 4), bool)
    m[1] = False                               # query 1 may attend nothing
    m[3, 2:] = False
    if kind == "float":
        m = np.where(m, 0.0, -np.inf)
    with np.errstate(all="raise"):
        parity(lambda *a: SDPA(*a, attn_mask=m), lambda *a: torch.nn.functional.scaled_dot_product_attention(
            *a, attn_mask=torch.as_tensor(m)), [q, k, v], (0, 1, 2), rtol=1e-10, atol=1e-12)
    out = SDPA(nf.Tensor(q), nf.Tensor(k), nf.Tensor(v), attn_mask=m).array
    np.testing.assert_array_equal(out[:, 1], 0.0)    # torch 2.x on CPU: a fully masked row gives 0, not NaN


def test_sdpa_stable_for_huge_scores():
    q = np.full((1, 3, 4), 100.0, np.float32)
    q[0, 1] = -100.0
    k, v = rand(1, 3, 4, dtype=np.float32) * 100, rand(1, 3, 4, dtype=np.float32, seed=3)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        tq = nf.Tensor(q, requires_grad=True)
        out = SDPA(tq, nf.Tensor(k), nf.Tensor(v), is_causal=True)
        out.sum().backward()
    assert np.isfinite(out.array).all() and np.isfinite(tq.grad_array).all()


def test_sdpa_composed_twin():
    q, k, v = _qkv((2, 5, 4), 5)
    causal = np.tril(np.ones((5, 5), bool))

    def composed(q_, k_, v_):
        att = (q_ @ k_.transpose(-1, -2)) * (1.0 / math.sqrt(4))
        att = att.masked_fill(~causal, float("-inf"))
        att = att - att.amax(dim=-1, keepdim=True).detach()
        att = att.exp()
        att = att / att.sum(dim=-1, keepdim=True)
        return att @ v_

    composed_match(lambda *a: SDPA(*a, is_causal=True), composed, [q, k, v], (0, 1, 2))


def test_sdpa_dropout_statistics_determinism_and_gradcheck():
    q, k, v = _qkv((2, 6, 4), 6)
    tq, tk = nf.Tensor(q), nf.Tensor(k)
    tv = nf.Tensor(np.ones((2, 6, 4)))                          # output = row sums of the dropped att
    nf.manual_seed(0)
    a = SDPA(tq, tk, tv, dropout_p=0.5).array
    nf.manual_seed(0)
    b = SDPA(tq, tk, tv, dropout_p=0.5).array
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, 1.0)                              # something was dropped
    big = nf.Tensor(np.zeros((8, 64, 4)))
    nf.manual_seed(1)
    c = SDPA(big, big, nf.Tensor(np.ones((8, 64, 4))), dropout_p=0.25).array
    assert abs(c.mean() - 1.0) < 0.02                           # 1 / (1 - p) rescaling keeps the mean

    def fn(*a):
        nf.manual_seed(3)                                       # the same mask on every call
        return SDPA(*a, dropout_p=0.3, is_causal=True)

    gradcheck(fn, [q, k, v], (0, 1, 2))


def test_sdpa_errors():
    q = nf.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: q shape \(2, 5, 4\) and k shape \(2, 5, 3\)"):
        SDPA(q, nf.randn(2, 5, 3), nf.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"k shape \(2, 5, 4\) and v shape \(2, 6, 4\)"):
        SDPA(q, q, nf.randn(2, 6, 4))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        SDPA(q, q, q, attn_mask=np.ones((5, 5), bool), is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask shape \(4, 4\) does not broadcast to the scores' shape \(2, 5, 5\)"):
        SDPA(q, q, q, attn_mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="must share one float dtype"):
        SDPA(q, q, nf.randn(2, 5, 4, dtype=np.float64))
