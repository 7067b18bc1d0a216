"""torch's legacy constructors: `Tensor()`, `Tensor(2, 3)`, `Tensor([1, 2])`, `LongTensor(n)`,
`FloatTensor(data)`... give torch's shapes, dtypes and values, and `isinstance(x, LongTensor)`
checks the dtype. One documented difference: `Tensor(ndarray)` keeps the array's dtype."""
import numpy as np
import pytest

import nanoframe as nf

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

TYPES = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ShortTensor", "CharTensor",
         "ByteTensor", "BoolTensor"]
ARGS = [(), (3,), (2, 3), ([1, 2],), ([[1.5, -2.7]],), ((2, 3),), ([],), ([True, False],)]


@needs_torch
@pytest.mark.parametrize("name", ["Tensor"] + TYPES)
@pytest.mark.parametrize("args", ARGS)
def test_legacy_constructors_match_torch(name, args):
    """Same shape, dtype and values, or both refuse (-2.7 as uint8 overflows in torch and here)."""
    try:
        theirs = getattr(torch, name)(*args)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="cannot be converted to type uint8 without overflow"):
            getattr(nf, name)(*args)
        return
    ours = getattr(nf, name)(*args)
    assert ours.shape == tuple(theirs.shape) and ours.dtype.name == str(theirs.dtype).split(".")[1]
    if not (args and all(isinstance(a, int) for a in args)):  # sizes give uninitialised memory
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.type() == theirs.type().replace("torch.", "nanoframe.")


@needs_torch
def test_sizes_from_a_size_and_tensors_as_data():
    assert nf.Tensor(nf.Size([2, 3])).shape == tuple(torch.Tensor(torch.Size([2, 3])).shape) == (2, 3)
    x = nf.tensor([1, 2])
    assert nf.Tensor(x).dtype == nf.int64 == nf.LongTensor(x).dtype     # a Tensor keeps its dtype, as torch
    assert torch.Tensor(torch.tensor([1, 2])).dtype == torch.int64
    assert nf.LongTensor(x) is x                                        # same dtype: the tensor itself
    with pytest.raises(TypeError, match=r"LongTensor\(\): expected a tensor of dtype nanoframe.int64, got "
                                        r"nanoframe.float32"):
        nf.LongTensor(nf.tensor([1.5]))
    with pytest.raises(TypeError):
        torch.LongTensor(torch.tensor([1.5]))


def test_word_language_model_uses():
    dummy = nf.LongTensor(6).zero_().view(-1, 2)                        # export_onnx's dummy input
    assert dummy.shape == (3, 2) and dummy.dtype == nf.int64 and dummy.sum().item() == 0
    word = nf.Tensor([[7]]).long()                                      # generate.py
    assert word.dtype == nf.int64 and word.tolist() == [[7]]


def test_isinstance_checks_the_dtype():
    assert isinstance(nf.zeros(2), nf.FloatTensor) and not isinstance(nf.zeros(2), nf.LongTensor)
    assert isinstance(nf.arange(3), nf.LongTensor) and isinstance(nf.arange(3), nf.Tensor)
    assert isinstance(nf.zeros(2, dtype=nf.bool), nf.BoolTensor) and not isinstance(np.zeros(2), nf.FloatTensor)
    assert isinstance(nf.nn.Parameter(nf.zeros(2)), nf.FloatTensor)


def test_bad_legacy_arguments():
    with pytest.raises(RuntimeError, match=r"negative dimension -1: \[2, -1\]"):
        nf.Tensor(2, -1)
    with pytest.raises(TypeError, match=r"data must be a sequence \(got float\)"):
        nf.LongTensor(3.0)
    with pytest.raises(TypeError, match="takes sizes"):
        nf.Tensor([1], [2])
    with pytest.raises(TypeError, match="cannot make a tensor from str"):
        nf.FloatTensor("ab")
    with pytest.raises(nf.errors.UnsupportedError):
        nf.FloatTensor(2, device="cuda")


def test_ndarrays_keep_their_dtype():
    """The one documented difference: torch.Tensor(np.array([1, 2])) is float32, nanoframe keeps int64
    (nanoframe.Tensor(array) is how the library wraps arrays; use nanoframe.FloatTensor(array) for torch's)."""
    assert nf.Tensor(np.array([1, 2])).dtype == nf.int64 and nf.Tensor(np.ones(2)).dtype == nf.float64
    assert nf.FloatTensor(np.array([1, 2])).dtype == nf.float32
