"""nanoframe: a NumPy deep-learning framework with hand-written backward passes."""
from nanoframe.autograd import enable_grad, is_grad_enabled, no_grad
from nanoframe.io import load, load_safetensors, save, save_safetensors
from nanoframe.parallel import get_num_threads, set_num_threads
from nanoframe.random import get_rng_state, manual_seed, set_rng_state
from nanoframe.tensor import (
    Tensor,
    arange,
    bool_,
    float16,
    float32,
    float64,
    full,
    int32,
    int64,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    uint8,
    zeros,
    zeros_like,
)
from nanoframe.ops.elementwise import (
    abs,
    clamp,
    clip,
    exp,
    log,
    masked_fill,
    maximum,
    minimum,
    relu,
    sigmoid,
    sqrt,
    tanh,
    where,
)
from nanoframe.ops.matmul import matmul
from nanoframe.ops.reduce import amax, amin, argmax, argmin, max, mean, min, std, sum, var
from nanoframe.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    concatenate,
    flatten,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
)

from nanoframe import functional, nn, optim  # noqa: E402  (after Tensor: they build on it)
from nanoframe import onnx, serialization, utils  # noqa: E402  torch.onnx, torch.serialization, torch.utils.data

__version__ = "0.1.0"
