"""Devices and dtypes the CPU way: device objects, the cuda/backends/accelerator modules, dtype
objects and aliases, the default dtype, factories' dtype=/device=/requires_grad=, Tensor.to/type and
Module.to. Behaviour is checked against a CPU-only torch where torch has the same thing."""
import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nanoframe as nf
from nanoframe import nn
from nanoframe.errors import NanoframeError, UnsupportedError

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ---- devices -------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("args", [("cpu",), ("cpu:0",), ("cpu", 0), ("cuda",), ("cuda", 1), ("cuda:2",), ("mps",)])
def test_device_objects_match_torch(args):
    d, t = nf.device(*args), torch.device(*args)
    assert (d.type, d.index, str(d), repr(d)) == (t.type, t.index, str(t), repr(t))
    assert d == nf.device(*args) and hash(d) == hash(nf.device(*args))
    assert (d == nf.device("cpu")) == (t == torch.device("cpu"))
    assert pickle.loads(pickle.dumps(d)) == d


def test_device_errors():
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        nf.device("gpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        nf.device("cpu:x")
    assert nf.device(type="cpu") == nf.device("cpu") and nf.device(nf.device("cpu:0")).index == 0


@pytest.mark.parametrize("where", ["cuda", "cuda:0", "mps", nf.device("cuda", 1), 0])
def test_asking_for_a_gpu_is_one_clear_error(where):
    for make in (lambda: nf.zeros(2, device=where), lambda: nf.tensor([1.0], device=where),
                 lambda: nf.ones(2).to(where), lambda: nf.randn(2, device=where), lambda: nf.arange(3, device=where),
                 lambda: nn.Linear(2, 2).to(where)):
        with pytest.raises(UnsupportedError, match="nanoframe runs on the CPU only") as info:
            make()
        assert isinstance(info.value, NanoframeError) and isinstance(info.value, RuntimeError)
        assert "\n" not in str(info.value)
    with pytest.raises(UnsupportedError):
        nf.ones(2).cuda()
    with pytest.raises(UnsupportedError):
        nn.Linear(2, 2).cuda()


def test_cpu_device_everywhere():
    x = nf.zeros(2, device="cpu")
    assert x.device == nf.device("cpu") and not x.is_cuda and x.cpu() is x
    assert x.to("cpu") is x and x.to(nf.device("cpu:0")) is x and x.to("cpu", copy=True) is not x
    m = nn.Linear(2, 2)
    assert m.to("cpu") is m and m.cpu() is m


def test_cuda_backends_accelerator_report_no_gpu():
    assert nf.cuda.is_available() is False and nf.cuda.device_count() == 0
    assert nf.cuda.manual_seed(1) is None and nf.cuda.manual_seed_all(1) is None
    nf.cuda.synchronize()
    nf.cuda.empty_cache()
    assert nf.backends.mps.is_available() is False and nf.accelerator.is_available() is False
    assert nf.accelerator.current_accelerator() is None
    nf.backends.cuda.matmul.allow_tf32 = True
    nf.backends.cudnn.allow_tf32 = True
    nf.backends.cudnn.benchmark, nf.backends.cudnn.deterministic = True, True
    assert nf.backends.cuda.matmul.allow_tf32 and nf.backends.cudnn.benchmark and nf.backends.cudnn.deterministic
    nf.backends.cudnn.benchmark = nf.backends.cudnn.deterministic = False


# ---- dtypes --------------------------------------------------------------------------------------
ALIASES = [("float32", "float32"), ("float", "float32"), ("float64", "float64"), ("double", "float64"),
           ("float16", "float16"), ("half", "float16"), ("int64", "int64"), ("long", "int64"),
           ("int32", "int32"), ("int", "int32"), ("int16", "int16"), ("short", "int16"), ("int8", "int8"),
           ("uint8", "uint8"), ("bool", "bool"), ("bfloat16", "bfloat16")]


@pytest.mark.parametrize("alias,name", ALIASES)
def test_dtype_aliases(alias, name):
    d = getattr(nf, alias)
    assert d is getattr(nf, name) and d.name == name and repr(d) == f"nanoframe.{name}" and str(d) == repr(d)
    assert pickle.loads(pickle.dumps(d)) is d and copy.deepcopy(d) is d
    if torch is not None:
        t = getattr(torch, alias)
        assert (d.is_floating_point, d.is_signed, d.itemsize) == (t.is_floating_point, t.is_signed, t.itemsize)


@pytest.mark.parametrize("name", ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"])
def test_tensor_dtype_equals_numpy_and_nanoframe(name):
    npd = np.dtype(np.bool_ if name == "bool" else name)
    x = nf.zeros(2, dtype=getattr(nf, name))
    assert x.dtype == getattr(nf, name) and x.dtype == npd and x.dtype == npd.type and npd == x.dtype
    assert x.dtype is getattr(nf, name) and x.array.dtype == npd
    assert {npd: 1}[x.dtype] == 1 and {x.dtype: 1}[npd] == 1  # hash equal to NumPy's dtype
    assert np.zeros(2, dtype=x.dtype).dtype == npd and x.dtype.itemsize == npd.itemsize
    assert x.dtype != (nf.float64 if name != "float64" else nf.float32) and x.dtype != "float32" and x.dtype is not None


def test_bfloat16_can_be_named_but_not_used():
    dtypes = {"float32": nf.float32, "bfloat16": nf.bfloat16, "float16": nf.float16}  # nanoGPT's table
    assert dtypes["bfloat16"].is_floating_point and dtypes["bfloat16"] == nf.bfloat16 and dtypes["bfloat16"] != nf.float32
    for use in (lambda: nf.zeros(2, dtype=nf.bfloat16), lambda: nf.ones(2).to(nf.bfloat16), lambda: nf.ones(2).bfloat16(),
                lambda: nf.tensor([1.0], dtype=nf.bfloat16), lambda: nn.Linear(2, 2).to(nf.bfloat16),
                lambda: np.zeros(2, dtype=nf.bfloat16)):
        with pytest.raises(UnsupportedError, match="float32 or float64.*bfloat16 is not supported"):
            use()


def test_default_dtype():
    assert nf.get_default_dtype() is nf.float32
    nf.set_default_dtype(nf.float64)
    try:
        assert nf.get_default_dtype() is nf.float64
        for t in (nf.tensor(1.5), nf.zeros(2), nf.ones(2), nf.randn(2), nf.rand(2), nf.arange(0.0, 1.0, 0.5),
                  nf.linspace(0, 1, 3), nf.full((2,), 0.5), nf.eye(2), nf.empty(2)):
            assert t.dtype == nf.float64
        assert nf.tensor([1, 2]).dtype == nf.int64 and nf.full((2,), 3).dtype == nf.int64
    finally:
        nf.set_default_dtype(nf.float32)
    with pytest.raises(TypeError, match="only float32 and float64"):
        nf.set_default_dtype(nf.int64)


def test_dtype_argument_errors():
    with pytest.raises(TypeError, match="dtype"):
        nf.zeros(2, dtype="not-a-dtype")
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        nf.zeros(2, dtype=np.complex128)
    with pytest.raises(TypeError, match="floating point"):
        nf.randn(2, dtype=nf.int64)


# ---- factories -----------------------------------------------------------------------------------
FACTORIES = [
    ("zeros", lambda L, **k: L.zeros(2, 3, **k)), ("ones", lambda L, **k: L.ones((2, 3), **k)),
    ("full", lambda L, **k: L.full((2, 3), 1.5, **k)), ("empty", lambda L, **k: L.empty([2, 3], **k)),
    ("eye", lambda L, **k: L.eye(3, **k)), ("arange", lambda L, **k: L.arange(0.0, 3.0, 0.5, **k)),
    ("linspace", lambda L, **k: L.linspace(-1, 1, 5, **k)), ("logspace", lambda L, **k: L.logspace(0, 2, 3, **k)),
    ("randn", lambda L, **k: L.randn(2, 3, **k)), ("rand", lambda L, **k: L.rand(2, 3, **k)),
    ("tensor", lambda L, **k: L.tensor([1.0, 2.0], **k)),
    ("zeros_like", lambda L, **k: L.zeros_like(L.ones(2), **k)), ("ones_like", lambda L, **k: L.ones_like(L.ones(2), **k)),
    ("full_like", lambda L, **k: L.full_like(L.ones(2), 7.0, **k)), ("empty_like", lambda L, **k: L.empty_like(L.ones(2), **k)),
    ("randn_like", lambda L, **k: L.randn_like(L.ones(2), **k)), ("rand_like", lambda L, **k: L.rand_like(L.ones(2), **k)),
]


@pytest.mark.parametrize("name,make", FACTORIES, ids=[f[0] for f in FACTORIES])
def test_factories_take_dtype_device_requires_grad(name, make):
    t = make(nf, dtype=nf.float64, device="cpu", requires_grad=True)
    assert t.dtype == nf.float64 and t.requires_grad and t.is_leaf and t.device == nf.device("cpu")
    if torch is not None and name not in ("empty", "empty_like", "randn", "rand", "randn_like", "rand_like"):
        ref = make(torch, dtype=torch.float64)
        np.testing.assert_allclose(t.array, ref.numpy(), rtol=1e-12)
        assert tuple(t.shape) == tuple(ref.shape)
    default = make(nf)
    assert default.dtype == nf.float32 and not default.requires_grad


@needs_torch
@pytest.mark.parametrize("make", [
    lambda L: L.arange(5), lambda L: L.arange(2, 11, 3), lambda L: L.arange(5, 0, -2), lambda L: L.arange(0, 1, 0.25),
    lambda L: L.full((2,), 3), lambda L: L.full((2,), True), lambda L: L.tensor([[1, 2]]), lambda L: L.tensor(True),
    lambda L: L.eye(2, 3), lambda L: L.linspace(0, 1, 1), lambda L: L.zeros(0, 3), lambda L: L.ones(()),
    lambda L: L.zeros_like(L.tensor([1, 2])), lambda L: L.full_like(L.tensor([1.0, 2.0]), 2),
    lambda L: L.tensor([1.0, 2.0]).new_zeros(2, 3), lambda L: L.tensor([1, 2]).new_ones((2,)),
    lambda L: L.tensor([1.0]).new_full((2,), 4), lambda L: L.tensor([1.0], dtype=L.float64).new_tensor([1, 2]),
    lambda L: L.tensor([1.0]).new_empty(3).fill_(2),
])
def test_factory_values_and_dtypes_match_torch(make):
    a, b = make(nf), make(torch)
    assert str(a.dtype).split(".")[1] == str(b.dtype).split(".")[1]
    assert tuple(a.shape) == tuple(b.shape)
    np.testing.assert_allclose(a.array, b.numpy())


def test_factory_size_errors():
    with pytest.raises(TypeError, match=r"zeros\(\): argument 'size' must be a tuple of ints, but found element "
                                        r"of type float at pos 1"):
        nf.zeros(2, 1.5)
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        nf.ones(-1)
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        nf.arange(0, 3, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        nf.arange(0, 3, -1)
    assert nf.zeros(nf.tensor(2), 3).shape == (2, 3)  # a one-element integer tensor is a size


def test_from_numpy_shares_memory_and_as_tensor():
    a = np.arange(4.0)
    t = nf.from_numpy(a)
    a[0] = 9.0
    assert t[0].item() == 9.0 and t.dtype == nf.float64
    t[1] = -1.0
    assert a[1] == -1.0
    assert nf.as_tensor(a).array is a and nf.as_tensor(t) is t
    assert nf.as_tensor(a, dtype=nf.float32).dtype == nf.float32 and not np.shares_memory(nf.as_tensor(a, dtype=nf.float32).array, a)
    assert nf.as_tensor([1, 2]).dtype == nf.int64
    assert not np.shares_memory(nf.tensor(a).array, a)
    with pytest.raises(TypeError, match="np.ndarray"):
        nf.from_numpy([1, 2])
    with pytest.raises(TypeError, match="unsupported dtype"):
        nf.from_numpy(np.array(["a"]))


# ---- Tensor.to / type / conversions --------------------------------------------------------------
def test_tensor_to_forms():
    x = nf.tensor([1.5, -2.5], requires_grad=True)
    other = nf.zeros(1, dtype=nf.float64)
    for y in (x.to(nf.float64), x.to("cpu", nf.float64), x.to(device="cpu", dtype=nf.float64), x.to(other),
              x.to(np.float64), x.to(dtype=nf.double, non_blocking=True), x.type(nf.float64), x.double(),
              x.type("torch.DoubleTensor")):
        assert y.dtype == nf.float64 and y.requires_grad
        y.sum().backward()
    np.testing.assert_allclose(x.grad_array, [9.0, 9.0])
    assert x.to(nf.float32) is x and x.to("cpu") is x and x.float() is x
    assert x.to(nf.float32, copy=True) is not x
    assert x.long().tolist() == [1, -2] and x.int().dtype == nf.int32 and x.half().dtype == nf.float16
    assert x.bool().tolist() == [True, True] and x.byte().dtype == nf.uint8 and x.short().dtype == nf.int16
    assert x.type() == "nanoframe.FloatTensor" and x.long().type() == "nanoframe.LongTensor"
    with pytest.raises(TypeError, match="unexpected keyword"):
        x.to(nf.float64, memory_layout=1)
    with pytest.raises(ValueError, match="invalid type"):
        x.type("torch.ComplexTensor")


def test_module_to_casts_float_params_in_place():
    m = nn.Linear(3, 2)
    w = m.weight
    assert m.to(nf.float64) is m and m.weight is w and w.dtype == nf.float64 and m.bias.dtype == nf.float64
    assert m.to("cpu", nf.float32) is m and w.dtype == nf.float32
    assert m.double().weight.dtype == nf.float64 and m.float().weight.dtype == nf.float32
    assert m.half().weight.dtype == nf.float16
    m.to(nf.zeros(1, dtype=nf.float64))
    assert w.dtype == nf.float64
    with pytest.raises(TypeError, match="floating point dtypes"):
        m.to(nf.int64)
    m.register_buffer("steps", nf.tensor([3]))
    m.to(nf.float32)
    assert m.steps.dtype == nf.int64  # .to leaves integer buffers alone, as torch
    m.type(nf.float64)
    assert m.steps.dtype == nf.float64 and w.dtype == nf.float64  # .type casts every tensor, as torch


def test_grad_mode_functions():
    x = nf.tensor([1.0], requires_grad=True)
    with nf.inference_mode():
        assert not nf.is_grad_enabled() and nf.is_inference_mode_enabled() and not (x * 2).requires_grad
    assert nf.is_grad_enabled() and not nf.is_inference_mode_enabled()
    with nf.inference_mode(False):
        assert (x * 2).requires_grad

    @nf.inference_mode()
    def f(t):
        return t * 2

    @nf.no_grad
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad and nf.is_grad_enabled()
    nf.set_grad_enabled(False)
    try:
        assert not nf.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        nf.set_grad_enabled(True)
    with nf.set_grad_enabled(False):
        assert not nf.is_grad_enabled()
    assert nf.is_grad_enabled()

    @nf.set_grad_enabled(False)
    def h(t):
        return t * 2

    assert nf.is_grad_enabled() and not h(x).requires_grad and nf.is_grad_enabled()
    with nf.no_grad():
        with nf.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not nf.is_grad_enabled()


def test_top_level_predicates():
    x = nf.tensor([[1.0, 2.0]])
    assert nf.is_tensor(x) and not nf.is_tensor(x.array) and nf.numel(x) == 2
    assert nf.is_floating_point(x) and not nf.is_floating_point(nf.tensor([1]))
    assert x.element_size() == 4 and x.nelement() == 2 and x.itemsize == 4 and x.nbytes == 8


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(-10, 10),
                  st.sampled_from([float("nan"), float("inf")]), st.text(max_size=8),
                  st.lists(st.integers(-2, 4), max_size=3), st.sampled_from([nf.float32, nf.bfloat16, np.float64,
                                                                             "cpu", "cuda:1", nf.device("mps")]))


@settings(max_examples=150, deadline=None)
@given(_JUNK, _JUNK)
def test_malformed_arguments_fail_with_one_clear_line(a, b):
    """Junk handed to device(), factories and .to() either works or raises one short error line."""
    for call in (lambda: nf.device(a), lambda: nf.zeros(a, b), lambda: nf.ones(2).to(a), lambda: nf.ones(2).to(a, b),
                 lambda: nf.full((2,), a, dtype=b), lambda: nf.arange(a, b), lambda: nf.tensor(a, dtype=b),
                 lambda: nf.randint(a, b, (2,))):
        try:
            call()
        except (TypeError, ValueError, RuntimeError, IndexError, OverflowError) as e:
            assert "\n" not in str(e) and len(str(e)) < 400, str(e)
