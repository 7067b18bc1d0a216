"""F.batch_norm and BatchNorm1d/2d against torch: values, every gradient, running statistics over
several steps (momentum and cumulative averaging), eval mode, state dict names; float64 gradchecks."""
import numpy as np
import pytest

import nanoframe.functional as F
from nanoframe import nn
from nanoframe.tensor import Tensor

from tests.helpers.fused import gradcheck, parity, rand

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5), (2, 3, 4, 3)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_functional_batch_norm_parity_and_gradcheck(shape, training, affine):
    c = shape[1]
    x = rand(*shape, seed=1, scale=2.0) + 0.5
    w, b = rand(c, seed=2), rand(c, seed=3)
    rm, rv = rand(c, seed=4), np.random.default_rng(5).random(c) + 0.5

    def ours(x_, *wb):
        return F.batch_norm(x_, rm.copy(), rv.copy(), *wb, training=training, momentum=0.3, eps=1e-3)

    def theirs(x_, *wb):
        return torch.nn.functional.batch_norm(x_, torch.tensor(rm, dtype=x_.dtype), torch.tensor(rv, dtype=x_.dtype), *wb, training=training,
                                              momentum=0.3, eps=1e-3)

    args, idx = ([x, w, b], (0, 1, 2)) if affine else ([x], (0,))
    parity(ours, theirs, args, idx, rtol=1e-10, atol=1e-12)
    parity(ours, theirs, [a.astype(np.float32) for a in args], idx, rtol=1e-4, atol=1e-5)
    gradcheck(ours, args, idx)


def test_functional_batch_norm_updates_running_stats_like_torch():
    x = rand(6, 3, 4, seed=6)
    rm, rv = np.zeros(3), np.ones(3)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    F.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.2)
    torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, training=True, momentum=0.2)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)          # the unbiased variance


MODULES = [("BatchNorm1d", (3,), {}, (6, 3)),
           ("BatchNorm1d", (3,), dict(momentum=None, eps=1e-3), (4, 3, 5)),
           ("BatchNorm2d", (3,), {}, (2, 3, 4, 5)),
           ("BatchNorm2d", (3,), dict(affine=False, momentum=0.5), (2, 3, 4, 5)),
           ("BatchNorm2d", (3,), dict(track_running_stats=False), (2, 3, 4, 5)),
           ("BatchNorm1d", (3,), dict(bias=False), (6, 3))]


@pytest.mark.parametrize("name,args,kw,shape", MODULES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_batchnorm_layer_matches_torch_over_steps_and_in_eval(name, args, kw, shape, dtype, rtol):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    theirs, ours = getattr(torch.nn, name)(*args, **kw, dtype=tdt), getattr(nn, name)(*args, **kw, dtype=dtype)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(7)
    for step in range(4):
        if step == 3:
            ours.eval()
            theirs.eval()
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
        yn, yt = ours(xn), theirs(xt)
        np.testing.assert_allclose(yn.array, yt.detach().numpy(), rtol=rtol, atol=rtol)
        gy = rng.standard_normal(shape).astype(dtype)
        yn.backward(gy)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(xn.grad_array, xt.grad.numpy(), rtol=rtol, atol=rtol)
        for (n1, p), (n2, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert n1 == n2
            np.testing.assert_allclose(p.grad_array, q.grad.numpy(), rtol=rtol, atol=rtol)
            p.grad_array, q.grad = None, None
        for k, v in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[k].array, v.numpy(), rtol=rtol, atol=rtol, err_msg=k)
    if ours.num_batches_tracked is not None:
        assert ours.num_batches_tracked.dtype == np.int64 and int(ours.num_batches_tracked.item()) == 3


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input, got shape \(2, 3, 4\)"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 4 channels \(num_features\) in dim 1, got shape \(2, 3\)"):
        nn.BatchNorm1d(4)(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input shape \(1, 3\)"):
        nn.BatchNorm1d(3)(Tensor(np.zeros((1, 3), np.float32)))
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var are required when training=False"):
        F.batch_norm(Tensor(np.zeros((2, 3))), None, None)


def test_batchnorm_dtype_cast_keeps_the_counter_an_int():
    bn = nn.BatchNorm2d(4).double()
    assert bn.running_var.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
