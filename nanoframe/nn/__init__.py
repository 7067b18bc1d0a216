"""Neural-network building blocks with PyTorch's names: `Module`, `Parameter`, containers, layers,
`init` and `utils` (clip_grad_norm_)."""
from nanoframe.nn import init, utils
from nanoframe.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ParameterList,
    ReLU,
    RMSNorm,
    SiLU,
    Softmax,
    Tanh,
    Unflatten,
)
from nanoframe.nn.batchnorm import BatchNorm1d, BatchNorm2d
from nanoframe.nn.conv import Conv1d, Conv2d
from nanoframe.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from nanoframe.nn.module import IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, Sequential
from nanoframe.nn.pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from nanoframe.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from nanoframe.nn.transformer import (
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from nanoframe.nn.lora import LoRALinear
from nanoframe.nn import functional  # noqa: E402  torch.nn.functional's path: the module nanoframe.functional
from nanoframe.nn import modules  # noqa: E402  torch.nn.modules' paths (nanoframe.nn.modules.linear.Linear...)
from nanoframe.nn import parallel  # noqa: E402  torch.nn.parallel's path (DDP; mpi4py is not imported)
from nanoframe.nn.parallel import DataParallel  # noqa: E402

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "ParameterList",
    "IncompatibleKeys",
    "Linear",
    "Embedding",
    "LayerNorm",
    "RMSNorm",
    "Dropout",
    "GELU",
    "ReLU",
    "LeakyReLU",
    "SiLU",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Identity",
    "Flatten",
    "Unflatten",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "RNNBase",
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerDecoderLayer",
    "TransformerDecoder",
    "Transformer",
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "LoRALinear",
    "DataParallel",
    "init",
    "utils",
    "functional",
    "modules",
]
