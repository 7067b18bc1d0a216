"""Flatten, Unflatten, Softmax, LogSoftmax, LeakyReLU, Identity, ParameterList against torch.nn."""
import numpy as np
import pytest

import nanoframe.functional as F
from nanoframe import nn
from nanoframe.tensor import Tensor

from tests.helpers.fused import gradcheck, parity, rand

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("make", [
    lambda m: m.Flatten(), lambda m: m.Flatten(0, 1), lambda m: m.Flatten(-2),
    lambda m: m.Unflatten(1, (2, 3)), lambda m: m.Unflatten(-1, (2, -1)),
    lambda m: m.Softmax(dim=1), lambda m: m.LogSoftmax(dim=-1), lambda m: m.Softmax(dim=0),
    lambda m: m.LeakyReLU(), lambda m: m.LeakyReLU(0.2, inplace=True), lambda m: m.Identity(3, k=4),
])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_layer_matches_torch(make, dtype, tol):
    x = rand(2, 6, 2, seed=1, dtype=dtype)
    x[0, 0, 0] = 0.0                                       # LeakyReLU's gradient at 0: the slope, as torch
    ours, theirs = make(nn), make(torch.nn)
    parity(ours, lambda t: theirs(t.clone()), [x], (0,), rtol=tol, atol=tol)
    assert repr(ours) == repr(theirs)
    if dtype == np.float64:
        gradcheck(ours, [x + 0.01], (0,))


def test_functional_leaky_relu_matches_torch():
    x = rand(3, 4, seed=2)
    parity(lambda t: F.leaky_relu(t, 0.3), lambda t: torch.nn.functional.leaky_relu(t, 0.3), [x], (0,), rtol=1e-12)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_without_dim_uses_torchs_implicit_dim_and_warns(ndim):
    x = rand(*([3] * ndim), seed=3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ours = nn.Softmax()(Tensor(x)).array
    with pytest.warns(UserWarning):
        theirs = torch.nn.Softmax()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_unflatten_refuses_a_wrong_size():
    with pytest.raises(ValueError, match=r"Unflatten: cannot split dim 1 of size 6 \(input shape \(2, 6\)\) into \(4, -1\)"):
        nn.Unflatten(1, (4, -1))(Tensor(np.zeros((2, 6))))


def test_parameter_list_registers_and_trains():
    pl = nn.ParameterList([nn.Parameter(np.ones(2)), Tensor(np.zeros((2, 3)))])
    pl.append(nn.Parameter(np.ones(1)))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert isinstance(pl[1], nn.Parameter) and pl[1].requires_grad and len(pl) == 3
    tl = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.zeros(2, 3)])
    tl.append(torch.nn.Parameter(torch.ones(1)))
    assert list(pl.state_dict()) == list(tl.state_dict())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(np.full(3, float(i))) for i in range(2)])

        def forward(self, x):
            for w in self.ws:
                x = x * w
            return x.sum()

    net = Net()
    net(Tensor(np.ones(3))).backward()
    assert [n for n, _ in net.named_parameters()] == ["ws.0", "ws.1"]
    np.testing.assert_array_equal(net.ws[0].grad_array, np.ones(3))     # d/dw0 of sum(w0 * w1), w1 = 1
    np.testing.assert_array_equal(net.ws[-1].grad_array, np.zeros(3))
    with pytest.raises(TypeError, match="ParameterList holds Parameters or Tensors, got str"):
        pl.append("w")
