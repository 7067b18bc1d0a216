"""`torch.serialization`'s path: the object graph of `nanoframe.save` / `nanoframe.load`, and the
allow-list of classes a file may rebuild (`add_safe_globals`, `safe_globals`).

No pickle, ever. A saved object becomes the arrays of one safetensors file plus a JSON skeleton
(in the file's __metadata__, see nanoframe/io.py) that only data can be read from:

    {"version": 2, "root": node, "tensors": [tensor entry...], "modules": [module entry...]}

Every JSON object in it is a tagged node with one key, so user dict keys never look like tags:

    null, true/false, int, finite float, str      themselves
    [node, ...] / {"$tuple": [node, ...]}         list / tuple
    {"$float": "nan" | "inf" | "-inf"}            non-finite float
    {"$dict": {str: node}}                        dict with str keys
    {"$items": [kind, [[key, value], ...]]}       "dict" with other keys (int, tuple...) or "OrderedDict"
    {"$set": [node...]} / {"$frozenset": [...]}   set / frozenset
    {"$array": name} / {"$scalar": name}          NumPy array / NumPy scalar stored under `name`
    {"$tensor": i}                                tensors[i]: {"array": name, "requires_grad": bool, "parameter": bool}
    {"$module": i}                                modules[i]: {"class": "pkg.mod.Class", "parameters": {name: node},
                                                  "buffers": {..}, "non_persistent": [name..], "modules": {..},
                                                  "attributes": {name: node}}
    {"$object": [class path, {name: node}]}      a dataclass or an allow-listed plain object
    {"$function": "pkg.mod.name"}                 a module-level function, by name (an activation)

Identity is kept where torch keeps it: one Tensor (or Module) saved twice loads as one object
(tied weights stay tied), Tensors over one array share it again, an array saved twice is one
array. Lists and dicts are copied per reference, and a cycle through them is refused.

Loading rebuilds modules without calling their `__init__` (`cls.__new__`, then Module's own
empty state, registries and attributes), and only for classes nanoframe ships (its nn layers,
GPT, LoRALinear, GPTConfig) or that the caller allows, as torch's weights_only loading does:
`add_safe_globals([Net])` or `with safe_globals([Net]): ...`. Functions (a layer's `activation`)
are saved by name and resolved, never imported, from the same two places: nanoframe's
`nn.functional` and the allow-list. Dataclasses are rebuilt through
their constructor, so their own validation runs on the file's values. Files of version 1 (written
before modules and tensors could be saved) hold only arrays, containers and scalars, and load as
they always did.
"""
import dataclasses
import importlib
import json
import math
import os
import sys
import types
import zipfile
from collections import OrderedDict
from io import BytesIO

import numpy as np

from nanoframe.errors import CheckpointError, NanoframeError, bounded
from nanoframe import io as nfio
from nanoframe.io import dtype_code
from nanoframe.nn.module import Module, Parameter
from nanoframe.tensor import Tensor

__all__ = ["add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals", "save", "load"]

VERSION = 2
_V1_TAGS = {"$array", "$dict", "$tuple", "$float"}
# Module internals saved as the entry's own fields, not as attributes (both spellings of the
# non-persistent set: nanoframe's and torch's).
_REGISTRIES = {"_parameters", "_buffers", "_modules", "_non_persistent_buffers", "_non_persistent_buffers_set"}
_SHIPPED_MODULES = ("nanoframe.nn", "nanoframe.nn.lora", "nanoframe.models.gpt")
_SAVEABLE = ("nanoframe.save stores Tensors, NumPy arrays and scalars, None, bool, int, float, str, lists, tuples, "
             "dicts, sets, nn.Modules and dataclasses (never pickle)")


class UnsupportedObjectError(NanoframeError, TypeError):
    """An object `nanoframe.save` cannot represent without pickle (a function, a file, ...)."""


# ---- the allow-list ---------------------------------------------------------------------------------

_safe_globals = []


def add_safe_globals(safe_globals):
    """Allow `nanoframe.load` to rebuild these classes and resolve these functions (each a class or
    function, or a (class, "module.Name") pair for a class saved under another path)."""
    if not isinstance(safe_globals, (list, tuple)):
        raise TypeError(f"add_safe_globals expects a list of classes, got {type(safe_globals).__name__}")
    _safe_globals.extend(safe_globals)


def get_safe_globals():
    """The classes added with add_safe_globals (a copy)."""
    return list(_safe_globals)


def clear_safe_globals():
    _safe_globals.clear()


class safe_globals:
    """`with safe_globals([Net, Config]): nanoframe.load(path)`: allow these classes inside the block."""

    def __init__(self, safe_globals):
        self.safe_globals = list(safe_globals)

    def __enter__(self):
        self._before = get_safe_globals()
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        _safe_globals[:] = self._before


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _shipped_globals():
    """path -> class or function: nanoframe's own Module subclasses, dataclasses and nn.functional."""
    found = {}
    for name in _SHIPPED_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if dataclasses.is_dataclass(value) and isinstance(value, type) and value.__module__.startswith("nanoframe."):
                found[_class_path(value)] = value
    stack = [Module]
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("nanoframe."):
            found[_class_path(cls)] = cls
        stack.extend(cls.__subclasses__())
    from nanoframe import functional  # the functions a saved layer may name (activations and the like)
    for value in vars(functional).values():
        if isinstance(value, types.FunctionType) and value.__module__.startswith("nanoframe."):
            found[_class_path(value)] = value
    return found


def _allowed(path, shipped):
    """The class or function a file may name by `path` (allow-listed, else in `shipped`), or None."""
    for entry in reversed(_safe_globals):
        if isinstance(entry, tuple) and len(entry) == 2 and entry[1] == path:
            return entry[0]
        if (isinstance(entry, type) or _is_function(entry)) and _class_path(entry) == path:
            return entry
    return shipped.get(path)


def _is_function(obj):
    return isinstance(obj, (types.FunctionType, types.BuiltinFunctionType))


def _importable_name(fn):
    """'module.qualname' when that name leads back to `fn` itself (not a lambda, a local def or a
    method), else None. Only for saving: loading never imports a name read from a file."""
    path = _class_path(fn)
    module = sys.modules.get(fn.__module__)
    obj = module
    for part in fn.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return path if module is not None and obj is fn else None


# ---- encoding --------------------------------------------------------------------------------------


class _Encoder:
    """Walks an object, collecting arrays (name -> ndarray) and the JSON skeleton."""

    def __init__(self, root_name):
        self.root_name = root_name
        self.arrays = {}             # file name -> ndarray
        self.array_names = {}        # id(ndarray) -> file name
        self.tensors, self.tensor_index = [], {}
        self.modules, self.module_index = [], {}
        self.alive = []              # keeps every object whose id() is a key above alive
        self._shipped = None

    @property
    def shipped(self):
        if self._shipped is None:  # imports GPT and LoRA: only when an unusual object is met
            self._shipped = _shipped_globals()
        return self._shipped

    def where(self, parts):
        return self.root_name + "".join(f".{p}" for p in parts)

    def array_name(self, array, parts):
        if id(array) in self.array_names:
            return self.array_names[id(array)]
        if dtype_code(array.dtype) is None:
            raise UnsupportedObjectError(f"save: {self.where(parts)} is an array of dtype {array.dtype}, "
                                         "which safetensors cannot store")
        base = ".".join(parts) or "tensor"
        name, i = base, 0
        while name in self.arrays or name == "__metadata__":
            i += 1
            name = f"{base}~{i}"
        self.arrays[name] = array
        self.array_names[id(array)] = name
        self.alive.append(array)
        return name

    def tensor(self, t, parts):
        if id(t) not in self.tensor_index:
            if type(t) is not Tensor and not isinstance(t, Parameter):
                raise UnsupportedObjectError(f"save: {self.where(parts)} is a {type(t).__name__} (a Tensor subclass); "
                                             "save it as a Tensor or a NumPy array")
            self.tensor_index[id(t)] = len(self.tensors)
            self.alive.append(t)
            self.tensors.append({"array": self.array_name(t.array, parts), "requires_grad": bool(t.requires_grad),
                                 "parameter": isinstance(t, Parameter)})
        return {"$tensor": self.tensor_index[id(t)]}

    def module(self, m, parts, active):
        if id(m) in self.module_index:
            return {"$module": self.module_index[id(m)]}
        index = self.module_index[id(m)] = len(self.modules)
        self.alive.append(m)
        self.modules.append(None)  # filled below; children may refer back to this index
        state = vars(m)
        non_persistent = state.get("_non_persistent_buffers", state.get("_non_persistent_buffers_set", set()))
        self.modules[index] = {
            "class": _class_path(type(m)),
            "parameters": {k: None if p is None else self.tensor(p, parts + [k]) for k, p in m._parameters.items()},
            "buffers": {k: None if b is None else self.tensor(b, parts + [k]) for k, b in m._buffers.items()},
            "non_persistent": sorted(non_persistent),
            "modules": {k: None if c is None else self.module(c, parts + [k], active) for k, c in m._modules.items()},
            "attributes": {k: self.encode(v, parts + [k], active) for k, v in state.items() if k not in _REGISTRIES},
        }
        return {"$module": index}

    def encode(self, node, parts, active=frozenset()):
        if isinstance(node, np.generic):  # before float: np.float64 is a float
            if node.dtype.kind not in "biufc":
                raise UnsupportedObjectError(f"save: {self.where(parts)} is a NumPy scalar of dtype {node.dtype}; "
                                             + _SAVEABLE)
            return {"$scalar": self.array_name(np.asarray(node), parts)}
        kind = type(node)
        if node is None or kind in (bool, int, str):
            return node
        if kind is float:
            return node if math.isfinite(node) else {"$float": repr(node)}
        if kind is np.ndarray:
            return {"$array": self.array_name(node, parts)}
        if isinstance(node, Tensor):
            return self.tensor(node, parts)
        if kind in (list, tuple, dict, OrderedDict, set, frozenset):
            if id(node) in active:
                raise NanoframeError(f"save: cyclic reference at {self.where(parts)}")
            active = active | {id(node)}
            if kind is list:
                return [self.encode(v, parts + [str(i)], active) for i, v in enumerate(node)]
            if kind is tuple:
                return {"$tuple": [self.encode(v, parts + [str(i)], active) for i, v in enumerate(node)]}
            if kind in (set, frozenset):
                return {"$" + kind.__name__: [self.key(v, parts) for v in node]}
            if kind is dict and all(type(k) is str for k in node):
                return {"$dict": {k: self.encode(v, parts + [k], active) for k, v in node.items()}}
            items = [[self.key(k, parts), self.encode(v, parts + [str(k)], active)] for k, v in node.items()]
            return {"$items": ["OrderedDict" if kind is OrderedDict else "dict", items]}
        if isinstance(node, Module):
            return self.module(node, parts, active)
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
            return {"$object": [_class_path(kind), {k: self.encode(v, parts + [k], active) for k, v in fields.items()}]}
        if _is_function(node):
            path = _importable_name(node)
            if path is None:
                raise UnsupportedObjectError(
                    f"save: {self.where(parts)} is a function without an importable name ({node.__qualname__}: "
                    f"a lambda, a local def or a method); nanoframe.save stores a function by its module-level name")
            return {"$function": path}
        if hasattr(node, "__dict__") and not isinstance(node, type) and _allowed(_class_path(kind), self.shipped) is kind:
            attrs = vars(node)
            return {"$object": [_class_path(kind), {k: self.encode(v, parts + [k], active) for k, v in attrs.items()}]}
        what = "a method" if isinstance(node, types.MethodType) else f"of type {kind.__name__}"
        raise UnsupportedObjectError(f"save: {self.where(parts)} is {what}; {_SAVEABLE}")

    def key(self, key, parts):
        """A dict key or set element: a hashable scalar or a tuple of them."""
        if type(key) is tuple:
            return {"$tuple": [self.key(k, parts) for k in key]}
        if key is None or type(key) in (bool, int, str):
            return key
        if type(key) is float:
            return key if math.isfinite(key) else {"$float": repr(key)}
        raise UnsupportedObjectError(f"save: {self.where(parts)} has a key or set element of type "
                                     f"{type(key).__name__}; keys must be str, int, float, bool, None or tuples of them")


def encode(obj):
    """(arrays by file name, skeleton JSON string) for `obj`."""
    encoder = _Encoder("model" if isinstance(obj, Module) else "obj")
    root = encoder.encode(obj, [])
    skeleton = {"version": VERSION, "root": root, "tensors": encoder.tensors, "modules": encoder.modules}
    return encoder.arrays, json.dumps(skeleton, ensure_ascii=False, allow_nan=False)


# ---- decoding --------------------------------------------------------------------------------------


class _Decoder:
    """Rebuilds objects from a validated skeleton; every problem is a CheckpointError naming the file."""

    def __init__(self, arrays, skeleton, where, map_storage):
        self.arrays, self.where, self.map_storage = arrays, where, map_storage
        self._shipped = None
        self.version = skeleton["version"]
        self.used, self.scalars_only = set(), set()
        self.tensor_entries = skeleton.get("tensors", [])
        self.module_entries = skeleton.get("modules", [])
        if not isinstance(self.tensor_entries, list) or not isinstance(self.module_entries, list):
            self.fail("'tensors' and 'modules' must be lists")
        self.tensors = [self.make_tensor(i, e) for i, e in enumerate(self.tensor_entries)]
        self.modules = [self.make_shell(i, e) for i, e in enumerate(self.module_entries)]
        for module, entry in zip(self.modules, self.module_entries):
            self.fill(module, entry)

    shipped = _Encoder.shipped

    def fail(self, message):
        raise CheckpointError(f"{self.where}: {bounded(message)}")

    def array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            self.fail(f"skeleton refers to missing tensor {name!r}")
        if self.version == 1 and name in self.used:
            self.fail(f"skeleton refers to tensor {name!r} twice")
        self.used.add(name)
        return self.arrays[name]

    def make_tensor(self, i, entry):
        if not (isinstance(entry, dict) and set(entry) == {"array", "requires_grad", "parameter"}
                and type(entry["requires_grad"]) is bool and type(entry["parameter"]) is bool):
            self.fail(f"tensor entry {i} must be {{'array': name, 'requires_grad': bool, 'parameter': bool}}")
        array = self.array(entry["array"])
        if array.dtype.kind not in "biuf" or (entry["requires_grad"] and array.dtype.kind != "f"):
            self.fail(f"tensor entry {i}: a tensor of dtype {array.dtype} "
                      f"{'cannot require grad' if array.dtype.kind in 'biu' else 'is not supported'}")
        array = self.map_storage(array)
        if entry["parameter"]:
            return Parameter(array, requires_grad=entry["requires_grad"])
        return Tensor(array, requires_grad=entry["requires_grad"])

    def make_shell(self, i, entry):
        fields = {"class", "parameters", "buffers", "non_persistent", "modules", "attributes"}
        if not (isinstance(entry, dict) and set(entry) == fields and isinstance(entry["class"], str)
                and all(isinstance(entry[k], dict) for k in ("parameters", "buffers", "modules", "attributes"))
                and isinstance(entry["non_persistent"], list)):
            self.fail(f"module entry {i} is malformed")
        cls = self.resolve(entry["class"])
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            self.fail(f"class {entry['class']!r} of module entry {i} is not an nn.Module")
        module = cls.__new__(cls)
        Module.__init__(module)  # the empty registries and flags every Module has
        return module

    def resolve(self, path):
        cls = _allowed(path, self.shipped)
        if cls is None:
            name = path.rsplit(".", 1)[-1]
            self.fail(f"class {path!r} is not allowed: nanoframe.load rebuilds nanoframe's own classes and those "
                      f"you allow, e.g. nanoframe.serialization.add_safe_globals([{name}]) or "
                      f"`with nanoframe.serialization.safe_globals([{name}]): ...`")
        return cls

    def fill(self, module, entry):
        path = entry["class"]
        try:
            for name, node in entry["parameters"].items():
                value = None if node is None else self.decode(node)
                if value is not None and not isinstance(value, Parameter):
                    self.fail(f"{path}: parameter {name!r} is not a Parameter")
                module.register_parameter(name, value)
            non_persistent = entry["non_persistent"]
            for name, node in entry["buffers"].items():
                value = None if node is None else self.decode(node)
                if value is not None and (not isinstance(value, Tensor) or isinstance(value, Parameter)):
                    self.fail(f"{path}: buffer {name!r} is not a Tensor")
                module.register_buffer(name, value, persistent=name not in non_persistent)
            if not set(non_persistent) <= set(entry["buffers"]):
                self.fail(f"{path}: non_persistent names buffers it does not have")
            for name, node in entry["modules"].items():
                value = None if node is None else self.decode(node)
                if value is not None and not isinstance(value, Module):
                    self.fail(f"{path}: submodule {name!r} is not a Module")
                module.add_module(name, value)
        except (KeyError, TypeError) as e:  # a name Module refuses ("", "a.b", an existing attribute)
            self.fail(f"{path}: {e}")
        registered = set(entry["parameters"]) | set(entry["buffers"]) | set(entry["modules"])
        for name, node in entry["attributes"].items():
            if name.startswith("__") or name in _REGISTRIES or name in registered:
                self.fail(f"{path}: attribute name {name!r} is not allowed")
            value = self.decode(node)
            if name == "training" and type(value) is not bool:
                self.fail(f"{path}: attribute 'training' must be a bool, got {value!r:.40}")
            object.__setattr__(module, name, value)

    def make_object(self, path, attrs):
        cls = self.resolve(path)
        if not isinstance(cls, type) or issubclass(cls, Module):
            self.fail(f"{path!r} cannot be rebuilt as a plain object")
        if not isinstance(attrs, dict):
            self.fail(f"object {path!r} needs a dict of attributes")
        values = {k: self.decode(v) for k, v in attrs.items()}
        if dataclasses.is_dataclass(cls):
            init = {f.name for f in dataclasses.fields(cls) if f.init}
            try:
                obj = cls(**{k: v for k, v in values.items() if k in init})  # runs the class's own checks
            except (TypeError, ValueError) as e:
                self.fail(f"{path}: {e}")
            for k, v in values.items():
                if k not in init:
                    object.__setattr__(obj, k, v)
            return obj
        obj = cls.__new__(cls)
        obj.__dict__.update(values)
        return obj

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or len(node) != 1:
            self.fail(f"malformed skeleton node {node!r:.80}")
        (tag, value), = node.items()
        if self.version == 1 and tag not in _V1_TAGS:
            self.fail(f"malformed skeleton node {node!r:.80}")
        if tag == "$array" and isinstance(value, str):
            return self.array(value)
        if tag == "$scalar" and isinstance(value, str):
            array = self.array(value)
            if array.ndim != 0:
                self.fail(f"scalar {value!r} has shape {array.shape}")
            return array[()]
        if tag == "$tensor" and _is_index(value, self.tensors):
            return self.tensors[value]
        if tag == "$module" and _is_index(value, self.modules):
            return self.modules[value]
        if tag == "$dict" and isinstance(value, dict):
            return {k: self.decode(v) for k, v in value.items()}
        if tag == "$items" and isinstance(value, list) and len(value) == 2 and value[0] in ("dict", "OrderedDict") \
                and isinstance(value[1], list) and all(isinstance(kv, list) and len(kv) == 2 for kv in value[1]):
            out = OrderedDict() if value[0] == "OrderedDict" else {}
            for k, v in value[1]:
                key = self.key(k)
                if key in out:
                    self.fail(f"duplicate key {key!r}")
                out[key] = self.decode(v)
            return out
        if tag in ("$set", "$frozenset") and isinstance(value, list):
            return (set if tag == "$set" else frozenset)(self.key(k) for k in value)
        if tag == "$tuple" and isinstance(value, list):
            return tuple(self.decode(v) for v in value)
        if tag == "$float" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "$object" and isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            return self.make_object(*value)
        if tag == "$function" and isinstance(value, str):
            fn = _allowed(value, self.shipped)
            if not _is_function(fn):
                name = value.rsplit(".", 1)[-1]
                self.fail(f"function {value!r} is not allowed: nanoframe.load resolves nanoframe's nn.functional and "
                          f"the functions you allow, e.g. nanoframe.serialization.add_safe_globals([{name}])")
            return fn
        self.fail(f"malformed skeleton node {node!r:.80}")

    def key(self, node):
        """A dict key or set element: scalars and tuples of them only (hashable)."""
        if isinstance(node, dict) and len(node) == 1 and isinstance(node.get("$tuple"), list):
            return tuple(self.key(k) for k in node["$tuple"])
        if isinstance(node, dict) and len(node) == 1 and node.get("$float") in ("nan", "inf", "-inf"):
            return float(node["$float"])
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        self.fail(f"malformed key {node!r:.80}")


def storage_mapper(map_location):
    """`load`'s map_location the CPU-only way, as a function array -> array applied to every
    Tensor: None, "cpu", "cpu:0" or a cpu device keep tensors where they are; a dict maps saved
    locations (always "cpu" in nanoframe files) to targets; a callable is called as torch calls it,
    fn(tensor, "cpu"), and may return None (keep) or a Tensor of the same shape. Any other target
    (CUDA, MPS...) is an error: nanoframe runs on the CPU only."""
    if map_location is None:
        return _keep
    if isinstance(map_location, dict):
        _check_cpu(map_location.get("cpu", "cpu"))
        return _keep
    if callable(map_location) and not isinstance(map_location, str) and not hasattr(map_location, "type"):
        def apply(array):
            result = map_location(Tensor(array), "cpu")
            if result is None:
                return array
            if isinstance(result, Tensor) and result.shape == array.shape:
                return result.array
            raise NanoframeError("a map_location function must return None or a Tensor of the shape it was given, "
                                 f"got {type(result).__name__}")
        return apply
    _check_cpu(map_location)
    return _keep


def _keep(array):
    return array


def _check_cpu(device):
    name = device if isinstance(device, str) else getattr(device, "type", None)
    if not isinstance(name, str) or name.split(":")[0] != "cpu":
        raise NanoframeError(f"map_location={bounded(repr(device), 60)}: nanoframe runs on the CPU only; "
                             "use map_location='cpu' or leave it out")


def _is_index(value, table):
    return type(value) is int and 0 <= value < len(table)


def decode(arrays, skeleton_json, where, map_storage=_keep):
    """The object saved as `arrays` + `skeleton_json` (from a file named `where`)."""
    try:
        skeleton = json.loads(skeleton_json)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: nanoframe skeleton is not valid JSON: {bounded(e, 120)}") from None
    if not isinstance(skeleton, dict) or skeleton.get("version") not in (1, VERSION) or "root" not in skeleton:
        raise CheckpointError(f"{where}: unsupported nanoframe skeleton (expected version 1 or {VERSION}); "
                              "it may come from a newer nanoframe")
    try:
        decoder = _Decoder(arrays, skeleton, where, map_storage)
        root = decoder.decode(skeleton["root"])
    except RecursionError:
        raise CheckpointError(f"{where}: nanoframe skeleton is nested too deeply") from None
    unused = arrays.keys() - decoder.used
    if unused:
        raise CheckpointError(f"{where}: tensors not referenced by the skeleton: {bounded(sorted(unused)[:5])}")
    return root


# --------------------------------------------------------------------------
# save / load (torch.save / torch.load)
# --------------------------------------------------------------------------

# The object's skeleton lives in __metadata__[_SKELETON_KEY]; its format is described in
# this module's docstring (version 1: files of nested arrays/containers written before
# modules and tensors could be saved; they load as before).
_SKELETON_KEY = "nanoframe"
_CONVERT = ("convert it once in PyTorch: from safetensors.torch import save_file; "
            "save_file(torch.load(path, weights_only=True), 'model.safetensors') "
            "(for a whole model, save model.state_dict()), then load that file")


def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """Save ``obj`` to ``f`` (a path, written atomically, or a binary file object) as one
    safetensors file: Tensors, NumPy arrays and scalars, Python scalars, lists, tuples, dicts
    (any scalar keys), OrderedDicts, sets, whole nn.Modules and dataclasses, nested freely.

    Arrays become tensors named by their path (``"model.transformer.wte.weight"``,
    ``"optimizer.state.3.exp_avg"``), so the file opens in any safetensors reader; the structure
    is JSON in ``__metadata__["nanoframe"]``. Anything else (a lambda, an open file, an arbitrary
    object) raises one line naming where it is (``model.encoder.fn``) before anything is written.
    The pickle arguments of torch.save are accepted and unused: nanoframe never pickles.
    """
    arrays, skeleton = encode(obj)
    layout = nfio._layout(arrays, {_SKELETON_KEY: skeleton})
    if isinstance(f, (str, os.PathLike)):
        with nfio.atomic_open(f, "wb") as out:
            nfio._write_layout(out, *layout)
    elif hasattr(f, "write"):
        nfio._write_layout(f, *layout)
    else:
        raise TypeError(f"save: f must be a path or a binary file object, got {type(f).__name__}")


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Load what ``save`` wrote to ``f`` (a path or a binary file object): Tensors as Tensors
    (Parameters with their requires_grad), NumPy arrays as arrays, containers and modules as saved.

    A safetensors file from elsewhere loads as its ``{name: ndarray}`` dict. Nothing is ever executed, so
    ``weights_only`` (True or False) changes nothing; classes are rebuilt only from nanoframe's own
    and those allowed with ``nanoframe.serialization.add_safe_globals``. ``map_location`` accepts
    what torch accepts, the CPU-only way (see serialization.storage_mapper). ``mmap`` is accepted;
    the tensors are read into memory either way. A PyTorch pickle checkpoint is refused with one
    line saying how to convert it. Any problem with the file raises CheckpointError naming it.
    """
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"weights_only must be None, True or False, got {weights_only!r}")
    if mmap is not None and not isinstance(mmap, bool):
        raise TypeError(f"mmap must be None, True or False, got {mmap!r}")
    map_storage = storage_mapper(map_location)
    if isinstance(f, (str, os.PathLike)):
        where = os.fspath(f)
        with open(f, "rb") as stream:
            tensors, metadata = _read_checked(stream, where)
    elif hasattr(f, "read"):
        where = str(getattr(f, "name", "<file object>"))
        tensors, metadata = _read_checked(BytesIO(f.read()), where)
    else:
        raise TypeError(f"load: f must be a path or a binary file object, got {type(f).__name__}")
    if _SKELETON_KEY not in metadata:  # from another library: its arrays, as load_safetensors gives them
        return tensors
    return decode(tensors, metadata[_SKELETON_KEY], where, map_storage)


def _read_checked(f, where):
    """``_read_file`` after refusing pickle files (torch's zip checkpoints, raw pickle streams)."""
    head = f.read(9)
    f.seek(0)
    if head[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(f).namelist()  # lists the archive; nothing in it is run
        except (zipfile.BadZipFile, OSError, ValueError):
            names = []
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            raise CheckpointError(f"{where} is a PyTorch checkpoint (torch.save's zip of pickles); nanoframe never "
                                  f"unpickles, since unpickling can run any code: {_CONVERT}")
        raise CheckpointError(f"{where} is a zip archive, not a safetensors file written by nanoframe.save")
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[8:9] != b"{":
        raise CheckpointError(f"{where} is a pickle file (e.g. torch.save's legacy format); nanoframe never "
                              f"unpickles, since unpickling can run any code: {_CONVERT}")
    return nfio._read_file(f, where)
