"""Neural-network building blocks with PyTorch's names: `Module`, `Parameter`, containers, layers,
`init` and `utils` (clip_grad_norm_)."""
from nanoframe.nn import init, utils
from nanoframe.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    ReLU,
    RMSNorm,
    SiLU,
    Tanh,
)
from nanoframe.nn.module import IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, Sequential
from nanoframe.nn import functional  # noqa: E402  torch.nn.functional's path: the module nanoframe.functional
from nanoframe.nn import modules  # noqa: E402  torch.nn.modules' paths (nanoframe.nn.modules.linear.Linear...)

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "IncompatibleKeys",
    "Linear",
    "Embedding",
    "LayerNorm",
    "RMSNorm",
    "Dropout",
    "GELU",
    "ReLU",
    "SiLU",
    "Tanh",
    "Identity",
    "init",
    "utils",
    "functional",
    "modules",
]
