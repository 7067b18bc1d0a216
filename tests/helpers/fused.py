"""Shared helpers for the fused-op tests: float64 gradcheck (the library's) and torch parity on ndarrays."""
import numpy as np

import nanoframe as nf
from nanoframe.testing import gradcheck as lib_gradcheck


def to_nf(arrays, grad_idx):
    """Tensors for float arrays (requires_grad where the index is in grad_idx); others pass as-is."""
    out = []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            out.append(nf.Tensor(a.copy(), requires_grad=i in grad_idx))
        else:
            out.append(a)
    return out


def upstream(shape, dtype, seed=0):
    """A fixed random upstream gradient, so every output element counts."""
    return np.asarray(np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def nf_grads(fn, arrays, grad_idx, seed=0):
    """(output array, [grad of each input in grad_idx]) from nanoframe's backward."""
    ts = to_nf(arrays, grad_idx)
    out = fn(*ts)
    gy = upstream(out.shape, out.dtype, seed)
    out.backward(gradient=gy)
    return out.array, [ts[i].grad_array for i in grad_idx]


def gradcheck(fn, arrays, grad_idx=(0,), eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """nanoframe.testing.gradcheck on ndarrays, all in float64: the inputs in grad_idx require grad,
    the output is weighted by the same fixed upstream gradient as nf_grads, and every analytic
    gradient must equal the central differences within rtol/atol (GradcheckError otherwise)."""
    arrays = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
    lib_gradcheck(fn, to_nf(arrays, grad_idx), eps=eps, rtol=rtol, atol=atol, seed=seed)


def parity(nf_fn, torch_fn, arrays, grad_idx=(0,), rtol=1e-5, atol=1e-7, seed=0):
    """Forward values and every gradient in grad_idx equal torch's (same inputs, same upstream grad).

    An op returning a tuple (values, indices) from max/min with a dim: the trailing outputs must be
    equal exactly, the gradients flow through the first. An input torch gives no gradient (it does
    not reach the output) must get none or zeros from nanoframe."""
    import torch

    trailing = {}

    def first(name, fn):
        def run(*args):
            out = fn(*args)
            if isinstance(out, tuple):
                trailing[name] = out[1:]
                return out[0]
            return out
        return run

    out, grads = nf_grads(first("nf", nf_fn), arrays, grad_idx, seed)
    tts = []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a.copy())
            if i in grad_idx:
                t.requires_grad_(True)
            tts.append(t)
        else:
            tts.append(a)
    tout = first("torch", torch_fn)(*tts)
    assert trailing.keys() in ({"nf", "torch"}, set()), f"only one side returned a tuple: {set(trailing)}"
    for a, b in zip(trailing.get("nf", ()), trailing.get("torch", ()), strict=True):
        np.testing.assert_array_equal(np.asarray(a.array), b.numpy())
    assert tuple(tout.shape) == out.shape, (tout.shape, out.shape)
    assert out.dtype == arrays[grad_idx[0]].dtype if grad_idx else True
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    tout.backward(torch.from_numpy(upstream(out.shape, out.dtype, seed)))
    for i, g in zip(grad_idx, grads):
        tg = tts[i].grad
        if tg is None:
            assert g is None or not np.any(g), f"input {i}: torch has no gradient, nanoframe a nonzero one"
            continue
        assert g is not None, f"no gradient for input {i}"
        assert g.dtype == arrays[i].dtype, (g.dtype, arrays[i].dtype)
        np.testing.assert_allclose(g, tg.numpy(), rtol=rtol, atol=atol, err_msg=f"grad of input {i}")


def composed_match(fused, composed, arrays, grad_idx=(0,), rtol=1e-10, atol=1e-12, seed=0):
    """The fused op and its twin built from primitive Tensor ops agree in value and gradients."""
    out_f, g_f = nf_grads(fused, arrays, grad_idx, seed)
    out_c, g_c = nf_grads(composed, arrays, grad_idx, seed)
    np.testing.assert_allclose(out_f, out_c, rtol=rtol, atol=atol, err_msg="forward")
    for i, a, b in zip(grad_idx, g_f, g_c):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"grad of input {i}")


def rand(*shape, dtype=np.float64, seed=0, scale=1.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
