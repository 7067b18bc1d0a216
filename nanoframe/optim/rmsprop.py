"""`RMSprop`: torch.optim.RMSprop's update (Hinton's lecture 6e; centered as Graves 2013).

For each parameter with a gradient g:

    g = -g if maximize
    g = g + weight_decay * p                       (if weight_decay)
    v = alpha * v + (1 - alpha) * g^2
    avg = sqrt(v - g_avg^2) + eps, g_avg = lerp(g_avg, g, 1 - alpha)   (centered)
    avg = sqrt(v) + eps                                                   (otherwise)
    buf = momentum * buf + g / avg;  p = p - lr * buf                     (momentum > 0)
    p = p - lr * g / avg                                                  (otherwise)
State per parameter: step, square_avg, momentum_buffer (momentum > 0), grad_avg (centered).
"""
import numpy as np

from nanoframe.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        for name in ("eps", "momentum", "weight_decay", "alpha"):
            if group[name] < 0:
                raise ValueError(f"Invalid {'alpha' if name == 'alpha' else name} value: {group[name]}")

    def _step_group(self, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
        for p in group["params"]:
            g = p.grad_array
            if g is None:
                continue
            param = p.array
            g = np.negative(g) if group["maximize"] else g
            if weight_decay != 0:
                g = g + weight_decay * param
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0, "square_avg": np.zeros_like(param)}
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros_like(param)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros_like(param)
            state["step"] += 1
            v = state["square_avg"]
            v *= alpha
            v += (1 - alpha) * g * g
            if centered:
                g_avg = state["grad_avg"]
                g_avg += (1 - alpha) * (g - g_avg)
                avg = np.sqrt(v - g_avg * g_avg)
            else:
                avg = np.sqrt(v)
            avg += eps
            if momentum > 0:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += g / avg
                param -= lr * buf
            else:
                param -= lr * (g / avg)
