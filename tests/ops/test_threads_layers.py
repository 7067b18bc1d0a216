"""conv2d and the recurrent sequence ops give the same values and gradients on one thread and on
two (their GEMMs / batch rows are split over nanoframe.parallel's threads), even on tiny shapes."""
import numpy as np
import pytest

import nanoframe
import nanoframe.functional as F
import nanoframe.parallel as par
from nanoframe.ops.rnn import GRULayerFunction, LSTMLayerFunction, RNNLayerFunction

from tests.helpers.fused import gradcheck, nf_grads


@pytest.fixture
def two_threads(monkeypatch):
    """Yields a setter for the thread count (skips if nanoframe cannot run two); splits even the
    tiny test shapes; restores the thread count afterwards."""
    before = nanoframe.get_num_threads()
    nanoframe.set_num_threads(2)
    if nanoframe.get_num_threads() != 2:
        pytest.skip("nanoframe cannot run two threads here")
    monkeypatch.setattr(par, "MIN_PARALLEL_SIZE", 0, raising=False)
    yield nanoframe.set_num_threads
    nanoframe.set_num_threads(before)


def _ops():
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s)      # noqa: E731
    t, b, h = 4, 5, 3
    return {
        "conv2d": (lambda x, w: F.conv2d(x, w, padding=1, groups=2), [r(3, 4, 5, 6), r(6, 2, 3, 3)], (0, 1)),
        "lstm": (lambda *a: LSTMLayerFunction.apply(*a, reverse=False),
                 [r(t, b, 4 * h), r(4 * h, h), r(4 * h), r(b, h), r(b, h)], (0, 1, 2, 3, 4)),
        "gru": (lambda *a: GRULayerFunction.apply(*a, reverse=True), [r(t, b, 3 * h), r(3 * h, h), r(3 * h), r(b, h)],
                (0, 1, 2, 3)),
        "rnn": (lambda *a: RNNLayerFunction.apply(*a, reverse=False, nonlinearity="tanh"),
                [r(t, b, h), r(h, h), r(h), r(b, h)], (0, 1, 2, 3)),
    }


@pytest.mark.parametrize("name", ["conv2d", "lstm", "gru", "rnn"])
def test_threaded_equals_serial(two_threads, name):
    fn, arrays, idx = _ops()[name]
    arrays32 = [a.astype(np.float32) for a in arrays]
    two_threads(1)
    serial = nf_grads(fn, arrays32, idx)
    two_threads(2)
    threaded = nf_grads(fn, arrays32, idx)
    np.testing.assert_allclose(threaded[0], serial[0], rtol=1e-6, atol=1e-6)
    for a, b in zip(threaded[1], serial[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    gradcheck(fn, arrays, idx)                 # float64, through the threads



LLAMA_STYLE = dict(n_kv_head=2, positions="rope", norm="rmsnorm", mlp="swiglu", qkv_proj="split", bias=False)


def _gpt(arch):
    from nanoframe.models import GPT, GPTConfig

    nanoframe.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32, **arch))


def _batch(rng):
    return rng.integers(0, 50, (6, 16)), rng.integers(0, 50, (6, 16))


def _train_gpt(arch, steps=3):
    """Parameters after a few steps of forward, backward, clipping and AdamW on a small GPT."""
    from nanoframe.nn.utils import clip_grad_norm_

    model, rng = _gpt(arch), np.random.default_rng(0)
    opt = model.configure_optimizer(0.1, 1e-2, (0.9, 0.99))
    for _ in range(steps):
        _, loss = model(*_batch(rng))
        loss.backward()
        clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
    return {n: p.array.copy() for n, p in model.named_parameters()}


def _gpt_grads(arch):
    model = _gpt(arch)
    _, loss = model(*_batch(np.random.default_rng(0)))
    loss.backward()
    return {n: p.grad_array.copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", [dict(dropout=0.1), LLAMA_STYLE], ids=["gpt2", "llama"])
def test_training_repeats_bit_for_bit_on_two_threads_and_matches_one_thread(two_threads, arch):
    """Whichever thread runs a chunk, the arithmetic is the same: two runs on two threads agree to the
    last bit (so a resumed run continues the same run). Against one thread the gradients agree to
    rounding only: the BLAS may round a GEMM of a few rows differently from the same rows inside a
    larger one (OpenBLAS's small-matrix kernels), and this test splits even 16-row products."""
    two_threads(2)
    first, second = _train_gpt(arch), _train_gpt(arch)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(second[name], first[name], err_msg=name)
    threaded = _gpt_grads(arch)
    two_threads(1)
    serial = _gpt_grads(arch)
    for name in serial:
        np.testing.assert_allclose(threaded[name], serial[name], rtol=1e-4, atol=1e-7, err_msg=name)


def test_linear_bias_gradient_does_not_depend_on_the_thread_count(two_threads):
    """db is one gemv over all columns whatever the thread count (a gemv over each thread's columns
    rounded differently, at every size)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((768, 128)).astype(np.float32)
    w, b = rng.standard_normal((512, 128)).astype(np.float32), rng.standard_normal(512).astype(np.float32)
    gy = rng.standard_normal((768, 512)).astype(np.float32)
    grads = []
    for n in (1, 2):
        two_threads(n)
        wt, bt = nanoframe.Tensor(w, requires_grad=True), nanoframe.Tensor(b, requires_grad=True)
        F.linear(nanoframe.Tensor(x), wt, bt).backward(nanoframe.Tensor(gy))
        grads.append((wt.grad_array, bt.grad_array))
    np.testing.assert_array_equal(grads[1][1], grads[0][1])
    np.testing.assert_array_equal(grads[1][0], grads[0][0])
