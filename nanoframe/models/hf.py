"""Hugging Face GPT-2 folders <-> nanoframe GPT.

A Hugging Face GPT-2 folder holds `config.json` (GPT2Config) and `model.safetensors`, and for the
tokenizer `vocab.json` + `merges.txt` (or OpenAI's `encoder.json` + `vocab.bpe`: same formats).

Names map key by key: HF's `transformer.h.0.attn.c_attn.weight` is ours. The differences:

- HF's Conv1D layers (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) store weight (in, out);
  our Linear stores (out, in), so those four weights are transposed both ways.
- Some files omit the "transformer." prefix; non-parameter buffers (attn.bias, attn.masked_bias:
  the causal mask) are skipped; lm_head.weight, when present, must equal wte (tied).
- nanoframe's GPT is GPT-2 exactly when LayerNorm eps is 1e-5 and the MLP uses tanh GELU
  ("gelu_new"); a config asking for anything else is refused rather than loaded wrong.

    load_hf(folder) -> GPT           save_hf(model, folder)

The tokenizer of such a folder is read by nanoframe.tokenizer.load_tokenizer(folder).
"""
import json
import re
from pathlib import Path

import numpy as np

from nanoframe.errors import ConfigError, bounded
from nanoframe.io import atomic_write_text, load_safetensors, read_json, safetensors_shapes, save_safetensors
from nanoframe.schema import MAX_VOCAB, field

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# activations that are exactly nanoframe's F.gelu(approximate="tanh")
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh")
_BUFFER = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")


def is_hf_folder(path):
    """True for a folder with config.json + model.safetensors and no nanoframe state.json."""
    p = Path(path)
    return (p.is_dir() and (p / "config.json").is_file() and (p / "model.safetensors").is_file()
            and not (p / "state.json").is_file())


def config_from_hf(hf, where="config.json"):
    """A GPTConfig from a GPT2Config dict, every field validated (type, range); ConfigError naming
    the file and field for anything malformed or that nanoframe's GPT is not."""
    from nanoframe.models.gpt import GPTConfig

    err = ConfigError
    if not isinstance(hf, dict):
        raise err(f"{where}: expected a JSON object, got {type(hf).__name__}")
    model_type = field(hf, "model_type", where, str, optional=True, default="gpt2", error=err)
    if model_type != "gpt2":
        raise err(f"{where}: model_type {bounded(repr(model_type), 60)} is not supported (only gpt2)")
    act = field(hf, "activation_function", where, str, optional=True, default="gelu_new", error=err)
    if act not in TANH_GELU:
        raise err(f"{where}: activation_function {bounded(repr(act), 60)} is not supported "
                  f"(nanoframe's GPT uses tanh GELU: {', '.join(TANH_GELU)})")
    eps = field(hf, "layer_norm_epsilon", where, float, optional=True, default=1e-5, error=err)
    if abs(eps - 1e-5) > 1e-12:
        raise err(f"{where}: layer_norm_epsilon {eps} is not supported (nanoframe's LayerNorm uses 1e-5)")
    sizes = {k: field(hf, k, where, int, low=1, high=high, error=err)
             for k, high in (("vocab_size", MAX_VOCAB), ("n_positions", 1 << 20), ("n_layer", 4096),
                             ("n_head", 4096), ("n_embd", 1 << 16))}
    n_inner = field(hf, "n_inner", where, int, optional=True, none_ok=True, error=err)
    if n_inner is not None and n_inner != 4 * sizes["n_embd"]:
        raise err(f"{where}: n_inner {n_inner} is not supported (nanoframe's MLP is 4 * n_embd = {4 * sizes['n_embd']})")
    if (field(hf, "scale_attn_by_inverse_layer_idx", where, bool, optional=True, default=False, error=err)
            or not field(hf, "scale_attn_weights", where, bool, optional=True, default=True, error=err)):
        raise err(f"{where}: only the standard 1/sqrt(head size) attention scaling is supported")
    if field(hf, "tie_word_embeddings", where, bool, optional=True, default=True, error=err) is False:
        raise err(f"{where}: untied lm_head (tie_word_embeddings false) is not supported")
    try:
        return GPTConfig(vocab_size=sizes["vocab_size"], block_size=sizes["n_positions"], n_layer=sizes["n_layer"],
                         n_head=sizes["n_head"], n_embd=sizes["n_embd"], dropout=0.0, bias=True)
    except ConfigError as e:
        raise err(f"{where}: {e}") from None


def config_to_hf(cfg, eot_id=None):
    """A GPT2Config dict that transformers loads as GPT2LMHeadModel."""
    hf = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    if eot_id is not None:
        hf["bos_token_id"] = hf["eos_token_id"] = int(eot_id)
    return hf


def state_from_hf(tensors, cfg, where="model.safetensors", shapes_only=False):
    """HF tensors -> {our name: float32 array} with Conv1D weights transposed and every shape checked.

    With shapes_only, `tensors` maps names to shapes (a file's header) and nothing is converted.
    Raises ConfigError naming missing keys, unexpected keys, shape mismatches and non-finite values.
    """
    with_prefix = {}
    lm_head = None
    for name, arr in tensors.items():
        if name == "lm_head.weight":
            lm_head = arr
            continue
        if _BUFFER.search(name):
            continue
        with_prefix[name if name.startswith("transformer.") else "transformer." + name] = arr
    expected = param_shapes(cfg)
    missing = sorted(set(expected) - set(with_prefix))
    unexpected = sorted(set(with_prefix) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing key(s) {bounded(missing, 200)}")
    if unexpected:
        problems.append(f"unexpected key(s) {bounded(unexpected, 200)}")
    out = {}
    for name, arr in with_prefix.items():
        if name not in expected:
            continue
        conv = name.endswith(CONV1D)
        shape = tuple(arr) if shapes_only else arr.shape
        if (shape[::-1] if conv else shape) != expected[name]:
            problems.append(f"shape mismatch for {name}: file has {shape}, config needs "
                            f"{expected[name][::-1] if conv else expected[name]}")
            continue
        if shapes_only:
            continue
        arr = np.asarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            problems.append(f"{name} holds NaN or inf")
            continue
        out[name] = np.ascontiguousarray(arr.T if conv else arr)
    if lm_head is not None and not shapes_only and "transformer.wte.weight" in out:
        if lm_head.shape != out["transformer.wte.weight"].shape or not np.array_equal(
                np.asarray(lm_head, np.float32), out["transformer.wte.weight"]):
            problems.append("lm_head.weight differs from transformer.wte.weight (untied heads are not supported)")
    if problems:
        raise ConfigError(f"{where}: " + bounded("; ".join(problems), 600))
    return out


def param_shapes(cfg):
    """name -> shape of our GPT's parameters, the tied wte/lm_head listed once as transformer.wte.weight
    (Linear weights (out, in), as nanoframe stores them)."""
    C, V = cfg.n_embd, cfg.vocab_size
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (cfg.block_size, C)}
    for i in range(cfg.n_layer):
        h = f"transformer.h.{i}."
        shapes.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (3 * C, C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (4 * C, C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (C, 4 * C), h + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
    return shapes


def read_hf_config(folder):
    return read_json(Path(folder) / "config.json",
                     f"{folder} is not a Hugging Face model folder (no config.json)", ConfigError)


def load_hf(folder):
    """A nanoframe GPT (bias=True, dropout 0) with the weights of a Hugging Face GPT-2 folder.

    The config is validated and the weights' names and shapes are checked against it from the
    safetensors header before the model is allocated."""
    from nanoframe.models.gpt import GPT

    folder = Path(folder)
    cfg = config_from_hf(read_hf_config(folder), str(folder / "config.json"))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{folder} has no model.safetensors (only safetensors weights are read, never pickle)")
    header = {name: shape for name, (_, shape) in safetensors_shapes(weights).items()}
    state_from_hf(header, cfg, str(weights), shapes_only=True)
    state = state_from_hf(load_safetensors(weights), cfg, str(weights))
    model = GPT(cfg)
    model.load_state_dict(state, strict=False)  # lm_head.weight is the tied wte: not stored separately
    return model


def hf_tensors(model):
    """Our GPT's weights in HF GPT-2 layout: Conv1D weights (in, out), float32, biases of a
    bias=False model written as zeros (equivalent), lm_head left to the tie."""
    from nanoframe.nn.lora import lora_config_of

    if lora_config_of(model) is not None:
        raise ValueError("to_hf: the model has LoRA adapters; merge them first (nanoframe.nn.lora.merge_lora)")
    cfg = model.config
    params = dict(model.named_parameters())
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name in params:
            arr = np.asarray(params[name].array, dtype=np.float32)
        elif name.endswith(".bias"):  # bias=False model: a zero bias is the same function
            arr = np.zeros(shape, np.float32)
        else:
            raise ValueError(f"to_hf: the model has no parameter {name}")
        out[name] = np.ascontiguousarray(arr.T if name.endswith(CONV1D) else arr)
    return out


def save_hf(model, folder, eot_id=None):
    """Write config.json + model.safetensors that transformers opens with GPT2LMHeadModel.from_pretrained."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(hf_tensors(model), folder / "model.safetensors", metadata={"format": "pt"})
    atomic_write_text(folder / "config.json", json.dumps(config_to_hf(model.config, eot_id), indent=2) + "\n")
    return folder
