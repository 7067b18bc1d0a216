"""`Adagrad`: torch.optim.Adagrad's update (Duchi et al. 2011).

For each parameter with a gradient g, at step t (counted per parameter, from 1):

    g = -g if maximize
    g = g + weight_decay * p                       (if weight_decay)
    clr = lr / (1 + (t - 1) * lr_decay)
    sum = sum + g^2
    p = p - clr * g / (sqrt(sum) + eps)
As torch, every parameter's state (step 0, sum = initial_accumulator_value) exists from
construction on, so a fresh optimizer's state_dict already lists them, and the accumulator starts
from the optimizer-wide initial_accumulator_value even in a group that sets its own (torch reads
self.defaults there; the group's value is kept but unused).
"""
import numpy as np

from nanoframe.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p):
        self.state[p] = {"step": 0, "sum": np.full_like(p.array, self.defaults["initial_accumulator_value"])}

    def _check_group(self, group):
        super()._check_group(group)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            if group[name] < 0:
                raise ValueError(f"Invalid {name} value: {group[name]}")

    def _step_group(self, group):
        lr, lr_decay, eps, weight_decay = group["lr"], group["lr_decay"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            g = p.grad_array
            if g is None:
                continue
            if p not in self.state:                    # a group added after construction
                self._init_state(p)
            state, param = self.state[p], p.array
            state["step"] += 1
            g = np.negative(g) if group["maximize"] else g
            if weight_decay != 0:
                g = g + weight_decay * param
            clr = lr / (1 + (state["step"] - 1) * lr_decay)
            s = state["sum"]
            s += g * g
            std = np.sqrt(s)
            std += eps
            param -= clr * (g / std)
