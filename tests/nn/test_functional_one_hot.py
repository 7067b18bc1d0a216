"""F.one_hot as torch's: int64 (*, num_classes), num_classes=-1 infers max + 1, bad class values
and float input are one RuntimeError each (torch's type)."""
import numpy as np
import pytest

import nanoframe as nf
import nanoframe.nn.functional as F


def test_values_shapes_and_dtype():
    out = F.one_hot(nf.tensor([1, 0, 2]))
    assert out.dtype == nf.int64 and out.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert F.one_hot(nf.tensor(2), 4).tolist() == [0, 0, 1, 0]
    assert tuple(F.one_hot(nf.tensor([[0], [2]])).shape) == (2, 1, 3)
    assert tuple(F.one_hot(nf.tensor([], dtype=nf.long), 3).shape) == (0, 3)
    assert F.one_hot(nf.tensor([1, 0]), num_classes=2).float().dtype == nf.float32


@pytest.mark.parametrize("make,args,match", [
    (lambda: nf.tensor([-1]), (3,), "non-negative"),
    (lambda: nf.tensor([3]), (3,), "smaller than num_classes"),
    (lambda: nf.tensor([1.0]), (3,), "integer index tensor"),
    (lambda: nf.tensor([], dtype=nf.long), (), "empty tensor"),
])
def test_bad_input_is_a_runtime_error(make, args, match):
    with pytest.raises(RuntimeError, match=match):
        F.one_hot(make(), *args)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    idx = np.random.default_rng(0).integers(0, 5, (4, 3))
    for n in (-1, 5, 7):
        t = torch.nn.functional.one_hot(torch.from_numpy(idx), n)
        got = F.one_hot(nf.tensor(idx), n)
        assert np.array_equal(got.numpy(), t.numpy()) and got.numpy().dtype == np.int64
