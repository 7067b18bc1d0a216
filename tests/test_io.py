"""Tests for nanoframe.io: safetensors I/O, nested checkpoints, atomic writes."""

import json
import math
import os
import stat
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanoframe import io as nfio
from nanoframe.serialization import load, save
from nanoframe.nn import Parameter
from nanoframe.tensor import Tensor

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# dtype code -> numpy dtype written/read (BF16 is read-only, tested separately).
DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "C64": np.complex64,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
SHAPES = [(), (0,), (1,), (5,), (2, 3), (2, 0, 3), (3, 1, 2, 2)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory shared by hypothesis examples (function-scoped tmp_path is not allowed)."""
    return tmp_path_factory.mktemp("io")


def sample(dtype, shape, seed=0):
    """Deterministic random array of ``dtype`` and ``shape``."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if dtype.kind == "c":
        return np.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return np.asarray(rng.standard_normal(shape)).astype(dtype)


def raw_file(path, header, data=b"", pad=True):
    """Write a hand-made safetensors file: ``header`` is a JSON-able object or bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def assert_same(a, b):
    """Exact equality of arrays and Tensors (type, dtype, shape, bits incl. NaN) or nested structures."""
    if isinstance(a, Tensor):
        assert type(b) is type(a) and b.requires_grad == a.requires_grad
        assert_same(a.array, b.array)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert type(b) is type(a) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert type(a) is type(b) and a == b


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(DTYPES))
def test_roundtrip_all_dtypes_and_shapes(tmp_path, code):
    tensors = {f"t{i}": sample(DTYPES[code], shape, i) for i, shape in enumerate(SHAPES)}
    path = tmp_path / "x.safetensors"
    nfio.save_safetensors(tensors, path)
    loaded = nfio.load_safetensors(path)
    assert sorted(loaded) == sorted(tensors)
    for name, arr in tensors.items():
        assert_same(arr, loaded[name])
        assert loaded[name].flags.owndata and loaded[name].flags.writeable
    header = json.loads(path.read_bytes()[8 : 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    assert {h["dtype"] for h in header.values()} == {code}


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.dictionaries(
        st.text(min_size=0, max_size=8).filter(lambda s: s != "__metadata__"),
        hnp.arrays(
            st.sampled_from([np.dtype(d) for d in DTYPES.values()]),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        max_size=5,
    ),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_roundtrip_hypothesis(workdir, arrays, metadata):
    path = workdir / "hyp.safetensors"
    nfio.save_safetensors(arrays, path, metadata=metadata)
    loaded = nfio.load_safetensors(path)
    assert sorted(loaded) == sorted(arrays)
    for name in arrays:
        assert_same(arrays[name], loaded[name])
    assert nfio.load_safetensors_metadata(path) == metadata


def test_layout_follows_spec(tmp_path):
    path = tmp_path / "x.safetensors"
    tensors = {"b": np.arange(3, dtype=np.int8), "a": np.ones((2, 2), np.float32), "c": np.zeros(2, np.float64)}
    nfio.save_safetensors(tensors, path, metadata={"k": "v"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    assert header.pop("__metadata__") == {"k": "v"}
    # Larger itemsize first, then by name; contiguous offsets covering the data.
    assert list(header) == ["c", "a", "b"]
    assert header["c"] == {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}
    assert header["a"] == {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 32]}
    assert header["b"] == {"dtype": "I8", "shape": [3], "data_offsets": [32, 35]}
    assert len(raw) == 8 + n + 35
    assert raw[8 + n + 32 :] == bytes([0, 1, 2])


def test_non_contiguous_and_big_endian_are_converted(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    tensors = {
        "strided": base[::2, 1::2],
        "transposed": base.T,
        "big_f32": base.astype(">f4"),
        "big_i64": np.arange(5, dtype=">i8"),
        "fortran": np.asfortranarray(base),
    }
    path = tmp_path / "x.safetensors"
    nfio.save_safetensors(tensors, path)
    loaded = nfio.load_safetensors(path)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype.isnative and loaded[name].flags.c_contiguous


def test_metadata_api(tmp_path):
    path = tmp_path / "x.safetensors"
    nfio.save_safetensors({"a": np.zeros(1)}, path)
    assert nfio.load_safetensors_metadata(path) == {}
    nfio.save_safetensors({}, path, metadata={"format": "np", "ünï": "çødé"})
    assert nfio.load_safetensors(path) == {}
    assert nfio.load_safetensors_metadata(path) == {"format": "np", "ünï": "çødé"}


def test_accepts_array_likes(tmp_path):
    class HasData:  # like a framework Tensor/Parameter
        def __init__(self, data):
            self.data = data

    path = tmp_path / "x.safetensors"
    nfio.save_safetensors({"p": HasData(np.ones(3, np.float32)), "s": np.float32(2.5)}, path)
    loaded = nfio.load_safetensors(path)
    assert_same(loaded["p"], np.ones(3, np.float32))
    assert_same(loaded["s"], np.array(2.5, np.float32))
    with pytest.raises(TypeError):  # plain lists have no unambiguous dtype
        nfio.save_safetensors({"l": [1, 2]}, path)


@pytest.mark.parametrize(
    "tensors, metadata, error",
    [
        ({"a": np.array(["x"])}, None, TypeError),
        ({"a": np.array([object()])}, None, TypeError),
        ({"a": np.zeros(2, np.complex128)}, None, TypeError),
        ({1: np.zeros(2)}, None, TypeError),
        ({"a": "not an array"}, None, TypeError),
        ({"__metadata__": np.zeros(2)}, None, ValueError),
        ({"a": np.zeros(2)}, {"k": 1}, TypeError),
    ],
)
def test_save_rejects_bad_input(tmp_path, tensors, metadata, error):
    with pytest.raises(error):
        nfio.save_safetensors(tensors, tmp_path / "x.safetensors", metadata=metadata)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# Interoperability with the reference implementation
# --------------------------------------------------------------------------


def test_written_files_read_by_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    tensors = {f"{code}.{i}": sample(dt, shape, i) for code, dt in DTYPES.items() for i, shape in enumerate(SHAPES)}
    tensors["noncontig"] = np.arange(12.0).reshape(3, 4).T
    metadata = {"format": "np", "step": "12"}
    path = tmp_path / "x.safetensors"
    nfio.save_safetensors(tensors, path, metadata=metadata)
    loaded = safetensors_numpy.load_file(str(path))
    assert sorted(loaded) == sorted(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype and loaded[name].shape == arr.shape
    with safe_open(str(path), framework="np") as f:
        assert f.metadata() == metadata


def test_reads_files_written_by_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {f"{code}.{i}": sample(dt, shape, i) for code, dt in DTYPES.items() for i, shape in enumerate(SHAPES)}
    path = tmp_path / "x.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata={"a": "b"})
    loaded = nfio.load_safetensors(path)
    assert sorted(loaded) == sorted(tensors)
    for name, arr in tensors.items():
        assert_same(arr, loaded[name])
    assert nfio.load_safetensors_metadata(path) == {"a": "b"}
    # A foreign file without a nanoframe skeleton loads flat through load().
    assert sorted(load(path)) == sorted(tensors)


def test_reads_torch_bf16_and_f16(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    bf16 = torch.randn(4, 5, generator=g).to(torch.bfloat16)
    bf16_special = torch.tensor([0.0, -0.0, 1.0, -2.5, float("inf"), float("-inf"), 3.0e38, 1e-40], dtype=torch.bfloat16)
    f16 = torch.randn(3, generator=g).to(torch.float16)
    path = tmp_path / "x.safetensors"
    safetensors_torch.save_file(
        {"bf16": bf16, "special": bf16_special, "scalar": torch.tensor(1.5, dtype=torch.bfloat16), "f16": f16},
        str(path),
    )
    loaded = nfio.load_safetensors(path)
    assert loaded["bf16"].dtype == np.float32 and loaded["bf16"].shape == (4, 5)
    np.testing.assert_array_equal(loaded["bf16"], bf16.float().numpy())
    np.testing.assert_array_equal(loaded["special"], bf16_special.float().numpy())
    assert np.signbit(loaded["special"][1])
    assert loaded["scalar"].shape == () and loaded["scalar"] == 1.5
    assert loaded["f16"].dtype == np.float16
    np.testing.assert_array_equal(loaded["f16"], f16.numpy())
    assert loaded["bf16"].flags.owndata and loaded["bf16"].flags.writeable


def test_bf16_nan_and_raw_bits(tmp_path):
    bits = np.array([0x3F80, 0x7FC0, 0xFF80, 0x0001, 0x8000], dtype="<u2")
    path = raw_file(tmp_path / "x.safetensors", {"w": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}, bits.tobytes())
    out = nfio.load_safetensors(path)["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.view(np.uint32), bits.astype(np.uint32) << 16)


# --------------------------------------------------------------------------
# Nested checkpoints
# --------------------------------------------------------------------------


def test_nested_checkpoint_roundtrip(tmp_path):
    ckpt = {
        "model": {
            "transformer.wte.weight": np.ones((4, 3), np.float32),
            "transformer": {"wte": {"weight": np.zeros((2, 2), np.float32)}},  # same dotted name
            "lm_head.bias": Parameter(np.arange(3, dtype=np.float32)),
        },
        "optimizer": {
            "state": [{"step": 3, "exp_avg": np.full(2, 0.5), "exp_avg_sq": np.full(2, 0.25)}, None],
            "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.95), "eps": float("inf"), "amsgrad": False, "name": "decay"}],
        },
        "step": np.int64(7),
        "loss": float("nan"),
        "__metadata__": np.zeros(1),
        "": {"": np.ones(1, np.uint8)},
        "empty": {},
        "big": 2**80,
    }
    path = tmp_path / "ckpt.safetensors"
    save(ckpt, path)
    out = load(path)
    assert_same(ckpt, out)  # a Parameter comes back a Parameter, np.int64 an np.int64
    names = set(nfio.load_safetensors(path))
    assert {"model.transformer.wte.weight", "model.transformer.wte.weight~1"} <= names
    assert "optimizer.state.0.exp_avg" in names and "__metadata__~1" in names


def test_nested_file_is_plain_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "ckpt.safetensors"
    save({"model": {"w": np.eye(2, dtype=np.float32)}, "epoch": 1}, path)
    loaded = safetensors_numpy.load_file(str(path))
    np.testing.assert_array_equal(loaded["model.w"], np.eye(2))


def _nested():
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=6)
        | hnp.arrays(
            st.sampled_from([np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_), np.dtype(np.float16)]),
            hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
        )
    )
    keys = st.text(alphabet="ab.~_0", max_size=4)
    return st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.dictionaries(keys, kids, max_size=3),
        max_leaves=12,
    )


@settings(max_examples=80, deadline=None)
@given(obj=_nested())
def test_nested_roundtrip_hypothesis(workdir, obj):
    path = workdir / "nested.safetensors"
    save(obj, path)
    assert_same(obj, load(path))


def test_save_rejects_bad_structures(tmp_path):
    cyclic = {"a": []}
    cyclic["a"].append(cyclic)
    with pytest.raises(ValueError, match="cyclic reference at obj.a.0"):
        save(cyclic, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="obj.a is of type object"):
        save({"a": object()}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="obj.a.1 has a key or set element of type frozenset"):
        save({"a": {1: {frozenset([1]): 2}}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dtype <U1"):
        save({"a": np.array(["x"])}, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []
    shared = np.zeros(2)
    save([shared, shared], tmp_path / "x.safetensors")  # one array saved twice: stored once, as pickle would
    a, b = load(tmp_path / "x.safetensors")
    assert a is b and len(nfio.load_safetensors(tmp_path / "x.safetensors")) == 1


@pytest.mark.parametrize(
    "skeleton, tensors, match",
    [
        ("not json", {}, "not valid JSON"),
        (json.dumps([1]), {}, "unsupported"),
        (json.dumps({"version": 3, "root": None}), {}, "unsupported"),
        (json.dumps({"version": 1, "root": {"$array": "missing"}}), {}, "missing tensor"),
        (json.dumps({"version": 1, "root": [{"$array": "a"}, {"$array": "a"}]}), {"a": np.zeros(1)}, "twice"),
        (json.dumps({"version": 1, "root": None}), {"a": np.zeros(1)}, "not referenced"),
        (json.dumps({"version": 1, "root": {"$set": [1]}}), {}, "malformed"),
        (json.dumps({"version": 1, "root": {"$float": "1e400"}}), {}, "malformed"),
        (json.dumps({"version": 1, "root": {"$dict": [1]}}), {}, "malformed"),
        (json.dumps({"version": 1, "root": {"$array": "a", "x": 1}}), {"a": np.zeros(1)}, "malformed"),
        ('{"version": 1, "root": ' + "[" * 100_000 + "]" * 100_000 + "}", {}, "JSON|deeply"),
    ],
)
def test_load_rejects_bad_skeleton(tmp_path, skeleton, tensors, match):
    path = tmp_path / "x.safetensors"
    nfio.save_safetensors(tensors, path, metadata={"nanoframe": skeleton})
    with pytest.raises(ValueError, match=match):
        load(path)


@FUZZ
@given(skeleton=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(["a", "$array", "$dict", "$tuple", "$float", "nan"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["$array", "$dict", "$tuple", "$float", "version", "root"]), kids, max_size=2),
    max_leaves=8,
))
def test_fuzzed_skeleton_only_raises_value_error(workdir, skeleton):
    path = workdir / "skel.safetensors"
    nfio.save_safetensors({"a": np.zeros(1)}, path, metadata={"nanoframe": json.dumps({"version": 1, "root": skeleton})})
    try:
        load(path)
    except ValueError:
        pass


# --------------------------------------------------------------------------
# Malformed files
# --------------------------------------------------------------------------

GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets}


@pytest.mark.parametrize(
    "header, data, match",
    [
        (b'{"a":', b"", "JSON"),
        (b"\xff\xfe{}", b"", "UTF-8"),
        (b"[1, 2]", b"", "JSON object"),
        (b'"str"', b"", "JSON object"),
        (b"[" * 100_000, b"", "JSON"),
        (b'{"a": 1, "a": 2}', b"", "duplicate"),
        ({"a": 1}, b"", "'a'.*object"),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "'a'.*missing"),
        ({"a": entry(dtype="F8")}, b"\0" * 8, "'a'.*unknown dtype"),
        ({"a": entry(dtype=["F32"])}, b"\0" * 8, "unknown dtype"),
        ({"a": entry(shape=[-2])}, b"\0" * 8, "'a'.*shape"),
        ({"a": entry(shape=[2.0])}, b"\0" * 8, "shape"),
        ({"a": entry(shape=[True, 2])}, b"\0" * 8, "shape"),
        ({"a": entry(shape="2")}, b"\0" * 8, "shape"),
        ({"a": entry(shape=[0, 2**62])}, b"", "too large"),
        ({"a": entry(shape=[0, 2**70])}, b"", "too large"),
        ({"a": entry(offsets=[8, 0])}, b"\0" * 8, "data_offsets"),
        ({"a": entry(offsets=[0])}, b"\0" * 8, "data_offsets"),
        ({"a": entry(offsets=[0, 8, 9])}, b"\0" * 8, "data_offsets"),
        ({"a": entry(offsets=[-8, 0])}, b"\0" * 8, "data_offsets"),
        ({"a": entry(offsets=[0, "8"])}, b"\0" * 8, "data_offsets"),
        ({"a": entry(offsets=None)}, b"\0" * 8, "data_offsets"),
        ({"a": entry(shape=(3,))}, b"\0" * 8, "'a'.*8 bytes.*needs 12"),
        ({"a": entry(offsets=(0, 16), shape=(4,))}, b"\0" * 8, "beyond"),
        ({"a": entry(), "b": entry()}, b"\0" * 8, "overlaps"),
        ({"a": entry(), "b": entry(offsets=(4, 12))}, b"\0" * 12, "overlaps"),
        ({"a": entry(offsets=(4, 12))}, b"\0" * 12, "hole"),
        ({"a": entry(), "b": entry(offsets=(12, 20))}, b"\0" * 20, "hole"),
        ({"a": entry()}, b"\0" * 12, "cover 8 bytes.*12"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
        ({"__metadata__": ["k"]}, b"", "__metadata__"),
    ],
)
def test_malformed_headers(tmp_path, header, data, match):
    path = raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=match) as info:
        nfio.load_safetensors(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError):
        nfio.load_safetensors_metadata(path)
    with pytest.raises(ValueError):
        load(path)


def test_short_file_and_lying_header_length(tmp_path):
    path = tmp_path / "bad.safetensors"
    for content, match in [
        (b"", "too short"),
        (b"\x01\x00\x00", "too short"),
        (struct.pack("<Q", 10 * 2**30) + b"{}", "exceeds"),  # 10 GB: refused before any read
        (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds"),
        (struct.pack("<Q", 50_000_000) + b"{}", "larger than the file"),
        (struct.pack("<Q", 0), "JSON"),
    ]:
        path.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            nfio.load_safetensors(path)


def test_metadata_null_and_extra_fields_are_accepted(tmp_path):
    # The reference implementation accepts both; so do we.
    header = {"__metadata__": None, "a": dict(entry(), extra="x")}
    path = raw_file(tmp_path / "x.safetensors", header, np.array([1, 2], "<f4").tobytes(), pad=False)
    assert nfio.load_safetensors_metadata(path) == {}
    np.testing.assert_array_equal(nfio.load_safetensors(path)["a"], [1, 2])


def test_bool_bytes_are_normalised(tmp_path):
    path = raw_file(tmp_path / "x.safetensors", {"b": entry("BOOL", (3,), (0, 3))}, bytes([0, 1, 7]))
    out = nfio.load_safetensors(path)["b"]
    assert out.dtype == np.bool_ and out.tolist() == [False, True, True]
    assert out.view(np.uint8).tolist() == [0, 1, 1]


def _valid_file_bytes(tmp_path):
    path = tmp_path / "valid.safetensors"
    nfio.save_safetensors(
        {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(3, dtype=np.int8), "s": np.float64(1.0)},
        path,
        metadata={"m": "v"},
    )
    return path.read_bytes()


def _only_value_error(path):
    """Load ``path``; it may succeed or raise ValueError, nothing else."""
    try:
        tensors = nfio.load_safetensors(path)
    except ValueError as e:
        assert str(path) in str(e)
        return None
    for arr in tensors.values():
        assert isinstance(arr, np.ndarray) and arr.flags.owndata
    return tensors


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(workdir, data):
    path = workdir / "fuzz.safetensors"
    path.write_bytes(data)
    _only_value_error(path)


@FUZZ
@given(length=st.integers(0, 2**64 - 1), body=st.binary(max_size=64))
def test_fuzz_random_header_length(workdir, length, body):
    path = workdir / "fuzz.safetensors"
    path.write_bytes(struct.pack("<Q", length) + body)
    _only_value_error(path)


def test_truncated_valid_files(tmp_path):
    good = _valid_file_bytes(tmp_path)
    path = tmp_path / "trunc.safetensors"
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError):
            nfio.load_safetensors(path)
    path.write_bytes(good + b"\0")
    with pytest.raises(ValueError):
        nfio.load_safetensors(path)


@FUZZ
@given(st.data())
def test_fuzz_byte_mutations(workdir, data):
    good = _valid_file_bytes(workdir)
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = workdir / "mut.safetensors"
    path.write_bytes(bytes(raw))
    _only_value_error(path)


_weird = st.sampled_from([None, True, -1, 1.5, "2", [], {}, 2**64])
_headers = st.dictionaries(
    st.sampled_from(["a", "b", "c", "__metadata__"]),
    st.fixed_dictionaries(
        {},
        optional={
            "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "C64", "F8_E4M3", "f32"]) | _weird,
            "shape": st.lists(st.integers(0, 5) | _weird, max_size=3) | _weird,
            "data_offsets": st.lists(st.integers(-2, 40) | _weird, min_size=0, max_size=3) | _weird,
        },
    )
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | _weird, max_size=2)
    | _weird,
    max_size=4,
)


@FUZZ
@given(header=_headers, data_len=st.integers(0, 48), pad=st.booleans())
def test_fuzz_mutated_headers(workdir, header, data_len, pad):
    """Lying dtypes/shapes/offsets: only ValueError, and agreement with safetensors."""
    path = raw_file(workdir / "hdr.safetensors", header, bytes(range(data_len)), pad=pad)
    tensors = _only_value_error(path)
    try:
        from safetensors import safe_open
    except ImportError:
        return
    try:
        with safe_open(str(path), framework="np") as f:
            reference = {name: f.get_tensor(name) for name in f.keys() if header[name]["dtype"] != "BF16"}
    except Exception:
        reference = None
    assert (tensors is None) == (reference is None), (header, data_len)
    if tensors is not None:
        for name, arr in reference.items():
            assert_same(arr, tensors[name]) if arr.dtype != np.bool_ else np.testing.assert_array_equal(arr, tensors[name])


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def test_crash_mid_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.ones(1000, np.float32)}, path)
    before = path.read_bytes()

    def partial_write(f, array):
        f.write(b"\xde\xad" * 10)
        f.flush()
        raise OSError("disk full")

    monkeypatch.setattr(nfio, "_write_array", partial_write)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.zeros(1000, np.float32)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)["w"], np.ones(1000, np.float32))


def test_crash_in_fsync_and_keyboard_interrupt(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    nfio.atomic_write_text(path, '{"step": 1}')

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(nfio.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        nfio.atomic_write_text(path, '{"step": 2}')
    assert path.read_text() == '{"step": 1}'
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_open(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with nfio.atomic_open(path) as f:
            f.write(b"partial")
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []

    with nfio.atomic_open(path) as f:
        f.write(b"abc")
        assert not path.exists()  # invisible until the block succeeds
    assert path.read_bytes() == b"abc"
    nfio.atomic_write_bytes(path, b"xyz")
    assert path.read_bytes() == b"xyz"
    with nfio.atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "t.txt"]
    with pytest.raises(ValueError):
        with nfio.atomic_open(path, "ab"):
            pass


def test_atomic_files_get_normal_permissions(tmp_path):
    path = tmp_path / "x.safetensors"
    umask = os.umask(0o027)
    try:
        nfio.save_safetensors({}, path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640   # 0o666 & ~umask, as open() gives
