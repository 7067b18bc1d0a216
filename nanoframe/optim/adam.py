"""`Adam` and `AdamW`: torch.optim's update formulas, computed in place.

For each parameter with a gradient g, at step t (counted per parameter, from 1):

    g  = -g if maximize
    g  = g + weight_decay * p              Adam: L2 penalty folded into the gradient
    p  = p * (1 - lr * weight_decay)       AdamW (= Adam with decoupled_weight_decay=True)
    m  = m + (1 - beta1) * (g - m)         (torch's exp_avg.lerp_(g, 1 - beta1))
    v  = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v); use v_max for v (amsgrad)
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p  = p - lr / (1 - beta1^t) * m / denom

The hot path: every operation writes into an existing array (`out=`), and each parameter is
processed in chunks of `CHUNK` elements so that the few arrays touched per chunk stay in cache,
with two scratch buffers per thread: the chunks of all parameters are shared out over
nanoframe.parallel's threads. The small parameters (biases, norm weights: two thirds of a GPT's
tensors, a few thousand elements each) are updated as ONE piece, as llm.c updates one flat
buffer: their moments live in one flat array per group (each state entry is a view into it, so
state_dict and checkpoints are unchanged), their values and gradients are gathered, updated by
13 calls instead of 13 per parameter, and written back. Same arithmetic, so the same bits. A
flat buffer for ALL parameters and gradients (as llm.c) is not used: it was measured no faster
(benchmarks/RESULTS.md, "AdamW over one flat buffer"), since the big matrices are bound by their
13 passes over memory rather than by calls, and a flat gradient buffer costs a copy pass, the
backward writing each gradient into its own array.

foreach, fused, capturable and differentiable=False are accepted for torch's signature (this one
in-place update runs either way).
"""
import math

import numpy as np

from nanoframe.optim.optimizer import Optimizer
from nanoframe.parallel import parallel

CHUNK = 65536  # elements per chunk: 7 float32 arrays of 256 KiB fit in a 2 MiB L2
SMALL = 4096   # parameters of at most this many elements (biases, norms) are updated as one piece


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014) with torch's options; weight_decay is the coupled L2 penalty unless
    decoupled_weight_decay=True (then it is AdamW)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        beta1, beta2 = group["betas"]
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        if group["eps"] < 0:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _step_group(self, group):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        decoupled = group.get("decoupled_weight_decay", False)

        def constants(step):
            bias_correction1 = 1 - beta1**step
            bias_correction2_sqrt = math.sqrt(1 - beta2**step)
            return _Constants(
                decay=1 - lr * weight_decay if (decoupled and weight_decay != 0) else None,
                l2=weight_decay if (not decoupled and weight_decay != 0) else 0.0,
                maximize=maximize,
                one_minus_beta1=1 - beta1,
                beta2=beta2,
                one_minus_beta2=1 - beta2,
                eps_scaled=eps * bias_correction2_sqrt,
                neg_step_size_scaled=-lr / bias_correction1 * bias_correction2_sqrt,
            )

        work = []   # (p, g, m, v, v_max, constants): CHUNK-sized pieces, whole strided parameters, packs
        small = {}  # (dtype, step) -> [(param, grad, state)]: the small parameters, updated as one piece
        for p in group["params"]:
            grad = p.grad_array
            if grad is None:
                continue
            param = p.array
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": 0,
                    "exp_avg": np.zeros(param.shape, param.dtype),
                    "exp_avg_sq": np.zeros(param.shape, param.dtype),
                }
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros(param.shape, param.dtype)
            state["step"] += 1
            if grad.dtype != param.dtype:
                grad = grad.astype(param.dtype)
            if not grad.flags.c_contiguous:
                grad = np.ascontiguousarray(grad)
            if param.size <= SMALL and param.flags.c_contiguous:
                small.setdefault((param.dtype, state["step"]), []).append((param, grad, state))
                continue
            k = constants(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            v_max = state["max_exp_avg_sq"] if amsgrad else None
            if param.flags.c_contiguous:
                flat = [a.reshape(-1) for a in (param, grad, m, v)] + [v_max.reshape(-1) if amsgrad else None]
                for i in range(0, param.size, CHUNK):
                    work.append(tuple(a[i:i + CHUNK] if a is not None else None for a in flat) + (k,))
            else:  # a strided parameter: updated whole, with scratch of its shape
                work.append((param, grad, m, v, v_max, k))
        packs = []
        for (_, step), members in small.items():
            m, v, v_max = self._packed_moments(members, amsgrad)
            p_flat = np.concatenate([param.reshape(-1) for param, _, _ in members])
            g_flat = np.concatenate([grad.reshape(-1) for _, grad, _ in members])
            work.append((p_flat, g_flat, m, v, v_max, constants(step)))
            packs.append((p_flat, members))

        @parallel(len(work), work_per_item=CHUNK)
        def _(a, b):  # work items [a, b), with this thread's own scratch buffers
            scratch = {}
            for p, g, m, v, v_max, k in work[a:b]:
                if p.ndim == 1 and p.size <= CHUNK:
                    if p.dtype not in scratch:
                        scratch[p.dtype] = (np.empty(CHUNK, p.dtype), np.empty(CHUNK, p.dtype))
                    s1, s2 = (s[: p.size] for s in scratch[p.dtype])
                else:
                    s1, s2 = np.empty_like(p), np.empty_like(p)
                _adam_kernel(p, g, m, v, v_max, s1, s2, k)

        for p_flat, members in packs:                  # the updated small parameters back in place
            offset = 0
            for param, _, _ in members:
                param.reshape(-1)[...] = p_flat[offset:offset + param.size]
                offset += param.size

    def _packed_moments(self, members, amsgrad):
        """Flat arrays m, v (and v_max or None) holding the moments of `members`, small parameters
        in order, whose state entries are views into them (so that state_dict and checkpoints see
        each parameter's own array). Kept across steps; rebuilt from the entries' current values
        when an entry is not the view it was (first step, load_state_dict, another membership)."""
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
        packs = self.__dict__.setdefault("_packs", {})
        key = tuple(id(state) for _, _, state in members)
        views = [state[name] for _, _, state in members for name in names]
        cached = packs.get(key)
        if cached is None or len(cached[1]) != len(views) or any(a is not b for a, b in zip(cached[1], views)):
            for other in [k for k in packs if set(k) & set(key)]:
                del packs[other]                       # superseded packs of the same parameters
            flats = {name: np.concatenate([state[name].reshape(-1) for _, _, state in members]) for name in names}
            views, offset = [], 0
            for param, _, state in members:
                for name in names:
                    state[name] = flats[name][offset:offset + param.size].reshape(param.shape)
                    views.append(state[name])
                offset += param.size
            cached = packs[key] = (flats, views)
        flats = cached[0]
        return flats["exp_avg"], flats["exp_avg_sq"], flats.get("max_exp_avg_sq")


class _Constants:
    """The per-step scalars of one parameter's update."""

    __slots__ = ("decay", "l2", "maximize", "one_minus_beta1", "beta2", "one_minus_beta2", "eps_scaled",
                 "neg_step_size_scaled")

    def __init__(self, **kw):
        for name, value in kw.items():
            setattr(self, name, value)


def _adam_kernel(p, g, m, v, v_max, s1, s2, k):
    """One Adam/AdamW update of equally shaped arrays p, m, v (and v_max) in place; g is read only."""
    if k.maximize or k.l2:
        # g' = (-g | g) + l2 * p, in scratch (the caller's .grad must not change)
        if k.maximize:
            np.negative(g, out=s2)
        else:
            np.copyto(s2, g)
        if k.l2:
            np.multiply(p, k.l2, out=s1)
            s2 += s1
        g = s2
    if k.decay is not None:
        p *= k.decay
    # m += (1 - beta1) * (g - m)
    np.subtract(g, m, out=s1)
    s1 *= k.one_minus_beta1
    m += s1
    # v = beta2 * v + (1 - beta2) * g^2
    v *= k.beta2
    np.multiply(g, g, out=s1)
    s1 *= k.one_minus_beta2
    v += s1
    if v_max is not None:
        np.maximum(v_max, v, out=v_max)
        v = v_max
    # p -= step_size * m / (sqrt(v) / b + eps), with b = sqrt(bias_correction2), computed as
    # p -= (step_size * b) * m / (sqrt(v) + eps * b): the same value, one pass fewer
    np.sqrt(v, out=s1)
    s1 += k.eps_scaled
    np.divide(m, s1, out=s1)
    s1 *= k.neg_step_size_scaled
    p += s1


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p *= 1 - lr * weight_decay
    before the Adam step. Default weight_decay=1e-2, as torch."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True)
