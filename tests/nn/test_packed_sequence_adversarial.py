"""Adversarial tests for PackedSequence support, against torch.nn.utils.rnn and
torch.nn.LSTM/GRU/RNN with copied weights in float64 (float32 where named). Covers what
tests/nn/test_packed_sequence.py does not: hand-built PackedSequences (torch's constructor fills in
unsorted_indices), float32, batch_first modules, losses on only h_n / c_n / the packed output,
bias=False, dropout in eval mode, lengths in several integer forms, ties in the lengths, trailing
dims, gradients through pad/unpack, GRU and RNN over two threads, and malformed input (each must
get one NanoframeError, never a bare numpy/Python traceback)."""
import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.errors import NanoframeError
from nanoframe.nn.utils import rnn as R
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn

_KINDS = {"lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU), "rnn": (nn.RNN, torch.nn.RNN)}


def _pair(kind, dtype=np.float64, **kw):
    ours_cls, theirs_cls = _KINDS[kind]
    theirs = theirs_cls(**kw)
    theirs = theirs.double() if dtype == np.float64 else theirs.float()
    ours = ours_cls(**kw, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _states(out):
    rest = out[1]
    return list(rest) if isinstance(rest, tuple) else [rest]


def _hx_arg(kind, states):
    if not states:
        return None
    return tuple(states) if kind == "lstm" else states[0]


# ---------------------------------------------------------------- hand-built PackedSequences

def _unsorted_pack(T=5, lengths=(2, 5, 1, 3)):
    x = np.random.default_rng(0).standard_normal((T, len(lengths), 3))
    return TR.pack_padded_sequence(torch.tensor(x), list(lengths), enforce_sorted=False)


def test_hand_built_packed_sequence_with_sorted_indices_only_pads_in_callers_order():
    """torch.nn.utils.rnn.PackedSequence(data, batch_sizes, sorted_indices) computes
    unsorted_indices = inverse(sorted_indices); pad_packed_sequence then restores the caller's order."""
    pt = _unsorted_pack()
    pt2 = TR.PackedSequence(pt.data, pt.batch_sizes, pt.sorted_indices)
    pn2 = R.PackedSequence(Tensor(pt.data.numpy()), Tensor(pt.batch_sizes.numpy()), Tensor(pt.sorted_indices.numpy()))
    yt, lt = TR.pad_packed_sequence(pt2)
    yn, ln = R.pad_packed_sequence(pn2)
    assert ln.tolist() == lt.tolist()                  # torch [2, 5, 1, 3]
    np.testing.assert_array_equal(yn.array, yt.numpy())


def test_hand_built_packed_sequence_with_sorted_indices_only_into_gru_with_hx():
    """Same hand-built PackedSequence into a GRU with hx: torch permutes hx by sorted_indices and
    h_n back by the inferred unsorted_indices."""
    ours, theirs = _pair("gru", input_size=3, hidden_size=2)
    pt = _unsorted_pack()
    h = np.random.default_rng(1).standard_normal((1, 4, 2))
    pt2 = TR.PackedSequence(pt.data, pt.batch_sizes, pt.sorted_indices)
    pn2 = R.PackedSequence(Tensor(pt.data.numpy()), Tensor(pt.batch_sizes.numpy()), Tensor(pt.sorted_indices.numpy()))
    _, ht = theirs(pt2, torch.tensor(h))
    _, hn = ours(pn2, Tensor(h))
    np.testing.assert_allclose(hn.array, ht.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_hand_built_packed_sequence_with_unsorted_indices_only_and_hx():
    """PackedSequence(data, batch_sizes, None, unsorted_indices) with hx: torch leaves hx as it is
    (no sorted_indices to permute by) and permutes h_n by unsorted_indices; it must not crash."""
    ours, theirs = _pair("gru", input_size=3, hidden_size=2)
    pt = _unsorted_pack()
    h = np.random.default_rng(1).standard_normal((1, 4, 2))
    pt2 = TR.PackedSequence(pt.data, pt.batch_sizes, None, pt.unsorted_indices)
    pn2 = R.PackedSequence(Tensor(pt.data.numpy()), Tensor(pt.batch_sizes.numpy()), None,
                           Tensor(pt.unsorted_indices.numpy()))
    _, ht = theirs(pt2, torch.tensor(h))
    _, hn = ours(pn2, Tensor(h))
    np.testing.assert_allclose(hn.array, ht.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_hand_built_packed_sequence_with_list_batch_sizes_runs():
    pn = R.PackedSequence(Tensor(np.arange(9.0).reshape(3, 3)), [2, 1])
    padded, lengths = R.pad_packed_sequence(pn)
    assert lengths.tolist() == [2, 1]
    np.testing.assert_array_equal(padded.array[:, 1], [[3.0, 4.0, 5.0], [0.0, 0.0, 0.0]])
    out, h_n = nn.GRU(3, 2, dtype=np.float64)(pn)
    assert tuple(out.data.shape) == (3, 2) and tuple(h_n.shape) == (1, 2, 2)


# ---------------------------------------------------------------- module parity not covered before

_CASES = [
    # (lengths, module kwargs, dtype, with hx, loss on, batch_first packing)
    ([1], {}, np.float64, False, "all", False),                                 # batch of one
    ([4, 4, 4], {}, np.float64, True, "all", False),                            # all equal, T > max length
    ([2, 5, 5, 1], {"batch_first": True, "num_layers": 2, "bidirectional": True}, np.float64, True, "out", True),
    ([2, 5, 5, 1], {"num_layers": 2, "bidirectional": True, "dropout": 0.5}, np.float64, True, "h", False),
    ([2, 5, 5, 1], {"bias": False, "bidirectional": True}, np.float64, True, "all", False),
    ([3, 1, 2], {"num_layers": 2, "bidirectional": True}, np.float32, True, "all", False),
]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("lengths,kw,dtype,with_hx,loss_on,pack_batch_first", _CASES)
def test_packed_module_matches_torch(kind, lengths, kw, dtype, with_hx, loss_on, pack_batch_first):
    rng = np.random.default_rng(len(lengths) + len(kw))
    B, T, H = len(lengths), max(lengths) + (kind == "gru"), 4
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    ours, theirs = _pair(kind, dtype, input_size=3, hidden_size=H, **kw)
    ours.eval()
    theirs.eval()                                      # dropout off in both
    x = rng.standard_normal((B, T, 3) if pack_batch_first else (T, B, 3)).astype(dtype)
    n_dirs = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    hx = [rng.standard_normal((n_dirs, B, H)).astype(dtype) for _ in range(2 if kind == "lstm" else 1)] if with_hx else []
    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    hn, ht = [Tensor(h.copy(), requires_grad=True) for h in hx], [torch.tensor(h, requires_grad=True) for h in hx]
    pn = R.pack_padded_sequence(xn, lengths, batch_first=pack_batch_first, enforce_sorted=False)
    pt = TR.pack_padded_sequence(xt, lengths, batch_first=pack_batch_first, enforce_sorted=False)
    on, ot = ours(pn, _hx_arg(kind, hn)), theirs(pt, _hx_arg(kind, ht))
    np.testing.assert_allclose(on[0].data.array, ot[0].data.detach().numpy(), **tol)
    for a, b in zip(_states(on), _states(ot), strict=True):
        np.testing.assert_allclose(a.array, b.detach().numpy(), **tol)
    w = np.random.default_rng(9)
    loss_n, loss_t = 0.0, 0.0
    pieces = ([(on[0].data, ot[0].data)] if loss_on in ("all", "out") else []) + \
             ([(_states(on)[0], _states(ot)[0])] if loss_on in ("all", "h") else [])
    for a, b in pieces:
        wt = w.standard_normal(tuple(a.shape)).astype(dtype)
        loss_n, loss_t = loss_n + (a * Tensor(wt)).sum(), loss_t + (b * torch.tensor(wt)).sum()
    loss_n.backward()
    loss_t.backward()
    np.testing.assert_allclose(xn.grad.array, xt.grad.numpy(), **tol)
    for a, b in zip(hn, ht):
        np.testing.assert_allclose(a.grad.array, b.grad.numpy(), **tol)
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        got = p.grad.array if p.grad is not None else np.zeros(tuple(p.shape))
        np.testing.assert_allclose(got, tp[name].grad.numpy(), err_msg=name, **tol)


def test_lstm_loss_on_c_n_only_and_three_layer_relu_rnn():
    rng = np.random.default_rng(3)
    lengths, x = [3, 1, 2, 3], rng.standard_normal((3, 4, 3))
    for kind, kw in (("lstm", dict(num_layers=2, bidirectional=True)),
                     ("rnn", dict(num_layers=3, bidirectional=True, nonlinearity="relu"))):
        ours, theirs = _pair(kind, input_size=3, hidden_size=4, **kw)
        xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
        on = ours(R.pack_padded_sequence(xn, lengths, enforce_sorted=False))
        ot = theirs(TR.pack_padded_sequence(xt, lengths, enforce_sorted=False))
        a, b = _states(on)[-1], _states(ot)[-1]
        (a * a).sum().backward()
        (b * b).sum().backward()
        np.testing.assert_allclose(xn.grad.array, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        tp = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.array, tp[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_ties_in_lengths_give_torchs_results_in_the_callers_order():
    """torch sorts lengths with an unstable sort (for B > 16 its packed row order and sorted_indices
    differ from a stable sort); what the caller sees (padded outputs, h_n) must still agree."""
    lengths = [3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 2, 3, 2, 2, 3, 3, 2]
    x = np.random.default_rng(4).standard_normal((3, len(lengths), 3))
    ours, theirs = _pair("lstm", input_size=3, hidden_size=2, bidirectional=True)
    on = ours(R.pack_padded_sequence(Tensor(x), lengths, enforce_sorted=False))
    ot = theirs(TR.pack_padded_sequence(torch.tensor(x), lengths, enforce_sorted=False))
    np.testing.assert_allclose(R.pad_packed_sequence(on[0])[0].array,
                               TR.pad_packed_sequence(ot[0])[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(_states(on), _states(ot)):
        np.testing.assert_allclose(a.array, b.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- packing utilities

@pytest.mark.parametrize("lengths", [
    [5, 3, 2, 1], (5, 3, 2, 1), np.array([5, 3, 2, 1], np.int32), np.array([5, 3, 2, 1], np.uint8),
    Tensor(np.array([5, 3, 2, 1], np.int32)), Tensor(np.array([5, 3, 2, 1])), [np.int64(5), 3, 2, 1],
], ids=["list", "tuple", "np_int32", "np_uint8", "tensor_int32", "tensor_int64", "np_scalars"])
def test_lengths_in_any_integer_form(lengths):
    x = np.random.default_rng(5).standard_normal((5, 4, 2))
    pn = R.pack_padded_sequence(Tensor(x), lengths)
    pt = TR.pack_padded_sequence(torch.tensor(x), [5, 3, 2, 1])
    assert pn.batch_sizes.tolist() == pt.batch_sizes.tolist()
    np.testing.assert_array_equal(pn.data.array, pt.data.numpy())


def test_pad_and_unpack_with_trailing_dims_values_and_gradients():
    rng = np.random.default_rng(6)
    lengths = [2, 4, 1, 4, 3]
    x = rng.standard_normal((5, 4, 2, 3))               # (B, T, *) with two trailing dims
    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    pn = R.pack_padded_sequence(xn, Tensor(np.array(lengths, np.int32)), batch_first=True, enforce_sorted=False)
    pt = TR.pack_padded_sequence(xt, torch.tensor(lengths, dtype=torch.int32), batch_first=True, enforce_sorted=False)
    yn, ln = R.pad_packed_sequence(pn, batch_first=True, padding_value=7.0, total_length=6)
    yt, lt = TR.pad_packed_sequence(pt, batch_first=True, padding_value=7.0, total_length=6)
    np.testing.assert_array_equal(yn.array, yt.detach().numpy())
    assert ln.tolist() == lt.tolist() and ln.dtype == np.int64
    w = rng.standard_normal(tuple(yn.shape))
    (yn * Tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(xn.grad.array, xt.grad.numpy())

    seqs = [rng.standard_normal((n, 2, 2)) for n in (3, 1, 4)]
    sn, st_ = [Tensor(s.copy(), requires_grad=True) for s in seqs], [torch.tensor(s, requires_grad=True) for s in seqs]
    un = R.unpack_sequence(R.pack_sequence(sn, enforce_sorted=False))
    ut = TR.unpack_sequence(TR.pack_sequence(st_, enforce_sorted=False))
    for a, b in zip(un, ut, strict=True):
        np.testing.assert_array_equal(a.array, b.detach().numpy())
    sum((a * float(i + 1)).sum() for i, a in enumerate(un)).backward()
    sum((b * float(i + 1)).sum() for i, b in enumerate(ut)).backward()
    for a, b in zip(sn, st_):
        np.testing.assert_array_equal(a.grad.array, b.grad.numpy())


def test_two_dim_input_packs_and_pads_like_torch():
    x = np.random.default_rng(7).standard_normal((5, 4))  # (T, B): no feature dim
    pn, pt = R.pack_padded_sequence(Tensor(x), [5, 3, 2, 1]), TR.pack_padded_sequence(torch.tensor(x), [5, 3, 2, 1])
    np.testing.assert_array_equal(pn.data.array, pt.data.numpy())
    np.testing.assert_array_equal(R.pad_packed_sequence(pn)[0].array, TR.pad_packed_sequence(pt)[0].numpy())


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_packed_rows_split_over_two_threads(kind, monkeypatch):
    """The batch rows are shared out over the threads, each chunk with its own real-row boundary
    per step: one and two threads give the same outputs, states and gradients."""
    import nanoframe.parallel as par

    before = nanoframe.get_num_threads()
    nanoframe.set_num_threads(2)
    if nanoframe.get_num_threads() != 2:
        pytest.skip("nanoframe cannot run two threads here")
    monkeypatch.setattr(par, "MIN_PARALLEL_SIZE", 0)
    rng = np.random.default_rng(8)
    lengths = [1, 5, 2, 3, 5, 1, 4]
    x, h = rng.standard_normal((5, 7, 3)), rng.standard_normal((4, 7, 4))
    results = []
    try:
        for threads in (1, 2):
            nanoframe.set_num_threads(threads)
            nanoframe.manual_seed(0)
            m = _KINDS[kind][0](3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
            xn, hn = Tensor(x.copy(), requires_grad=True), Tensor(h.copy(), requires_grad=True)
            packed = R.pack_padded_sequence(xn, lengths, enforce_sorted=False)
            out, h_n = m(packed, (hn, hn * 0.5) if kind == "lstm" else hn)
            states = list(h_n) if kind == "lstm" else [h_n]
            (out.data.sin().sum() + sum((s * s).sum() for s in states)).backward()
            results.append([out.data.array, xn.grad.array, hn.grad.array] + [s.array for s in states] +
                           [p.grad.array for p in m.parameters()])
    finally:
        nanoframe.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- malformed input: one NanoframeError

def _x():
    return Tensor(np.zeros((4, 3, 2)))


def _d():
    return Tensor(np.ones((3, 3)))


_MALFORMED = {
    "ragged_lengths": lambda: R.pack_padded_sequence(_x(), [4, [3], 2]),
    "total_length_not_int": lambda: R.pad_packed_sequence(R.pack_padded_sequence(_x(), [3, 2, 2]), total_length="a"),
    "packed_data_is_ndarray": lambda: R.pad_packed_sequence(R.PackedSequence(np.ones((3, 3)), Tensor(np.array([2, 1])))),
    "packed_data_is_ndarray_into_gru": lambda: nn.GRU(3, 2, dtype=np.float64)(
        R.PackedSequence(np.ones((3, 3)), Tensor(np.array([2, 1])))),
    "unsorted_indices_float": lambda: R.pad_packed_sequence(
        R.PackedSequence(_d(), Tensor(np.array([2, 1])), Tensor(np.array([1, 0])), Tensor(np.array([1.0, 0.0])))),
    "sorted_indices_out_of_range_with_hx": lambda: nn.GRU(3, 2, dtype=np.float64)(
        R.PackedSequence(_d(), Tensor(np.array([2, 1])), Tensor(np.array([5, 7])), Tensor(np.array([1, 0]))),
        Tensor(np.zeros((1, 2, 2)))),
    "pack_sequence_empty_list": lambda: R.pack_sequence([]),
    "pack_sequence_of_ndarrays": lambda: R.pack_sequence([np.ones((2, 3))]),
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_malformed_input_gets_one_nanoframe_error(case):
    with pytest.raises(NanoframeError):
        _MALFORMED[case]()
