"""Checkpoints: safetensors weights and optimizer moments plus a JSON state file, never pickle.

A checkpoint is a folder:

    step_000500/
      model.safetensors       the model's weights (tied weights stored once)
      optimizer.safetensors   AdamW moments and step counts (nanoframe.io.save)
      state.json              step, configs, RNG states, val losses, tokenizer path

The folder is written under a temporary name and renamed into place, and state.json is written
last, so a crash (even kill -9) mid-save never leaves a checkpoint that looks complete.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np

from nanoframe.errors import CheckpointError
from nanoframe.io import atomic_write_text, load, load_safetensors, read_json, save, save_safetensors

STATE = "state.json"




def model_tensors(model):
    """name -> ndarray of a model's state, each shared (tied) array stored once under its first name."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        arr = np.asarray(t.array if hasattr(t, "data") else t)
        if id(t) in seen or id(arr) in seen:
            continue
        seen.update((id(t), id(arr)))
        out[name] = arr
    return out


def load_model_tensors(model, tensors, where=""):
    """Load arrays into a model; keys missing only because they are tied to a stored one are fine."""
    try:
        result = model.load_state_dict(tensors, strict=False)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from None
    tied = set(model.state_dict()) - set(model_tensors(model))
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{where} does not fit this model: missing {missing}, "
                              f"unexpected {list(result.unexpected_keys)}")


def save_checkpoint(folder, model, optimizer, state):
    """Write a checkpoint folder atomically (temporary folder, then rename)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_safetensors(model_tensors(model), tmp / "model.safetensors",
                     metadata={"format": "nanoframe", "step": str(state.get("step", ""))})
    if optimizer is not None:
        save(optimizer.state_dict(), tmp / "optimizer.safetensors")
    atomic_write_text(tmp / STATE, json.dumps(state, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def read_state(folder):
    return read_json(Path(folder) / STATE, f"{folder} is not a complete checkpoint (no {STATE})",
                     CheckpointError)


def load_checkpoint(folder, model, optimizer=None):
    """Load weights (and optimizer state when given) from a checkpoint folder; return its state dict."""
    folder = Path(folder)
    state = read_state(folder)
    load_model_tensors(model, load_safetensors(folder / "model.safetensors"), str(folder))
    if optimizer is not None:
        opt_path = folder / "optimizer.safetensors"
        if not opt_path.is_file():
            raise CheckpointError(f"{folder} has no optimizer state to resume from")
        optimizer.load_state_dict(load(opt_path))
    return state


def list_checkpoints(run_dir):
    """Complete step checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")
             and not p.name.endswith((".tmp", ".old")) and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def find_checkpoint(path):
    """A checkpoint folder from a run folder (its latest checkpoint), a checkpoint folder, or best/."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such run or checkpoint: {path}")
    if (path / STATE).is_file():
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1]
    if (path / "best" / STATE).is_file():
        return path / "best"
    raise CheckpointError(f"{path} holds no complete checkpoint")


def prune_checkpoints(run_dir, keep):
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
