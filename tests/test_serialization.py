"""nanoframe.save / nanoframe.load as PyTorch code calls them, without pickle: every kind of
object round trips (hypothesis), whole Modules (GPT with tied weights, LoRA, user classes behind
the allow-list), what is refused at save and at load (one line each), pickle files, map_location,
file objects, files of the previous format, and fuzzed skeletons of the new format."""
import dataclasses
import io
import json
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nanoframe
from nanoframe import nn
from nanoframe import io as nfio
from nanoframe.errors import CheckpointError, NanoframeError
from nanoframe.models.gpt import GPT, GPTConfig
from nanoframe.serialization import add_safe_globals, clear_safe_globals, get_safe_globals, safe_globals
from nanoframe.tensor import Tensor

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("serialization")


@pytest.fixture(autouse=True)
def no_leftover_safe_globals():
    yield
    clear_safe_globals()


def roundtrip(obj, **load_kw):
    buf = io.BytesIO()
    nanoframe.save(obj, buf)
    buf.seek(0)
    return nanoframe.load(buf, **load_kw)


def assert_same(a, b):
    """Same types all the way down, arrays bit-identical (NaN included)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, Tensor):
        assert a.requires_grad == b.requires_grad
        assert_same(a.array, b.array)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b) or (len(a) == len(b) and set(a) == set(b))
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


# ---- every kind of object --------------------------------------------------------------------

_dtypes = st.sampled_from([np.dtype(d) for d in (np.float32, np.float64, np.float16, np.int64, np.int32,
                                                   np.uint8, np.bool_)])
_arrays = hnp.arrays(_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
_float_arrays = hnp.arrays(st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)]),
                           hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
_keys = (st.text(alphabet="ab.~_0$", max_size=4) | st.integers(-3, 3) | st.booleans() | st.none()
         | st.floats(allow_nan=False) | st.tuples(st.integers(0, 2), st.text(max_size=2)))
_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=6) | _arrays
           | _arrays.map(lambda a: a[()] if a.ndim == 0 else a)  # NumPy scalars
           | _arrays.filter(lambda a: a.dtype.kind != "f").map(Tensor)
           | st.tuples(_float_arrays, st.booleans()).map(lambda a: Tensor(a[0], requires_grad=a[1]))
           | st.tuples(_float_arrays, st.booleans()).map(lambda a: nn.Parameter(a[0], requires_grad=a[1])))


def _nested():
    return st.recursive(
        _leaves,
        lambda kids: st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.dictionaries(st.text(alphabet="ab.~_0$", max_size=4), kids, max_size=3)
        | st.dictionaries(_keys, kids, max_size=3)
        | st.dictionaries(st.text(max_size=3), kids, max_size=3).map(OrderedDict)
        | st.sets(_keys, max_size=3)
        | st.frozensets(st.integers(), max_size=3),
        max_leaves=12,
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_nested())
def test_every_kind_of_object_round_trips(workdir, obj):
    assert_same(obj, roundtrip(obj))
    path = workdir / "obj.pt"
    nanoframe.save(obj, path)
    assert_same(obj, nanoframe.load(path, weights_only=True))


def test_identity_is_kept_where_torch_keeps_it():
    t = nanoframe.randn(3)
    p = nn.Parameter(np.ones(2, np.float32))
    shared = np.arange(4)
    a, b, c, d, view1, view2, arr1, arr2 = roundtrip([t, t, p, p, t.detach(), t.detach(), shared, shared])
    assert a is b and c is d and isinstance(c, nn.Parameter) and c.requires_grad
    assert view1 is not view2 and view1.array is view2.array is a.array  # two tensors over one array
    assert arr1 is arr2
    lst = [1]
    x, y = roundtrip([lst, lst])  # containers are copied per reference
    assert x == y == [1] and x is not y


def test_torch_style_state_dicts_come_back_as_tensors(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = nanoframe.optim.AdamW(model.parameters(), lr=0.01)
    model(nanoframe.randn(2, 3)).sum().backward()
    opt.step()
    nanoframe.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    ckpt = nanoframe.load(tmp_path / "ckpt.pt", map_location="cpu")
    assert type(ckpt["model"]) is OrderedDict and isinstance(ckpt["model"]["0.weight"], Tensor)
    assert not ckpt["model"]["0.weight"].requires_grad  # state_dict() tensors are detached, as in torch
    assert list(ckpt["optimizer"]["state"]) == [0, 1, 2, 3] and ckpt["epoch"] == 3
    fresh = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    fresh.load_state_dict(ckpt["model"])
    opt2 = nanoframe.optim.AdamW(fresh.parameters(), lr=0.01)
    opt2.load_state_dict(ckpt["optimizer"])
    for p, q in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(p.array, q.array)
    assert opt2.state[next(iter(fresh.parameters()))]["step"] == 1


# ---- whole modules ---------------------------------------------------------------------------


def _gpt():
    nanoframe.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1))


def test_whole_gpt_round_trips_with_tied_weights(tmp_path):
    model = _gpt().eval()
    nanoframe.save(model, tmp_path / "gpt.pt")
    loaded = nanoframe.load(tmp_path / "gpt.pt")
    assert type(loaded) is GPT and loaded.config == model.config and not loaded.training
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # still one Parameter
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in model.named_parameters()]
    idx = nanoframe.tensor(np.array([[1, 2, 3, 4]]), dtype=np.int64)
    np.testing.assert_array_equal(loaded(idx)[0].array, model(idx)[0].array)
    # the file is safetensors: the tied weight is stored once, under its first name
    names = set(nfio.load_safetensors(tmp_path / "gpt.pt"))
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names
    # it trains: gradients flow into the loaded parameters
    _, loss = loaded.train()(idx, idx)
    loss.backward()
    assert loaded.transformer.wte.weight.grad is not None


def test_lora_model_and_shared_submodules_round_trip():
    from nanoframe.training.lora import LoRALinear, apply_lora

    model = _gpt()
    apply_lora(model, r=2)
    loaded = roundtrip(model)
    attn = loaded.transformer.h[0].attn.c_attn
    assert isinstance(attn, LoRALinear) and not attn.weight.requires_grad and attn.lora_A.requires_grad
    block = nn.Linear(2, 2)
    twice = roundtrip(nn.Sequential(block, nn.ReLU(), block))
    assert twice[0] is twice[2]


class Net(nn.Module):
    """A user model: loading it needs the allow-list."""

    def __init__(self, hidden=5):
        super().__init__()
        self.hidden = hidden
        self.body = nn.Sequential(nn.Linear(3, hidden), nn.GELU())
        self.register_buffer("scale", np.full(hidden, 2.0, np.float32))
        self.register_buffer("cache", np.zeros(1, np.float32), persistent=False)
        self.names = ("a", "b")

    def forward(self, x):
        return self.body(x) * self.scale


@dataclasses.dataclass
class Settings:
    depth: int
    name: str = "x"


def test_user_classes_need_the_allow_list(tmp_path):
    net = Net()
    nanoframe.save({"net": net, "cfg": Settings(3)}, tmp_path / "net.pt")
    with pytest.raises(CheckpointError, match=r"class 'tests.test_serialization.Net' is not allowed.*add_safe_globals\(\[Net\]\)"):
        nanoframe.load(tmp_path / "net.pt", weights_only=False)  # either value: nothing is ever executed
    with safe_globals([Net]):
        with pytest.raises(CheckpointError, match="test_serialization.Settings"):
            nanoframe.load(tmp_path / "net.pt")
        with safe_globals([Settings]):
            out = nanoframe.load(tmp_path / "net.pt")
    assert get_safe_globals() == []
    loaded, cfg = out["net"], out["cfg"]
    assert type(loaded) is Net and cfg == Settings(3) and loaded.hidden == 5 and loaded.names == ("a", "b")
    assert list(loaded.state_dict()) == ["scale", "body.0.weight", "body.0.bias"] or \
        set(loaded.state_dict()) == {"scale", "body.0.weight", "body.0.bias"}  # "cache" stays non-persistent
    x = nanoframe.randn(2, 3)
    np.testing.assert_array_equal(loaded(x).array, net(x).array)
    add_safe_globals([(Net, "old.place.Net"), Settings])  # a class saved under another path
    raw = nfio.load_safetensors_metadata(tmp_path / "net.pt")["nanoframe"].replace("tests.test_serialization.Net", "old.place.Net")
    nfio.save_safetensors(nfio.load_safetensors(tmp_path / "net.pt"), tmp_path / "moved.pt", metadata={"nanoframe": raw})
    assert type(nanoframe.load(tmp_path / "moved.pt")["net"]) is Net


def scaled_tanh(x):
    """A module-level activation of the caller's (saved by name, loaded only when allow-listed)."""
    return x.tanh() * 2


def test_functions_are_saved_by_name_and_resolved_only_from_the_allow_list(tmp_path):
    import nanoframe.nn.functional as F

    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)  # activation=F.relu
    layer.eval()
    nanoframe.save(layer, tmp_path / "layer.pt")
    skeleton = nfio.load_safetensors_metadata(tmp_path / "layer.pt")["nanoframe"]
    assert '{"$function": "nanoframe.' in skeleton                    # by name: nothing is pickled
    loaded = nanoframe.load(tmp_path / "layer.pt")                    # nanoframe's own F: no allow-list needed
    assert loaded.activation is F.relu
    x = nanoframe.randn(5, 3, 8)
    np.testing.assert_array_equal(loaded(x).array, layer(x).array)

    layer.activation = scaled_tanh
    nanoframe.save(layer, tmp_path / "own.pt")
    with pytest.raises(CheckpointError, match=r"own.pt: function 'tests.test_serialization.scaled_tanh' is not allowed.*"
                                              r"add_safe_globals\(\[scaled_tanh\]\)") as info:
        nanoframe.load(tmp_path / "own.pt")
    assert "\n" not in str(info.value)
    with safe_globals([scaled_tanh]):
        assert nanoframe.load(tmp_path / "own.pt").activation is scaled_tanh

    for name in ("os.system", "builtins.eval", "nanoframe.io.save", "nanoframe.nn.Linear"):  # never imported
        raw = skeleton.replace(skeleton[skeleton.index('{"$function": "') + 14:].split('"', 2)[1], name, 1)
        nfio.save_safetensors(nfio.load_safetensors(tmp_path / "layer.pt"), tmp_path / "bad.pt",
                              metadata={"nanoframe": raw})
        with pytest.raises(CheckpointError, match=f"function '{name}' is not allowed"):
            nanoframe.load(tmp_path / "bad.pt")


def test_word_language_model_save_and_load():
    """pytorch/examples word_language_model: torch.save(model, f), then torch.load(f) inside
    serialization.safe_globals([...]) naming torch.nn.modules.* paths and torch.nn.functional.relu;
    flatten_parameters() after loading an RNN."""
    import nanoframe as torch
    import nanoframe.nn.functional as F

    rnn = torch.nn.LSTM(4, 6, 2)
    transformer = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, 8), 1, enable_nested_tensor=False)
    buf = io.BytesIO()
    torch.save({"rnn": rnn, "transformer": transformer}, buf)
    allowed = [F.relu, torch.nn.modules.activation.MultiheadAttention, torch.nn.modules.container.ModuleList,
               torch.nn.modules.dropout.Dropout, torch.nn.modules.linear.Linear,
               torch.nn.modules.linear.NonDynamicallyQuantizableLinear, torch.nn.modules.normalization.LayerNorm,
               torch.nn.modules.rnn.LSTM, torch.nn.modules.transformer.TransformerEncoder,
               torch.nn.modules.transformer.TransformerEncoderLayer]
    with torch.serialization.safe_globals(allowed):
        buf.seek(0)
        out = torch.load(buf)
    assert out["rnn"].flatten_parameters() is None and type(out["transformer"].layers[0].self_attn.out_proj) is \
        torch.nn.modules.linear.NonDynamicallyQuantizableLinear
    x = torch.randn(3, 2, 4)
    np.testing.assert_array_equal(out["rnn"](x)[0].array, rnn(x)[0].array)


def test_dataclass_checks_run_on_load(tmp_path):
    nanoframe.save(_gpt(), tmp_path / "gpt.pt")
    raw = nfio.load_safetensors_metadata(tmp_path / "gpt.pt")["nanoframe"].replace('"n_head": 2', '"n_head": 3')
    nfio.save_safetensors(nfio.load_safetensors(tmp_path / "gpt.pt"), tmp_path / "bad.pt", metadata={"nanoframe": raw})
    with pytest.raises(CheckpointError, match="bad.pt.*GPTConfig.*divisible"):
        nanoframe.load(tmp_path / "bad.pt")


def test_unrepresentable_objects_are_refused_at_save(tmp_path):
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.fn = lambda x: x

    model = nn.Module()
    model.encoder = Encoder()
    target = tmp_path / "m.pt"
    with pytest.raises(TypeError, match=r"^save: model.encoder.fn is a function without an importable name .*lambda.*module-level name") as info:
        nanoframe.save(model, target)
    assert isinstance(info.value, NanoframeError) and "\n" not in str(info.value)
    with open(tmp_path / "f.txt", "w") as f:
        with pytest.raises(TypeError, match=r"obj.log is of type TextIOWrapper"):
            nanoframe.save({"log": f}, target)
    with pytest.raises(TypeError, match=r"obj.2 is of type Settings2|obj.2 is of type"):
        nanoframe.save([1, 2, type("Settings2", (), {})()], target)
    with pytest.raises(TypeError, match="Tensor subclass"):
        nanoframe.save(type("MyTensor", (Tensor,), {})(np.zeros(1)), target)
    with pytest.raises(TypeError, match="of type Color"):
        import enum

        nanoframe.save(enum.Enum("Color", "RED").RED, target)
    assert not target.exists()


# ---- files that are not nanoframe's ----------------------------------------------------------


def test_pickle_files_are_refused_in_one_line(tmp_path):
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol))
        with pytest.raises(CheckpointError, match=r"is a pickle file.*never unpickles.*safetensors") as info:
            nanoframe.load(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    torch = pytest.importorskip("torch")
    for zipped in (True, False):
        path = tmp_path / f"torch{zipped}.pt"
        torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=zipped)
        with pytest.raises(CheckpointError, match="never unpickles.*save_file") as info:
            nanoframe.load(path)
        assert "\n" not in str(info.value)
    # a safetensors file whose header length happens to start like a pickle (0x80 0x02) still loads
    for n in range(500, 700):
        nfio.save_safetensors({"a": np.zeros(1)}, tmp_path / "x.st", metadata={"pad": "x" * n})
        if (tmp_path / "x.st").read_bytes()[:2] == b"\x80\x02":
            assert set(nanoframe.load(tmp_path / "x.st")) == {"a"}
            break
    else:
        pytest.fail("no header length starting with 0x80 0x02 was produced")


def test_other_safetensors_files_load_as_their_arrays(tmp_path):
    nfio.save_safetensors({"w": np.eye(2, dtype=np.float32)}, tmp_path / "m.safetensors")
    out = nanoframe.load(tmp_path / "m.safetensors")
    assert list(out) == ["w"] and isinstance(out["w"], np.ndarray)


# ---- load's arguments ------------------------------------------------------------------------


def test_map_location_the_cpu_only_way(tmp_path):
    obj = {"t": nanoframe.tensor([1.0, 2.0]), "a": np.ones(2)}
    for ok in (None, "cpu", "cpu:0", {"cuda:0": "cpu"}, {"cpu": "cpu"}, lambda storage, loc: storage,
               lambda storage, loc: None):
        out = roundtrip(obj, map_location=ok)
        assert out["t"].tolist() == [1.0, 2.0]
    doubled = roundtrip(obj, map_location=lambda t, loc: t * 2)
    assert doubled["t"].tolist() == [2.0, 4.0] and doubled["a"].tolist() == [1.0, 1.0]  # tensors only, as torch
    for bad in ("cuda", "cuda:1", "mps", {"cpu": "cuda:0"}):
        with pytest.raises(NanoframeError, match="CPU only"):
            roundtrip(obj, map_location=bad)
    with pytest.raises(NanoframeError, match="must return None or a Tensor"):
        roundtrip(obj, map_location=lambda t, loc: "gpu")
    torch = pytest.importorskip("torch")
    assert roundtrip(obj, map_location=torch.device("cpu"))["t"].tolist() == [1.0, 2.0]
    with pytest.raises(NanoframeError, match="CPU only"):
        roundtrip(obj, map_location=torch.device("cuda:0"))


def test_file_objects_and_load_arguments(tmp_path):
    obj = {"x": nanoframe.tensor([3.0])}
    path = tmp_path / "x.pt"
    with open(path, "wb") as f:
        nanoframe.save(obj, f)
    with open(path, "rb") as f:
        assert nanoframe.load(f, weights_only=True, mmap=True)["x"].tolist() == [3.0]
    assert nanoframe.load(str(path), "cpu", None, weights_only=False)["x"].tolist() == [3.0]
    with pytest.raises(TypeError, match="weights_only"):
        nanoframe.load(path, weights_only="yes")
    with pytest.raises(TypeError, match="path or a binary file object"):
        nanoframe.load(123)
    path.write_bytes(path.read_bytes()[:-1])
    with open(path, "rb") as f:
        with pytest.raises(CheckpointError, match="x.pt"):  # the file's name is in the message
            nanoframe.load(f)
    assert nanoframe.serialization.load is nanoframe.load and nanoframe.serialization.save is nanoframe.save


def test_files_of_the_previous_format_still_load(tmp_path):
    """An optimizer checkpoint as nanoframe wrote it before int keys and Tensors (skeleton v1)."""
    exp_avg, exp_avg_sq = np.full((2, 3), 0.1, np.float32), np.full((2, 3), 0.01, np.float32)
    skeleton = {"version": 1, "root": {"$dict": {
        "state": {"$dict": {"0": {"$dict": {"step": 3, "exp_avg": {"$array": "state.0.exp_avg"},
                                             "exp_avg_sq": {"$array": "state.0.exp_avg_sq"}}}}},
        "param_groups": [{"$dict": {"lr": 0.01, "betas": {"$tuple": [0.9, 0.95]}, "eps": 1e-08,
                                    "weight_decay": 0.1, "amsgrad": False, "maximize": False, "params": [0]}}],
    }}}
    nfio.save_safetensors({"state.0.exp_avg": exp_avg, "state.0.exp_avg_sq": exp_avg_sq}, tmp_path / "opt.safetensors",
                          metadata={"nanoframe": json.dumps(skeleton)})
    sd = nanoframe.load(tmp_path / "opt.safetensors")
    assert list(sd["state"]) == ["0"] and isinstance(sd["state"]["0"]["exp_avg"], np.ndarray)
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    opt = nanoframe.optim.AdamW([p])
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 3 and opt.param_groups[0]["betas"] == (0.9, 0.95)
    np.testing.assert_array_equal(opt.state[p]["exp_avg"], exp_avg)


# ---- malformed skeletons of the new format -------------------------------------------------------


def _write(path, skeleton, arrays=None):
    arrays = {"a": np.zeros(2, np.float32)} if arrays is None else arrays
    nfio.save_safetensors(arrays, path, metadata={"nanoframe": json.dumps(skeleton)})
    return path


def _v2(root, tensors=(), modules=()):
    return {"version": 2, "root": root, "tensors": list(tensors), "modules": list(modules)}


T = {"array": "a", "requires_grad": False, "parameter": False}
M = {"class": "nanoframe.nn.layers.ReLU", "parameters": {}, "buffers": {}, "non_persistent": [], "modules": {},
     "attributes": {"training": True}}


@pytest.mark.parametrize("skeleton, match", [
    (_v2({"$tensor": 1}, [T]), "malformed"),
    (_v2({"$tensor": True}, [T]), "malformed"),
    (_v2({"$tensor": 0}, [dict(T, requires_grad=1)]), "tensor entry 0"),
    (_v2({"$tensor": 0}, [dict(T, array="b")]), "missing tensor"),
    (_v2({"$tensor": 0}, [dict(T, extra=1)]), "tensor entry 0"),
    (_v2({"$module": 0}, [], [M]), "not referenced"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, **{"class": "os.system"})]), "'os.system' is not allowed"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, **{"class": "nanoframe.models.gpt.GPTConfig"})]),
     "not an nn.Module"),
    (_v2({"$module": 0}, [T], [dict(M, parameters={"w": {"$tensor": 0}})]), "not a Parameter"),
    (_v2({"$module": 0}, [dict(T, parameter=True)], [dict(M, parameters={"a.b": {"$tensor": 0}})]), "a.b"),
    (_v2({"$module": 0}, [dict(T, parameter=True)], [dict(M, buffers={"w": {"$tensor": 0}})]), "not a Tensor"),
    (_v2({"$module": 0}, [T], [dict(M, modules={"m": {"$tensor": 0}})]), "not a Module"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, attributes={"__class__": 1})]), "not allowed"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, attributes={"training": "yes"})]), "training"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, non_persistent=["zz"])]), "non_persistent"),
    (_v2([{"$tensor": 0}, {"$module": 0}], [T], [dict(M, parameters=[])]), "module entry 0"),
    (_v2([{"$tensor": 0}, {"$items": ["dict", [[1, 2], [1, 3]]]}], [T]), "duplicate key"),
    (_v2([{"$tensor": 0}, {"$items": ["Counter", []]}], [T]), "malformed"),
    (_v2([{"$tensor": 0}, {"$set": [[1]]}], [T]), "malformed key"),
    (_v2([{"$tensor": 0}, {"$object": ["builtins.dict", {}]}], [T]), "not allowed"),
    (_v2([{"$tensor": 0}, {"$scalar": "a"}], [T]), "shape"),
    (dict(_v2({"$tensor": 0}, [T]), modules={}), "must be lists"),
])
def test_malformed_v2_skeletons(tmp_path, skeleton, match):
    with pytest.raises(CheckpointError, match=match) as info:
        nanoframe.load(_write(tmp_path / "x.pt", skeleton))
    assert str(tmp_path / "x.pt") in str(info.value) and "\n" not in str(info.value)


def test_tensor_entries_with_unsupported_dtypes(tmp_path):
    for arrays, entry in [({"a": np.zeros(2, np.complex64)}, T),
                          ({"a": np.zeros(2, np.int64)}, dict(T, requires_grad=True))]:
        with pytest.raises(CheckpointError, match="tensor entry 0"):
            nanoframe.load(_write(tmp_path / "x.pt", _v2({"$tensor": 0}, [entry]), arrays))


_node = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.text(alphabet="a$", max_size=2)
    | st.sampled_from([{"$tensor": 0}, {"$module": 0}, {"$array": "a"}, {"$scalar": "a"}]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["$tensor", "$module", "$items", "$set", "$object", "$dict", "$tuple", "$scalar", "training"]),
        kids, max_size=2),
    max_leaves=8,
)
_tensor_entry = st.fixed_dictionaries({}, optional={"array": st.sampled_from(["a", "b", 1]),
                                                    "requires_grad": st.booleans() | st.none(),
                                                    "parameter": st.booleans() | st.integers(0, 1)}) | _node
_module_entry = st.fixed_dictionaries({}, optional={
    "class": st.sampled_from(["nanoframe.nn.layers.Linear", "nanoframe.models.gpt.GPT", "x.Y", "nanoframe.nn.module.Module"]),
    "parameters": st.dictionaries(st.sampled_from(["weight", "", "a.b", "training"]), _node, max_size=2),
    "buffers": st.dictionaries(st.sampled_from(["w", "weight"]), _node, max_size=2),
    "non_persistent": st.lists(st.sampled_from(["w", "x"]) | _node, max_size=2),
    "modules": st.dictionaries(st.sampled_from(["m", "0"]), _node, max_size=2),
    "attributes": st.dictionaries(st.sampled_from(["training", "in_features", "__dict__", "_modules"]), _node,
                                  max_size=2),
}) | _node


@FUZZ
@given(root=_node, tensors=st.lists(_tensor_entry, max_size=2), modules=st.lists(_module_entry, max_size=2))
def test_fuzzed_v2_skeletons_only_raise_checkpoint_errors(workdir, root, tensors, modules):
    path = _write(workdir / "fuzz.pt", _v2(root, tensors, modules), {"a": np.zeros((), np.float32)})
    try:
        nanoframe.load(path)
    except CheckpointError as e:
        assert "\n" not in str(e)


# ---- the other torch paths -----------------------------------------------------------------------


def test_torch_module_paths():
    import nanoframe.nn.functional as F
    from nanoframe.nn.modules.container import Sequential
    from nanoframe.nn.modules.linear import Linear
    from nanoframe.optim import lr_scheduler

    assert F is nanoframe.functional and F.cross_entropy is nanoframe.functional.cross_entropy
    assert nanoframe.nn.functional is F
    assert Linear is nn.Linear and Sequential is nn.Sequential and lr_scheduler.StepLR
    assert nanoframe.nn.modules.normalization.LayerNorm is nn.LayerNorm
    assert nanoframe.nn.modules.Linear is nn.Linear and "Linear" in dir(nanoframe.nn.modules.linear)
    with pytest.raises(AttributeError, match="not implemented in nanoframe"):
        nanoframe.nn.modules.linear.Bilinear
    with pytest.raises(AttributeError):
        nanoframe.nn.modules.linear.NotATorchName


def test_onnx_export_says_what_to_do_instead():
    import nanoframe.onnx

    with pytest.raises(NanoframeError, match="ONNX export is not supported.*save_safetensors.*to_hf") as info:
        nanoframe.onnx.export(nn.Linear(2, 2), nanoframe.randn(1, 2), "model.onnx")
    assert "\n" not in str(info.value) and not nanoframe.onnx.is_in_onnx_export()
