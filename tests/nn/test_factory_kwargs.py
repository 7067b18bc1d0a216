"""Every layer that makes parameters or buffers takes torch's factory arguments `device=None,
dtype=None` (torch code such as `nn.Linear(2, 3, device="cpu")` runs unchanged): parameters and
float buffers are made in `dtype`, the CPU is accepted, any other device is one UnsupportedError,
the same one the tensor factories raise."""
import inspect

import numpy as np
import pytest

import nanoframe as nf
from nanoframe import nn
from nanoframe.errors import UnsupportedError

try:
    import torch
except ImportError:
    torch = None

pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")   # Transformer's batch_first=False

LAYERS = [
    ("Linear", (3, 2)), ("Embedding", (5, 3)), ("LayerNorm", (4,)), ("RMSNorm", (4,)),
    ("BatchNorm1d", (3,)), ("BatchNorm2d", (3,)), ("Conv1d", (2, 3, 3)), ("Conv2d", (1, 2, 3)),
    ("RNN", (3, 4, 2)), ("LSTM", (3, 4)), ("GRU", (3, 4)), ("RNNCell", (3, 4)), ("LSTMCell", (3, 4)),
    ("GRUCell", (3, 4)), ("MultiheadAttention", (4, 2)), ("TransformerEncoderLayer", (4, 2, 8)),
    ("TransformerDecoderLayer", (4, 2, 8)),
    ("Transformer", (4, 2, 1, 1, 8)),
]
NAMES = [n for n, _ in LAYERS]
CPU_DEVICES = [None, "cpu", "cpu:0", nf.device("cpu")]


def _float_dtypes(layer):
    """Names of the dtypes of every parameter and floating-point buffer."""
    tensors = list(layer.parameters()) + [b for b in layer.buffers() if b.array.dtype.kind == "f"]
    assert tensors
    return {t.array.dtype.name for t in tensors}


@pytest.mark.parametrize("name,args", LAYERS, ids=NAMES)
@pytest.mark.parametrize("dtype", [nf.float32, nf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("device", CPU_DEVICES, ids=["None", "cpu", "cpu:0", "device"])
def test_parameters_and_buffers_are_made_in_the_dtype_on_the_cpu(name, args, dtype, device):
    layer = getattr(nn, name)(*args, device=device, dtype=dtype)
    assert _float_dtypes(layer) == {np.dtype(dtype.dtype).name}


@pytest.mark.parametrize("name,args", LAYERS, ids=NAMES)
def test_omitted_arguments_keep_the_default_dtype(name, args):
    assert _float_dtypes(getattr(nn, name)(*args)) == {"float32"}
    nf.set_default_dtype(nf.float64)
    try:
        assert _float_dtypes(getattr(nn, name)(*args, device="cpu")) == {"float64"}
    finally:
        nf.set_default_dtype(nf.float32)


@pytest.mark.parametrize("name,args", LAYERS, ids=NAMES)
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", nf.device("cuda", 1)], ids=["cuda", "cuda:0", "mps", "cuda1"])
def test_other_devices_raise_the_factories_one_line_error(name, args, device):
    with pytest.raises(UnsupportedError) as want:
        nf.zeros(2, device=device)
    with pytest.raises(UnsupportedError) as got:
        getattr(nn, name)(*args, device=device)
    assert str(got.value) == str(want.value) and "\n" not in str(got.value)
    assert "CPU" in str(got.value) and str(nf.device(device)) in str(got.value)


def test_transformer_with_custom_encoder_and_decoder_still_checks_the_device():
    enc, dec = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8), 1), \
        nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 8), 1)
    with pytest.raises(UnsupportedError):
        nn.Transformer(4, 2, custom_encoder=enc, custom_decoder=dec, device="cuda")


def test_square_subsequent_mask_checks_its_device():
    assert nn.Transformer.generate_square_subsequent_mask(3, device="cpu", dtype=nf.float64).dtype == nf.float64
    with pytest.raises(UnsupportedError):
        nn.Transformer.generate_square_subsequent_mask(3, device="cuda")


@pytest.mark.parametrize("name,args", LAYERS, ids=NAMES)
@pytest.mark.parametrize("dtype", [nf.int64, nf.bool, np.int32])
def test_non_float_dtypes_are_refused(name, args, dtype):
    with pytest.raises(TypeError, match="floating point dtype"):
        getattr(nn, name)(*args, device="cpu", dtype=dtype)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("name", [n for n in NAMES if n != "Embedding"])
def test_device_and_dtype_sit_where_torch_puts_them(name):
    """Same kind (positional or keyword-only) and the same parameters before them, so a torch call
    passing them positionally means the same here. torch's RNN/LSTM/GRU take *args: their
    documented signature (device, dtype last) is the reference."""
    ours = list(inspect.signature(getattr(nn, name)).parameters.values())
    theirs = list(inspect.signature(getattr(torch.nn, name)).parameters.values())
    if [p.kind for p in theirs] == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
        assert [p.name for p in ours[-2:]] == ["device", "dtype"]
        return
    for arg in ("device", "dtype"):
        i = [p.name for p in ours].index(arg)
        j = [p.name for p in theirs].index(arg)
        assert ours[i].kind == theirs[j].kind and ours[i].default is None
        assert [p.name for p in ours[:i]] == [p.name for p in theirs[:j]]


def test_embedding_takes_them_by_keyword_only():
    """torch.nn.Embedding has max_norm, norm_type, ... before device; nanoframe has not, so a
    positional 4th argument is refused instead of being read as something else."""
    assert nn.Embedding(5, 3, None, device="cpu", dtype=nf.float64).weight.dtype == nf.float64
    with pytest.raises(TypeError):
        nn.Embedding(5, 3, None, "cpu")


def test_positional_device_and_dtype_as_torch():
    assert nn.Linear(2, 3, True, "cpu", nf.float64).weight.dtype == nf.float64
    assert nn.Conv2d(1, 2, 3, 1, 0, 1, 1, True, "zeros", "cpu", nf.float64).weight.dtype == nf.float64
    assert nn.BatchNorm1d(3, 1e-5, 0.1, True, True, "cpu", nf.float64).running_var.dtype == nf.float64
    with pytest.raises(UnsupportedError):
        nn.LayerNorm(4, 1e-5, True, True, "cuda")


def _parity(ours, theirs, *inputs):
    """Copy torch's float64 weights in, run both forwards, compare every output within 1e-12."""
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert _float_dtypes(ours) == {"float64"}
    got = ours(*(nf.tensor(x) for x in inputs))
    want = theirs(*(torch.tensor(x) for x in inputs))
    flat = lambda o: [t for x in o for t in flat(x)] if isinstance(o, tuple) else ([] if o is None else [o])  # noqa: E731
    got, want = flat(got), flat(want)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert a.dtype == nf.float64
        np.testing.assert_allclose(a.array, b.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("name,args,shape", [
    ("Linear", (4, 3), (2, 4)),
    ("Conv2d", (2, 3, 3), (2, 2, 6, 5)),
    ("LSTM", (3, 4, 2), (5, 2, 3)),
    ("BatchNorm1d", (3,), (6, 3)),
])
def test_float64_layer_matches_torch(name, args, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    _parity(getattr(nn, name)(*args, device="cpu", dtype=nf.float64),
            getattr(torch.nn, name)(*args, device="cpu", dtype=torch.float64), x)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_float64_multihead_attention_matches_torch():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    _parity(nn.MultiheadAttention(4, 2, device=nf.device("cpu"), dtype=nf.float64),
            torch.nn.MultiheadAttention(4, 2, device=torch.device("cpu"), dtype=torch.float64), q, k, k)
