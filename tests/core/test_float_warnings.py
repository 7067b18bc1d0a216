"""Ops return IEEE results (inf, nan) silently, as torch does: word_language_model builds its mask
as torch.log(torch.tril(torch.ones(n, n))) and must not print NumPy's "divide by zero encountered
in log" on every call. The forwards that make inf/nan from finite inputs run under np.errstate
(nanoframe.ops.elementwise.ieee), and the backward engine runs under one errstate per backward()
call; neither touches the user's global NumPy settings (no np.seterr)."""
import math
import warnings

import numpy as np
import pytest

import nanoframe as nf

CASES = [
    ("log(0)", lambda: nf.log(nf.tensor([0.0])), -math.inf),
    ("sqrt(-1)", lambda: nf.sqrt(nf.tensor([-1.0])), math.nan),
    ("1 / 0", lambda: nf.tensor([1.0]) / nf.zeros(1), math.inf),
    ("0 / 0", lambda: nf.zeros(1) / nf.zeros(1), math.nan),
    ("log2(0)", lambda: nf.log2(nf.tensor([0.0])), -math.inf),
    ("log10(0)", lambda: nf.log10(nf.tensor([0.0])), -math.inf),
    ("log1p(-1)", lambda: nf.log1p(nf.tensor([-1.0])), -math.inf),
    ("exp(1000)", lambda: nf.exp(nf.tensor([1000.0])), math.inf),
    ("expm1(1000)", lambda: nf.expm1(nf.tensor([1000.0])), math.inf),
    ("0 ** -1", lambda: nf.tensor([0.0]) ** -1, math.inf),
    ("(-1) ** 0.5", lambda: nf.tensor([-1.0]) ** 0.5, math.nan),
    ("rsqrt(0)", lambda: nf.rsqrt(nf.tensor([0.0])), math.inf),
    ("reciprocal(0)", lambda: nf.reciprocal(nf.tensor([0.0])), math.inf),
    ("floor_divide(1, 0)", lambda: nf.floor_divide(nf.tensor([1.0]), nf.zeros(1)), math.inf),
    ("remainder(1, 0)", lambda: nf.remainder(nf.tensor([1.0]), nf.zeros(1)), math.nan),
    ("in-place /= 0", lambda: _inplace_div(), math.inf),
]


def _inplace_div():
    t = nf.tensor([1.0])
    t /= 0
    return t


def _grad(fn, x):
    t = nf.tensor([x], requires_grad=True)
    fn(t).sum().backward()
    return t.grad.item()


GRAD_CASES = [
    ("d log(x) at 0", lambda: _grad(nf.log, 0.0), math.inf),
    ("d sqrt(x) at 0", lambda: _grad(nf.sqrt, 0.0), math.inf),
    ("d (1 / x) at 0", lambda: _grad(lambda t: 1 / t, 0.0), -math.inf),
    ("d x ** 0.5 at 0", lambda: _grad(lambda t: t ** 0.5, 0.0), math.inf),
    ("d exp(x) at 1000", lambda: _grad(nf.exp, 1000.0), math.inf),
]


def _check(op, want):
    np_before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = op()
        got = got.item() if isinstance(got, nf.Tensor) else got
    assert np.geterr() == np_before
    assert (math.isnan(got) and math.isnan(want)) or got == want


@pytest.mark.parametrize("name,op,want", CASES, ids=[c[0] for c in CASES])
def test_ieee_results_without_numpy_warnings(name, op, want):
    _check(op, want)


@pytest.mark.parametrize("name,op,want", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_ieee_gradients_without_numpy_warnings(name, op, want):
    _check(op, want)


def test_torch_gives_the_same_values():
    torch = pytest.importorskip("torch")

    t_cases = {
        "log(0)": lambda: torch.log(torch.tensor([0.0])),
        "sqrt(-1)": lambda: torch.sqrt(torch.tensor([-1.0])),
        "1 / 0": lambda: torch.tensor([1.0]) / torch.zeros(1),
        "0 / 0": lambda: torch.zeros(1) / torch.zeros(1),
        "log2(0)": lambda: torch.log2(torch.tensor([0.0])),
        "log10(0)": lambda: torch.log10(torch.tensor([0.0])),
        "log1p(-1)": lambda: torch.log1p(torch.tensor([-1.0])),
        "exp(1000)": lambda: torch.exp(torch.tensor([1000.0])),
        "expm1(1000)": lambda: torch.expm1(torch.tensor([1000.0])),
        "0 ** -1": lambda: torch.tensor([0.0]) ** -1,
        "(-1) ** 0.5": lambda: torch.tensor([-1.0]) ** 0.5,
        "rsqrt(0)": lambda: torch.rsqrt(torch.tensor([0.0])),
        "reciprocal(0)": lambda: torch.reciprocal(torch.tensor([0.0])),
        "floor_divide(1, 0)": lambda: torch.floor_divide(torch.tensor([1.0]), torch.zeros(1)),
        "remainder(1, 0)": lambda: torch.remainder(torch.tensor([1.0]), torch.zeros(1)),
    }
    for name, _, want in CASES:
        if name in t_cases:
            got = t_cases[name]().item()
            assert (math.isnan(got) and math.isnan(want)) or got == want, name
