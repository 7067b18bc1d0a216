"""Learning-rate schedules: plain functions `lr = f(step, ...)`, the same as callable objects
`schedule(step)` / `schedule.lr_at(step)`, and `LRScheduler`, which drives an optimizer with one.

Warmup convention (nanoGPT / build-nanogpt): steps count from 0, and during warmup

    lr(step) = max_lr * (step + 1) / warmup_steps        for step < warmup_steps

so step 0 already trains at max_lr / warmup_steps and step warmup_steps - 1 reaches max_lr.
From step warmup_steps on, the decay runs from max_lr (at step == warmup_steps) to min_lr (at
step == total_steps) and stays at min_lr after that. With warmup_steps=0 there is no warmup.

Typical loop (one scheduler step per optimizer step):

    sched = LRScheduler(opt, CosineWithWarmup(max_lr=6e-4, min_lr=6e-5, warmup_steps=100, total_steps=5000))
    for step in range(5000):         # the lr for step 0 is set when the scheduler is made
        ...; opt.step(); sched.step()

`LRScheduler` is a torch-style scheduler (nanoframe.optim.lr_scheduler: initial_lr, base_lrs,
get_last_lr, the step-order warning) whose factor on each group's base lr is schedule(step)
divided by the optimizer's lr: groups made with the optimizer's lr follow the schedule exactly, a
group made with its own lr (a smaller lr for a backbone) keeps its ratio to it.
"""
import math

from nanoframe.errors import NanoframeError
from nanoframe.optim import lr_scheduler


def _check(max_lr, min_lr, warmup_steps, total_steps):
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if total_steps < warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must be >= warmup_steps ({warmup_steps})")
    if max_lr < 0 or min_lr < 0:
        raise ValueError(f"learning rates must be >= 0, got max_lr={max_lr}, min_lr={min_lr}")


def _warmup(step, max_lr, warmup_steps):
    return max_lr * (step + 1) / warmup_steps


def _decay_ratio(step, warmup_steps, total_steps):
    """0 at the end of warmup, 1 at total_steps and after."""
    if step >= total_steps:
        return 1.0
    return (step - warmup_steps) / (total_steps - warmup_steps)


def cosine_with_warmup(step, max_lr, min_lr, warmup_steps, total_steps):
    """Linear warmup, then half a cosine from max_lr down to min_lr at total_steps, then min_lr."""
    if step < warmup_steps:
        return _warmup(step, max_lr, warmup_steps)
    ratio = _decay_ratio(step, warmup_steps, total_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def linear_with_warmup(step, max_lr, min_lr, warmup_steps, total_steps):
    """Linear warmup, then a straight line from max_lr down to min_lr at total_steps, then min_lr."""
    if step < warmup_steps:
        return _warmup(step, max_lr, warmup_steps)
    ratio = _decay_ratio(step, warmup_steps, total_steps)
    return max_lr + ratio * (min_lr - max_lr)


def step_decay(step, max_lr, step_size, gamma=0.1, warmup_steps=0):
    """Linear warmup, then max_lr * gamma ** ((step - warmup_steps) // step_size)."""
    if step < warmup_steps:
        return _warmup(step, max_lr, warmup_steps)
    return max_lr * gamma ** ((step - warmup_steps) // step_size)


def constant_with_warmup(step, max_lr, warmup_steps=0):
    """Linear warmup, then max_lr forever."""
    if step < warmup_steps:
        return _warmup(step, max_lr, warmup_steps)
    return max_lr


class Schedule:
    """A schedule object: `schedule(step)` and `schedule.lr_at(step)` give the lr of a step."""

    def lr_at(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at")

    def __call__(self, step):
        return self.lr_at(step)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class CosineWithWarmup(Schedule):
    def __init__(self, max_lr, min_lr, warmup_steps, total_steps):
        _check(max_lr, min_lr, warmup_steps, total_steps)
        self.max_lr, self.min_lr, self.warmup_steps, self.total_steps = max_lr, min_lr, warmup_steps, total_steps

    def lr_at(self, step):
        return cosine_with_warmup(step, self.max_lr, self.min_lr, self.warmup_steps, self.total_steps)


class LinearWithWarmup(Schedule):
    def __init__(self, max_lr, min_lr, warmup_steps, total_steps):
        _check(max_lr, min_lr, warmup_steps, total_steps)
        self.max_lr, self.min_lr, self.warmup_steps, self.total_steps = max_lr, min_lr, warmup_steps, total_steps

    def lr_at(self, step):
        return linear_with_warmup(step, self.max_lr, self.min_lr, self.warmup_steps, self.total_steps)


class StepDecay(Schedule):
    def __init__(self, max_lr, step_size, gamma=0.1, warmup_steps=0):
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        _check(max_lr, 0.0, warmup_steps, warmup_steps)
        self.max_lr, self.step_size, self.gamma, self.warmup_steps = max_lr, step_size, gamma, warmup_steps

    def lr_at(self, step):
        return step_decay(step, self.max_lr, self.step_size, self.gamma, self.warmup_steps)


class ConstantWithWarmup(Schedule):
    def __init__(self, max_lr, warmup_steps=0):
        _check(max_lr, 0.0, warmup_steps, warmup_steps)
        self.max_lr, self.warmup_steps = max_lr, warmup_steps

    def lr_at(self, step):
        return constant_with_warmup(step, self.max_lr, self.warmup_steps)


class LRScheduler(lr_scheduler.LRScheduler):
    """Sets `group["lr"] = schedule(step) * base_lr / optimizer_lr * group.get("lr_scale", 1.0)`.

    `schedule` is any callable step -> lr (a Schedule object, or e.g. `lambda s: ...`); its values
    are lrs for the optimizer's own `lr` (the default of its groups). `base_lr` is each group's
    `initial_lr` (its lr when the first scheduler was attached), so a group made with a different
    lr keeps its ratio to the optimizer's lr. A group's optional "lr_scale" entry multiplies on top.
    The lr of step `last_step + 1` is set when the scheduler is created (step 0 by default); each
    `.step()` advances one step (call it after `optimizer.step()`), `.step(n)` jumps to step n.
    """

    def __init__(self, optimizer, schedule, last_step=-1):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (step -> lr), got {type(schedule).__name__}")
        self.schedule = schedule
        self.optimizer_lr = float(optimizer.defaults["lr"])
        if not self.optimizer_lr > 0:
            raise NanoframeError(f"LRScheduler scales each group's lr by its ratio to the optimizer's lr, which "
                                 f"must be > 0, got lr={optimizer.defaults['lr']}")
        for group in optimizer.param_groups:  # a fresh optimizer may start at any step
            group.setdefault("initial_lr", group["lr"])
        super().__init__(optimizer, last_epoch=int(last_step))

    @property
    def last_step(self):
        return self.last_epoch

    @last_step.setter
    def last_step(self, value):
        self.last_epoch = value

    def get_lr(self):
        lr = float(self.schedule(self.last_epoch))
        # lr * (base / optimizer_lr): exactly the schedule's value for groups at the optimizer's lr
        return [lr * (base_lr / self.optimizer_lr) * group.get("lr_scale", 1.0)
                for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]

    def step(self, step=None):
        """Advance to the next step (or jump to `step`) and set every group's lr for it."""
        if step is None:
            super().step()
        else:
            self._step_count += 1
            self._update_lr(int(step))

    def state_dict(self):
        return {"last_step": self.last_epoch}

    def load_state_dict(self, state_dict):
        """Restore the step counter and set the groups' lr for that step."""
        self._update_lr(int(state_dict["last_step"]))
