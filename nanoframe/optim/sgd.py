"""`SGD` with momentum, dampening, Nesterov, L2 weight decay and maximize: torch.optim.SGD's update.

For each parameter with a gradient g:

    g = -g if maximize
    g = g + weight_decay * p                      (if weight_decay)
    buf = g (first step) | momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov) | buf       (if momentum)
    p = p - lr * g

foreach, fused and differentiable=False are accepted for torch's signature (one in-place update
runs either way).
"""
import numpy as np

from nanoframe.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        if group["momentum"] < 0:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _step_group(self, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for p in group["params"]:
            d_p = p.grad_array
            if d_p is None:
                continue
            if maximize:
                d_p = np.negative(d_p)
            if weight_decay != 0:
                decay = np.multiply(p.array, weight_decay)
                decay += d_p
                d_p = decay
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(d_p, dtype=p.array.dtype, order="C", copy=True)
                else:
                    buf *= momentum
                    buf += (1 - dampening) * d_p
                d_p = d_p + momentum * buf if nesterov else buf
            p.array += -lr * d_p
