"""The method forms of the ops and the in-place methods of `Tensor` (torch's names and arguments).

Each method is one line routing to its op in nanoframe/ops (in-place ones through
`ops.inplace.apply_inplace`, which gives them torch's semantics); `Tensor` inherits them. The op
modules import Tensor themselves, so they are reached through the `nanoframe.ops` package when a
method runs rather than imported here.
"""
from nanoframe import ops
from nanoframe.random import rng_of


class TensorMethods:
    """Mixin of Tensor: in-place methods, then the method forms of the ops."""

    # ---- in-place methods (torch semantics: see nanoframe/ops/inplace.py) -----------------------
    def add_(self, other, *, alpha=1):
        return ops.inplace.apply_inplace(self, ops.elementwise.add, other, alpha=alpha)

    def sub_(self, other, *, alpha=1):
        return ops.inplace.apply_inplace(self, ops.elementwise.sub, other, alpha=alpha)

    def mul_(self, other):
        return ops.inplace.apply_inplace(self, ops.elementwise.mul, other)

    def div_(self, other, *, rounding_mode=None):
        return ops.inplace.apply_inplace(self, ops.elementwise.div, other, rounding_mode=rounding_mode)

    def pow_(self, exponent):
        return ops.inplace.apply_inplace(self, ops.elementwise.pow, exponent)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return ops.inplace.apply_inplace(self, ops.elementwise.addcmul, tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return ops.inplace.apply_inplace(self, ops.elementwise.addcdiv, tensor1, tensor2, value=value)

    def lerp_(self, end, weight):
        return ops.inplace.apply_inplace(self, ops.elementwise.lerp, end, weight)

    def neg_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.neg)

    def exp_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.exp)

    def log_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.log)

    def sqrt_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.sqrt)

    def abs_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.abs)

    def tanh_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.tanh)

    def sigmoid_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.sigmoid)

    def relu_(self):
        return ops.inplace.apply_inplace(self, ops.elementwise.relu)

    def sin_(self):
        return ops.inplace.apply_inplace(self, ops.unary.sin)

    def cos_(self):
        return ops.inplace.apply_inplace(self, ops.unary.cos)

    def log1p_(self):
        return ops.inplace.apply_inplace(self, ops.unary.log1p)

    def expm1_(self):
        return ops.inplace.apply_inplace(self, ops.unary.expm1)

    def square_(self):
        return ops.inplace.apply_inplace(self, ops.unary.square)

    def rsqrt_(self):
        return ops.inplace.apply_inplace(self, ops.unary.rsqrt)

    def reciprocal_(self):
        return ops.inplace.apply_inplace(self, ops.unary.reciprocal)

    def floor_(self):
        return ops.inplace.apply_inplace(self, ops.unary.floor)

    def ceil_(self):
        return ops.inplace.apply_inplace(self, ops.unary.ceil)

    def round_(self, *, decimals=0):
        return ops.inplace.apply_inplace(self, ops.unary.round, decimals=decimals)

    def trunc_(self):
        return ops.inplace.apply_inplace(self, ops.unary.trunc)

    def sign_(self):
        return ops.inplace.apply_inplace(self, ops.unary.sign)

    def clamp_(self, min=None, max=None):
        return ops.inplace.apply_inplace(self, ops.elementwise.clip, min, max)

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        return ops.inplace.apply_inplace(self, ops.elementwise.masked_fill, mask, value)

    def scatter_(self, dim, index, src=None, *, value=None):
        return ops.inplace.apply_inplace(self, ops.indexing.scatter, dim, index, src, value=value)

    def scatter_add_(self, dim, index, src):
        return ops.inplace.apply_inplace(self, ops.indexing.scatter_add, dim, index, src)

    def zero_(self):
        return ops.inplace.fill_(self, 0)

    def fill_(self, value):
        return ops.inplace.fill_(self, value)

    def copy_(self, src, non_blocking=False):
        return ops.inplace.copy_(self, src)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with normal samples from the library's generator (or `generator`)."""
        draws = rng_of(generator).standard_normal(self.array.shape) * std + mean
        return ops.inplace.fill_(self, draws)

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        """Fill with uniform samples in [a, b) from the library's generator (or `generator`)."""
        return ops.inplace.fill_(self, rng_of(generator).uniform(a, b, self.array.shape))

    # ---- method forms of the ops -----------------------------------------------------------------
    def add(self, other, *, alpha=1):
        return ops.elementwise.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1):
        return ops.elementwise.sub(self, other, alpha=alpha)

    def mul(self, other):
        return ops.elementwise.mul(self, other)

    def div(self, other, *, rounding_mode=None):
        return ops.elementwise.div(self, other, rounding_mode=rounding_mode)

    def floor_divide(self, other):
        return ops.elementwise.floor_divide(self, other)

    def remainder(self, other):
        return ops.elementwise.remainder(self, other)

    def pow(self, exponent):
        return ops.elementwise.pow(self, exponent)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return ops.elementwise.addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return ops.elementwise.addcdiv(self, tensor1, tensor2, value=value)

    def lerp(self, end, weight):
        return ops.elementwise.lerp(self, end, weight)

    def neg(self):
        return ops.elementwise.neg(self)

    def exp(self):
        return ops.elementwise.exp(self)

    def log(self):
        return ops.elementwise.log(self)

    def sqrt(self):
        return ops.elementwise.sqrt(self)

    def abs(self):
        return ops.elementwise.abs(self)

    def tanh(self):
        return ops.elementwise.tanh(self)

    def sigmoid(self):
        return ops.elementwise.sigmoid(self)

    def relu(self):
        return ops.elementwise.relu(self)

    def sin(self):
        return ops.unary.sin(self)

    def cos(self):
        return ops.unary.cos(self)

    def log1p(self):
        return ops.unary.log1p(self)

    def expm1(self):
        return ops.unary.expm1(self)

    def log2(self):
        return ops.unary.log2(self)

    def log10(self):
        return ops.unary.log10(self)

    def square(self):
        return ops.unary.square(self)

    def rsqrt(self):
        return ops.unary.rsqrt(self)

    def reciprocal(self):
        return ops.unary.reciprocal(self)

    def sign(self):
        return ops.unary.sign(self)

    def floor(self):
        return ops.unary.floor(self)

    def ceil(self):
        return ops.unary.ceil(self)

    def round(self, *, decimals=0):
        return ops.unary.round(self, decimals=decimals)

    def trunc(self):
        return ops.unary.trunc(self)

    def softmax(self, dim, dtype=None):
        return ops.activation.softmax(self, dim, dtype)

    def log_softmax(self, dim, dtype=None):
        return ops.activation.log_softmax(self, dim, dtype)

    def maximum(self, other):
        return ops.elementwise.maximum(self, other)

    def minimum(self, other):
        return ops.elementwise.minimum(self, other)

    def clip(self, min=None, max=None):
        return ops.elementwise.clip(self, min, max)

    clamp = clip

    def masked_fill(self, mask, value):
        return ops.elementwise.masked_fill(self, mask, value)

    def where(self, condition, other):
        return ops.elementwise.where(condition, self, other)

    def eq(self, other):
        return ops.logical.eq(self, other)

    def ne(self, other):
        return ops.logical.ne(self, other)

    def lt(self, other):
        return ops.logical.lt(self, other)

    def le(self, other):
        return ops.logical.le(self, other)

    def gt(self, other):
        return ops.logical.gt(self, other)

    def ge(self, other):
        return ops.logical.ge(self, other)

    def logical_and(self, other):
        return ops.logical.logical_and(self, other)

    def logical_or(self, other):
        return ops.logical.logical_or(self, other)

    def logical_xor(self, other):
        return ops.logical.logical_xor(self, other)

    def logical_not(self):
        return ops.logical.logical_not(self)

    def isnan(self):
        return ops.logical.isnan(self)

    def isinf(self):
        return ops.logical.isinf(self)

    def isfinite(self):
        return ops.logical.isfinite(self)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.logical.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.logical.allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other):
        return ops.logical.equal(self, other)

    def matmul(self, other):
        return ops.matmul.matmul(self, other)

    def mm(self, mat2):
        return ops.matmul.mm(self, mat2)

    def bmm(self, mat2):
        return ops.matmul.bmm(self, mat2)

    def mv(self, vec):
        return ops.matmul.mv(self, vec)

    def dot(self, other):
        return ops.matmul.dot(self, other)

    def outer(self, vec2):
        return ops.matmul.outer(self, vec2)

    def sum(self, dim=None, keepdim=False, *, dtype=None, **kw):
        return ops.reduce.sum(self, dim, keepdim, dtype=dtype, **kw)

    def mean(self, dim=None, keepdim=False, *, dtype=None, **kw):
        return ops.reduce.mean(self, dim, keepdim, dtype=dtype, **kw)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return ops.reduce.prod(self, dim, keepdim, dtype=dtype)

    def max(self, dim=None, keepdim=False, **kw):
        return ops.reduce.max(self, dim, keepdim, **kw)

    def min(self, dim=None, keepdim=False, **kw):
        return ops.reduce.min(self, dim, keepdim, **kw)

    def amax(self, dim=None, keepdim=False, **kw):
        return ops.reduce.amax(self, dim, keepdim, **kw)

    def amin(self, dim=None, keepdim=False, **kw):
        return ops.reduce.amin(self, dim, keepdim, **kw)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
        return ops.reduce.var(self, dim, unbiased, keepdim, correction=correction, **kw)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
        return ops.reduce.std(self, dim, unbiased, keepdim, correction=correction, **kw)

    def logsumexp(self, dim, keepdim=False):
        return ops.reduce.logsumexp(self, dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return ops.reduce.norm(self, p, dim, keepdim, dtype=dtype)

    def all(self, dim=None, keepdim=False):
        return ops.reduce.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return ops.reduce.any(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.reduce.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.reduce.argmin(self, dim, keepdim)

    def cumsum(self, dim, *, dtype=None):
        return ops.scan.cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim, *, dtype=None):
        return ops.scan.cumprod(self, dim, dtype=dtype)

    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.sort.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return ops.sort.topk(self, k, dim, largest, sorted)

    def gather(self, dim, index):
        return ops.indexing.gather(self, dim, index)

    def scatter(self, dim, index, src=None, *, value=None):
        return ops.indexing.scatter(self, dim, index, src, value=value)

    def scatter_add(self, dim, index, src):
        return ops.indexing.scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return ops.indexing.index_select(self, dim, index)

    def nonzero(self, *, as_tuple=False):
        return ops.indexing.nonzero(self, as_tuple=as_tuple)

    def argwhere(self):
        return ops.indexing.nonzero(self)

    def reshape(self, *shape):
        return ops.shape.reshape(self, *shape)

    def view(self, *shape):
        return ops.shape.view(self, *shape)

    def view_as(self, other):
        return ops.shape.view(self, other.shape)

    def reshape_as(self, other):
        return ops.shape.reshape(self, other.shape)

    def expand_as(self, other):
        return ops.shape.expand(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return ops.shape.transpose(self, dim0, dim1)

    swapaxes = transpose

    def t(self):
        return ops.shape.t(self)

    def permute(self, *dims):
        return ops.shape.permute(self, *dims)

    def expand(self, *shape):
        return ops.shape.expand(self, *shape)

    def broadcast_to(self, shape):
        return ops.shape.broadcast_to(self, shape)

    def squeeze(self, dim=None):
        return ops.shape.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.shape.unsqueeze(self, dim)

    def narrow(self, dim, start, length):
        return ops.shape.narrow(self, dim, start, length)

    def unbind(self, dim=0):
        return ops.shape.unbind(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return ops.shape.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.shape.chunk(self, chunks, dim)

    def flip(self, *dims):
        return ops.rearrange.flip(self, dims[0] if len(dims) == 1 else dims)

    def roll(self, shifts, dims=None):
        return ops.rearrange.roll(self, shifts, dims)

    def repeat(self, *sizes):
        return ops.rearrange.repeat(self, *sizes)

    def repeat_interleave(self, repeats, dim=None):
        return ops.rearrange.repeat_interleave(self, repeats, dim)

    def tril(self, diagonal=0):
        return ops.rearrange.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.rearrange.triu(self, diagonal)

    def diag(self, diagonal=0):
        return ops.rearrange.diag(self, diagonal)
