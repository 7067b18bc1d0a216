"""nanoframe: a NumPy deep-learning framework with hand-written backward passes."""
from nanoframe.autograd import enable_grad, is_grad_enabled, no_grad
from nanoframe.io import load_safetensors, save_safetensors
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

# ---- torch's Tensor API beyond the core (devices, dtypes, grad modes, more ops and factories) ----
from nanoframe.autograd import inference_mode, is_inference_mode_enabled, set_grad_enabled
from nanoframe.device import device
from nanoframe.dtypes import (
    bfloat16,
    dtype,
    get_default_dtype,
    int8,
    int16,
    promote_types,
    set_default_dtype,
    uint16,
    uint32,
    uint64,
)
from nanoframe.factories import (
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full_like,
    linspace,
    logspace,
    multinomial,
    rand_like,
    randint_like,
    randn_like,
    randperm,
)
from nanoframe.random import Generator, initial_seed, seed
from nanoframe.tensor import Size, is_floating_point, is_tensor, numel
from nanoframe.tensor_types import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
)
from nanoframe.ops.activation import log_softmax, softmax
from nanoframe.ops.einsum import einsum
from nanoframe.ops.elementwise import add, addcdiv, addcmul, div, floor_divide, lerp, mul, neg, pow, remainder, sub
from nanoframe.ops.indexing import gather, index_select, nonzero, scatter, scatter_add
from nanoframe.ops.logical import (
    allclose,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    eq,
    equal,
    ge,
    gt,
    isclose,
    isfinite,
    isinf,
    isnan,
    le,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    ne,
)
from nanoframe.ops.matmul import bmm, dot, mm, mv, outer
from nanoframe.ops.rearrange import diag, flip, repeat_interleave, roll, tril, triu
from nanoframe.ops.reduce import all, any, logsumexp, norm, prod
from nanoframe.ops.scan import cumprod, cumsum
from nanoframe.ops.shape import hstack, narrow, unbind, vstack
from nanoframe.ops.sort import argsort, sort, topk
from nanoframe.ops.unary import (
    ceil,
    cos,
    expm1,
    floor,
    log1p,
    log2,
    log10,
    reciprocal,
    round,
    rsqrt,
    sign,
    sin,
    square,
    trunc,
)

# torch's dtype aliases (`nanoframe.long` also stops Python suggesting `log` for a typo)
float, double, half = float32, float64, float16  # noqa: A001  (torch's names shadow builtins here)
long, int, short = int64, int32, int16  # noqa: A001
bool = bool_  # noqa: A001


from nanoframe import accelerator, backends, cuda  # noqa: E402
from nanoframe import amp, compiler  # noqa: E402  torch.amp (autocast, GradScaler), torch.compiler
from nanoframe.amp import autocast  # noqa: E402
from nanoframe.compiler import compile  # noqa: E402,A001  (torch.compile shadows the builtin here)
from nanoframe import functional, nn, optim  # noqa: E402  (after Tensor: they build on it)
from nanoframe import onnx, serialization, utils  # noqa: E402  torch.onnx, torch.serialization, torch.utils.data
from nanoframe.serialization import load, save  # noqa: E402  torch.save / torch.load

__version__ = "0.1.0"
