"""LoRA adapter files: the adapter tensors alone as safetensors, with their config (and the SHA-256
of the base weights they were trained on) in the metadata.

    save_adapter(model, path, config) / load_adapter(model, path) / read_adapter(path)

The layer and the model transforms live in nanoframe.nn.lora and are re-exported here.
"""
import json

import numpy as np

from nanoframe.errors import CheckpointError, bounded
from nanoframe.io import load_safetensors, load_safetensors_metadata, save_safetensors
from nanoframe.nn.lora import (  # noqa: F401  (re-exported: the old import path)
    DEFAULT_LORA_TARGETS,
    LoRALinear,
    apply_lora,
    lora_config,
    lora_config_of,
    lora_state_dict,
    matches,
    merge_lora,
)

ADAPTER_FORMAT = "nanoframe.lora"


def save_adapter(model, path, config, base_sha256=None):
    """Write the adapter tensors as safetensors with the LoRA config (and the SHA-256 of the base
    weights it was trained on, which `lora merge` checks) in the metadata."""
    tensors = lora_state_dict(model)
    if not tensors:
        raise ValueError("save_adapter: the model has no LoRA adapters")
    meta = {"format": ADAPTER_FORMAT, "lora_config": json.dumps(lora_config(**config))}
    if base_sha256:
        meta["base_weights_sha256"] = base_sha256
    save_safetensors(tensors, path, metadata=meta)
    return path


def read_adapter(path):
    """(config dict, tensors, metadata) of an adapter file written by save_adapter, validated."""
    meta = load_safetensors_metadata(path)
    if meta.get("format") != ADAPTER_FORMAT or "lora_config" not in meta:
        raise CheckpointError(f"{path} is not a nanoframe LoRA adapter file (no lora_config metadata)")
    try:
        config = json.loads(meta["lora_config"])
        config = lora_config(**config)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt lora_config metadata: {bounded(e, 150)}") from None
    return config, load_safetensors(path), meta


def load_adapter_tensors(model, tensors, where="adapter"):
    """Copy adapter tensors into a model that already has LoRA applied; every adapter must be there."""
    own = {n: p for n, p in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))}
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{where} does not fit this model: missing {missing}, unexpected {unexpected}")
    for name, p in own.items():
        value = np.asarray(tensors[name])
        if value.shape != p.array.shape:
            raise CheckpointError(f"{where}: shape mismatch for {name}: file {value.shape}, model {p.array.shape}")
        np.copyto(p.array, value, casting="same_kind")


def load_adapter(model, path):
    """Apply LoRA (config from the file) to `model` and load the adapter weights. Returns the config."""
    config, tensors, _ = read_adapter(path)
    apply_lora(model, **config)
    load_adapter_tensors(model, tensors, str(path))
    return config
