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
