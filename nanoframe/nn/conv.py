"""Conv1d and Conv2d with torch's arguments, parameter names, init and repr."""
import math

import numpy as np

from nanoframe import functional as F
from nanoframe.errors import NanoframeError
from nanoframe.nn import init
from nanoframe.nn.layers import _float_dtype
from nanoframe.nn.module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared by Conv1d / Conv2d: weight (out, in / groups, *kernel), bias (out,).

    Init as torch: weight kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in / groups * prod(kernel).
    padding_mode other than "zeros" pads with F.pad first, then convolves without padding.
    """

    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._nd
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise NanoframeError(f"{name}: in_channels={in_channels} and out_channels={out_channels} must be "
                                 f"divisible by groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise NanoframeError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride, self.dilation = _ntuple(stride, n), _ntuple(dilation, n)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise NanoframeError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise NanoframeError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n)
        self.padding_mode = padding_mode
        dtype = _float_dtype(dtype, device)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size,
                                         dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * int(np.prod(self.kernel_size))
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _pad_pairs(self):
        """F.pad's tuple (last dim first) for padding_mode != "zeros": torch's
        _reversed_padding_repeated_twice, with "same" split as (total // 2, the rest)."""
        if self.padding == "valid":
            return (0, 0) * self._nd
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            pairs = [(t // 2, t - t // 2) for t in totals]
        else:
            pairs = [(p, p) for p in self.padding]
        return tuple(v for pair in reversed(pairs) for v in pair)

    def forward(self, input):
        conv = F.conv2d if self._nd == 2 else F.conv1d
        if self.padding_mode != "zeros":
            return conv(F.pad(input, self._pad_pairs(), mode=self.padding_mode), self.weight, self.bias,
                        self.stride, 0, self.dilation, self.groups)
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _ntuple(v, n):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * n


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) (or (C_in, L)) -> (N, C_out, L_out)."""

    _nd = 1


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) (or (C_in, H, W)) -> (N, C_out, H_out, W_out)."""

    _nd = 2
