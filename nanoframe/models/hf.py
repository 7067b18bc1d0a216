"""Hugging Face folders (gpt2, llama, qwen2) <-> nanoframe GPT.

A Hugging Face model folder holds `config.json` and `model.safetensors` (one file; sharded
checkpoints are refused), and for the tokenizer a `tokenizer.json` (or GPT-2's `vocab.json` +
`merges.txt`), read by nanoframe.tokenizer.load_tokenizer(folder).

    load_hf(folder) -> GPT           save_hf(model, folder)

gpt2: names map key by key (HF's `transformer.h.0.attn.c_attn.weight` is ours). HF's Conv1D layers
(attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) store weight (in, out), our Linear (out, in), so
those four are transposed both ways. Some files omit the "transformer." prefix; the causal-mask
buffers (attn.bias, attn.masked_bias) are skipped. nanoframe's GPT-2 MLP is tanh GELU ("gelu_new").

llama, qwen2: the GPT with RMSNorm, SwiGLU, RoPE, grouped-query attention and split projections
(GPTConfig's Llama setting); names map by renaming, no transposes:

    model.embed_tokens            transformer.wte           model.norm            transformer.ln_f
    model.layers.N.input_layernorm   transformer.h.N.ln_1   .post_attention_layernorm   .ln_2
    model.layers.N.self_attn.{q,k,v,o}_proj   transformer.h.N.attn.{q,k,v,o}_proj
    model.layers.N.mlp.{gate,up,down}_proj    transformer.h.N.mlp.{gate,up,down}_proj

qwen2 is llama with biases on q, k, v only. Read from config.json, each validated (type, range):
vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
intermediate_size, max_position_embeddings (-> block_size), rms_norm_eps, rope_theta (or
rope_parameters), tie_word_embeddings, attention_bias, mlp_bias, hidden_act, head_dim. Refused,
with one line naming the file and field: any rope scaling kind but "default", partial rotary
factors, a head_dim other than hidden_size / num_attention_heads, activations other than silu,
sliding-window layers, other model types. Every tensor's name and shape is checked against the
config from the safetensors header before the model is allocated, and every value for finiteness.
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
MODEL_TYPES = ("gpt2", "llama", "qwen2")
_GPT2_BUFFER = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")
# llama/qwen2 name pieces, HF's -> ours (and back): a name prefix, then parts inside a layer
_LLAMA_PREFIXES = (("model.embed_tokens.", "transformer.wte."), ("model.norm.", "transformer.ln_f."),
                   ("model.layers.", "transformer.h."))
_LLAMA_PARTS = ((".input_layernorm.", ".ln_1."), (".post_attention_layernorm.", ".ln_2."), (".self_attn.", ".attn."))
_LLAMA_BUFFER = re.compile(r"\.rotary_emb\.inv_freq$")   # written by old transformers versions


def is_hf_folder(path):
    """True for a folder with config.json + model.safetensors and no nanoframe state.json."""
    p = Path(path)
    return (p.is_dir() and (p / "config.json").is_file() and (p / "model.safetensors").is_file()
            and not (p / "state.json").is_file())


# ---- config.json ---------------------------------------------------------------------------------
def config_from_hf(hf, where="config.json"):
    """A GPTConfig from a Hugging Face config dict (model_type gpt2, llama or qwen2), every field
    validated (type, range); ConfigError naming the file and field for anything malformed or that
    nanoframe's GPT cannot represent."""
    if not isinstance(hf, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(hf).__name__}")
    model_type = field(hf, "model_type", where, str, optional=True, default="gpt2", error=ConfigError)
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"{where}: model_type {bounded(repr(model_type), 60)} is not supported "
                          f"(only {', '.join(MODEL_TYPES)})")
    if hf.get("quantization_config") is not None:     # GPTQ, AWQ, bitsandbytes, fp8: other tensors
        raise ConfigError(f"{where}: quantized checkpoints (quantization_config) are not supported; "
                          f"use the float weights")
    return _gpt2_config(hf, where) if model_type == "gpt2" else _llama_config(hf, where, model_type)


def _make(where, **kw):
    from nanoframe.models.gpt import GPTConfig

    try:
        return GPTConfig(**kw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _gpt2_config(hf, where):
    err = ConfigError
    act = field(hf, "activation_function", where, str, optional=True, default="gelu_new", error=err)
    if act not in TANH_GELU:
        raise err(f"{where}: activation_function {bounded(repr(act), 60)} is not supported "
                  f"(nanoframe's GPT-2 MLP uses tanh GELU: {', '.join(TANH_GELU)})")
    eps = field(hf, "layer_norm_epsilon", where, float, optional=True, default=1e-5, low=1e-12, high=1.0, error=err)
    sizes = {k: field(hf, k, where, int, low=1, high=high, error=err)
             for k, high in (("vocab_size", MAX_VOCAB), ("n_positions", 1 << 20), ("n_layer", 4096),
                             ("n_head", 4096), ("n_embd", 1 << 16))}
    n_inner = field(hf, "n_inner", where, int, optional=True, none_ok=True, low=1, high=1 << 20, error=err)
    if (field(hf, "scale_attn_by_inverse_layer_idx", where, bool, optional=True, default=False, error=err)
            or not field(hf, "scale_attn_weights", where, bool, optional=True, default=True, error=err)):
        raise err(f"{where}: only the standard 1/sqrt(head size) attention scaling is supported")
    tied = field(hf, "tie_word_embeddings", where, bool, optional=True, default=True, error=err)
    return _make(where, vocab_size=sizes["vocab_size"], block_size=sizes["n_positions"], n_layer=sizes["n_layer"],
                 n_head=sizes["n_head"], n_embd=sizes["n_embd"], dropout=0.0, bias=True, norm_eps=eps,
                 mlp_hidden=n_inner or 0, tie_word_embeddings=tied)


def _llama_config(hf, where, model_type):
    err = ConfigError
    sizes = {k: field(hf, k, where, int, low=1, high=high, error=err)
             for k, high in (("vocab_size", MAX_VOCAB), ("hidden_size", 1 << 16), ("num_hidden_layers", 4096),
                             ("num_attention_heads", 4096), ("intermediate_size", 1 << 20),
                             ("max_position_embeddings", 1 << 20))}
    C, nh = sizes["hidden_size"], sizes["num_attention_heads"]
    nkv = field(hf, "num_key_value_heads", where, int, optional=True, none_ok=True, low=1, high=4096, error=err) or nh
    head_dim = field(hf, "head_dim", where, int, optional=True, none_ok=True, low=1, high=1 << 16, error=err)
    if head_dim is not None and head_dim * nh != C:
        raise err(f"{where}: head_dim {head_dim} is not supported (nanoframe's head size is hidden_size / "
                  f"num_attention_heads = {C / nh:g})")
    act = field(hf, "hidden_act", where, str, optional=True, default="silu", error=err)
    if act not in ("silu", "swish"):
        raise err(f"{where}: hidden_act {bounded(repr(act), 60)} is not supported (the SwiGLU MLP uses silu)")
    eps = field(hf, "rms_norm_eps", where, float, optional=True, default=1e-6, low=1e-12, high=1.0, error=err)
    theta = _rope_theta(hf, where)
    for key in ("use_sliding_window",):
        if field(hf, key, where, bool, optional=True, default=False, error=err):
            raise err(f"{where}: {key} true (sliding-window attention) is not supported")
    layer_types = field(hf, "layer_types", where, list, optional=True, none_ok=True, error=err)
    if layer_types is not None and any(t != "full_attention" for t in layer_types):
        raise err(f"{where}: layer_types {bounded(repr(layer_types), 80)}: only full_attention layers are supported")
    tied = field(hf, "tie_word_embeddings", where, bool, optional=True, default=False, error=err)
    qwen2 = model_type == "qwen2"
    attention_bias = not qwen2 and field(hf, "attention_bias", where, bool, optional=True, default=False, error=err)
    mlp_bias = not qwen2 and field(hf, "mlp_bias", where, bool, optional=True, default=False, error=err)
    if nh % nkv:
        raise err(f"{where}: num_attention_heads {nh} is not a multiple of num_key_value_heads {nkv}")
    return _make(where, vocab_size=sizes["vocab_size"], block_size=sizes["max_position_embeddings"],
                 n_layer=sizes["num_hidden_layers"], n_head=nh, n_embd=C, dropout=0.0, bias=False,
                 n_kv_head=nkv if nkv != nh else 0, positions="rope", rope_theta=theta, norm="rmsnorm",
                 norm_eps=eps, mlp="swiglu", mlp_hidden=sizes["intermediate_size"], qkv_proj="split",
                 qkv_bias=qwen2, attention_bias=attention_bias, mlp_bias=mlp_bias, tie_word_embeddings=tied)


def _rope_theta(hf, where):
    """rope_theta from config.json, written the transformers 4 way (rope_theta, rope_scaling) or the
    transformers 5 way (rope_parameters {rope_type, rope_theta}); only the default rope is supported."""
    err = ConfigError
    theta = field(hf, "rope_theta", where, float, optional=True, default=None, low=1e-6, high=1e12, error=err)
    for key in ("rope_scaling", "rope_parameters"):
        params = field(hf, key, where, dict, optional=True, none_ok=True, error=err)
        if not params:
            continue
        kind = params.get("rope_type", params.get("type", "default"))
        if kind != "default":
            raise err(f"{where}: {key} of type {bounded(repr(kind), 40)} is not supported (only the default rope)")
        factor = field(params, "partial_rotary_factor", f"{where}: {key}", float, optional=True, default=1.0, error=err)
        if factor != 1.0:
            raise err(f"{where}: {key}: partial_rotary_factor {factor} is not supported (only 1.0)")
        inner = field(params, "rope_theta", f"{where}: {key}", float, optional=True, default=None, low=1e-6,
                      high=1e12, error=err)
        if inner is not None and theta is not None and inner != theta:
            raise err(f"{where}: rope_theta {theta} and {key}.rope_theta {inner} disagree")
        theta = inner if inner is not None else theta
    if field(hf, "partial_rotary_factor", where, float, optional=True, default=1.0, error=err) != 1.0:
        raise err(f"{where}: partial_rotary_factor is not supported (only 1.0)")
    return 10000.0 if theta is None else theta


def hf_family(cfg):
    """The Hugging Face model_type a GPTConfig is exactly, or None: gpt2 (LayerNorm, GELU, learned
    positions, multi-head), llama (RMSNorm, SwiGLU, RoPE; biases on all of q, k, v, o or none, and
    on all the MLP or none), qwen2 (the same with biases on q, k, v only). Projections may be packed
    or split either way (a packed c_attn is cut into q, k, v for llama/qwen2)."""
    if (cfg.norm, cfg.mlp, cfg.positions) == ("layernorm", "gelu", "learned") and cfg.kv_heads == cfg.n_head:
        return "gpt2" if cfg.qkv_proj == "packed" else None
    if (cfg.norm, cfg.mlp, cfg.positions) != ("rmsnorm", "swiglu", "rope"):
        return None
    qkv_b = cfg.bias or cfg.qkv_bias or cfg.attention_bias
    out_b, mlp_b = cfg.bias or cfg.attention_bias, cfg.bias or cfg.mlp_bias
    return "qwen2" if qkv_b and not out_b and not mlp_b else "llama"


def config_to_hf(cfg, eot_id=None):
    """A config dict that transformers loads as GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM."""
    family = hf_family(cfg)
    if family is None:
        raise ConfigError(f"to_hf: this GPTConfig is none of {', '.join(MODEL_TYPES)} (norm {cfg.norm}, mlp "
                          f"{cfg.mlp}, positions {cfg.positions}, qkv_proj {cfg.qkv_proj}, n_kv_head {cfg.n_kv_head})")
    if family == "gpt2":
        hf = {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": None if cfg.mlp_size == 4 * cfg.n_embd else cfg.mlp_size,
            "activation_function": "gelu_new", "layer_norm_epsilon": cfg.norm_eps,
            "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
            "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": cfg.tie_word_embeddings,
            "torch_dtype": "float32",
        }
    else:
        hf = {
            "architectures": ["Qwen2ForCausalLM" if family == "qwen2" else "LlamaForCausalLM"], "model_type": family,
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.n_embd, "intermediate_size": cfg.mlp_size,
            "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_size, "hidden_act": "silu",
            "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta, "rope_scaling": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "attention_dropout": cfg.dropout, "initializer_range": 0.02,
            "tie_word_embeddings": cfg.tie_word_embeddings, "torch_dtype": "float32",
        }
        if family == "llama":
            hf.update(attention_bias=cfg.bias or cfg.qkv_bias or cfg.attention_bias,
                      mlp_bias=cfg.bias or cfg.mlp_bias)
        else:
            hf.update(use_sliding_window=False, sliding_window=None)
    if eot_id is not None:
        hf["bos_token_id"] = hf["eos_token_id"] = int(eot_id)
    return hf


# ---- weights -------------------------------------------------------------------------------------
def _our_name(name, family):
    """Our parameter name for a tensor of a `family` file, or None for a buffer to skip."""
    if family == "gpt2":
        if _GPT2_BUFFER.search(name):
            return None
        return name if name == "lm_head.weight" or name.startswith("transformer.") else "transformer." + name
    if _LLAMA_BUFFER.search(name):
        return None
    if not name.startswith(("model.", "lm_head.")):
        name = "model." + name                         # saved from the base LlamaModel: no prefix
    return _rename(name, _LLAMA_PREFIXES, _LLAMA_PARTS, 0)


def _rename(name, prefixes, parts, src):
    """Rename by the (hf, ours) pieces, from HF's names (src 0) or to them (src 1). A name that is
    not one of the model's comes out under a name no config expects: the shape check reports it."""
    dst = 1 - src
    for pair in prefixes:
        if name.startswith(pair[src]):
            name = pair[dst] + name[len(pair[src]):]
            break
    for pair in parts:
        name = name.replace(pair[src], pair[dst])
    return name


def state_from_hf(tensors, cfg, where="model.safetensors", shapes_only=False):
    """HF tensors -> {our name: float32 array}, renamed (and Conv1D weights transposed for gpt2),
    every shape checked against parameter_shapes(cfg).

    With shapes_only, `tensors` maps names to shapes (a file's header) and nothing is converted.
    Raises ConfigError naming missing keys, unexpected keys, shape mismatches and non-finite values.
    """
    from nanoframe.models.gpt import parameter_shapes

    family = "gpt2" if cfg.positions == "learned" else "llama"
    renamed, lm_head, problems = {}, None, []
    for name, arr in tensors.items():
        ours = _our_name(name, family)
        if ours is None:
            continue
        if ours == "lm_head.weight" and cfg.tie_word_embeddings:
            lm_head = arr                              # a tied head: must equal wte if stored
            continue
        if ours in renamed:
            problems.append(f"{renamed[ours][0]} and {name} are both {ours}")
        renamed[ours] = (name, arr)
    expected = parameter_shapes(cfg)
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(renamed[k][0] for k in set(renamed) - set(expected))
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    out, mismatched = {}, []
    for ours, (name, arr) in renamed.items():
        if ours not in expected:
            continue
        conv = family == "gpt2" and ours.endswith(CONV1D)
        shape = tuple(arr) if shapes_only else arr.shape
        if (shape[::-1] if conv else shape) != expected[ours]:
            mismatched.append(f"{ours}: file has {shape}, config needs "
                              f"{expected[ours][::-1] if conv else expected[ours]}")
            continue
        if shapes_only:
            continue
        arr = np.asarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            problems.append(f"{ours} holds NaN or inf")
            continue
        out[ours] = np.ascontiguousarray(arr.T if conv else arr)
    if lm_head is not None and not shapes_only and "transformer.wte.weight" in out:
        if lm_head.shape != out["transformer.wte.weight"].shape or not np.array_equal(
                np.asarray(lm_head, np.float32), out["transformer.wte.weight"]):
            problems.append("lm_head.weight differs from the token embedding although tie_word_embeddings is true")
    if mismatched:
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        problems.append(f"shape mismatch for {mismatched[0]}{more}")
    if problems:
        raise ConfigError(f"{where}: " + bounded("; ".join(problems), 300))
    return out


def _some(names, shown=3):
    """'key(s) [a, b, c] and N more': a file with many wrong names still gets one short line."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"key(s) {bounded(names[:shown], 160)}{more}"


def read_hf_config(folder):
    return read_json(Path(folder) / "config.json",
                     f"{folder} is not a Hugging Face model folder (no config.json)", ConfigError)


def load_hf(folder):
    """A nanoframe GPT (dropout 0) with the weights of a Hugging Face gpt2, llama or qwen2 folder.

    The config is validated and the weights' names and shapes are checked against it from the
    safetensors header before the model is allocated."""
    from nanoframe.models.gpt import GPT

    folder = Path(folder)
    cfg = config_from_hf(read_hf_config(folder), str(folder / "config.json"))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        sharded = (folder / "model.safetensors.index.json").is_file()
        raise ConfigError(f"{folder} has no model.safetensors" + (
            " (sharded checkpoints are not supported: merge the shards into one file)" if sharded else
            " (only safetensors weights are read, never pickle)"))
    header = {name: shape for name, (_, shape) in safetensors_shapes(weights).items()}
    state_from_hf(header, cfg, str(weights), shapes_only=True)
    state = state_from_hf(load_safetensors(weights), cfg, str(weights))
    model = GPT(cfg)
    model.load_state_dict(state, strict=False)  # a tied lm_head.weight is wte: not stored separately
    return model


def hf_tensors(model):
    """Our GPT's weights under Hugging Face's names and layout, float32: gpt2 Conv1D weights (in, out),
    a packed c_attn cut into q_proj, k_proj, v_proj for llama/qwen2, a bias HF's layer has but ours
    lacks written as zeros (the same function), a tied lm_head left to the tie."""
    from nanoframe.nn.lora import lora_config_of

    if lora_config_of(model) is not None:
        raise ConfigError("to_hf: the model has LoRA adapters; merge them first (nanoframe.nn.lora.merge_lora)")
    cfg = model.config
    family = hf_family(cfg)
    params = {n: np.asarray(p.array, dtype=np.float32) for n, p in model.named_parameters()}
    if family == "gpt2":
        return _gpt2_tensors(cfg, params)
    if family in ("llama", "qwen2"):
        return _llama_tensors(cfg, params, family)
    config_to_hf(cfg)                                  # raises the one-line refusal
    return {}


def _gpt2_tensors(cfg, params):
    from nanoframe.models.gpt import parameter_shapes

    full = parameter_shapes(_with(cfg, bias=True))     # HF GPT-2 has every bias
    out = {}
    for name, shape in full.items():
        arr = params.get(name)
        if arr is None:
            if not name.endswith(".bias"):
                raise ConfigError(f"to_hf: the model has no parameter {name}")
            arr = np.zeros(shape, np.float32)          # bias=False: a zero bias is the same function
        out[name] = np.ascontiguousarray(arr.T if name.endswith(CONV1D) else arr)
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = params["lm_head.weight"]
    return out


def _llama_tensors(cfg, params, family):
    from nanoframe.models.gpt import parameter_shapes

    nh, nkv, hs = cfg.n_head, cfg.kv_heads, cfg.head_size
    split = dict(params)
    for i in range(cfg.n_layer):                       # a packed c_attn -> q_proj, k_proj, v_proj
        h = f"transformer.h.{i}.attn."
        for kind in ("weight", "bias"):
            packed = split.pop(f"{h}c_attn.{kind}", None)
            if packed is not None:
                cuts = np.split(packed, [nh * hs, (nh + nkv) * hs], axis=0)
                split.update({f"{h}{p}_proj.{kind}": c for p, c in zip("qkv", cuts)})
        for kind in ("weight", "bias"):
            if f"{h}c_proj.{kind}" in split:
                split[f"{h}o_proj.{kind}"] = split.pop(f"{h}c_proj.{kind}")
    hf_cfg = config_to_hf(cfg)
    full = parameter_shapes(_with(cfg, qkv_proj="split", bias=False, qkv_bias=family == "qwen2",
                                  attention_bias=bool(hf_cfg.get("attention_bias")),
                                  mlp_bias=bool(hf_cfg.get("mlp_bias"))))
    out = {}
    for name, shape in full.items():
        arr = split.get(name)
        if arr is None:
            if not name.endswith(".bias"):
                raise ConfigError(f"to_hf: the model has no parameter {name}")
            arr = np.zeros(shape, np.float32)
        out[_rename(name, _LLAMA_PREFIXES, _LLAMA_PARTS, 1)] = np.ascontiguousarray(arr)
    return out


def _with(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def save_hf(model, folder, eot_id=None):
    """Write config.json + model.safetensors that transformers opens (AutoModelForCausalLM: GPT2LMHeadModel,
    LlamaForCausalLM or Qwen2ForCausalLM)."""
    hf_cfg = config_to_hf(model.config, eot_id)        # refuses a config that is none of them, before writing
    tensors = hf_tensors(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    atomic_write_text(folder / "config.json", json.dumps(hf_cfg, indent=2) + "\n")
    return folder
