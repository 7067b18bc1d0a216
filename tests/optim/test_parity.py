"""SGD, Adam and AdamW against torch.optim: 20 steps, two param groups with different options,
float64 parameters, parameter values compared after every step (rtol 1e-5)."""
import numpy as np
import pytest

from nanoframe.nn import Parameter
from nanoframe.optim import SGD, Adam, AdamW

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 5), (5,)]
STEPS = 20


def _run_both(nf_cls, torch_cls, group_opts, maximize=False, none_grad_at=None):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    nf = [Parameter(a.copy()) for a in init]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    extra = {"maximize": True} if maximize else {}
    nf_opt = nf_cls([dict(params=nf[:2], **group_opts[0]), dict(params=nf[2:], **group_opts[1])], **extra)
    t_opt = torch_cls([dict(params=tp[:2], **group_opts[0]), dict(params=tp[2:], **group_opts[1])], **extra)
    for step in range(STEPS):
        for i, (p, q) in enumerate(zip(nf, tp)):
            if none_grad_at is not None and (step, i) in none_grad_at:
                p.grad_array, q.grad = None, None
            else:
                p.grad_array = grads[step][i].copy()
                q.grad = torch.tensor(grads[step][i])
        nf_opt.step()
        t_opt.step()
        for i, (p, q) in enumerate(zip(nf, tp)):
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-5, atol=1e-12,
                                       err_msg=f"param {i} at step {step}")
    return nf_opt, t_opt


@pytest.mark.parametrize(
    "opts",
    [
        [dict(lr=0.1), dict(lr=0.05, weight_decay=0.1)],
        [dict(lr=0.1, momentum=0.9), dict(lr=0.02, momentum=0.5, dampening=0.3, weight_decay=0.01)],
        [dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05), dict(lr=0.03, momentum=0.8, nesterov=True)],
    ],
    ids=["plain", "momentum-dampening", "nesterov"],
)
@pytest.mark.parametrize("maximize", [False, True])
def test_sgd_matches_torch(opts, maximize):
    _run_both(SGD, torch.optim.SGD, opts, maximize=maximize)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_torch(amsgrad):
    opts = [dict(lr=0.01, weight_decay=0.1, amsgrad=amsgrad),
            dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0, amsgrad=not amsgrad)]
    _run_both(Adam, torch.optim.Adam, opts)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_matches_torch(amsgrad):
    opts = [dict(lr=0.01, weight_decay=0.1, amsgrad=amsgrad),
            dict(lr=0.003, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.5, amsgrad=amsgrad)]
    _run_both(AdamW, torch.optim.AdamW, opts)


def test_adamw_defaults_and_maximize_match_torch():
    _run_both(AdamW, torch.optim.AdamW, [{}, dict(lr=0.02)], maximize=True)


def test_missing_grads_are_skipped_like_torch():
    # params without a grad on some steps: no update, no weight decay, their step count waits
    skip = {(0, 1), (1, 1), (5, 0), (6, 2), (7, 2), (12, 3)}
    _run_both(AdamW, torch.optim.AdamW, [dict(lr=0.01, weight_decay=0.1), dict(lr=0.02)], none_grad_at=skip)
    _run_both(SGD, torch.optim.SGD, [dict(lr=0.1, momentum=0.9, weight_decay=0.1), dict(lr=0.1)], none_grad_at=skip)


def test_adam_state_matches_torch():
    nf_opt, t_opt = _run_both(Adam, torch.optim.Adam, [dict(lr=0.01, amsgrad=True), dict(lr=0.01)])
    sd, tsd = nf_opt.state_dict(), t_opt.state_dict()
    assert sorted(int(i) for i in sd["state"]) == sorted(tsd["state"])
    assert sd["param_groups"][1]["params"] == tsd["param_groups"][1]["params"]
    for i, st in sd["state"].items():
        ref = tsd["state"][int(i)]
        assert st["step"] == int(ref["step"])
        assert set(st) == set(ref)
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(st[k], ref[k].numpy(), rtol=1e-5, atol=1e-12)


def test_large_parameter_chunked_update_matches_torch():
    # more elements than one chunk, float32, and a non-contiguous (transposed) grad
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 500)).astype(np.float32)
    p = Parameter(a.copy())
    q = torch.tensor(a.copy(), requires_grad=True)
    opt, topt = AdamW([p], lr=1e-2, weight_decay=0.1), torch.optim.AdamW([q], lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        g = rng.standard_normal((500, 300)).astype(np.float32).T
        p.grad_array, q.grad = g, torch.tensor(np.ascontiguousarray(g))
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert p.array.dtype == np.float32
