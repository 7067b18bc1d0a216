"""torch.amp on a CPU that computes in float32: `autocast` and `GradScaler`.

Mixed precision does not exist in nanoframe (there is no float16/bfloat16 compute), so these
behave as a CPU-only torch where torch would do nothing, and refuse where torch would compute in
a lower precision:
- `autocast(device_type='cuda' | 'mps' | ...)` warns and is disabled, as torch without CUDA;
  `autocast('cpu', dtype=float32)` warns and is disabled, as torch; `autocast('cpu')` with
  bfloat16 (its default) or float16 raises one UnsupportedError; `enabled=False` is a no-op.
- `GradScaler('cuda', enabled=True)` warns and is disabled, as torch without CUDA (nanoGPT
  builds `torch.cuda.amp.GradScaler(enabled=dtype == 'float16')` on the CPU); disabled, every
  method passes through. `GradScaler('cpu')` really scales, as torch's CPU GradScaler does:
  `scale` multiplies the loss, `unscale_` divides the gradients and records whether any is
  non-finite, `step` skips the optimizer step on such a step, `update` backs the scale off or
  grows it every `growth_interval` clean steps.
"""
import contextlib
import warnings

import numpy as np

from nanoframe.dtypes import bfloat16, float16, float32, float64
from nanoframe.errors import UnsupportedError

_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hpu", "mtia", "maia", "xla", "ipu", "privateuseone")


class autocast(contextlib.ContextDecorator):
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context manager
    and decorator that never changes a dtype here (see the module docstring for when it refuses)."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
        self.device = device_type
        self.fast_dtype = (bfloat16 if device_type == "cpu" else float16) if dtype is None else dtype
        if enabled and device_type != "cpu":
            warnings.warn(f"{device_type.upper()} is not available. Disabling autocast.", stacklevel=2)
            enabled = False
        elif enabled and self.fast_dtype in (float32, float64):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.",
                          stacklevel=2)
            enabled = False
        elif enabled:
            raise UnsupportedError(
                f"autocast to {self.fast_dtype!r}: nanoframe computes on the CPU in float32 or float64 only; "
                f"run without autocast (contextlib.nullcontext()) or pass enabled=False")
        self._enabled = enabled

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def is_autocast_available(device_type):
    """True for the device types autocast accepts (it is disabled or refused there, see autocast)."""
    return device_type in _DEVICE_TYPES


_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


class GradScaler:
    """torch.amp.GradScaler(device='cuda', init_scale=2.**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True). Only device='cpu' can be enabled (see the module docstring)."""

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = str(device)
        if enabled and self._device != "cpu":
            warnings.warn(f"torch.{self._device}.amp.GradScaler is enabled, but {self._device.upper()} is not "
                          f"available.  Disabling.", stacklevel=2)
            enabled = False
        self._enabled = bool(enabled)
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError(f"The growth factor must be > 1.0, got {growth_factor}")
            if not backoff_factor < 1.0:
                raise ValueError(f"The backoff factor must be < 1.0, got {backoff_factor}")
        self._init_scale, self._growth_factor, self._backoff_factor = init_scale, growth_factor, backoff_factor
        self._growth_interval = int(growth_interval)
        self._scale = np.float32(init_scale)  # float32, as torch's scale tensor
        self._growth_tracker = 0
        self._per_optimizer = {}               # id(optimizer) -> {"stage": ..., "found_inf": bool}

    def is_enabled(self):
        return self._enabled

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})

    def scale(self, outputs):
        """outputs * scale (a Tensor, or each Tensor in a list/tuple/dict); outputs as is when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        return outputs * self._scale

    def unscale_(self, optimizer):
        """Divide this optimizer's gradients by the scale in place (once per step), and note
        whether any gradient is inf or NaN."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = np.float32(1.0 / np.float64(self._scale))  # reciprocal in float64, then float32 (torch)
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad_array
                if g is None:
                    continue
                g *= inv_scale
                found_inf = found_inf or not np.isfinite(g).all()
        state["found_inf"], state["stage"] = found_inf, _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless this step's gradients held an inf/NaN (then skipped, returns None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return result

    def update(self, new_scale=None):
        """Back the scale off after a step with inf/NaN gradients, grow it after `growth_interval`
        clean steps in a row; or set it to `new_scale`."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = np.float32(new_scale.item() if hasattr(new_scale, "item") else new_scale)
        else:
            if not self._per_optimizer:
                raise AssertionError("No inf checks were recorded prior to update.")
            if any(s["found_inf"] for s in self._per_optimizer.values()):
                self._scale = np.float32(self._scale * np.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = np.float32(self._scale * np.float32(self._growth_factor))
                    if np.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def get_scale(self):
        return float(self._scale) if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = int(new_interval)

    def state_dict(self):
        """torch's keys; {} when disabled (as torch)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._scale = np.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
