"""nn.utils against torch.nn.utils: clip_grad_norm_ (returns a 0-d Tensor, inf norm, a single
Tensor, error_if_nonfinite, foreach), get_total_norm + clip_grads_with_norm_, clip_grad_value_,
parameters_to_vector / vector_to_parameters (memory sharing and gradients)."""
import numpy as np
import pytest

import nanoframe
from nanoframe import nn
from nanoframe.nn import utils
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(4, 5), (5,), (3, 3, 2)]


def _pair(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * 3).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(np.zeros(s, dtype)) for s in SHAPES]
    theirs = [torch.zeros(s, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, requires_grad=True) for s in SHAPES]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = nanoframe.tensor(g.copy())
        q.grad = torch.tensor(g.copy())
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf"), "inf"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(norm_type, dtype):
    ours, theirs = _pair(dtype)
    total = utils.clip_grad_norm_(ours, 2.0, norm_type=norm_type, foreach=True)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 2.0, norm_type=norm_type, foreach=True)
    assert isinstance(total, Tensor) and total.shape == () and total.dtype == ttotal.numpy().dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=rtol)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.array, q.grad.numpy(), rtol=rtol * 10)


def test_clip_grad_norm_single_tensor_empty_and_nonfinite():
    p = nn.Parameter(np.zeros(2, np.float32))
    p.grad = nanoframe.tensor(np.array([3.0, 4.0], np.float32))
    assert float(utils.clip_grad_norm_(p, 10.0)) == pytest.approx(5.0)
    assert p.grad.tolist() == [3.0, 4.0]  # below max_norm: unchanged
    empty = utils.clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0)
    tempty = torch.nn.utils.clip_grad_norm_([torch.zeros(2, requires_grad=True)], 1.0)
    assert empty.item() == tempty.item() == 0.0 and empty.dtype == np.float32
    p.grad = nanoframe.tensor(np.array([np.nan, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        utils.clip_grad_norm_(p, 1.0, norm_type=0)


def test_total_norm_then_clip_matches_torch():
    ours, theirs = _pair()
    total = utils.get_total_norm([p.grad for p in ours], norm_type=3.0)
    ttotal = torch.nn.utils.get_total_norm([q.grad for q in theirs], norm_type=3.0)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    utils.clip_grads_with_norm_(ours, 1.5, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 1.5, ttotal)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.array, q.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_torch():
    ours, theirs = _pair()
    held = ours[0].grad_array
    assert utils.clip_grad_value_(ours, 1.25, foreach=False) is None
    torch.nn.utils.clip_grad_value_(theirs, 1.25)
    assert ours[0].grad_array is held  # in place
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.array, q.grad.numpy())


def test_parameters_to_vector_and_back_match_torch():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p, q in zip(model.parameters(), tmodel.parameters()):
            q.copy_(torch.from_numpy(p.array))
    vec = utils.parameters_to_vector(model.parameters())
    tvec = torch.nn.utils.parameters_to_vector(tmodel.parameters())
    np.testing.assert_array_equal(vec.array, tvec.detach().numpy())
    (vec * nanoframe.tensor(np.arange(vec.shape[0], dtype=np.float32))).sum().backward()  # differentiable
    np.testing.assert_array_equal(model[0].weight.grad.array.reshape(-1), np.arange(12, dtype=np.float32))

    new = nanoframe.tensor(np.linspace(-1, 1, vec.shape[0]).astype(np.float32))
    utils.vector_to_parameters(new, model.parameters())
    torch.nn.utils.vector_to_parameters(torch.from_numpy(new.array.copy()), tmodel.parameters())
    for p, q in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_array_equal(p.array, q.detach().numpy())
    new.array[0] = 42.0  # the parameters are views of vec, as in torch
    assert model[0].weight.array[0, 0] == 42.0
    with pytest.raises(TypeError, match="expected a Tensor"):
        utils.vector_to_parameters(np.zeros(3), model.parameters())
    with pytest.raises(ValueError, match="26 elements"):
        utils.vector_to_parameters(nanoframe.zeros(5), model.parameters())
