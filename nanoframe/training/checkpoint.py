"""Checkpoint folders: safetensors weights and optimizer moments plus a JSON state file, never pickle.

    step_000500/
      model.safetensors       the model's weights (tied weights stored once)
      optimizer.safetensors   AdamW moments and step counts (nanoframe.save); absent in best/
      state.json              step, configs, RNG states, val losses, tokenizer and data hashes

A folder is written as NAME.tmp and renamed into place, state.json last, so a crash (even kill -9)
never leaves a folder that looks complete. Replacing an existing folder (best/) goes through
NAME.old; `recover` finishes or rolls back a swap that a crash interrupted, and readers fall back
to NAME.old while a swap is under way.

Everything read back is validated before use: state.json against its schema, the weights' names
and shapes against the model config BEFORE a model is allocated from it, every tensor finite.
"""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from nanoframe.errors import CheckpointError, ConfigError, bounded
from nanoframe.io import load_safetensors, read_json, safetensors_shapes, save_safetensors
from nanoframe.serialization import load, save
from nanoframe.schema import field

STATE = "state.json"
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
FORMAT, VERSION = "nanoframe.checkpoint", 1


def model_tensors(model):
    """name -> ndarray of a model's state, each shared (tied) array stored once under its first name."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        arr = np.asarray(t.array if hasattr(t, "array") else t)
        if id(t) in seen or id(arr) in seen:
            continue
        seen.update((id(t), id(arr)))
        out[name] = arr
    return out


def is_complete(folder):
    return (Path(folder) / STATE).is_file()


def _finite_json(value):
    """JSON has no NaN or inf: a non-finite float is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def save_checkpoint(folder, model, optimizer, state):
    """Write a checkpoint folder atomically (NAME.tmp, then rename; an existing one via NAME.old)."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_safetensors(model_tensors(model), tmp / MODEL,
                     metadata={"format": "nanoframe", "step": str(state.get("step", ""))})
    if optimizer is not None:
        save(optimizer.state_dict(), tmp / OPTIMIZER)
    state = {"format": FORMAT, "version": VERSION, **_finite_json(state)}
    from nanoframe.io import atomic_write_text

    atomic_write_text(tmp / STATE, json.dumps(state, indent=1, allow_nan=False) + "\n")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def recover(folder):
    """Finish or roll back a replacement of `folder` that a crash interrupted (call under the run
    lock): a complete NAME.tmp wins, then NAME.old; leftovers are removed."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    if not is_complete(folder):
        for candidate in (tmp, old):
            if is_complete(candidate):
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(candidate, folder)
                break
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def readable(folder):
    """`folder` if complete, else its NAME.old while a swap is under way, else None."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if is_complete(candidate):
            return candidate
    return None


# ---- reading, validated ------------------------------------------------------------------------------
def read_state(folder):
    """The validated state.json of a checkpoint folder (CheckpointError naming file and field)."""
    from nanoframe.models.gpt import GPTConfig
    from nanoframe.training.config import TrainConfig

    where = str(Path(folder) / STATE)
    state = read_json(Path(folder) / STATE, f"{folder} is not a complete checkpoint (no {STATE})", CheckpointError)
    err = CheckpointError
    field(state, "step", where, int, low=0, error=err)
    for key, cls in (("model_config", GPTConfig), ("train_config", TrainConfig)):
        d = field(state, key, where, dict, optional=key == "train_config", error=err)
        if d is not None:
            try:
                cls.from_dict(d)
            except (ConfigError, TypeError, ValueError) as e:
                raise err(f"{where}: field {key!r}: {bounded(e)}") from None
    for key in ("best_val_loss", "val_loss"):
        field(state, key, where, float, optional=True, none_ok=True, error=err)
    field(state, "evals_since_best", where, int, optional=True, default=0, low=0, error=err)
    rng = field(state, "rng", where, dict, optional=True, none_ok=True, error=err)
    data = field(state, "data", where, dict, optional=True, none_ok=True, error=err)
    for key, value in (("rng", rng), ("data", (data or {}).get("rng") if data is not None else None)):
        if value is not None or (key == "data" and data is not None):
            _check_generator_state(value, f"{where}: field {key!r}")
    for key in ("tokenizer_sha256", "data_meta_sha256", "tokenizer"):
        field(state, key, where, str, optional=True, none_ok=True, error=err)
    world = field(state, "world_size", where, int, optional=True, default=1, low=1, high=1 << 20, error=err)
    field(state, "base", where, dict, optional=True, none_ok=True, error=err)
    ranks = field(state, "rank_states", where, list, optional=True, none_ok=True, error=err)
    if ranks is not None:          # a distributed run: every rank's RNG and batch sampler state
        if len(ranks) != world:
            raise err(f"{where}: field 'rank_states' has {len(ranks)} entries for world_size {world}")
        for r, entry in enumerate(ranks):
            if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
                raise err(f"{where}: rank_states[{r}] must be an object with 'rng' and 'data' states")
            _check_generator_state(entry.get("rng"), f"{where}: rank_states[{r}].rng")
            _check_generator_state(entry["data"].get("rng"), f"{where}: rank_states[{r}].data")
    elif world > 1:
        raise err(f"{where}: world_size {world} without the ranks' states (field 'rank_states')")
    lora = field(state, "lora", where, dict, optional=True, none_ok=True, error=err)
    if lora is not None:
        from nanoframe.nn.lora import lora_config

        try:
            state["lora"] = lora_config(**lora)
        except (TypeError, ValueError) as e:
            raise err(f"{where}: field 'lora': {bounded(e)}") from None
    return state


def _check_generator_state(value, where):
    """A numpy PCG64 state dict (what get_rng_state / a sampler's state_dict store), or raise."""
    try:
        np.random.default_rng().bit_generator.state = value
    except (TypeError, KeyError, ValueError, OverflowError):
        raise CheckpointError(f"{where} is not a random generator state") from None


def expected_shapes(state):
    """name -> shape of the tensors a checkpoint with this (validated) state must hold."""
    from nanoframe.models.gpt import GPTConfig, linear_shapes, parameter_shapes
    from nanoframe.nn.lora import matches

    cfg = GPTConfig.from_dict(state["model_config"])
    shapes = parameter_shapes(cfg)
    lora = state.get("lora")
    if lora:
        for name, (out, inp) in linear_shapes(cfg).items():
            if matches(name, lora["targets"]):
                shapes[name + ".lora_A"] = (lora["r"], inp)
                shapes[name + ".lora_B"] = (out, lora["r"])
    return shapes


def check_fit(folder, state):
    """The weights file holds exactly the tensors the state's config describes, float, of the right
    shapes: checked from the header alone, before any model is allocated from the config."""
    path = Path(folder) / MODEL
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {MODEL}")
    try:
        found = safetensors_shapes(path)
    except ValueError as e:
        raise CheckpointError(bounded(e)) from None
    want = expected_shapes(state)
    missing, unexpected = sorted(set(want) - set(found)), sorted(set(found) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit the model_config in {STATE}: missing {bounded(missing, 150)}, "
                              f"unexpected {bounded(unexpected, 150)}")
    for name, shape in want.items():
        code, got = found[name]
        if tuple(got) != tuple(shape) or code not in ("F32", "F64", "F16", "BF16"):
            raise CheckpointError(f"{path}: tensor {name!r} is {code} {list(got)}, the model_config needs "
                                  f"a float tensor of shape {list(shape)}")


def _finite(arrays, where):
    for name, a in arrays.items():
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{where}: tensor {name!r} holds NaN or inf")


def build_model(state):
    """A GPT (with LoRA adapters when the state says so) shaped by a validated state; untrained."""
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.lora import apply_lora

    model = GPT(GPTConfig.from_dict(state["model_config"]))
    if state.get("lora"):
        apply_lora(model, **state["lora"])
    return model


def load_checkpoint(folder, model=None, optimizer=None):
    """(model, state): weights (and optimizer state when given) from a checkpoint folder, all
    validated. With model=None the model is built from the state (after the shapes are checked)."""
    folder = Path(folder)
    state = read_state(folder)
    check_fit(folder, state)
    if model is None:
        model = build_model(state)
    tensors = load_safetensors(folder / MODEL)
    _finite(tensors, str(folder / MODEL))
    try:
        result = model.load_state_dict(tensors, strict=False)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"{folder}: {bounded(e)}") from None
    tied = set(model.state_dict()) - set(model_tensors(model))
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{folder} does not fit this model: missing {bounded(missing, 150)}, "
                              f"unexpected {bounded(list(result.unexpected_keys), 150)}")
    if optimizer is not None:
        _load_optimizer(folder / OPTIMIZER, optimizer)
    return model, state


def _load_optimizer(path, optimizer):
    if not path.is_file():
        raise CheckpointError(f"{path.parent} has no optimizer state to resume from")
    try:
        saved = load(path)
        _finite(_flat_arrays(saved), str(path))
        optimizer.load_state_dict(saved)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: not an optimizer state for this model ({bounded(e, 150)})") from None
    for i, group in enumerate(optimizer.param_groups):
        for key, value in group.items():
            values = value if isinstance(value, tuple) else (value,)
            if key != "params" and any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise CheckpointError(f"{path}: param group {i} option {key!r} is not finite")


def _flat_arrays(node, prefix="state"):
    """name -> array of every array (or Tensor's array) in a nested structure (for the finiteness check)."""
    if isinstance(node, np.ndarray):
        return {prefix: node}
    if isinstance(getattr(node, "array", None), np.ndarray):
        return {prefix: node.array}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else ()
    out = {}
    for k, v in items:
        out.update(_flat_arrays(v, f"{prefix}.{k}"))
    return out
