"""conv1d/conv2d, pad, max/avg pooling, adaptive_avg_pool2d: torch parity of values and every
gradient (float64 and float32), float64 gradchecks, and torch's output sizes on random configs."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nanoframe as nf
import nanoframe.functional as F

from tests.helpers.fused import gradcheck, parity, rand

torch = pytest.importorskip("torch")
tF = torch.nn.functional

CONV2D = [  # x shape, weight shape, kwargs
    ((2, 3, 6, 7), (4, 3, 3, 3), {}),
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(stride=2, padding=1)),
    ((1, 4, 7, 6), (6, 2, 3, 3), dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)),
    ((2, 4, 5, 5), (4, 1, 3, 3), dict(padding="same", groups=4)),          # depthwise
    ((2, 2, 5, 6), (3, 2, 2, 4), dict(padding="same", dilation=2)),         # even kernel: odd extra pad
    ((2, 2, 5, 6), (3, 2, 2, 2), dict(padding="valid", stride=3)),
    ((3, 5, 6), (2, 3, 1, 1), {}),                                          # unbatched, 1x1
]


@pytest.mark.parametrize("xs,ws,kw", CONV2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_parity_and_gradcheck(xs, ws, kw, bias):
    x, w = rand(*xs, seed=1), rand(*ws, seed=2, scale=0.5)
    b = rand(ws[0], seed=3) if bias else None
    args, idx = ([x, w, b], (0, 1, 2)) if bias else ([x, w], (0, 1))
    parity(lambda *a: F.conv2d(*a, **kw), lambda *a: tF.conv2d(*a, **kw), args, idx, rtol=1e-10, atol=1e-12)
    parity(lambda *a: F.conv2d(*a, **kw), lambda *a: tF.conv2d(*a, **kw),
           [a.astype(np.float32) for a in args], idx, rtol=1e-4, atol=1e-5)
    gradcheck(lambda *a: F.conv2d(*a, **kw), args, idx)


CONV1D = [
    ((2, 3, 9), (4, 3, 3), {}),
    ((2, 4, 9), (6, 2, 3), dict(stride=2, padding=2, dilation=2, groups=2)),
    ((2, 3, 8), (2, 3, 4), dict(padding="same")),
    ((3, 7), (2, 3, 2), dict(padding=1)),                                   # unbatched
]


@pytest.mark.parametrize("xs,ws,kw", CONV1D)
def test_conv1d_parity_and_gradcheck(xs, ws, kw):
    x, w, b = rand(*xs, seed=4), rand(*ws, seed=5), rand(ws[0], seed=6)
    parity(lambda *a: F.conv1d(*a, **kw), lambda *a: tF.conv1d(*a, **kw), [x, w, b], (0, 1, 2), rtol=1e-10, atol=1e-12)
    parity(lambda *a: F.conv1d(*a, **kw), lambda *a: tF.conv1d(*a, **kw),
           [a.astype(np.float32) for a in (x, w, b)], (0, 1, 2), rtol=1e-4, atol=1e-5)
    gradcheck(lambda *a: F.conv1d(*a, **kw), [x, w, b], (0, 1, 2))


def test_conv_errors_name_the_op_and_shapes():
    x = nf.randn(2, 3, 5, 5)
    with pytest.raises(ValueError, match=r"conv2d: input shape \(2, 3, 5, 5\) has 3 channels, but weight shape \(4, 2, 3, 3\) with groups=1 expects 2"):
        F.conv2d(x, nf.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: expected a 3-D or 4-D input \(N, C, H, W\) or \(C, H, W\), got shape \(5, 5\)"):
        F.conv2d(nf.randn(5, 5), nf.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: padded input size \(5 x 5\) is smaller than the dilated kernel \(7 x 7\)"):
        F.conv2d(x, nf.randn(4, 3, 7, 7))
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided convolutions"):
        F.conv2d(x, nf.randn(4, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="conv2d: input dtype float32 and weight dtype float64 must be the same float dtype"):
        F.conv2d(x, nf.Tensor(np.zeros((4, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"conv1d: bias must be \(4,\)"):
        F.conv1d(nf.randn(2, 3, 5), nf.randn(4, 3, 3), nf.randn(3))


PADS = [((2, 3, 4, 5), (1, 2), "constant"), ((2, 3, 4, 5), (1, 0, 2, 1), "constant"),
        ((2, 3, 4, 5), (-1, 2, 0, -2), "constant"), ((2, 3, 4, 5), (1, 1, 1, 1, 1, 1, 1, 1), "constant"),
        ((2, 3, 5), (2, 3), "reflect"), ((2, 3, 4, 5), (4, 1, 3, 2), "reflect"), ((3, 4, 5), (1, 2, 3, 0), "reflect"),
        ((2, 3, 5), (2, 7), "replicate"), ((2, 3, 4, 5), (1, 3, 2, 0), "replicate"),
        ((2, 2, 3, 4, 5), (1, 2, 1, 1, 2, 0), "replicate"),
        ((2, 3, 5), (5, 3), "circular"), ((2, 3, 4, 5), (2, 1, 4, 3), "circular")]


@pytest.mark.parametrize("shape,pads,mode", PADS)
def test_pad_parity_and_gradcheck(shape, pads, mode):
    x = rand(*shape, seed=9)
    kw = dict(mode=mode, value=1.5) if mode == "constant" else dict(mode=mode)
    parity(lambda a: F.pad(a, pads, **kw), lambda a: tF.pad(a, pads, **kw), [x], (0,), rtol=1e-12, atol=1e-14)
    parity(lambda a: F.pad(a, pads, **kw), lambda a: tF.pad(a, pads, **kw), [x.astype(np.float32)], (0,), rtol=1e-6)
    if x.size <= 120:
        gradcheck(lambda a: F.pad(a, pads, **kw), [x], (0,))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       data=st.data())
def test_pad_random_configs_match_torch_or_both_refuse(shape, mode, data):
    k = data.draw(st.integers(1, min(3, len(shape))))
    pads = tuple(data.draw(st.integers(-2 if mode == "constant" else 0, 5)) for _ in range(2 * k))
    x = rand(*shape, seed=1)
    try:
        theirs = tF.pad(torch.from_numpy(x), pads, mode=mode).numpy()
    except (RuntimeError, NotImplementedError, ValueError):
        with pytest.raises(ValueError, match="^pad: "):
            F.pad(nf.Tensor(x), pads, mode=mode)
        return
    np.testing.assert_array_equal(F.pad(nf.Tensor(x), pads, mode=mode).array, theirs)


def test_pad_errors():
    x = nf.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"pad: reflect padding \(4, 0\) is too large for input shape \(2, 3, 4\)"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match="pad: the pad tuple needs"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match='pad: mode "reflect" does not take a value argument'):
        F.pad(x, (1, 1), mode="reflect", value=2.0)
    with pytest.raises(ValueError, match="pad: negative padding"):
        F.pad(x, (-1, 1), mode="replicate")


MAXPOOL = [((2, 3, 7, 8), dict(kernel_size=2)),
           ((2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1)),
           ((1, 2, 9, 9), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1), ceil_mode=True)),
           ((2, 2, 7, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
           ((2, 6, 6), dict(kernel_size=2, stride=1))]                       # unbatched, overlapping windows


@pytest.mark.parametrize("shape,kw", MAXPOOL)
def test_max_pool2d_parity_indices_and_gradcheck(shape, kw):
    x = rand(*shape, seed=10)
    parity(lambda a: F.max_pool2d(a, **kw), lambda a: tF.max_pool2d(a, **kw), [x], (0,), rtol=1e-12, atol=0)
    parity(lambda a: F.max_pool2d(a, **kw), lambda a: tF.max_pool2d(a, **kw), [x.astype(np.float32)], (0,), rtol=1e-6)
    _, idx = F.max_pool2d(nf.Tensor(x), return_indices=True, **kw)
    _, tidx = tF.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.array, tidx.numpy())
    assert idx.dtype == np.int64 and not idx.requires_grad
    gradcheck(lambda a: F.max_pool2d(a, **kw), [x], (0,))


def test_max_pool_ties_and_nan_pick_torchs_index():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, np.nan, np.nan]]]])
    for ours, theirs in zip(F.max_pool2d(nf.Tensor(x), 2, return_indices=True),
                            tF.max_pool2d(torch.from_numpy(x), 2, return_indices=True)):
        np.testing.assert_array_equal(ours.array, theirs.numpy())
    xt = nf.Tensor(np.array([[[[2.0, 2.0], [2.0, 1.0]]]]), requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(xt.grad_array, [[[[1.0, 0.0], [0.0, 0.0]]]])   # the first max gets it


@pytest.mark.parametrize("x,kw", [(np.full((1, 1, 3, 3), -np.inf), dict(kernel_size=3, stride=1, padding=1)),
                                  (np.zeros((1, 1, 1, 1)), dict(kernel_size=2, stride=1, padding=1, dilation=2))])
def test_max_pool_windows_without_a_finite_element_report_torchs_index(x, kw):
    # all -inf, or a window that only covers padding: torch reports the window's first in-bounds
    # slot; the backward must not scatter outside the input
    ours = F.max_pool2d(nf.Tensor(x, requires_grad=True), return_indices=True, **kw)
    theirs = tF.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.array, b.numpy())
    xt = nf.Tensor(x, requires_grad=True)
    F.max_pool2d(xt, **kw).sum().backward()
    assert xt.grad_array.shape == x.shape


AVGPOOL = [((2, 3, 7, 8), dict(kernel_size=2)),
           ((2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1)),
           ((2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
           ((1, 2, 8, 7), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True)),
           ((1, 2, 8, 7), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True, count_include_pad=False)),
           ((2, 2, 5, 5), dict(kernel_size=2, stride=1, divisor_override=3)),
           ((2, 5, 6), dict(kernel_size=3, stride=2, ceil_mode=True))]


@pytest.mark.parametrize("shape,kw", AVGPOOL)
def test_avg_pool2d_parity_and_gradcheck(shape, kw):
    x = rand(*shape, seed=11)
    parity(lambda a: F.avg_pool2d(a, **kw), lambda a: tF.avg_pool2d(a, **kw), [x], (0,), rtol=1e-12, atol=1e-14)
    parity(lambda a: F.avg_pool2d(a, **kw), lambda a: tF.avg_pool2d(a, **kw), [x.astype(np.float32)], (0,), rtol=1e-5, atol=1e-6)
    gradcheck(lambda a: F.avg_pool2d(a, **kw), [x], (0,))


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=2, stride=1, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_pool1d_parity(kw):
    x = rand(2, 3, 9, seed=12)
    for ours, theirs in ((F.max_pool1d, tF.max_pool1d), (F.avg_pool1d, tF.avg_pool1d)):
        parity(lambda a: ours(a, **kw), lambda a: theirs(a, **kw), [x], (0,), rtol=1e-12, atol=1e-14)
        parity(lambda a: ours(a, **kw), lambda a: theirs(a, **kw), [x[0]], (0,), rtol=1e-12, atol=1e-14)
        gradcheck(lambda a: ours(a, **kw), [x], (0,))
    _, idx = F.max_pool1d(nf.Tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.array, tF.max_pool1d(torch.from_numpy(x), return_indices=True, **kw)[1].numpy())


@pytest.mark.parametrize("shape,size", [((2, 3, 7, 9), 3), ((2, 3, 7, 9), (4, 2)), ((2, 3, 7, 9), (None, 5)),
                                        ((2, 3, 6, 6), 1), ((3, 5, 4), (7, 6))])
def test_adaptive_avg_pool2d_parity_and_gradcheck(shape, size):
    x = rand(*shape, seed=13)
    parity(lambda a: F.adaptive_avg_pool2d(a, size), lambda a: tF.adaptive_avg_pool2d(a, size), [x], (0,),
           rtol=1e-12, atol=1e-14)
    parity(lambda a: F.adaptive_avg_pool2d(a, size), lambda a: tF.adaptive_avg_pool2d(a, size),
           [x.astype(np.float32)], (0,), rtol=1e-5, atol=1e-6)
    gradcheck(lambda a: F.adaptive_avg_pool2d(a, size), [x], (0,))


@settings(max_examples=80, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2), ceil=st.booleans(), avg=st.booleans(), include=st.booleans())
def test_pool_random_configs_match_torch_or_both_refuse(h, w, k, s, p, d, ceil, avg, include):
    x = rand(1, 2, h, w, seed=h * 10 + w)
    if avg:
        ours = lambda a: F.avg_pool2d(a, k, s, p, ceil_mode=ceil, count_include_pad=include)
        theirs = lambda a: tF.avg_pool2d(a, k, s, p, ceil_mode=ceil, count_include_pad=include)
    else:
        ours = lambda a: F.max_pool2d(a, k, s, p, d, ceil_mode=ceil, return_indices=True)
        theirs = lambda a: tF.max_pool2d(a, k, s, p, d, ceil_mode=ceil, return_indices=True)
    try:
        ref = theirs(torch.from_numpy(x))
    except RuntimeError:
        with pytest.raises(ValueError, match="_pool2d: "):
            ours(nf.Tensor(x))
        return
    got = ours(nf.Tensor(x))
    for a, b in zip(got if isinstance(got, tuple) else (got,), ref if isinstance(ref, tuple) else (ref,)):
        np.testing.assert_allclose(a.array, b.numpy(), rtol=1e-12, atol=1e-14)


def test_pool_errors():
    x = nf.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) should be at most half of kernel_size \(3, 3\)"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: input shape \(2, 3, 4, 4\) is too small for kernel_size \(5, 5\)"):
        F.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"max_pool1d: expected a 2-D or 3-D input \(N, C, L\) or \(C, L\), got shape \(2, 3, 4, 4\)"):
        F.max_pool1d(x, 2)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 4), o=st.integers(1, 4), g=st.integers(1, 3), h=st.integers(1, 6),
       w=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       pad=st.sampled_from([0, 1, 2, "same", "valid"]))
def test_conv2d_random_configs_match_torch_or_both_refuse(n, c, o, g, h, w, kh, kw, s, d, pad):
    x, wt = rand(n, c, h, w, seed=1), rand(o, max(c // g, 1), kh, kw, seed=2)
    try:
        ref = tF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), stride=s, padding=pad, dilation=d, groups=g).numpy()
    except RuntimeError:
        with pytest.raises(ValueError, match="^conv2d: "):
            F.conv2d(nf.Tensor(x), nf.Tensor(wt), stride=s, padding=pad, dilation=d, groups=g)
        return
    got = F.conv2d(nf.Tensor(x), nf.Tensor(wt), stride=s, padding=pad, dilation=d, groups=g).array
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
