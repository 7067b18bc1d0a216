"""`Adadelta`: torch.optim.Adadelta's update (Zeiler 2012), lr default 1.0.

For each parameter with a gradient g:

    g = -g if maximize
    g = g + weight_decay * p                       (if weight_decay)
    v = rho * v + (1 - rho) * g^2
    delta = sqrt(u + eps) / sqrt(v + eps) * g
    u = rho * u + (1 - rho) * delta^2
    p = p - lr * delta
State per parameter: step, square_avg (v), acc_delta (u).
"""
import numpy as np

from nanoframe.optim.optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {group['rho']}")
        for name in ("eps", "weight_decay"):
            if group[name] < 0:
                raise ValueError(f"Invalid {name} value: {group[name]}")

    def _step_group(self, group):
        lr, rho, eps, weight_decay = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            g = p.grad_array
            if g is None:
                continue
            param = p.array
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0, "square_avg": np.zeros_like(param),
                                         "acc_delta": np.zeros_like(param)}
            state["step"] += 1
            g = np.negative(g) if group["maximize"] else g
            if weight_decay != 0:
                g = g + weight_decay * param
            v, u = state["square_avg"], state["acc_delta"]
            v *= rho
            v += (1 - rho) * g * g
            delta = np.sqrt(u + eps)
            delta /= np.sqrt(v + eps)
            delta *= g
            u *= rho
            u += (1 - rho) * delta * delta
            param -= lr * delta
