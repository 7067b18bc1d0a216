"""linear and embedding: torch parity, gradcheck, composed twins, repeated ids, errors."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.functional as F
from nanoframe.ops.embedding import scatter_add_rows

from tests.helpers.fused import composed_match, gradcheck, parity, rand


@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_parity_and_gradcheck(lead, bias):
    torch = pytest.importorskip("torch")
    x, w, b = rand(*lead, 4, seed=1), rand(3, 4, seed=2), rand(3, seed=3)
    if bias:
        args, idx = [x, w, b], (0, 1, 2)
        fn, tfn = F.linear, torch.nn.functional.linear
    else:
        args, idx = [x, w], (0, 1)
        fn, tfn = (lambda a, b_: F.linear(a, b_)), (lambda a, b_: torch.nn.functional.linear(a, b_))
    parity(fn, tfn, args, idx, rtol=1e-12, atol=1e-13)
    parity(fn, tfn, [a.astype(np.float32) for a in args], idx, rtol=1e-5, atol=1e-5)
    gradcheck(fn, args, idx)


def test_linear_composed_twin_and_partial_grads():
    x, w, b = rand(2, 3, 4, seed=1), rand(5, 4, seed=2), rand(5, seed=3)
    composed_match(F.linear, lambda a, w_, b_: a @ w_.transpose(0, 1) + b_, [x, w, b], (0, 1, 2))
    xt, wt = nf.Tensor(x), nf.Tensor(w, requires_grad=True)   # only the weight needs a grad
    F.linear(xt, wt).sum().backward()
    np.testing.assert_allclose(wt.grad_array, np.broadcast_to(x.reshape(-1, 4).sum(0), (5, 4)))
    assert xt.grad_array is None


def test_linear_errors():
    x = nf.randn(2, 4)
    with pytest.raises(ValueError, match=r"linear: input shape \(2, 4\) does not match weight shape \(3, 5\)"):
        F.linear(x, nf.randn(3, 5))
    with pytest.raises(ValueError, match=r"linear: bias shape \(4,\) does not match weight shape \(3, 4\)"):
        F.linear(x, nf.randn(3, 4), nf.randn(4))
    with pytest.raises(ValueError, match="linear: weight must be 2-D"):
        F.linear(x, nf.randn(4))
    with pytest.raises(ValueError, match="linear: input dtype float64 and weight dtype float32"):
        F.linear(nf.randn(2, 4, dtype=np.float64), nf.randn(3, 4))


# ---- embedding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("idx_shape", [(), (6,), (2, 5), (2, 3, 4)])
def test_embedding_parity_with_repeated_ids(idx_shape):
    torch = pytest.importorskip("torch")
    ids = np.random.default_rng(0).integers(0, 5, idx_shape)    # few ids: many repeats
    w = rand(7, 3, seed=4)
    tfn = lambda i, w_: torch.nn.functional.embedding(torch.as_tensor(i), w_)
    parity(lambda i, w_: F.embedding(i, w_), tfn, [ids, w], (1,), rtol=1e-12, atol=1e-13)
    parity(lambda i, w_: F.embedding(i, w_), tfn, [ids, w.astype(np.float32)], (1,), rtol=1e-5, atol=1e-6)
    gradcheck(lambda i, w_: F.embedding(i, w_), [ids, w], (1,))


def test_embedding_accepts_int_tensor_and_matches_getitem_twin():
    ids = np.array([[0, 2, 2], [4, 0, 2]])
    w = rand(5, 4)
    composed_match(lambda w_: F.embedding(nf.tensor(ids), w_), lambda w_: w_[ids], [w])


@pytest.mark.parametrize("case", ["unique", "all_same", "mixed", "empty"])
def test_scatter_add_rows_matches_add_at(case):
    rng = np.random.default_rng(1)
    ids = {"unique": rng.permutation(50)[:20], "all_same": np.full(30, 7),
           "mixed": rng.integers(0, 10, 200), "empty": np.zeros(0, np.int64)}[case]
    rows = rng.standard_normal((ids.size, 6))
    ref = np.zeros((50, 6))
    np.add.at(ref, ids, rows)
    np.testing.assert_allclose(scatter_add_rows(ids, rows, 50), ref, rtol=1e-12, atol=1e-12)


def test_embedding_grad_accumulates_with_other_uses():
    # weight tying: the same table used by embedding and by a linear head
    w = nf.Tensor(rand(6, 4), requires_grad=True)
    x = F.embedding(np.array([1, 1, 3]), w)
    F.linear(x, w).sum().backward()
    wd = w.array
    expected = np.zeros_like(wd)
    for i in (1, 1, 3):
        expected[i] += wd.sum(0)                                  # through linear's input
    expected += np.broadcast_to(wd[[1, 1, 3]].sum(0), wd.shape)   # through linear's weight
    np.testing.assert_allclose(w.grad_array, expected, rtol=1e-12)


def test_embedding_errors():
    w = nf.randn(5, 3)
    with pytest.raises(ValueError, match=r"embedding: index 5 is out of range \[0, 5\)"):
        F.embedding(np.array([0, 5]), w)
    with pytest.raises(ValueError, match=r"embedding: index -1 is out of range \[0, 5\)"):
        F.embedding(np.array([-1, 2]), w)
    with pytest.raises(ValueError, match="embedding: indices must be integers"):
        F.embedding(np.array([0.0, 1.0]), w)
    with pytest.raises(ValueError, match="embedding: weight must be 2-D"):
        F.embedding(np.array([0]), nf.randn(5))
