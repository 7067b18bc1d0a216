"""RMSprop, Adagrad, Adadelta and LBFGS against torch.optim: 20+ steps, two param groups with
different options (LBFGS: its one group), float64 parameters compared after every step; state
values against torch's; state_dict round trips that continue exactly like an uninterrupted run."""
import numpy as np
import pytest

import nanoframe
from nanoframe.nn import Parameter
from nanoframe.optim import LBFGS, Adadelta, Adagrad, RMSprop
from nanoframe.tensor import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 5), (5,)]
STEPS = 25


def _grads(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    return init, grads


def _run_both(nf_cls, torch_cls, group_opts, extra=None, skip=()):
    init, grads = _grads()
    nf = [Parameter(a.copy()) for a in init]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    extra = extra or {}
    opt = nf_cls([dict(params=nf[:2], **group_opts[0]), dict(params=nf[2:], **group_opts[1])], **extra)
    topt = torch_cls([dict(params=tp[:2], **group_opts[0]), dict(params=tp[2:], **group_opts[1])], **extra)
    for step in range(STEPS):
        for i, (p, q) in enumerate(zip(nf, tp)):
            if (step, i) in skip:
                p.grad_array, q.grad = None, None
            else:
                p.grad_array, q.grad = grads[step][i].copy(), torch.tensor(grads[step][i])
        opt.step()
        topt.step()
        for i, (p, q) in enumerate(zip(nf, tp)):
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-5, atol=1e-12, err_msg=f"param {i} step {step}")
    return opt, topt


SKIP = {(0, 1), (3, 0), (7, 2), (8, 2), (15, 3)}


@pytest.mark.parametrize("opts,extra", [
    ([dict(lr=0.01), dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1)], {}),
    ([dict(lr=0.01, momentum=0.9), dict(lr=0.003, momentum=0.5, centered=True)], {}),
    ([dict(lr=0.01, centered=True, weight_decay=0.05), dict(lr=0.02, momentum=0.3, centered=True)], dict(maximize=True)),
], ids=["plain-wd", "momentum-centered", "centered-maximize"])
def test_rmsprop_matches_torch(opts, extra):
    opt, topt = _run_both(RMSprop, torch.optim.RMSprop, opts, extra, skip=SKIP)
    _same_state(opt, topt)


@pytest.mark.parametrize("opts,extra", [
    ([dict(lr=0.1), dict(lr=0.05, lr_decay=0.01, weight_decay=0.1)], {}),
    ([dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6), dict(lr=0.3, lr_decay=0.1)], dict(maximize=True)),
], ids=["plain-decay", "accumulator-maximize"])
def test_adagrad_matches_torch(opts, extra):
    opt, topt = _run_both(Adagrad, torch.optim.Adagrad, opts, extra, skip=SKIP)
    _same_state(opt, topt)


def test_adagrad_state_exists_from_construction_like_torch():
    p, q = Parameter(np.ones(3)), torch.ones(3, dtype=torch.float64, requires_grad=True)
    sd, tsd = Adagrad([p], initial_accumulator_value=0.2).state_dict(), torch.optim.Adagrad([q], initial_accumulator_value=0.2).state_dict()
    assert sorted(int(k) for k in sd["state"]) == sorted(tsd["state"]) == [0]
    np.testing.assert_array_equal(sd["state"][0]["sum"], tsd["state"][0]["sum"].numpy())


@pytest.mark.parametrize("opts,extra", [
    ([dict(), dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)], {}),
    ([dict(lr=2.0, rho=0.95), dict(lr=0.1)], dict(maximize=True)),
], ids=["default-wd", "maximize"])
def test_adadelta_matches_torch(opts, extra):
    opt, topt = _run_both(Adadelta, torch.optim.Adadelta, opts, extra, skip=SKIP)
    _same_state(opt, topt)


def _same_state(opt, topt):
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(int(i) for i in sd["state"]) == sorted(tsd["state"])
    for i, st in sd["state"].items():
        ref = tsd["state"][int(i)]
        assert set(st) == set(ref) and st["step"] == int(ref["step"])
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_allclose(v, ref[k].numpy(), rtol=1e-5, atol=1e-12, err_msg=k)
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g["params"] == tg["params"]
        assert all(g[k] == tg[k] for k in g if k != "params")


@pytest.mark.parametrize("cls,opts", [(RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
                                      (Adagrad, dict(lr=0.1, lr_decay=0.01)), (Adadelta, dict(lr=0.5))])
def test_state_dict_round_trip_continues_exactly(cls, opts):
    init, grads = _grads(1)
    a = [Parameter(x.copy()) for x in init]
    b = [Parameter(x.copy()) for x in init]
    opt_a = cls([dict(params=a[:2], **opts), dict(params=a[2:])])
    opt_b = cls([dict(params=b[:2], **opts), dict(params=b[2:])])
    for step in range(STEPS):
        if step == 10:                                  # b: a fresh optimizer loaded from b's state dict
            saved = opt_b.state_dict()
            opt_b = cls([dict(params=b[:2]), dict(params=b[2:])])
            opt_b.load_state_dict(saved)
        for ps, opt in ((a, opt_a), (b, opt_b)):
            for p, g in zip(ps, grads[step]):
                p.grad_array = g.copy()
            opt.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.array, q.array)


def test_new_optimizers_refuse_bad_options():
    p = [Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="Invalid alpha value"):
        RMSprop(p, alpha=-0.1)
    with pytest.raises(ValueError, match="Invalid lr_decay value"):
        Adagrad(p, lr_decay=-1)
    with pytest.raises(ValueError, match="Invalid rho value"):
        Adadelta(p, rho=1.5)
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        LBFGS([dict(params=p), dict(params=[Parameter(np.ones(2))])])
    with pytest.raises(ValueError, match="LBFGS: line_search_fn must be None or 'strong_wolfe'"):
        LBFGS(p, line_search_fn="backtracking")


# ---- LBFGS ---------------------------------------------------------------------------------------------
def _lbfgs_pair(kw, seed=0):
    """L2-regularised logistic regression (smooth and convex: the iterates stay well conditioned,
    so float rounding is not amplified from step to step) in both frameworks, same data."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6))
    y = np.where(x @ rng.standard_normal((6, 1)) + 0.3 * rng.standard_normal((40, 1)) > 0, 1.0, -1.0)
    init = [rng.standard_normal((6, 1)) * 0.5, np.zeros(1)]
    ps = [Parameter(a.copy()) for a in init]
    tps = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, topt = LBFGS(ps, **kw), torch.optim.LBFGS(tps, **kw)

    def closure():
        opt.zero_grad()
        margin = Tensor(y) * (Tensor(x) @ ps[0] + ps[1])
        loss = (1.0 + (-margin).exp()).log().mean() + 0.05 * (ps[0] * ps[0]).sum()
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        margin = torch.from_numpy(y) * (torch.from_numpy(x) @ tps[0] + tps[1])
        loss = torch.log(1.0 + torch.exp(-margin)).mean() + 0.05 * (tps[0] * tps[0]).sum()
        loss.backward()
        return loss

    return ps, tps, opt, topt, closure, tclosure


@pytest.mark.parametrize("kw", [dict(max_iter=2), dict(line_search_fn="strong_wolfe", max_iter=2),
                                dict(lr=0.5, max_iter=1, history_size=3),
                                dict(line_search_fn="strong_wolfe", max_iter=1, max_eval=2, history_size=2),
                                dict(line_search_fn="strong_wolfe", lr=10, max_iter=3),       # overshoots: zoom
                                dict(line_search_fn="strong_wolfe", lr=0.01, max_iter=3)],    # too short: extrapolate
                         ids=["plain", "strong_wolfe", "lr-history", "wolfe-max_eval", "wolfe-zoom", "wolfe-extrapolate"])
def test_lbfgs_matches_torch(kw):
    ps, tps, opt, topt, closure, tclosure = _lbfgs_pair(kw)
    for step in range(22):
        loss, tloss = opt.step(closure), topt.step(tclosure)
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-8, abs=1e-14)
        for p, q in zip(ps, tps):
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=f"step {step}")
    st, tst = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert st["func_evals"] == tst["func_evals"] and st["n_iter"] == tst["n_iter"]
    assert len(st["old_dirs"]) == len(tst["old_dirs"])


def test_lbfgs_state_dict_round_trip_continues_exactly():
    ps, _, opt, _, closure, _ = _lbfgs_pair(dict(line_search_fn="strong_wolfe", max_iter=3))
    qs, _, opt2, _, closure2, _ = _lbfgs_pair(dict(line_search_fn="strong_wolfe", max_iter=3))
    for _ in range(3):
        opt.step(closure)
        opt2.step(closure2)
    saved = opt2.state_dict()
    opt2 = LBFGS(qs, line_search_fn="strong_wolfe", max_iter=3)
    opt2.load_state_dict(saved)
    saved["state"][0]["old_dirs"][0][0] = 123.0            # the loaded state is a copy
    for _ in range(3):
        opt.step(closure)
        opt2.step(closure2)
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.array, q.array)
    bad = opt2.state_dict()
    bad["state"][0]["d"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"LBFGS: loaded state 'd' has shape \(3,\), expected \(7,\)"):
        opt2.load_state_dict(bad)


def test_lbfgs_fits_a_linear_regression():
    nanoframe.manual_seed(0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 3))
    w_true = np.array([[1.5], [-2.0], [0.5]])
    y = x @ w_true
    w = Parameter(np.zeros((3, 1)))
    opt = LBFGS([w], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((Tensor(x) @ w - Tensor(y)) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(w.array, w_true, atol=1e-6)
