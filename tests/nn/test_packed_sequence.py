"""PackedSequence: pack_padded_sequence / pad_packed_sequence / pack_sequence / unpack_sequence and
the RNN, LSTM and GRU modules on packed batches, against torch.nn.utils.rnn and torch.nn with
copied weights: packed data, padded outputs, final states and every gradient (input, initial
state, all parameters), in float64; float64 gradchecks of the fused sequence ops with
batch_sizes; malformed input gets one clear error."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanoframe
from nanoframe import nn
from nanoframe.errors import NanoframeError
from nanoframe.nn.utils import rnn as R
from nanoframe.ops.rnn import GRULayerFunction, LSTMLayerFunction, RNNLayerFunction
from nanoframe.tensor import Tensor

from tests.helpers.fused import gradcheck

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn


def _modules(kind, **kw):
    args = dict(input_size=3, hidden_size=4, **kw)
    if kind == "rnn_relu":
        return nn.RNN(nonlinearity="relu", **args, dtype=np.float64), torch.nn.RNN(nonlinearity="relu", **args).double()
    ours, theirs = {"lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU), "rnn": (nn.RNN, torch.nn.RNN)}[kind]
    return ours(**args, dtype=np.float64), theirs(**args).double()


def _copy(ours, theirs):
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def _states(out):
    rest = out[1]
    return list(rest) if isinstance(rest, tuple) else [rest]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
def test_rnn_on_a_packed_batch_equals_torch(kind, layers, bidirectional, enforce_sorted, with_hx):
    rng = np.random.default_rng(layers * 7 + bidirectional)
    lengths = [6, 6, 4, 2, 1] if enforce_sorted else [2, 6, 1, 6, 4]
    T, B = 7, len(lengths)                             # the padded input is longer than any sequence
    x = rng.standard_normal((T, B, 3))
    ours, theirs = _modules(kind, num_layers=layers, bidirectional=bidirectional)
    _copy(ours, theirs)
    n_states = 2 if kind == "lstm" else 1
    hx = [rng.standard_normal((layers * (2 if bidirectional else 1), B, 4)) for _ in range(n_states)] if with_hx else []

    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    hn = [Tensor(h.copy(), requires_grad=True) for h in hx]
    ht = [torch.tensor(h, requires_grad=True) for h in hx]
    pn = R.pack_padded_sequence(xn, lengths, enforce_sorted=enforce_sorted)
    pt = TR.pack_padded_sequence(xt, lengths, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(pn.data.array, pt.data.detach().numpy())
    np.testing.assert_array_equal(pn.batch_sizes.array, pt.batch_sizes.numpy())
    out_n = ours(pn, (tuple(hn) if kind == "lstm" else hn[0]) if hx else None)
    out_t = theirs(pt, (tuple(ht) if kind == "lstm" else ht[0]) if hx else None)
    assert isinstance(out_n[0], R.PackedSequence)
    np.testing.assert_allclose(out_n[0].data.array, out_t[0].data.detach().numpy(), rtol=1e-10, atol=1e-12)
    yn, ln = R.pad_packed_sequence(out_n[0], batch_first=True, padding_value=-3.0)
    yt, lt = TR.pad_packed_sequence(out_t[0], batch_first=True, padding_value=-3.0)
    np.testing.assert_allclose(yn.array, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ln.array, lt.numpy())
    for a, b in zip(_states(out_n), _states(out_t), strict=True):
        np.testing.assert_allclose(a.array, b.detach().numpy(), rtol=1e-10, atol=1e-12)

    # every output position and final state weighted, then backward through pad, rnn and pack
    pieces_n, pieces_t = [yn] + _states(out_n), [yt] + _states(out_t)
    for i, (a, b) in enumerate(zip(pieces_n, pieces_t)):
        w = np.random.default_rng(100 + i).standard_normal(tuple(a.shape))
        mask = np.asarray(b.detach().numpy() != -3.0, dtype=float)   # padding positions carry no gradient
        w = w * mask if i == 0 else w
        (a * Tensor(w)).sum().backward(retain_graph=True)
        (b * torch.tensor(w)).sum().backward(retain_graph=True)
    np.testing.assert_allclose(xn.grad.array, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for a, b in zip(hn, ht):
        np.testing.assert_allclose(a.grad.array, b.grad.numpy(), rtol=1e-9, atol=1e-11)
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.array, tp[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_padding_of_the_input_is_never_read():
    """Whatever the padded positions hold (even NaN), the packed run's results are the same."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 3))
    lengths = [5, 3, 2]
    nanoframe.manual_seed(0)
    lstm = nn.LSTM(3, 4, bidirectional=True, dtype=np.float64)
    clean = lstm(R.pack_padded_sequence(Tensor(x), lengths))
    dirty = x.copy()
    for b, n in enumerate(lengths):
        dirty[n:, b] = np.nan
    noisy = lstm(R.pack_padded_sequence(Tensor(dirty), lengths))
    np.testing.assert_array_equal(noisy[0].data.array, clean[0].data.array)
    for a, b in zip(_states(noisy), _states(clean)):
        np.testing.assert_array_equal(a.array, b.array)


def test_a_packed_batch_equals_each_sequence_run_alone():
    """Sequence b of a packed batch gets what the module gives it alone (no padding at all)."""
    rng = np.random.default_rng(2)
    seqs = [rng.standard_normal((n, 3)) for n in (3, 7, 1, 5)]
    nanoframe.manual_seed(0)
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    out, h_n = gru(R.pack_sequence([Tensor(s) for s in seqs], enforce_sorted=False))
    alone = [gru(Tensor(s[:, None, :])) for s in seqs]
    for b, (y, h) in enumerate(alone):
        np.testing.assert_allclose(R.unpack_sequence(out)[b].array, y.array[:, 0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n.array[:, b], h.array[:, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn,width", [(LSTMLayerFunction, 4), (GRULayerFunction, 3), (RNNLayerFunction, 1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_sequence_ops_with_batch_sizes_pass_gradcheck(fn, width, reverse):
    rng = np.random.default_rng(3)
    T, B, H = 4, 3, 2
    bs = np.array([3, 2, 2, 1])
    arrays = [rng.standard_normal((T, B, width * H)), rng.standard_normal((width * H, H)) * 0.5,
              rng.standard_normal(width * H), rng.standard_normal((B, H))]
    kw = dict(reverse=reverse, batch_sizes=bs)
    if fn is LSTMLayerFunction:
        arrays.append(rng.standard_normal((B, H)))
    elif fn is RNNLayerFunction:
        kw["nonlinearity"] = "tanh"
    gradcheck(lambda *a: fn.apply(*a, **kw), arrays, grad_idx=tuple(range(len(arrays))))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.booleans(), st.booleans())
def test_pack_then_pad_round_trips(lengths, batch_first, enforce_sorted):
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    T, B = max(lengths) + 1, len(lengths)
    x = np.arange(T * B * 2, dtype=np.float64).reshape(T, B, 2)
    x_in = x.transpose(1, 0, 2) if batch_first else x
    packed = R.pack_padded_sequence(Tensor(x_in.copy()), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    tp = TR.pack_padded_sequence(torch.tensor(x_in), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(packed.data.array, tp.data.numpy())
    padded, got = R.pad_packed_sequence(packed, batch_first=batch_first, padding_value=-1.0, total_length=T)
    assert got.tolist() == list(lengths)
    expect = x.copy()
    for b, n in enumerate(lengths):
        expect[n:, b] = -1.0
    np.testing.assert_array_equal(padded.array, expect.transpose(1, 0, 2) if batch_first else expect)
    back = R.unpack_sequence(packed)
    assert [s.shape[0] for s in back] == list(lengths)


def test_malformed_packing_gets_one_clear_error():
    x = Tensor(np.zeros((4, 3, 2)))
    cases = [
        (lambda: R.pack_padded_sequence(x, [4, 3]), "2 lengths for a batch of 3"),
        (lambda: R.pack_padded_sequence(x, [4, 0, 1]), "at least 1"),
        (lambda: R.pack_padded_sequence(x, [5, 3, 1]), "longer than the input's 4 steps"),
        (lambda: R.pack_padded_sequence(x, [1, 3, 2]), "decreasing order"),
        (lambda: R.pack_padded_sequence(x, [1.5, 1, 1]), "1-D sequence of ints"),
        (lambda: R.pad_packed_sequence(R.pack_padded_sequence(x, [3, 2, 2]), total_length=2), "total_length"),
        (lambda: R.pad_packed_sequence(R.PackedSequence(Tensor(np.zeros((5, 2))), Tensor(np.array([3, 1])))),
         "sum to data's first dim"),
        (lambda: R.pad_packed_sequence(R.PackedSequence(Tensor(np.zeros((4, 2))), Tensor(np.array([1, 3])))),
         "non-increasing"),
        (lambda: nn.LSTM(5, 4, dtype=np.float64)(R.pack_padded_sequence(x, [3, 2, 2])), "input_size=5"),
        (lambda: R.pad_packed_sequence(x), "expected a PackedSequence"),
    ]
    for call, message in cases:
        with pytest.raises(NanoframeError, match=message):
            call()


def test_torch_import_path_and_to():
    """torch.nn.utils.rnn's names resolve through nanoframe (code that changes only its imports)."""
    from nanoframe.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: F401
    packed = R.pack_sequence([Tensor(np.ones((2, 3))), Tensor(np.ones((1, 3)))])
    assert packed.to(np.float32).data.dtype == np.float32 and packed.float().batch_sizes.tolist() == [2, 1]
    assert packed.sorted_indices is None and packed.unsorted_indices is None and not packed.is_cuda

