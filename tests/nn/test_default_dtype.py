"""Layers take their parameters' dtype from set_default_dtype when none is given, as torch's do
(a float64 program stays float64 end to end instead of silently computing in float32)."""
import pytest

import nanoframe as nf
from nanoframe import nn

try:
    import torch
except ImportError:
    torch = None

LAYERS = [
    ("Linear", (3, 2)), ("Embedding", (5, 3)), ("LayerNorm", (4,)), ("Conv1d", (2, 3, 3)), ("Conv2d", (1, 2, 3)),
    ("BatchNorm1d", (3,)), ("BatchNorm2d", (3,)), ("RNN", (3, 4, 2)), ("LSTM", (3, 4)), ("GRU", (3, 4)),
    ("LSTMCell", (3, 4)), ("GRUCell", (3, 4)), ("MultiheadAttention", (4, 2)),
    ("TransformerEncoderLayer", (4, 2, 8)), ("TransformerDecoderLayer", (4, 2, 8)),
]


@pytest.fixture
def float64_default():
    nf.set_default_dtype(nf.float64)
    if torch is not None:
        torch.set_default_dtype(torch.float64)
    yield
    nf.set_default_dtype(nf.float32)
    if torch is not None:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("name,args", LAYERS)
def test_parameters_follow_the_default_dtype(float64_default, name, args):
    layer = getattr(nn, name)(*args)
    got = {k: v.dtype.name for k, v in layer.state_dict().items()}
    assert {v for k, v in got.items() if not k.endswith("num_batches_tracked")} == {"float64"}
    if torch is not None:
        want = {k: str(v.dtype).split(".")[1] for k, v in getattr(torch.nn, name)(*args).state_dict().items()}
        assert got == want
    assert getattr(nn, name)(*args, dtype=nf.float32).state_dict()[next(iter(got))].dtype == nf.float32


def test_masks_and_empty_parameters_follow_it_too(float64_default):
    assert nn.Transformer.generate_square_subsequent_mask(3).dtype == nf.float64
    assert nn.Parameter().dtype == nf.float64
    nf.set_default_dtype(nf.float32)
    assert nn.Linear(2, 2).weight.dtype == nf.float32 and nn.Parameter().dtype == nf.float32
