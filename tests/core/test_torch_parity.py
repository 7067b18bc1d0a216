"""Every op's forward values and gradients equal torch autograd's (float64, rtol 1e-5)."""
import pytest

torch = pytest.importorskip("torch")

from .cases import ELEMENTWISE, MATMUL, REDUCE, SHAPE  # noqa: E402

from tests.helpers.ops import run_torch_spec  # noqa: E402


@pytest.mark.parametrize("spec", ELEMENTWISE + REDUCE + SHAPE + MATMUL)
def test_parity(spec):
    run_torch_spec(spec)


# Points where the derivative is a convention: nanoframe must pick torch's.
EDGE_CASES = [
    ("relu-at-0", [[-1.0, 0.0, 2.0]], lambda x: x.relu(), None),
    ("abs-at-0", [[-1.0, 0.0, 2.0]], lambda x: x.abs(), None),
    ("clip-at-bounds", [[-1.0, -0.5, 0.0, 0.5, 1.0]], lambda x: x.clip(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5)),
    ("maximum-ties", [[1.0, 2.0, 3.0], [1.0, 5.0, 3.0]], lambda a, b: a.maximum(b), None),
    ("minimum-ties-bcast", [[[1.0, 2.0], [0.0, 3.0]], [1.0, 3.0]], lambda a, b: a.minimum(b), None),
    ("max-full-3ties", [[2.0, 2.0, 2.0, 1.0]], lambda x: x.max(), None),
    ("amax-3ties", [[[2.0, 2.0, 2.0], [1.0, 0.0, 1.0]]], lambda x: x.amax(dim=1), None),
    ("min-full-ties", [[[0.0, 1.0], [0.0, 0.0]]], lambda x: x.min(), None),
    ("max-dim-ties", [[[2.0, 2.0, 1.0], [0.0, 3.0, 3.0]]], lambda x: x.max(dim=1), None),
    ("min-dim-ties-keep", [[[2.0, 1.0], [1.0, 1.0]]], lambda x: x.min(dim=0, keepdim=True), None),
    ("pow-zero-base-int-exp", [[0.0, 1.0, -2.0]], lambda x: x ** 2, None),
    ("pow-neg-base-int-exp", [[-1.5, -0.5, 2.0]], lambda x: x ** 3, None),
    ("sqrt-large", [[1e-4, 1e4]], lambda x: x.sqrt(), None),
    ("sigmoid-extreme", [[-40.0, 0.0, 40.0]], lambda x: x.sigmoid(), None),
    ("tanh-extreme", [[-30.0, 0.0, 30.0]], lambda x: x.tanh(), None),
    ("var-single-elem-corr0", [[[3.0], [1.0]]], lambda x: x.var(dim=1, correction=0), None),
]


@pytest.mark.parametrize("name,arrays,fn,torch_fn", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_parity_edge(name, arrays, fn, torch_fn):
    from tests.helpers.ops import check_torch

    check_torch(None, fn, torch_fn, arrays=arrays)


def test_parity_float32_forward():
    """float32 stays float32 and matches torch's float32 forward at float32 precision."""
    import numpy as np

    import nanoframe as nf

    a = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    x, t = nf.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = ((x * 0.5).exp() @ x.T).sum(dim=1).tanh()
    yt = ((t * 0.5).exp() @ t.T).sum(dim=1).tanh()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    yt.sum().backward()
    assert x.grad_array.dtype == np.float32
    np.testing.assert_allclose(x.grad_array, t.grad.numpy(), rtol=1e-4, atol=1e-5)
