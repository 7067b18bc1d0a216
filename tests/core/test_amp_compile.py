"""torch.amp (autocast, GradScaler), torch.cuda.amp, torch.compile and pin_memory the CPU way:
what a CPU-only torch disables is disabled here with the same warning, what it computes (the CPU
GradScaler) is computed the same, and lower-precision compute is one clear error."""
import contextlib
import inspect
import warnings

import numpy as np
import pytest

import nanoframe as nf
from nanoframe import nn
from nanoframe.errors import NanoframeError, UnsupportedError

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ---- autocast -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nf.autocast("cuda"), lambda: nf.amp.autocast(device_type="mps"),
                                  lambda: nf.cuda.amp.autocast(), lambda: nf.autocast("cpu", dtype=nf.float32)])
def test_autocast_where_torch_disables_it_warns_and_runs_in_float32(make):
    with pytest.warns(UserWarning, match="Disabling autocast"):
        ctx = make()
    x = nf.randn(2, 3)
    with ctx:
        y = x @ x.t()
    assert y.dtype == nf.float32 and not ctx._enabled


@pytest.mark.parametrize("dtype", [None, nf.bfloat16, nf.float16])
def test_autocast_to_lower_precision_on_the_cpu_is_one_clear_error(dtype):
    with pytest.raises(UnsupportedError, match="^autocast to nanoframe.b?float16: nanoframe computes on the CPU in "
                                               "float32 or float64 only") as info:
        nf.amp.autocast(device_type="cpu", dtype=dtype)
    assert "\n" not in str(info.value) and isinstance(info.value, RuntimeError)


def test_autocast_disabled_is_a_no_op_and_a_decorator():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx = nf.autocast("cpu", dtype=nf.bfloat16, enabled=False)

        @nf.autocast("cuda", enabled=False)
        def double(x):
            return x * 2

        with ctx:
            assert double(nf.ones(2)).tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'gpu'"):
        nf.autocast("gpu")
    with pytest.raises(ValueError, match="device_type"):
        nf.autocast(nf.device("cpu"))


@needs_torch
def test_autocast_decisions_match_torch_without_cuda():
    for kwargs in ({"device_type": "cuda"}, {"device_type": "cpu", "dtype": "float32"},
                   {"device_type": "cpu", "enabled": False}):
        ours = dict(kwargs, dtype=getattr(nf, kwargs["dtype"])) if "dtype" in kwargs else kwargs
        theirs = dict(kwargs, dtype=getattr(torch, kwargs["dtype"])) if "dtype" in kwargs else kwargs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert nf.autocast(**ours)._enabled == torch.autocast(**theirs)._enabled is False


# ---- GradScaler -----------------------------------------------------------------------------------
def test_cuda_grad_scaler_on_the_cpu_warns_once_and_passes_through():
    """nanoGPT builds torch.cuda.amp.GradScaler(enabled=(dtype == 'float16')) even on the CPU."""
    with pytest.warns(UserWarning, match="GradScaler is enabled, but CUDA is not available.  Disabling."):
        scaler = nf.cuda.amp.GradScaler(enabled=True)
    model = nn.Linear(3, 1)
    opt = nf.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().numpy().copy()
    loss = model(nf.ones(2, 3)).sum()
    assert scaler.scale(loss) is loss
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()
    assert not np.array_equal(before, model.weight.detach().numpy())
    assert (scaler.is_enabled(), scaler.get_scale(), scaler.state_dict()) == (False, 1.0, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not nf.amp.GradScaler(enabled=False).is_enabled()


def _steps(fw, scaler, model, opt, poison_steps, n=6):
    """n scaled steps on a fixed batch; on the steps in poison_steps one gradient is made inf."""
    x = fw.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    scales, weights = [], []
    for step in range(n):
        opt.zero_grad()
        scaler.scale(((model(x) - 1.0) ** 2).mean()).backward()
        if step in poison_steps:
            with fw.no_grad():
                model.weight.grad[0, 0] = float("inf")
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        weights.append(model.weight.detach().numpy().copy())
    return scales, weights


@needs_torch
def test_cpu_grad_scaler_matches_torch():
    kwargs = dict(init_scale=2.0**10, growth_factor=3.0, backoff_factor=0.25, growth_interval=2)
    torch.manual_seed(0)
    t_model = torch.nn.Linear(3, 2)
    n_model = nn.Linear(3, 2)
    n_model.load_state_dict({k: nf.tensor(v.detach().numpy()) for k, v in t_model.state_dict().items()})
    t_scaler, n_scaler = torch.amp.GradScaler("cpu", **kwargs), nf.amp.GradScaler("cpu", **kwargs)
    t = _steps(torch, t_scaler, t_model, torch.optim.SGD(t_model.parameters(), lr=0.1), {1, 4})
    n = _steps(nf, n_scaler, n_model, nf.optim.SGD(n_model.parameters(), lr=0.1), {1, 4})
    assert n[0] == t[0] == [1024.0, 256.0, 256.0, 768.0, 192.0, 192.0]
    for a, b in zip(n[1], t[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert n_scaler.state_dict() == t_scaler.state_dict()
    np.testing.assert_array_equal(n[1][0], n[1][1])  # the poisoned step was skipped


def test_grad_scaler_state_and_misuse():
    scaler = nf.amp.GradScaler("cpu", init_scale=8.0)
    model = nn.Linear(2, 1)
    opt = nf.optim.SGD(model.parameters(), lr=0.1)
    model(nf.ones(1, 2)).sum().backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        nf.amp.GradScaler("cpu").step(opt, closure=lambda: 0)
    scaler.update(new_scale=2.0)
    other = nf.amp.GradScaler("cpu")
    other.load_state_dict(scaler.state_dict())
    assert other.get_scale() == 2.0 and other.state_dict() == scaler.state_dict()
    with pytest.raises(RuntimeError, match="empty, possibly because it was saved from a disabled"):
        other.load_state_dict({})
    with pytest.raises(ValueError, match="growth factor must be > 1.0"):
        nf.amp.GradScaler("cpu", growth_factor=1.0)
    scaled = nf.amp.GradScaler("cpu", init_scale=4.0).scale([nf.ones(1), (nf.ones(1),)])
    assert scaled[0].item() == 4.0 and scaled[1][0].item() == 4.0


# ---- compile, pin_memory, and the AdamW signature nanoGPT inspects --------------------------------
def test_compile_returns_the_module_or_function_itself():
    model = nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="no compiler"):
        nf.compiler._noted = False
        assert nf.compile(model) is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is shown once
        assert nf.compile(model, mode="max-autotune", fullgraph=True) is model

        @nf.compile(dynamic=True)
        def f(x):
            return x + 1

        assert f(nf.ones(1)).item() == 2.0 and nf.compiler.disable(f) is f
    assert nf.compiler.is_compiling() is False
    with pytest.raises(RuntimeError, match="must be a Module or a function"):
        nf.compile(3)


def test_pin_memory_and_non_blocking_on_the_cpu():
    x = nf.arange(6).view(2, 3)
    assert x.pin_memory() is x and not x.is_pinned()
    assert x.to("cpu", non_blocking=True) is x
    with pytest.raises(UnsupportedError):
        x.pin_memory("cuda")


def test_nanogpt_optimizer_probe():
    """nanoGPT: `'fused' in inspect.signature(torch.optim.AdamW).parameters` (then fused only on CUDA)."""
    assert "fused" in inspect.signature(nf.optim.AdamW).parameters
    assert isinstance(nf.amp.autocast("cuda", enabled=False), contextlib.AbstractContextManager)
    assert NanoframeError in UnsupportedError.__mro__
