"""nn.Embedding / F.embedding padding_idx, as torch: the row starts at zeros, gets no gradient (so
training never moves it), negative values count from the end, out-of-range values are refused."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.nn.functional as F


def test_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = nf.nn.Embedding(6, 3, padding_idx=0)
    assert emb.padding_idx == 0 and np.all(emb.weight.detach().numpy()[0] == 0)
    assert np.all(emb.weight.detach().numpy()[1:] != 0)
    ids = nf.tensor([[0, 2, 0], [2, 5, 0]])
    (emb(ids) * nf.arange(3.0)).sum().backward()
    g = emb.weight.grad.numpy()
    assert np.all(g[0] == 0)                                     # used three times, no gradient
    assert np.allclose(g[2], 2 * np.arange(3.0)) and np.allclose(g[5], np.arange(3.0))
    opt = nf.optim.Adam(emb.parameters(), lr=0.1)
    opt.step()
    assert np.all(emb.weight.detach().numpy()[0] == 0)


def test_negative_padding_idx_counts_from_the_end_and_range_is_checked():
    assert nf.nn.Embedding(6, 3, padding_idx=-1).padding_idx == 5
    assert "padding_idx=5" in repr(nf.nn.Embedding(6, 3, padding_idx=5))
    for bad in (6, -7):
        with pytest.raises(ValueError, match="padding_idx"):
            nf.nn.Embedding(6, 3, padding_idx=bad)
    with pytest.raises(TypeError, match="padding_idx"):
        F.embedding(nf.tensor([1]), nf.ones(4, 2), padding_idx=1.0)


def test_functional_padding_idx_only_blocks_the_gradient():
    w = nf.randn(5, 2, requires_grad=True)
    out = F.embedding(nf.tensor([1, 3, 3]), w, padding_idx=3)
    assert np.array_equal(out.detach().numpy(), w.detach().numpy()[[1, 3, 3]])   # the row is read as is
    out.sum().backward()
    assert w.grad.numpy().tolist() == [[0, 0], [1, 1], [0, 0], [0, 0], [0, 0]]


def test_padding_idx_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((7, 4))
    ids = rng.integers(0, 7, (3, 5))
    G = rng.standard_normal((3, 5, 4))
    for p in (0, 4, -2):
        te = torch.nn.Embedding(7, 4, padding_idx=p, dtype=torch.float64)
        ne = nf.nn.Embedding(7, 4, padding_idx=p, dtype=nf.float64)
        assert te.padding_idx == ne.padding_idx
        assert np.all(te.weight.detach().numpy()[te.padding_idx] == 0) and np.all(ne.weight.detach().numpy()[ne.padding_idx] == 0)
        with torch.no_grad():
            te.weight.copy_(torch.from_numpy(W))
        ne.weight.data.copy_(nf.tensor(W))
        (te(torch.from_numpy(ids)) * torch.from_numpy(G)).sum().backward()
        (ne(nf.tensor(ids)) * nf.tensor(G)).sum().backward()
        np.testing.assert_allclose(ne.weight.grad.numpy(), te.weight.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_out_of_range_id_is_an_index_error_as_in_torch():
    emb = nf.nn.Embedding(4, 2)
    for bad in (4, -1):
        with pytest.raises(IndexError, match=f"index {bad} is out of range"):
            emb(nf.tensor([0, bad]))
        with pytest.raises(ValueError):                  # still a ValueError for nanoframe's callers
            emb(nf.tensor([bad]))
