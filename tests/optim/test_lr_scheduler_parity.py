"""nanoframe.optim.lr_scheduler against torch.optim.lr_scheduler: the lr of both param groups (two
different lrs) after each of many steps, compared with == (the same float arithmetic), and the
state_dict round trip continuing the same sequence."""
import math
import warnings

import numpy as np
import pytest

import nanoframe
from nanoframe.nn import Parameter
from nanoframe.optim import SGD, Adam, lr_scheduler

torch = pytest.importorskip("torch")

STEPS = 120
LRS = (0.1, 0.013)


def _optimizers(kind="sgd"):
    ours = [Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(3, np.float32))]
    theirs = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    if kind == "adam":
        return (Adam([{"params": ours[:1]}, {"params": ours[1:], "lr": LRS[1]}], lr=LRS[0]),
                torch.optim.Adam([{"params": theirs[:1]}, {"params": theirs[1:], "lr": LRS[1]}], lr=LRS[0]))
    return (SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": LRS[1]}], lr=LRS[0], momentum=0.9),
            torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": LRS[1]}], lr=LRS[0], momentum=0.9))


class Halve:
    """A callable object (its attributes are saved in state_dict, unlike a lambda's)."""

    def __init__(self):
        self.rate = 0.5

    def __call__(self, epoch):
        return self.rate ** (epoch // 10)


CASES = {
    "LambdaLR": (lambda m: dict(lr_lambda=lambda e: 0.95 ** e), "sgd"),
    "LambdaLR-per-group": (lambda m: dict(lr_lambda=[lambda e: 1 / (e + 1), Halve()]), "sgd"),
    "MultiplicativeLR": (lambda m: dict(lr_lambda=lambda e: 0.97), "sgd"),
    "StepLR": (lambda m: dict(step_size=7, gamma=0.5), "sgd"),
    "MultiStepLR": (lambda m: dict(milestones=[5, 20, 20, 70], gamma=0.3), "sgd"),
    "ConstantLR": (lambda m: dict(factor=0.25, total_iters=9), "sgd"),
    "LinearLR": (lambda m: dict(start_factor=0.1, end_factor=0.9, total_iters=37), "sgd"),
    "ExponentialLR": (lambda m: dict(gamma=0.96), "sgd"),
    "PolynomialLR": (lambda m: dict(total_iters=50, power=2.0), "sgd"),
    "CosineAnnealingLR": (lambda m: dict(T_max=45, eta_min=1e-4), "sgd"),  # goes past T_max: rises again
    "CosineAnnealingWarmRestarts": (lambda m: dict(T_0=10, T_mult=2, eta_min=1e-5), "sgd"),
    "CyclicLR": (lambda m: dict(base_lr=[0.01, 0.001], max_lr=[0.1, 0.02], step_size_up=13, mode="triangular2"), "sgd"),
    "CyclicLR-exp-adam": (lambda m: dict(base_lr=0.01, max_lr=0.1, step_size_up=8, step_size_down=5,
                                         mode="exp_range", gamma=0.99), "adam"),
    "OneCycleLR": (lambda m: dict(max_lr=[0.5, 0.05], total_steps=STEPS + 1), "sgd"),
    "OneCycleLR-3phase-linear-adam": (lambda m: dict(max_lr=0.3, epochs=11, steps_per_epoch=11, three_phase=True,
                                                     anneal_strategy="linear", pct_start=0.25), "adam"),
}


def _make(module, name, kw, opt):
    cls = getattr(module, name.split("-")[0])
    return cls(opt, **kw(module))


def _group_state(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


@pytest.mark.parametrize("name", list(CASES))
def test_lr_sequence_matches_torch(name):
    kw, kind = CASES[name]
    ours_opt, torch_opt = _optimizers(kind)
    ours = _make(lr_scheduler, name, kw, ours_opt)
    theirs = _make(torch.optim.lr_scheduler, name, kw, torch_opt)
    assert ours.get_last_lr() == theirs.get_last_lr()
    assert ours.last_epoch == theirs.last_epoch == 0
    assert [g["initial_lr"] for g in ours_opt.param_groups] == [g["initial_lr"] for g in torch_opt.param_groups]
    for step in range(STEPS):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr(), f"step {step}"
        assert _group_state(ours_opt) == _group_state(torch_opt), f"step {step}"
    assert ours.last_epoch == theirs.last_epoch


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_resumes_the_sequence(name, tmp_path):
    kw, kind = CASES[name]
    opt, _ = _optimizers(kind)
    sched = _make(lr_scheduler, name, kw, opt)
    for _ in range(40):
        opt.step()
        sched.step()
    nanoframe.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.pt")
    expected = []
    for _ in range(40):
        opt.step()
        sched.step()
        expected.append(sched.get_last_lr())

    saved = nanoframe.load(tmp_path / "s.pt")
    opt2, _ = _optimizers(kind)
    sched2 = _make(lr_scheduler, name, kw, opt2)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    got = []
    for _ in range(40):
        opt2.step()
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected


def _run(sched_factory, kind="sgd", steps=STEPS):
    ours_opt, torch_opt = _optimizers(kind)
    ours, theirs = sched_factory(lr_scheduler, ours_opt), sched_factory(torch.optim.lr_scheduler, torch_opt)
    for step in range(steps):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr(), f"step {step}"
        assert _group_state(ours_opt) == _group_state(torch_opt), f"step {step}"
    return ours, theirs


def test_sequential_lr_matches_torch():
    def make(m, opt):
        warm = m.LinearLR(opt, start_factor=0.01, total_iters=10)
        cos = m.CosineAnnealingLR(opt, T_max=50, eta_min=1e-4)
        decay = m.ExponentialLR(opt, gamma=0.9)
        return m.SequentialLR(opt, schedulers=[warm, cos, decay], milestones=[10, 60])

    _run(make)


def test_chained_scheduler_matches_torch():
    def make(m, opt):
        return m.ChainedScheduler([m.ConstantLR(opt, factor=0.1, total_iters=4), m.ExponentialLR(opt, gamma=0.9),
                                   m.MultiStepLR(opt, milestones=[30, 80], gamma=0.5)])

    _run(make)


def test_two_chainable_schedulers_on_one_optimizer_compose_as_torch():
    ours_opt, torch_opt = _optimizers()
    mine = [lr_scheduler.StepLR(ours_opt, 5, 0.5), lr_scheduler.CosineAnnealingLR(ours_opt, T_max=30)]
    theirs = [torch.optim.lr_scheduler.StepLR(torch_opt, 5, 0.5), torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=30)]
    for step in range(60):
        ours_opt.step()
        torch_opt.step()
        for s in mine + theirs:
            s.step()
        assert _group_state(ours_opt) == _group_state(torch_opt), f"step {step}"
        if step == 20:  # an lr changed by hand carries on in both
            ours_opt.param_groups[1]["lr"] = torch_opt.param_groups[1]["lr"] = 0.5


def test_reduce_lr_on_plateau_matches_torch():
    rng = np.random.default_rng(0)
    metrics = list(np.cumsum(rng.standard_normal(150)) * 0.1 + 5)
    for kw in [dict(), dict(mode="max", factor=0.5, patience=3, threshold=0.05, threshold_mode="abs", cooldown=2,
                            min_lr=[1e-3, 1e-4]),
               dict(patience=0, factor=0.7, min_lr=0.002, eps=1e-3)]:
        ours_opt, torch_opt = _optimizers()
        ours = lr_scheduler.ReduceLROnPlateau(ours_opt, **kw)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, **kw)
        for i, m in enumerate(metrics):
            ours.step(nanoframe.tensor(m) if i % 2 else m)  # a 0-d tensor or a float, as torch accepts
            theirs.step(m)
            assert ours.get_last_lr() == theirs.get_last_lr(), (kw, i)
            assert (ours.num_bad_epochs, ours.cooldown_counter, ours.best) == \
                (theirs.num_bad_epochs, theirs.cooldown_counter, theirs.best)


@pytest.mark.parametrize("name,kw", [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[3, 8, 8], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=12, eta_min=0.001)),
    ("LinearLR", dict(start_factor=0.2, total_iters=6)),
    ("ConstantLR", dict(factor=0.5, total_iters=3)),
    ("PolynomialLR", dict(total_iters=9, power=0.5)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1 / (1 + e))),
])
def test_step_with_epoch_uses_the_closed_form_as_torch(name, kw):
    ours_opt, torch_opt = _optimizers()
    ours = getattr(lr_scheduler, name)(ours_opt, **kw)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kw)
    ours_opt.step()
    torch_opt.step()
    for epoch in [3, 7, 1, 10, 20]:
        with pytest.warns(UserWarning, match="epoch parameter"):
            ours.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.step(epoch)
        assert ours.get_last_lr() == theirs.get_last_lr(), epoch


def test_resume_with_last_epoch_as_torch():
    ours_opt, torch_opt = _optimizers()
    for opt in (ours_opt, torch_opt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    ours = lr_scheduler.CosineAnnealingLR(ours_opt, T_max=20, last_epoch=6)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=20, last_epoch=6)
    for _ in range(10):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr()
    fresh, _ = _optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(fresh, 3, last_epoch=4)


def test_warns_when_stepped_before_the_optimizer():
    opt, _ = _optimizers()
    sched = lr_scheduler.StepLR(opt, 3)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt2, _ = _optimizers()
    sched2 = lr_scheduler.StepLR(opt2, 3)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()


def test_constructor_errors_as_torch():
    opt, _ = _optimizers()
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), 3)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        lr_scheduler.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="same optimizer"):
        other, _ = _optimizers()
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), lr_scheduler.StepLR(other, 2)], milestones=[3])
    with pytest.raises(ValueError, match="momentum or beta1"):
        plain = nanoframe.optim.Optimizer([Parameter(np.zeros(1, np.float32))], dict(lr=0.1))
        lr_scheduler.OneCycleLR(plain, max_lr=0.1, total_steps=10)


def test_state_dict_drops_lambdas_and_keeps_callable_objects():
    opt, _ = _optimizers()
    halve = Halve()
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, halve])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"rate": 0.5}]
    assert "optimizer" not in sd and sd["last_epoch"] == 0 and sd["base_lrs"] == list(LRS)
    halve.rate = 0.1
    sched.load_state_dict(sd)
    assert halve.rate == 0.5
    assert math.isclose(sched.get_last_lr()[0], LRS[0])
