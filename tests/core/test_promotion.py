"""Type promotion as torch (nanoframe.dtypes.result_type): every pair of bool/int64/float32/float64
operands (n-d tensors, 0-d tensors, Python scalars) through the arithmetic and comparison operators
gives torch's dtype and values, or fails where torch fails."""
import itertools
import operator

import numpy as np
import pytest

import nanoframe as nf

torch = pytest.importorskip("torch")

DTYPES = ["bool", "int64", "float32", "float64"]
SCALARS = [True, 3, 2.5]
OPERANDS = [("tensor", d) for d in DTYPES] + [("0-d", d) for d in DTYPES] + [("scalar", s) for s in SCALARS]
OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
       "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "lt": operator.lt,
       "eq": operator.eq, "and": operator.and_}
VALUES = {"bool": [True, False, True], "int64": [3, -2, 5], "float32": [1.5, -2.25, 4.0], "float64": [0.5, 3.0, -1.75]}


def _make(lib, kind, what):
    if kind == "scalar":
        return what
    values = VALUES[what] if kind == "tensor" else VALUES[what][0]
    return lib.tensor(values, dtype=getattr(lib, what))


def _run(lib, op, a, b):
    try:
        out = op(_make(lib, *a), _make(lib, *b))
    except Exception as e:  # noqa: BLE001  (the test compares which ops fail)
        return type(e).__name__, None
    return str(out.dtype).split(".")[-1], np.asarray(out.tolist())


PAIRS = [(a, b) for a, b in itertools.product(OPERANDS, repeat=2) if not (a[0] == b[0] == "scalar")]


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # x / 0, 0 ** -1: inf/nan, as torch
@pytest.mark.parametrize("name", OPS)
def test_promotion_table_matches_torch(name):
    op, mismatches = OPS[name], []
    for a, b in PAIRS:
        (dn, vn), (dt, vt) = _run(nf, op, a, b), _run(torch, op, a, b)
        if name == "pow" and dt == "bool":  # torch keeps bool ** True as bool; nanoframe refuses bool powers
            assert dn == "NotImplementedError"
            continue
        errors = {"RuntimeError", "TypeError", "NotImplementedError", "ZeroDivisionError"}
        if dt in errors:
            if dn not in errors:
                mismatches.append((a, b, dn, dt))
            continue
        if dn != dt or not np.allclose(vn, vt, rtol=1e-6, equal_nan=True):
            mismatches.append((a, b, dn, dt, vn, vt))
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("dt,scalar,expected", [
    ("int64", 2, "float32"), ("int64", 0.5, "float32"), ("bool", 2.0, "float32"), ("int64", True, "float32"),
])
def test_integer_true_division_is_default_float(dt, scalar, expected):
    x = nf.tensor([3, 4], dtype=getattr(nf, dt) if dt != "bool" else nf.bool)
    assert (x / scalar).dtype == getattr(nf, expected)


def test_int_times_float_scalar_is_float32_and_float64_default():
    x = nf.tensor([1, 2, 3])
    assert (x * 0.5).dtype == nf.float32 and (x * 0.5).tolist() == [0.5, 1.0, 1.5]
    nf.set_default_dtype(nf.float64)
    try:
        assert (x * 0.5).dtype == nf.float64 and (x / 2).dtype == nf.float64
        assert nf.tensor([1.5]).dtype == nf.float64 and nf.zeros(2).dtype == nf.float64
    finally:
        nf.set_default_dtype(nf.float32)
    assert nf.tensor([1.5]).dtype == nf.float32


def test_zero_dim_tensor_does_not_widen_dimensioned():
    """torch: a float64 0-d tensor with a float32 vector stays float32 (NumPy would give float64)."""
    a = nf.tensor([1.0, 2.0], requires_grad=True)
    s = nf.tensor(2.0, dtype=nf.float64, requires_grad=True)
    y = a * s
    assert y.dtype == nf.float32
    y.sum().backward()
    assert a.grad.dtype == nf.float32 and s.grad.dtype == nf.float64
    np.testing.assert_allclose(a.grad_array, [2.0, 2.0])
    np.testing.assert_allclose(s.grad_array, 3.0)
    assert (nf.tensor([1, 2]) + nf.tensor(0.5, dtype=nf.float64)).dtype == nf.float64  # higher category wins


def test_reduction_dtypes():
    i = nf.tensor([1, 2, 3])
    assert i.sum().dtype == nf.int64 and nf.tensor([True, True]).sum().item() == 2
    assert nf.tensor([1, 2], dtype=nf.int32).sum().dtype == nf.int64
    assert i.prod().item() == 6 and i.prod().dtype == nf.int64
    with pytest.raises(TypeError, match="mean.*floating point"):
        i.mean()
    with pytest.raises(TypeError, match="var.*floating point"):
        i.var()
    assert i.mean(dtype=nf.float32).item() == 2.0
    assert i.float().mean().item() == 2.0
    assert i.sum(dtype=nf.float64).dtype == nf.float64


@pytest.mark.parametrize("fn", ["exp", "log", "sqrt", "sin", "cos", "sigmoid", "tanh", "rsqrt", "reciprocal",
                                "log1p", "expm1"])
def test_unary_float_ops_on_integers_give_default_float(fn):
    x = nf.tensor([1, 2, 3])
    y = getattr(x, fn)()
    yt = getattr(torch.tensor([1, 2, 3]), fn)()
    assert y.dtype == nf.float32 and str(yt.dtype) == "torch.float32"
    np.testing.assert_allclose(y.array, yt.numpy(), rtol=1e-6)


def test_integer_ops_that_stay_integer():
    x = nf.tensor([-2, 3])
    for fn in ("abs", "neg", "square", "sign", "floor", "ceil", "round", "relu"):
        assert getattr(x, fn)().dtype == nf.int64, fn
    assert (x ** 2).dtype == nf.int64 and (x ** 2).tolist() == [4, 9]
    with pytest.raises(RuntimeError, match="negative integer powers"):
        x ** -1


def test_cat_and_where_promote():
    assert nf.cat([nf.tensor([1, 2]), nf.tensor([0.5])]).dtype == nf.float32
    assert nf.stack([nf.tensor([1.0]), nf.tensor([2.0], dtype=nf.float64)]).dtype == nf.float64
    assert nf.where(nf.tensor([True, False]), nf.tensor([1, 2]), 0.5).dtype == nf.float32


def test_result_type_and_promote_types():
    assert nf.promote_types(nf.int64, nf.float32) == nf.float32  # NumPy: float64
    assert nf.promote_types(nf.uint8, nf.int8) == nf.int16
    assert nf.promote_types(nf.bool, nf.int32) == nf.int32
    assert nf.promote_types(nf.float16, nf.float32) == nf.float32
