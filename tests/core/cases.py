"""Op case tables shared by the gradcheck tests (test_<family>.py) and the torch parity tests.

Each case is `pytest.param(spec, id=...)` where spec is a dict with keys
    shapes   input shapes (float64 inputs are made from them), or arrays: explicit inputs
    fn       the op in nanoframe (also used for torch when `torch_fn` is absent: same method names)
    np_fn    the expected forward as a NumPy expression (None: forward checked by torch parity only)
    torch_fn the op in torch, where the spelling differs
    low/high the input range (positive for log, sqrt, div, tensor exponents)
"""
import numpy as np
import pytest

import nanoframe as nf

try:
    import torch
except ImportError:  # the parity tests skip; the tables still load
    torch = None


def case(id, shapes=None, fn=None, np_fn=None, torch_fn=None, low=-2.0, high=2.0, arrays=None):
    spec = dict(shapes=shapes, fn=fn, np_fn=np_fn, torch_fn=torch_fn, low=low, high=high, arrays=arrays)
    return pytest.param(spec, id=id)


# shape grids: scalar, vector, matrix and broadcast pairs
UNARY_SHAPES = [(), (5,), (3, 4), (2, 3, 4)]
BINARY_SHAPES = [((), ()), ((5,), (5,)), ((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)),
                 ((), (3,)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4))]


def _sid(shapes):
    return "x".join(str(s).replace(" ", "") for s in shapes)


# ---- elementwise -----------------------------------------------------------------------------
BINARY_OPS = [  # name, fn (nanoframe == torch spelling), numpy forward, low
    ("add", lambda a, b: a + b, lambda a, b: a + b, -2.0),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, -2.0),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, -2.0),
    ("div", lambda a, b: a / b, lambda a, b: a / b, 0.5),
    ("pow", lambda a, b: a ** b, lambda a, b: a ** b, 0.5),
    ("add_method", lambda a, b: a.add(b), np.add, -2.0),
    ("sub_method", lambda a, b: a.sub(b), np.subtract, -2.0),
    ("mul_method", lambda a, b: a.mul(b), np.multiply, -2.0),
    ("div_method", lambda a, b: a.div(b), np.divide, 0.5),
    ("pow_method", lambda a, b: a.pow(b), np.power, 0.5),
    ("maximum", lambda a, b: a.maximum(b), np.maximum, -2.0),
    ("minimum", lambda a, b: a.minimum(b), np.minimum, -2.0),
]

UNARY_OPS = [  # name, nanoframe fn, torch fn (None: same), numpy forward, low, high
    ("neg", lambda x: -x, None, np.negative, -2.0, 2.0),
    ("neg_method", lambda x: x.neg(), None, np.negative, -2.0, 2.0),
    ("exp", nf.exp, lambda x: torch.exp(x), np.exp, -2.0, 2.0),
    ("exp_method", lambda x: x.exp(), None, np.exp, -2.0, 2.0),
    ("log", nf.log, lambda x: torch.log(x), np.log, 0.2, 3.0),
    ("log_method", lambda x: x.log(), None, np.log, 0.2, 3.0),
    ("sqrt", nf.sqrt, lambda x: torch.sqrt(x), np.sqrt, 0.2, 3.0),
    ("sqrt_method", lambda x: x.sqrt(), None, np.sqrt, 0.2, 3.0),
    ("abs", nf.abs, lambda x: torch.abs(x), np.abs, -2.0, 2.0),
    ("abs_method", lambda x: x.abs(), None, np.abs, -2.0, 2.0),
    ("tanh", nf.tanh, lambda x: torch.tanh(x), np.tanh, -2.0, 2.0),
    ("tanh_method", lambda x: x.tanh(), None, np.tanh, -2.0, 2.0),
    ("sigmoid", nf.sigmoid, lambda x: torch.sigmoid(x), lambda x: 1 / (1 + np.exp(-x)), -3.0, 3.0),
    ("sigmoid_method", lambda x: x.sigmoid(), None, lambda x: 1 / (1 + np.exp(-x)), -3.0, 3.0),
    ("relu", nf.relu, lambda x: torch.relu(x), lambda x: np.maximum(x, 0), -2.0, 2.0),
    ("relu_method", lambda x: x.relu(), None, lambda x: np.maximum(x, 0), -2.0, 2.0),
    ("pow2", lambda x: x ** 2, None, lambda x: x ** 2, -2.0, 2.0),
    ("pow3", lambda x: x ** 3, None, lambda x: x ** 3, -2.0, 2.0),
    ("pow_half", lambda x: x ** 0.5, None, np.sqrt, 0.2, 3.0),
    ("pow_neg1", lambda x: x ** -1, None, lambda x: 1 / x, 0.5, 3.0),
    ("pow_2_5", lambda x: x.pow(2.5), None, lambda x: x ** 2.5, 0.2, 3.0),
    ("rpow", lambda x: 2.0 ** x, None, lambda x: 2.0 ** x, -2.0, 2.0),
    ("radd", lambda x: 1.5 + x, None, lambda x: 1.5 + x, -2.0, 2.0),
    ("rsub", lambda x: 1.5 - x, None, lambda x: 1.5 - x, -2.0, 2.0),
    ("rmul", lambda x: 3 * x, None, lambda x: 3 * x, -2.0, 2.0),
    ("rdiv", lambda x: 2.0 / x, None, lambda x: 2.0 / x, 0.5, 3.0),
    ("sub_scalar", lambda x: x - 0.25, None, lambda x: x - 0.25, -2.0, 2.0),
    ("div_scalar", lambda x: x / 4, None, lambda x: x / 4, -2.0, 2.0),
    ("maximum_scalar", lambda x: x.maximum(0.3) if isinstance(x, nf.Tensor) else torch.maximum(x, torch.tensor(0.3, dtype=x.dtype)),
     None, lambda x: np.maximum(x, 0.3), -2.0, 2.0),
    ("clip", lambda x: x.clip(-0.5, 0.7), None, lambda x: np.clip(x, -0.5, 0.7), -2.0, 2.0),
    ("clip_min", lambda x: x.clip(min=-0.5), None, lambda x: np.maximum(x, -0.5), -2.0, 2.0),
    ("clip_max", lambda x: x.clip(max=0.5), None, lambda x: np.minimum(x, 0.5), -2.0, 2.0),
    ("clamp_fn", lambda x: nf.clamp(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0),
     lambda x: np.clip(x, -1.0, 1.0), -2.0, 2.0),
]

ELEMENTWISE = (
    [case(f"{n}-{_sid(s)}", shapes=s, fn=f, np_fn=g, low=lo) for n, f, g, lo in BINARY_OPS for s in BINARY_SHAPES]
    + [case(f"{n}-{_sid([s])}", shapes=[s], fn=f, torch_fn=tf, np_fn=g, low=lo, high=hi)
       for n, f, tf, g, lo, hi in UNARY_OPS for s in UNARY_SHAPES]
    + [
        # ties: each side gets half the gradient (central differences agree at a tie of two)
        case("maximum-ties", arrays=[[1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 2.0]],
             fn=lambda a, b: a.maximum(b), np_fn=np.maximum),
        case("minimum-ties", arrays=[[1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 2.0]],
             fn=lambda a, b: a.minimum(b), np_fn=np.minimum),
        case("maximum-fn-bcast", shapes=[(3, 1), (4,)], fn=nf.maximum, torch_fn=lambda a, b: torch.maximum(a, b),
             np_fn=np.maximum),
        case("minimum-fn-bcast", shapes=[(3, 1), (4,)], fn=nf.minimum, torch_fn=lambda a, b: torch.minimum(a, b),
             np_fn=np.minimum),
        case("where", shapes=[(3, 4), (3, 4)],
             fn=lambda a, b: nf.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b),
             torch_fn=lambda a, b: torch.where(torch.tensor(np.arange(12).reshape(3, 4) % 3 == 0), a, b),
             np_fn=lambda a, b: np.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b)),
        case("where-bcast", shapes=[(3, 1), (4,)],
             fn=lambda a, b: nf.where(nf.tensor(np.arange(12).reshape(3, 4) % 2 == 0), a, b),
             torch_fn=lambda a, b: torch.where(torch.tensor(np.arange(12).reshape(3, 4) % 2 == 0), a, b),
             np_fn=lambda a, b: np.where(np.arange(12).reshape(3, 4) % 2 == 0, a, b)),
        case("where-method", shapes=[(2, 3), (2, 3)],
             fn=lambda a, b: a.where(np.array([[True, False, True], [False, False, True]]), b),
             torch_fn=lambda a, b: a.where(torch.tensor([[True, False, True], [False, False, True]]), b),
             np_fn=lambda a, b: np.where(np.array([[True, False, True], [False, False, True]]), a, b)),
        case("masked_fill", shapes=[(3, 4)],
             fn=lambda x: x.masked_fill(np.arange(4) % 2 == 1, -5.0),
             torch_fn=lambda x: x.masked_fill(torch.tensor(np.arange(4) % 2 == 1), -5.0),
             np_fn=lambda x: np.where(np.arange(4) % 2 == 1, -5.0, x)),
        case("masked_fill-fn", shapes=[(2, 3, 4)],
             fn=lambda x: nf.masked_fill(x, nf.tensor(np.tril(np.ones((3, 4))) == 0), 0.0),
             torch_fn=lambda x: x.masked_fill(torch.tensor(np.tril(np.ones((3, 4))) == 0), 0.0),
             np_fn=lambda x: np.where(np.tril(np.ones((3, 4))) == 0, 0.0, x)),
        case("composite", shapes=[(3, 4), (4,)],
             fn=lambda a, b: ((a * b).tanh() + (a - b) ** 2 / (b.abs() + 1)).sigmoid() * a.exp(),
             np_fn=lambda a, b: 1 / (1 + np.exp(-(np.tanh(a * b) + (a - b) ** 2 / (np.abs(b) + 1)))) * np.exp(a)),
    ]
)

# ---- reductions ------------------------------------------------------------------------------
_RED_KW = [  # id, kwargs for nanoframe/torch, numpy kwargs
    ("full", {}, {}),
    ("dim0", dict(dim=0), dict(axis=0)),
    ("dim-1", dict(dim=-1), dict(axis=-1)),
    ("dim1-keep", dict(dim=1, keepdim=True), dict(axis=1, keepdims=True)),
    ("dim02", dict(dim=(0, 2)), dict(axis=(0, 2))),
    ("dim-1-2-keep", dict(dim=(-1, -2), keepdim=True), dict(axis=(-1, -2), keepdims=True)),
    ("alldims-keep", dict(dim=(0, 1, 2), keepdim=True), dict(axis=(0, 1, 2), keepdims=True)),
]


def _red_case(name, kw, npkw, np_fn, shape=(2, 3, 4), arrays=None, torch_kw=None):
    fn = lambda x: getattr(x, name)(**kw)  # noqa: E731
    tkw = kw if torch_kw is None else torch_kw
    torch_fn = lambda x: getattr(x, name)(**tkw)  # noqa: E731
    return case(f"{name}-{kw}", shapes=[shape] if arrays is None else None, arrays=arrays, fn=fn,
                torch_fn=torch_fn, np_fn=lambda x: np_fn(x, **npkw))


def _np_var(x, ddof=1, **kw):
    return np.var(x, ddof=ddof, **kw)


REDUCE = (
    [_red_case("sum", kw, npkw, np.sum) for _, kw, npkw in _RED_KW]
    + [_red_case("mean", kw, npkw, np.mean) for _, kw, npkw in _RED_KW]
    + [_red_case("amax", kw, npkw, np.max) for _, kw, npkw in _RED_KW if kw]
    + [_red_case("amin", kw, npkw, np.min) for _, kw, npkw in _RED_KW if kw]
    + [_red_case("var", kw, npkw, _np_var) for _, kw, npkw in _RED_KW]
    + [_red_case("std", kw, npkw, lambda x, **k: np.std(x, ddof=1, **k)) for _, kw, npkw in _RED_KW]
    + [
        case("sum-scalar", shapes=[()], fn=lambda x: x.sum(), np_fn=np.sum),
        case("sum-scalar-dim0", shapes=[()], fn=lambda x: x.sum(dim=0), np_fn=np.sum),
        case("mean-scalar", shapes=[()], fn=lambda x: x.mean(), np_fn=np.mean),
        case("sum-vec", shapes=[(5,)], fn=lambda x: x.sum(0), np_fn=np.sum),
        case("sum-fn", shapes=[(3, 4)], fn=lambda x: nf.sum(x, 1), torch_fn=lambda x: torch.sum(x, 1),
             np_fn=lambda x: x.sum(1)),
        case("mean-fn-keep", shapes=[(3, 4)], fn=lambda x: nf.mean(x, -1, keepdim=True),
             torch_fn=lambda x: torch.mean(x, -1, keepdim=True), np_fn=lambda x: x.mean(-1, keepdims=True)),
        # NumPy aliases axis= / keepdims=
        case("sum-axis-alias", shapes=[(3, 4)], fn=lambda x: x.sum(axis=0, keepdims=True),
             torch_fn=lambda x: x.sum(dim=0, keepdim=True), np_fn=lambda x: x.sum(axis=0, keepdims=True)),
        case("mean-axis-alias", shapes=[(2, 3, 4)], fn=lambda x: nf.mean(x, axis=(0, -1)),
             torch_fn=lambda x: x.mean(dim=(0, -1)), np_fn=lambda x: x.mean(axis=(0, -1))),
        case("max-axis-alias", shapes=[(3, 4)], fn=lambda x: x.max(axis=1),
             torch_fn=lambda x: x.max(dim=1), np_fn=lambda x: x.max(axis=1)),
        case("var-axis-alias", shapes=[(3, 4)], fn=lambda x: x.var(axis=1, keepdims=True),
             torch_fn=lambda x: x.var(dim=1, keepdim=True), np_fn=lambda x: x.var(axis=1, ddof=1, keepdims=True)),
        # max / min: full, dim int -> (values, indices), tuple dim -> amax
        case("max-full", shapes=[(2, 3, 4)], fn=lambda x: x.max(), np_fn=np.max),
        case("min-full", shapes=[(2, 3, 4)], fn=lambda x: x.min(), np_fn=np.min),
        case("max-scalar", shapes=[()], fn=lambda x: x.max(), np_fn=np.max),
        case("max-fn-full", shapes=[(5,)], fn=nf.max, torch_fn=lambda x: torch.max(x), np_fn=np.max),
        case("max-dim1", shapes=[(2, 3, 4)], fn=lambda x: x.max(1), np_fn=lambda x: x.max(1)),
        case("max-dim-1-keep", shapes=[(2, 3, 4)], fn=lambda x: x.max(dim=-1, keepdim=True),
             np_fn=lambda x: x.max(-1, keepdims=True)),
        case("min-dim0", shapes=[(3, 4)], fn=lambda x: x.min(0), np_fn=lambda x: x.min(0)),
        case("min-dim-2-keep", shapes=[(2, 3, 4)], fn=lambda x: x.min(-2, keepdim=True),
             np_fn=lambda x: x.min(-2, keepdims=True)),
        case("max-fn-dim", shapes=[(3, 4)], fn=lambda x: nf.max(x, 1), torch_fn=lambda x: torch.max(x, 1),
             np_fn=lambda x: x.max(1)),
        case("min-fn-dim", shapes=[(3, 4)], fn=lambda x: nf.min(x, dim=0), torch_fn=lambda x: torch.min(x, dim=0),
             np_fn=lambda x: x.min(0)),
        case("max-tuple-dim", shapes=[(2, 3, 4)], fn=lambda x: x.max(dim=(0, 2)),
             torch_fn=lambda x: x.amax(dim=(0, 2)), np_fn=lambda x: x.max((0, 2))),
        case("min-tuple-dim-keep", shapes=[(2, 3, 4)], fn=lambda x: x.min(dim=(1, -1), keepdim=True),
             torch_fn=lambda x: x.amin(dim=(1, -1), keepdim=True), np_fn=lambda x: x.min((1, -1), keepdims=True)),
        case("amax-fn", shapes=[(3, 4)], fn=lambda x: nf.amax(x, -1), torch_fn=lambda x: torch.amax(x, -1),
             np_fn=lambda x: x.max(-1)),
        case("amin-fn", shapes=[(3, 4)], fn=lambda x: nf.amin(x, 0), torch_fn=lambda x: torch.amin(x, 0),
             np_fn=lambda x: x.min(0)),
        # ties between two maxima: the gradient is split evenly (as torch's amax / full max)
        case("max-full-tie", arrays=[[[1.0, 3.0, 0.5], [3.0, -1.0, 2.0]]], fn=lambda x: x.max(), np_fn=np.max),
        case("amax-tie", arrays=[[[1.0, 3.0, 3.0], [0.0, -1.0, 0.0]]], fn=lambda x: x.amax(dim=1),
             np_fn=lambda x: x.max(1)),
        case("min-full-tie", arrays=[[[1.0, -3.0, 0.5], [-3.0, -1.0, 2.0]]], fn=lambda x: x.min(), np_fn=np.min),
        # var/std: correction 0 and 1, unbiased=
        case("var-corr0", shapes=[(3, 4)], fn=lambda x: x.var(dim=1, correction=0),
             np_fn=lambda x: x.var(1)),
        case("var-corr0-full", shapes=[(2, 3, 4)], fn=lambda x: x.var(correction=0), np_fn=np.var),
        case("var-corr0-tuple-keep", shapes=[(2, 3, 4)], fn=lambda x: x.var(dim=(0, -1), keepdim=True, correction=0),
             np_fn=lambda x: x.var((0, -1), keepdims=True)),
        case("var-unbiased-false", shapes=[(3, 4)], fn=lambda x: nf.var(x, 0, unbiased=False),
             torch_fn=lambda x: torch.var(x, 0, unbiased=False), np_fn=lambda x: x.var(0)),
        case("std-corr0", shapes=[(3, 4)], fn=lambda x: x.std(dim=-1, correction=0),
             np_fn=lambda x: x.std(-1)),
        case("var-fn", shapes=[(5,)], fn=lambda x: nf.var(x), torch_fn=lambda x: torch.var(x),
             np_fn=lambda x: x.var(ddof=1)),
        case("std-fn-keep", shapes=[(3, 4)], fn=lambda x: nf.std(x, 1, keepdim=True),
             torch_fn=lambda x: torch.std(x, 1, keepdim=True), np_fn=lambda x: x.std(1, ddof=1, keepdims=True)),
    ]
)

# ---- shape ops -------------------------------------------------------------------------------
_M = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, False]])


def _getitem(id, index, shape=(3, 4), torch_index=None):
    ti = index if torch_index is None else torch_index
    return case(f"getitem-{id}", shapes=[shape], fn=lambda x: x[index],
                torch_fn=lambda x: x[ti], np_fn=lambda x: x[index])


def _split_stack(pieces, mod):
    """Weight every piece differently and sum, so each piece's gradient is checked."""
    return mod.stack([(p * (i + 1)).sum() for i, p in enumerate(pieces)])


SHAPE = [
    case("reshape", shapes=[(2, 3, 4)], fn=lambda x: x.reshape(4, 6), np_fn=lambda x: x.reshape(4, 6)),
    case("reshape-tuple", shapes=[(2, 3, 4)], fn=lambda x: x.reshape((6, -1)), np_fn=lambda x: x.reshape(6, -1)),
    case("reshape-scalar", shapes=[()], fn=lambda x: x.reshape(1, 1), np_fn=lambda x: x.reshape(1, 1)),
    case("reshape-to-scalar", shapes=[(1, 1)], fn=lambda x: x.reshape(()), np_fn=lambda x: x.reshape(())),
    case("reshape-fn", shapes=[(3, 4)], fn=lambda x: nf.reshape(x, (2, 6)), torch_fn=lambda x: torch.reshape(x, (2, 6)),
         np_fn=lambda x: x.reshape(2, 6)),
    case("view", shapes=[(3, 4)], fn=lambda x: x.view(12), np_fn=lambda x: x.reshape(12)),
    case("view-neg", shapes=[(2, 3, 4)], fn=lambda x: x.view(-1, 4), np_fn=lambda x: x.reshape(-1, 4)),
    case("transpose", shapes=[(2, 3, 4)], fn=lambda x: x.transpose(0, 2), np_fn=lambda x: np.swapaxes(x, 0, 2)),
    case("transpose-neg", shapes=[(2, 3, 4)], fn=lambda x: x.transpose(-1, -2), np_fn=lambda x: np.swapaxes(x, -1, -2)),
    case("transpose-fn", shapes=[(3, 4)], fn=lambda x: nf.transpose(x, 0, 1), torch_fn=lambda x: torch.transpose(x, 0, 1),
         np_fn=lambda x: x.T),
    case("swapaxes", shapes=[(2, 3, 4)], fn=lambda x: x.swapaxes(0, 1), np_fn=lambda x: np.swapaxes(x, 0, 1)),
    case("swapaxes-fn", shapes=[(2, 3, 4)], fn=lambda x: nf.swapaxes(x, 1, -1), torch_fn=lambda x: torch.swapaxes(x, 1, -1),
         np_fn=lambda x: np.swapaxes(x, 1, -1)),
    case("T", shapes=[(3, 4)], fn=lambda x: x.T, np_fn=lambda x: x.T),
    case("permute", shapes=[(2, 3, 4)], fn=lambda x: x.permute(2, 0, 1), np_fn=lambda x: x.transpose(2, 0, 1)),
    case("permute-tuple-neg", shapes=[(2, 3, 4)], fn=lambda x: x.permute((-1, 0, -2)), np_fn=lambda x: x.transpose(2, 0, 1)),
    case("permute-fn", shapes=[(2, 3, 4)], fn=lambda x: nf.permute(x, (1, 2, 0)), torch_fn=lambda x: torch.permute(x, (1, 2, 0)),
         np_fn=lambda x: x.transpose(1, 2, 0)),
    case("expand", shapes=[(3, 1)], fn=lambda x: x.expand(3, 4), np_fn=lambda x: np.broadcast_to(x, (3, 4))),
    case("expand-lead", shapes=[(3, 1)], fn=lambda x: x.expand(2, 3, 4), np_fn=lambda x: np.broadcast_to(x, (2, 3, 4))),
    case("expand-minus1", shapes=[(3, 1)], fn=lambda x: x.expand(-1, 5), np_fn=lambda x: np.broadcast_to(x, (3, 5))),
    case("expand-scalar", shapes=[()], fn=lambda x: x.expand(2, 3), np_fn=lambda x: np.broadcast_to(x, (2, 3))),
    case("broadcast_to", shapes=[(4,)], fn=lambda x: x.broadcast_to((2, 3, 4)), np_fn=lambda x: np.broadcast_to(x, (2, 3, 4))),
    case("broadcast_to-fn", shapes=[(1, 4)], fn=lambda x: nf.broadcast_to(x, (3, 4)),
         torch_fn=lambda x: torch.broadcast_to(x, (3, 4)), np_fn=lambda x: np.broadcast_to(x, (3, 4))),
    case("squeeze-all", shapes=[(1, 3, 1, 4)], fn=lambda x: x.squeeze(), np_fn=np.squeeze),
    case("squeeze-dim", shapes=[(1, 3, 1, 4)], fn=lambda x: x.squeeze(2), np_fn=lambda x: x.squeeze(2)),
    case("squeeze-neg", shapes=[(3, 4, 1)], fn=lambda x: x.squeeze(-1), np_fn=lambda x: x.squeeze(-1)),
    case("squeeze-non1", shapes=[(3, 4)], fn=lambda x: x.squeeze(0), np_fn=lambda x: x),
    case("squeeze-fn", shapes=[(1, 4)], fn=lambda x: nf.squeeze(x, 0), torch_fn=lambda x: torch.squeeze(x, 0),
         np_fn=lambda x: x[0]),
    case("unsqueeze0", shapes=[(3, 4)], fn=lambda x: x.unsqueeze(0), np_fn=lambda x: x[None]),
    case("unsqueeze-1", shapes=[(3, 4)], fn=lambda x: x.unsqueeze(-1), np_fn=lambda x: x[..., None]),
    case("unsqueeze-mid", shapes=[(3, 4)], fn=lambda x: x.unsqueeze(1), np_fn=lambda x: x[:, None]),
    case("unsqueeze-scalar", shapes=[()], fn=lambda x: nf.unsqueeze(x, 0), torch_fn=lambda x: torch.unsqueeze(x, 0),
         np_fn=lambda x: x[None]),
    case("flatten", shapes=[(2, 3, 4)], fn=lambda x: x.flatten(), np_fn=lambda x: x.reshape(-1)),
    case("flatten-start1", shapes=[(2, 3, 4)], fn=lambda x: x.flatten(1), np_fn=lambda x: x.reshape(2, 12)),
    case("flatten-01", shapes=[(2, 3, 4)], fn=lambda x: x.flatten(0, 1), np_fn=lambda x: x.reshape(6, 4)),
    case("flatten-neg", shapes=[(2, 3, 4)], fn=lambda x: nf.flatten(x, -2, -1), torch_fn=lambda x: torch.flatten(x, -2, -1),
         np_fn=lambda x: x.reshape(2, 12)),
    case("flatten-scalar", shapes=[()], fn=lambda x: x.flatten(), np_fn=lambda x: x.reshape(1)),
    _getitem("int", 1),
    _getitem("negint", -1),
    _getitem("int-int", (2, -1)),
    _getitem("slice", (slice(None), slice(1, 3))),
    _getitem("step", slice(None, None, 2)),
    _getitem("slice-int", (slice(1, None), 2)),
    _getitem("ellipsis", (Ellipsis, 1), shape=(2, 3, 4)),
    _getitem("ellipsis-none", (1, Ellipsis, None), shape=(2, 3, 4)),
    _getitem("none", (None, slice(None), None)),
    _getitem("none-int", (slice(None), None, 2)),
    _getitem("mask2d", _M, torch_index=torch.tensor(_M) if torch else None),
    _getitem("mask1d", np.array([True, False, True]), torch_index=torch.tensor([True, False, True]) if torch else None),
    _getitem("mask-cols", (slice(None), np.array([False, True, True, False])),
             torch_index=(slice(None), torch.tensor([False, True, True, False])) if torch else None),
    _getitem("intarray-repeat", np.array([0, 2, 0, 0]), torch_index=torch.tensor([0, 2, 0, 0]) if torch else None),
    _getitem("list-repeat", [1, 1, 2]),
    _getitem("intarray-2d", np.array([[0, 1], [1, 0]]), torch_index=torch.tensor([[0, 1], [1, 0]]) if torch else None),
    _getitem("pairs-repeat", (np.array([0, 1, 0]), np.array([2, 2, 2])),
             torch_index=(torch.tensor([0, 1, 0]), torch.tensor([2, 2, 2])) if torch else None),
    _getitem("cols-repeat", (slice(None), np.array([1, 1, 3])),
             torch_index=(slice(None), torch.tensor([1, 1, 3])) if torch else None),
    _getitem("neg-intarray", np.array([-1, -1]), torch_index=torch.tensor([-1, -1]) if torch else None),
    case("getitem-tensor-index", shapes=[(5,)], fn=lambda x: x[nf.tensor([4, 0, 4])],
         torch_fn=lambda x: x[torch.tensor([4, 0, 4])], np_fn=lambda x: x[[4, 0, 4]]),
    case("getitem-tensor-mask", shapes=[(5,)], fn=lambda x: x[x > 0],
         torch_fn=lambda x: x[x > 0], np_fn=lambda x: x[x > 0]),
    case("cat0", shapes=[(2, 3), (1, 3), (3, 3)], fn=lambda a, b, c: nf.cat([a, b, c]),
         torch_fn=lambda a, b, c: torch.cat([a, b, c]), np_fn=lambda a, b, c: np.concatenate([a, b, c])),
    case("cat-neg", shapes=[(2, 3), (2, 1)], fn=lambda a, b: nf.cat((a, b), dim=-1),
         torch_fn=lambda a, b: torch.cat((a, b), dim=-1), np_fn=lambda a, b: np.concatenate([a, b], -1)),
    case("concatenate", shapes=[(2, 2, 3), (2, 1, 3)], fn=lambda a, b: nf.concatenate([a, b], 1),
         torch_fn=lambda a, b: torch.cat([a, b], 1), np_fn=lambda a, b: np.concatenate([a, b], 1)),
    case("cat-self", shapes=[(2, 3)], fn=lambda a: nf.cat([a, a * 2]), torch_fn=lambda a: torch.cat([a, a * 2]),
         np_fn=lambda a: np.concatenate([a, a * 2])),
    case("stack0", shapes=[(3, 4), (3, 4)], fn=lambda a, b: nf.stack([a, b]),
         torch_fn=lambda a, b: torch.stack([a, b]), np_fn=lambda a, b: np.stack([a, b])),
    case("stack-1", shapes=[(3, 4), (3, 4), (3, 4)], fn=lambda a, b, c: nf.stack([a, b, c], dim=-1),
         torch_fn=lambda a, b, c: torch.stack([a, b, c], dim=-1), np_fn=lambda a, b, c: np.stack([a, b, c], -1)),
    case("stack1", shapes=[(3,), (3,)], fn=lambda a, b: nf.stack([a, b], 1),
         torch_fn=lambda a, b: torch.stack([a, b], 1), np_fn=lambda a, b: np.stack([a, b], 1)),
    case("stack-scalars", shapes=[(), ()], fn=lambda a, b: nf.stack([a, b]),
         torch_fn=lambda a, b: torch.stack([a, b]), np_fn=lambda a, b: np.stack([a, b])),
    case("split-size", shapes=[(5, 3)], fn=lambda x: _split_stack(x.split(2), nf),
         torch_fn=lambda x: _split_stack(x.split(2), torch),
         np_fn=lambda x: np.stack([x[:2].sum(), 2 * x[2:4].sum(), 3 * x[4:].sum()])),
    case("split-sections", shapes=[(3, 5)], fn=lambda x: _split_stack(nf.split(x, [1, 3, 1], dim=-1), nf),
         torch_fn=lambda x: _split_stack(torch.split(x, [1, 3, 1], dim=-1), torch),
         np_fn=lambda x: np.stack([x[:, :1].sum(), 2 * x[:, 1:4].sum(), 3 * x[:, 4:].sum()])),
    case("split-piece", shapes=[(4, 3)], fn=lambda x: x.split(3)[1], np_fn=lambda x: x[3:]),
    case("chunk", shapes=[(5, 3)], fn=lambda x: _split_stack(x.chunk(3), nf),
         torch_fn=lambda x: _split_stack(x.chunk(3), torch),
         np_fn=lambda x: np.stack([x[:2].sum(), 2 * x[2:4].sum(), 3 * x[4:].sum()])),
    case("chunk-dim", shapes=[(2, 6)], fn=lambda x: _split_stack(nf.chunk(x, 2, dim=1), nf),
         torch_fn=lambda x: _split_stack(torch.chunk(x, 2, dim=1), torch),
         np_fn=lambda x: np.stack([x[:, :3].sum(), 2 * x[:, 3:].sum()])),
    case("chunk-piece", shapes=[(2, 6)], fn=lambda x: x.chunk(3, -1)[2], np_fn=lambda x: x[:, 4:]),
]

# ---- matmul ----------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),        # vector @ matrix
    ((3, 4), (4,)),        # matrix @ vector
    ((4,), (4,)),          # dot
    ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),   # batched @ shared weight
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),  # broadcast batch dims
    ((1, 3, 4), (2, 4, 5)),
    ((4,), (2, 4, 3)),     # vector @ batched
    ((2, 3, 4), (4,)),     # batched @ vector
    ((2, 2, 3, 4), (4,)),
    ((1, 4), (4, 1)),
]

MATMUL = (
    [case(f"matmul-{_sid(s)}", shapes=s, fn=lambda a, b: a @ b, np_fn=np.matmul) for s in MATMUL_SHAPES]
    + [
        case("matmul-fn", shapes=[(3, 4), (4, 2)], fn=nf.matmul, torch_fn=lambda a, b: torch.matmul(a, b),
             np_fn=np.matmul),
        case("matmul-method", shapes=[(2, 3, 4), (4,)], fn=lambda a, b: a.matmul(b), np_fn=np.matmul),
        case("matmul-chain", shapes=[(2, 3), (3, 4), (4, 2)], fn=lambda a, b, c: (a @ b).tanh() @ c,
             np_fn=lambda a, b, c: np.tanh(a @ b) @ c),
        case("matmul-self", shapes=[(3, 3)], fn=lambda a: a @ a, np_fn=lambda a: a @ a),
    ]
)
