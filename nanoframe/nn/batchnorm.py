"""BatchNorm1d / BatchNorm2d with torch's arguments, parameter and buffer names (so state dicts
match torch's: weight, bias, running_mean, running_var, num_batches_tracked) and torch's forward."""
import numpy as np

from nanoframe import functional as F
from nanoframe.errors import NanoframeError
from nanoframe.nn import init
from nanoframe.nn.layers import _float_dtype
from nanoframe.nn.module import Module, Parameter
from nanoframe.tensor import Tensor


class _BatchNorm(Module):
    """weight ones and bias zeros (affine), running_mean zeros, running_var ones, and the int64
    counter num_batches_tracked (track_running_stats). momentum=None averages the running stats
    cumulatively (factor 1 / num_batches_tracked), as torch."""

    _dims = ()                                          # input ndims this layer takes

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats, self.has_bias = affine, track_running_stats, affine and bias
        dtype = _float_dtype(dtype, device)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        x = input.array if isinstance(input, Tensor) else np.asarray(input)
        name = type(self).__name__
        if x.ndim not in self._dims:
            dims = " or ".join(f"{d}D" for d in self._dims)
            raise NanoframeError(f"{name}: expected {dims} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise NanoframeError(f"{name}: expected {self.num_features} channels (num_features) in dim 1, "
                                 f"got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.array += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.array)
        # batch statistics in training, and in eval too when there are no running statistics
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.has_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L) input."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W) input."""

    _dims = (4,)
