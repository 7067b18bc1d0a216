"""Shared helpers for the core tests (tinygrad style: one call runs an op and checks it).

`check_op(shapes, fn, ...)` builds float64 inputs of the given shapes, runs `fn` in nanoframe,
compares the forward with a NumPy expression (when given) and runs `nanoframe.testing.gradcheck`.
`check_torch(shapes, fn, ...)` runs the same inputs through nanoframe and torch autograd and
compares values and gradients. Most op tests are one parametrize line feeding one of these.
"""
import numpy as np

import nanoframe as nf
from nanoframe.testing import gradcheck

from tests.helpers.fused import parity

RTOL = 1e-5
ATOL = 1e-8


def make_arrays(shapes, low=-2.0, high=2.0, seed=0):
    """float64 arrays of the given shapes, uniform in [low, high), fixed seed."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, size=s) if s != () else np.asarray(rng.uniform(low, high))
            for s in shapes]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def check_op(shapes, fn, np_fn=None, low=-2.0, high=2.0, arrays=None, seed=0):
    """Forward against np_fn (if given) and float64 gradcheck of every input."""
    arrays = make_arrays(shapes, low, high, seed) if arrays is None else [np.array(a, dtype=np.float64) for a in arrays]
    ts = [nf.tensor(a, dtype=nf.float64, requires_grad=True) for a in arrays]
    out = _first(fn(*ts))
    assert isinstance(out, nf.Tensor)
    assert out.requires_grad
    assert out.dtype == np.float64
    if np_fn is not None:
        expected = np.asarray(np_fn(*[a.copy() for a in arrays]))
        assert out.shape == expected.shape, (out.shape, expected.shape)
        np.testing.assert_allclose(out.array, expected, rtol=1e-12, atol=1e-12)
    errors = gradcheck(fn, ts)
    assert all(e is not None and e < 1e-4 for e in errors), errors
    return out


def check_torch(shapes, fn, torch_fn=None, low=-2.0, high=2.0, arrays=None, seed=0):
    """Values and gradients of fn in nanoframe equal torch autograd's (float64, rtol 1e-5), every
    input requiring grad: fused.parity on inputs built as check_op builds them."""
    arrays = make_arrays(shapes, low, high, seed) if arrays is None else [np.array(a, dtype=np.float64) for a in arrays]
    parity(fn, torch_fn or fn, arrays, grad_idx=tuple(range(len(arrays))), rtol=RTOL, atol=ATOL, seed=seed)


def run_spec(spec):
    """check_op for one case table entry (see cases.py)."""
    shapes = spec["shapes"] or [np.shape(a) for a in spec["arrays"]]
    return check_op(shapes, spec["fn"], spec["np_fn"], spec["low"], spec["high"], spec["arrays"])


def run_torch_spec(spec):
    """check_torch for one case table entry (see cases.py)."""
    shapes = spec["shapes"] or [np.shape(a) for a in spec["arrays"]]
    return check_torch(shapes, spec["fn"], spec["torch_fn"], spec["low"], spec["high"], spec["arrays"])
