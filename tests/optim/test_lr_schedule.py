"""LR schedules: values at key steps, and LRScheduler driving an optimizer."""
import math

import numpy as np
import pytest

from nanoframe.nn import Parameter
from nanoframe.optim import SGD, AdamW, LRScheduler
from nanoframe.optim.lr_schedule import (
    ConstantWithWarmup,
    CosineWithWarmup,
    LinearWithWarmup,
    StepDecay,
    constant_with_warmup,
    cosine_with_warmup,
    linear_with_warmup,
    step_decay,
)

MAX, MIN, WARM, TOTAL = 1.0, 0.1, 10, 110


def test_cosine_key_steps():
    f = lambda s: cosine_with_warmup(s, MAX, MIN, WARM, TOTAL)  # noqa: E731
    assert f(0) == pytest.approx(MAX / WARM)  # nanoGPT: (it + 1) / warmup
    assert f(4) == pytest.approx(MAX * 5 / WARM)
    assert f(WARM - 1) == pytest.approx(MAX)
    assert f(WARM) == pytest.approx(MAX)  # decay starts at max_lr
    assert f(60) == pytest.approx((MAX + MIN) / 2)  # halfway through the decay
    assert f(35) == pytest.approx(MIN + 0.5 * (1 + math.cos(math.pi * 0.25)) * (MAX - MIN))
    assert f(TOTAL) == pytest.approx(MIN)
    assert f(TOTAL + 1000) == pytest.approx(MIN)
    values = [f(s) for s in range(WARM, TOTAL + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_linear_step_constant_key_steps():
    f = lambda s: linear_with_warmup(s, MAX, MIN, WARM, TOTAL)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(WARM) == pytest.approx(MAX)
    assert f(60) == pytest.approx(0.55) and f(TOTAL) == pytest.approx(MIN) and f(500) == pytest.approx(MIN)
    assert step_decay(0, 1.0, step_size=10, gamma=0.5) == 1.0
    assert step_decay(9, 1.0, step_size=10, gamma=0.5) == 1.0
    assert step_decay(10, 1.0, step_size=10, gamma=0.5) == 0.5
    assert step_decay(25, 1.0, step_size=10, gamma=0.5) == 0.25
    assert step_decay(1, 1.0, step_size=10, gamma=0.5, warmup_steps=4) == pytest.approx(0.5)
    assert step_decay(14, 1.0, step_size=10, gamma=0.5, warmup_steps=4) == 0.5
    assert constant_with_warmup(0, 2.0, warmup_steps=4) == pytest.approx(0.5)
    assert constant_with_warmup(0, 2.0) == 2.0 and constant_with_warmup(10**6, 2.0, 4) == 2.0


def test_no_warmup_and_degenerate():
    assert cosine_with_warmup(0, MAX, MIN, 0, 100) == pytest.approx(MAX)
    assert cosine_with_warmup(5, MAX, MIN, 5, 5) == pytest.approx(MIN)
    with pytest.raises(ValueError):
        CosineWithWarmup(MAX, MIN, 10, 5)
    with pytest.raises(ValueError):
        StepDecay(1.0, step_size=0)


def test_schedule_objects_match_functions():
    for obj, fn in [
        (CosineWithWarmup(MAX, MIN, WARM, TOTAL), lambda s: cosine_with_warmup(s, MAX, MIN, WARM, TOTAL)),
        (LinearWithWarmup(MAX, MIN, WARM, TOTAL), lambda s: linear_with_warmup(s, MAX, MIN, WARM, TOTAL)),
        (StepDecay(MAX, 7, 0.3, 3), lambda s: step_decay(s, MAX, 7, 0.3, 3)),
        (ConstantWithWarmup(MAX, 3), lambda s: constant_with_warmup(s, MAX, 3)),
    ]:
        for s in (0, 2, 3, 10, 50, 110, 200):
            assert obj(s) == obj.lr_at(s) == fn(s)
        assert type(obj).__name__ in repr(obj)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no optimizer steps here
def test_scheduler_sets_every_group_and_resumes():
    p = [Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(2, np.float32))]
    opt = AdamW([{"params": p[:1]}, {"params": p[1:], "lr_scale": 0.5}], lr=123.0)
    sched = LRScheduler(opt, CosineWithWarmup(MAX, MIN, WARM, TOTAL))
    assert sched.get_last_lr() == pytest.approx([0.1, 0.05])  # step 0's lr is set on creation
    for _ in range(WARM):
        sched.step()
    assert sched.last_step == WARM
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([MAX, MAX / 2])
    sd = sched.state_dict()

    opt2 = SGD(p, lr=5.0)
    sched2 = LRScheduler(opt2, lambda s: 0.01 * s)
    assert sched2.get_last_lr() == [0.0]
    sched2.load_state_dict(sd)
    assert sched2.last_step == WARM and sched2.get_last_lr() == pytest.approx([0.01 * WARM])
    sched2.step(50)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5)
    with pytest.raises(TypeError):
        LRScheduler(opt2, 0.1)


def test_scheduler_keeps_each_groups_own_lr_ratio():
    """A group made with its own (smaller) lr follows the schedule scaled by its ratio to the
    optimizer's lr, instead of being flattened to the schedule's value."""
    backbone, head = Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(2, np.float32))
    opt = AdamW([{"params": [backbone], "lr": 1e-4}, {"params": [head]}], lr=1e-3)
    schedule = CosineWithWarmup(max_lr=1e-3, min_lr=1e-5, warmup_steps=5, total_steps=50)
    sched = LRScheduler(opt, schedule)
    for step in range(60):
        assert opt.param_groups[1]["lr"] == schedule(step)  # exactly the schedule's value
        assert opt.param_groups[0]["lr"] == pytest.approx(schedule(step) / 10, rel=1e-12)
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-4, 1e-3]


def test_scheduler_is_a_torch_style_scheduler():
    from nanoframe.optim import lr_scheduler

    p = Parameter(np.zeros(3, np.float32))
    opt = SGD([p], lr=0.5)
    sched = LRScheduler(opt, StepDecay(0.5, step_size=3, gamma=0.1), last_step=4)  # a fresh optimizer may start late
    assert isinstance(sched, lr_scheduler.LRScheduler)
    assert sched.last_step == sched.last_epoch == 5 and opt.param_groups[0]["lr"] == pytest.approx(0.05)
    # chains with torch's schedulers like any other: a ConstantLR on top halves it for 2 steps
    const = lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    with pytest.raises(ValueError, match="> 0"):
        LRScheduler(SGD([p], lr=0.0), lambda s: 0.1)
    assert const.get_last_lr() == [opt.param_groups[0]["lr"]]
