"""Learning-rate schedules: plain functions `lr = f(step, ...)`, the same as callable objects
`schedule(step)` / `schedule.lr_at(step)`, and `LRScheduler`, which writes a schedule's value
into an optimizer's param groups.

Warmup convention (nanoGPT / build-nanogpt): steps count from 0, and during warmup

    lr(step) = max_lr * (step + 1) / warmup_steps        for step < warmup_steps

so step 0 already trains at max_lr / warmup_steps and step warmup_steps - 1 reaches max_lr.
From step warmup_steps on, the decay runs from max_lr (at step == warmup_steps) to min_lr (at
step == total_steps) and stays at min_lr after that. With warmup_steps=0 there is no warmup.

Typical loop (one scheduler step per optimizer step):

    sched = LRScheduler(opt, CosineWithWarmup(max_lr=6e-4, min_lr=6e-5, warmup_steps=100, total_steps=5000))
    for step in range(5000):         # the lr for step 0 is set when the scheduler is made
        ...; opt.step(); sched.step()
"""
import math


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


class LRScheduler:
    """Sets `group["lr"] = schedule(step) * group.get("lr_scale", 1.0)` for every param group.

    `schedule` is any callable step -> lr (a Schedule object, or e.g. `lambda s: ...`). The lr of
    step `last_step + 1` is set when the scheduler is created (step 0 by default); each `.step()`
    advances one step, like torch's schedulers called after `optimizer.step()`. A group's
    optional "lr_scale" entry keeps per-group ratios (e.g. a smaller lr for embeddings).
    """

    def __init__(self, optimizer, schedule, last_step=-1):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (step -> lr), got {type(schedule).__name__}")
        self.optimizer = optimizer
        self.schedule = schedule
        self.last_step = int(last_step)
        self.step()

    def _apply(self):
        lr = float(self.schedule(self.last_step))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self, step=None):
        """Advance to the next step (or jump to `step`) and set every group's lr for it."""
        self.last_step = self.last_step + 1 if step is None else int(step)
        self._apply()

    def get_last_lr(self):
        """The lr of each param group, as last set."""
        return list(self._last_lr)

    def state_dict(self):
        return {"last_step": self.last_step}

    def load_state_dict(self, state_dict):
        """Restore the step counter and set the groups' lr for that step."""
        self.last_step = int(state_dict["last_step"])
        self._apply()
