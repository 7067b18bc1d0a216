"""Elementwise ops: arithmetic, exp/log/sqrt/abs, tanh/sigmoid/relu, maximum/minimum, clip, where.

Binary ops broadcast like numpy; `unbroadcast` sums each gradient back to its input's shape.
The result dtype is torch's (`nanoframe.dtypes.result_type`): Python scalars take the tensor's
dtype within its category (`x * 0.5` stays float32), an integer tensor with a Python float gives
the default float dtype, true division of integers gives floats, and exp/log/... of an integer
tensor are computed in the default float dtype.

Results are IEEE's, silently, as torch's: log(0) = -inf, 1/0 = inf, sqrt(-1) = nan, exp(1000) = inf.
The forwards that make inf/nan out of finite inputs run under `ieee()` (NumPy would warn); the
backward engine runs every backward under it once per backward() call (nanoframe.autograd).
"""
import numpy as np

from nanoframe.autograd import Function, unbroadcast
from nanoframe.dtypes import default_float, result_type
from nanoframe.tensor import Tensor, _to_array


def ieee():
    """np.errstate that lets divide-by-zero, invalid and overflow give inf/nan without a warning
    (local to the op: the user's own NumPy settings are untouched)."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _operands(a, b):
    """Both operands in torch's result dtype. A Tensor is cast (differentiably) only when its dtype
    differs; numbers and lists become constant arrays."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.array.dtype == b.array.dtype:
        return a, b
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("expected at least one Tensor operand")
    a, b = _arrayish(a), _arrayish(b)
    dtype = result_type(a, b)
    return _as_dtype(a, dtype), _as_dtype(b, dtype)


def _arrayish(x):
    """Lists become arrays with a tensor's defaults (Python floats -> the default float dtype)."""
    return _to_array(x) if isinstance(x, (list, tuple)) else x


def _as_dtype(x, dtype):
    if isinstance(x, Tensor):
        return x if x.array.dtype == dtype else cast(x, dtype)
    return np.asarray(x, dtype=dtype)


def _floating(x):
    """An integer or bool tensor in the default float dtype (torch's exp(int) is float)."""
    if isinstance(x, Tensor) and x.array.dtype.kind != "f":
        return Tensor._make(x.array.astype(default_float()), False)
    return x


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a + b

    @staticmethod
    def backward(ctx, gy):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy, ctx.shapes[0]) if na else None,
                unbroadcast(gy, ctx.shapes[1]) if nb else None)


def _scaled(b, alpha, a):
    """alpha * b for add/sub's `alpha=` (torch refuses a float alpha with integer tensors)."""
    if alpha == 1:
        return b
    b = _arrayish(b)
    if isinstance(alpha, float) and not any(isinstance(t, Tensor) and t.array.dtype.kind == "f" for t in (a, b)):
        raise TypeError("For integral input tensors, argument alpha must not be a floating point number.")
    return mul(b, alpha) if isinstance(b, Tensor) else np.multiply(b, alpha)


def add(a, b, *, alpha=1):
    """a + alpha * b (torch.add)."""
    return Add.apply(*_operands(a, _scaled(b, alpha, a)))


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, gy):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy, ctx.shapes[0]) if na else None,
                unbroadcast(-gy, ctx.shapes[1]) if nb else None)


def sub(a, b, *, alpha=1):
    """a - alpha * b (torch.sub; refused for bool tensors, as torch)."""
    if any(isinstance(t, (bool, np.bool_)) or (isinstance(t, Tensor) and t.array.dtype == np.bool_) for t in (a, b)):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return Sub.apply(*_operands(a, _scaled(b, alpha, a)))


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(a if nb else None, b if na else None)  # only what a gradient needs, as torch
        ctx.shapes = (np.shape(a), np.shape(b))
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy * b, ctx.shapes[0]) if na else None,
                unbroadcast(gy * a, ctx.shapes[1]) if nb else None)


def mul(a, b):
    return Mul.apply(*_operands(a, b))


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)  # as torch: not the output
        ctx.shapes = (np.shape(a), np.shape(b))
        with ieee():
            return a / b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(gy / b, ctx.shapes[0]) if na else None
        gb = unbroadcast(-gy * (a / b) / b, ctx.shapes[1]) if nb else None  # d(a/b)/db = -a/b^2
        return ga, gb


class Rounded(Function):
    """A piecewise-constant op (floor division, floor, round, sign...): its gradient is 0, as torch's."""

    @staticmethod
    def forward(ctx, *arrays, ufunc):
        ctx.shapes = [np.shape(a) for a in arrays]
        with ieee():  # float floor division by 0
            return ufunc(*arrays)

    @staticmethod
    def backward(ctx, gy):
        return tuple(np.zeros(s, gy.dtype) if n else None for s, n in zip(ctx.shapes, ctx.needs_input_grad))


def _trunc_divide(a, b):
    return np.trunc(a / b) if np.result_type(a, b).kind == "f" else _int_trunc_divide(a, b)


def _int_trunc_divide(a, b):
    q = np.floor_divide(a, b)
    return q + ((q < 0) & (q * b != a))  # floor -> toward zero where the quotient is negative and inexact


def div(a, b, *, rounding_mode=None):
    """torch.div: true division (integers give the default float dtype), or rounded with
    rounding_mode='trunc' / 'floor' (keeping integer dtypes; gradient 0)."""
    a, b = _operands(a, b)
    if rounding_mode is None:
        if np.result_type(_dt(a), _dt(b)).kind != "f":
            a, b = _as_dtype(a, default_float()), _as_dtype(b, default_float())
        return Div.apply(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    _no_bool_arithmetic("div with rounding_mode", a)
    if np.result_type(_dt(a), _dt(b)).kind != "f" and np.any(_arr(b) == 0):
        raise ZeroDivisionError("integer division by zero")
    return Rounded.apply(a, b, ufunc=np.floor_divide if rounding_mode == "floor" else _trunc_divide)


def _arr(x):
    return x.array if isinstance(x, Tensor) else x


def _no_bool_arithmetic(op, a):
    """torch has no rounded division, remainder or power of bools (NumPy would give int8)."""
    if _dt(a) == np.bool_:
        raise NotImplementedError(f"{op} is not implemented for bool tensors")


def _dt(x):
    return _arr(x).dtype


def floor_divide(a, b):
    """a // b rounded toward -inf (torch.floor_divide)."""
    return div(a, b, rounding_mode="floor")


class Remainder(Function):
    """a - floor(a / b) * b, the sign of b (Python's %, torch.remainder)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[1] else None)
        ctx.shapes = (np.shape(a), np.shape(b))
        with ieee():
            return np.remainder(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(gy, ctx.shapes[0]) if na else None,
                unbroadcast(-gy * np.floor_divide(a, b), ctx.shapes[1]) if nb else None)


def remainder(a, b):
    a, b = _operands(a, b)
    _no_bool_arithmetic("remainder", a)
    if np.result_type(_dt(a), _dt(b)).kind != "f" and np.any(_arr(b) == 0):
        raise ZeroDivisionError("integer modulo by zero")
    return Remainder.apply(a, b)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        with ieee():
            y = a ** b
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(a, b, y if nb else None)  # the output only for the exponent's gradient
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:  # d(a^b)/da = b a^(b-1); written without a^(b-1)/a so a = 0 works
            ga = unbroadcast(gy * b * a ** (b - 1), np.shape(a))
        if nb:  # d(a^b)/db = a^b log a
            gb = unbroadcast(gy * y * np.log(a), np.shape(b))
        return ga, gb


def pow(a, b):
    """a ** b. Integers to a negative Python-int power are refused (as torch); a negative integer
    exponent tensor gives torch's integer results (1, -1 or 0)."""
    exponent_is_tensor = isinstance(b, Tensor)
    a, b = _operands(a, b)
    _no_bool_arithmetic("pow", a)
    if _dt(a).kind in "iu" and np.any(_arr(b) < 0):
        if not exponent_is_tensor:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        base, exp = np.broadcast_arrays(_arr(a), _arr(b))
        out = np.where(exp < 0, np.where(base == 1, 1, np.where(base == -1, 1 - 2 * (exp % 2), 0)),
                       np.power(base, np.maximum(exp, 0)))
        return Tensor._make(out.astype(_dt(a)), False)
    return Pow.apply(a, b)


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, gy):
        return -gy


def neg(x):
    return Neg.apply(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        with ieee():
            y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


def exp(x):
    return Exp.apply(_floating(x))


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with ieee():
            return np.log(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / x


def log(x):
    return Log.apply(_floating(x))


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        with ieee():
            y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


def sqrt(x):
    return Sqrt.apply(_floating(x))


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * np.sign(x)  # 0 at x = 0, as in PyTorch


def abs(x):
    return Abs.apply(x)


class TanhOp(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (1 - y * y)


def tanh(x):
    return TanhOp.apply(_floating(x))


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = 0.5 * (1 + np.tanh(0.5 * x))  # = 1/(1+exp(-x)) without overflow
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y * (1 - y)


def sigmoid(x):
    return Sigmoid.apply(_floating(x))


class ReLUOp(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (y > 0)


def relu(x):
    return ReLUOp.apply(x)


class Maximum(Function):
    """maximum(a, b); at ties each input gets half the gradient, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        share_a = (a > b) + 0.5 * (a == b)
        return _split_grad(ctx, gy, share_a.astype(gy.dtype), np.shape(a), np.shape(b))


class Minimum(Function):
    """minimum(a, b); at ties each input gets half the gradient, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        share_a = (a < b) + 0.5 * (a == b)
        return _split_grad(ctx, gy, share_a.astype(gy.dtype), np.shape(a), np.shape(b))


def _split_grad(ctx, gy, share_a, shape_a, shape_b):
    na, nb = ctx.needs_input_grad
    return (unbroadcast(gy * share_a, shape_a) if na else None,
            unbroadcast(gy * (1 - share_a), shape_b) if nb else None)


def maximum(a, b):
    return Maximum.apply(*_operands(a, b))


def minimum(a, b):
    return Minimum.apply(*_operands(a, b))


class Clip(Function):
    @staticmethod
    def forward(ctx, x, *, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        inside = np.ones(x.shape, dtype=bool)  # gradient passes where lo <= x <= hi, as in PyTorch
        if ctx.lo is not None:
            inside &= x >= ctx.lo
        if ctx.hi is not None:
            inside &= x <= ctx.hi
        return gy * inside


def clip(x, min=None, max=None):
    """torch.clamp: bounds are numbers or tensors (broadcast; not differentiated). The result dtype
    is torch's: an integer tensor clamped with a float bound becomes float."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    bounds = [b for b in (min, max) if b is not None]
    for b in bounds:
        if isinstance(b, Tensor) and b.requires_grad:
            raise ValueError("clamp: min/max tensors that require grad are not supported; "
                             "use maximum()/minimum() to differentiate through the bounds")
    dtype = result_type(x, *(b.array if isinstance(b, Tensor) else b for b in bounds))
    lo, hi = (None if b is None else np.asarray(b.array if isinstance(b, Tensor) else b, dtype=dtype)
              for b in (min, max))
    return Clip.apply(_as_dtype(x, dtype), lo=lo, hi=hi)


clamp = clip


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        _, na, nb = ctx.needs_input_grad
        zero = np.zeros((), dtype=gy.dtype)
        return (None,
                unbroadcast(np.where(ctx.cond, gy, zero), ctx.shapes[0]) if na else None,
                unbroadcast(np.where(ctx.cond, zero, gy), ctx.shapes[1]) if nb else None)


def _bool_mask(op, mask):
    """A bool ndarray from a bool Tensor/array (torch refuses other dtypes as masks)."""
    m = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{op}: expected a bool mask/condition, got dtype {m.dtype}")
    return m


def where(condition, a=None, b=None):
    """Elementwise `a if condition else b` (condition is not differentiated); `where(condition)`
    alone is `condition.nonzero(as_tuple=True)`."""
    cond = _bool_mask("where", condition)
    if a is None and b is None:
        return tuple(Tensor._make(i, False) for i in np.nonzero(cond))
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor._make(np.asarray(a, dtype=result_type(a, b)), False)
    a, b = _operands(a, b)
    return Where.apply(cond, a, b)


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to {x.shape}")
        ctx.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, gy):
        nx, _, nv = ctx.needs_input_grad
        zero = np.zeros((), dtype=gy.dtype)
        gx = np.where(ctx.mask, zero, gy) if nx else None
        gv = np.where(ctx.mask, gy, zero).sum() if nv else None  # a 0-d value tensor
        return gx, None, gv


def masked_fill(x, mask, value):
    """x with `value` (a number or a 0-d tensor) wherever the bool mask (broadcast to x) is True."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(f"masked_fill only supports a 0-dimensional value tensor, got shape {value.shape}")
    return MaskedFill.apply(x, _bool_mask("masked_fill", mask), value)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, *, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy.astype(ctx.dtype)


def cast(x, dtype):
    """x converted to dtype (a NumPy dtype); differentiable between float dtypes."""
    if dtype == x.array.dtype:
        return x
    if dtype.kind != "f":
        return Tensor._make(x.array.astype(dtype), False)
    return Cast.apply(x, dtype=dtype)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return gy


def clone(x):
    return Clone.apply(x)


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2."""
    return input + tensor1 * tensor2 * value if value != 1 else input + tensor1 * tensor2


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2."""
    return input + tensor1 / tensor2 * value if value != 1 else input + tensor1 / tensor2


def lerp(input, end, weight):
    """input + weight * (end - input)."""
    return input + (end - input) * weight
