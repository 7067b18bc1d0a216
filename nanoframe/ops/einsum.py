"""einsum (torch.einsum / np.einsum): 'ij,jk->ik', implicit outputs, '...', repeated letters.

The wrapper rewrites the equation with explicit letters ('...' expanded per operand) and expands
operands whose size-1 dims broadcast, so the Function sees one size per letter. The gradient of
operand k is an einsum of the output gradient with the other operands, written to k's letters:
letters of k that appear nowhere else were summed in the forward (the gradient is constant along
them: broadcast), and a repeated letter ('ii') is a diagonal (the gradient goes onto it).
"""
import string

import numpy as np

from nanoframe.autograd import Function
from nanoframe.tensor import Tensor


class Einsum(Function):
    @staticmethod
    def forward(ctx, *operands, inputs, output):
        ctx.inputs, ctx.output = inputs, output
        ctx.shapes = [o.shape for o in operands]
        ctx.save_for_backward(*operands)  # each operand's gradient needs all the others
        return np.asarray(np.einsum(f"{','.join(inputs)}->{output}", *operands, optimize=True))

    @staticmethod
    def backward(ctx, gy):
        ops, grads = ctx.saved_tensors, []
        for k, (sub, need) in enumerate(zip(ctx.inputs, ctx.needs_input_grad)):
            if not need:
                grads.append(None)
                continue
            others = [(s, o) for j, (s, o) in enumerate(zip(ctx.inputs, ops)) if j != k]
            letters = "".join(dict.fromkeys(sub))                       # k's letters, once each
            present = set(ctx.output).union(*(s for s, _ in others))
            kept = "".join(c for c in letters if c in present)
            subs = ",".join([ctx.output] + [s for s, _ in others])
            g = np.einsum(f"{subs}->{kept}", gy, *(o for _, o in others), optimize=True)
            size = dict(zip(sub, ctx.shapes[k]))
            g = np.broadcast_to(g.reshape([size[c] if c in kept else 1 for c in letters]),
                                [size[c] for c in letters])            # summed letters: constant
            if letters == sub:
                grads.append(np.ascontiguousarray(g))
            else:
                gx = np.zeros(ctx.shapes[k], gy.dtype)
                np.einsum(f"{sub}->{letters}", gx)[...] = g             # a writeable diagonal view
                grads.append(gx)
        return tuple(grads)


def _parse(equation, ndims):
    """Explicit per-operand letter strings and the output letters ('...' expanded)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum(): the equation has {len(terms)} operands but {len(ndims)} were given")
    used = set(c for c in eq if c.isalpha())
    spare = [c for c in string.ascii_letters if c not in used]
    n_ell = max((nd - len(t.replace("...", "")) for t, nd in zip(terms, ndims) if "..." in t), default=0)
    ell = "".join(spare[:n_ell])
    inputs = []
    for t, nd in zip(terms, ndims):
        if not all(c.isalpha() for c in t.replace("...", "")):
            raise ValueError(f"einsum(): invalid subscript in {equation!r}")
        if "..." in t:
            k = nd - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != nd:
            raise ValueError(f"einsum(): subscript {t!r} has {len(t)} letters for an operand with {nd} dims")
        inputs.append(t)
    if not arrow:  # implicit output: '...' first, then the letters used once, in alphabetical order
        once = sorted(c for c in used if lhs.count(c) == 1)
        out = ell + "".join(once)
    else:
        out = out.replace("...", ell)
    for c in out:
        if not any(c in t for t in inputs):
            raise ValueError(f"einsum(): output letter {c!r} does not appear in the inputs of {equation!r}")
    return inputs, out


def einsum(equation, *operands):
    """torch.einsum(equation, *operands) (operands may also be given as one list)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [o if isinstance(o, Tensor) else Tensor(o) for o in operands]
    inputs, output = _parse(equation, [o.ndim for o in operands])
    size = {}
    for sub, o in zip(inputs, operands):
        for c, n in zip(sub, o.shape):
            if size.get(c, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum(): letter {c!r} has sizes {size[c]} and {n}")
            size[c] = max(size.get(c, 1), n)
    operands = [o.expand(*[size[c] for c in sub]) if any(size[c] != n for c, n in zip(sub, o.shape)) else o
                for sub, o in zip(inputs, operands)]
    return Einsum.apply(*operands, inputs=tuple(inputs), output=output)
