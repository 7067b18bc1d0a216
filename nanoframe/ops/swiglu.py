"""swiglu: silu(gate) * up, the gated MLP activation of Llama (Shazeer 2020, "GLU variants").

    y = silu(g) u = g s u,   s = sigmoid(g)
    dy/du = silu(g) = g s
    dy/dg = u dsilu(g),  dsilu(g) = s + g s (1 - s) = s + silu(g) (1 - s)

The forward computes y and both partial derivatives in one pass over cache-sized blocks and saves
only the two derivatives, so the backward is two multiplies (one gradient pass) and the inputs g
and u are not kept alive by this op: the same design as GELUOp (ops/activation.py). The sigmoid is
1 / (1 + exp(-g)), which keeps its relative precision for negative g (as torch's): the form
(1 + tanh(g/2)) / 2 loses it to cancellation (10% at g = -15 in float32).
"""
import numpy as np

from nanoframe.autograd import Function
from nanoframe.ops.activation import CHUNK, in_chunks
from nanoframe.parallel import parallel_blocks
from nanoframe.tensor import as_array


def swiglu_forward(gate, up, with_grad=True):
    """The SwiGLU kernel on ndarrays of one shape: (y, dy/dup, dy/dgate), or (y, None, None)
    without with_grad (inference). Blocks of CHUNK elements with two scratch arrays per thread,
    shared out over nanoframe.parallel's threads."""
    shape = gate.shape
    g, u = gate.reshape(-1), up.reshape(-1)            # 1-D, so ufuncs return arrays even for 0-d
    y = np.empty_like(g)
    d_up = np.empty_like(g) if with_grad else None
    d_gate = np.empty_like(g) if with_grad else None

    @in_chunks(g.shape[0], g.dtype)
    def _(a, b, sa, ta):
        ga, ua = g[a:b], u[a:b]
        np.negative(ga, out=sa)
        with np.errstate(over="ignore", under="ignore"):   # exp(-g) = inf (g < -88, float32): s = 0, exact
            np.exp(sa, out=sa)
        sa += 1.0
        np.divide(1.0, sa, out=sa)                     # s = sigmoid(g) = 1 / (1 + exp(-g))
        silu = d_up[a:b] if with_grad else ta
        np.multiply(ga, sa, out=silu)                  # silu(g) = dy/du
        np.multiply(silu, ua, out=y[a:b])              # y = silu(g) u
        if with_grad:
            np.subtract(1.0, sa, out=ta)
            ta *= silu
            ta += sa                                   # dsilu(g) = s + silu(g) (1 - s)
            np.multiply(ta, ua, out=d_gate[a:b])       # dy/dg = u dsilu(g)

    if not with_grad:
        return y.reshape(shape), None, None
    return y.reshape(shape), d_up.reshape(shape), d_gate.reshape(shape)


class SwiGLUOp(Function):
    """gate, up (...,) of one shape -> silu(gate) * up. Saves dy/dup and dy/dgate (swiglu_forward)."""

    @staticmethod
    def forward(ctx, gate, up):
        y, d_up, d_gate = swiglu_forward(gate, up)
        ctx.save_for_backward(d_gate, d_up)
        return y

    @staticmethod
    def backward(ctx, gy):
        d_gate, d_up = ctx.saved_tensors
        need_gate, need_up = ctx.needs_input_grad
        flat = gy.reshape(-1)
        g_gate = np.empty_like(d_gate) if need_gate else None
        g_up = np.empty_like(d_up) if need_up else None
        fg, fu, dg, du = (None if a is None else a.reshape(-1) for a in (g_gate, g_up, d_gate, d_up))

        @parallel_blocks(flat.shape[0], CHUNK)
        def _(i, j):
            if need_gate:
                np.multiply(flat[i:j], dg[i:j], out=fg[i:j])
            if need_up:
                np.multiply(flat[i:j], du[i:j], out=fu[i:j])

        return g_gate, g_up


def swiglu(gate, up):
    """silu(gate) * up in one fused op (Llama's MLP: down_proj(swiglu(gate_proj(x), up_proj(x))))."""
    g, u = as_array(gate), as_array(up)
    if g.dtype.kind != "f" or g.dtype != u.dtype or g.shape != u.shape:
        raise ValueError(f"swiglu: gate and up must be float arrays of one shape and dtype, got "
                         f"{g.dtype} {g.shape} and {u.dtype} {u.shape}")
    return SwiGLUOp.apply(gate, up)
