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
]
