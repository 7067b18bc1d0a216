"""nn.utils.rnn.pad_sequence / unpad_sequence: torch's import path, layout, padding side, dtype of
the first sequence, gradients back to each sequence, one clear error for bad input."""
import numpy as np
import pytest

import nanoframe as nf
from nanoframe.nn.utils.rnn import pad_sequence, unpad_sequence
from nanoframe.testing import gradcheck


def test_layouts_and_padding_side():
    a, b = nf.tensor([1, 2, 3]), nf.tensor([4])
    assert nf.nn.utils.rnn.pad_sequence is pad_sequence
    assert pad_sequence([a, b]).tolist() == [[1, 4], [2, 0], [3, 0]]            # (T, B)
    assert pad_sequence((a, b), batch_first=True, padding_value=-1).tolist() == [[1, 2, 3], [4, -1, -1]]
    assert pad_sequence([a, b], batch_first=True, padding_side="left").tolist() == [[1, 2, 3], [0, 0, 4]]
    out = pad_sequence([nf.ones(2, 3), nf.ones(4, 3)])
    assert tuple(out.shape) == (4, 2, 3) and out.is_contiguous()
    assert out.view(8, 3).shape == (8, 3)                                       # contiguous, as torch's
    assert pad_sequence([nf.ones(2), nf.tensor([1, 2])]).dtype == nf.float32    # the first one's dtype


def test_gradients_reach_each_sequence():
    xs = [nf.randn(n, 2, dtype=nf.float64, requires_grad=True) for n in (3, 1, 2)]
    assert gradcheck(lambda *t: pad_sequence(list(t), batch_first=True, padding_value=0.5), xs)
    assert gradcheck(lambda *t: pad_sequence(list(t), padding_side="left"), xs)


def test_unpad_inverts_pad():
    xs = [nf.randn(n, 2) for n in (3, 1, 2)]
    for bf in (False, True):
        back = unpad_sequence(pad_sequence(xs, batch_first=bf), nf.tensor([3, 1, 2]), batch_first=bf)
        assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(xs, back))
    with pytest.raises(ValueError, match="outside"):
        unpad_sequence(pad_sequence(xs), [3, 1, 4])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="empty list"):
        pad_sequence([])
    with pytest.raises(ValueError, match=r"sequences\[1\] has trailing shape \(3,\)"):
        pad_sequence([nf.ones(2, 2), nf.ones(2, 3)])
    with pytest.raises(TypeError, match=r"sequences\[0\] is a list"):
        pad_sequence([[1, 2]])
    with pytest.raises(ValueError, match="padding_side"):
        pad_sequence([nf.ones(2)], padding_side="middle")
    with pytest.raises(ValueError, match="0-d"):
        pad_sequence([nf.tensor(1.0)])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 3)) for n in (2, 5, 1)]
    for bf in (False, True):
        for side in ("right", "left"):
            t = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(a) for a in arrays], batch_first=bf,
                                                padding_value=-2.0, padding_side=side)
            n = pad_sequence([nf.tensor(a) for a in arrays], batch_first=bf, padding_value=-2.0, padding_side=side)
            assert np.array_equal(n.numpy(), t.numpy())
    ints = [np.array([3, 1]), np.array([7])]
    t = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(a) for a in ints], padding_value=0.9)
    n = pad_sequence([nf.tensor(a) for a in ints], padding_value=0.9)
    assert n.tolist() == t.tolist() and str(n.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
