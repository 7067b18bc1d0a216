"""Layers against torch.nn with copied weights: forward values and every gradient; init ranges."""
import math

import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")


def _copy_from_torch(ours, theirs):
    """Load a torch module's weights through our load_state_dict (also checks the key names match)."""
    res = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


def _check(ours, theirs, x, dtype, rtol, int_input=False):
    xt = torch.tensor(x, requires_grad=not int_input)
    xn = Tensor(x, requires_grad=not int_input)
    out_t, out_n = theirs(xt), ours(xn)
    np.testing.assert_allclose(out_n.array, out_t.detach().numpy(), rtol=rtol, atol=rtol)
    gy = np.random.default_rng(5).standard_normal(out_n.shape).astype(dtype)
    out_t.backward(torch.tensor(gy))
    out_n.backward(gy)
    if not int_input:
        np.testing.assert_allclose(xn.grad_array, xt.grad.numpy(), rtol=rtol, atol=rtol)
    theirs_named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad_array, theirs_named[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, rtol, bias):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    theirs = torch.nn.Linear(5, 3, bias=bias, dtype=tdt)
    ours = nn.Linear(5, 3, bias=bias, dtype=dtype)
    _copy_from_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(dtype)
    _check(ours, theirs, x, dtype, rtol)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(bias):
    theirs = torch.nn.LayerNorm(6, eps=1e-5, bias=bias, dtype=torch.float64)
    ours = nn.LayerNorm(6, bias=bias, dtype=np.float64)
    with torch.no_grad():
        theirs.weight.normal_()
        if bias:
            theirs.bias.normal_()
    _copy_from_torch(ours, theirs)
    x = np.random.default_rng(1).standard_normal((3, 4, 6))
    _check(ours, theirs, x, np.float64, 1e-9)


def test_layernorm_without_affine_matches_torch():
    theirs = torch.nn.LayerNorm((2, 3), elementwise_affine=False, dtype=torch.float64)
    ours = nn.LayerNorm((2, 3), elementwise_affine=False, dtype=np.float64)
    assert list(ours.parameters()) == [] and ours.normalized_shape == (2, 3)
    _check(ours, theirs, np.random.default_rng(2).standard_normal((4, 2, 3)), np.float64, 1e-9)


def test_rmsnorm_matches_torch():
    theirs = torch.nn.RMSNorm(6, dtype=torch.float64)
    ours = nn.RMSNorm(6, dtype=np.float64)
    with torch.no_grad():
        theirs.weight.normal_()
    _copy_from_torch(ours, theirs)
    _check(ours, theirs, np.random.default_rng(3).standard_normal((3, 6)), np.float64, 1e-9)


def test_embedding_matches_torch():
    theirs = torch.nn.Embedding(11, 4, dtype=torch.float64)
    ours = nn.Embedding(11, 4, dtype=np.float64)
    _copy_from_torch(ours, theirs)
    idx = np.array([[1, 3, 3, 10], [0, 1, 2, 3]], dtype=np.int64)  # repeated ids accumulate
    _check(ours, theirs, idx, np.float64, 1e-12, int_input=True)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (nn.GELU(), torch.nn.GELU()),
        (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        (nn.ReLU(), torch.nn.ReLU()),
        (nn.SiLU(), torch.nn.SiLU()),
        (nn.Tanh(), torch.nn.Tanh()),
        (nn.Identity(), torch.nn.Identity()),
    ],
    ids=["gelu", "gelu-tanh", "relu", "silu", "tanh", "identity"],
)
def test_activations_match_torch(ours, theirs):
    x = np.random.default_rng(4).standard_normal((3, 5))
    _check(ours, theirs, x, np.float64, 1e-6)


def test_sequential_mlp_matches_torch():
    ours = nn.Sequential(nn.Linear(3, 8, dtype=np.float64), nn.Tanh(), nn.Linear(8, 2, dtype=np.float64))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    _copy_from_torch(ours, theirs)
    _check(ours, theirs, np.random.default_rng(6).standard_normal((7, 3)), np.float64, 1e-10)


def test_dropout_only_in_training():
    nanoframe.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = Tensor(np.ones((200, 50), np.float32))
    y = drop(x).array
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x).array, x.array)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_default_inits():
    nanoframe.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.array
    assert w.shape == (300, 400) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(lin.bias.array).max() <= bound
    emb = nn.Embedding(1000, 64)
    assert abs(emb.weight.array.std() - 1) < 0.02 and abs(emb.weight.array.mean()) < 0.02
    ln = nn.LayerNorm(5)
    assert (ln.weight.array == 1).all() and (ln.bias.array == 0).all()
    assert (nn.RMSNorm(5).weight.array == 1).all()
    nanoframe.manual_seed(7)
    a = nn.Linear(3, 3).weight.array.copy()
    nanoframe.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.array, a)  # drawn from the seeded generator
