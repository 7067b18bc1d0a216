"""RNN, LSTM, GRU and their cells with torch's arguments, parameter names, init and output shapes.

Parameters per layer l and direction (suffix "_reverse" for the backward one), in torch's order:
weight_ih_l{l} (G, input), weight_hh_l{l} (G, H), bias_ih_l{l} (G,), bias_hh_l{l} (G,), with
G = 4H (LSTM: i, f, g, o), 3H (GRU: r, z, n) or H (RNN); all drawn from U(-1/sqrt(H), 1/sqrt(H)).
Each layer and direction is one input-projection GEMM (F.linear over all time steps) followed by
one fused sequence op from nanoframe/ops/rnn.py.
"""
import math

import numpy as np

from nanoframe import functional as F
from nanoframe.errors import NanoframeError
from nanoframe.nn import init
from nanoframe.nn.layers import _float_dtype
from nanoframe.nn.module import Module, Parameter
from nanoframe.nn.utils.rnn import PackedSequence, _check_packed, _grid
from nanoframe.ops import shape as shape_ops
from nanoframe.ops.rnn import GRULayerFunction, LSTMLayerFunction, RNNLayerFunction
from nanoframe.tensor import Tensor, as_array

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}



def _run_layer(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0=None, reverse=False, batch_sizes=None):
    """One layer, one direction over x (T, B, I): (outputs (T, B, H), h_n (B, H), c_n (B, H) or None).
    With batch_sizes (a packed batch, sorted by decreasing length) row b runs only its own steps."""
    t = x.shape[0]
    xp = F.linear(x, w_ih, b_ih)                       # (T, B, G): every step's input projection, one GEMM
    if mode == "LSTM":
        out = LSTMLayerFunction.apply(xp, w_hh, b_hh, h0, c0, reverse=reverse, batch_sizes=batch_sizes)
        y, c_n = out[:t], out[t]
    elif mode == "GRU":
        out, c_n = GRULayerFunction.apply(xp, w_hh, b_hh, h0, reverse=reverse, batch_sizes=batch_sizes), None
        y = out[:t]
    else:
        out, c_n = RNNLayerFunction.apply(xp, w_hh, b_hh, h0, reverse=reverse, batch_sizes=batch_sizes,
                                          nonlinearity="tanh" if mode == "RNN_TANH" else "relu"), None
        y = out[:t]
    if batch_sizes is not None:                        # the final states follow the outputs
        return y, out[out.shape[0] - 1], c_n
    return y, y[0] if reverse else y[t - 1], c_n


class RNNBase(Module):
    """Multi-layer, optionally bidirectional recurrent network; `mode` is "LSTM", "GRU",
    "RNN_TANH" or "RNN_RELU". Dropout (training only) applies to every layer's output but the last."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if not 0.0 <= dropout <= 1.0 or isinstance(dropout, bool):
            raise NanoframeError(f"{name}: dropout should be a number in range [0, 1], got {dropout}")
        if int(hidden_size) < 1 or int(num_layers) < 1:
            raise NanoframeError(f"{name}: hidden_size ({hidden_size}) and num_layers ({num_layers}) must be >= 1")
        if proj_size:
            raise NanoframeError(f"{name}: proj_size={proj_size} is not supported (only proj_size=0)")
        self.mode, self.input_size, self.hidden_size = mode, int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bool(bidirectional), 0
        dtype = _float_dtype(dtype, device)
        g = _GATES[mode] * self.hidden_size
        dirs = 2 if bidirectional else 1
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx, Parameter(np.empty((g, in_size), dtype=dtype)))
                setattr(self, "weight_hh" + sfx, Parameter(np.empty((g, self.hidden_size), dtype=dtype)))
                if bias:
                    setattr(self, "bias_ih" + sfx, Parameter(np.empty(g, dtype=dtype)))
                    setattr(self, "bias_hh" + sfx, Parameter(np.empty(g, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _layer_params(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        get = self._parameters.get
        return get("weight_ih" + sfx), get("weight_hh" + sfx), get("bias_ih" + sfx), get("bias_hh" + sfx)

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        name, is_lstm = type(self).__name__, self.mode == "LSTM"
        x = as_array(input)
        dtype = self._parameters["weight_ih_l0"].dtype
        if x.ndim not in (2, 3):
            raise NanoframeError(f"{name}: expected a 2-D (unbatched) or 3-D input, got shape {x.shape}")
        if x.shape[-1] != self.input_size or x.dtype != dtype:
            raise NanoframeError(f"{name}: input shape {x.shape} dtype {x.dtype} does not match input_size="
                                 f"{self.input_size} (the last dim) and the parameters' dtype {dtype}")
        batched = x.ndim == 3
        if not batched:
            input = shape_ops.unsqueeze(input, 1)     # (T, 1, I)
        elif self.batch_first:
            input = shape_ops.transpose(input, 0, 1)  # (B, T, I) -> (T, B, I)
        t, b = input.shape[0], input.shape[1]
        if t == 0:
            raise NanoframeError(f"{name}: expected a non-empty sequence, got input shape {x.shape}")
        dirs = 2 if self.bidirectional else 1
        h0, c0 = self._initial_state(hx, batched, b, dirs, dtype)
        output, h_n, c_n = self._layers(input, h0, c0)
        if not batched:
            output, h_n = shape_ops.squeeze(output, 1), shape_ops.squeeze(h_n, 1)
            c_n = shape_ops.squeeze(c_n, 1) if is_lstm else None
        elif self.batch_first:
            output = shape_ops.transpose(output, 0, 1)
        return (output, (h_n, c_n)) if is_lstm else (output, h_n)

    def _layers(self, input, h0, c0, batch_sizes=None):
        """Every layer and direction over input (T, B, I): (output (T, B, dirs H), h_n, c_n (L dirs, B, H))."""
        is_lstm, dirs = self.mode == "LSTM", 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                y, h_last, c_last = _run_layer(self.mode, input, *self._layer_params(layer, d), h0[k],
                                               c0[k] if is_lstm else None, reverse=bool(d), batch_sizes=batch_sizes)
                outs.append(y)
                h_n.append(h_last)
                c_n.append(c_last)
            input = outs[0] if dirs == 1 else shape_ops.cat(outs, dim=2)      # (T, B, dirs * H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                input = F.dropout(input, self.dropout, True)
        return input, shape_ops.stack(h_n, 0), (shape_ops.stack(c_n, 0) if is_lstm else None)

    def _forward_packed(self, packed, hx):
        """A PackedSequence in, a PackedSequence out (torch's contract): each sequence runs only its
        own steps, the reverse direction starting at its last one; h_n (and c_n) hold each sequence's
        final state, in the caller's order, and hx is read in that order too."""
        name, is_lstm = type(self).__name__, self.mode == "LSTM"
        bs, order, unsorted = _check_packed(packed, name)
        data, dtype = packed.data, self._parameters["weight_ih_l0"].dtype
        if data.dim() != 2 or data.shape[1] != self.input_size or data.dtype != dtype:
            raise NanoframeError(f"{name}: a PackedSequence's data must be (N, input_size={self.input_size}) of "
                                 f"dtype {np.dtype(dtype).name}, got shape {tuple(data.shape)} dtype {data.dtype}")
        t, b = len(bs), int(bs[0])
        where, flat = _grid(bs, t)                     # packed rows <-> the sorted (T, B) grid
        x = shape_ops.cat([data, data.new_zeros(1, self.input_size)])[where].reshape(t, b, self.input_size)
        dirs = 2 if self.bidirectional else 1
        h0, c0 = self._initial_state(hx, True, b, dirs, dtype)
        if order is not None and hx is not None:       # hx is in the caller's order: sort its rows
            h0 = h0[:, order]
            c0 = c0[:, order] if is_lstm else None
        output, h_n, c_n = self._layers(x, h0, c0, batch_sizes=bs)
        out_data = output.reshape(t * b, output.shape[2])[flat]        # (N, dirs H), packed order
        if unsorted is not None:
            h_n = h_n[:, unsorted]
            c_n = c_n[:, unsorted] if is_lstm else None
        out = packed._replace(data=out_data)
        return (out, (h_n, c_n)) if is_lstm else (out, h_n)

    def _initial_state(self, hx, batched, b, dirs, dtype):
        """(h0, c0), each (L * dirs, B, H) (c0 None unless LSTM); zeros when hx is None."""
        name, is_lstm = type(self).__name__, self.mode == "LSTM"
        shape = (self.num_layers * dirs, b, self.hidden_size)
        if hx is None:
            zeros = Tensor(np.zeros(shape, dtype=dtype))
            return zeros, (zeros if is_lstm else None)
        if is_lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise NanoframeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        states = list(hx) if is_lstm else [hx]
        want = shape if batched else (shape[0], shape[2])
        for i, s in enumerate(states):
            sd = as_array(s)
            if sd.shape != want or sd.dtype != dtype:
                label = ("h_0", "c_0")[i] if is_lstm else "hx"
                raise NanoframeError(f"{name}: expected {label} of shape {want} and dtype {np.dtype(dtype).name}, "
                                     f"got shape {sd.shape} dtype {sd.dtype}")
            if not batched:
                states[i] = shape_ops.unsqueeze(s, 1)
        return states[0], (states[1] if is_lstm else None)

    def flatten_parameters(self):
        """No-op: torch packs the weights into one buffer for cuDNN here; nanoframe uses them as they are."""

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (nonlinearity "tanh" or "relu")."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise NanoframeError(f"RNN: unknown nonlinearity {nonlinearity!r} (use 'tanh' or 'relu')")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; returns (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit; returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class RNNCellBase(Module):
    """One step: weight_ih (G, input), weight_hh (G, H), bias_ih, bias_hh, torch's names and init."""

    def __init__(self, mode, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, int(input_size), int(hidden_size), bool(bias)
        dtype = _float_dtype(dtype, device)
        g = _GATES[mode] * self.hidden_size
        self.weight_ih = Parameter(np.empty((g, self.input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((g, self.hidden_size), dtype=dtype))
        if bias:
            self.bias_ih = Parameter(np.empty(g, dtype=dtype))
            self.bias_hh = Parameter(np.empty(g, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def forward(self, input, hx=None):
        name, is_lstm = type(self).__name__, self.mode == "LSTM"
        x = as_array(input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size or x.dtype != self.weight_ih.dtype:
            raise NanoframeError(f"{name}: expected input (B, {self.input_size}) or ({self.input_size},) of dtype "
                                 f"{self.weight_ih.dtype}, got shape {x.shape} dtype {x.dtype}")
        batched = x.ndim == 2
        if not batched:
            input = shape_ops.unsqueeze(input, 0)
        b = input.shape[0]
        want = (b, self.hidden_size) if batched else (self.hidden_size,)
        if hx is None:
            zeros = Tensor(np.zeros((b, self.hidden_size), dtype=x.dtype))
            states = [zeros, zeros] if is_lstm else [zeros]
        else:
            if is_lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise NanoframeError(f"{name}: hx must be a tuple (h, c), got {type(hx).__name__}")
            states = list(hx) if is_lstm else [hx]
            for i, s in enumerate(states):
                if as_array(s).shape != want or as_array(s).dtype != x.dtype:
                    raise NanoframeError(f"{name}: expected hidden state of shape {want} and dtype {np.dtype(x.dtype).name}, "
                                         f"got shape {as_array(s).shape} dtype {as_array(s).dtype}")
                if not batched:
                    states[i] = shape_ops.unsqueeze(s, 0)
        seq = shape_ops.unsqueeze(input, 0)           # (1, B, I): a sequence of one step
        _, h, c = _run_layer(self.mode, seq, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                             states[0], states[1] if is_lstm else None)
        if not batched:
            h = shape_ops.squeeze(h, 0)
            c = shape_ops.squeeze(c, 0) if is_lstm else None
        return (h, c) if is_lstm else h

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise NanoframeError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (use 'tanh' or 'relu')")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """Returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
