"""Activations: gelu (erf and tanh forms), silu, softmax, log_softmax; plus `erf` on ndarrays.

relu, tanh and sigmoid are primitives in nanoframe/ops/elementwise.py.
"""
import math
import warnings

import numpy as np

from nanoframe.autograd import Function
from nanoframe.dtypes import to_numpy
from nanoframe.ops.elementwise import cast
from nanoframe.parallel import parallel_blocks
from nanoframe.tensor import Tensor, as_array



def _check_float(op, x):
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: input must be a float array, got dtype {x.dtype} with shape {x.shape}")


def _check_dim(op, x, dim):
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"{op}: dim {dim} is out of range for input of shape {x.shape}")


# ---- erf without scipy ---------------------------------------------------------------------------
# float64: a vectorised port of fdlibm's s_erf.c (Sun, 1993; the code glibc, musl and Go use):
# five ranges of |x|, each a rational approximation with error below 1 ulp, so F.gelu matches
# torch's float64 gelu to ~1e-16 and float64 gradchecks/parity at rtol 1e-5 are meaningful.
# float32 (and float16, computed in float32): Eigen's / XLA's branch-free rational approximation
# x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf is +-1 in float32 beyond), a few float32 ulp,
# evaluated entirely in float32 (no float64 upcast) for speed.
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)
# Eigen's float32 erf: numerator odd (alpha_1..alpha_13), denominator even (beta_0..beta_8).
_ALPHA = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
          -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10)
_BETA = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
         -1.45660718464996e-05)


def _poly(z, coeffs):
    """sum_k coeffs[k] * z**k by Horner's rule, one temporary updated in place."""
    acc = np.full_like(z, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc *= z
        acc += c
    return acc


def _erf64(x):
    ax = np.abs(x)
    out = np.empty_like(x)
    r0 = ax < 0.84375                                  # erf(x) = x + x * P(x^2) / Q(x^2)
    if r0.any():
        v = x[r0]
        z = v * v
        out[r0] = v + v * (_poly(z, _PP) / _poly(z, _QQ))
    r1 = (ax >= 0.84375) & (ax < 1.25)                 # erf(|x|) = erx + P(s) / Q(s), s = |x| - 1
    if r1.any():
        s = ax[r1] - 1.0
        out[r1] = np.copysign(_ERX + _poly(s, _PA) / _poly(s, _QA), x[r1])
    r2 = (ax >= 1.25) & (ax < 6.0)                     # erf(|x|) = 1 - exp(-z^2 - 0.5625 + R/S) / |x|
    if r2.any():
        a = ax[r2]
        s = 1.0 / (a * a)
        small = a < 1.0 / 0.35
        rs = np.where(small, _poly(s, _RA) / _poly(s, _SA), _poly(s, _RB) / _poly(s, _SB))
        # z = |x| with the low 32 bits cleared, so exp(-z*z) is computed without rounding error
        z = (a.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
        r = np.exp(-z * z - 0.5625) * np.exp((z - a) * (z + a) + rs)
        out[r2] = np.copysign(1.0 - r / a, x[r2])
    r3 = ax >= 6.0                                     # erf(|x|) = 1 to double precision
    if r3.any():
        out[r3] = np.copysign(1.0, x[r3])
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


def _erf32(x):
    v = np.clip(x, -4.0, 4.0)                          # float32 stays float32 (Python-float bounds)
    z = v * v
    p = _poly(z, _ALPHA)
    p *= v
    p /= _poly(z, _BETA)
    return p


def erf(x):
    """The error function of a float ndarray (no scipy): fdlibm's in float64, Eigen's in float32."""
    x = np.asarray(x)
    if x.dtype == np.float64:
        return _erf64(x)
    if x.dtype == np.float32:
        return _erf32(x)
    return _erf32(x.astype(np.float32)).astype(x.dtype)


# ---- gelu ----------------------------------------------------------------------------------------
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


CHUNK = 65536  # elements per chunk of the elementwise chains: a few 256 KiB float32 blocks stay in L2


def in_chunks(n, dtype, scratch=2):
    """@in_chunks(n, dtype) above body(a, b, s1, s2): an elementwise chain over elements [0, n) in
    chunks [a, b) of at most CHUNK, shared out over nanoframe.parallel's threads; each thread
    allocates its `scratch` arrays once and gets them cut to the chunk's length."""
    def run(body):
        @parallel_blocks(n, CHUNK)
        def _(i, j):
            buffers = [np.empty(min(j - i, CHUNK), dtype) for _ in range(scratch)]
            for a in range(i, j, CHUNK):
                b = min(a + CHUNK, j)
                body(a, b, *(buf[: b - a] for buf in buffers))

    return run


def gelu_forward(x, approximate="none", with_grad=True):
    """The GELU kernel on an ndarray: (y, dy/dx), or (y, None) without with_grad (inference).

    The chain runs in blocks of CHUNK elements with two scratch arrays per thread, so it allocates
    nothing but its outputs, and the blocks are shared out over nanoframe.parallel's threads.
    """
    shape = x.shape
    x = x.reshape(-1)                                  # 1-D, so ufuncs return arrays even for 0-d x
    y = np.empty_like(x)
    dydx = np.empty_like(x) if with_grad else None
    chunk = _gelu_tanh_chunk if approximate == "tanh" else _gelu_erf_chunk

    @in_chunks(x.shape[0], x.dtype)
    def _(a, b, s1, s2):
        chunk(x[a:b], y[a:b], None if dydx is None else dydx[a:b], s1, s2)

    return y.reshape(shape), (None if dydx is None else dydx.reshape(shape))


class GELUOp(Function):
    """gelu(x) = x * Phi(x).

    approximate="none": Phi(x) = 0.5 * (1 + erf(x / sqrt(2))), dy/dx = Phi(x) + x exp(-x^2/2) / sqrt(2 pi).
    approximate="tanh": y = 0.5 x (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3),
        dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    The forward computes y and dy/dx together (gelu_forward) and saves only dy/dx: the backward is
    one multiply (gx = gy * dy/dx) instead of a second chain of a dozen passes, and the input x is
    no longer kept alive by this op (benchmarks/bench_ops.py, gelu rows).
    """

    @staticmethod
    def forward(ctx, x, *, approximate="none"):
        y, dydx = gelu_forward(x, approximate)
        ctx.save_for_backward(dydx)
        return y

    @staticmethod
    def backward(ctx, gy):
        (dydx,) = ctx.saved_tensors
        gy, flat = gy.reshape(-1), dydx.reshape(-1)
        gx = np.empty_like(flat)

        @parallel_blocks(gx.shape[0], CHUNK)
        def _(i, j):
            np.multiply(gy[i:j], flat[i:j], out=gx[i:j])

        return gx.reshape(dydx.shape)


def _gelu_tanh_chunk(x, y, dydx, s1, s2):
    """y = 0.5 x (1 + t) and dy/dx (unless dydx is None) for one chunk; s1, s2 are scratch."""
    np.multiply(x, x, out=s1)                          # x^2
    np.multiply(s1, _SQRT_2_PI * _GELU_C, out=s2)
    s2 += _SQRT_2_PI
    s2 *= x                                            # u = sqrt(2/pi) (x + c x^3)
    np.tanh(s2, out=s2)                                # t
    if dydx is None:
        s2 += 1.0
        s2 *= 0.5
        np.multiply(s2, x, out=y)                      # y = 0.5 (1 + t) x
        return
    np.multiply(s1, 1.5 * _SQRT_2_PI * _GELU_C, out=s1)
    s1 += 0.5 * _SQRT_2_PI                             # 0.5 du/dx = 0.5 sqrt(2/pi) (1 + 3 c x^2)
    np.multiply(s2, s2, out=dydx)
    np.subtract(1.0, dydx, out=dydx)                   # 1 - t^2
    dydx *= s1
    dydx *= x                                          # 0.5 x (1 - t^2) du/dx
    s2 *= 0.5
    s2 += 0.5                                          # 0.5 (1 + t)
    dydx += s2                                         # dy/dx
    np.multiply(s2, x, out=y)                          # y = 0.5 (1 + t) x


def _gelu_erf_chunk(x, y, dydx, s1, s2):
    """y = x Phi(x) and dy/dx = Phi(x) + x phi(x) for one chunk."""
    phi = erf(x * _SQRT1_2)
    phi += 1.0
    phi *= 0.5                                         # Phi(x), the normal CDF
    np.multiply(x, phi, out=y)
    if dydx is None:
        return
    np.multiply(x, x, out=s1)
    s1 *= -0.5
    np.exp(s1, out=s1)
    s1 *= _INV_SQRT_2PI                                # phi(x), the normal density
    s1 *= x
    np.add(s1, phi, out=dydx)


def gelu(x, approximate="none"):
    """PyTorch's F.gelu: approximate="none" (exact, via erf) or "tanh"."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    _check_float("gelu", as_array(x))
    return GELUOp.apply(x, approximate=approximate)


# ---- silu ----------------------------------------------------------------------------------------
class SiLUOp(Function):
    """silu(x) = x * sigmoid(x); sigmoid computed as 0.5 (1 + tanh(x/2)) (no exp overflow). Saves x, sigmoid."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        x = x.reshape(-1)                              # 1-D, so ufuncs return arrays even for 0-d x
        s = x * 0.5
        np.tanh(s, out=s)
        s += 1.0
        s *= 0.5                                       # sigmoid(x)
        ctx.save_for_backward(x, s)
        return (x * s).reshape(ctx.shape)

    @staticmethod
    def backward(ctx, gy):
        x, s = ctx.saved_tensors
        # dy/dx = s + x s (1 - s) = s (1 + x (1 - s))
        g = 1.0 - s
        g *= x
        g += 1.0
        g *= s
        g *= gy.reshape(-1)
        return g.reshape(ctx.shape)


def silu(x):
    """PyTorch's F.silu (swish): x * sigmoid(x)."""
    _check_float("silu", as_array(x))
    return SiLUOp.apply(x)


# ---- softmax / log_softmax -----------------------------------------------------------------------
def softmax_(x, axis=-1, empty_rows_zero=False):
    """The softmax kernel, in place on an ndarray the caller owns: x = exp(x - max) / sum(...) along
    axis; returns x. A slice that is all -inf gives NaN (torch's F.softmax), or 0 with
    empty_rows_zero (what torch's attention returns for a query whose keys are all masked).
    F.softmax, the attention ops, cached decoding and sampling all call this one function."""
    m = _row_maxes(x, axis)
    if empty_rows_zero:
        dead = np.isneginf(m)
        if dead.any():
            m[dead] = 0.0                              # exp(-inf - 0) = 0: no NaN from -inf - -inf
        else:
            dead = None
    with np.errstate(invalid="ignore"):
        x -= m
    np.exp(x, out=x)
    den = _row_sums(x, axis)
    if empty_rows_zero and dead is not None:
        den[dead] = 1.0                                # an all-zero row stays zero
    np.divide(1.0, den, out=den)
    x *= den
    return x


_GATHER_MIN_SIZE = 4096  # below this, take_along_axis's fixed cost outweighs its faster loop (decoding's rows)


def _row_maxes(x, axis):
    """x.max(axis=axis, keepdims=True), the same values (NaN included: argmax finds the first NaN);
    along the last axis as argmax and a gather, whose SIMD loop beats NumPy's max reduction on
    short rows such as attention's scores (benchmarks/bench_ops.py, softmax row)."""
    if axis not in (-1, x.ndim - 1) or x.ndim == 0 or x.shape[-1] == 0 or x.size < _GATHER_MIN_SIZE:
        return x.max(axis=axis, keepdims=True)
    return np.take_along_axis(x, x.argmax(axis=-1)[..., None], axis=-1)


def _row_sums(x, axis):
    """x.sum(axis=axis, keepdims=True); along the last axis of a float32/float64 array as a gemv
    with a ones vector, which beats NumPy's reduction on short rows such as attention's 64-256 keys
    (benchmarks/bench_ops.py, softmax row)."""
    if axis not in (-1, x.ndim - 1) or x.ndim == 0 or x.dtype not in (np.float32, np.float64):
        return x.sum(axis=axis, keepdims=True)
    return np.matmul(x, np.ones(x.shape[-1], dtype=x.dtype))[..., None]


def softmax_backward_(gy, y, axis=-1):
    """The softmax gradient, in place on gy (an array the caller owns): dx = y * (gy - sum(gy * y)).
    Masked entries have y = 0, so they get no gradient."""
    rowdot = np.einsum("...i,...i->...", gy, y)[..., None] if axis in (-1, y.ndim - 1) else \
        (gy * y).sum(axis=axis, keepdims=True)
    gy -= rowdot
    gy *= y
    return gy


class SoftmaxOp(Function):
    """y = exp(x - max) / sum(exp(x - max)) along dim (softmax_). Saves y.

    A slice that is all -inf gives NaN, as in torch.
    """

    @staticmethod
    def forward(ctx, x, *, dim=-1):
        y = softmax_(np.array(x, copy=True), axis=dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return softmax_backward_(np.array(gy, copy=True), y, axis=ctx.dim)


def _implicit_dim(op, ndim, dim):
    """torch's rule for a softmax called without dim: 0 for 0-, 1- and 3-D input, else 1, with
    torch's deprecation warning (never silently the last dim)."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to "
                  "include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _with_dtype(x, dtype):
    if dtype is None:
        return x
    return cast(x, to_numpy(dtype)) if isinstance(x, Tensor) else np.asarray(x, dtype=to_numpy(dtype))


def softmax(x, dim=None, dtype=None):
    """PyTorch's F.softmax(x, dim); without dim, torch's implicit choice and warning."""
    x = _with_dtype(x, dtype)
    xd = as_array(x)
    _check_float("softmax", xd)
    dim = _implicit_dim("softmax", xd.ndim, dim)
    _check_dim("softmax", xd, dim)
    return SoftmaxOp.apply(x, dim=dim)


class LogSoftmaxOp(Function):
    """y = x - max - log(sum(exp(x - max))) along dim. Saves y (the log-probabilities)."""

    @staticmethod
    def forward(ctx, x, *, dim=-1):
        with np.errstate(invalid="ignore", divide="ignore"):
            y = x - x.max(axis=dim, keepdims=True)    # shifted logits, owned
            e = np.exp(y)
            y -= np.log(e.sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        # dx = gy - softmax(x) * sum(gy, dim), softmax(x) = exp(y)
        g = np.exp(y)
        g *= gy.sum(axis=ctx.dim, keepdims=True)
        np.subtract(gy, g, out=g)
        return g


def log_softmax(x, dim=None, dtype=None):
    """PyTorch's F.log_softmax(x, dim); without dim, torch's implicit choice and warning."""
    x = _with_dtype(x, dtype)
    xd = as_array(x)
    _check_float("log_softmax", xd)
    dim = _implicit_dim("log_softmax", xd.ndim, dim)
    _check_dim("log_softmax", xd, dim)
    return LogSoftmaxOp.apply(x, dim=dim)
