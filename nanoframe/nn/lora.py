"""LoRA: low-rank adapters on a model's Linear layers (Hu et al. 2021, as Hugging Face peft does it).

    y = base(x) + dropout(x) @ A^T @ B^T * (alpha / r)        A (r, in), B (out, r)

A starts kaiming-uniform (a=sqrt(5), peft's default), B at zero, so a fresh adapter leaves the
model's output unchanged. `LoRALinear` keeps the wrapped Linear's own `weight` and `bias`
Parameters under the same names (frozen), so a model with adapters has the base model's state
dict plus `<layer>.lora_A` / `<layer>.lora_B` entries, e.g. `transformer.h.0.attn.c_attn.lora_A` or
`transformer.h.0.attn.q_proj.lora_A` (a Llama-style model: LoRA on q_proj, v_proj, ... one by one).

    apply_lora(model, targets=DEFAULT_LORA_TARGETS, r=8, alpha=16, dropout=0.0)   freeze all, add adapters
    lora_state_dict(model)          only the adapter tensors
    merge_lora(model)               fold B @ A * alpha/r into the weights, back to plain Linear

Adapter files (save_adapter / load_adapter) live in nanoframe.training.lora.
"""
import math

import numpy as np

import nanoframe.functional as F
from nanoframe.autograd import no_grad
from nanoframe.errors import ConfigError, bounded
from nanoframe.nn.init import kaiming_uniform_
from nanoframe.nn.layers import Dropout, Identity, Linear
from nanoframe.autograd import arrays_in_layers
from nanoframe.nn.module import Module, Parameter
from nanoframe.ops.linear import linear_forward
from nanoframe.schema import check

# Every Linear of GPT's blocks, under both layouts' names (models/gpt.py): GPT-2's packed c_attn,
# c_proj and c_fc, and Llama's q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. A model
# has one set or the other (or both, mixed), so the default adapts every block Linear it has.
DEFAULT_LORA_TARGETS = ("c_attn", "c_proj", "c_fc", "q_proj", "k_proj", "v_proj", "o_proj",
                        "gate_proj", "up_proj", "down_proj")


class LoRALinear(Module):
    """A Linear with a trainable low-rank update; the base weight and bias stay frozen."""

    def __init__(self, base, r=8, alpha=16, dropout=0.0):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        r = int(r)
        if r <= 0:
            raise ValueError(f"LoRA rank r must be a positive int, got {r}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.r, self.alpha = r, float(alpha)
        self.scaling = self.alpha / r
        self.weight = base.weight          # the same Parameter objects: names and arrays unchanged
        self.weight.requires_grad_(False)
        if base.bias is not None:
            self.bias = base.bias
            self.bias.requires_grad_(False)
        else:
            self.register_parameter("bias", None)
        dtype = base.weight.array.dtype
        self.lora_A = Parameter(np.empty((r, self.in_features), dtype=dtype))   # (r, in)
        self.lora_B = Parameter(np.zeros((self.out_features, r), dtype=dtype))  # (out, r)
        kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = Dropout(dropout) if dropout > 0 else Identity()

    def forward(self, x):
        if arrays_in_layers(x):                        # array inference (no dropout): the kernels
            y = linear_forward(x, self.weight.array, None if self.bias is None else self.bias.array)
            h = linear_forward(linear_forward(x, self.lora_A.array), self.lora_B.array)
            return y + h * np.asarray(self.scaling, dtype=y.dtype)
        y = F.linear(x, self.weight, self.bias)                                   # (..., out)
        h = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)    # (..., r) -> (..., out)
        return y + h * self.scaling

    def delta_weight(self):
        """B @ A * alpha/r as an (out, in) array."""
        return (self.lora_B.array @ self.lora_A.array) * np.asarray(self.scaling, dtype=self.lora_A.array.dtype)

    def merged_linear(self):
        """A plain Linear holding W + B A alpha/r (new arrays; this module is unchanged)."""
        lin = Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        dtype=self.weight.array.dtype)
        with no_grad():
            lin.weight.array[...] = self.weight.array + self.delta_weight()
            if self.bias is not None:
                lin.bias.array[...] = self.bias.array
        return lin

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha:g}, bias={self.bias is not None}")


def matches(name, targets):
    """A dotted module name matches a target when it ends with it at a dot ("c_proj" matches
    transformer.h.0.attn.c_proj and .mlp.c_proj; "mlp.c_proj" only the latter)."""
    return any(name == t or name.endswith("." + t) for t in targets)


def lora_config(targets=DEFAULT_LORA_TARGETS, r=8, alpha=16, dropout=0.0):
    """The validated, JSON-able config dict stored in state.json and adapter metadata.

    targets: layer names (a list, or a comma-separated string); r: a rank in 1..4096; alpha: a
    finite number; dropout: in [0, 1). Anything else raises ConfigError naming the field."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(f"LoRA targets must be a non-empty list of layer names, got {bounded(repr(targets), 80)}")
    return {"targets": list(targets), "r": check(r, "LoRA r", int, low=1, high=4096),
            "alpha": check(alpha, "LoRA alpha", float), "dropout": check(dropout, "LoRA dropout", float, low=0.0, high=0.999999)}


def apply_lora(model, targets=DEFAULT_LORA_TARGETS, r=8, alpha=16, dropout=0.0):
    """Freeze every parameter of `model` and wrap each Linear whose name matches `targets` in a
    LoRALinear (in place). Returns the list of wrapped module names; ValueError when none match."""
    cfg = lora_config(targets, r, alpha, dropout)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("apply_lora: the model already has LoRA adapters")
    model.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, Linear) and name and matches(name, cfg["targets"]):
            if any(p is module.weight for n, p in model.named_parameters(remove_duplicate=False)
                   if not n.startswith(name + ".")):
                raise ConfigError(f"apply_lora: {name}'s weight is shared with another layer (tied to the token "
                                  "embedding); an adapter on it cannot be merged back: leave it out of the targets")
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            parent.add_module(child, LoRALinear(module, cfg["r"], cfg["alpha"], cfg["dropout"]))
            wrapped.append(name)
    if not wrapped:
        linears = sorted({n.rpartition(".")[2] for n, m in model.named_modules() if isinstance(m, Linear) and n})
        raise ConfigError(f"apply_lora: no Linear layer matches targets {cfg['targets']}; "
                         f"Linear layers are named {linears}")
    model.train(model.training)  # new submodules follow the model's mode
    return wrapped


def lora_config_of(model):
    """The LoRA config of a model's adapters (all LoRALinear layers share one), or None."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    if not layers:
        return None
    first = next(iter(layers.values()))
    targets = sorted({name.rpartition(".")[2] for name in layers})
    return lora_config(targets, first.r, first.alpha, getattr(first.lora_dropout, "p", 0.0))


def lora_state_dict(model):
    """name -> array of the adapter tensors only (…lora_A, …lora_B)."""
    return {name: np.asarray(p.array) for name, p in model.named_parameters()
            if name.endswith((".lora_A", ".lora_B"))}


def merge_lora(model):
    """Replace every LoRALinear by a plain Linear with the update folded in (in place); returns model.

    The merged weights are trainable again (requires_grad True), as a plain model's are.
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            model.get_submodule(parent_name).add_module(child, module.merged_linear())
    model.requires_grad_(True)
    model.train(model.training)
    return model
