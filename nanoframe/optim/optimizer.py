"""`Optimizer`: the base class with PyTorch's param groups, zero_grad, step and state_dict.

`param_groups` is a list of dicts, each with a "params" list of Tensors plus that group's options
(lr, weight_decay, betas, ...; missing options are filled from the optimizer's defaults). Edit them
as in torch (`opt.param_groups[0]["lr"] = 1e-4`): every step reads the group's current values.
`params` may also be `model.named_parameters()` (or groups of (name, Tensor) pairs): the names are
kept in the group's "param_names", as torch does.
`state` maps each parameter Tensor to a dict of its buffers (ndarrays: the update kernels work on raw
arrays) and counters (ints); it is filled lazily, on the first step in which the parameter has a
gradient, and reading a parameter that has none gives {} (a defaultdict, as torch).

`state_dict()` is torch's layout, parameters replaced by their index in the order of the groups
(0, 1, 2, ... across all groups):

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, ...},
     "param_groups": [{"lr": 1e-3, ..., "params": [0, 1, 2]}, ...]}

Buffers come out as Tensors holding copies (a snapshot that later steps do not change; torch's
are the live tensors) and counters as ints (torch keeps Adam's "step" as a float tensor).
`nanoframe.save` stores int keys, so `nanoframe.save(opt.state_dict(), path)` works as in torch.
`load_state_dict` accepts int keys and the str keys ("0") of files written before, and Tensors,
ndarrays or numbers as values; it checks everything (group sizes, indices, each buffer's shape
and finiteness, each group's options) and raises CheckpointError naming the parameter index, the
key and the values before changing anything.
"""
from collections import defaultdict

import numpy as np

from nanoframe.autograd import enable_grad
from nanoframe.errors import CheckpointError, NanoframeError, bounded
from nanoframe.tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()  # default of an option every group must set


class Optimizer:
    """Base class: subclasses set their defaults and implement `_step_group(group)`."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)  # param Tensor -> dict (Tensor hashes by identity)
        self.param_groups = []
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a dict {"params": [...], option: value, ...}; unset options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError('a param group needs a "params" entry')
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not sets")
        else:
            params = list(params)
        if params and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params):
            group["param_names"] = [name for name, _ in params]  # from model.named_parameters()
            params = [p for _, p in params]
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            raise ValueError("all optimizer param groups should be with/without names. cannot add param group "
                             f"{'with' if 'param_names' in group else 'without'} names to the optimizer")
        ids = set()
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.array.dtype.kind != "f":
                raise ValueError(f"can't optimize a tensor of dtype {p.array.dtype}")
            if id(p) in ids:
                raise ValueError("a parameter group contains the same parameter twice")
            ids.add(id(p))
        for other in self.param_groups:
            if any(id(q) in ids for q in other["params"]):
                raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate a group's options (subclasses raise ValueError on bad values)."""
        if group["lr"] < 0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        # torch's implementation switches: accepted, and nanoframe runs its own in-place kernels
        # either way; only differentiable=True (autograd through the update) would change results.
        if group.get("differentiable"):
            raise NanoframeError("differentiable=True (autograd through the optimizer step) is not supported")
        if group.get("fused") and group.get("foreach"):
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def zero_grad(self, set_to_none=True):
        """Reset the .grad of every parameter: to None (default) or fill the array with 0."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad_array = None
                elif p.grad_array is not None:
                    p.grad_array[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a .grad (others are skipped, their state untouched).

        closure, if given, is called first (with grad enabled) to recompute the loss; its result
        is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group):
        raise NotImplementedError(f"{type(self).__name__} must implement _step_group")

    # ---- state dict -------------------------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: Tensor copy | int | float}}, "param_groups": [options + "params": [index...]]}."""
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = {
                        k: (Tensor(v.copy()) if isinstance(v, np.ndarray) else v) for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore options and state saved by `state_dict()` into an optimizer over the same
        parameters (same groups, same order). Validates everything before changing anything."""
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("param_groups"), list):
            raise CheckpointError("optimizer state dict must be a dict with a 'param_groups' list "
                                  f"(and a 'state' dict), got {bounded(repr(state_dict), 80)}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise CheckpointError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has {len(self.param_groups)}"
            )
        by_index, new_groups = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), (list, tuple)):
                raise CheckpointError(f"loaded state dict's parameter group {i} is not a dict with a 'params' list")
            if len(group["params"]) != len(saved["params"]):
                raise CheckpointError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, "
                    f"the optimizer's has {len(group['params'])}"
                )
            for idx, p in zip(saved["params"], group["params"]):
                by_index[_index(idx, f"parameter group {i}")] = p
            options = {k: v for k, v in saved.items() if k != "params"}
            if isinstance(options.get("betas"), list):
                options["betas"] = tuple(options["betas"])
            new_group = dict(group, **options)
            try:
                self._check_group(new_group)
            except (ValueError, TypeError, RuntimeError) as e:
                raise CheckpointError(f"loaded state dict's parameter group {i}: {e}") from None
            new_groups.append(new_group)
        saved_state = state_dict.get("state", {})
        if not isinstance(saved_state, dict):
            raise CheckpointError(f"loaded state dict's 'state' must be a dict, got {type(saved_state).__name__}")
        new_state = defaultdict(dict)
        for key, saved in saved_state.items():
            idx = _index(key, "'state'")
            if idx not in by_index:
                raise CheckpointError(f"loaded state dict has state for parameter index {idx}, which is in no parameter group")
            if not isinstance(saved, dict):
                raise CheckpointError(f"loaded state of parameter {idx} must be a dict, got {type(saved).__name__}")
            p = by_index[idx]
            new_state[p] = {name: _state_value(value, p, idx, name) for name, value in saved.items()}
        for group, new_group in zip(self.param_groups, new_groups):
            group.update(new_group)  # the same dict objects: schedulers holding them stay attached
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _index(key, where):
    """A parameter index from a state dict: an int, or the digits of one (files before int keys)."""
    if isinstance(key, str) and key.isdigit():
        return int(key)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and key >= 0:
        return int(key)
    raise CheckpointError(f"loaded state dict: {where} has parameter index {bounded(repr(key), 40)}, "
                          "expected an int >= 0")


def _state_value(value, p, idx, name):
    """One saved state entry as the optimizer keeps it: arrays of the parameter's shape and dtype
    (finite), counters as ints."""
    if isinstance(value, Tensor):
        value = value.array
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = value.item()  # a counter or a scalar saved as a 0-d array / tensor
    if isinstance(value, np.ndarray):
        if value.shape != p.array.shape:
            raise CheckpointError(
                f"loaded optimizer state {name!r} of parameter {idx} has shape {value.shape}, "
                f"the parameter has shape {p.array.shape}"
            )
        if value.dtype.kind not in "biuf" or not np.isfinite(value).all():
            raise CheckpointError(f"loaded optimizer state {name!r} of parameter {idx} is not a finite "
                                  f"numeric array (dtype {value.dtype})")
        return np.array(value, dtype=p.array.dtype, order="C", copy=True)
    if name == "step":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
            raise CheckpointError(f"loaded optimizer state 'step' of parameter {idx} must be an int >= 0, "
                                  f"got {bounded(repr(value), 40)}")
        return int(value)
    return value
