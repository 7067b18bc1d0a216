"""Loss modules against torch.nn: same arguments, same values and gradients, same buffers."""
import numpy as np
import pytest

from nanoframe import nn
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")


def _run(ours, theirs, x, t, grad_target=False):
    xn, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    tn = Tensor(t.copy(), requires_grad=True) if grad_target else t
    tt = torch.tensor(t, requires_grad=grad_target)
    out_n, out_t = ours(xn, tn), theirs(xt, tt)
    np.testing.assert_allclose(out_n.array, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    gy = np.random.default_rng(9).standard_normal(out_n.shape)
    out_n.backward(gy)
    out_t.backward(torch.tensor(gy))
    np.testing.assert_allclose(xn.grad_array, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if grad_target:
        np.testing.assert_allclose(tn.grad_array, tt.grad.numpy(), rtol=1e-10, atol=1e-12)


rng = np.random.default_rng(0)
W = rng.random(5) + 0.5


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,kwargs,make", [
    ("CrossEntropyLoss", {}, "ids"),
    ("CrossEntropyLoss", dict(weight=W, ignore_index=2, label_smoothing=0.1), "ids"),
    ("CrossEntropyLoss", dict(weight=W, label_smoothing=0.2), "probs"),
    ("NLLLoss", dict(weight=W), "ids"),
    ("NLLLoss", dict(ignore_index=1), "ids"),
    ("MSELoss", {}, "same"),
    ("L1Loss", {}, "same"),
    ("SmoothL1Loss", dict(beta=0.5), "same"),
    ("BCELoss", dict(weight=W), "unit"),
    ("BCEWithLogitsLoss", dict(weight=W, pos_weight=W * 2), "unit_logits"),
])
def test_loss_module_matches_torch(name, kwargs, make, reduction):
    r = np.random.default_rng(1)
    x = r.standard_normal((3, 5, 2)) if make in ("ids", "probs") else r.standard_normal((4, 5))
    if make == "ids":
        t = r.integers(0, 5, (3, 2))
    elif make == "probs":
        t = r.random((3, 5, 2))
        t /= t.sum(axis=1, keepdims=True)
    elif make == "unit":
        x, t = 1 / (1 + np.exp(-x)), r.random((4, 5))
    else:
        t = r.random((4, 5)) if make == "unit_logits" else r.standard_normal((4, 5))
    ours = getattr(nn, name)(**{k: (Tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()},
                             reduction=reduction)
    theirs = getattr(torch.nn, name)(**{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v)
                                        for k, v in kwargs.items()}, reduction=reduction)
    _run(ours, theirs, x, t, grad_target=make in ("probs", "same", "unit", "unit_logits"))
    assert list(ours.state_dict()) == list(theirs.state_dict())       # weight / pos_weight buffers
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].array, v.numpy())


def test_loss_module_defaults_and_legacy_arguments():
    assert nn.CrossEntropyLoss().reduction == "mean" and nn.CrossEntropyLoss().ignore_index == -100
    assert nn.SmoothL1Loss().beta == 1.0 and list(nn.MSELoss().state_dict()) == []
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning):
        assert nn.NLLLoss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        nn.L1Loss(reduction="avg")


def test_weight_buffer_follows_module_dtype():
    loss = nn.CrossEntropyLoss(weight=Tensor(np.ones(3, dtype=np.float32))).double()
    assert loss.weight.dtype == np.float64
