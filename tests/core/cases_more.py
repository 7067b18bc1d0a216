"""Case tables (format of cases.py) for the ops of torch's Tensor API added beside the core ones:
more unary math, rounded division, prod/logsumexp/norm/cumsum/cumprod, narrow/unbind/flip/roll/
repeat/tril/diag, gather/scatter/index_select, sort/topk, mm/bmm/einsum, addcmul/lerp...

`fn` runs unchanged on nanoframe and torch tensors where the spelling is the same; `_lib(x)` gives
the module of x's library and `_idx(x, data)` an integer tensor of that library.
"""
import math

import numpy as np

import nanoframe as nf

from .cases import case

try:
    import torch
except ImportError:
    torch = None


def _lib(x):
    return nf if isinstance(x, nf.Tensor) else torch


def _idx(x, data):
    return _lib(x).tensor(np.asarray(data, dtype=np.int64))


def _weighted(pieces, x):
    """Weight every piece differently and stack the sums, so each piece's gradient is checked."""
    return _lib(x).stack([(p * (i + 1)).sum() for i, p in enumerate(pieces)])


UNARY_MORE = [  # name, fn, numpy forward, low, high
    ("sin", lambda x: x.sin(), np.sin, -3.0, 3.0),
    ("cos", lambda x: x.cos(), np.cos, -3.0, 3.0),
    ("log1p", lambda x: x.log1p(), np.log1p, -0.5, 2.0),
    ("expm1", lambda x: x.expm1(), np.expm1, -2.0, 2.0),
    ("log2", lambda x: x.log2(), np.log2, 0.2, 3.0),
    ("log10", lambda x: x.log10(), np.log10, 0.2, 3.0),
    ("square", lambda x: x.square(), np.square, -2.0, 2.0),
    ("rsqrt", lambda x: x.rsqrt(), lambda x: 1 / np.sqrt(x), 0.2, 3.0),
    ("reciprocal", lambda x: x.reciprocal(), lambda x: 1 / x, 0.5, 3.0),
    ("sign", lambda x: x.sign(), np.sign, -2.0, 2.0),
    ("floor", lambda x: x.floor(), np.floor, -2.0, 2.0),
    ("ceil", lambda x: x.ceil(), np.ceil, -2.0, 2.0),
    ("round", lambda x: x.round(), np.round, -2.0, 2.0),
    ("trunc", lambda x: x.trunc(), np.trunc, -2.0, 2.0),
    ("round-decimals", lambda x: x.round(decimals=1), lambda x: np.round(x, 1), -2.0, 2.0),
]

ELEMENTWISE_MORE = (
    [case(f"{n}-{s}", shapes=[s], fn=f, np_fn=g, low=lo, high=hi) for n, f, g, lo, hi in UNARY_MORE
     for s in [(), (3, 4)]]
    + [
        case("add-alpha", shapes=[(3, 4), (4,)], fn=lambda a, b: a.add(b, alpha=2.5), np_fn=lambda a, b: a + 2.5 * b),
        case("sub-alpha", shapes=[(3, 4), (3, 1)], fn=lambda a, b: a.sub(b, alpha=-0.5), np_fn=lambda a, b: a + 0.5 * b),
        case("remainder", shapes=[(3, 4), (4,)], fn=lambda a, b: a % b, np_fn=np.remainder, low=0.5),
        case("remainder-neg-divisor", arrays=[[1.5, -2.5, 3.25], [-1.0, 0.75, -2.0]], fn=lambda a, b: a.remainder(b),
             np_fn=np.remainder),
        # torch has no derivative for Scalar % Tensor or floor_divide: its twins spell the same math
        case("rmod", shapes=[(5,)], fn=lambda x: 2.5 % x, np_fn=lambda x: np.remainder(2.5, x), low=0.5,
             torch_fn=lambda x: 2.5 - torch.floor(2.5 / x) * x),
        case("floor_divide", shapes=[(3, 4), (4,)], fn=lambda a, b: a // b, np_fn=np.floor_divide, low=0.5,
             torch_fn=lambda a, b: torch.div(a, b, rounding_mode="floor")),
        case("div-trunc", shapes=[(3, 4), (4,)], fn=lambda a, b: a.div(b, rounding_mode="trunc"),
             np_fn=lambda a, b: np.trunc(a / b), low=0.3),
        case("addcmul", shapes=[(3, 4), (3, 4), (4,)], fn=lambda a, b, c: a.addcmul(b, c, value=0.5),
             np_fn=lambda a, b, c: a + 0.5 * b * c),
        case("addcdiv", shapes=[(3, 4), (3, 4), (4,)], fn=lambda a, b, c: a.addcdiv(b, c, value=-2.0),
             np_fn=lambda a, b, c: a - 2.0 * b / c, low=0.5),
        case("lerp", shapes=[(3, 4), (3, 4)], fn=lambda a, b: a.lerp(b, 0.25), np_fn=lambda a, b: a + 0.25 * (b - a)),
        case("max-elementwise", shapes=[(3, 4), (4,)], fn=lambda a, b: _lib(a).max(a, b), np_fn=np.maximum),
        case("min-elementwise", shapes=[(3, 1), (4,)], fn=lambda a, b: _lib(a).min(a, b), np_fn=np.minimum),
        case("masked_fill-tensor-value", shapes=[(3, 4), ()],
             fn=lambda x, v: x.masked_fill(_lib(x).tensor(np.arange(12).reshape(3, 4) % 3 == 0), v),
             np_fn=lambda x, v: np.where(np.arange(12).reshape(3, 4) % 3 == 0, v, x)),
        case("clamp-tensor-bounds", shapes=[(3, 4)],
             fn=lambda x: x.clamp(min=_lib(x).tensor([-0.5, 0.0, 0.5, -1.0], dtype=x.dtype), max=_lib(x).tensor(1.0, dtype=x.dtype)),
             np_fn=lambda x: np.clip(x, [-0.5, 0.0, 0.5, -1.0], 1.0)),
        case("where-scalar-other", shapes=[(3, 4)],
             fn=lambda x: _lib(x).where(x > 0, x, 0.5), np_fn=lambda x: np.where(x > 0, x, 0.5)),
    ]
)

REDUCE_MORE = [
    case("prod-full", shapes=[(2, 3)], fn=lambda x: x.prod(), np_fn=np.prod),
    case("prod-dim", shapes=[(2, 3, 4)], fn=lambda x: x.prod(1), np_fn=lambda x: x.prod(1)),
    case("prod-dim-keep", shapes=[(2, 3, 4)], fn=lambda x: x.prod(-1, keepdim=True), np_fn=lambda x: x.prod(-1, keepdims=True)),
    case("prod-one-zero", arrays=[[[1.5, 0.0, 2.0], [3.0, -1.0, 0.5]]], fn=lambda x: x.prod(1), np_fn=lambda x: x.prod(1)),
    case("prod-two-zeros", arrays=[[0.0, 2.0, 0.0, 3.0]], fn=lambda x: x.prod(), np_fn=np.prod),
    case("prod-scalar", shapes=[()], fn=lambda x: x.prod(), np_fn=np.prod),
    case("logsumexp", shapes=[(3, 4)], fn=lambda x: x.logsumexp(1), np_fn=lambda x: np.log(np.exp(x).sum(1))),
    case("logsumexp-tuple-keep", shapes=[(2, 3, 4)], fn=lambda x: x.logsumexp((0, 2), keepdim=True),
         np_fn=lambda x: np.log(np.exp(x).sum((0, 2), keepdims=True))),
    case("logsumexp-large", arrays=[[[1000.0, 1001.0], [-5.0, 3.0]]], fn=lambda x: _lib(x).logsumexp(x, -1),
         np_fn=lambda x: x.max(-1) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1))),
    case("norm-fro", shapes=[(3, 4)], fn=lambda x: x.norm(), np_fn=lambda x: np.sqrt((x * x).sum())),
    case("norm-p1-dim", shapes=[(3, 4)], fn=lambda x: x.norm(p=1, dim=1), np_fn=lambda x: np.abs(x).sum(1)),
    case("norm-p3-keep", shapes=[(3, 4)], fn=lambda x: x.norm(p=3, dim=0, keepdim=True),
         np_fn=lambda x: (np.abs(x) ** 3).sum(0, keepdims=True) ** (1 / 3)),
    case("norm-inf", shapes=[(3, 4)], fn=lambda x: x.norm(p=math.inf, dim=1), np_fn=lambda x: np.abs(x).max(1)),
    case("norm-neg-inf", shapes=[(3, 4)], fn=lambda x: x.norm(p=-math.inf), np_fn=lambda x: np.abs(x).min()),
    case("norm-fn", shapes=[(2, 3, 4)], fn=lambda x: _lib(x).norm(x, dim=(1, 2)), np_fn=lambda x: np.sqrt((x * x).sum((1, 2)))),
    case("cumsum", shapes=[(3, 4)], fn=lambda x: x.cumsum(1), np_fn=lambda x: np.cumsum(x, 1)),
    case("cumsum-dim0", shapes=[(3, 4)], fn=lambda x: _lib(x).cumsum(x, dim=0), np_fn=lambda x: np.cumsum(x, 0)),
    case("cumprod", shapes=[(3, 4)], fn=lambda x: x.cumprod(-1), np_fn=lambda x: np.cumprod(x, -1)),
    case("cumprod-zeros", arrays=[[[2.0, 0.0, 3.0, 0.5], [0.0, 1.5, 0.0, 2.0]]], fn=lambda x: x.cumprod(1),
         np_fn=lambda x: np.cumprod(x, 1)),
    case("cumsum-scalar", shapes=[()], fn=lambda x: x.cumsum(0), np_fn=lambda x: x),
]

SHAPE_MORE = [
    case("narrow", shapes=[(3, 5)], fn=lambda x: x.narrow(1, 1, 3), np_fn=lambda x: x[:, 1:4]),
    case("narrow-neg-start", shapes=[(4, 3)], fn=lambda x: x.narrow(0, -2, 2), np_fn=lambda x: x[2:]),
    case("unbind", shapes=[(3, 4)], fn=lambda x: _weighted(x.unbind(1), x),
         np_fn=lambda x: np.stack([(x[:, i] * (i + 1)).sum() for i in range(4)])),
    case("t", shapes=[(3, 4)], fn=lambda x: x.t(), np_fn=lambda x: x.T),
    case("t-1d", shapes=[(4,)], fn=lambda x: x.t() * 1, np_fn=lambda x: x),
    case("mT", shapes=[(2, 3, 4)], fn=lambda x: x.mT, np_fn=lambda x: np.swapaxes(x, -1, -2)),
    case("view_as", shapes=[(3, 4)], fn=lambda x: x.view_as(x.new_zeros(2, 6)), np_fn=lambda x: x.reshape(2, 6)),
    case("expand_as", shapes=[(3, 1)], fn=lambda x: x.expand_as(x.new_zeros(2, 3, 4)),
         np_fn=lambda x: np.broadcast_to(x, (2, 3, 4))),
    case("hstack", shapes=[(3, 2), (3, 4)], fn=lambda a, b: _lib(a).hstack([a, b]), np_fn=lambda a, b: np.hstack([a, b])),
    case("hstack-1d", shapes=[(2,), (3,)], fn=lambda a, b: _lib(a).hstack([a, b]), np_fn=lambda a, b: np.hstack([a, b])),
    case("vstack", shapes=[(4,), (2, 4)], fn=lambda a, b: _lib(a).vstack([a, b]), np_fn=lambda a, b: np.vstack([a, b])),
    case("flip", shapes=[(3, 4)], fn=lambda x: x.flip(0), np_fn=lambda x: x[::-1]),
    case("flip-two", shapes=[(2, 3, 4)], fn=lambda x: x.flip((0, 2)), np_fn=lambda x: x[::-1, :, ::-1]),
    case("roll", shapes=[(3, 4)], fn=lambda x: x.roll(1, 1), np_fn=lambda x: np.roll(x, 1, 1)),
    case("roll-multi", shapes=[(3, 4)], fn=lambda x: x.roll((2, -1), (0, 1)), np_fn=lambda x: np.roll(x, (2, -1), (0, 1))),
    case("roll-flat", shapes=[(3, 4)], fn=lambda x: x.roll(5), np_fn=lambda x: np.roll(x, 5)),
    case("repeat", shapes=[(2, 3)], fn=lambda x: x.repeat(2, 1, 3), np_fn=lambda x: np.tile(x, (2, 1, 3))),
    case("repeat-tuple", shapes=[(3,)], fn=lambda x: x.repeat((2, 2)), np_fn=lambda x: np.tile(x, (2, 2))),
    case("repeat_interleave", shapes=[(2, 3)], fn=lambda x: x.repeat_interleave(2, dim=1),
         np_fn=lambda x: np.repeat(x, 2, 1)),
    case("repeat_interleave-counts", shapes=[(3, 2)], fn=lambda x: x.repeat_interleave(_idx(x, [1, 0, 3]), dim=0),
         np_fn=lambda x: np.repeat(x, [1, 0, 3], 0)),
    case("repeat_interleave-flat", shapes=[(2, 2)], fn=lambda x: _lib(x).repeat_interleave(x, 3),
         np_fn=lambda x: np.repeat(x, 3)),
    case("tril", shapes=[(4, 4)], fn=lambda x: x.tril(), np_fn=np.tril),
    case("triu-k", shapes=[(2, 3, 4)], fn=lambda x: _lib(x).triu(x, 1), np_fn=lambda x: np.triu(x, 1)),
    case("tril-neg-k", shapes=[(3, 5)], fn=lambda x: x.tril(-1), np_fn=lambda x: np.tril(x, -1)),
    case("diag-1d", shapes=[(3,)], fn=lambda x: _lib(x).diag(x), np_fn=np.diag),
    case("diag-1d-k", shapes=[(3,)], fn=lambda x: x.diag(-1), np_fn=lambda x: np.diag(x, -1)),
    case("diag-2d", shapes=[(3, 4)], fn=lambda x: x.diag(), np_fn=np.diag),
    case("diag-2d-k", shapes=[(4, 3)], fn=lambda x: x.diag(-2), np_fn=lambda x: np.diag(x, -2)),
]

_GATHER_IDX = [[0, 2, 1, 2], [1, 1, 0, 0]]

INDEXING_MORE = [
    case("gather-dim1", shapes=[(2, 3)], fn=lambda x: x.gather(1, _idx(x, [[0, 2, 2], [1, 0, 1]])),
         np_fn=lambda x: np.take_along_axis(x, np.array([[0, 2, 2], [1, 0, 1]]), 1)),
    case("gather-dim0-smaller-index", shapes=[(3, 4)], fn=lambda x: _lib(x).gather(x, 0, _idx(x, _GATHER_IDX)),
         np_fn=lambda x: np.take_along_axis(x, np.array(_GATHER_IDX), 0)),
    case("scatter-src", shapes=[(3, 4), (2, 4)], fn=lambda x, s: x.scatter(0, _idx(x, [[0, 1, 2, 0], [2, 0, 1, 1]]), s),
         np_fn=None),
    case("scatter-value", shapes=[(3, 4)], fn=lambda x: x.scatter(1, _idx(x, [[0], [3], [1]]), 2.5), np_fn=None),
    case("scatter_add", shapes=[(3, 4), (2, 4)],
         fn=lambda x, s: x.scatter_add(0, _idx(x, [[0, 0, 2, 0], [0, 1, 2, 2]]), s), np_fn=None),
    case("index_select", shapes=[(3, 4)], fn=lambda x: x.index_select(1, _idx(x, [3, 0, 3])),
         np_fn=lambda x: x[:, [3, 0, 3]]),
    case("index_select-fn", shapes=[(4, 2)], fn=lambda x: _lib(x).index_select(x, 0, _idx(x, [2])),
         np_fn=lambda x: x[[2]]),
    case("sort-values", shapes=[(3, 5)], fn=lambda x: x.sort(dim=1), np_fn=lambda x: np.sort(x, 1)),
    case("sort-descending", shapes=[(4, 3)], fn=lambda x: x.sort(0, descending=True).values,
         np_fn=lambda x: -np.sort(-x, 0)),
    case("topk", shapes=[(3, 6)], fn=lambda x: x.topk(2), np_fn=lambda x: -np.sort(-x, 1)[:, :2]),
    case("topk-smallest-dim0", shapes=[(5, 3)], fn=lambda x: _lib(x).topk(x, 3, dim=0, largest=False),
         np_fn=lambda x: np.sort(x, 0)[:3]),
    case("min-dim-fn", shapes=[(3, 4)], fn=lambda x: _lib(x).min(x, 1), np_fn=lambda x: x.min(1)),
]

MATMUL_MORE = [
    case("mm", shapes=[(3, 4), (4, 2)], fn=lambda a, b: a.mm(b), np_fn=np.matmul),
    case("bmm", shapes=[(2, 3, 4), (2, 4, 5)], fn=lambda a, b: _lib(a).bmm(a, b), np_fn=np.matmul),
    case("mv", shapes=[(3, 4), (4,)], fn=lambda a, b: a.mv(b), np_fn=np.matmul),
    case("dot", shapes=[(4,), (4,)], fn=lambda a, b: _lib(a).dot(a, b), np_fn=np.dot),
    case("outer", shapes=[(3,), (4,)], fn=lambda a, b: a.outer(b), np_fn=np.outer),
    case("einsum-matmul", shapes=[(3, 4), (4, 5)], fn=lambda a, b: _lib(a).einsum("ij,jk->ik", a, b), np_fn=np.matmul),
    case("einsum-batched-list", shapes=[(2, 3, 4), (2, 4, 5)], fn=lambda a, b: _lib(a).einsum("bij,bjk->bik", [a, b]),
         np_fn=np.matmul),
    case("einsum-implicit", shapes=[(3, 4), (4, 3)], fn=lambda a, b: _lib(a).einsum("ij,jk", a, b), np_fn=np.matmul),
    case("einsum-trace", shapes=[(4, 4)], fn=lambda a: _lib(a).einsum("ii->", a), np_fn=np.trace),
    case("einsum-diag", shapes=[(3, 3)], fn=lambda a: _lib(a).einsum("ii->i", a), np_fn=np.diag),
    case("einsum-sum-out", shapes=[(3, 4)], fn=lambda a: _lib(a).einsum("ij->j", a), np_fn=lambda a: a.sum(0)),
    case("einsum-outer", shapes=[(3,), (4,)], fn=lambda a, b: _lib(a).einsum("i,j->ij", a, b), np_fn=np.outer),
    case("einsum-ellipsis", shapes=[(2, 3, 4), (4, 5)], fn=lambda a, b: _lib(a).einsum("...ij,jk->...ik", a, b),
         np_fn=np.matmul),
    case("einsum-ellipsis-broadcast", shapes=[(2, 1, 3), (4, 3)],
         fn=lambda a, b: _lib(a).einsum("...j,...j->...", a, b), np_fn=lambda a, b: (a * b).sum(-1)),
    case("einsum-three", shapes=[(2, 3), (3, 4), (4,)], fn=lambda a, b, c: _lib(a).einsum("ij,jk,k->i", a, b, c),
         np_fn=lambda a, b, c: a @ b @ c),
    case("einsum-attention", shapes=[(2, 3, 4), (2, 5, 4)], fn=lambda q, k: _lib(q).einsum("bqd,bkd->bqk", q, k),
         np_fn=lambda q, k: q @ np.swapaxes(k, 1, 2)),
]

ACTIVATION_MORE = [
    case("softmax-fn-dim0", shapes=[(3, 4)], fn=lambda x: _lib(x).softmax(x, 0),
         np_fn=lambda x: np.exp(x) / np.exp(x).sum(0)),
    case("log_softmax-method", shapes=[(2, 3, 4)], fn=lambda x: x.log_softmax(1),
         np_fn=lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
]

ALL_MORE = ELEMENTWISE_MORE + REDUCE_MORE + SHAPE_MORE + INDEXING_MORE + MATMUL_MORE + ACTIVATION_MORE
