"""`Optimizer`: the base class with PyTorch's param groups, zero_grad, step and state_dict.

`param_groups` is a list of dicts, each with a "params" list of Tensors plus that group's options
(lr, weight_decay, betas, ...; missing options are filled from the optimizer's defaults).
`state` maps each parameter Tensor to a dict of its buffers (ndarrays) and counters (ints); it is
filled lazily, on the first step in which the parameter has a gradient.

`state_dict()` follows torch's layout, parameters replaced by their index in the order of the
groups (0, 1, 2, ... across all groups):

    {"state": {"0": {"step": 3, "exp_avg": ndarray, ...}, ...},
     "param_groups": [{"lr": 1e-3, ..., "params": [0, 1, 2]}, ...]}

One difference from torch: the keys of "state" are the indices written as strings ("0", not 0),
because `nanoframe.io.save` (safetensors + JSON) only stores dicts with str keys; so
`nanoframe.save(opt.state_dict(), path)` works as is. Values are ndarrays (copies: a snapshot
that later steps do not change) and ints/floats. `load_state_dict` accepts int or str keys,
checks every array against its parameter's shape, and raises ValueError naming the parameter
index, the key and both shapes on a mismatch, before changing anything.
"""
import numpy as np

from nanoframe.autograd import enable_grad
from nanoframe.tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()  # default of an option every group must set


class Optimizer:
    """Base class: subclasses set their defaults and implement `_step_group(group)`."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}  # param Tensor -> dict (Tensor hashes by identity)
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
        """{"state": {"index": {name: ndarray copy | int | float}}, "param_groups": [options + "params": [index...]]}."""
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
                if p in self.state:
                    state[str(index[id(p)])] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore options and state saved by `state_dict()` into an optimizer over the same
        parameters (same groups, same order). Validates everything before changing anything."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has {len(self.param_groups)}"
            )
        by_index = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, "
                    f"the optimizer's has {len(group['params'])}"
                )
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_state = {}
        for key, saved in state_dict.get("state", {}).items():
            idx = int(key)
            if idx not in by_index:
                raise ValueError(f"loaded state dict has state for parameter index {idx}, which is in no parameter group")
            p = by_index[idx]
            entry = {}
            for name, value in saved.items():
                if isinstance(value, Tensor):
                    value = value.array
                if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
                    value = value.item()  # a counter or a scalar saved as a 0-d array
                if isinstance(value, np.ndarray):
                    if value.shape != p.array.shape:
                        raise ValueError(
                            f"loaded optimizer state {name!r} of parameter {idx} has shape {value.shape}, "
                            f"the parameter has shape {p.array.shape}"
                        )
                    value = np.array(value, dtype=p.array.dtype, order="C", copy=True)
                elif name == "step":
                    value = int(value)
                entry[name] = value
            new_state[p] = entry
        for group, saved in zip(self.param_groups, saved_groups):
            options = {k: v for k, v in saved.items() if k != "params"}
            if isinstance(options.get("betas"), list):
                options["betas"] = tuple(options["betas"])
            group.update(options)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
